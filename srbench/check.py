"""Metric-drift checks: recompute numbers and compare them with a committed baseline.

What is checked is a *check spec* (TOML, :func:`load_spec`): models (checkpoints in any supported layout, variant
or published names, folders of SR images, ``bicubic``) on datasets (names or folders) under protocols, with
per-metric tolerances. Without a spec, srbench's own reference set is checked (:func:`default_spec`): bicubic
and a fixed small generator (``rrdb23-smoke`` with weights drawn from numpy's PCG64 stream, stable across
versions and machines) on the embedded ``skimage`` set and, when a data root has it, Set5, under both protocols.
Both go through the same code.

The baseline keeps, for every (model, dataset, protocol, metric), the value, the number of images, each image's
value, and the fingerprints that produced it: the model's (checkpoint sha256, SR folder contents, bicubic's
implementation), the dataset's, the metric's implementation version, the device and the package versions. A
moved number is reported with what changed among those, so "the dataset copy changed" is told apart from "the
metric changed" and from "the model changed", and with the images that moved most. A changed fingerprint under
an unchanged value is a note, not a failure.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from srbench import paths
from srbench.errors import BadInputError, SrbenchError
from srbench.images import atomic_write_text
from srbench.jsonnum import dumps as json_dumps
from srbench.jsonnum import json_number, read_number
from srbench.text import read_toml, shown
from srbench.version import __version__

# Package data: ``srbench check`` reads it installed too (``--update`` writes it only in a checkout).
DEFAULT_BASELINE = paths.PACKAGE_DATA / "baselines" / "default.json"
CHECK_DATASETS = ("skimage", "set5")
SMALL_MODEL = "rrdb23-smoke"
BASELINE_FORMAT = "srbench-drift-baseline"
BASELINE_FORMAT_VERSION = 2  # 1: values and n_images only (still read: its fingerprints are unknown)
# Packages once fingerprinted, in baselines written then: not compared any more.
_FORMER_PACKAGES = ("pyiqa",)
MOVERS = 5  # images named per moved value
EXIT_OK, EXIT_DRIFT, EXIT_NOT_RUN = 0, 1, 2
REFERENCE_SET = "srbench's reference set"
SPEC_DEVICES = ("cpu", "cuda", "auto")  # where a spec's generators run (srbench.infer.select_device)


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


# ---------------------------------------------------------------------------------------------------------
# The check spec


@dataclass(frozen=True)
class CheckEntry:
    """One ``[[entries]]`` table: a model on datasets under protocols."""

    model: str  # a checkpoint file, variant or published name, a folder of SR images, or "bicubic"
    datasets: tuple[str, ...]  # names or folders
    protocols: tuple[str, ...] = ("sr", "pirm")
    metrics: tuple[str, ...] | None = None  # None: each protocol's own default set
    name: str | None = None  # the label in the baseline and reports (default: model as written in the spec)
    optional: bool = False  # an entry that cannot run (weights or data absent) is a note, not a failure
    scale: int = 4
    # The datasets as the spec writes them: the baseline's keys, the same in every checkout.
    dataset_labels: tuple[str, ...] = ()

    def labelled_datasets(self) -> list[tuple[str, str]]:
        """(dataset to open, its label) pairs."""
        return list(zip(self.datasets, self.dataset_labels or self.datasets, strict=True))

    @property
    def label(self) -> str:
        return self.name or self.model

    def metrics_for(self, protocol: str) -> list[str]:
        """The entry's metrics that ``protocol`` computes (all its own default set when the entry names none)."""
        from srbench.metrics import get_metric
        from srbench.protocols import get_protocol

        if self.metrics is None:
            return list(get_protocol(protocol).default_metrics)
        return [m for m in self.metrics if get_metric(m).in_protocol(protocol)]


@dataclass(frozen=True)
class CheckSpec:
    baseline: Path
    entries: tuple[CheckEntry, ...]
    tolerances: Mapping[str, float] = field(default_factory=dict)
    data_root: str | None = None
    device: str = "cpu"  # where generators run: the CPU by default, whose numbers are the reproducible ones
    origin: str = REFERENCE_SET  # the spec file, for messages (REFERENCE_SET: the built-in one)


_SPEC_KEYS = {"baseline", "entries", "tolerances", "data_root", "device"}
_ENTRY_KEYS = {"model", "datasets", "protocols", "metrics", "name", "optional", "scale"}


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix != ""


def _relative(text: str, folder: Path, is_name: Callable[[str], bool] = lambda text: False) -> str:
    """A path written in the spec, relative to the spec's folder, whether or not it is there (never the working
    directory's); names (``bicubic``, variants, ``set5``: ``is_name``) stay names: a folder of that name is written
    as a path (``./Set5``), as on the command line."""
    if is_name(text) and not _looks_like_path(text):
        return text
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else folder / path)


