"""Suites and ``srbench ablate``: train or load every variant of a suite, evaluate all models on every
dataset under both protocols, and write the report.

Nothing finished is ever lost or redone: a trained stage is kept in the training cache (srbench.train.cache) under
its fingerprint (what determines its weights), so entries whose stage configurations are equal train it once and
share it (the report's training.json, table and page say which), and a re-run, into any --out, trains nothing; an
interrupted training resumes from its last checkpoint; evaluation values are cached per image in the results store
(keyed by the checkpoint's sha256: a shared checkpoint is evaluated once), and a re-run of a finished suite only
reads the store. Independent trainings run side by side (``jobs``), and models are evaluated while the last
trainings run.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from srbench import paths
from srbench import work_split as distributed
from srbench.errors import BadInputError, SrbenchError
from srbench.suite_settings import SuiteSettings, parse_settings, protocol_metrics
from srbench.text import shown
from srbench.work_split import Ranks


def _presets() -> tuple[str, ...]:
    from srbench.train.config import PRESETS

    return PRESETS


SUITE_KEYS = {"name", "description", "datasets", "baselines", "variants", "interpolation", "source", "training_data",
              "report", "presets"}
VARIANT_KEYS = {"name", "label", "training"}
INTERP_KEYS = {"variant", "alphas"}
SUITE_PROTOCOLS = ("sr", "pirm")  # every suite model is evaluated under both


def shipped_suites() -> dict[str, str]:
    """name -> file of every suite shipped in the package's ``suites/`` folder (a new suite is one new file)."""
    files = [entry.name for entry in resources.files("srbench.suites").iterdir() if entry.name.endswith(".toml")]
    return {name[: -len(".toml")]: name for name in sorted(files, key=lambda n: n[: -len(".toml")])}


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    label: str
    training: Any  # a training recipe (srbench.train.config.RECIPES), a generator name, a TOML file or an inline table


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    datasets: tuple[str, ...]
    baselines: tuple[str, ...]
    entries: tuple[SuiteEntry, ...]  # the [[variants]] tables of the suite file
    interp_variant: str | None = None
    alphas: tuple[float, ...] = ()
    source: str = ""  # where the suite's recipe comes from (a paper, a thesis)
    training_data: str = ""  # what the source trained on (smoke runs train on scikit-image's images instead)
    settings: SuiteSettings = field(default_factory=SuiteSettings)  # [report] and [presets] (srbench.suite_settings)


def _reject_unknown(table: dict, known: set[str], where: str) -> None:
    unknown = sorted(shown(k, 40) for k in set(table) - known)
    if unknown:
        raise BadInputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _names(data: dict, key: str, where: str, default: list[str]) -> tuple[str, ...]:
    """``key`` as a list of unique non-empty strings (a bare string would iterate into its letters)."""
    value = data.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise BadInputError(f"{where}: {key} = {shown(value)}: expected a list of names, e.g. {key} = [\"a\", \"b\"]")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise BadInputError(f"{where}: {key} repeats {', '.join(map(repr, repeated))}")
    return tuple(value)


def _text(table: dict, key: str, where: str, default: str | None = None, *, name: bool = False) -> str:
    from srbench.train.config import SAFE_NAME, SAFE_NAME_TEXT

    value = table.get(key, default)
    if not isinstance(value, str) or (name and not SAFE_NAME.fullmatch(value)):
        allowed = SAFE_NAME_TEXT if name else "a string"
        raise BadInputError(f"{where}: {key} = {shown(value)}; allowed: {allowed}")
    return value


def _parse_variants(data: dict, origin: str) -> tuple[SuiteEntry, ...]:
    tables = data.get("variants", [])
    if not isinstance(tables, list) or not all(isinstance(v, dict) for v in tables):
        raise BadInputError(f"{origin}: variants = {shown(tables)}: expected an array of tables ([[variants]] entries)")
    variants = []
    for i, v in enumerate(tables):
        where = f"{origin}: variants[{i}]"
        _reject_unknown(v, VARIANT_KEYS, where)
        if "name" not in v or "training" not in v:
            raise BadInputError(f"{where} needs a name and a training entry")
        vname = _text(v, "name", where, name=True)
        training = v["training"]
        if not isinstance(training, (str, dict)) or (isinstance(training, dict)
                                                     and not isinstance(training.get("variant", ""), str)):
            raise BadInputError(f"{where}: training = {shown(training)}: expected a training variant name, a .toml "
                                "path or a table (whose 'variant' is a name)")
        variants.append(SuiteEntry(vname, _text(v, "label", where, vname), training))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise BadInputError(f"{origin}: variant names repeat")
    return tuple(variants)


