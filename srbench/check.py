"""Metric-drift checks: recompute reference numbers and compare them with a committed baseline.

The default set is the bicubic baseline and a fixed small generator (``rrdb23-smoke`` with weights drawn from
numpy's PCG64 stream, which is stable across versions and machines) on the embedded ``skimage`` set and, when
a data root has it, on Set5, under both protocols. A change to a metric implementation that moves a number
beyond its tolerance fails until the baseline is updated on purpose (``srbench check --update``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import srbench
from srbench import paths
from srbench.errors import BadInputError, SrbenchError
from srbench.images import atomic_write_text

DEFAULT_BASELINE = paths.PROJECT_ROOT / "reports" / "baselines" / "default.json"
CHECK_DATASETS = ("skimage", "set5")
SMALL_MODEL = "rrdb23-smoke"


def default_tolerances() -> dict[str, float]:
    """Absolute tolerance of every registered metric, from its descriptor (a baseline file may override).

    Bicubic numbers are float64 numpy and reproduce exactly; the small model runs float32 convolutions whose
    last bits differ between CPU kernels, which can flip a rounded pixel now and then: hence non-zero.
    """
    from srbench.metrics import all_metrics

    return {name: m.tolerance for name, m in all_metrics().items()}


def check_metrics() -> dict[str, list[str]]:
    """Protocol -> the metrics of the reference set (descriptors marked ``drift_check``)."""
    from srbench.protocols import PROTOCOLS

    return {name: [m.name for m in proto.metrics if m.drift_check] for name, proto in PROTOCOLS.items()}


def small_model_checkpoint(folder: Path) -> Path:
    """The fixed small generator, written to ``folder`` (deterministic weights, same file every time)."""
    from srbench.archs import get_generator
    from srbench.checkpoints import save_checkpoint

    path = folder / f"{SMALL_MODEL}-fixed.safetensors"
    if path.is_file():
        return path
    import torch

    variant = get_generator(SMALL_MODEL)
    model = variant.build()
    rng = np.random.default_rng(20181)
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point() and value.ndim > 1:
            fan_in = int(np.prod(value.shape[1:]))
            draw = rng.standard_normal(tuple(value.shape)) * (0.5 / math.sqrt(fan_in))
            state[key] = torch.from_numpy(draw.astype(np.float32))
        elif value.is_floating_point():
            state[key] = torch.zeros_like(value)
        else:
            state[key] = value
    return save_checkpoint(state, path, arch=variant.arch, config={**variant.config, "scale": 4},
                           variant=SMALL_MODEL, stage="fixed-for-drift-checks")


@dataclass
class CheckRow:
    model: str
    dataset: str
    protocol: str
    metric: str
    baseline: float | None
    value: float | None
    tolerance: float

    @property
    def status(self) -> str:
        if self.baseline is None:
            return "new"
        if self.value is None:
            return "missing"
        return "ok" if abs(self.value - self.baseline) <= self.tolerance else "DRIFT"


def compute_reference(data_root: str | None = None, datasets: tuple[str, ...] = CHECK_DATASETS,
                      workdir: Path | None = None) -> tuple[list[dict], list[str]]:
    """The reference numbers now: list of {model, dataset, protocol, metric, value}, and what was unavailable."""
    from srbench.datasets import resolve
    from srbench.evaluate import evaluate
    from srbench.sources import open_source

    workdir = workdir or paths.cache_dir() / "check"
    workdir.mkdir(parents=True, exist_ok=True)
    small = small_model_checkpoint(workdir)
    # Each model is opened once for every dataset and protocol.
    models = {"bicubic": open_source("bicubic"), SMALL_MODEL: open_source(str(small), device="cpu")}
    entries, unavailable = [], []
    for dataset in datasets:
        try:
            resolve(dataset, data_root)
        except SrbenchError as exc:
            unavailable.append(f"{dataset}: {exc}")
            continue
        for model_name, model in models.items():
            for protocol, metrics in check_metrics().items():
                (result,) = evaluate(model, [dataset], protocol=protocol, metrics=metrics, data_root=data_root,
                                     device="cpu")
                if result.skipped:
                    raise SrbenchError(f"drift check: {result.skipped[0]['error']}")
                for metric in metrics:
                    entries.append({"model": model_name, "dataset": dataset, "protocol": protocol, "metric": metric,
                                    "value": result.summary[metric], "n_images": result.n_images})
    return entries, unavailable


def load_baseline(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no baseline; create one with srbench check --update --baseline {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}: corrupt baseline ({exc})") from None


def compare(baseline: dict, entries: list[dict], tolerances: dict[str, float] | None = None) -> list[CheckRow]:
    tol = {**default_tolerances(), **baseline.get("tolerances", {}), **(tolerances or {})}
    now = {(e["model"], e["dataset"], e["protocol"], e["metric"]): e["value"] for e in entries}
    rows = []
    for e in baseline["entries"]:
        key = (e["model"], e["dataset"], e["protocol"], e["metric"])
        rows.append(CheckRow(*key, e["value"], now.pop(key, None), tol[e["metric"]]))
    rows += [CheckRow(*key, None, value, tol[key[3]]) for key, value in now.items()]
    return rows


def write_baseline(path: str | os.PathLike, entries: list[dict], tolerances: dict[str, float] | None = None) -> Path:
    path = Path(path)
    data = {
        "srbench_version": srbench.__version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tolerances": {**default_tolerances(), **(tolerances or {})}, "entries": entries,
    }
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def format_rows(rows: list[CheckRow], only_changes: bool = False) -> str:
    lines = [f"{'status':7s} {'model':14s} {'dataset':8s} {'protocol':8s} {'metric':7s} {'baseline':>12s} "
             f"{'now':>12s} {'diff':>10s} {'tol':>8s}"]
    for r in rows:
        if only_changes and r.status == "ok":
            continue
        base = "-" if r.baseline is None else f"{r.baseline:.6f}"
        now = "-" if r.value is None else f"{r.value:.6f}"
        diff = "-" if r.baseline is None or r.value is None else f"{r.value - r.baseline:+.2e}"
        lines.append(f"{r.status:7s} {r.model:14s} {r.dataset:8s} {r.protocol:8s} {r.metric:7s} {base:>12s} "
                     f"{now:>12s} {diff:>10s} {r.tolerance:8.0e}")
    return "\n".join(lines)
