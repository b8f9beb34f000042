"""NIQE as the LIVE release computes it (``computequality(im, 96, 96, 0, 0, mu, cov)``).

Mittal, Soundararajan and Bovik, "Making a Completely Blind Image Quality Analyzer", IEEE SPL 2013.
The pristine model in ``srbench/data/niqe_pristine_live.npz`` is the release's ``modelparameters.mat``
(Copyright (c) 2011 The University of Texas at Austin; see ``srbench/data/NOTICE``).

Every step follows the MATLAB source: rgb2gray with rounding, crop to whole 96x96 blocks, 7x7 Gaussian
(sigma 7/6) with replicated borders, MSCN with +1 in the denominator, AGGD fits by table look-up on the grid
0.2:0.001:10, circular shifts inside each block, ``imresize(0.5)`` in double between the two scales, NaN-aware
mean and complete-row covariance, and ``pinv`` with MATLAB's tolerance.

Ill-conditioning: where a 7x7 neighbourhood is constant, ``I - mu`` is zero in exact arithmetic but +-1e-14
in floating point, and its sign decides which half of the AGGD fit the value lands in. On images with large
flat areas the score then depends on summation order (MATLAB's own value is an artifact of its arithmetic).
srbench computes deterministically (same code path, float64, CPU) and :func:`niqe_conditioning` tells how
far the score moves when those signs are resolved differently.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy import special

from srbench.errors import BadInputError
from srbench.matlab import imresize
from srbench.metrics import nss

BLOCK = 96
FEATURES_PER_SCALE = 18
# Neighbour products of the release: circshift(structdis, [0 1; 1 0; 1 1; 1 -1]).
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
# A NIQE whose value moves more than this when flat-region signs are resolved differently is ill-conditioned:
# the number is an artifact of floating-point summation order (the one place this threshold is written).
ILL_CONDITIONED_SPREAD = 1e-3


@functools.cache
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """The LIVE pristine MVG: ``mu`` (36,) and ``cov`` (36, 36), float64."""
    with resources.files("srbench.data").joinpath("niqe_pristine_live.npz").open("rb") as fh:
        data = np.load(fh)
        mu, cov = data["mu"], data["cov"]
    mu.flags.writeable = False
    cov.flags.writeable = False
    return mu, cov


@functools.cache
def _aggd_table() -> tuple[np.ndarray, np.ndarray]:
    # The release's grid is MATLAB's colon 0.2:0.001:10 (nss.shape_grid). srbench's NIQE has always used
    # np.linspace(0.2, 10, 9801): same 9801 points and end points, but 1774 of them differ from the colon's
    # by an ulp or two (up to 1.8e-15). Kept, so that NIQE's numbers (its MATLAB-value tests and the drift
    # baseline) do not move; the shapes it reports can differ from MATLAB's in the last bit.
    gam = np.linspace(0.2, 10.0, 9801)
    return gam, nss.aggd_ratio(gam)


def _nanmean_rows(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    count = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(mask, x, 0.0).sum(axis=1) / count, np.nan)


def aggd_fit(vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The release's ``estimateaggdparam`` for each row of ``vecs``: (alpha, beta_left, beta_right)."""
    gam, r_gam = _aggd_table()
    sq = vecs * vecs
    left_std = np.sqrt(_nanmean_rows(sq, vecs < 0))
    right_std = np.sqrt(_nanmean_rows(sq, vecs > 0))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # degenerate blocks give NaN, as in MATLAB
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(vecs), axis=1) ** 2 / np.mean(sq, axis=1)
        r_hat_norm = nss.aggd_rhat_norm(r_hat, gamma_hat)
    alpha = gam[nss.nearest_index(r_gam, r_hat_norm, squared=True)]
    ratio = np.sqrt(special.gamma(1.0 / alpha) / special.gamma(3.0 / alpha))
    return alpha, left_std * ratio, right_std * ratio


def _block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """The 18 features of ``computefeature`` for every ``block`` x ``block`` tile: (n_blocks, 18)."""
    h, w = mscn.shape
    tiles: np.ndarray = mscn.reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3)
    tiles = tiles.reshape(-1, block, block)
    n = tiles.shape[0]
    feats = np.empty((n, FEATURES_PER_SCALE), dtype=np.float64)
    alpha, bl, br = aggd_fit(tiles.reshape(n, -1))
    feats[:, 0] = alpha
    feats[:, 1] = (bl + br) / 2
    for i, shift in enumerate(SHIFTS):
        pair = tiles * np.roll(tiles, shift, axis=(1, 2))
        alpha, bl, br = aggd_fit(pair.reshape(n, -1))
        mean = (br - bl) * (special.gamma(2.0 / alpha) / special.gamma(1.0 / alpha))
        feats[:, 2 + 4 * i : 6 + 4 * i] = np.stack([alpha, mean, bl, br], axis=1)
    return feats