def _parse_interpolation(data: dict, origin: str, names: list[str]) -> tuple[str | None, tuple[float, ...]]:
    interp = data.get("interpolation", {})
    if not isinstance(interp, dict):
        raise BadInputError(f"{origin}: interpolation = {shown(interp)}: expected a table with variant and alphas")
    _reject_unknown(interp, INTERP_KEYS, f"{origin}: interpolation")
    if interp and interp.get("variant") not in names:
        raise BadInputError(f"{origin}: interpolation.variant {shown(interp.get('variant'))} is not a variant of "
                            "the suite")
    alphas = interp.get("alphas", [])
    if not isinstance(alphas, list) or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and 0.0 <= a <= 1.0 for a in alphas):
        raise BadInputError(f"{origin}: interpolation.alphas = {shown(alphas)}; allowed: a list of numbers in [0, 1]")
    alphas = [float(a) for a in alphas]
    if len(set(alphas)) != len(alphas):
        raise BadInputError(f"{origin}: interpolation.alphas repeats a value: {alphas}")
    return interp.get("variant"), tuple(alphas)


def parse_suite(data: dict, origin: str) -> Suite:
    """A suite from its TOML table; every key's type is checked, errors are one line naming ``origin`` and the
    key."""
    if not isinstance(data, dict):
        raise BadInputError(f"{origin}: a suite is a TOML table, got {type(data).__name__}")
    _reject_unknown(data, SUITE_KEYS, origin)
    datasets = _names(data, "datasets", origin, ["skimage"])
    if not datasets:
        raise BadInputError(f"{origin}: datasets is empty; name at least one dataset")
    baselines = _names(data, "baselines", origin, [])
    unknown_baselines = [b for b in baselines if b != "bicubic"]
    if unknown_baselines:
        raise BadInputError(f"{origin}: unknown baseline(s) {unknown_baselines}; known: bicubic")
    variants = _parse_variants(data, origin)
    interp_variant, alphas = _parse_interpolation(data, origin, [v.name for v in variants])
    return Suite(
        name=_text(data, "name", origin, Path(origin).stem, name=True),
        description=_text(data, "description", origin, ""), datasets=datasets, baselines=baselines,
        entries=variants, interp_variant=interp_variant, alphas=alphas, source=_text(data, "source", origin, ""),
        training_data=_text(data, "training_data", origin, ""), settings=parse_settings(data, origin, _presets()),
    )


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (``srbench suites list``) or a suite TOML file."""
    from srbench.paths import user_path
    from srbench.text import read_toml

    shipped = shipped_suites()
    if name_or_path in shipped:
        text = resources.files("srbench.suites").joinpath(shipped[name_or_path]).read_text(encoding="utf-8")
        origin = f"suite {shown(name_or_path)}"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadInputError(f"{origin}: invalid TOML ({exc})") from None
        return parse_suite(data, origin)
    path = user_path(name_or_path, "--suite")
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL in it
        is_file = False
    if not is_file:
        raise BadInputError(f"unknown suite {shown(name_or_path)}; shipped: {', '.join(shipped)} (or a .toml path)")
    return parse_suite(read_toml(path, "suite file"), str(path))


def resolve_suite_configs(suite: Suite, preset: str) -> dict:
    """Every variant's training configuration under ``preset`` (name -> TrainConfig), resolved as ``ablate``
    resolves them, so that a bad one is found before the first variant trains; errors name the variant."""
    from srbench.train.config import resolve_config

    configs = {}
    for variant in suite.entries:
        try:
            overrides = {**copy.deepcopy(suite.settings.presets.get(preset, {})), "name": variant.name}
            configs[variant.name] = resolve_config(variant.training, preset, overrides=overrides)
        except BadInputError as exc:
            raise BadInputError(f"suite {suite.name}: variant {variant.name}: {exc}") from None
    return configs


# ---------------------------------------------------------------------------------------------------------


CROP_H, CROP_W = 96, 192  # NIQE needs two 96x96 blocks


@dataclass(frozen=True)
class Crop:
    """One model's centre crop of one image, with its numbers on that crop."""

    model: str
    pixels: Any  # uint8 HxW or HxWx3
    psnr_y: float
    no_reference: float  # PI, or NIQE when Ma's weights are missing


@dataclass(frozen=True)
class VisualComparison:
    """Crops of the first images of a dataset (HR first, then each model): what the HTML report shows."""

    nr_label: str
    rows: tuple[tuple[str, tuple[Crop, ...]], ...]  # (image, crops)
    note: str = ""  # why there is nothing to show


def shown_models(models: dict) -> dict:
    """The models a visual comparison shows: the baseline and every GAN-stage model."""
    return {k: v for k, v in models.items() if k == "bicubic" or k.endswith("-gan")}


