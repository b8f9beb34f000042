"""srbench from Python: evaluate, read results as pandas, draw tables and the plane, call any metric.

Everything here is re-exported at the package's top level (``srbench.evaluate``, ``srbench.results``,
``srbench.metric``, ``srbench.Results``) and loaded on first use, so ``import srbench`` stays instant. The CLI
computes the same numbers through the same functions.
"""

from __future__ import annotations

import html
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from srbench.errors import BadInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from srbench.evaluation import EvalResult
    from srbench.stats import ImageSet

SUMMARY_COLUMNS = ["model", "dataset", "protocol", "metric", "value", "n_images", "ci_low", "ci_high", "cond_low",
                   "cond_high", "scale", "higher_is_better", "version"]
PER_IMAGE_COLUMNS = ["model", "dataset", "protocol", "scale", "image", "metric", "value", "cond_low", "cond_high",
                     "version", "model_key", "dataset_sha256"]
CI_RESAMPLES = 2000  # of the summary's ci_low/ci_high (seed 0); srbench.stats for more


def _as_list(value: str | os.PathLike | Iterable[str | os.PathLike], what: str = "a name") -> list[str]:
    """A name or path, a list of them, or the CLI's comma form ("set5,set14"; a path with a comma stays whole)."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and ("," not in value or os.path.exists(value))):
        return [os.fspath(value)]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    try:
        return [os.fspath(v) for v in value]
    except TypeError:
        raise BadInputError(f"{what} is a str or path, or a list of them; got {value!r}") from None


def _metric_names(metrics: str | Sequence[str] | None) -> list[str] | None:
    """Metric names from a list or the CLI's comma form ("psnr_y,ssim_y"); None or no name: the default set.
    (A str is not iterated: that would name the metrics "p", "s", ...)"""
    if metrics is None:
        return None
    try:
        names = [n.strip() for n in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    except TypeError:
        names = [metrics]  # type: ignore[list-item]
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise BadInputError(f"metrics: a metric is named by a str (srbench metrics lists them), got {bad[0]!r}")
    names = [n for n in names if n]
    return names or None


PathLike = str | os.PathLike


def evaluate(model: PathLike | Iterable[PathLike], datasets: PathLike | Iterable[PathLike], *,
             protocol: str = "sr", metrics: str | Sequence[str] | None = None, scale: int = 4,
             data_root: str | os.PathLike | None = None, weights_dir: str | os.PathLike | None = None,
             store: str | os.PathLike | None = None, suite: str = "evaluate", device: str = "auto",
             workers: int | None = None, skip_unavailable: bool = False,
             allow_unpinned_weights: bool = False, sr_pattern: str | None = None) -> Results:
    """Evaluate ``model`` (``"bicubic"``, a checkpoint file, a variant or published checkpoint name, a folder of SR
    images; or a list of them) on ``datasets`` (names such as ``"set5"`` or ``"skimage"``, or folders) under
    ``protocol`` (``"sr"`` or ``"pirm"``): the numbers ``srbench evaluate`` prints. With a results ``store``
    (a file), values already computed for the same model, data and metric versions are read from it, and the
    results are labelled under ``suite`` there (as ``srbench evaluate --store`` does). ``metrics``, ``model`` and
    ``datasets`` take a list or the CLI's comma form (``metrics="psnr_y,ssim_y"``); ``device`` is ``"auto"``,
    ``"cpu"`` or ``"cuda"``, ``workers`` a positive number of processes (default: the usable cores). Weights
    files of metrics must be the pinned ones unless ``allow_unpinned_weights`` (as
    ``SRBENCH_ALLOW_UNPINNED_WEIGHTS=1``); see :mod:`srbench.weights`. ``sr_pattern`` says how an SR folder's
    files are named (``"{name}_RCAN_x{scale}"``); by default names are matched, else the folder's own shared
    prefix/suffix is found (:class:`srbench.sources.FolderSource`).

    No model or no dataset is a BadInputError; so is a run where every image was skipped as bad input (nothing
    was evaluated). A dataset whose every image was skipped, beside others that were evaluated, is a warning
    (``warnings.warn`` and ``Results.warnings``).

    >>> import srbench
    >>> res = srbench.evaluate("bicubic", "skimage", metrics="psnr_y,ssim_y", workers=1)  # scikit-image's photos
    >>> print(res.summary[["dataset", "metric", "value", "n_images"]].round(4).to_string(index=False))
    dataset metric   value  n_images
    skimage psnr_y 28.1910         5
    skimage ssim_y  0.8035         5
    """
    from srbench.evaluation import evaluate_model
    from srbench.options import EvalOptions
    from srbench.store import Store
    from srbench.weights import allowing

    models, names = _as_list(model, "srbench.evaluate: model"), _as_list(datasets, "srbench.evaluate: datasets")
    if not models or not names:
        raise BadInputError(f"srbench.evaluate: no {'model' if not models else 'dataset'} given (pass a name, a path "
                            "or a list of them)")
    _refuse_one_name_twice(models, names, sr_pattern)
    options = EvalOptions.build(protocol=protocol, metrics=_metric_names(metrics), scale=scale, data_root=data_root,
                                weights_dir=weights_dir, device=device, workers=workers,
                                skip_unavailable=skip_unavailable, sr_pattern=sr_pattern)
    found: list[EvalResult] = []
    opened = Store(os.fspath(store)) if store is not None else None
    with allowing(allow_unpinned_weights):
        try:
            for one in models:
                found += list(evaluate_model(one, names, options, store=opened,
                                             suite=suite if opened is not None else None))
        finally:
            if opened is not None:
                opened.close()
    _refuse_nothing_evaluated(found)
    return Results.from_evaluations(found)


def evaluate_tree(tree: str | os.PathLike, *, protocol: str = "sr", metrics: str | Sequence[str] | None = None,
                  scales: int | Sequence[int] | None = None, data_root: str | os.PathLike | None = None,
                  weights_dir: str | os.PathLike | None = None, store: str | os.PathLike | None = None,
                  suite: str = "evaluate", workers: int | None = None, skip_unavailable: bool = False,
                  allow_unpinned_weights: bool = False, sr_pattern: str | None = None) -> Results:
    """Evaluate a tree of released results laid out ``<method>/<dataset>/x<scale>/`` (``RCAN/Set5/x4/
    baby_RCAN_x4.png``): each leaf on that dataset (its folder's name matched case-insensitively: ``Set5``,
    ``B100``...) at that scale, its files paired with the images by name or by the affix they share, named by its
    method (as ``srbench evaluate --tree`` does; see :mod:`srbench.many`). ``scales`` keeps only those leaves; the
    other arguments are :func:`evaluate`'s. With a ``store`` every leaf is stored, scale included, for ``srbench
    table`` and ``pirm-plane``.

    A folder that is no leaf (an unknown dataset, a scale folder not ``x<int>``, no images) or a leaf that fails
    (files named after no image) is a warning naming its path (``warnings.warn`` and ``Results.warnings``), and the
    other leaves are still evaluated; when no leaf gives a result it is a BadInputError listing them."""
    import warnings

    from srbench import many
    from srbench.options import EvalOptions
    from srbench.store import Store
    from srbench.weights import allowing

    options = EvalOptions.build(protocol=protocol, metrics=_metric_names(metrics), data_root=data_root,
                                weights_dir=weights_dir, workers=workers, skip_unavailable=skip_unavailable,
                                sr_pattern=sr_pattern)
    wanted = _scales(scales)
    opened = Store(os.fspath(store)) if store is not None else None
    with allowing(allow_unpinned_weights):
        try:
            found = many.evaluate_tree(tree, options, scales=wanted, store=opened,
                                       suite=suite if opened is not None else None)
        finally:
            if opened is not None:
                opened.close()
    failed = [f"not evaluated: {f}" for f in found.failures]
    if not found.results:
        raise BadInputError(f"{tree}: no leaf was evaluated" + (f" ({'; '.join(failed)})" if failed else ""))
    for line in failed:
        warnings.warn(line, stacklevel=2)
    _refuse_nothing_evaluated(found.results)
    results = Results.from_evaluations(found.results)
    results.warnings = [*failed, *results.warnings]
    return results


def _scales(scales: object) -> list[int]:
    """``evaluate_tree``'s scales: a whole number, a list of them or the CLI's comma form ("2,4"; "4" was read
    as list("4") and matched no leaf)."""
    if scales is None:
        return []
    items: Any = scales.split(",") if isinstance(scales, str) else [scales] if isinstance(scales, numbers.Integral) \
        else scales
    try:
        out = [int(v) if isinstance(v, str) and v.strip().isdigit() else v for v in items]
    except TypeError:
        out = [scales]
    bad = [v for v in out if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1]
    if bad:
        raise BadInputError(f"srbench.evaluate_tree: scales are positive whole numbers (4, [2, 4] or '2,4'), got "
                            f"{scales!r}")
    return [int(v) for v in out]


def _refuse_one_name_twice(models: Sequence[PathLike], datasets: Sequence[PathLike],
                           sr_pattern: str | None = None) -> None:
    """Results are keyed by model name: two folders of one name (``run1/x4`` and ``run2/x4``) would be averaged
    together in tables and one would replace the other in a store, and a model or dataset given twice would be
    counted twice."""
    from srbench.sources import first_shared_name

    shared = first_shared_name([os.fspath(m) for m in models], sr_pattern=sr_pattern)
    if shared is not None:
        first, text, name = shared
        same = first == text
        raise BadInputError(f"srbench.evaluate: {text!r} {'is given twice' if same else f'and {first!r} '}"
                            f"{'' if same else 'would both be named ' + repr(name)}; results are keyed by model "
                            "name: evaluate them in separate calls (a store labels each under its own suite)")
    given = [os.fspath(d) for d in datasets]
    twice = sorted({d for d in given if given.count(d) > 1})
    if twice:
        raise BadInputError(f"srbench.evaluate: dataset(s) {', '.join(map(repr, twice))} given twice")


def _refuse_nothing_evaluated(found: Sequence[EvalResult]) -> None:
    """An error when no image at all was evaluated, a warning for each (model, dataset) with none, and one for
    each whose values are over some of its images only (the CLI exits 1 there unless --skip-bad)."""
    import warnings

    partial = [r for r in found if r.per_image and r.skipped]
    for r in partial:
        warnings.warn(f"{r.model} on {r.dataset}: {len(r.skipped)} of {len(r.skipped) + len(r.per_image)} images "
                      f"skipped as bad input (first: {r.skipped[0]['image']}: {r.skipped[0]['error']}); its values "
                      f"are over the other {len(r.per_image)} and compare with no full-set number (Results.warnings)",
                      stacklevel=3)
    empty = [r for r in found if not r.per_image]
    if not empty:
        return
    where = ", ".join(f"{r.model} on {r.dataset}" for r in empty)
    if len(empty) == len(found):
        first = next((s["error"] for r in empty for s in r.skipped), "no images")
        raise BadInputError(f"nothing was evaluated: every image of {where} was skipped (first: {first})")
    warnings.warn(f"nothing was evaluated on {where}: every image was skipped as bad input (Results.warnings)",
                  stacklevel=3)


def results(store: str | os.PathLike | None = None, *, suite: str | None = None) -> Results:
    """What a results store holds (default: ``$SRBENCH_STORE``, else reports/srbench.sqlite), optionally one suite's
    labelled models only, as :class:`Results`.

    >>> import os, srbench, tempfile
    >>> store = os.path.join(tempfile.mkdtemp(), "results.sqlite")
    >>> _ = srbench.evaluate("bicubic", "skimage", metrics="psnr_y", workers=1, store=store)
    >>> print(srbench.results(store).summary[["model", "dataset", "metric", "value"]].round(2).to_string(index=False))
      model dataset metric  value
    bicubic skimage psnr_y  28.19
    """
    from srbench.store import Store

    with Store.open_existing(None if store is None else os.fspath(store)) as opened:
        rows = opened.values(suite)
    if not rows:
        raise BadInputError(f"no results{f' of suite {suite!r}' if suite else ''} in the store")
    return Results.from_store_rows(rows)


ValueRange = tuple[float, float]


@dataclass(frozen=True)
class MetricFunction:
    """A registered metric as a function of images: ``f(sr)`` for a no-reference metric, ``f(sr, hr)`` for a
    full-reference one, computed as ``protocol`` computes it (its Y plane or RGB image, its border).

    Images are HxW (gray) or HxWx3 (RGB) arrays. uint8 is read as 0..255, as MATLAB's ``imread`` gives a PNG:
    the one form taken as it is. Any other integer or float array needs ``value_range=(low, high)``, the span
    of its values (``(0, 1)`` for floats in [0, 1], ``(0, 65535)`` for uint16): it is mapped onto 0..255 and
    rounded to uint8 as a PNG would store it (the protocol's own quantisation of SR outputs), so a float image
    gives exactly its uint8 image's value. Refused, with a :class:`~srbench.errors.BadInputError` naming the
    metric and the problem, never a number: another dtype without ``value_range`` (a float in [0, 1] would
    otherwise read as almost black), values outside ``value_range``, NaN or infinite pixels, another shape,
    an image too small for the protocol's border. ``value_range`` applies to the non-uint8 images only (an
    SR float beside a uint8 HR is fine), at the call or as :func:`metric`'s default::

        >>> import numpy as np, srbench
        >>> rng = np.random.default_rng(0)
        >>> hr_uint8 = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> sr_uint8 = np.clip(hr_uint8 + rng.integers(-6, 7, hr_uint8.shape), 0, 255).astype(np.uint8)
        >>> psnr = srbench.metric("psnr_y")
        >>> psnr(sr_uint8, hr_uint8) == psnr(sr_uint8 / 255, hr_uint8 / 255, value_range=(0, 1))
        True
        >>> psnr(sr_uint8 / 255, hr_uint8 / 255)                      # doctest: +ELLIPSIS
        Traceback (most recent call last):
        srbench.errors.BadInputError: srbench.metric('psnr_y', protocol='sr'): sr is float64, which needs ...

    Given an HR image, the pair is compared as an evaluation compares it: the HR cropped to a multiple of
    ``scale`` from the top left (MATLAB's ``modcrop``; Set14's comic, 361x250, is scored on 360x248), an SR of the
    HR's full size cropped the same way, and an RGB SR of three equal channels beside a gray HR taken as its one
    channel; any other size is refused, naming both.

    A metric undefined for an image (NIQE below two 96x96 blocks after the border, BRISQUE of a constant
    image, ...) is NaN, as in evaluations.
    """

    name: str
    protocol: str
    scale: int = 4
    value_range: ValueRange | None = None

    def __post_init__(self) -> None:
        # Built directly (the class is public) as well as by metric(): a scale of -1 shaved no border and
        # cropped nothing, a number the protocol never gives.
        if isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Integral) or self.scale < 1:
            raise BadInputError(f"srbench.metric({self.name!r}): scale must be a positive whole number (the "
                                f"border shaved), got {self.scale!r}")

    def __call__(self, sr: np.ndarray, hr: np.ndarray | None = None, *,
                 value_range: ValueRange | None = None) -> float:
        return self.outputs(sr, hr, value_range=value_range)[self.name]

    def outputs(self, sr: np.ndarray, hr: np.ndarray | None = None, *,
                value_range: ValueRange | None = None) -> dict[str, float]:
        """Every per-image value the metric produces (NIQE's conditioning range, MSE beside RMSE...)."""
        from srbench.protocols import get_protocol

        proto = get_protocol(self.protocol)
        spec = proto.metric(self.name)
        if spec.is_dataset_level:
            raise BadInputError(f"{self.name} is a dataset-level metric: it has no value per image")
        if spec.needs_reference and hr is None:
            raise BadInputError(f"{self.name} compares an SR image with its HR image: call it as f(sr, hr)")
        span = _value_range(self, self.value_range if value_range is None else value_range)
        sr = _as_image(self, "sr", sr, span)
        if hr is None:
            hr = sr
        else:
            sr, hr = _fitted(self, sr, _as_image(self, "hr", hr, span))
        names = proto.resolve_metrics([self.name])
        from srbench.weights import check_metrics

        check_metrics(proto, names, None)  # the pinned weights files, or the user's opt-in
        try:
            values = proto.per_image(sr, hr, self.scale, names, {})
        except BadInputError as exc:
            raise BadInputError(f"{self!r}: {exc}") from None
        return {k: v for k, v in values.items() if k in spec.outputs}

    def __repr__(self) -> str:
        return f"srbench.metric({self.name!r}, protocol={self.protocol!r})"


def _fitted(f: MetricFunction, sr: np.ndarray, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair as an evaluation compares it: HR cropped to a multiple of the scale (MATLAB's modcrop), an SR of
    the HR's full size cropped the same way, a gray HR's RGB SR of three equal channels taken as its one channel."""
    from srbench.datasets import crop_hr
    from srbench.sources import fit_sr

    cropped, cropped_from = crop_hr(hr, f.scale, repr(f))
    try:
        sr, _ = fit_sr(sr, cropped, cropped_from, f.scale)
    except BadInputError as exc:
        raise BadInputError(f"{f!r}: {exc}") from None
    return sr, cropped


def _value_range(f: MetricFunction, value_range: object) -> ValueRange | None:
    if value_range is None:
        return None
    try:
        if isinstance(value_range, str | bytes):  # "01" would read as (0, 1)
            raise TypeError
        low, high = (float(v) for v in value_range)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise BadInputError(f"{f!r}: value_range must be (low, high), two finite numbers with low < high, "
                            f"got {value_range!r}")
    return low, high


def _as_image(f: MetricFunction, which: str, img: object, value_range: ValueRange | None) -> np.ndarray:
    """``img`` as the uint8 image MATLAB would read (see :class:`MetricFunction`), or one line saying why not."""
    arr = np.asarray(img)
    if arr.dtype.kind not in "uif":
        raise BadInputError(f"{f!r}: {which} has dtype {arr.dtype}; images are uint8 (0..255), or integer or "
                            "float arrays with value_range=(low, high)")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or 0 in arr.shape:
        raise BadInputError(f"{f!r}: {which} has shape {arr.shape}; images are HxW (gray) or HxWx3 (RGB), "
                            "not empty")
    if arr.dtype == np.uint8:
        # C order: a transposed tensor's view (CHW -> HWC) gave some metrics other last bits than the same pixels
        # read from a file
        return np.ascontiguousarray(arr)
    if value_range is None:
        raise BadInputError(f"{f!r}: {which} is {arr.dtype}, which needs value_range=(low, high), the span of "
                            "its values (e.g. (0, 1) for floats in [0, 1]); only uint8 is read without one, as "
                            "0..255")
    if not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinite"
        raise BadInputError(f"{f!r}: {which} has {bad} pixels")
    low, high = value_range
    found = (float(arr.min()), float(arr.max()))
    if found[0] < low or found[1] > high:
        raise BadInputError(f"{f!r}: {which} has values in [{found[0]:g}, {found[1]:g}], outside value_range "
                            f"({low:g}, {high:g})")
    from srbench.matlab import to_uint8

    return to_uint8((arr.astype(np.float64) - low) * (255.0 / (high - low)))


def metric(name: str, *, protocol: str | None = None, scale: int = 4,
           value_range: ValueRange | None = None) -> MetricFunction:
    """Any registered metric by name (``srbench metrics`` lists them), as a function of images computed the way
    ``protocol`` computes it (default: the first protocol the metric belongs to), e.g.
    ``srbench.metric("niqe")(img)`` on a uint8 image, or ``srbench.metric("niqe", value_range=(0, 1))(img)`` on
    floats in [0, 1]: see :class:`MetricFunction` for the images it takes.

    >>> import numpy as np, srbench
    >>> hr = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))   # a 32x32 gray ramp
    >>> sr = hr.copy()
    >>> sr[::2] += 4                                                   # every other row 4 levels brighter
    >>> psnr = srbench.metric("psnr_y")
    >>> psnr
    srbench.metric('psnr_y', protocol='sr')
    >>> round(psnr(sr, hr), 4), psnr(hr, hr)                           # the 4 px border shaved first
    (39.0999, inf)
    >>> srbench.metric("rmse").outputs(sr, hr)                         # pirm protocol: RMSE and its MSE
    {'mse': 8.0, 'rmse': 2.8284271247461903}
    """
    from srbench.metrics import get_metric

    spec = get_metric(name)
    protocol = protocol or (spec.protocols[0] if spec.protocols else "sr")
    from srbench.protocols import get_protocol

    get_protocol(protocol).metric(name)  # a metric outside the protocol fails here, with the known ones
    f = MetricFunction(name, protocol, scale)
    f = MetricFunction(name, protocol, int(scale))
    return MetricFunction(name, protocol, scale, _value_range(f, value_range))


class Results:
    """Evaluation results: ``summary`` (one row per model, dataset, protocol and metric: the dataset value, its
    number of images, a bootstrap interval and, for NIQE and PI, the conditioning range) and ``per_image`` (one
    row per image and metric, with the model's and dataset's fingerprints). Renders as a table in Jupyter.

    >>> import srbench
    >>> res = srbench.evaluate("bicubic", "skimage", metrics="psnr_y,ssim_y", workers=1)
    >>> for line in res.table().splitlines()[:3]:                    # the markdown table, its caption below
    ...     print(line)
    | Model | skimage PSNR-Y ↑ | skimage SSIM-Y ↑ |
    |---|---:|---:|
    | bicubic | **28.19** | **0.8035** |
    """

    def __init__(self, image_sets: Sequence[ImageSet], *, tidy: pd.DataFrame, provenance: Mapping[tuple, dict],
                 warnings: Sequence[str] = ()) -> None:
        self._sets = list(image_sets)
        self._tidy = tidy
        self._provenance = dict(provenance)  # (model, dataset, protocol, scale) -> model_key, dataset_sha256
        one_image = [f"{s.model} on {s.dataset} ({s.protocol}): one image: ci_low/ci_high are NaN (no interval over "
                     "one image)" for s in self._sets if len(s.values) == 1]
        self.warnings = list(dict.fromkeys([*warnings, *one_image]))

    # -- construction -----------------------------------------------------------------------------------

    @classmethod
    def from_evaluations(cls, evaluations: Sequence[EvalResult]) -> Results:
        from srbench.report import tidy_from_results
        from srbench.stats import ImageSet

        sets, provenance, warnings = [], {}, []
        for r in evaluations:
            key = (r.model, r.dataset, r.protocol, r.scale)
            values = {row["image"]: {k: v for k, v in row.items() if k != "image"} for row in r.per_image}
            sets.append(ImageSet(*key, values=values))
            provenance[key] = {"model_key": r.provenance.get("model_key"),
                               "dataset_sha256": r.provenance.get("dataset_sha256")}
            warnings += [f"{r.model} on {r.dataset}: {w}" for w in r.warnings]
            warnings += [f"{r.model} on {r.dataset}: {name} unavailable: {why}" for name, why in r.unavailable.items()]
            warnings += [f"{r.model} on {r.dataset}: skipped {s['image']}: {s['error']}" for s in r.skipped]
            if not r.per_image:
                warnings.append(f"{r.model} on {r.dataset}: nothing was evaluated: every image was skipped")
        return cls(sets, tidy=tidy_from_results(evaluations), provenance=provenance, warnings=warnings)

    @classmethod
    def from_store_rows(cls, rows: Sequence[Mapping]) -> Results:
        from srbench.report import tidy_from_store
        from srbench.stats import image_sets

        sets = image_sets(rows)
        provenance: dict[tuple, dict] = {}
        for r in rows:
            provenance.setdefault((r["model"], r["dataset"], r["protocol"], int(r["scale"])),
                                  {"model_key": r.get("model_key"), "dataset_sha256": r.get("dataset_key")})
        # image_sets refused a name standing for different results in two suites: the rest are one result each.
        tidy = tidy_from_store([dict(r) for r in rows]).drop(columns="suite")
        tidy = tidy.loc[~tidy.astype(str).duplicated()].reset_index(drop=True)
        return cls(list(sets.values()), tidy=tidy, provenance=provenance, warnings=_conditioning_warnings(tidy))

    def __add__(self, other: Results) -> Results:
        """Both results together. What is in both (re-running a notebook cell ``res = res + srbench.evaluate(...)``)
        is kept once; the same model, dataset, protocol and scale with different values or fingerprints (another
        model under the same name) is a BadInputError naming it, never a silent choice of one of them. Metrics
        of the same model and dataset evaluated separately are merged."""
        if not isinstance(other, Results):
            return NotImplemented
        sets = {_set_key(s): s for s in self._sets}
        for s in other._sets:
            sets[_set_key(s)] = _merged_set(sets[_set_key(s)], s) if _set_key(s) in sets else s
        provenance: dict[tuple, dict] = dict(self._provenance)
        for key, prov in other._provenance.items():
            mine: dict = provenance.setdefault(key, prov)
            clash = [k for k in ("model_key", "dataset_sha256") if None not in (mine.get(k), prov.get(k))
                     and mine.get(k) != prov.get(k)]
            if clash:
                raise BadInputError(f"cannot add Results: {_describe_key(key)} is in both with different "
                                    f"{clash[0]} ({mine[clash[0]]} vs {prov[clash[0]]}); keep one of them")
        return Results(list(sets.values()), tidy=_merged_tidy(self._tidy, other._tidy), provenance=provenance,
                       warnings=list(dict.fromkeys([*self.warnings, *other.warnings])))

    # -- pandas -------------------------------------------------------------------------------------------

    @cached_property
    def summary(self) -> pd.DataFrame:
        """model, dataset, protocol, metric, value, n_images, then ci_low/ci_high (95% percentile bootstrap over
        images, 2000 resamples, seed 0; NaN for dataset-level metrics), cond_low/cond_high (NIQE's and PI's
        conditioning range; NaN elsewhere), scale, higher_is_better, version."""
        tidy = self._tidy.copy()
        intervals = self._intervals(CI_RESAMPLES)
        keys = zip(tidy["model"], tidy["dataset"], tidy["protocol"], tidy["scale"], tidy["metric"], strict=True)
        found = [intervals.get(k) for k in keys]
        tidy["ci_low"] = [math.nan if i is None else i.low for i in found]
        tidy["ci_high"] = [math.nan if i is None else i.high for i in found]
        return tidy.reindex(columns=SUMMARY_COLUMNS).reset_index(drop=True)

    @cached_property
    def per_image(self) -> pd.DataFrame:
        """One row per image and metric: its value, NIQE's conditioning range where it has one, the metric's
        version and the fingerprints of the model and dataset that produced it."""
        from srbench.protocols import get_protocol

        out = []
        for s in self._sets:
            proto = get_protocol(s.protocol)
            prov = self._provenance.get((s.model, s.dataset, s.protocol, s.scale), {})
            shown = self._metrics_of(s)
            for image, values in sorted(s.values.items()):
                for name in shown:
                    if name not in values:
                        continue
                    out.append({"model": s.model, "dataset": s.dataset, "protocol": s.protocol, "scale": s.scale,
                                "image": image, "metric": name, "value": values[name],
                                "cond_low": values.get(f"{name}_low", math.nan),
                                "cond_high": values.get(f"{name}_high", math.nan),
                                "version": proto.versions([name])[name], **prov})
        return pd.DataFrame(out, columns=PER_IMAGE_COLUMNS)

    def _metrics_of(self, image_set: ImageSet) -> list[str]:
        """The metrics the summary shows for one model, dataset and protocol."""
        t = self._tidy
        return list(t[(t["model"] == image_set.model) & (t["dataset"] == image_set.dataset)
                      & (t["protocol"] == image_set.protocol)]["metric"])

    def _intervals(self, n_resamples: int, seed: int = 0) -> dict[tuple, Any]:
        from srbench.metrics import get_metric
        from srbench.stats import bootstrap_ci

        out = {}
        for s in self._sets:
            for name in self._metrics_of(s):
                spec = get_metric(name)
                if not spec.is_dataset_level and s.has(spec):
                    out[(s.model, s.dataset, s.protocol, s.scale, name)] = bootstrap_ci(
                        s, spec, n_resamples=n_resamples, seed=seed)
        return out

    # -- tables, the plane, comparisons ----------------------------------------------------------------------

    def _metrics(self, metrics: str | Sequence[str] | None) -> list[str]:
        return _metric_names(metrics) or list(dict.fromkeys(self._tidy["metric"]))

    def table(self, metrics: str | Sequence[str] | None = None, *, fmt: str = "markdown",
              datasets: str | Sequence[str] | None = None, ci: bool = False,
              published: str | Sequence[str] | None = None) -> str:
        """The paper table ``srbench table`` prints (markdown, latex or csv): best bold, second underlined, § on
        NIQE/PI values within another's conditioning range; ``ci``: bootstrap intervals beside the values;
        ``published``: collections of published numbers (srbench.published_results) as extra rows. ``datasets``
        (a list or "set5,set14", matched without case) picks and orders the columns; a dataset these results
        do not hold is a BadInputError naming those they do."""
        from srbench.report import known_datasets, paper_table

        if isinstance(published, str):
            published = _as_list(published, "published")
        datasets = known_datasets(None if datasets is None else _as_list(datasets, "datasets"), self._tidy,
                                  published, "these results")

        intervals, scale_intervals = None, None
        if ci:
            by_scale = self._table_intervals(10000)
            if len(by_scale) > 1:  # a table of several scales ranks, and brackets, each scale's rows on its own
                scale_intervals = by_scale
            else:
                intervals = next(iter(by_scale.values()), {})
        return paper_table(self._tidy, self._metrics(metrics), fmt, datasets=datasets, intervals=intervals,
                           published=published, scale_intervals=scale_intervals)

    def _table_intervals(self, n_resamples: int) -> dict[int, dict[tuple[str, str, str], Any]]:
        """scale -> (model, dataset, metric) -> the interval of the value a table shows: a metric stored under both
        protocols is shown under its first (srbench.report), and bracketed by that protocol's interval."""
        from srbench.metrics import get_metric
        from srbench.metrics.registry import protocol_rank

        out: dict[int, dict[tuple[str, str, str], Any]] = {}
        shown_under: dict[tuple, int] = {}
        for (model, dataset, protocol, scale, name), interval in self._intervals(n_resamples).items():
            rank = protocol_rank(get_metric(name), protocol)
            if (scale, model, dataset, name) in shown_under and shown_under[(scale, model, dataset, name)] <= rank:
                continue
            shown_under[(scale, model, dataset, name)] = rank
            out.setdefault(scale, {})[(model, dataset, name)] = interval
        return out

    def plane(self, dataset: str | None = None, *, published: Sequence[str] | None = None,
              ci: bool = False) -> Figure:
        """The PIRM perception-distortion plane (RMSE against PI, or NIQE where Ma's model is absent) of
        ``dataset`` (default: the one dataset with pirm-protocol results), as a matplotlib Figure."""
        from srbench.plots import draw_plane

        if isinstance(published, str):
            published = _as_list(published, "published")
        pirm = self._tidy[self._tidy["protocol"] == "pirm"]
        if dataset is None:
            found = list(dict.fromkeys(pirm["dataset"]))
            if len(found) != 1:
                raise BadInputError(f"name the dataset of the plane: pirm-protocol results are on "
                                    f"{', '.join(found) or 'no dataset'} (evaluate with protocol='pirm')")
            dataset = found[0]
        else:
            from srbench.report import known_dataset

            dataset = known_dataset(dataset, pirm, published, "these results' pirm-protocol values")
        intervals = None
        if ci:
            intervals = {(k[0], k[1], k[4]): v for k, v in self._intervals(10000).items()
                         if k[2] == "pirm" and k[1] == dataset}
        return draw_plane(pirm, dataset=dataset, intervals=intervals, published=published)

    def compare(self, model_a: str, model_b: str, *, dataset: str | None = None, protocol: str | None = None,
                metrics: Sequence[str] | None = None, n_resamples: int = 10000, seed: int = 0) -> pd.DataFrame:
        """``srbench compare`` as a DataFrame, one row per metric: A's and B's values, A - B with its paired
        bootstrap interval, wins/ties/losses per image, p-values, and whether the difference is within NIQE's
        conditioning ranges."""
        from srbench.metrics import get_metric
        from srbench.stats import paired_comparison

        known = list(dict.fromkeys(s.model for s in self._sets))
        unknown = [m for m in (model_a, model_b) if m not in known]
        if unknown:
            raise BadInputError(f"compare: unknown model {unknown[0]!r}; these results hold {', '.join(known)}")
        if dataset is not None:
            from srbench.report import known_dataset

            try:
                dataset = known_dataset(dataset, self._tidy, None, "these results")
            except BadInputError as exc:
                raise BadInputError(f"compare: {exc}") from None
        rows = []
        for a in self._sets:
            if a.model != model_a or (dataset and a.dataset != dataset) or (protocol and a.protocol != protocol):
                continue
            b = next((s for s in self._sets if s.model == model_b and (s.dataset, s.protocol, s.scale)
                      == (a.dataset, a.protocol, a.scale)), None)
            if b is None:
                continue
            for name in self._metrics(metrics):
                spec = get_metric(name)
                if spec.is_dataset_level or not (a.has(spec) and b.has(spec)) or not spec.in_protocol(a.protocol):
                    continue
                found = paired_comparison(a, b, spec, n_resamples=n_resamples, n_permutations=n_resamples, seed=seed)
                rows.append(found.as_dict())
        if not rows:
            raise BadInputError(f"{model_a} and {model_b} share no per-image metric on the same images"
                                f"{f' of {dataset}' if dataset else ''}")
        return pd.DataFrame(rows)

    # -- display --------------------------------------------------------------------------------------------

    def _groups(self) -> list[tuple[str, list[str]]]:
        return [(p, list(dict.fromkeys(self._tidy[self._tidy["protocol"] == p]["metric"])))
                for p in dict.fromkeys(self._tidy["protocol"])]

    def __repr__(self) -> str:
        from srbench.report import paper_table

        models = list(dict.fromkeys(self._tidy["model"]))
        datasets = list(dict.fromkeys(self._tidy["dataset"]))
        parts = [f"srbench Results: {len(models)} model(s) x {len(datasets)} dataset(s)"]
        for _, metrics in self._groups():
            parts.append(paper_table(self._tidy, metrics, "markdown").rstrip())
        parts += [f"warning: {w}" for w in self.warnings]
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        from srbench.report import html_table, table_model

        models = list(dict.fromkeys(self._tidy["model"]))
        out = []
        for _, metrics in self._groups():
            caption = table_model(self._tidy, metrics, models).caption
            out.append(html_table(self._tidy, metrics, models))
            out.append(f"<p><i>{html.escape(caption)}</i></p>")
        if self.warnings:
            out.append("<details open><summary>warnings</summary><ul>"
                       + "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings) + "</ul></details>")
        return "\n".join(out)


def _set_key(image_set: ImageSet) -> tuple[str, str, str, int]:
    return image_set.model, image_set.dataset, image_set.protocol, image_set.scale


def _describe_key(key: tuple) -> str:
    return f"{key[0]} on {key[1]} ({key[2]}, x{key[3]})"


def _same(x: Any, y: Any) -> bool:
    """Equal values, NaN (an undefined value) equal to NaN."""
    return bool(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)))