def _is_model_name(text: str) -> bool:
    """Exactly as srbench.sources.open_source reads a model name (not a folder)."""
    from srbench.archs import GENERATORS
    from srbench.downloads import checkpoint_download

    return text == "bicubic" or text in GENERATORS or checkpoint_download(text) is not None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadInputError(f"{where}: expected a non-empty list of strings, got {shown(value)}")
    return tuple(value)


def load_spec(path: str | os.PathLike) -> CheckSpec:
    """A check spec from TOML: every key validated, unknown keys refused, relative paths taken from the spec's
    folder. One BadInputError naming the file and the key on any problem."""
    path = Path(path).expanduser()
    table = read_toml(path, "check spec")
    folder = path.resolve().parent
    where = str(path)
    unknown = sorted(set(table) - _SPEC_KEYS)
    if unknown:
        raise BadInputError(f"{where}: unknown key {unknown[0]!r}; a check spec has {', '.join(sorted(_SPEC_KEYS))}")
    if not isinstance(table.get("baseline"), str) or not table["baseline"]:
        raise BadInputError(f"{where}: 'baseline' (the baseline JSON's path) is required, as a string")
    raw_entries = table.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries or not all(isinstance(e, dict) for e in raw_entries):
        raise BadInputError(f"{where}: at least one [[entries]] table is required")
    entries = [_load_entry(raw, folder, f"{where}: entries[{i}]") for i, raw in enumerate(raw_entries)]
    labels = [(e.label, label) for e in entries for _, label in e.labelled_datasets()]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise BadInputError(f"{where}: model {twice[0][0]!r} on dataset {twice[0][1]!r} appears twice; give one "
                            "of the entries another name")
    data_root = _optional_string(table, "data_root", where, "a folder")
    device = _optional_string(table, "device", where, "'cpu' or 'cuda'") or "cpu"
    if device not in SPEC_DEVICES:
        raise BadInputError(f"{where}: device: unknown device {device!r}; use {', '.join(SPEC_DEVICES)}")
    # data_root is always a folder, never a name: relative to the spec even when it does not exist (yet).
    return CheckSpec(baseline=Path(_relative(table["baseline"], folder)), entries=tuple(entries),
                     tolerances=_load_tolerances(table.get("tolerances", {}), where), device=device, origin=where,
                     data_root=None if data_root is None else str(folder / Path(data_root).expanduser()))


def _optional_string(table: Mapping[str, Any], key: str, where: str, words: str) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise BadInputError(f"{where}: {key}: expected {words}, got {shown(value)}")
    return value


