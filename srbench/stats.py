"""Statistics a reviewer asks for: bootstrap intervals of dataset values and paired comparisons of two models.

Everything here is a pure function of per-image values (as the results store holds them) and a seed: the same
input and seed give the same numbers, on any machine with the same numpy.

Dataset values are always made by the metric's own descriptor (``Metric.dataset_value``) from per-key means, so
an interval of RMSE is an interval of sqrt(mean MSE) and one of PI an interval of ((10 - mean Ma) + mean NIQE)/2,
never an interval of a mean of per-image RMSE or PI.

Intervals are percentile bootstrap intervals over images: ``n_resamples`` resamples of the image set with
replacement (one index matrix, drawn at once), the dataset value recomputed on each, and the
(1 - confidence)/2 and (1 + confidence)/2 percentiles of those values. For the mean of n normal values the
percentile interval covers slightly less than its nominal level (about 94.2 % for a nominal 95 % at n = 50,
as a z-interval with the bootstrap's variance (n - 1)/n s²/n would); ``tests/test_stats.py`` checks that.

A paired comparison resamples the *same* image indices for both models (the paired bootstrap of the difference
of dataset values) and tests "A and B are exchangeable on every image" with a paired sign-flip permutation test of
that same difference: each image's A and B values (every per-image output the aggregate reads, e.g. Ma and NIQE
together for PI) are swapped with probability 1/2 and the dataset-value difference recomputed. It tests exactly
the number reported (including sqrt(mean MSE) and PI, which a test on per-image values would not), needs no
distributional assumption, and is exact (all 2^n sign patterns) when 2^n <= ``n_permutations``: its p is then a
multiple of 2^-n and at least 2^-(n-1) (the observed pattern and its mirror image always count). With B random
patterns it is (k + 1)/(B + 1), the observed pattern counted once, so at least 1/(B + 1). The Wilcoxon
signed-rank test (scipy) on the per-image values of the metric, the field's customary paired test, is reported
beside it.

Infinite values (PSNR of an SR image identical to its HR) are handled explicitly, in the extended reals:

- per image, the same infinity on both sides is a tie (difference 0); an infinity against a finite value is a win
  or loss by the metric's direction (an infinite difference);
- a dataset value with an infinite image is infinite. Two infinite dataset values of the same sign have no
  difference: A - B, its interval and p are undefined (NaN, shown as n/a, with a note), never a number;
- one infinite dataset value against a finite one: A - B is that infinity; an interval bound is infinite where the
  resamples' differences are (a bound between an infinite and a finite resample value is the infinite one); a sign
  pattern that leaves infinite values on both sides has an undefined difference and does not count as at least as
  extreme, so p is that of every infinite value falling on one side (2^-(k-1) for k such images, exactly);
- a NaN (an undefined per-image value, NIQE of a flat image) makes the dataset values undefined, and its image
  counts in ``undefined``, not in wins, ties or losses.

One image has no interval over images (every resample is that image): its bounds are NaN, with a note.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from srbench.errors import BadInputError
from srbench.metrics import Metric, get_metric
from srbench.metrics.registry import register_stored

DEFAULT_SEED = 0
DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95
# Elements of one resample block (resamples x images): bounds memory (16 MiB of indices) for any image count.
_BLOCK_ELEMENTS = 1 << 21

PerImageRows = Mapping[str, Mapping[str, float]] | Sequence[Mapping[str, float]]


# ---------------------------------------------------------------------------------------------------------
# Per-image values of one model


@dataclass(frozen=True)
class ImageSet:
    """The per-image values of one model on one dataset under one protocol and scale.

    ``values`` maps image name -> {per-image output: value} for the current metric versions only (the store
    keys values by version; older ones are ignored, as the tables ignore them).
    """

    model: str
    dataset: str
    protocol: str
    scale: int
    values: Mapping[str, Mapping[str, float]]

    @property
    def images(self) -> list[str]:
        return sorted(self.values)

    def has(self, metric: Metric) -> bool:
        """Whether every image has every per-image output ``metric``'s dataset value is made from."""
        needed = _outputs(metric)
        return bool(self.values) and all(needed <= set(v) for v in self.values.values())

    def rows(self, metric: Metric) -> dict[str, dict[str, float]]:
        """image -> the outputs ``metric`` needs; a BadInputError when some image lacks them."""
        needed = _outputs(metric)
        missing = [image for image, v in self.values.items() if not needed <= set(v)]
        if missing or not self.values:
            raise BadInputError(f"{self.model} on {self.dataset} ({self.protocol}, x{self.scale}) has no "
                                f"{metric.name} for {_names(missing) or 'any image'}")
        return {image: {k: self.values[image][k] for k in needed} for image in self.images}


