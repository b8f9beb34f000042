"""NIQE as the LIVE release computes it (``computequality(im, 96, 96, 0, 0, mu, cov)``).

Mittal, Soundararajan and Bovik, "Making a Completely Blind Image Quality Analyzer", IEEE SPL 2013.
The pristine model in ``srbench/data/niqe_pristine_live.npz`` is the release's ``modelparameters.mat``
(Copyright (c) 2011 The University of Texas at Austin; see ``srbench/data/NOTICE``).

Every step follows the MATLAB source: rgb2gray with rounding, crop to whole 96x96 blocks, 7x7 Gaussian
(sigma 7/6) with replicated borders, MSCN with +1 in the denominator, AGGD fits by table look-up on the grid
0.2:0.001:10, circular shifts inside each block, ``imresize(0.5)`` in double between the two scales, NaN-aware
mean and complete-row covariance, and ``pinv`` with MATLAB's tolerance.

Ill-conditioning: where a 7x7 neighbourhood is constant, ``I - mu`` is zero in exact arithmetic but +-1e-14
(or exactly 0) in floating point, and its sign decides which half of the AGGD fit the value lands in. On images
with large flat areas the score then depends on summation order (MATLAB's own value is an artifact of its
arithmetic). srbench computes deterministically (same code path, float64, CPU) and :func:`niqe_conditioning`
tells how far the score moves when those signs are resolved otherwise.

How MATLAB resolves them: in a constant neighbourhood of value v, ``mu = imfilter(...)`` is a sum of v times the
kernel's taps, so the residue ``v - mu`` is a function of v and of the summation order alone: every flat pixel of
one gray level gets the same sign (or exact 0), and different levels get different ones. No uniform rule (all 0,
all +, all -) reproduces MATLAB's values; the conditioning therefore samples sign patterns *per gray level* (each
level of each scale independently -, 0 or +; an all-zero neighbourhood is an exact 0 in any order), which
brackets the LIVE release's printed values where the uniform rules did not (tests/metrics/test_niqe_conditioning.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy import sparse, special

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
# Random per-level sign patterns drawn for the conditioning range, besides the three uniform ones. With K draws a
# further draw falls outside their [min, max] with probability 2 / (K + 1): 0.2% here.
CONDITIONING_DRAWS = 999
CONDITIONING_SEED = 2013  # fixed: the range is a deterministic function of the image


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


_Scale = tuple[np.ndarray, np.ndarray, np.ndarray]  # a plane, its local mean and its local deviation


def _two_scales(plane: np.ndarray) -> list[_Scale]:
    """The plane and its ``imresize(plane, 0.5)``, each with ``nss.local_moments`` (imfilter(..., 'replicate'))."""
    scales = []
    for scale in (1, 2):
        scales.append((plane, *nss.local_moments(plane, padding="replicate")))
        if scale == 1:
            plane = imresize(plane, 0.5)
    return scales


def niqe_features(plane: np.ndarray, flat_sign: float | None = None, *,
                  scales: list[_Scale] | None = None) -> np.ndarray:
    """Per-block features of both scales, (n_blocks, 36), for a plane from :func:`prepare_plane`.

    ``flat_sign`` (diagnostics only) replaces the MSCN value of every flat pixel by ``flat_sign * tiny``
    (0 for exact zero) instead of whatever sign rounding gave it. ``scales``: ``_two_scales(plane)``, where the
    caller needs them again.
    """
    feats = []
    for i, (level, mu, sigma) in enumerate(_two_scales(plane) if scales is None else scales):
        # All-zero neighbourhoods count as flat (unlike BRISQUE).
        mscn = nss.mscn(level, padding="replicate", flat_sign=flat_sign, moments=(mu, sigma))
        feats.append(_block_features(mscn, BLOCK // (i + 1)))
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
    """NIQE of a plane (HxW, 0..255) or RGB image (converted with rgb2gray), lower is better.

    >>> import skimage.data
    >>> plane = skimage.data.camera()[:200, :200]                     # 200x200: two 96x96 blocks each way
    >>> noisy = np.clip(plane + np.random.default_rng(0).normal(0, 25, plane.shape), 0, 255).round()
    >>> round(niqe(plane), 4), round(niqe(noisy), 4)                  # noise: a worse (higher) score
    (7.8164, 24.0763)
    """
    return _mvg_distance(niqe_features(prepare_plane(img)))


@dataclass(frozen=True)
class NiqeConditioning:
    """How much an image's NIQE depends on the rounding signs of its flat regions.

    ``low``/``high``/``median``: over the uniform resolutions (all -, 0, +) and ``draws`` random per-level
    patterns (``levels`` flat gray levels over both scales), with srbench's own value included in the range."""

    value: float
    flat_fraction: float
    low: float
    high: float
    median: float = math.nan
    draws: int = 0
    levels: int = 0

    @property
    def spread(self) -> float:
        return self.high - self.low

    @property
    def ill_conditioned(self) -> bool:
        return self.spread > ILL_CONDITIONED_SPREAD