def _crop_numbers(crop, hr_crop, scale: int, use_pi: bool, weights_dir: str | None) -> tuple[float, float]:
    """PSNR-Y (sr protocol) and PI or NIQE (pirm protocol) of a crop, with no border shaved: the crop is
    exactly what the reader sees."""
    import dataclasses

    from srbench.protocols import get_protocol

    psnr = dataclasses.replace(get_protocol("sr"), border=0).per_image(crop, hr_crop, scale, ["psnr_y"], {})
    pirm = dataclasses.replace(get_protocol("pirm"), border=0)
    name = "pi" if use_pi else "niqe"
    values = pirm.per_image(crop, hr_crop, scale, pirm.resolve_metrics([name]), {"weights_dir": weights_dir})
    return psnr["psnr_y"], values[name]


def visual_comparison(sources: dict, dataset: str, data_root: str | None, *, n_images: int = 3, scale: int = 4,
                      weights_dir: str | None = None) -> VisualComparison:
    """Centre crops of the first ``n_images`` of ``dataset`` for HR and every opened source in ``sources``."""
    from srbench.datasets import resolve
    from srbench.metrics.nrqm import nrqm_model_path
    from srbench.weights import UnpinnedWeightsError, check_file

    try:
        check_file(nrqm_model_path(weights_dir))  # the crops' PI is made with the file the evaluation accepts
        nr_label, use_pi = "PI", True
    except UnpinnedWeightsError:
        nr_label, use_pi = "NIQE (PI unavailable: NRQM_model.mat is not the pinned file; see srbench evaluate)", False
    except SrbenchError:
        nr_label, use_pi = "NIQE (PI unavailable: no Ma weights; srbench fetch weights nrqm)", False
    try:
        ds = resolve(dataset, data_root)
    except SrbenchError as exc:
        return VisualComparison(nr_label, (), f"No visual comparison: {exc}")
    rows = []
    for item in ds.items[:n_images]:
        try:
            pair = ds.load_pair(item, scale)
        except SrbenchError:  # a bad image is listed in the failures already
            continue
        h, w = pair.hr.shape[:2]
        if h >= CROP_H and w >= CROP_W:
            rows.append((item.name, _crops(sources, pair, item, scale, use_pi, weights_dir)))
    return VisualComparison(nr_label, tuple(rows))


def _crops(sources: dict, pair, item, scale: int, use_pi: bool, weights_dir: str | None) -> tuple[Crop, ...]:
    h, w = pair.hr.shape[:2]
    top, left = (h - CROP_H) // 2, (w - CROP_W) // 2
    window = (slice(top, top + CROP_H), slice(left, left + CROP_W))
    hr_crop = pair.hr[window]
    candidates = [("HR", hr_crop)]
    for name, source in sources.items():
        try:
            candidates.append((name, _predicted_crop(source, pair, item, scale, window)))
        except SrbenchError:  # listed in the failures already
            continue
    return tuple(Crop(name, crop, *_crop_numbers(crop, hr_crop, scale, use_pi, weights_dir))
                 for name, crop in candidates)


def _predicted_crop(source, pair, item, scale: int, window: tuple[slice, slice]):
    """``source``'s SR image of ``pair`` cut to ``window``, quantised as every protocol first does. Kept in the cache
    folder (srbench.paths.cache_dir) under what determines it (the source's key: a generator's checkpoint sha256
    and device; the HR and LR pixels; the scale and window), so a re-run into another --out runs no generator."""
    import hashlib
    import io

    import numpy as np

    from srbench.images import atomic_write_bytes
    from srbench.protocols import quantize

    h = hashlib.sha256(f"{source.key}|x{scale}|{window}".encode())
    for pixels in (pair.hr, pair.lr):
        h.update(f"{pixels.dtype}{pixels.shape}".encode())
        h.update(np.ascontiguousarray(pixels).tobytes())
    path = paths.cache_dir() / "visual-crops" / f"{h.hexdigest()}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # not there yet, or a damaged file: made again
        pass
    crop = quantize(source.predict(pair, item, scale)[window])
    buffer = io.BytesIO()
    np.save(buffer, crop, allow_pickle=False)
    with contextlib.suppress(SrbenchError):  # a read-only cache folder costs only the speed-up
        atomic_write_bytes(path, buffer.getvalue())
    return crop


@dataclass
class AblationReport:
    suite: Suite
    preset: str
    datasets: list[str]
    results: list = field(default_factory=list)  # EvalResult
    models: dict[str, str | Path] = field(default_factory=dict)  # model name -> checkpoint or "bicubic"
    failures: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    data_root: str | None = None
    weights_dir: str | None = None
    # Made only when the report is (re)written: a cached re-run whose numbers did not change skips it.
    visual: Callable[[], VisualComparison] | None = None
    training: list = field(default_factory=list)  # SharedStage: where each stage's checkpoint came from
    iterations: dict[str, tuple[int, int]] = field(default_factory=dict)  # entry -> (psnr, gan) iterations
    batches: dict[str, tuple[int, int]] = field(default_factory=dict)  # entry -> (HR patch size, batch size)