def _outputs(metric: Metric) -> set[str]:
    """The per-image outputs a metric's dataset value may read: its own and those of what it requires."""
    if metric.is_dataset_level:
        raise BadInputError(f"metric {metric.name!r} is dataset-level (one value per image set): it has no "
                            "per-image values to resample")
    outputs = set(metric.outputs)
    for name in metric.requires:
        outputs.update(get_metric(name).outputs)
    return outputs


def _names(items: Sequence[str], limit: int = 8) -> str:
    items = sorted(items)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def image_sets(store_rows: Sequence[Mapping]) -> dict[tuple[str, str, str, int], ImageSet]:
    """Every (model, dataset, protocol, scale) of ``Store.values`` rows as an :class:`ImageSet`.

    Rows of a model name that several suites give to different results (fingerprints) are refused: pass one
    suite's rows (``Store.values(suite)``).
    """
    from srbench.protocols import get_protocol
    from srbench.store import DATASET_IMAGE

    groups: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    keys: dict[tuple, set] = defaultdict(set)
    versions: dict[str, dict[str, str]] = {}
    register_stored(r["metric"] for r in store_rows)
    for r in store_rows:
        if r["image"] == DATASET_IMAGE:
            continue
        protocol = r["protocol"]
        if protocol not in versions:
            proto = get_protocol(protocol)
            versions[protocol] = proto.output_versions([m.name for m in proto.metrics if not m.is_dataset_level])
        group = (r["model"], r["dataset"], protocol, int(r["scale"]))
        keys[group].add((r.get("model_key"), r.get("dataset_key")))
        values = groups[group][r["image"]]  # every stored image belongs to the set, as in the tables
        if versions[protocol].get(r["metric"]) == r["metric_version"]:
            values[r["metric"]] = math.nan if r["value"] is None else float(r["value"])
    for (model, dataset, protocol, scale), found in keys.items():
        if len(found) > 1:
            raise BadInputError(f"model {model!r} on {dataset!r} ({protocol}, x{scale}) names different results in "
                                "different suites; pass --suite to choose one")
    return {g: ImageSet(model=g[0], dataset=g[1], protocol=g[2], scale=g[3],
                        values={k: dict(v) for k, v in images.items()}) for g, images in groups.items()}


