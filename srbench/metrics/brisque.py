"""BRISQUE as the LIVE release computes it (``brisquescore.m`` / ``brisque_feature.m``).

Mittal, Moorthy and Bovik, "No-Reference Image Quality Assessment in the Spatial Domain", IEEE TIP 21(12),
2012. The release (https://github.com/utlive/BRISQUE, folder MATLAB) scores a plane with an epsilon-SVR
(libsvm, RBF kernel) trained on the whole LIVE IQA database: ``allmodel`` (a libsvm text model, 774 support
vectors, gamma 0.05, rho -153.591) on features scaled to [-1, 1] by ``allrange`` (an ``svm-scale`` range
file). Both files ship unchanged in ``srbench/data/brisque`` (Copyright (c) 2011 The University of Texas at
Austin; see ``srbench/data/brisque/NOTICE``); their sha256 is pinned here so that no other model is ever
reported as LIVE's BRISQUE.

Every step follows the MATLAB source:

* colour input: ``rgb2gray(uint8(im))`` (rounded), then double; a plane is used as is (0..255).
* MSCN: ``filter2(window, im, 'same')`` with ``window = fspecial('gaussian', 7, 7/6)``, i.e. a correlation
  with *zero* padding (NIQE's ``computefeature.m`` uses ``imfilter(..., 'replicate')``; BRISQUE does not),
  ``sigma = sqrt(|G*(I^2) - mu^2|)`` and ``(I - mu) ./ (sigma + 1)``.
* per scale, a GGD fit of the whole MSCN map (shape, sigma^2) and AGGD fits of its products with the
  circular shifts ``[0 1; 1 0; 1 1; -1 1]`` (shape, mean, left variance, right variance): 18 features; the
  shapes are looked up on the grid ``0.2:0.001:10`` with MATLAB's ``min`` (first minimum wins).
* between the two scales ``imresize(im, 0.5)`` in double (bicubic, antialiased, no rounding).
* the release passes the 36 features through text files: ``fprintf('%f')`` (6 decimals), ``svm-scale``
  (which writes ``%g``, 6 significant digits) and ``svm-predict`` (which writes the score with ``%g``). Those
  roundings move the score by up to ~1e-4, so they are reproduced; the value returned is the one MATLAB's
  ``load output`` reads.

Ill-conditioning (as for NIQE): where a 7x7 neighbourhood is constant, ``I - mu`` is zero in exact
arithmetic but +-1e-14 in floating point, and its sign (or exact zero) decides on which side of the AGGD
fits the pixel's products are counted: ``leftstd`` and ``rightstd`` are means over the negative and the
positive values, so *how many* tiny values each side gets moves them a lot. The release's number on an
image with flat areas is then an artifact of MATLAB's ``conv2`` summation order, which srbench does not
know: it matches the release to all printed digits on images without flat areas (pyiqa's calibration image
I04) and misses the others by up to 12% (I19: 72.2617 vs 64.0302; 30% of its pixels are flat). srbench computes
deterministically (same code path, float64, CPU) and :func:`brisque_conditioning` tells how far the score
moves when those signs are resolved differently.

A constant plane (after ``rgb2gray``) has no natural-scene statistics: its MSCN map is ``0 / (0 + 1)`` up to
rounding residues, and the release's score is then whatever those residues and the SVR make of it (114.72 at
gray level 1, 107.72 at 128, NaN at 0 and 255). BRISQUE is undefined there, as NIQE is: NaN at every level.

pyiqa's ``brisque`` (version "original") computes the same features but in float32 by default, on the
BT.601 Y channel instead of rgb2gray, without the text round-trips, and with a ``|.|`` instead of a squared
difference in the AGGD look-up (same minimiser except on exact ties).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import special

from srbench.errors import BadInputError
from srbench.matlab import imresize
from srbench.metrics import nss
from srbench.metrics.niqe import ILL_CONDITIONED_SPREAD
from srbench.metrics.nss import shape_grid
from srbench.paths import require_weight

BRISQUE_VERSION = "live-2"  # live-2: a constant plane is NaN (undefined), whatever its gray level
MODEL_FILE = "allmodel"
RANGE_FILE = "allrange"
# The LIVE release's files, byte for byte (CRLF line ends): a file of the same name with other contents is
# another model and is refused.
MODEL_SHA256 = "8b04d6045f1b27261610c8ab1730fdcc14ec80bfab0f1ab5f703bbc2927314de"
RANGE_SHA256 = "e47d753d96b631e1aa2dbac8c4e51ade767f2def8ce678c7130b6b3f90ee915f"
MODEL_ORIGIN = "the LIVE BRISQUE release (https://github.com/utlive/BRISQUE, MATLAB/allmodel and MATLAB/allrange)"
N_FEATURES = 36
# circshift(structdis, shifts(k, :)) of brisque_feature.m, as (rows, columns).
SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
# The shape grid is MATLAB's 0.2:0.001:10 (nss.shape_grid, re-exported here); the ratio tables are looked up
# with MATLAB's min (nss.nearest_index).
__all__ = ["shape_grid"]
_gaussian_window = nss.gaussian_window  # fspecial('gaussian', 7, 7/6), normalised once more


@functools.cache
def _ggd_table() -> np.ndarray:
    return nss.ggd_ratio(shape_grid())  # estimateggdparam.m's r_gam, decreasing in the shape


@functools.cache
def _aggd_table() -> np.ndarray:
    return nss.aggd_ratio(shape_grid())  # estimateaggdparam.m's r_gam, increasing in the shape


def ggd_fit(vec: np.ndarray) -> tuple[float, float]:
    """``estimateggdparam``: the GGD shape on the grid and the standard deviation sqrt(mean(x^2))."""
    vec = np.asarray(vec, dtype=np.float64).ravel()
    sigma_sq = float(np.mean(vec * vec))
    e_abs = float(np.mean(np.abs(vec)))
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero map gives NaN, as in MATLAB
        rho = np.float64(sigma_sq) / np.float64(e_abs) ** 2  # numpy floats: 0/0 is NaN, not ZeroDivisionError
    alpha = float(shape_grid()[nss.nearest_index(_ggd_table(), rho)])
    return alpha, math.sqrt(sigma_sq)


def _rms(values: np.ndarray) -> float:
    # sqrt(mean(v.^2)); MATLAB's mean of an empty vector is NaN.
    return math.sqrt(float(np.dot(values, values)) / values.size) if values.size else math.nan


def aggd_fit(vec: np.ndarray) -> tuple[float, float, float]:
    """``estimateaggdparam``: (shape, left std, right std), the stds *not* scaled by the shape.

    ``leftstd = sqrt(mean(x(x<0).^2))``, ``rightstd = sqrt(mean(x(x>0).^2))`` (zeros count in neither), and
    the shape minimises ``(r_gam - rhatnorm).^2`` on the grid.
    """
    vec = np.asarray(vec, dtype=np.float64).ravel()
    left_std = _rms(vec[vec < 0])
    right_std = _rms(vec[vec > 0])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        gamma_hat = left_std / right_std if right_std != 0 else math.nan
        # numpy floats, so that an all-zero map gives NaN (as in MATLAB) rather than ZeroDivisionError
        r_hat = np.float64(np.mean(np.abs(vec))) ** 2 / np.float64(np.mean(vec * vec))
        r_hat_norm = nss.aggd_rhat_norm(r_hat, gamma_hat)
        alpha = float(shape_grid()[nss.nearest_index(_aggd_table(), r_hat_norm, squared=True)])
    return alpha, left_std, right_std


def flat_mask(plane: np.ndarray) -> np.ndarray:
    """Pixels whose 7x7 zero-padded neighbourhood is constant up to rounding, and not all zero.

    There ``I - mu`` is a rounding residue; an all-zero neighbourhood gives an exact 0 in any order.
    """
    return nss.flat_mask(plane, padding="zero", skip_zero=True)


def mscn(plane: np.ndarray, flat_sign: float | None = None) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients as ``brisque_feature.m`` computes them.

    ``filter2(window, x, 'same')`` is a correlation with zero padding, so pixels within 3 of the border see
    a darker local mean; that is the release's behaviour and the SVR was trained on it. ``flat_sign``
    (diagnostics only) replaces ``I - mu`` on :func:`flat_mask` pixels by ``flat_sign * tiny``.
    """
    return nss.mscn(plane, padding="zero", flat_sign=flat_sign, skip_zero=True)