def _find_checkpoint(folder: Path | None, variant: str, stage: str) -> Path | None:
    if folder is None:
        return None
    candidates = [folder / variant / stage / "g_final.safetensors"]
    candidates += [folder / f"{variant}-{stage}{ext}" for ext in (".safetensors", ".pth", ".pt")]
    return next((c for c in candidates if c.is_file()), None)


def _has_data_root(data_root: str | None) -> bool:
    return data_root is not None or bool(os.environ.get(paths.DATA_ENV))


def _fatal() -> tuple[type[BaseException], ...]:
    """Errors of the machine, not of one variant: they stop the suite instead of failing every variant in turn."""
    from srbench.errors import OutputError, RunInUseError, StoreError
    from srbench.train import TrainingInterrupted

    return (TrainingInterrupted, OutputError, StoreError, RunInUseError)


@dataclass
class _Plan:
    """Where one ablation run reads and writes."""

    suite: Suite
    preset: str
    out_dir: Path
    runs_dir: Path
    ckpt_dir: Path | None
    device: str
    log: Callable[[str], None]
    opened: dict = field(default_factory=dict)  # model name -> opened source of the models the report shows
    cache_dir: Path | None = None  # the training cache (srbench.paths.training_cache_dir)
    jobs: int = 1  # trainings side by side
    workers: int | None = None  # metric workers of each evaluation (srbench.evaluation)
    where: Any = None  # srbench.work_split.Ranks: this process's place in a torchrun launch

    def existing(self, variant: str, stage: str) -> Path | None:
        """A checkpoint given with --checkpoints (used as it is, never trained)."""
        return _find_checkpoint(self.ckpt_dir, variant, stage)

    def check_outputs(self) -> None:
        """Every output location is checked before the first training step: a read-only --out found after
        hours of training would waste them."""
        from srbench.images import ensure_writable_dir

        ensure_writable_dir(self.out_dir)
        if any(self.existing(v.name, stage) is None for v in self.suite.entries for stage in ("psnr", "gan")):
            ensure_writable_dir(self.runs_dir)
            if self.cache_dir is not None:
                ensure_writable_dir(self.cache_dir)
        if self.suite.interp_variant:
            ensure_writable_dir(self.out_dir / "interp" / self.preset)


@dataclass
class SharedStage:
    """One stage the report's models come from, and the suite entries that use it: entries whose stage
    configurations resolve to one fingerprint (srbench.train.cache) train it once and share its checkpoint."""

    stage: str
    entries: list[str]
    checkpoint: str  # the weights the entries use (the cache entry's, or the --checkpoints file)
    fingerprint: str | None = None  # None: a --checkpoints file, not trained here
    source: str = "trained"  # "trained" (now), "cache" (found in the training cache) or "checkpoints"
    seconds: float | None = None  # how long the training took (now or when the cache entry was made)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class _Job:
    key: Any  # srbench.train.cache.StageKey
    stage: str
    config: Any  # the first entry's TrainConfig (the others' resolve to the same fingerprint)
    init: str | None
    entries: list[str] = field(default_factory=list)
    done: bool = False


