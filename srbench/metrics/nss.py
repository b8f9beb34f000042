"""Natural-scene-statistics primitives shared by NIQE and BRISQUE (and the place for NRQM's look-up).

Both LIVE releases compute MSCN coefficients with ``fspecial('gaussian', 7, 7/6)`` normalised once more,
fit (asymmetric) generalised Gaussians by moment matching, and find the shape by scanning a table of a
gamma-function ratio on a shape grid with MATLAB's ``[~, i] = min(...)``. What differs between them is
explicit in the arguments here: the padding of the local mean (NIQE's ``imfilter(..., 'replicate')``,
BRISQUE's ``filter2(..., 'same')``, i.e. zeros), whether an all-zero neighbourhood counts as flat, and the
shape grid (BRISQUE's is MATLAB's colon :func:`shape_grid`; srbench's NIQE keeps its ``linspace`` grid, see
``srbench.metrics.niqe``).

Ill-conditioning: where a 7x7 neighbourhood is constant, ``I - mu`` is zero in exact arithmetic but +-1e-14
in floating point; :func:`flat_mask` finds those pixels and ``mscn(..., flat_sign=s)`` resolves their sign
as ``s * TINY`` for the metrics' conditioning checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, TypeVar

import numpy as np
from scipy import ndimage, special

from srbench.errors import BadInputError
from srbench.matlab import colon, fspecial_gaussian, rgb2gray, to_uint8

# How the 7x7 local statistics see beyond the border: "replicate" = imfilter(..., 'replicate') (NIQE),
# "zero" = filter2(..., 'same') (BRISQUE).
Padding = Literal["replicate", "zero"]
# A neighbourhood whose range is below this (relative) is constant up to rounding.
FLAT_RTOL = 1e-9
# Perturbation used to resolve the sign of exactly-flat MSCN values in the conditioning checks.
TINY = 1e-150

_Num = TypeVar("_Num", float, np.ndarray)


@functools.cache
def gaussian_window() -> np.ndarray:
    """``window = fspecial('gaussian', 7, 7/6); window = window/sum(sum(window))`` of both releases."""
    window = fspecial_gaussian(7, 7.0 / 6.0)
    window = window / window.sum()
    window.flags.writeable = False
    return window


@functools.cache
def shape_grid() -> np.ndarray:
    """MATLAB's ``0.2:0.001:10`` (9801 points), element by element (:func:`srbench.matlab.colon`)."""
    grid = colon(0.2, 0.001, 10.0)
    grid.flags.writeable = False
    return grid


def ggd_ratio(gam: np.ndarray) -> np.ndarray:
    """``gamma(1./gam).*gamma(3./gam)./gamma(2./gam).^2`` (``estimateggdparam.m``), decreasing in ``gam``."""
    return special.gamma(1.0 / gam) * special.gamma(3.0 / gam) / special.gamma(2.0 / gam) ** 2


def aggd_ratio(gam: np.ndarray) -> np.ndarray:
    """``gamma(2./gam).^2./(gamma(1./gam).*gamma(3./gam))`` (``estimateaggdparam.m``), increasing in ``gam``."""
    return special.gamma(2.0 / gam) ** 2 / (special.gamma(1.0 / gam) * special.gamma(3.0 / gam))


def aggd_rhat_norm(r_hat: _Num, gamma_hat: _Num) -> _Num:
    """``rhat*(gammahat^3+1)*(gammahat+1)/((gammahat^2+1)^2)`` of ``estimateaggdparam.m``.

    Evaluated on whatever it is given (Python floats or arrays), so each caller keeps its own arithmetic.
    """
    return r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2


def _distance(table: np.ndarray, idx: np.ndarray, values: np.ndarray, squared: bool) -> np.ndarray:
    diff = table[idx] - values
    return diff * diff if squared else np.abs(diff)


