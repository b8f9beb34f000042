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
PROTOCOLS = ("sr", "pirm")


def shipped_suites() -> dict[str, str]:
    """name -> file of every suite shipped in the package's ``suites/`` folder (a new suite is one new file)."""
    files = [entry.name for entry in resources.files("srbench.suites").iterdir() if entry.name.endswith(".toml")]
    return {name[: -len(".toml")]: name for name in sorted(files, key=lambda n: n[: -len(".toml")])}


@dataclass(frozen=True)
class SuiteVariant:
    name: str
    label: str
    training: Any  # a training-variant name or an inline table (see srbench.config)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    datasets: tuple[str, ...]
    baselines: tuple[str, ...]
    variants: tuple[SuiteVariant, ...]
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


def _parse_variants(data: dict, origin: str) -> tuple[SuiteVariant, ...]:
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
        variants.append(SuiteVariant(vname, _text(v, "label", where, vname), training))
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
        variants=variants, interp_variant=interp_variant, alphas=alphas,
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
    for variant in suite.variants:
        try:
            configs[variant.name] = resolve_config(variant.training, preset, overrides={"name": variant.name})
        except BadInputError as exc:
            raise BadInputError(f"suite {suite.name}: variant {variant.name}: {exc}") from None
    return configs


# ---------------------------------------------------------------------------------------------------------


@dataclass
class AblationReport:
    suite: Suite
    preset: str
    datasets: list[str]
    results: list = field(default_factory=list)  # EvalResult
    models: dict[str, str] = field(default_factory=dict)  # model name -> checkpoint or "bicubic"
    failures: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    data_root: str | None = None
    weights_dir: str | None = None


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

    def existing(self, variant: str, stage: str) -> Path | None:
        return _find_checkpoint(self.ckpt_dir, variant, stage) or _find_checkpoint(self.runs_dir, variant, stage)

    def check_outputs(self) -> None:
        """Every output location is checked before the first training step: a read-only --out found after
        hours of training would waste them."""
        from srbench.images import ensure_writable_dir

        ensure_writable_dir(self.out_dir)
        if any(self.existing(v.name, stage) is None for v in self.suite.variants for stage in ("psnr", "gan")):
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
        report.models[f"{name}-{stage}"] = found


def _interpolate(plan: _Plan, report: AblationReport) -> None:
    from srbench.checkpoints import alpha_label, interpolate, load_generator, save_checkpoint

    name = plan.suite.interp_variant
    psnr, gan = report.models.get(f"{name}-psnr"), report.models.get(f"{name}-gan")
    if not (psnr and gan):
        return
    info = load_generator(gan).srbench_info
    for alpha in plan.suite.alphas:
        path = plan.out_dir / "interp" / plan.preset / f"{name}-{alpha_label(alpha)}.safetensors"
        if not path.is_file():
            save_checkpoint(interpolate(psnr, gan, alpha), path, arch=info["arch"], config=info["config"],
                            variant=info["variant"], stage="interp",
                            extra={"alpha": alpha, "psnr": str(psnr), "gan": str(gan)})
        report.models[f"{name}-interp-{alpha_label(alpha)}"] = path


def _evaluate_model(plan: _Plan, report: AblationReport, store, model_name: str, source) -> None:
    from srbench.evaluate import evaluate

    for dataset in report.datasets:
        for protocol in PROTOCOLS:
            try:
                for result in evaluate(str(source), [dataset], protocol=protocol, data_root=report.data_root,
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
        log(f"suite {suite.name}: {len(suite.variants)} variants, preset {preset}, datasets {', '.join(datasets)}")
        report.models.update({baseline: baseline for baseline in suite.baselines})
        for variant in suite.variants:
            _each_failing_alone(report, variant.name,
                                lambda v=variant: _train_variant(plan, report, v.name, configs[v.name]), log)
        if suite.interp_variant:
            _each_failing_alone(report, "interpolation", lambda: _interpolate(plan, report), log)
        for model_name, source in report.models.items():
            _evaluate_model(plan, report, store, model_name, source)
    finally:
        store.close()
    write_suite_report(report)
    return report