class _Trainings:
    """Every stage of every suite entry: a --checkpoints file, a training cache entry, or a training (one per
    fingerprint, up to ``plan.jobs`` side by side); a gan stage starts once its psnr stage is there."""

    def __init__(self, plan: _Plan, report: AblationReport, configs: dict,
                 meanwhile: Callable[[], bool] | None = None) -> None:
        from srbench.train.cache import TrainingCache, resolve_device

        assert plan.cache_dir is not None
        self.plan, self.report, self.configs = plan, report, configs
        self.cache = TrainingCache(plan.cache_dir)
        self.device = resolve_device(plan.device)
        self.where = plan.where or Ranks()
        # Intra-op threads of each training on a CPU: part of the fingerprint (they change the last bits). The
        # cores are shared by the trainings side by side, and by the torchrun processes of this machine.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.where.active else 1
        self.threads = max(1, _cores() // (plan.jobs * local)) if self.device == "cpu" else None
        self.memo: dict = {}  # data fingerprints
        self.jobs: dict[str, _Job] = {}  # fingerprint -> job
        self.queue: list[_Job] = []  # jobs to train, in suite order
        self.shared: dict[str, tuple] = {}  # fingerprint -> (SharedStage, CachedStage) of the stages there
        self.psnr_weights: dict[str, Path] = {}  # entry -> the cache entry of its psnr stage
        self.meanwhile = meanwhile  # evaluates one model that is there; False when there is none to evaluate

    def _fail(self, names: list[str], exc: SrbenchError) -> None:
        for name in names:
            self.report.failures.append(f"{name}: {exc}")
            self.plan.log(f"FAILED {name}: {exc}")

    def add(self, name: str, stage: str) -> None:
        """Stage ``stage`` of entry ``name``: given, cached (placed now), or queued (joining an equal job)."""
        from srbench.train.cache import data_fingerprints, stage_key

        given = self.plan.existing(name, stage)
        if given is not None:
            self.report.models[f"{name}-{stage}"] = given
            self.report.training.append(SharedStage(stage, [name], str(given), source="checkpoints"))
            if stage == "psnr":
                self.add(name, "gan")
            return
        config = self.configs[name]
        # The psnr weights a gan stage starts from: their cache entry (a path no --out decides), else the file given.
        init = str(self.psnr_weights.get(name, self.report.models.get(f"{name}-psnr"))) if stage == "gan" else None
        try:
            key = stage_key(config, stage, data=data_fingerprints(config, self.memo), init=init, device=self.device,
                            threads=self.threads)
        except _fatal():
            raise
        except SrbenchError as exc:
            self._fail([name], exc)
            return
        job = self.jobs.get(key.fingerprint)
        if job is None:
            job = self.jobs[key.fingerprint] = _Job(key, stage, config, init)
            job.entries.append(name)
            cached = self.cache.lookup(key.fingerprint)
            if cached is not None:
                self.finish(job, cached)
            else:
                self.queue.append(job)
        else:
            job.entries.append(name)
            if job.done:  # shared with a stage already there
                self._place(job, name)

    def _place(self, job: _Job, name: str) -> None:
        from srbench.train.cache import CachedStage, place

        cached: CachedStage = self.shared[job.key.fingerprint][1]
        others = [e for e in job.entries if e != name]
        if not self.where.is_main:  # rank 0 alone writes the run folders; the others read the cache entry
            self.report.models[f"{name}-{job.stage}"] = cached.final
            if job.stage == "psnr":
                self.psnr_weights[name] = cached.final
                self.add(name, "gan")
            return
        try:
            self.report.models[f"{name}-{job.stage}"] = place(
                cached, self.plan.runs_dir / name / job.stage, config=self.configs[name], shared_with=others)
        except _fatal():
            raise
        except SrbenchError as exc:
            self._fail([name], exc)
            return
        if job.stage == "psnr":
            self.psnr_weights[name] = cached.final
            self.add(name, "gan")

    def finish(self, job: _Job, cached, *, trained: bool | None = None) -> None:
        """``trained``: whether it was trained in this run (default: by this process)."""
        job.done = True
        source = "trained" if (cached.trained if trained is None else trained) else "cache"
        share = SharedStage(job.stage, job.entries, str(cached.final), job.key.fingerprint, source,
                            cached.record.get("seconds"))
        self.report.training.append(share)
        self.shared[job.key.fingerprint] = (share, cached)
        if source == "cache":
            self.plan.log(f"cached {job.stage} stage {job.key.fingerprint[:12]} for {', '.join(job.entries)} "
                          f"({cached.folder})")
        for name in list(job.entries):  # a gan job of an entry placed here may join later entries' jobs
            self._place(job, name)

    def announce(self, job: _Job) -> None:
        shared = f", shared by {', '.join(job.entries)}" if len(job.entries) > 1 else ""
        resume = ", resuming" if self.cache.resumable(job.key.fingerprint, job.config, job.stage) else ""
        self.plan.log(f"training {job.entries[0]} / {job.stage} ({self.plan.preset}{resume}; cache "
                      f"{job.key.fingerprint[:12]}{shared})")

    def run(self) -> None:
        for variant in self.plan.suite.entries:
            self.add(variant.name, "psnr")
        if self.where.active:
            self._run_ranked()
            return
        if self.plan.jobs > 1 and len(self.queue) > 1:
            self._run_side_by_side()
            return
        while self.queue:
            job = self.queue.pop(0)
            self.announce(job)
            try:
                with _torch_threads(self.threads):
                    cached = self.cache.get_or_train(job.config, job.stage, job.key, init=job.init,
                                                     device=self.plan.device, progress=True, log=self.plan.log,
                                                     announce=False)
            except _fatal():
                raise
            except SrbenchError as exc:
                self._fail(job.entries, exc)
                continue
            self.finish(job, cached)

    def _next(self) -> _Job:
        """The next training side by side: psnr stages first (each unlocks gan stages), then the largest generator
        first, so the longest chain (and the models waiting on it, e.g. the interpolation's) is done early and the
        last, lone training is a short one. The order changes no weights: only when each is there."""
        best = min(self.queue, key=lambda job: (job.stage != "psnr", -_generator_size(job.config),
                                                self.queue.index(job)))
        self.queue.remove(best)
        return best

    def _run_ranked(self) -> None:
        """torchrun: the stages in waves of the dependency graph (the psnr stages, then the gan stages that start
        from them); in each wave rank ``r`` trains every ``world``-th stage on its own (no DDP: a whole stage per
        rank), then every rank reads the wave's entries from the training cache, which the ranks share."""
        from srbench import work_split as Dist

        while self.queue:
            wave, self.queue = self.queue, []
            errors: dict[str, str] = {}
            for job in self.where.share(wave):
                self.announce(job)
                try:
                    with _torch_threads(self.threads):
                        self.cache.get_or_train(job.config, job.stage, job.key, init=job.init,
                                                device=self.plan.device, progress=False, log=self.plan.log,
                                                announce=False, alone=True)
                except _fatal():
                    raise  # torchrun stops the other ranks; a re-run resumes from the cache and the checkpoints
                except SrbenchError as exc:
                    errors[job.key.fingerprint] = str(exc)
            for part in Dist.all_gather(errors, self.where):
                errors.update(part)
            for job in wave:
                cached = self.cache.lookup(job.key.fingerprint)
                if job.key.fingerprint in errors or cached is None:
                    why = errors.get(job.key.fingerprint, f"its entry is missing from the training cache "
                                                          f"{self.cache.root} (is it shared by every node?)")
                    self._fail(job.entries, SrbenchError(why))
                else:
                    self.finish(job, cached, trained=True)

    def _run_side_by_side(self) -> None:
        """Up to ``plan.jobs`` trainings at once, each in its own process on its share of the cores; meanwhile this
        process evaluates every model already there (``self.meanwhile``, one model per call), so that a core a
        last, lone training leaves idle is used."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        from srbench.train.cache import train_in_worker

        threads = self.threads or 1
        running: dict = {}

        def collect(timeout: float | None) -> None:
            finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    cached = future.result()
                except _fatal():
                    raise
                except SrbenchError as exc:
                    self._fail(job.entries, exc)
                    continue
                self.plan.log(f"trained {job.stage} stage {job.key.fingerprint[:12]} ({', '.join(job.entries)}) "
                              f"in {cached.record.get('seconds')} s")
                self.finish(job, cached)

        with ProcessPoolExecutor(self.plan.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                while self.queue or running:
                    while self.queue and len(running) < self.plan.jobs:
                        job = self._next()
                        self.announce(job)
                        running[pool.submit(train_in_worker, str(self.cache.root), job.config, job.stage, job.key,
                                            job.init, self.plan.device, threads)] = job
                    if self.meanwhile is not None and self.meanwhile():
                        collect(0)  # a model was evaluated: start the next training at once if one finished
                    else:
                        collect(None)
            except BaseException:
                for future in running:
                    future.cancel()
                raise


def _generator_size(config) -> int:
    """Parameters of a configuration's generator (built on the meta device: no memory, no initialisation)."""
    import torch

    from srbench.archs import GENERATORS, build_generator, count_parameters

    spec = GENERATORS[config.generator]
    with torch.device("meta"):
        return count_parameters(build_generator(spec.arch, {**spec.config, **config.generator_config,
                                                            "scale": config.data.scale}))


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` (None: unchanged) within the block."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs(device: str) -> int:
    """Trainings side by side: two on a CPU with two or more cores (two small networks on one core each beat one
    on two: measured in docs/scaling.md), one on a GPU."""
    from srbench.train.cache import resolve_device

    return 1 if resolve_device(device) != "cpu" or _cores() < 2 else 2


def _train_suite(plan: _Plan, report: AblationReport, configs: dict,
                 meanwhile: Callable[[], bool] | None = None) -> None:
    """Every entry's two stages (see :class:`_Trainings`); the report's models stay in suite order."""
    _Trainings(plan, report, configs, meanwhile).run()
    order = [*plan.suite.baselines, *(f"{v.name}-{stage}" for v in plan.suite.entries for stage in ("psnr", "gan"))]
    # Suite order, then what was added while training (the interpolated models, made as soon as they could be).
    report.models = {**{k: report.models[k] for k in order if k in report.models},
                     **{k: v for k, v in report.models.items() if k not in order}}
    report.training.sort(key=lambda s: ([v.name for v in plan.suite.entries].index(s.entries[0]),
                                        s.stage != "psnr"))


def _interpolate(plan: _Plan, report: AblationReport) -> None:
    from srbench.checkpoints import alpha_label, generator_info, interpolate, load_generator, save_checkpoint

    name = plan.suite.interp_variant
    psnr, gan = report.models.get(f"{name}-psnr"), report.models.get(f"{name}-gan")
    if not (psnr and gan):
        return
    info = generator_info(load_generator(gan))
    for alpha in plan.suite.alphas:
        path = plan.out_dir / "interp" / plan.preset / f"{name}-{alpha_label(alpha)}.safetensors"
        if not path.is_file():
            save_checkpoint(interpolate(psnr, gan, alpha), path, arch=info["arch"], config=info["config"],
                            variant=info["variant"], stage="interp",
                            extra={"alpha": alpha, "psnr": str(psnr), "gan": str(gan)})
        report.models[f"{name}-interp-{alpha_label(alpha)}"] = path


def _evaluate_model(plan: _Plan, report: AblationReport, store, model_name: str, source) -> None:
    """Every dataset under both protocols, with the model opened once."""
    from srbench.evaluation import evaluate
    from srbench.sources import open_source

    options = _evaluate_options(plan.workers)
    metrics = protocol_metrics(plan.suite.settings.metrics, SUITE_PROTOCOLS)
    try:
        opened = open_source(str(source), device=plan.device)
    except _fatal():
        raise
    except SrbenchError as exc:
        report.failures.append(f"{model_name}: {exc}")
        plan.log(f"FAILED {model_name}: {exc}")
        return
    # Only the models the visual comparison shows stay open: a network each would hold every generator in memory.
    plan.opened.update(shown_models({model_name: opened}))
    for dataset in report.datasets:
        for protocol in SUITE_PROTOCOLS:
            try:
                for result in evaluate(opened, [dataset], protocol=protocol, metrics=metrics[protocol],
                                       data_root=report.data_root,
                                       weights_dir=report.weights_dir, skip_unavailable=True, device=plan.device,
                                       store=store, suite=plan.suite.name, name=model_name, **options):
                    report.results.append(result)
                    cached = result.provenance["cached_images"]
                    plan.log(f"evaluated {model_name} on {dataset} ({protocol}): {result.n_images} images"
                             f"{f', {cached} from the store' if cached else ''}")
                    report.failures += [f"{model_name} / {dataset}: {bad['error']}" for bad in result.skipped]
            except _fatal():
                raise
            except SrbenchError as exc:
                report.failures.append(f"{model_name} / {dataset} / {protocol}: {exc}")
                plan.log(f"FAILED {model_name} on {dataset} ({protocol}): {exc}")


def _evaluate_options(workers: int | None) -> dict:
    """``workers`` for :func:`srbench.evaluation.evaluate` when given (and that function takes it)."""
    import inspect

    from srbench.evaluation import evaluate

    if workers is None:
        return {}
    if "workers" not in inspect.signature(evaluate).parameters:
        raise BadInputError("--workers: this srbench's evaluate() takes no workers option")
    return {"workers": workers}


def _each_failing_alone(report: AblationReport, what: str, step: Callable[[], None],
                        log: Callable[[str], None]) -> None:
    """Run ``step``; a failure of its own is recorded and the suite goes on, a fatal one stops the suite."""
    try:
        step()
    except _fatal():
        raise
    except SrbenchError as exc:
        report.failures.append(f"{what}: {exc}")
        log(f"FAILED {what}: {exc}")


def ablate(
    suite_name: str,
    *,
    preset: str | None = None,
    datasets: list[str] | None = None,
    checkpoints: str | None = None,
    store_path: str | None = None,
    out: str | None = None,
    data_root: str | None = None,
    weights_dir: str | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
    training_cache: str | None = None,
    jobs: int | None = None,
    workers: int | None = None,
) -> AblationReport:
    """Run a suite end to end; see the module docstring. Failures of one variant do not stop the others.

    ``training_cache``: the training cache folder (default: srbench.paths.training_cache_dir, beside the store);
    ``jobs``: trainings side by side (default: :func:`default_jobs`); ``workers``: metric workers of each
    evaluation (default: srbench.evaluation's)."""
    from srbench.report import write_suite_report
    from srbench.store import Store

    suite = load_suite(suite_name)
    no_data = not _has_data_root(data_root)
    preset = preset or ("smoke" if no_data else "paper")
    configs = resolve_suite_configs(suite, preset)  # a bad variant fails now, not after the others trained
    datasets = list(datasets or (["skimage"] if no_data else suite.datasets))
    out_dir = Path(out).expanduser() if out else paths.reports_dir() / suite.name
    if jobs is not None and jobs < 1:
        raise BadInputError(f"--jobs {jobs}: allowed: 1 or more")
    where = distributed.ranks()
    if where.active:
        jobs = 1  # one training at a time per torchrun process: the ranks are the trainings side by side
        log = _rank_log(log, where)
    plan = _Plan(suite, preset, out_dir, out_dir / "runs" / preset,
                 Path(checkpoints).expanduser() if checkpoints else None, device, log,
                 cache_dir=paths.training_cache_dir(training_cache, store_path),
                 jobs=jobs or default_jobs(device), workers=workers, where=where)
    _evaluate_options(workers)  # a --workers this evaluate() cannot take fails now, not after the training
    report = AblationReport(suite, preset, datasets, out_dir=out_dir, data_root=data_root, weights_dir=weights_dir,
                            iterations={name: (c.stage("psnr").iters, c.stage("gan").iters)
                                        for name, c in configs.items()},
                            batches={name: (c.data.patch_size, c.data.batch_size) for name, c in configs.items()})
    plan.check_outputs()
    assert plan.cache_dir is not None
    _check_shared(plan.cache_dir, where)
    # Opened (and checked) before any training too; under torchrun rank 0 alone holds it.
    store = Store(store_path) if where.is_main else None
    try:
        log(f"suite {suite.name}: {len(suite.entries)} variants, preset {preset}, datasets {', '.join(datasets)}")
        report.models.update({baseline: baseline for baseline in suite.baselines})
        evaluations = _Evaluations(plan, report, store)
        # Under torchrun every rank evaluates each model in step with the others (collectives): none meanwhile.
        _train_suite(plan, report, configs, None if where.active else evaluations.next)
        evaluations.interpolate()
        while evaluations.next():
            pass
        # In the models' order, whatever order they were evaluated in (trainings end in any order).
        report.results = [r for model_name in report.models for r in evaluations.done.get(model_name, [])]
    finally:
        if store is not None:
            store.close()
    if where.is_main:
        report.visual = lambda: visual_comparison(plan.opened, datasets[0], data_root,
                                                  weights_dir=weights_dir)
        write_suite_report(report)
    return report


class _Evaluations:
    """The suite's models evaluated one at a time, as they become available (while trainings run)."""

    def __init__(self, plan: _Plan, report: AblationReport, store) -> None:
        self.plan, self.report, self.store = plan, report, store
        self.done: dict[str, list] = {}  # model name -> its results
        self.interpolated = False

    def interpolate(self) -> None:
        if self.plan.suite.interp_variant and not self.interpolated:
            self.interpolated = True
            _interpolate_in_turn(self.plan, self.report)

    def next(self) -> bool:
        """Evaluate one model not evaluated yet (False when there is none). The interpolated models are made as soon
        as both stages of their variant are there, so they are evaluated while the other trainings run."""
        variant = self.plan.suite.interp_variant
        if variant and all(f"{variant}-{stage}" in self.report.models for stage in ("psnr", "gan")):
            self.interpolate()
        for model_name, source in list(self.report.models.items()):
            if model_name not in self.done:
                self.report.results, self.done[model_name] = [], []
                try:
                    _evaluate_model(self.plan, self.report, self.store, model_name, source)
                finally:
                    self.done[model_name] = self.report.results
                return True
        return False


def _interpolate_in_turn(plan: _Plan, report: AblationReport) -> None:
    """The interpolated checkpoints, written by rank 0 first; under torchrun a rank of another machine then
    writes its own copy (the files are a pure function of the two checkpoints)."""
    where = plan.where or Ranks()
    for turn in ("main", "others"):
        if (turn == "main") == where.is_main:
            _each_failing_alone(report, "interpolation", lambda: _interpolate(plan, report), plan.log)
        distributed.barrier(where)


def _rank_log(log: Callable[[str], None], where: Ranks) -> Callable[[str], None]:
    """Rank 0 logs the suite; the other ranks only the trainings they run, labelled with their rank."""
    if where.is_main:
        return log
    return lambda msg: log(f"[rank {where.rank}] {msg}") if msg.startswith("training ") else None


def _check_shared(cache_dir: Path, where: Ranks) -> None:
    """Under torchrun, each rank trains its share of the stages into the training cache and every rank reads them
    all: the folder must be one that every rank sees (one machine's disk, or a file system shared by the nodes)."""
    if not where.active:
        return
    import secrets

    from srbench.images import atomic_write_text

    token = secrets.token_hex(8) if where.is_main else None
    probe = cache_dir / f".torchrun-{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}"
    if where.is_main:
        atomic_write_text(probe, str(token))
    token = distributed.broadcast_from_main(token, where)
    seen = probe.read_text() if probe.is_file() else None
    ok = distributed.all_gather(seen == token, where)
    distributed.barrier(where)
    if where.is_main:
        probe.unlink(missing_ok=True)
    if not all(ok):
        raise BadInputError(f"the training cache {cache_dir} is not shared by every torchrun rank (rank(s) "
                            f"{[r for r, good in enumerate(ok) if not good]} do not see rank 0's files): give "
                            "--training-cache a folder on a file system every node mounts")