def select_image_set(store_rows: Sequence[Mapping], model: str, dataset: str, protocol: str,
                     scale: int | None = None) -> ImageSet:
    """The image set of ``model`` on ``dataset`` under ``protocol`` among ``Store.values`` rows (``scale`` is
    needed only when several are stored); a BadInputError naming what is known otherwise."""
    groups = {(r["model"], r["dataset"], r["protocol"], int(r["scale"])) for r in store_rows}
    if not groups:
        raise BadInputError("the results store holds no labelled results (srbench evaluate --store or srbench "
                            "ablate write them)")
    if model not in {g[0] for g in groups}:
        raise BadInputError(f"unknown model {model!r}; known: {_names(list({g[0] for g in groups}), 50)}")
    mine = {g for g in groups if g[0] == model}
    held = {g[1] for g in mine}
    if dataset not in held:  # matched without case, as tables match it (evaluate --dataset Set5 stores set5)
        alike = sorted(d for d in held if d.casefold() == dataset.casefold())
        if len(alike) > 1:
            raise BadInputError(f"dataset {dataset!r} is ambiguous for model {model!r}: it names "
                                f"{' and '.join(alike)}, which differ only in case; name one exactly")
        dataset = alike[0] if alike else dataset
    if dataset not in held:
        raise BadInputError(f"model {model!r} has no results on dataset {dataset!r}; it has: "
                            f"{_names(list({g[1] for g in mine}), 50)}")
    mine = {g for g in mine if g[1] == dataset}
    if protocol not in {g[2] for g in mine}:
        raise BadInputError(f"model {model!r} has no {protocol}-protocol results on {dataset!r}; it has: "
                            f"{_names(list({g[2] for g in mine}), 50)}")
    scales = sorted(g[3] for g in mine if g[2] == protocol)
    if scale is not None and scale not in scales:
        raise BadInputError(f"model {model!r} on {dataset!r} ({protocol}) has no x{scale} results; it is stored at "
                            f"{', '.join(f'x{s}' for s in scales)}")
    if scale is None and len(scales) > 1:
        raise BadInputError(f"model {model!r} on {dataset!r} ({protocol}) is stored at scale(s) "
                            f"{', '.join(f'x{s}' for s in scales)}; pass --scale to choose one")
    group = (model, dataset, protocol, scale if scale is not None else scales[0])
    rows = [r for r in store_rows if (r["model"], r["dataset"], r["protocol"], int(r["scale"])) == group]
    return image_sets(rows)[group]


# ---------------------------------------------------------------------------------------------------------
# Dataset values of many resamples at once


def _as_rows(per_image_rows: PerImageRows | ImageSet, metric: Metric) -> tuple[list[str] | None, list[Mapping]]:
    """(image names or None, rows in that order) of any accepted form of per-image values."""
    if isinstance(per_image_rows, ImageSet):
        rows = per_image_rows.rows(metric)
        return list(rows), list(rows.values())
    if isinstance(per_image_rows, Mapping):
        names = sorted(per_image_rows)
        return names, [per_image_rows[n] for n in names]
    return None, list(per_image_rows)


class _Columns:
    """Per-image outputs as float arrays, read lazily by name (the aggregate asks for what it needs)."""

    def __init__(self, rows: Sequence[Mapping[str, float]], metric: Metric) -> None:
        self._rows = rows
        self._metric = metric
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            try:
                values = [math.nan if r[key] is None else r[key] for r in self._rows]
            except KeyError:
                raise BadInputError(f"the dataset value of {self._metric.name} needs the per-image output "
                                    f"{key!r}, missing from the values given") from None
            self._cache[key] = np.asarray(values, dtype=np.float64)
        return self._cache[key]


def _point(metric: Metric, col: _Columns) -> float:
    """The dataset value of all images (what ``Protocol.aggregate`` gives: NumPy's mean of each output)."""
    with np.errstate(all="ignore"):
        return float(metric.dataset_value(lambda key: float(np.mean(col(key)))))


def _aggregate(metric: Metric, means: Callable[[str], np.ndarray], size: int) -> np.ndarray:
    """The metric's dataset value for each of ``size`` sets of per-key means (``means(key)`` has shape (size,)).

    The descriptor's aggregate is called once with arrays when it computes elementwise (perceptual_index_from
    does); one that cannot (``math.sqrt`` of an array raises) or that gives something else is called once per
    resample with floats. The first resample is always checked against the float call.
    """
    cache: dict[str, np.ndarray] = {}

    def mean(key: str) -> np.ndarray:
        if key not in cache:
            cache[key] = means(key)
        return cache[key]

    def scalar(i: int) -> float:
        return float(metric.dataset_value(lambda key: float(mean(key)[i])))

    first = scalar(0)
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(metric.dataset_value(mean), dtype=np.float64)  # type: ignore[arg-type]
        if out.shape == (size,) and np.allclose(out[0], first, rtol=1e-12, atol=0.0, equal_nan=True):
            return out
    except (TypeError, ValueError):
        pass
    return np.array([first, *(scalar(i) for i in range(1, size))], dtype=np.float64)


