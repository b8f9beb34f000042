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
from srbench.errors import BadInputError, SrbenchError

SUITE_KEYS = {"name", "description", "datasets", "baselines", "variants", "interpolation"}
VARIANT_KEYS = {"name", "label", "training"}
INTERP_KEYS = {"variant", "alphas"}
PROTOCOLS = ("sr", "pirm")
SUITE_FILES = {"esrgan": "esrgan.toml", "esrgan-grid": "esrgan-grid.toml"}


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
    unknown = sorted(set(table) - known)
    if unknown:
        raise BadInputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def parse_suite(data: dict, origin: str) -> Suite:
    _reject_unknown(data, SUITE_KEYS, origin)
    variants = []
    for i, v in enumerate(data.get("variants", [])):
        _reject_unknown(v, VARIANT_KEYS, f"{origin}: variants[{i}]")
        if "name" not in v or "training" not in v:
            raise BadInputError(f"{origin}: variants[{i}] needs a name and a training entry")
        variants.append(SuiteVariant(v["name"], v.get("label", v["name"]), v["training"]))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise BadInputError(f"{origin}: variant names repeat")
    interp = data.get("interpolation", {})
    _reject_unknown(interp, INTERP_KEYS, f"{origin}: interpolation")
    if interp and interp.get("variant") not in names:
        raise BadInputError(f"{origin}: interpolation.variant {interp.get('variant')!r} is not a variant of the suite")
    unknown_baselines = [b for b in data.get("baselines", []) if b != "bicubic"]
    if unknown_baselines:
        raise BadInputError(f"{origin}: unknown baseline(s) {unknown_baselines}; known: bicubic")
    return Suite(
        name=data.get("name", Path(origin).stem), description=data.get("description", ""),
        datasets=tuple(data.get("datasets", ["skimage"])), baselines=tuple(data.get("baselines", [])),
        variants=tuple(variants), interp_variant=interp.get("variant"),
        alphas=tuple(float(a) for a in interp.get("alphas", [])),
    )


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (``srbench suites list``) or a suite TOML file."""
    if name_or_path in SUITE_FILES:
        text = resources.files("srbench.suites").joinpath(SUITE_FILES[name_or_path]).read_text(encoding="utf-8")
        origin = f"suite {name_or_path!r}"
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise BadInputError(f"unknown suite {name_or_path!r}; shipped: {', '.join(SUITE_FILES)} (or a .toml path)")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    try:
        return parse_suite(tomllib.loads(text), origin)
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{origin}: invalid TOML ({exc})") from None


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
    from srbench.checkpoints import alpha_label, interpolate, load_generator, save_checkpoint
    from srbench.config import resolve_config
    from srbench.evaluate import evaluate
    from srbench.store import Store
    from srbench.train import Trainer, TrainingInterrupted

    suite = load_suite(suite_name)
    no_data = not _has_data_root(data_root)
    preset = preset or ("smoke" if no_data else "paper")
    datasets = list(datasets or (["skimage"] if no_data else suite.datasets))
    out_dir = Path(out).expanduser() if out else paths.PROJECT_ROOT / "reports" / suite.name
    runs_dir = out_dir / "runs" / preset
    ckpt_dir = Path(checkpoints).expanduser() if checkpoints else None
    report = AblationReport(suite, preset, datasets, out_dir=out_dir, data_root=data_root, weights_dir=weights_dir)
    log(f"suite {suite.name}: {len(suite.variants)} variants, preset {preset}, datasets {', '.join(datasets)}")

    for baseline in suite.baselines:
        report.models[baseline] = baseline
    for variant in suite.variants:
        try:
            config = resolve_config(variant.training, preset, overrides={"name": variant.name})
            for stage in ("psnr", "gan"):
                found = _find_checkpoint(ckpt_dir, variant.name, stage) or _find_checkpoint(runs_dir, variant.name,
                                                                                             stage)
                if found is None:
                    resume = (runs_dir / variant.name / stage / "state.pt").is_file()
                    log(f"training {variant.name} / {stage} ({preset}{', resuming' if resume else ''})")
                    init = str(report.models[f"{variant.name}-psnr"]) if stage == "gan" else None
                    trainer = Trainer(config, stage, runs_dir / variant.name, init=init, device=device,
                                      progress=True)
                    found = trainer.run(resume=resume).final
                report.models[f"{variant.name}-{stage}"] = found
        except TrainingInterrupted:
            raise
        except SrbenchError as exc:
            report.failures.append(f"{variant.name}: {exc}")
            log(f"FAILED {variant.name}: {exc}")
    if suite.interp_variant:
        psnr = report.models.get(f"{suite.interp_variant}-psnr")
        gan = report.models.get(f"{suite.interp_variant}-gan")
        if psnr and gan:
            try:
                info = load_generator(gan).srbench_info
                for alpha in suite.alphas:
                    path = out_dir / "interp" / preset / f"{suite.interp_variant}-{alpha_label(alpha)}.safetensors"
                    if not path.is_file():
                        save_checkpoint(interpolate(psnr, gan, alpha), path, arch=info["arch"], config=info["config"],
                                        variant=info["variant"], stage="interp",
                                        extra={"alpha": alpha, "psnr": str(psnr), "gan": str(gan)})
                    report.models[f"{suite.interp_variant}-interp-{alpha_label(alpha)}"] = path
            except SrbenchError as exc:
                report.failures.append(f"interpolation: {exc}")

    with Store(store_path) as store:
        for model_name, source in report.models.items():
            for dataset in datasets:
                for protocol in PROTOCOLS:
                    try:
                        for result in evaluate(str(source), [dataset], protocol=protocol, data_root=data_root,
                                               weights_dir=weights_dir, skip_unavailable=True, device=device,
                                               store=store, suite=suite.name):
                            result.model = model_name
                            store.label(suite.name, model_name, result.provenance["model_key"], result.dataset,
                                        result.provenance["dataset_sha256"])
                            report.results.append(result)
                            cached = result.provenance["cached_images"]
                            log(f"evaluated {model_name} on {dataset} ({protocol}): {result.n_images} images"
                                f"{f', {cached} from the store' if cached else ''}")
                            for bad in result.skipped:
                                report.failures.append(f"{model_name} / {dataset}: {bad['error']}")
                    except SrbenchError as exc:
                        report.failures.append(f"{model_name} / {dataset} / {protocol}: {exc}")
                        log(f"FAILED {model_name} on {dataset} ({protocol}): {exc}")
    from srbench.report import write_suite_report

    write_suite_report(report)
    return report