def _load_tolerances(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise BadInputError(f"{where}: [tolerances] must be a table of metric = number")
    return {metric: tolerance_value(metric, value, f"{where}: tolerances.{metric}") for metric, value in raw.items()}


def tolerance_value(metric: str, value: Any, where: str, *, known: bool = True) -> float:
    """A tolerance: a finite number >= 0 (a negative or NaN one would fail every value, an infinite one none),
    of a known metric unless ``known`` is false, else a BadInputError naming ``where``."""
    from srbench.metrics import get_metric

    try:
        if known:
            get_metric(metric)
    except BadInputError as exc:
        raise BadInputError(f"{where}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise BadInputError(f"{where}: expected a finite number >= 0, got {shown(value)}")
    return float(value)


def parse_tolerances(items: Sequence[str]) -> dict[str, float]:
    """``--tolerance metric=number`` options, each validated as a spec's tolerances are."""
    out = {}
    for item in items:
        name, sep, number = item.partition("=")
        try:
            value = float(number) if sep else None
        except ValueError:
            value = None
        if value is None:
            raise BadInputError(f"--tolerance expects metric=number, got {item!r}")
        out[name.strip()] = tolerance_value(name.strip(), value, f"--tolerance {item}")
    return out


def _check_names(protocols: Sequence[str], metrics: Sequence[str] | None, at: str) -> None:
    """Known protocols, and metrics each of some of them; errors name the spec's file and key."""
    from srbench.metrics import get_metric
    from srbench.protocols import get_protocol

    try:
        for p in protocols:
            get_protocol(p)
    except BadInputError as exc:
        raise BadInputError(f"{at}.protocols: {exc}") from None
    for m in metrics or ():
        try:
            spec = get_metric(m)
        except BadInputError as exc:
            raise BadInputError(f"{at}.metrics: {exc}") from None
        if not any(spec.in_protocol(p) for p in protocols):
            raise BadInputError(f"{at}.metrics: {m!r} belongs to none of the protocols {', '.join(protocols)}")


def _load_entry(raw: dict, folder: Path, at: str) -> CheckEntry:
    from srbench.datasets import is_known_name

    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise BadInputError(f"{at}: unknown key {unknown[0]!r}; an entry has {', '.join(sorted(_ENTRY_KEYS))}")
    if not isinstance(raw.get("model"), str) or not raw["model"]:
        raise BadInputError(f"{at}: 'model' is required (a checkpoint, SR folder, variant name or 'bicubic')")
    if "datasets" not in raw:
        raise BadInputError(f"{at}: 'datasets' is required (names or folders)")
    protocols = _strings(raw.get("protocols", ["sr", "pirm"]), f"{at}.protocols")
    metrics = _strings(raw["metrics"], f"{at}.metrics") if "metrics" in raw else None
    _check_names(protocols, metrics, at)
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise BadInputError(f"{at}.optional: expected true or false, got {shown(optional)}")
    scale = raw.get("scale", 4)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise BadInputError(f"{at}.scale: expected a positive integer, got {shown(scale)}")
    datasets = _strings(raw["datasets"], f"{at}.datasets")
    return CheckEntry(model=_relative(raw["model"], folder, _is_model_name),
                      name=_optional_string(raw, "name", at, "a string") or raw["model"],
                      datasets=tuple(_relative(d, folder, is_known_name) for d in datasets),
                      dataset_labels=datasets,
                      protocols=protocols, metrics=metrics, optional=optional, scale=scale)


def default_spec(data_root: str | None = None, datasets: Sequence[str] = CHECK_DATASETS,
                 workdir: Path | None = None) -> CheckSpec:
    """srbench's own reference set as a spec: Set5 (and any set but the embedded one) is optional."""
    workdir = workdir or paths.cache_dir() / "check"
    workdir.mkdir(parents=True, exist_ok=True)
    small = small_model_checkpoint(workdir)
    metrics = tuple(dict.fromkeys(m for names in check_metrics().values() for m in names))
    protocols = tuple(p for p, names in check_metrics().items() if names)
    entries = tuple(CheckEntry(model=model, name=label, datasets=(dataset,), protocols=protocols, metrics=metrics,
                               optional=dataset != "skimage")
                    for dataset in datasets for model, label in (("bicubic", "bicubic"), (str(small), SMALL_MODEL)))
    return CheckSpec(baseline=DEFAULT_BASELINE, entries=entries, data_root=data_root)


# ---------------------------------------------------------------------------------------------------------
# Computing


@dataclass
class NotRun:
    """An entry (or one of its datasets) that could not be computed, and why."""

    model: str
    dataset: str
    reason: str
    optional: bool

    def __str__(self) -> str:
        return f"{self.model} on {self.dataset}: {self.reason}"


@dataclass
class Computed:
    entries: list[dict]  # {model, dataset, protocol, metric, value, n_images, per_image, fingerprints, cached}
    not_run: list[NotRun]


def run_spec(spec: CheckSpec, *, store=None, log: Callable[[str], None] | None = None) -> Computed:
    """Every entry of ``spec`` now. With a results ``store``, values already computed for the same model,
    dataset, protocol and metric versions under the same srbench, numpy, scipy and torch are read from it, not
    computed again: a value made under other versions is what a drift check compares, never what it reuses."""
    from srbench.datasets import resolve
    from srbench.errors import OutputError, StoreError
    from srbench.options import EvalOptions
    from srbench.provenance import environment
    from srbench.sources import open_source
    from srbench.workers import WorkerCrashedError

    # Errors of the machine, not of an entry: the check could not run, whether or not the entry was optional
    # (optional says its weights or data may be absent, not that a read-only store or a killed worker is fine).
    fatal = (StoreError, OutputError, WorkerCrashedError)
    out = Computed([], [])
    env = environment()
    for entry in spec.entries:
        try:
            source = open_source(entry.model, device=spec.device)
        except fatal:
            raise
        except SrbenchError as exc:
            out.not_run += [NotRun(entry.label, label, str(exc), entry.optional)
                            for _, label in entry.labelled_datasets()]
            continue
        for dataset, label in entry.labelled_datasets():
            try:
                resolve(dataset, spec.data_root)
                options = EvalOptions.build(scale=entry.scale, data_root=spec.data_root, device=spec.device,
                                            same_environment=True)
                rows = _evaluate_entry(source, entry, dataset, label, options, store, env)
            except fatal:
                raise
            except SrbenchError as exc:
                out.not_run.append(NotRun(entry.label, label, str(exc), entry.optional))
                continue
            out.entries += rows
            if log:
                log(f"{entry.label} on {label}: {len(rows)} values")
    return out


def _evaluate_entry(source, entry: CheckEntry, dataset: str, label: str, options, store, env) -> list[dict]:
    from srbench.evaluation import evaluate_model

    rows = []
    for protocol in entry.protocols:
        metrics = entry.metrics_for(protocol)
        if not metrics:
            continue
        (result,) = evaluate_model(source, [dataset], options.under(protocol, metrics), store=store)
        if result.skipped:
            first = result.skipped[0]
            raise SrbenchError(f"{len(result.skipped)} image(s) could not be evaluated, e.g. {first['image']}: "
                               f"{first['error']}")
        device = result.provenance["model"].get("device", "cpu")
        for metric in metrics:
            value = result.summary.get(metric)
            rows.append({
                "model": entry.label, "dataset": label, "protocol": protocol, "metric": metric,
                "value": _defined(value), "n_images": result.n_images,
                "per_image": {r["image"]: _defined(r[metric]) for r in result.per_image if metric in r},
                # What the spec asked for is part of what produced the value: a changed scale, protocol or
                # metric list is named, not taken for nondeterminism.
                "fingerprints": {"model": result.provenance["model_key"],
                                 "dataset": result.provenance["dataset_sha256"],
                                 "metric": result.provenance["metric_versions"][metric], "device": device,
                                 "scale": str(entry.scale), "protocol": protocol, "metrics": ",".join(metrics),
                                 **env},
                "cached": result.provenance["cached_images"] == result.n_images,
            })
    return rows


def _defined(value: float | None) -> float | None:
    """A value as the baseline compares it: None where it is undefined (NaN), infinity kept."""
    return None if value is None or math.isnan(value) else float(value)


def compute_reference(data_root: str | None = None, datasets: tuple[str, ...] = CHECK_DATASETS,
                      workdir: Path | None = None) -> tuple[list[dict], list[str]]:
    """srbench's reference numbers now (:func:`default_spec` through :func:`run_spec`): the entries, and what
    could not be computed."""
    computed = run_spec(default_spec(data_root, datasets, workdir))
    return computed.entries, [f"{n.dataset}: {n.reason}" for n in computed.not_run]


# ---------------------------------------------------------------------------------------------------------
# Baselines


def load_baseline(path: str | os.PathLike) -> dict:
    """A baseline file, its whole structure validated here, once: any problem is one BadInputError, "corrupt
    baseline: <file>: <key>: <problem>". Numbers come back as floats, "inf"/"-inf" as infinities, null (an
    undefined value) as None."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no baseline; create one with srbench check --update (it is written there)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except OSError as exc:
        raise BadInputError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadInputError(f"corrupt baseline: {path}: (file): not JSON ({exc})") from None
    return _valid_baseline(data, f"corrupt baseline: {path}")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON; srbench writes infinity as \"inf\" and an undefined value as null")


def _valid_baseline(data: Any, where: str) -> dict:
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: (top level): expected an object, got {type(data).__name__}")
    if data.get("format", BASELINE_FORMAT) != BASELINE_FORMAT:
        raise BadInputError(f"{where}: format: expected {BASELINE_FORMAT!r}, got {shown(data['format'])}")
    version = data.get("format_version", 1)
    if isinstance(version, bool) or version not in range(1, BASELINE_FORMAT_VERSION + 1):
        raise BadInputError(f"{where}: format_version: unknown version {shown(version)} (this srbench reads "
                            f"1 to {BASELINE_FORMAT_VERSION})")
    tolerances = data.get("tolerances", {})
    if not isinstance(tolerances, dict):
        raise BadInputError(f"{where}: tolerances: expected an object of metric: number, got {shown(tolerances)}")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise BadInputError(f"{where}: entries: expected a list, got {shown(entries)}")
    if not entries:
        raise BadInputError(f"{where}: entries: empty, so there is nothing to check; write the baseline with "
                            "srbench check --update")
    valid = [_valid_entry(e, f"{where}: entries[{i}]") for i, e in enumerate(entries)]
    keys = [(e["model"], e["dataset"], e["protocol"], e["metric"]) for e in valid]
    if len(set(keys)) < len(keys):
        i = next(i for i, k in enumerate(keys) if k in keys[:i])
        raise BadInputError(f"{where}: entries[{i}]: {' / '.join(keys[i])} appears twice")
    return {**data, "entries": valid,
            # A baseline lists every metric registered where it was written (plugins too): names are not checked.
            "tolerances": {m: tolerance_value(m, v, f"{where}: tolerances.{m}", known=False)
                           for m, v in tolerances.items()}}


_ENTRY_STRINGS = ("model", "dataset", "protocol", "metric")


def _valid_entry(entry: Any, at: str) -> dict:
    if not isinstance(entry, dict):
        raise BadInputError(f"{at}: expected an object, got {shown(entry)}")
    for key in _ENTRY_STRINGS:
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise BadInputError(f"{at}.{key}: expected a non-empty string, got {shown(entry.get(key))}")
    if "value" not in entry:
        raise BadInputError(f"{at}.value: missing")
    out = {**entry, "value": _number(entry["value"], f"{at}.value")}
    n = entry.get("n_images")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise BadInputError(f"{at}.n_images: expected a whole number >= 0, got {shown(n)}")
    if entry.get("per_image") is not None:
        per_image = entry["per_image"]
        if not isinstance(per_image, dict):
            raise BadInputError(f"{at}.per_image: expected an object of image: value, got {shown(per_image)}")
        out["per_image"] = {image: _number(v, f"{at}.per_image.{image}") for image, v in per_image.items()}
    fingerprints = entry.get("fingerprints")
    if fingerprints is not None and (not isinstance(fingerprints, dict)
                                     or not all(isinstance(v, str) for v in fingerprints.values())):
        raise BadInputError(f"{at}.fingerprints: expected an object of name: string, got {shown(fingerprints)}")
    return out


def _number(value: Any, at: str) -> float | None:
    """A value as JSON holds it (:func:`srbench.jsonnum.read_number`); undefined (null) is None here."""
    try:
        number = read_number(value)
    except ValueError:
        raise BadInputError(f"{at}: expected a number, \"inf\", \"-inf\" or null, got {shown(value)}") from None
    return None if math.isnan(number) else number


def write_baseline(path: str | os.PathLike, entries: list[dict], tolerances: Mapping[str, float] | None = None,
                   spec: str | None = None) -> Path:
    path = Path(path)
    keep = ("model", "dataset", "protocol", "metric", "value", "n_images", "fingerprints", "per_image")
    data = {
        "format": BASELINE_FORMAT, "format_version": BASELINE_FORMAT_VERSION,
        "srbench_version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "spec": spec, "tolerances": {**default_tolerances(), **(tolerances or {})},
        "entries": [{k: e[k] for k in keep if k in e} for e in entries],
    }
    atomic_write_text(path, json_dumps(data, indent=1) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------
# Comparing


@dataclass
class CheckRow:
    model: str
    dataset: str
    protocol: str
    metric: str
    baseline: float | None
    value: float | None
    tolerance: float
    status: str = "ok"  # ok, DRIFT, missing (failure), not-run (optional: a note), new (not in the baseline)
    changed: list[str] = field(default_factory=list)  # the fingerprints that differ from the baseline's
    movers: list[tuple[str, float | None, float | None]] = field(default_factory=list)  # (image, then, now)
    note: str = ""
    cached: bool = False
    unchecked_fails: bool = True  # a "new" value fails (a user's spec); srbench's own reference set: a note

    @property
    def failed(self) -> bool:
        # "new": a value a user's spec asks for that the baseline lacks is unchecked, never a pass (deleting
        # baseline entries must not switch the check off). srbench's own set gains a metric registered since (a
        # plug-in), which its baseline, inside the installed package, cannot be updated for: noted, not failed.
        return self.status in ("DRIFT", "missing") or (self.status == "new" and self.unchecked_fails)

    @property
    def diff(self) -> float | None:
        if self.baseline is None or self.value is None:
            return None
        return 0.0 if self.value == self.baseline else self.value - self.baseline

    def message(self) -> str:
        """One line: what moved, by how much, against which tolerance, and what changed."""
        base = "-" if self.baseline is None else f"{self.baseline:.6f}"
        now = "-" if self.value is None else f"{self.value:.6f}"
        diff = "" if self.diff is None else f", diff {self.diff:+.3g}"
        text = f"baseline {base}, now {now}{diff}, tolerance {self.tolerance:g}"
        if self.changed:
            text += "; changed: " + "; ".join(self.changed)
        elif self.status == "DRIFT":
            text += ("; no recorded fingerprint changed (a nondeterministic computation, or a package or setting "
                     "srbench does not record)")
        if self.movers:
            text += "; images that moved most: " + ", ".join(
                f"{image} ({_fmt(a)} -> {_fmt(b)})" for image, a, b in self.movers)
        if self.note:
            text += f"; {self.note}"
        return text

    def as_dict(self) -> dict:
        j = json_number  # as the one JSON rule writes them (srbench.jsonnum)
        return {"model": self.model, "dataset": self.dataset, "protocol": self.protocol, "metric": self.metric,
                "status": self.status, "baseline": j(self.baseline), "value": j(self.value), "diff": j(self.diff),
                "tolerance": self.tolerance, "changed": self.changed,
                "movers": [{"image": i, "baseline": j(a), "now": j(b)} for i, a, b in self.movers],
                "note": self.note,
                "cached": self.cached, "message": self.message()}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


_FINGERPRINT_WORDS = {"model": "model fingerprint (checkpoint sha256, SR files or implementation)",
                      "dataset": "dataset fingerprint (its files)", "metric": "metric implementation version",
                      "device": "device", "scale": "scale", "protocol": "protocol", "metrics": "metric list"}
# Recorded since these were part of the fingerprint: a baseline without them says nothing about them.
_SETTINGS = ("scale", "protocol", "metrics")


def _changes(then: Mapping[str, str] | None, now: Mapping[str, str] | None) -> list[str]:
    if not then or not now:
        return [] if then == now else ["fingerprints unknown (a baseline written before they were recorded)"]
    out = []
    for key in dict.fromkeys([*then, *now]):
        if key in _FORMER_PACKAGES:
            continue
        a, b = then.get(key), now.get(key)
        if a != b and not (key in _SETTINGS and a is None):
            words = _FINGERPRINT_WORDS.get(key, f"{key} version")
            out.append(f"{words} {_short(a)} -> {_short(b)}")
    return out


def _short(value: str | None) -> str:
    if value is None:
        return "none"
    return value[:19] + "..." if len(value) > 22 else value


def _same(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None  # both undefined (NaN) is no change
    if a == b:
        return True  # equal infinities of one sign too, whose difference is NaN
    return abs(a - b) <= tolerance


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _movers(then: Mapping[str, float | None] | None, now: Mapping[str, float | None] | None,
            tolerance: float) -> list[tuple[str, float | None, float | None]]:
    """The images whose value moved most (beyond the tolerance), and those added or removed."""
    if not then or not now:
        return []
    moved = []
    for image in sorted(set(then) | set(now)):
        a, b = then.get(image), now.get(image)
        if image not in then or image not in now:
            moved.append((math.inf, image, a, b))
        elif not _same(a, b, tolerance):
            moved.append((math.inf if a is None or b is None else abs(b - a), image, a, b))
    moved.sort(key=lambda m: (-m[0], m[1]))
    return [(image, a, b) for _, image, a, b in moved[:MOVERS]]


def compare(baseline: dict, entries: list[dict], tolerances: Mapping[str, float] | None = None,
            not_run: Sequence[NotRun] = (), *, unchecked_fails: bool = True) -> list[CheckRow]:
    """Baseline against now, value by value (``not_run``: entries that could not be computed, and whether they
    were optional; ``unchecked_fails``: whether a value the baseline lacks fails, see :attr:`CheckRow.failed`)."""
    # The baseline's "tolerances" are a record of when it was written, not a setting: a spec's tolerance removed
    # since, or a --tolerance given for one run, must not go on loosening the check.
    tol = {**default_tolerances(), **(tolerances or {})}
    now = {(e["model"], e["dataset"], e["protocol"], e["metric"]): e for e in entries}
    skipped = {(n.model, n.dataset): n for n in not_run}
    rows = []
    for e in baseline["entries"]:
        key = (e["model"], e["dataset"], e["protocol"], e["metric"])
        tolerance = tol.get(e["metric"], 0.0)
        found = now.pop(key, None)
        if found is None:
            reason = skipped.get(key[:2])
            row = CheckRow(*key, e["value"], None, tolerance, status="missing")
            if reason is not None:
                row.status = "not-run" if reason.optional else "missing"
                row.note = f"could not run: {reason.reason}"
            else:
                row.note = _missing_note(key, now)
            rows.append(row)
            continue
        row = CheckRow(*key, e["value"], found["value"], tolerance, cached=found.get("cached", False),
                       changed=_changes(e.get("fingerprints"), found.get("fingerprints")))
        row.movers = _movers(e.get("per_image"), found.get("per_image"), tolerance)
        if e.get("n_images") is not None and e.get("n_images") != found.get("n_images"):
            row.changed.append(f"number of images {e['n_images']} -> {found['n_images']}")
        # An infinite or undefined mean (PSNR of an image equal to its HR, NIQE of a flat one) hides every other
        # image: there the images themselves decide.
        hidden = not _finite(e["value"]) and row.movers
        if not _same(e["value"], found["value"], tolerance) or hidden:
            row.status = "DRIFT"
            if hidden and _same(e["value"], found["value"], tolerance):
                row.note = "the dataset value is not finite: images moved beyond the tolerance"
        elif row.changed:
            row.note = "value unchanged within tolerance"
        rows.append(row)
    for key, found in now.items():
        rows.append(CheckRow(*key, None, found["value"], tol.get(key[3], 0.0), status="new",
                             note="not in the baseline, so not checked: srbench check --update adds it",
                             cached=found.get("cached", False), unchecked_fails=unchecked_fails))
    return rows


def _missing_note(key: tuple[str, str, str, str], now: Mapping[tuple[str, str, str, str], dict]) -> str:
    """Why a baseline value was not computed: a value of the same model, dataset and metric under another
    protocol means the spec's protocol changed."""
    protocols = sorted(k[2] for k in now if (k[0], k[1], k[3]) == (key[0], key[1], key[3]))
    if protocols:
        return f"not computed: protocol {key[2]} -> {', '.join(protocols)} (the spec's protocols changed)"
    return "not computed: the spec no longer has this model, dataset, protocol or metric"


@dataclass
class CheckReport:
    rows: list[CheckRow]
    not_run: list[NotRun]
    baseline: Path

    @property
    def not_computed(self) -> list[NotRun]:
        """Required entries that could not run: the check is incomplete."""
        return [n for n in self.not_run if not n.optional]

    @property
    def exit_code(self) -> int:
        if self.not_computed:
            return EXIT_NOT_RUN
        return EXIT_DRIFT if any(r.failed for r in self.rows) else EXIT_OK

    @property
    def status(self) -> str:
        return {EXIT_OK: "ok", EXIT_DRIFT: "drift", EXIT_NOT_RUN: "not run"}[self.exit_code]

    def summary(self) -> str:
        failed = [r for r in self.rows if r.failed]
        cached = sum(r.cached for r in self.rows if r.value is not None)
        computed = sum(r.value is not None for r in self.rows)
        if not computed:
            got = "no value computed"
        elif cached:
            got = f"{cached} of {computed} read from the store"
        else:
            got = f"{computed} computed"
        parts = [f"{len(self.rows)} values against {self.baseline}", f"{len(failed)} failed", got]
        if self.not_run:
            parts.append(f"{len(self.not_run)} model/dataset pair(s) not run ({len(self.not_computed)} required)")
        verdict = "ok, no drift" if self.exit_code == EXIT_OK else self.status
        return f"srbench check: {verdict} ({', '.join(parts)})"

    def as_dict(self) -> dict:
        return {"status": self.status, "exit_code": self.exit_code, "baseline": str(self.baseline),
                "summary": self.summary(), "rows": [r.as_dict() for r in self.rows],
                "not_run": [{"model": n.model, "dataset": n.dataset, "reason": n.reason, "optional": n.optional}
                            for n in self.not_run]}


def format_rows(rows: list[CheckRow], only_changes: bool = False) -> str:
    lines = [f"{'status':7s} {'model':14s} {'dataset':8s} {'protocol':8s} {'metric':7s} {'baseline':>12s} "
             f"{'now':>12s} {'diff':>10s} {'tol':>8s}"]
    for r in rows:
        if only_changes and r.status == "ok" and not r.changed:
            continue
        base = "-" if r.baseline is None else f"{r.baseline:.6f}"
        now = "-" if r.value is None else f"{r.value:.6f}"
        diff = "-" if r.diff is None else f"{r.diff:+.2e}"
        lines.append(f"{r.status:7s} {r.model:14s} {r.dataset:8s} {r.protocol:8s} {r.metric:7s} {base:>12s} "
                     f"{now:>12s} {diff:>10s} {r.tolerance:8.0e}")
        details = [*r.changed, *(f"{image}: {_fmt(a)} -> {_fmt(b)}" for image, a, b in r.movers)]
        if r.status != "ok" or r.changed:
            details += [r.note] if r.note else []
            lines += [f"        {d}" for d in details]
    return "\n".join(lines)


def junit_xml(report: CheckReport) -> str:
    """One test case per checked value (class: model.dataset.protocol, name: metric); a failure carries the
    baseline, the value now, the difference, the tolerance and what changed. Required entries that could not
    run are errors."""
    from xml.etree import ElementTree as ET

    suite = ET.Element("testsuite", name="srbench check")
    failures = errors = skipped = 0
    for r in report.rows:
        case = ET.SubElement(suite, "testcase", classname=f"{r.model}.{r.dataset}.{r.protocol}", name=r.metric)
        if r.status == "DRIFT":
            failures += 1
            ET.SubElement(case, "failure", message=f"{r.metric} drifted: {r.message()}", type="drift")
        elif r.status == "missing":
            failures += 1
            ET.SubElement(case, "failure", message=f"{r.metric} missing: {r.message()}", type="missing")
        elif r.status == "not-run":
            skipped += 1
            ET.SubElement(case, "skipped", message=r.note)
        elif r.failed:  # a value the baseline lacks, under a user's spec
            failures += 1
            ET.SubElement(case, "failure", message=f"{r.metric} unchecked: {r.message()}", type=r.status)
        elif r.changed or r.status == "new":
            ET.SubElement(case, "system-out").text = r.message()
    for n in report.not_computed:
        if any(r.model == n.model and r.dataset == n.dataset for r in report.rows):
            continue  # already a failing case per value
        errors += 1
        case = ET.SubElement(suite, "testcase", classname=f"{n.model}.{n.dataset}", name="run")
        ET.SubElement(case, "error", message=f"could not run: {n.reason}", type="not-run")
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def markdown(report: CheckReport) -> str:
    """A summary for a pull-request comment: the verdict, then every value that failed or changed."""
    icon = {"ok": "✅", "drift": "❌", "not run": "⚠️"}[report.status]
    lines = [f"### {icon} {report.summary()}", ""]
    shown_rows = [r for r in report.rows if r.status != "ok" or r.changed]
    if shown_rows:
        lines += ["| status | model | dataset | protocol | metric | baseline | now | diff | tolerance | why |",
                  "|---|---|---|---|---|---:|---:|---:|---:|---|"]
        for r in shown_rows:
            why = "; ".join([*r.changed, *(f"{i}: {_fmt(a)} → {_fmt(b)}" for i, a, b in r.movers),
                             *([r.note] if r.note else [])])
            diff = "" if r.diff is None else f"{r.diff:+.3g}"
            lines.append(f"| {r.status} | {r.model} | {r.dataset} | {r.protocol} | {r.metric} | {_fmt(r.baseline)} "
                         f"| {_fmt(r.value)} | {diff} | {r.tolerance:g} | {why.replace('|', '/')} |")
    for n in report.not_run:
        lines.append(f"- {'required' if not n.optional else 'optional'}, not run: {n}")
    if report.status == "ok" and not shown_rows:
        lines.append("Every value is within its tolerance of the baseline.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# The whole check


def run_check(spec: CheckSpec, *, tolerances: Mapping[str, float] | None = None, store_path: str | None = None,
              log: Callable[[str], None] | None = None) -> CheckReport:
    """Compute ``spec`` (values cached in the results store at ``store_path``, if given) and compare with its
    baseline. A missing or unreadable baseline is a BadInputError before anything is computed."""
    baseline = load_baseline(spec.baseline)
    computed = _computed(spec, store_path, log)
    rows = compare(baseline, computed.entries, {**spec.tolerances, **(tolerances or {})}, computed.not_run,
                   unchecked_fails=spec.origin != REFERENCE_SET)
    return CheckReport(rows, computed.not_run, spec.baseline)


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """An output file whose folder exists and is writable, checked before anything is computed (a report found
    unwritable after the computation is lost with it); a missing folder is refused, not created."""
    from srbench.errors import OutputError
    from srbench.images import ensure_writable_dir

    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"cannot write the {what} {path}: it is a folder")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write the {what} {path}: its folder {path.parent} does not exist")
    ensure_writable_dir(path.parent)
    return path


def update_baseline(spec: CheckSpec, *, tolerances: Mapping[str, float] | None = None,
                    store_path: str | None = None, log: Callable[[str], None] | None = None) -> tuple[Path, Computed]:
    """Write the current values of ``spec`` as its baseline; refused (nothing written) while a required entry
    cannot run, so a baseline never silently loses an entry."""
    from srbench.images import ensure_writable_dir

    if spec.baseline.expanduser().resolve() == DEFAULT_BASELINE.resolve() and not paths.in_checkout():
        # Installed, srbench's own baseline lies in site-packages, which srbench never writes into.
        raise BadInputError(f"cannot update {DEFAULT_BASELINE}: it is srbench's own, inside the installed package; "
                            "write yours with --baseline FILE (or a --spec naming its baseline); nothing was written")
    ensure_writable_dir(spec.baseline.expanduser().parent)  # before anything is computed
    computed = _computed(spec, store_path, log)
    if any(not n.optional for n in computed.not_run):
        first = next(n for n in computed.not_run if not n.optional)
        raise SrbenchError(f"cannot update {spec.baseline}: {first} (mark the entry optional = true to leave it "
                           "out); nothing was written")
    # The spec by its file name: a baseline must read the same in every checkout.
    origin = spec.origin if spec.origin == REFERENCE_SET else Path(spec.origin).name
    # Optional entries that could not run here keep their committed values (a baseline never silently loses an
    # entry); --tolerance is for one run and is not written.
    kept = _entries_not_run(spec, computed.not_run, log)
    path = write_baseline(spec.baseline, computed.entries + kept, spec.tolerances, spec=origin)
    return path, computed


def _entries_not_run(spec: CheckSpec, not_run: Sequence[NotRun], log: Callable[[str], None] | None) -> list[dict]:
    """The baseline's values of the (model, dataset) pairs in ``not_run`` that the spec still asks for (its
    protocols and metrics now); none where there is no readable baseline yet (--update is how one is repaired)."""
    pairs = {(n.model, n.dataset) for n in not_run}
    if not pairs or not spec.baseline.expanduser().is_file():
        return []
    try:
        entries = load_baseline(spec.baseline)["entries"]
    except SrbenchError as exc:
        if log:
            log(f"the values of entries not run here are not kept: {exc}")
        return []
    wanted = {(entry.label, label, protocol, metric) for entry in spec.entries
              for _, label in entry.labelled_datasets() if (entry.label, label) in pairs
              for protocol in entry.protocols for metric in entry.metrics_for(protocol)}
    return [e for e in entries if (e["model"], e["dataset"], e["protocol"], e["metric"]) in wanted]


def _computed(spec: CheckSpec, store_path: str | None, log: Callable[[str], None] | None) -> Computed:
    if store_path is None:
        return run_spec(spec, log=log)
    from srbench.store import Store

    with Store(store_path) as store:
        return run_spec(spec, store=store, log=log)