def _scale_features(structdis: np.ndarray) -> list[float]:
    alpha, overall_std = ggd_fit(structdis)
    feats = [alpha, overall_std**2]
    for shift in SHIFTS:
        pair = structdis * np.roll(structdis, shift, axis=(0, 1))  # circshift
        alpha, left_std, right_std = aggd_fit(pair)
        with np.errstate(invalid="ignore"):
            const = math.sqrt(special.gamma(1.0 / alpha)) / math.sqrt(special.gamma(3.0 / alpha))
            mean = (right_std - left_std) * (special.gamma(2.0 / alpha) / special.gamma(1.0 / alpha)) * const
        feats.extend([alpha, float(mean), left_std**2, right_std**2])
    return feats


def prepare_plane(img: np.ndarray) -> np.ndarray:
    """The release's input handling: colour -> ``rgb2gray(uint8(im))`` (rounded), then double."""
    img = nss.gray_plane(img, "BRISQUE")
    if min(img.shape) < 2:
        # imresize(0.5) of a single row or column leaves no neighbour products at the second scale.
        raise BadInputError(f"BRISQUE needs a plane of at least 2x2 pixels, got {img.shape[0]}x{img.shape[1]}")
    plane = img.astype(np.float64)
    if not np.all(np.isfinite(plane)):
        raise BadInputError("BRISQUE input has NaN or infinite pixels")
    return plane