def _merged_set(a: ImageSet, b: ImageSet) -> ImageSet:
    """One image set of both: every value of either; a value both hold differently is refused, named."""
    from dataclasses import replace

    values = {image: dict(v) for image, v in a.values.items()}
    for image, theirs in b.values.items():
        mine = values.setdefault(image, {})
        for name, value in theirs.items():
            if name in mine and not _same(mine[name], value):
                raise BadInputError(f"cannot add Results: {_describe_key(_set_key(a))} is in both with different "
                                    f"{name} values (image {image!r}: {mine[name]} vs {value}); keep one of them")
            mine[name] = value
    return replace(a, values=values)


_TIDY_KEY = ["model", "dataset", "protocol", "scale", "metric"]


def _merged_tidy(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Both tidy tables, a row both hold once; the same key with another value or image count is refused."""
    both = pd.concat([a, b], ignore_index=True)
    for _, group in both[both.duplicated(_TIDY_KEY, keep=False)].groupby(_TIDY_KEY, sort=False):
        first = group.iloc[0]
        for _, row in group.iloc[1:].iterrows():
            for column in ("value", "n_images"):
                if not _same(first[column], row[column]):
                    raise BadInputError(f"cannot add Results: {_describe_key(tuple(first[_TIDY_KEY]))} is in both "
                                        f"with different {first['metric']} {column} ({first[column]} vs "
                                        f"{row[column]}); keep one of them")
    return both.drop_duplicates(_TIDY_KEY, keep="first").reset_index(drop=True)


def _conditioning_warnings(tidy: pd.DataFrame) -> list[str]:
    """Results read from a store: where a NIQE value has a conditioning range wider than the threshold."""
    from srbench.metrics import get_metric

    threshold = get_metric("niqe").ill_conditioned_spread
    rows = tidy[(tidy["metric"] == "niqe") & ((tidy["cond_high"] - tidy["cond_low"]) > threshold)]
    return [f"{r.model} on {r.dataset}: NIQE {r.value:.4f} is ill-conditioned: flat areas put it anywhere in "
            f"[{r.cond_low:.4f}, {r.cond_high:.4f}] under another summation order (MATLAB's included)"
            for r in rows.itertuples()]


__all__ = ["MetricFunction", "Results", "evaluate", "metric", "results"]