def nearest_index(table: np.ndarray, values: np.ndarray | float, *, squared: bool = False) -> np.ndarray:
    """MATLAB's ``[~, i] = min(abs(table - v))`` (or ``min((table - v).^2)`` when ``squared``) for each value.

    ``table`` is 1-D, finite and strictly increasing or strictly decreasing. Returns 0-based indices with
    the shape of ``values``: the first minimum on ties (rounding can tie several entries for a value far
    outside the table), and 0 where every distance is NaN or infinite (NaN values, overflow), as MATLAB's
    ``min`` returns index 1 then. Found by bisection, not by a full scan: O(log n) per value.
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 1 or table.size == 0 or not np.all(np.isfinite(table)):
        raise ValueError("nearest_index needs a non-empty, finite 1-D table")
    n = table.size
    steps = np.diff(table)
    increasing = bool(np.all(steps > 0))
    if not increasing and not np.all(steps < 0):
        raise ValueError("nearest_index needs a strictly increasing or strictly decreasing table")
    vals = np.asarray(values, dtype=np.float64)
    flat = vals.ravel()
    if increasing:
        split = np.searchsorted(table, flat, side="left")  # table[:split] < v <= table[split:]
    else:
        split = n - np.searchsorted(table[::-1], flat, side="left")  # table[:split] >= v > table[split:]
    # Distances grow (weakly, after rounding) away from v on each side: the nearest entry is one of the two
    # neighbours of the split, and ties can only extend the run before the split towards lower indices.
    before = np.clip(split - 1, 0, n - 1)
    after = np.clip(split, 0, n - 1)
    with np.errstate(invalid="ignore", over="ignore"):
        d_before = np.where(split > 0, _distance(table, before, flat, squared), np.inf)
        d_after = np.where(split < n, _distance(table, after, flat, squared), np.inf)
        best = np.minimum(d_before, d_after)  # NaN when v is NaN
        pick = np.where(d_before <= d_after, before, after)
        # A run of ties before the split: move to its first entry (bisection on the non-increasing side).
        run = (d_before <= d_after) & (before > 0)
        run[run] = _distance(table, before[run] - 1, flat[run], squared) <= best[run]
        if np.any(run):
            lo = np.zeros(int(run.sum()), dtype=np.intp)
            hi = before[run] - 1  # the first entry with distance == best lies in [lo, hi]
            target, v = best[run], flat[run]
            while np.any(lo < hi):
                mid = (lo + hi) // 2
                ok = _distance(table, mid, v, squared) <= target
                hi = np.where(ok, mid, hi)
                lo = np.where(ok, lo, mid + 1)
            pick[run] = lo
    pick = np.where(np.isfinite(best), pick, 0)
    return pick.reshape(vals.shape)


def flat_mask(plane: np.ndarray, *, padding: Padding, skip_zero: bool = False) -> np.ndarray:
    """Pixels whose 7x7 neighbourhood (padded as ``padding``) is constant up to rounding.

    There ``I - mu`` is a rounding residue. ``skip_zero`` leaves out all-zero neighbourhoods (where ``I - mu``
    is an exact 0 in any summation order): BRISQUE does, srbench's NIQE does not.
    """
    kwargs: dict = {"mode": "nearest"} if padding == "replicate" else {"mode": "constant", "cval": 0.0}
    hi = ndimage.maximum_filter(plane, size=7, **kwargs)
    lo = ndimage.minimum_filter(plane, size=7, **kwargs)
    flat = (hi - lo) <= FLAT_RTOL * np.maximum(np.abs(hi), 1.0)
    return flat & (hi != 0) if skip_zero else flat


def local_moments(plane: np.ndarray, *, padding: Padding) -> tuple[np.ndarray, np.ndarray]:
    """``mu`` and ``sigma = sqrt(|mu2 - mu.^2|)`` of :func:`mscn`: correlations with :func:`gaussian_window`
    padded as ``padding``."""
    window = gaussian_window()
    kwargs: dict = {"mode": "nearest"} if padding == "replicate" else {"mode": "constant", "cval": 0.0}
    mu = ndimage.correlate(plane, window, **kwargs)
    sigma = np.sqrt(np.abs(ndimage.correlate(plane * plane, window, **kwargs) - mu * mu))
    return mu, sigma


def mscn(plane: np.ndarray, *, padding: Padding, flat_sign: float | Callable[[np.ndarray], np.ndarray] | None = None,
         skip_zero: bool = False, moments: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) ./ (sigma + 1)``.

    ``mu`` and ``mu2`` are correlations with :func:`gaussian_window` padded as ``padding``, and
    ``sigma = sqrt(|mu2 - mu.^2|)``. ``flat_sign`` (diagnostics only) replaces ``I - mu`` on
    ``flat_mask(plane, padding=padding, skip_zero=skip_zero)`` pixels by ``sign * TINY``: one sign for all, or a
    function from those pixels' values to their signs. ``moments``: ``local_moments(plane, padding=padding)``
    where the caller has them already.
    """
    mu, sigma = local_moments(plane, padding=padding) if moments is None else moments
    centred = plane - mu
    if callable(flat_sign):
        flat = flat_mask(plane, padding=padding, skip_zero=skip_zero)
        centred[flat] = np.asarray(flat_sign(plane[flat]), dtype=np.float64) * TINY
    elif flat_sign is not None:
        centred = np.where(flat_mask(plane, padding=padding, skip_zero=skip_zero), flat_sign * TINY, centred)
    return centred / (sigma + 1.0)


def gray_plane(img: np.ndarray, metric: str) -> np.ndarray:
    """The LIVE releases' input handling: colour -> ``rgb2gray(uint8(im))`` (rounded), one channel -> the
    plane; anything else is refused naming ``metric``."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        img = rgb2gray(img if img.dtype == np.uint8 else to_uint8(img))
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise BadInputError(f"{metric} expects a 2-D plane or an RGB image, got shape {img.shape}")
    return img