def niqe_conditioning(img: np.ndarray, *, draws: int = CONDITIONING_DRAWS,
                      seed: int = CONDITIONING_SEED) -> NiqeConditioning:
    """NIQE plus the range and median of the score over sign patterns of its flat regions' rounding residues.

    A spread above ``ILL_CONDITIONED_SPREAD`` means the score is an artifact of floating-point summation
    order: another implementation (MATLAB included) can legitimately print another number in ``[low, high]``.
    Only the counts of negative and positive terms of the affected blocks' AGGD fits change from one pattern to
    the next, so every pattern costs a few vector operations, not a NIQE (:class:`_SignCounts`).

    >>> import skimage.data
    >>> cond = niqe_conditioning(skimage.data.camera()[:200, :200])
    >>> round(cond.value, 4), cond.flat_fraction, cond.low == cond.high, cond.ill_conditioned  # no flat area
    (7.8164, 0.0, True, False)
    """
    plane = prepare_plane(img)
    scales = _two_scales(plane)  # the score and the sign model share the local moments (the same arrays)
    value = _mvg_distance(niqe_features(plane, scales=scales))
    flat = nss.flat_mask(plane, padding="replicate")
    flat_fraction = float(flat.mean())
    if flat_fraction == 0.0:
        return NiqeConditioning(value, 0.0, value, value, value, 0, 0)
    model = _SignModel(plane, scales=scales, flat=flat)
    if model.n_levels == 0:  # every flat pixel is in an all-zero neighbourhood: exact zeros, nothing to resolve
        return NiqeConditioning(value, flat_fraction, value, value, value, 0, 0)
    rng = np.random.default_rng(seed)
    patterns = np.concatenate([np.full((3, model.n_levels), [[-1], [0], [1]]),
                               rng.integers(-1, 2, size=(draws, model.n_levels))]).astype(np.float64)
    scores = model.scores(patterns)
    finite = scores[~np.isnan(scores)]
    if finite.size == 0:  # NIQE is undefined for this image whichever way the signs fall
        return NiqeConditioning(value, flat_fraction, math.nan, math.nan, math.nan, draws, model.n_levels)
    bracket = finite if math.isnan(value) else np.append(finite, value)
    sampled = scores[3:][~np.isnan(scores[3:])]
    median = float(np.median(sampled)) if sampled.size else math.nan
    return NiqeConditioning(value, flat_fraction, float(bracket.min()), float(bracket.max()), median, draws,
                            model.n_levels)