def _blocks(total: int, n_images: int) -> Iterator[int]:
    """Sizes of the resample blocks: at most _BLOCK_ELEMENTS indices each."""
    step = max(1, _BLOCK_ELEMENTS // max(n_images, 1))
    for start in range(0, total, step):
        yield min(step, total - start)


def _bootstrap_values(metric: Metric, columns: Sequence[_Columns], n_images: int, n_resamples: int,
                      rng: np.random.Generator) -> list[np.ndarray]:
    """Dataset values of each column set on the same ``n_resamples`` resamples of the images."""
    out: list[list[np.ndarray]] = [[] for _ in columns]
    for size in _blocks(n_resamples, n_images):
        idx = rng.integers(0, n_images, size=(size, n_images))
        for part, col in zip(out, columns, strict=True):
            part.append(_aggregate(metric, _resampled_means(col, idx), size))
    return [np.concatenate(p) for p in out]


def _row_means(values: np.ndarray) -> np.ndarray:
    """The mean of each row: infinite with an infinite value, NaN with both infinities (as np.mean, quietly)."""
    with np.errstate(invalid="ignore"):
        return values.mean(axis=1)


def _resampled_means(col: _Columns, idx: np.ndarray) -> Callable[[str], np.ndarray]:
    """``means(key)`` of each row of resampled image indices ``idx``."""
    return lambda key: _row_means(col(key)[idx])


def _swapped_means(col: _Columns, other: _Columns, flips: np.ndarray) -> Callable[[str], np.ndarray]:
    """``means(key)`` of ``col`` with image i's value replaced by ``other``'s where ``flips[:, i]`` is True.

    The values are selected, not added as differences (mean + flips @ (other - col) / n would turn an infinite
    value into inf - inf = NaN and lose the observed pattern itself)."""
    return lambda key: _row_means(np.where(flips, other(key), col(key)))


def _difference(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a - b of dataset values in the extended reals: the same infinity on both sides has no difference (NaN,
    explicitly: neither is ahead, and the finite images behind them are hidden); otherwise IEEE's a - b."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.subtract(a, b, out=out, where=~(np.isinf(a) & (a == b)))
    return out


def _per_image_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b per image: the same infinity on both sides is a tie (0: both images are, e.g., identical to their
    HR); NaN where either value is undefined."""
    out = _difference(a, b)
    out[np.isinf(a) & (a == b)] = 0.0
    return out


# ---------------------------------------------------------------------------------------------------------
# Intervals


@dataclass(frozen=True)
class Interval:
    """A dataset value and its bootstrap interval over images."""

    metric: str
    value: float
    low: float
    high: float
    confidence: float
    n_images: int
    n_resamples: int
    seed: int
    method: str = "percentile bootstrap over images"
    note: str = ""  # why the bounds are NaN (one image), empty otherwise

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _check_settings(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise BadInputError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise BadInputError(f"confidence must be between 0 and 1, got {confidence}")


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    if np.isnan(values).any():
        return math.nan, math.nan
    qs = [50.0 * (1.0 - confidence), 50.0 * (1.0 + confidence)]
    if np.isfinite(values).all():
        low, high = np.percentile(values, qs)
        return float(low), float(high)
    ordered = np.sort(values)
    return _extended_percentile(ordered, qs[0]), _extended_percentile(ordered, qs[1])


def _extended_percentile(ordered: np.ndarray, q: float) -> float:
    """NumPy's linear percentile of sorted values with infinities: a bound between an infinite value and another
    is the infinite one (linear interpolation would give inf - inf = NaN)."""
    position = q / 100.0 * (ordered.size - 1)
    below, above = ordered[math.floor(position)], ordered[math.ceil(position)]
    fraction = position - math.floor(position)
    if fraction == 0.0 or below == above or math.isinf(below):
        return float(below)
    if math.isinf(above):
        return float(above)
    return float(below + (above - below) * fraction)


ONE_IMAGE_NOTE = "one image: no interval over images (every resample is that image)"


def bootstrap_ci(per_image_rows: PerImageRows | ImageSet, metric: str | Metric, *,
                 n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                 seed: int = DEFAULT_SEED) -> Interval:
    """The dataset value of ``metric`` and its percentile bootstrap interval over images.

    ``per_image_rows``: one {per-image output: value} mapping per image (a list, or image name -> mapping, or an
    :class:`ImageSet`), holding every output the metric's aggregate reads (``mse`` for RMSE, ``ma`` and ``niqe``
    for PI). Images are resampled with replacement and the dataset value recomputed through the descriptor.
    A NaN among the values makes the value and the interval NaN, as it makes the table's value NaN.
    """
    spec = get_metric(metric) if isinstance(metric, str) else metric
    _check_settings(n_resamples, confidence)
    _outputs(spec)  # refuses a dataset-level metric
    _, rows = _as_rows(per_image_rows, spec)
    if not rows:
        raise BadInputError(f"no images to bootstrap {spec.name} over")
    columns = _Columns(rows, spec)
    value = _point(spec, columns)
    if len(rows) == 1:
        return Interval(spec.name, value, math.nan, math.nan, confidence, 1, n_resamples, seed, note=ONE_IMAGE_NOTE)
    (values,) = _bootstrap_values(spec, [columns], len(rows), n_resamples, np.random.default_rng([seed, 0]))
    low, high = _percentiles(values, confidence)
    return Interval(spec.name, value, low, high, confidence, len(rows), n_resamples, seed)


# ---------------------------------------------------------------------------------------------------------
# Conditioning ranges (NIQE's flat areas; see srbench.metrics.niqe)


def conditioning_range(metric: Metric, rows: Sequence[Mapping]) -> dict[str, float]:
    """``cond_low``/``cond_high`` of a dataset value: its aggregate with every conditioned input it is made of
    (a ``<name>_low``/``<name>_high`` pair in the per-image rows: NIQE, hence PI) at the low, then the high end of
    each image's range. Both NaN where nothing it is made of has a range."""
    from srbench.metrics.registry import mean_of

    inputs = [n for n in (metric.name, *metric.requires)
              if rows and all(f"{n}_low" in r and f"{n}_high" in r for r in rows)]
    if not inputs:
        return {"cond_low": math.nan, "cond_high": math.nan}
    ends = []
    for end in ("low", "high"):
        # A value computed from the conditioned quantity (its median too) moves with it.
        moved = [{**r, **{k: r[f"{n}_{end}"] for n in inputs for k in (n, f"{n}_med") if k in r}} for r in rows]
        ends.append(metric.dataset_value(mean_of(moved)))
    return {"cond_low": min(ends), "cond_high": max(ends)}


# ---------------------------------------------------------------------------------------------------------
# Paired comparison


@dataclass(frozen=True)
class PairedComparison:
    """Model A against model B on the same images under the same protocol, for one metric.

    ``difference`` is A's dataset value minus B's (positive: A is higher, which is better only when
    ``higher_is_better``); ``low``/``high`` its paired-bootstrap interval. ``wins``/``ties``/``losses`` count
    images where A is better / within ``tie_tolerance`` (the same infinity on both sides included) / worse by the
    metric's direction, ``undefined`` those where either value is NaN (e.g. NIQE of a flat image): the four add up
    to ``n_images``. ``p_value`` is that of ``test``, two-sided; ``wilcoxon_p`` that of the Wilcoxon signed-rank
    test on per-image values. ``note`` says why a number is undefined or infinite (see the module's docstring),
    empty otherwise.
    """

    metric: str
    model_a: str
    model_b: str
    dataset: str
    protocol: str
    scale: int
    n_images: int
    higher_is_better: bool
    value_a: float
    value_b: float
    difference: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    wins: int
    ties: int
    losses: int
    tie_tolerance: float
    p_value: float
    test: str
    wilcoxon_p: float
    seed: int
    # The two dataset values' conditioning ranges (NaN: the metric has none) and whether they overlap: then the
    # difference is within the metric's own arithmetic noise (NIQE's flat areas), whatever the p-value says.
    cond_low_a: float = math.nan
    cond_high_a: float = math.nan
    cond_low_b: float = math.nan
    cond_high_b: float = math.nan
    undefined: int = 0
    note: str = ""

    @property
    def within_conditioning(self) -> bool:
        return self.cond_low_a <= self.cond_high_b and self.cond_low_b <= self.cond_high_a  # False with NaN

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__},
                "within_conditioning": self.within_conditioning}


