"""Suites and ``srbench ablate``: train or load every variant of a suite, evaluate all models on every
dataset under both protocols, and write the report.

Nothing finished is ever lost or redone: training resumes from its last checkpoint, evaluation values are
cached per image in the results store, and a re-run of a finished suite only reads the store.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from srbench import paths
from srbench.config import shown
from srbench.errors import BadInputError, SrbenchError

SUITE_KEYS = {"name", "description", "datasets", "baselines", "variants", "interpolation"}
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
    training: Any  # a training recipe (srbench.config.RECIPES), a generator name, a TOML file or an inline table


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    datasets: tuple[str, ...]
    baselines: tuple[str, ...]
    entries: tuple[SuiteEntry, ...]  # the [[variants]] tables of the suite file
    interp_variant: str | None = None
    alphas: tuple[float, ...] = ()


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
    from srbench.config import SAFE_NAME, SAFE_NAME_TEXT

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
        entries=variants, interp_variant=interp_variant, alphas=alphas,
    )


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (``srbench suites list``) or a suite TOML file."""
    from srbench.config import read_toml, user_path

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
    from srbench.config import resolve_config

    configs = {}
    for variant in suite.entries:
        try:
            configs[variant.name] = resolve_config(variant.training, preset, overrides={"name": variant.name})
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

    try:
        nrqm_model_path(weights_dir)
        nr_label, use_pi = "PI", True
    except SrbenchError:
        nr_label, use_pi = "NIQE (PI unavailable: no Ma weights)", False
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
            candidates.append((name, source.predict(pair, item, scale)[window]))
        except SrbenchError:  # listed in the failures already
            continue
    return tuple(Crop(name, crop, *_crop_numbers(crop, hr_crop, scale, use_pi, weights_dir))
                 for name, crop in candidates)


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

    def existing(self, variant: str, stage: str) -> Path | None:
        return _find_checkpoint(self.ckpt_dir, variant, stage) or _find_checkpoint(self.runs_dir, variant, stage)

    def check_outputs(self) -> None:
        """Every output location is checked before the first training step: a read-only --out found after
        hours of training would waste them."""
        from srbench.images import ensure_writable_dir

        ensure_writable_dir(self.out_dir)
        if any(self.existing(v.name, stage) is None for v in self.suite.entries for stage in ("psnr", "gan")):
            ensure_writable_dir(self.runs_dir)
        if self.suite.interp_variant:
            ensure_writable_dir(self.out_dir / "interp" / self.preset)


def _train_variant(plan: _Plan, report: AblationReport, name: str, config) -> None:
    """Both stages of one variant: an existing checkpoint, else training (resumed where a state exists)."""
    from srbench.train import Trainer

    for stage in ("psnr", "gan"):
        found = plan.existing(name, stage)
        if found is None:
            resume = (plan.runs_dir / name / stage / "state.pt").is_file()
            plan.log(f"training {name} / {stage} ({plan.preset}{', resuming' if resume else ''})")
            init = str(report.models[f"{name}-psnr"]) if stage == "gan" else None
            trainer = Trainer(config, stage, plan.runs_dir / name, init=init, device=plan.device, progress=True)
            found = trainer.run(resume=resume).final
        # srbench.train types final Optional; a run that returns has written it (an interrupted one raises).
        report.models[f"{name}-{stage}"] = found  # type: ignore[assignment]


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
    from srbench.evaluate import evaluate
    from srbench.sources import open_source

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
                for result in evaluate(opened, [dataset], protocol=protocol, data_root=report.data_root,
                                       weights_dir=report.weights_dir, skip_unavailable=True, device=plan.device,
                                       store=store, suite=plan.suite.name, name=model_name):
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
) -> AblationReport:
    """Run a suite end to end; see the module docstring. Failures of one variant do not stop the others."""
    from srbench.report import write_suite_report
    from srbench.store import Store

    suite = load_suite(suite_name)
    no_data = not _has_data_root(data_root)
    preset = preset or ("smoke" if no_data else "paper")
    configs = resolve_suite_configs(suite, preset)  # a bad variant fails now, not after the others trained
    datasets = list(datasets or (["skimage"] if no_data else suite.datasets))
    out_dir = Path(out).expanduser() if out else paths.reports_dir() / suite.name
    plan = _Plan(suite, preset, out_dir, out_dir / "runs" / preset,
                 Path(checkpoints).expanduser() if checkpoints else None, device, log)
    report = AblationReport(suite, preset, datasets, out_dir=out_dir, data_root=data_root, weights_dir=weights_dir)
    plan.check_outputs()
    store = Store(store_path)  # opened (and checked) before any training too
    try:
        log(f"suite {suite.name}: {len(suite.entries)} variants, preset {preset}, datasets {', '.join(datasets)}")
        report.models.update({baseline: baseline for baseline in suite.baselines})
        for variant in suite.entries:
            def train_one(v: SuiteEntry = variant) -> None:  # bound now: the loop moves on
                _train_variant(plan, report, v.name, configs[v.name])

            _each_failing_alone(report, variant.name, train_one, log)
        if suite.interp_variant:
            _each_failing_alone(report, "interpolation", lambda: _interpolate(plan, report), log)
        for model_name, source in report.models.items():
            _evaluate_model(plan, report, store, model_name, source)
    finally:
        store.close()
    report.visual = lambda: visual_comparison(plan.opened, datasets[0], data_root,
                                              weights_dir=weights_dir)
    write_suite_report(report)
    return report