def niqe_for_signs(plane: np.ndarray, signs: np.ndarray) -> float:
    """NIQE of a plane from :func:`prepare_plane` with its flat pixels resolved by ``signs`` (one per level of
    :class:`_SignModel`), computed the slow way, pixel by pixel: the reference :class:`_SignModel` is tested
    against."""
    model = _SignModel(plane)
    lookup = [dict(zip(levels.tolist(), signs[offset:offset + levels.size].tolist(), strict=True))
              for levels, offset in zip(model.level_values, model.level_offsets, strict=True)]
    feats = []
    for scale in (1, 2):
        table = lookup[scale - 1]

        def signs_of(values: np.ndarray, t: dict = table) -> np.ndarray:
            return np.array([t.get(_level_key(x), 0.0) for x in values])

        mscn = nss.mscn(plane, padding="replicate", flat_sign=signs_of)
        feats.append(_block_features(mscn, BLOCK // scale))
        if scale == 1:
            plane = imresize(plane, 0.5)
    return _mvg_distance(np.concatenate(feats, axis=1))


def _level_key(value: float) -> float:
    # Flat values of the half-scale plane come out of imresize's sums and differ by ulps within one region.
    return round(float(value), 6)


_FIXED = (-1.0, 0.0, 1.0)  # the signs of terms that do not depend on a pattern, after the levels' indices


class _SignModel:
    """The two scales' AGGD term counts, split into terms made of non-flat pixels only (fixed) and terms that
    involve a flat pixel, whose sign is the product of the signs of their two factors (a level's sign, or a fixed
    sign); see :func:`niqe_conditioning`."""

    def __init__(self, plane: np.ndarray, *, scales: list[_Scale] | None = None,
                 flat: np.ndarray | None = None) -> None:
        """``scales``: ``_two_scales(plane)`` and ``flat``: the first scale's ``nss.flat_mask``, where the caller
        has them already."""
        self.level_values: list[np.ndarray] = []
        self.level_offsets: list[int] = []
        parts = []
        offset = 0
        for i, (level, mu, sigma) in enumerate(_two_scales(plane) if scales is None else scales):
            if i > 0 or flat is None:
                flat = nss.flat_mask(level, padding="replicate")
            keys = np.array([_level_key(v) for v in level[flat]]) if flat.any() else np.zeros(0)
            levels = np.unique(keys[keys != 0])  # an all-zero neighbourhood is an exact 0 in any summation order
            self.level_values.append(levels)
            self.level_offsets.append(offset)
            parts.append((level, mu, sigma, flat, keys, levels, offset))
            offset += levels.size
        self.n_levels = offset
        self.counts = [_SignCounts(lv, mu, sigma, f, k, levels, off, self.n_levels, BLOCK // (i + 1))
                       for i, (lv, mu, sigma, f, k, levels, off) in enumerate(parts)]

    def scores(self, patterns: np.ndarray) -> np.ndarray:
        """NIQE for each row of ``patterns`` (K, n_levels) of signs in {-1, 0, 1}."""
        extended = np.concatenate([patterns, np.tile(_FIXED, (patterns.shape[0], 1))], axis=1)
        feats = np.concatenate([c.features(extended) for c in self.counts], axis=2)  # (K, n_blocks, 36)
        return _mvg_distances(feats)


def _mvg_distances(feats: np.ndarray) -> np.ndarray:
    """:func:`_mvg_distance` of each (n_blocks, 36) slice of ``feats``, batched where no feature is NaN (the
    same formulas; the sums may round differently, by about 1e-15 of the score)."""
    out = np.empty(feats.shape[0])
    incomplete = np.isnan(feats).any(axis=(1, 2))
    for i in np.flatnonzero(incomplete):
        out[i] = _mvg_distance(feats[i])
    whole = feats[~incomplete]
    if whole.shape[0] and whole.shape[1] >= 2:
        mu_p, cov_p = pristine_model()
        centred = whole - whole.mean(axis=1, keepdims=True)
        # Batched BLAS products (einsum's own loop was 10x slower on 1,000 draws of 15 blocks x 36 features).
        cov_d = np.matmul(np.ascontiguousarray(centred.transpose(0, 2, 1)), centred) / (whole.shape[1] - 1)
        d = mu_p - whole.mean(axis=1)
        mats = (cov_p + cov_d) / 2.0
        # (cov_p + cov_d) / 2 is positive definite (the pristine covariance is, and cov_d is semi-definite): no
        # singular value falls under pinv's tolerance, pinv is the inverse, and with M = L L' the quadratic form
        # d' M^-1 d is |L^-1 d|^2. Where a matrix is not (a degenerate model file), MATLAB's pinv semantics per draw.
        try:
            low = np.linalg.cholesky(mats)
        except np.linalg.LinAlgError:
            quad = np.array([_quad_pinv(x, m) for x, m in zip(d, mats, strict=True)])
        else:
            y = np.empty_like(d)  # L^-1 d by forward substitution, one row at a time for all draws
            for row in range(d.shape[1]):
                y[:, row] = (d[:, row] - np.einsum("kj,kj->k", low[:, row, :row], y[:, :row])) / low[:, row, row]
            quad = np.einsum("ki,ki->k", y, y)
        out[~incomplete] = np.sqrt(quad)
    elif whole.shape[0]:
        out[~incomplete] = [_mvg_distance(f) for f in whole]
    return out


class _SignCounts:
    """One scale's per-block AGGD sums for the 5 fits of :func:`_block_features` (the coefficients, then the
    four neighbour products), as fixed parts plus pattern-dependent entries."""

    GROUPS = 1 + len(SHIFTS)

    def __init__(self, plane: np.ndarray, mu: np.ndarray, sigma: np.ndarray, flat: np.ndarray, keys: np.ndarray,
                 levels: np.ndarray, offset: int, n_levels: int, block: int) -> None:
        # mu, sigma: nss.local_moments(plane), as nss.mscn has them; sigma is needed below too.
        mscn = (plane - mu) / (sigma + 1.0)
        # What the slow path puts at a flat pixel: sign * TINY / (sigma + 1); its magnitude matters only in blocks
        # with no other terms of a sign, and is kept for those.
        tiny = nss.TINY / (sigma + 1.0)
        fixed_index = n_levels + 1 + np.sign(mscn).astype(np.intp)  # -1, 0, +1 -> the fixed signs' indices
        index = fixed_index.copy()
        flat_index = np.full(keys.shape, n_levels + 1, dtype=np.intp)  # all-zero neighbourhoods: exact 0
        nonzero = keys != 0
        flat_index[nonzero] = offset + np.searchsorted(levels, keys[nonzero])
        index[flat] = flat_index
        h, w = plane.shape
        nb = (h // block) * (w // block)
        self.n_terms = block * block
        self.n_groups = nb * self.GROUPS

        def tiles(a: np.ndarray) -> np.ndarray:
            return a.reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3).reshape(nb, block, block)

        t_val, t_flat, t_idx, t_tiny = tiles(mscn), tiles(flat), tiles(index), tiles(tiny)
        block_id = np.broadcast_to(np.arange(nb)[:, None, None], t_val.shape)
        terms = [(t_val, t_flat, t_idx, np.full_like(t_idx, n_levels + 2), t_tiny)]  # the coefficients: sign x +1
        for shift in SHIFTS:
            r_val, r_flat, r_idx, r_tiny = (np.roll(a, shift, axis=(1, 2)) for a in (t_val, t_flat, t_idx, t_tiny))
            value = t_val * r_val
            magnitude = np.where(t_flat, t_tiny, np.abs(t_val)) * np.where(r_flat, r_tiny, np.abs(r_val))
            terms.append((value, t_flat | r_flat, t_idx, r_idx, magnitude))
        self.fixed = np.zeros((nb, self.GROUPS, 6))  # S_neg, n_neg, S_pos, n_pos, sum |x|, sum x^2
        rows, a_idx, b_idx, counts, mags, mags2 = [], [], [], [], [], []
        for g, (value, involved, ia, ib, magnitude) in enumerate(terms):
            real = np.where(involved, 0.0, value)
            sq = real * real
            self.fixed[:, g] = np.stack([
                np.where(real < 0, sq, 0.0).sum(axis=(1, 2)), (real < 0).sum(axis=(1, 2)),
                np.where(real > 0, sq, 0.0).sum(axis=(1, 2)), (real > 0).sum(axis=(1, 2)),
                np.abs(real).sum(axis=(1, 2)), sq.sum(axis=(1, 2))], axis=1)
            if not involved.any():
                continue
            # One entry per (block, factor signs) with its count and summed magnitudes.
            width = n_levels + len(_FIXED)
            key = ((block_id[involved] * self.GROUPS + g) * width + ia[involved]) * width + ib[involved]
            unique, inverse = np.unique(key, return_inverse=True)
            inverse = inverse.ravel()
            m = magnitude[involved]
            rows.append(unique // (width * width))
            a_idx.append(unique // width % width)
            b_idx.append(unique % width)
            counts.append(np.bincount(inverse, minlength=len(unique)).astype(np.float64))
            mags.append(np.bincount(inverse, weights=m, minlength=len(unique)))
            mags2.append(np.bincount(inverse, weights=m * m, minlength=len(unique)))
        if rows:
            row = np.concatenate(rows)
            self.a: np.ndarray = np.concatenate(a_idx)
            self.b: np.ndarray = np.concatenate(b_idx)
            self.count: np.ndarray = np.concatenate(counts)
            self.mag: np.ndarray = np.concatenate(mags)
            self.mag2: np.ndarray = np.concatenate(mags2)
            self.scatter = sparse.csr_matrix((np.ones(row.size), (np.arange(row.size), row)),
                                             shape=(row.size, self.n_groups))
        else:
            self.a = self.b = np.zeros(0, dtype=np.intp)
            self.count = self.mag = self.mag2 = np.zeros(0)
            self.scatter = sparse.csr_matrix((0, self.n_groups))

    def features(self, extended: np.ndarray) -> np.ndarray:
        """(K, n_blocks, 18) for patterns ``extended`` (K, n_levels + 3): levels' signs, then -1, 0, +1."""
        k = extended.shape[0]
        sign = extended[:, self.a] * extended[:, self.b]  # (K, entries)
        neg, pos = sign < 0, sign > 0

        def per_group(weights: np.ndarray) -> np.ndarray:
            return np.asarray(self.scatter.T @ weights.T).T.reshape(k, -1, self.GROUPS)  # (K, nb, 5)

        s_neg = self.fixed[..., 0] + per_group(neg * self.mag2)
        n_neg = self.fixed[..., 1] + per_group(neg * self.count)
        s_pos = self.fixed[..., 2] + per_group(pos * self.mag2)
        n_pos = self.fixed[..., 3] + per_group(pos * self.count)
        total_abs = self.fixed[..., 4] + per_group((neg | pos) * self.mag)
        total_sq = self.fixed[..., 5] + per_group((neg | pos) * self.mag2)
        gam, r_gam = _aggd_table()
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            left_std = np.sqrt(np.where(n_neg > 0, s_neg / n_neg, np.nan))
            right_std = np.sqrt(np.where(n_pos > 0, s_pos / n_pos, np.nan))
            gamma_hat = left_std / right_std
            r_hat = (total_abs / self.n_terms) ** 2 / (total_sq / self.n_terms)
            r_hat_norm = nss.aggd_rhat_norm(r_hat, gamma_hat)
        grid_index = nss.nearest_index(r_gam, r_hat_norm, squared=True)
        alpha = gam[grid_index]
        beta_ratio, mean_ratio = _gamma_ratios()  # the same values _block_features computes, looked up
        bl, br = left_std * beta_ratio[grid_index], right_std * beta_ratio[grid_index]
        feats = np.empty((*alpha.shape[:2], FEATURES_PER_SCALE))
        feats[..., 0] = alpha[..., 0]
        feats[..., 1] = (bl[..., 0] + br[..., 0]) / 2
        for i in range(len(SHIFTS)):
            g = i + 1
            mean = (br[..., g] - bl[..., g]) * mean_ratio[grid_index[..., g]]
            feats[..., 2 + 4 * i : 6 + 4 * i] = np.stack([alpha[..., g], mean, bl[..., g], br[..., g]], axis=-1)
        return feats


@functools.cache
def _gamma_ratios() -> tuple[np.ndarray, np.ndarray]:
    """On the AGGD shape grid: sqrt(gamma(1/a) / gamma(3/a)) (scale of the betas) and gamma(2/a) / gamma(1/a)
    (the products' mean), element by element as :func:`aggd_fit` and :func:`_block_features` compute them."""
    gam = _aggd_table()[0]
    beta_ratio = np.sqrt(special.gamma(1.0 / gam) / special.gamma(3.0 / gam))
    return beta_ratio, special.gamma(2.0 / gam) / special.gamma(1.0 / gam)