def default_tie_tolerance(metric: Metric) -> float:
    """Half a unit of the metric's last displayed digit (0.005 dB for PSNR-Y at 2 digits): a per-image
    difference this small rounds to zero in a table."""
    return 0.5 * 10.0 ** -metric.digits


def _describe(side: PerImageRows | ImageSet, fallback: str) -> tuple[str, str, str, int]:
    if isinstance(side, ImageSet):
        return side.model, side.dataset, side.protocol, side.scale
    return fallback, "", "", 0


def _paired_rows(rows_a: PerImageRows | ImageSet, rows_b: PerImageRows | ImageSet,
                 metric: Metric) -> tuple[list[Mapping], list[Mapping]]:
    """Both models' rows in the same image order; refuses different protocols, scales or image sets."""
    a, b = _describe(rows_a, "A"), _describe(rows_b, "B")
    if isinstance(rows_a, ImageSet) and isinstance(rows_b, ImageSet):
        for what, i in (("dataset", 1), ("protocol", 2), ("scale", 3)):
            if a[i] != b[i]:
                raise BadInputError(f"cannot pair {a[0]} and {b[0]}: different {what} ({a[i]} vs {b[i]})")
    names_a, list_a = _as_rows(rows_a, metric)
    names_b, list_b = _as_rows(rows_b, metric)
    if names_a is None or names_b is None:
        raise BadInputError("a paired comparison pairs images by name: pass image name -> values mappings "
                            "or ImageSets")
    only_a, only_b = sorted(set(names_a) - set(names_b)), sorted(set(names_b) - set(names_a))
    if only_a or only_b:
        parts = [f"only {who} has {_names(only)}" for who, only in ((a[0], only_a), (b[0], only_b)) if only]
        raise BadInputError(f"cannot pair {a[0]} and {b[0]}: their image sets differ ({'; '.join(parts)})")
    if not list_a:
        raise BadInputError("no images to compare")
    order = {name: i for i, name in enumerate(names_b)}
    return list_a, [list_b[order[name]] for name in names_a]


