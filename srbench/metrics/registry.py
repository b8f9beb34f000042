"""One descriptor per reported metric, and the registry every other module reads.

A :class:`Metric` carries every fact the rest of srbench needs about a number it reports: its label and
digits in tables, its direction, whether it needs the HR image, which plane of a protocol it is computed on,
how a dataset value is made from per-image values, the downloaded file it needs, its implementation version
(stored values are keyed by it) and its drift tolerance. Protocols, ``evaluate``, the store, reports, tables,
the PIRM plane, ``srbench check`` and ``srbench metrics`` all read it, so adding a metric is one module plus
one :func:`register` call (or a ``srbench.metrics`` entry point in another package).

The registry is filled lazily, the first time it is used: the built-in descriptors, then entry-point
plug-ins. Importing srbench loads neither. ``pyiqa:<name>`` names are resolved on demand (see
:mod:`srbench.metrics.pyiqa_adapter`).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from srbench.errors import BadInputError, SrbenchError

ENTRY_POINT_GROUP = "srbench.metrics"
PLANES = ("y", "rgb", "none")  # the protocol's luma plane, its RGB image (quantised, shaved), or nothing
LEVELS = ("image", "dataset")  # a value per image (aggregated by ``aggregate``), or one value per image set


@dataclass(frozen=True)
class PerImage:
    """What a metric's ``compute`` hook sees for one image, already prepared by the protocol."""

    sr: np.ndarray | None  # the plane the metric asked for (None for plane "none")
    hr: np.ndarray | None  # same plane of the HR image; None for no-reference metrics
    values: Mapping[str, float]  # what the metrics before it produced for this image (derived metrics read it)
    weights_dir: str | None = None

    def sr_plane(self) -> np.ndarray:
        """``sr`` for a metric computed on a plane (every plane but "none" gives one)."""
        assert self.sr is not None, "a metric of plane 'none' has no SR plane"
        return self.sr

    def hr_plane(self) -> np.ndarray:
        """``hr`` for a full-reference metric (the protocol passes it whenever ``needs_reference``)."""
        assert self.hr is not None, "a no-reference metric has no HR plane"
        return self.hr


@dataclass(frozen=True)
class TorchBatch:
    """What a metric's ``torch_compute`` hook sees: a batch of same-size images on one device (a GPU when there
    is one), prepared by the protocol as :class:`PerImage`'s planes are (``srbench.metrics.torch_forms``):
    plane "y" as ``N x H x W`` float64, plane "rgb" as ``N x C x H x W`` uint8 (C = 3, or 1 for grayscale)."""

    sr: Any  # torch.Tensor (typed Any: the registry does not import torch)
    hr: Any | None  # same plane of the HR images; None for no-reference metrics
    weights_dir: str | None = None

    def hr_plane(self) -> Any:
        """``hr`` for a full-reference metric (given whenever ``needs_reference``)."""
        assert self.hr is not None, "a no-reference metric has no HR plane"
        return self.hr


@dataclass(frozen=True)
class DatasetAccumulator:
    """How a dataset-level metric (``level="dataset"``, e.g. FID) is made: streamed over the images.

    ``evaluate`` calls ``start()`` once per (model, dataset, protocol, scale), then for every evaluated image
    ``prepare(PerImage)`` in a worker thread (no shared state: e.g. feature extraction) and
    ``add(state, prepared)`` in dataset order in the calling thread (so the result does not depend on thread
    timing), and finally ``finish(state)``: the dataset value, or a dict of it and the metric's
    ``extra_outputs``. Memory stays bounded by what ``state`` keeps (e.g. running means and covariances).
    """

    start: Callable[[], Any]
    add: Callable[[Any, Any], None]
    finish: Callable[[Any], float | dict[str, float]]
    prepare: Callable[[PerImage], Any] | None = None  # None: ``add`` receives the PerImage itself
    # Optional torch form of ``prepare`` for a batch on the device: one prepared value per image, each what
    # ``prepare`` gives for that image (so ``add`` takes either).
    prepare_torch: Callable[[TorchBatch], Sequence[Any]] | None = None

    def prepared(self, image: PerImage) -> Any:
        return self.prepare(image) if self.prepare is not None else image


def per_image_unsupported(x: PerImage) -> NoReturn:
    raise SrbenchError("a dataset-level metric has no per-image value (its accumulator makes the dataset value)")