def prepare_plane(img: np.ndarray) -> np.ndarray:
    """The release's input handling: colour -> rgb2gray (rounded), crop to whole 96x96 blocks, double."""
    img = nss.gray_plane(img, "NIQE")
    h, w = img.shape
    if (h // BLOCK) * (w // BLOCK) < 2:
        # The distortion model is a Gaussian fitted over blocks: one block has no covariance.
        raise BadInputError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, the plane is {h}x{w}")
    return img[: h - h % BLOCK, : w - w % BLOCK].astype(np.float64)


def niqe_features(plane: np.ndarray, flat_sign: float | None = None) -> np.ndarray:
    """Per-block features of both scales, (n_blocks, 36), for a plane from :func:`prepare_plane`.

    ``flat_sign`` (diagnostics only) replaces the MSCN value of every flat pixel by ``flat_sign * tiny``
    (0 for exact zero) instead of whatever sign rounding gave it.
    """
    feats = []
    for scale in (1, 2):
        # imfilter(..., 'replicate'); all-zero neighbourhoods count as flat (unlike BRISQUE).
        mscn = nss.mscn(plane, padding="replicate", flat_sign=flat_sign)
        feats.append(_block_features(mscn, BLOCK // scale))
        if scale == 1:
            plane = imresize(plane, 0.5)
    return np.concatenate(feats, axis=1)


def _mvg_distance(feats: np.ndarray) -> float:
    mu_p, cov_p = pristine_model()
    finite = ~np.isnan(feats)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_d = np.where(finite, feats, 0.0).sum(axis=0) / count  # nanmean
    complete = feats[finite.all(axis=1)]  # nancov drops incomplete rows
    if complete.shape[0] < 2:
        cov_d = np.full((feats.shape[1], feats.shape[1]), np.nan)
    else:
        cov_d = np.cov(complete, rowvar=False)
    return float(np.sqrt(_quad_pinv(mu_p - mu_d, (cov_p + cov_d) / 2.0)))


def _quad_pinv(d: np.ndarray, mat: np.ndarray) -> float:
    if not np.all(np.isfinite(mat)) or not np.all(np.isfinite(d)):
        return float("nan")
    # MATLAB pinv: singular values below max(size) * eps(max singular value) are dropped.
    u, s, vt = np.linalg.svd(mat)
    tol = max(mat.shape) * np.spacing(s[0])
    keep = s > tol
    inv = (vt[keep].T / s[keep]) @ u[:, keep].T
    return float(d @ inv @ d)


def niqe(img: np.ndarray) -> float:
    """NIQE of a plane (HxW, 0..255) or RGB image (converted with rgb2gray), lower is better."""
    return _mvg_distance(niqe_features(prepare_plane(img)))


@dataclass(frozen=True)
class NiqeConditioning:
    """How much an image's NIQE depends on the rounding signs of flat regions."""

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


def niqe_conditioning(img: np.ndarray) -> NiqeConditioning:
    """NIQE plus its range when flat-region MSCN signs are resolved as zero, all positive or all negative.

    A spread above ``ILL_CONDITIONED_SPREAD`` means the score is an artifact of floating-point summation
    order: another implementation (MATLAB included) can legitimately print a different number.
    """
    plane = prepare_plane(img)
    value = _mvg_distance(niqe_features(plane))
    flat_fraction = float(nss.flat_mask(plane, padding="replicate").mean())
    if flat_fraction == 0.0:
        return NiqeConditioning(value, 0.0, value, value)
    variants = np.array([value] + [_mvg_distance(niqe_features(plane, sign)) for sign in (0.0, 1.0, -1.0)])
    finite = variants[~np.isnan(variants)]
    if finite.size == 0:  # NIQE is undefined for this image whichever way the signs fall
        return NiqeConditioning(value, flat_fraction, math.nan, math.nan)
    return NiqeConditioning(value, flat_fraction, float(finite.min()), float(finite.max()))