def brisque_features(plane: np.ndarray, *, flat_sign: float | None = None) -> np.ndarray:
    """The 36 features of ``brisque_feature`` (18 per scale), float64, before any rounding.

    ``flat_sign`` is for :func:`brisque_conditioning` only (see :func:`mscn`).
    """
    plane = prepare_plane(plane)
    feats: list[float] = []
    for scale in range(2):
        feats.extend(_scale_features(mscn(plane, flat_sign)))
        if scale == 0:
            plane = imresize(plane, 0.5)
    return np.array(feats, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------
# The libsvm side: svm-scale -r allrange, svm-predict allmodel.


@dataclass(frozen=True)
class SvrModel:
    """A libsvm RBF regression model, dense: ``sum_i coef_i exp(-gamma |x - sv_i|^2) - rho``."""

    coef: np.ndarray  # (n_sv,)
    sv: np.ndarray  # (n_sv, n_features), zeros where the sparse file omits an index
    gamma: float
    rho: float

    def predict(self, x: np.ndarray) -> float:
        """libsvm's ``svm_predict`` for epsilon/nu-SVR (``-b 1`` changes nothing for regression)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] < self.sv.shape[1]:
            x = np.pad(x, (0, self.sv.shape[1] - x.shape[-1]))
        diff = self.sv - x[None, : self.sv.shape[1]]
        kernel = np.exp(-self.gamma * np.einsum("ij,ij->i", diff, diff))
        return float(kernel @ self.coef - self.rho)


_SVR_TYPES = ("epsilon_svr", "nu_svr")


def _parse_header(lines: list[str], where: str) -> tuple[dict[str, str], int]:
    header: dict[str, str] = {}
    for i, line in enumerate(lines):
        key, _, value = line.strip().partition(" ")
        if key == "SV":
            return header, i + 1
        if key:
            header[key] = value.strip()
    raise BadInputError(f"{where} is not a libsvm model: no 'SV' line")


def parse_libsvm_model(text: str, where: str = "libsvm model") -> SvrModel:
    """A libsvm text model (``svm_save_model``) of an RBF SVR; anything else is refused by name."""
    lines = text.splitlines()
    header, start = _parse_header(lines, where)
    if header.get("svm_type") not in _SVR_TYPES or header.get("kernel_type") != "rbf":
        raise BadInputError(
            f"{where}: BRISQUE needs an RBF regression model, got svm_type {header.get('svm_type')!r}, "
            f"kernel_type {header.get('kernel_type')!r}"
        )
    try:
        gamma, rho, total = float(header["gamma"]), float(header["rho"]), int(header["total_sv"])
        rows = [line.split() for line in lines[start:] if line.strip()]
        coef = np.array([float(row[0]) for row in rows])
        pairs = [[item.split(":") for item in row[1:]] for row in rows]
        n_features = max((int(i) for row in pairs for i, _ in row), default=0)
        sv = np.zeros((len(rows), n_features))
        for r, row in enumerate(pairs):
            idx = np.array([int(i) for i, _ in row], dtype=np.int64)
            sv[r, idx - 1] = [float(v) for _, v in row]
    except (KeyError, ValueError, IndexError) as exc:
        raise BadInputError(f"{where} is not a readable libsvm model ({type(exc).__name__}: {exc})") from exc
    if len(rows) != total:
        raise BadInputError(f"{where}: header says {total} support vectors, the file has {len(rows)}")
    return SvrModel(coef, sv, gamma, rho)


@dataclass(frozen=True)
class FeatureRange:
    """An ``svm-scale -s`` range file: features mapped linearly from [min, max] to [lower, upper]."""

    lower: float
    upper: float
    minimum: np.ndarray  # (n_features,), NaN for an index the file does not list
    maximum: np.ndarray

    def scale(self, x: np.ndarray) -> np.ndarray:
        """``svm-scale -r``: the end points map exactly to lower/upper; single-valued features become 0
        (svm-scale drops them, i.e. a sparse zero); values outside the range are extrapolated, not clipped."""
        x = np.asarray(x, dtype=np.float64)
        lo, hi = self.minimum, self.maximum
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.lower + (self.upper - self.lower) * (x - lo) / (hi - lo)
        out = np.where(x == lo, self.lower, np.where(x == hi, self.upper, out))
        return np.where((hi == lo) | np.isnan(lo), 0.0, out)


def parse_libsvm_range(text: str, where: str = "libsvm range file") -> FeatureRange:
    """An ``svm-scale`` range file: ``x``, ``lower upper``, then ``index min max`` lines (no y scaling)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != ["x"]:
        raise BadInputError(f"{where} is not an svm-scale range file (it must start with a line 'x')")
    try:
        lower, upper = (float(v) for v in lines[1])
        entries = [(int(i), float(a), float(b)) for i, a, b in lines[2:]]
    except (ValueError, IndexError) as exc:
        raise BadInputError(f"{where} is not a readable svm-scale range file ({exc})") from exc
    n = max((i for i, _, _ in entries), default=0)
    minimum, maximum = np.full(n, np.nan), np.full(n, np.nan)
    for i, a, b in entries:
        minimum[i - 1], maximum[i - 1] = a, b
    return FeatureRange(lower, upper, minimum, maximum)


def packaged_model_dir() -> Path:
    """Where the release's ``allmodel`` and ``allrange`` ship inside srbench."""
    return Path(str(resources.files("srbench.data").joinpath("brisque")))


def brisque_model_path(weights_dir: str | os.PathLike | None = None) -> Path:
    """``allmodel`` of the LIVE release: in the weights dir if put there, else srbench's packaged copy.

    Raises :class:`WeightsUnavailableError` (naming the file and where to put it) when neither exists. Its
    ``allrange`` is read from the same folder.
    """
    return require_weight(MODEL_FILE, "BRISQUE", MODEL_ORIGIN, extra_dirs=[packaged_model_dir()],
                          explicit=weights_dir)


def _read_pinned(path: Path, sha256: str) -> str:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise BadInputError(
            f"{path} is not the LIVE BRISQUE release's {path.name} (sha256 {digest}, expected {sha256}); "
            f"srbench reports BRISQUE only with the LIVE model: get it from {MODEL_ORIGIN}"
        )
    return data.decode("ascii")


@functools.cache
def _load_model(model_path: Path) -> tuple[SvrModel, FeatureRange]:
    range_path = model_path.with_name(RANGE_FILE)
    if not range_path.is_file():
        raise BadInputError(f"{model_path} has no {RANGE_FILE} beside it; get both from {MODEL_ORIGIN}")
    model = parse_libsvm_model(_read_pinned(model_path, MODEL_SHA256), str(model_path))
    ranges = parse_libsvm_range(_read_pinned(range_path, RANGE_SHA256), str(range_path))
    return model, ranges


def load_model(weights_dir: str | os.PathLike | None = None) -> tuple[SvrModel, FeatureRange]:
    """The SVR model and feature ranges BRISQUE scores with (read once per process), or a BadInputError naming
    the file that is not the release's."""
    return _load_model(brisque_model_path(weights_dir))


def _through_text(values: np.ndarray, fmt: str) -> np.ndarray:
    # What a C printf with ``fmt`` followed by strtod gives back (36 numbers: a loop is fine).
    return np.array([float(format(float(v), fmt)) for v in values])


def brisque_from_features(feats: np.ndarray, model: SvrModel, ranges: FeatureRange) -> float:
    """The release's score from the 36 features, with its text round-trips (see the module docstring)."""
    feats = np.asarray(feats, dtype=np.float64)
    if not np.all(np.isfinite(feats)):
        return math.nan  # the release's svm-scale cannot read MATLAB's "NaN"; there is no score to match
    written = _through_text(feats, "f")  # fprintf(fid, '%d:%f ', ...)
    scaled = _through_text(ranges.scale(written), "g")  # svm-scale prints "%d:%g "
    return float(format(model.predict(scaled), "g"))  # svm-predict prints "%g\n"; MATLAB loads that


def is_constant(plane: np.ndarray) -> bool:
    """A plane of one gray level: BRISQUE is undefined there (NaN; see the module docstring)."""
    return bool(plane.min() == plane.max())


def brisque(plane: np.ndarray, *, weights_dir: str | None = None) -> float:
    """BRISQUE of a plane (HxW, 0..255, as MATLAB gets it) or RGB image (rgb2gray first); lower is better.
    NaN for a constant plane.

    >>> import skimage.data
    >>> plane = skimage.data.camera()[:200, :200]                     # 200x200: two 96x96 blocks each way
    >>> noisy = np.clip(plane + np.random.default_rng(0).normal(0, 25, plane.shape), 0, 255).round()
    >>> round(brisque(plane), 4), round(brisque(noisy), 4), brisque(np.full((40, 40), 128.0))
    (10.3613, 69.113, nan)
    """
    model, ranges = load_model(weights_dir)
    plane = prepare_plane(plane)
    if is_constant(plane):
        return math.nan
    return brisque_from_features(brisque_features(plane), model, ranges)


@dataclass(frozen=True)
class BrisqueConditioning:
    """How much an image's BRISQUE depends on the rounding signs of its flat regions."""

    value: float
    flat_fraction: float
    low: float
    high: float

    @property
    def spread(self) -> float:
        return self.high - self.low

    @property
    def ill_conditioned(self) -> bool:
        return self.spread > ILL_CONDITIONED_SPREAD


def brisque_conditioning(plane: np.ndarray, *, weights_dir: str | None = None) -> BrisqueConditioning:
    """BRISQUE plus its range when flat-region MSCN values are resolved as zero, all positive or all negative.

    >>> import skimage.data
    >>> cond = brisque_conditioning(skimage.data.camera()[:200, :200])
    >>> cond.value, cond.flat_fraction, cond.spread                   # no flat area: no spread
    (10.3613, 0.0, 0.0)

    A spread above ``ILL_CONDITIONED_SPREAD`` means the score is an artifact of floating-point summation
    order: MATLAB (whose own order mixes signs) can print a different number, and it need not lie inside
    [low, high] (pyiqa's I03: release 94.6421, srbench 94.6457, range 94.6438..94.6462).
    """
    model, ranges = load_model(weights_dir)
    plane = prepare_plane(plane)
    if is_constant(plane):
        return BrisqueConditioning(math.nan, 1.0, math.nan, math.nan)
    value = brisque_from_features(brisque_features(plane), model, ranges)
    flat_fraction = float(flat_mask(plane).mean())
    if flat_fraction == 0.0:
        return BrisqueConditioning(value, 0.0, value, value)
    variants = np.array(
        [value] + [brisque_from_features(brisque_features(plane, flat_sign=s), model, ranges) for s in (0.0, 1.0, -1.0)]
    )
    finite = variants[~np.isnan(variants)]
    if finite.size == 0:
        return BrisqueConditioning(value, flat_fraction, math.nan, math.nan)
    return BrisqueConditioning(value, flat_fraction, float(finite.min()), float(finite.max()))