@dataclass(frozen=True, kw_only=True)
class Metric:
    """Everything srbench knows about one reported metric, given field by field (keywords only: a descriptor
    reads as a card, ``Metric(name="psnr_y", label="PSNR-Y", digits=2, higher_is_better=True, ...)``)."""

    name: str
    label: str  # table header
    digits: int  # decimals in tables
    higher_is_better: bool
    needs_reference: bool
    version: str  # implementation version; stored values of another version are recomputed
    description: str
    compute: Callable[[PerImage], float | dict[str, float]]  # per-image value(s); a dict carries extra_outputs
    plane: str = "y"  # one of PLANES: what ``PerImage.sr``/``hr`` hold, as the protocol defines it
    protocols: tuple[str, ...] | None = None  # protocols that report it; None = every protocol
    # Dataset value from ``mean(key)`` (the mean of a per-image output over images); None = mean of its own.
    aggregate: Callable[[Callable[[str], float]], float] | None = None
    requires: tuple[str, ...] = ()  # metrics it is derived from (computed first, versions included in its own)
    extra_outputs: tuple[str, ...] = ()  # other per-image values it produces (aggregation inputs, diagnostics)
    weights: str | None = None  # the downloaded file it needs, for listings
    find_weights: Callable[[str | None], Path] | None = None  # path of that file, or WeightsUnavailableError
    # Every weights file its values depend on, where there are several (default: the file ``find_weights`` finds).
    # Each is checked against its pin and hashed into the stored values' identity (srbench.weights).
    weight_files: Callable[[str | None], Sequence[Path]] | None = None
    # Reads the weights as ``compute`` does (cached there), so that a file that is present but not what it should
    # be (corrupt, another model) is one BadInputError naming it before the first image, not one per image.
    load_weights: Callable[[str | None], object] | None = None
    tolerance: float = 2e-3  # absolute drift tolerance of ``srbench check``
    drift_check: bool = False  # part of ``srbench check``'s reference set
    aggregation: str = "mean over images"  # how ``aggregate`` combines images, in words (listings)
    # "image": ``compute`` gives per-image values, stored per image. "dataset": one value per image set from
    # ``accumulator`` (``compute`` is unused: pass ``per_image_unsupported``), stored once under the reserved
    # image key ``srbench.store.DATASET_IMAGE`` with its extra outputs and ``<name>_n_images``.
    level: str = "image"
    accumulator: DatasetAccumulator | None = None
    # Optional torch form of ``compute`` for a batch on the device (``TorchBatch``): one value (or dict) per
    # image, the same numbers as ``compute`` within the tolerance its module states. ``compute`` stays the
    # reference; evaluation uses this one only when the SR images are on a device already.
    torch_compute: Callable[[TorchBatch], Sequence[float | Mapping[str, float]]] | None = None
    # Conditioning, for a metric whose ``<name>_spread`` output says how far its value moves with the sign of
    # rounding residues in flat areas (NIQE, BRISQUE): above this spread the value is an artifact of
    # floating-point summation, and evaluate, tables and plots say so. None: no such output.
    ill_conditioned_spread: float | None = None
    # When the metric has no value (NaN) for an image, in words, for the note beside it ("": never said). A metric
    # that gives NaN says when here: the conformance tester (srbench.conformance) fails a NaN it does not declare.
    undefined_when: str = ""
    # Its value for an SR image identical to its HR (full-reference metrics whose value there is exact: PSNR inf,
    # SSIM 1, RMSE 0), checked by the conformance tester; None: not exact (a float network's ~1e-7) or not said.
    identical: float | None = None

    def __post_init__(self) -> None:
        if self.plane not in PLANES:
            raise BadInputError(f"metric {self.name!r}: plane must be one of {', '.join(PLANES)}, got {self.plane!r}")
        if self.level not in LEVELS:
            raise BadInputError(f"metric {self.name!r}: level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if (self.level == "dataset") != (self.accumulator is not None):
            raise BadInputError(f"metric {self.name!r}: a dataset-level metric needs an accumulator, and only it")
        if self.level == "dataset" and (self.requires or self.aggregate is not None or self.plane == "none"):
            raise BadInputError(f"metric {self.name!r}: a dataset-level metric reads image planes and is made by "
                                "its accumulator (no requires, aggregate or plane 'none')")
        if self.torch_compute is not None and (self.level == "dataset" or self.plane == "none"):
            raise BadInputError(f"metric {self.name!r}: a torch form is for per-image metrics on a plane (a "
                                "dataset-level metric gives its accumulator a prepare_torch)")

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def is_dataset_level(self) -> bool:
        return self.level == "dataset"

    @property
    def n_images_output(self) -> str:
        """The stored output counting the images a dataset-level value was made from."""
        return f"{self.name}_n_images"

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every value it stores: its own and its extra outputs (per image), plus the image count for a
        dataset-level metric (stored once per image set)."""
        if self.is_dataset_level:
            return (self.name, *self.extra_outputs, self.n_images_output)
        return (self.name, *self.extra_outputs)

    def weight_paths(self, weights_dir: str | None) -> list[Path]:
        """The weights files its values depend on (none for a metric without, or whose files are not known by name:
        a ``find_weights`` giving a folder)."""
        if self.weight_files is not None:
            return list(self.weight_files(weights_dir))
        if self.find_weights is None:
            return []
        found = self.find_weights(weights_dir)
        return [found] if found.is_file() else []

    def in_protocol(self, protocol: str) -> bool:
        return self.protocols is None or protocol in self.protocols

    def run(self, image: PerImage) -> dict[str, float]:
        if self.is_dataset_level:
            per_image_unsupported(image)
        value = self.compute(image)
        return dict(value) if isinstance(value, Mapping) else {self.name: value}

    def run_torch(self, batch: TorchBatch) -> list[dict[str, float]]:
        """Per-image values of a batch from the torch form (one dict per image, as ``run`` gives)."""
        if self.torch_compute is None:
            raise SrbenchError(f"metric {self.name!r} has no torch form")
        values = list(self.torch_compute(batch))
        n = len(batch.sr)
        if len(values) != n:
            raise SrbenchError(f"metric {self.name!r}: its torch form gave {len(values)} values for {n} images")
        return [dict(v) if isinstance(v, Mapping) else {self.name: float(v)} for v in values]

    def dataset_value(self, mean: Callable[[str], float]) -> float:
        if self.is_dataset_level:
            raise SrbenchError(f"metric {self.name!r} is dataset-level: its value comes from its accumulator, "
                               "not from per-image values")
        return self.aggregate(mean) if self.aggregate is not None else mean(self.name)


@dataclass
class _Registry:
    metrics: dict[str, Metric] = field(default_factory=dict)
    loaded: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)


_REGISTRY = _Registry()


def _ensure_loaded() -> dict[str, Metric]:
    if _REGISTRY.loaded:
        return _REGISTRY.metrics
    with _REGISTRY.lock:
        if not _REGISTRY.loaded:
            from srbench.metrics.builtin import BUILTIN

            builtin = {m.name: m for m in BUILTIN}
            # Built-ins first (their order is the protocols' column order), then anything registered early.
            _REGISTRY.metrics = {**builtin, **{k: v for k, v in _REGISTRY.metrics.items() if k not in builtin}}
            _REGISTRY.loaded = True
            _load_entry_points()
    return _REGISTRY.metrics


def _load_entry_points() -> None:
    """Plug-ins: each ``srbench.metrics`` entry point is a Metric, or a callable returning one or several."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            found = obj() if callable(obj) and not isinstance(obj, Metric) else obj
        except Exception as exc:  # a broken plug-in must not take the built-in metrics down with it
            raise SrbenchError(f"metric plug-in {ep.name!r} ({ep.value}) failed to load: {exc}") from None
        for metric in (found if isinstance(found, list | tuple) else [found]):
            if not isinstance(metric, Metric):
                raise SrbenchError(f"metric plug-in {ep.name!r} ({ep.value}) gave {type(metric).__name__}, "
                                   "not an srbench.metrics.Metric")
            register(metric, replace=True)


def register(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the registry; a name already taken fails unless ``replace``.

    >>> import numpy as np
    >>> def mae(x: PerImage) -> float:
    ...     return float(np.mean(np.abs(x.sr_plane() - x.hr_plane())))
    >>> toy = Metric(name="mae_doc", label="MAE", digits=3, higher_is_better=False, needs_reference=True,
    ...              version="doc-1", description="mean absolute error of Y", compute=mae, identical=0.0)
    >>> register(toy) is get_metric("mae_doc")
    True
    >>> register(toy, replace=False) is toy                           # the same descriptor again: fine
    True
    >>> unregister("mae_doc")
    """
    with _REGISTRY.lock:
        metrics = _ensure_loaded()
        if metric.name in metrics and not replace and metrics[metric.name] is not metric:
            raise BadInputError(f"metric {metric.name!r} is already registered (pass replace=True to override)")
        unknown = [r for r in metric.requires if r not in metrics]
        if unknown:
            raise BadInputError(f"metric {metric.name!r} requires unregistered metric(s) {', '.join(unknown)}")
        dataset_level = [r for r in metric.requires if metrics[r].is_dataset_level]
        if dataset_level:
            raise BadInputError(f"metric {metric.name!r} cannot require dataset-level metric(s) "
                                f"{', '.join(dataset_level)} (they have no per-image value)")
        metrics[metric.name] = metric
    return metric


def unregister(name: str) -> None:
    """Remove a metric (tests and plug-ins that replace one); unknown names are ignored."""
    with _REGISTRY.lock:
        _ensure_loaded().pop(name, None)


@contextlib.contextmanager
def temporarily(metric: Metric) -> Iterator[Metric]:
    """Register ``metric`` (replacing one of the same name) for the ``with`` block, then restore what was there.

    For tests and experiments: a modified implementation (another version, an injected error) without
    touching the built-in descriptor.
    """
    with _REGISTRY.lock:
        before = _ensure_loaded().get(metric.name)
        register(metric, replace=True)
    try:
        yield metric
    finally:
        with _REGISTRY.lock:
            if before is None:
                unregister(metric.name)
            else:
                _REGISTRY.metrics[metric.name] = before  # back in place, keeping its position in the order


def all_metrics() -> dict[str, Metric]:
    """Name -> descriptor, in registration order (built-ins first). ``pyiqa:`` metrics appear once used."""
    return dict(_ensure_loaded())


def get_metric(name: str) -> Metric:
    """The descriptor of a registered metric (``pyiqa:<name>`` built on first use); an unknown name is one
    BadInputError listing the known ones.

    >>> m = get_metric("psnr_y")
    >>> m.label, m.direction, m.needs_reference, m.version, m.identical
    ('PSNR-Y', 'higher', True, '1', inf)
    """
    if not isinstance(name, str):  # None or a list: an AttributeError or "unhashable type" from deep inside
        raise BadInputError(f"a metric is named by a str (srbench metrics lists them), got {name!r}")
    metrics = _ensure_loaded()
    if name in metrics:
        return metrics[name]
    if name.startswith("pyiqa:"):
        from srbench.metrics.pyiqa_adapter import pyiqa_metric

        return register(pyiqa_metric(name.removeprefix("pyiqa:")), replace=True)
    raise BadInputError(f"unknown metric {name!r}; known: {', '.join(metrics)} (or pyiqa:<name>)")


def register_stored(names: Iterable[str]) -> None:
    """Build the descriptors of metric names read back from a store that are built on first use (``pyiqa:<name>``),
    so that readers of the store (results, tables, compare) see their values in a process that never computed
    them; one that cannot be built (pyiqa not installed) stays unknown, its values unread."""
    for name in set(names):
        if name.startswith("pyiqa:") and name not in _ensure_loaded():
            with contextlib.suppress(SrbenchError):
                get_metric(name)


def protocol_rank(metric: object, protocol: str) -> int:
    """Where ``protocol`` stands among ``metric``'s protocols (a descriptor, or anything with ``protocols``): 0 for
    its first, the one a table shows a metric of several protocols under (its values differ between protocols:
    each crops its own border), len(protocols) for one it does not name."""
    order = tuple(getattr(metric, "protocols", None) or ())
    return order.index(protocol) if protocol in order else len(order)


def mean_of(rows: Sequence[Mapping[str, float]]) -> Callable[[str], float]:
    """``mean(key)`` over per-image rows, NaN when there are none (what ``Metric.aggregate`` receives)."""

    def mean(key: str) -> float:
        values = [r[key] for r in rows]
        return float(np.mean(values)) if values else math.nan

    return mean