def _win_tie_loss(a: np.ndarray, b: np.ndarray, metric: Metric, tolerance: float) -> tuple[int, int, int, int]:
    """(wins, ties, losses, undefined) of A per image; they add up to the number of images."""
    diff = _per_image_differences(a, b) if metric.higher_is_better else _per_image_differences(b, a)
    defined = ~np.isnan(diff)  # NaN compares False below: an undefined image is neither a win nor a loss
    wins = int(np.sum(diff > tolerance))
    losses = int(np.sum(diff < -tolerance))
    return wins, int(np.sum(defined)) - wins - losses, losses, int(np.sum(~defined))


def _flipped_statistic(metric: Metric, col_a: _Columns, col_b: _Columns, flips: np.ndarray) -> np.ndarray:
    """|A - B| of the dataset values under each row of sign patterns ``flips`` (True: image i's values swapped);
    NaN where both are the same infinity (see _difference)."""
    size = flips.shape[0]
    values_a = _aggregate(metric, _swapped_means(col_a, col_b, flips), size)
    values_b = _aggregate(metric, _swapped_means(col_b, col_a, flips), size)
    return np.abs(_difference(values_a, values_b))


def _sign_patterns(exact: bool, start: int, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` sign patterns of ``n`` images: the exact test's numbers start..start + size - 1 in binary, or
    random ones."""
    if exact:
        bits = np.arange(start, start + size, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)
        return (bits & 1).astype(bool)
    return rng.integers(0, 2, size=(size, n)).astype(bool)


def _sign_flip_p(metric: Metric, col_a: _Columns, col_b: _Columns, n: int, n_permutations: int,
                 rng: np.random.Generator) -> tuple[float, str]:
    """Two-sided p-value of the paired sign-flip permutation test of the dataset-value difference.

    The observed statistic is computed by the same arithmetic as every pattern's (the identity pattern), so the
    observed pattern and, in the exact test, its mirror image (every image swapped: B - A) count by construction.
    """
    exact = n < 63 and 2**n <= n_permutations
    total = 2**n if exact else n_permutations
    test = (f"paired sign-flip permutation test (exact, all {total} sign patterns)" if exact
            else f"paired sign-flip permutation test ({total} random sign patterns)")
    observed = _flipped_statistic(metric, col_a, col_b, np.zeros((1, n), dtype=bool))[0]
    if math.isnan(observed):
        return math.nan, test
    threshold = observed * (1.0 - 1e-9)  # rounding noise must not decide the count
    count, done = 0, 0
    for size in _blocks(total, n):
        flips = _sign_patterns(exact, done, size, n, rng)
        done += size
        count += int(np.sum(_flipped_statistic(metric, col_a, col_b, flips) >= threshold))  # NaN never counts
    return (count / total if exact else (count + 1) / (total + 1)), test


def _wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import wilcoxon

    diff = _per_image_differences(a, b)
    diff = diff[~np.isnan(diff)]
    if diff.size == 0:
        return math.nan
    if not np.any(diff):
        return 1.0  # no image differs: nothing to reject
    finite = np.abs(diff[np.isfinite(diff)])
    # The test reads only the order of |differences| and their signs: an infinite one is the largest, and
    # infinite ones tie with each other.
    diff[np.isinf(diff)] = np.sign(diff[np.isinf(diff)]) * (2.0 * (finite.max() if finite.size else 0.0) + 1.0)
    try:
        return float(wilcoxon(diff).pvalue)
    except ValueError:
        return math.nan


def paired_comparison(rows_a: PerImageRows | ImageSet, rows_b: PerImageRows | ImageSet, metric: str | Metric, *,
                      n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                      n_permutations: int = DEFAULT_RESAMPLES, tie_tolerance: float | None = None,
                      seed: int = DEFAULT_SEED) -> PairedComparison:
    """Compare model A with model B on the same images (paired by name) for one metric.

    ``rows_a``/``rows_b``: :class:`ImageSet` (then dataset, protocol and scale must match) or image name ->
    {per-image output: value}. Image sets that differ are refused with the names that differ. The interval is
    a paired percentile bootstrap (the same resampled images for both models); the p-value that of a paired
    sign-flip permutation test of the same difference (see the module's docstring); ``tie_tolerance`` defaults
    to :func:`default_tie_tolerance`.
    """
    spec = get_metric(metric) if isinstance(metric, str) else metric
    _check_settings(n_resamples, confidence)
    if n_permutations < 1:
        raise BadInputError(f"n_permutations must be at least 1, got {n_permutations}")
    _outputs(spec)
    tolerance = default_tie_tolerance(spec) if tie_tolerance is None else float(tie_tolerance)
    if not tolerance >= 0.0:
        raise BadInputError(f"tie tolerance must be zero or positive, got {tie_tolerance}")
    list_a, list_b = _paired_rows(rows_a, rows_b, spec)
    n = len(list_a)
    col_a, col_b = _Columns(list_a, spec), _Columns(list_b, spec)
    value_a, value_b = _point(spec, col_a), _point(spec, col_b)
    low, high = math.nan, math.nan
    if n > 1:
        boot_a, boot_b = _bootstrap_values(spec, [col_a, col_b], n, n_resamples, np.random.default_rng([seed, 0]))
        low, high = _percentiles(_difference(boot_a, boot_b), confidence)
    p_value, test = _sign_flip_p(spec, col_a, col_b, n, n_permutations, np.random.default_rng([seed, 1]))
    per_a, per_b = col_a(spec.name), col_b(spec.name)
    wins, ties, losses, undefined = _win_tie_loss(per_a, per_b, spec, tolerance)
    model_a, dataset, protocol, scale = _describe(rows_a, "A")
    model_b = _describe(rows_b, "B")[0]
    cond_a, cond_b = conditioning_range(spec, list_a), conditioning_range(spec, list_b)
    return PairedComparison(
        metric=spec.name, model_a=model_a, model_b=model_b, dataset=dataset, protocol=protocol,
        scale=scale, n_images=n, higher_is_better=spec.higher_is_better, value_a=value_a, value_b=value_b,
        difference=float(_difference(value_a, value_b)), low=low, high=high, confidence=confidence,
        n_resamples=n_resamples, wins=wins, ties=ties, losses=losses, tie_tolerance=tolerance, p_value=p_value,
        test=test, wilcoxon_p=_wilcoxon_p(per_a, per_b), seed=seed, cond_low_a=cond_a["cond_low"],
        cond_high_a=cond_a["cond_high"], cond_low_b=cond_b["cond_low"], cond_high_b=cond_b["cond_high"],
        undefined=undefined, note=_comparison_note((model_a, value_a), (model_b, value_b), n, undefined))


def _comparison_note(a: tuple[str, float], b: tuple[str, float], n: int, undefined: int) -> str:
    """Why A - B, its interval or p is undefined or infinite (see the module's docstring); empty otherwise."""
    notes = []
    if undefined:
        notes.append(f"{undefined} image(s) have an undefined value (NaN) on either side: the dataset value, A - B, "
                     "its interval and p are undefined (n/a); those images count in none of wins/ties/losses")
    infinite = [name for name, value in (a, b) if math.isinf(value)]
    if len(infinite) == 2 and a[1] == b[1]:
        notes.append("both dataset values are infinite (each model has an image with an infinite value, e.g. PSNR "
                     "of an SR image identical to its HR): A - B, its interval and p are undefined (n/a); "
                     "wins/ties/losses and Wilcoxon compare images one by one (infinite on both sides is a tie)")
    elif infinite:
        notes.append(f"{' and '.join(infinite)}'s dataset value is infinite (an image with an infinite value, e.g. "
                     "PSNR of an SR image identical to its HR): A - B is infinite, an interval bound is infinite "
                     "where resamples draw such an image, and p is that of all infinite values falling on one side")
    if n == 1:
        notes.append(ONE_IMAGE_NOTE)
    return "; ".join(notes)


def comparable_metrics(a: ImageSet, b: ImageSet, names: Sequence[str] | None = None) -> list[Metric]:
    """The protocol's per-image metrics stored for both (``names``: these, each of which must be)."""
    from srbench.protocols import get_protocol

    proto = get_protocol(a.protocol)
    if names:
        wanted = [proto.metric(n) for n in names]
        for spec in wanted:
            for side in (a, b):
                side.rows(spec)  # a clear error when one model lacks it
        return wanted
    return [m for m in proto.metrics if not m.is_dataset_level and a.has(m) and b.has(m)]


# ---------------------------------------------------------------------------------------------------------
# Intervals for tables and plots


def table_intervals(store_rows: Sequence[Mapping], metrics: Sequence[str] | None = None, *,
                    datasets: Sequence[str] | None = None, protocols: Sequence[str] | None = None,
                    n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                    seed: int = DEFAULT_SEED) -> dict[tuple[str, str, str], Interval]:
    """(model, dataset, metric) -> bootstrap interval of every per-image metric a table of ``store_rows`` shows
    (the cells of ``report.tidy_from_store`` of the same rows; dataset-level metrics have none)."""
    from srbench.metrics.registry import protocol_rank
    from srbench.protocols import get_protocol

    out: dict[tuple[str, str, str], Interval] = {}
    # A metric of both protocols stored under both: the interval of the value the table shows, the one under the
    # metric's first protocol (report._one_protocol_per_cell), never the other protocol's.
    shown_under: dict[tuple[str, str, str], int] = {}
    for (model, dataset, protocol, _), image_set in image_sets(store_rows).items():
        if (datasets is not None and dataset not in datasets) or (protocols is not None and protocol not in protocols):
            continue
        for spec in get_protocol(protocol).metrics:
            if spec.is_dataset_level or (metrics is not None and spec.name not in metrics) or not image_set.has(spec):
                continue
            key = (model, dataset, spec.name)
            rank = protocol_rank(spec, protocol)
            if key in shown_under and shown_under[key] <= rank:
                continue
            shown_under[key] = rank
            out[key] = bootstrap_ci(image_set, spec, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return out
