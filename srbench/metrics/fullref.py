"""Full-reference metrics: PSNR, MSE and Wang et al.'s SSIM, as pure float64 functions."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from srbench.errors import BadInputError

SSIM_K1, SSIM_K2, SSIM_L = 0.01, 0.03, 255.0
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5


def _pair(a: np.ndarray, b: np.ndarray, fn: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise BadInputError(f"{fn}: images differ in size, {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise BadInputError(f"{fn}: expected HxW or HxWxC images, got shape {a.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error in float64 (images in 0..255).

    >>> hr = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))   # a 32x32 ramp
    >>> sr = hr.copy()
    >>> sr[::2] += 4                                                   # every other row 4 levels brighter
    >>> mse(sr, hr), mse(hr, hr)
    (8.0, 0.0)
    """
    a, b = _pair(a, b, "mse")
    diff = a - b
    return float(np.mean(diff * diff))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """10 log10(range^2 / MSE); ``inf`` for identical images.

    >>> hr = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))   # a 32x32 ramp
    >>> sr = hr.copy()
    >>> sr[::2] += 4                                                   # every other row 4 levels brighter
    >>> round(psnr(sr, hr), 4), psnr(hr, hr)
    (39.0999, inf)
    """
    err = mse(a, b)
    if err == 0:
        return math.inf
    return float(10.0 * np.log10(data_range * data_range / err))


@functools.cache
def gaussian_1d() -> np.ndarray:
    # fspecial('gaussian', 11, 1.5) is the outer product of this normalised 1-D kernel with itself.
    r = np.arange(SSIM_WINDOW, dtype=np.float64) - SSIM_WINDOW // 2
    g = np.exp(-(r * r) / (2.0 * SSIM_SIGMA * SSIM_SIGMA))
    return g / g.sum()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    g = gaussian_1d()
    out = ndimage.correlate1d(x, g, axis=0, mode="constant")
    out = ndimage.correlate1d(out, g, axis=1, mode="constant")
    m = SSIM_WINDOW // 2
    return out[m:-m, m:-m]


def ssim_map(a: Any, b: Any, filter_valid: Callable[[Any], Any]) -> Any:
    """Wang et al.'s SSIM map from a 'valid' Gaussian filter: one formula for numpy arrays and torch tensors
    (the same operations in the same order, so both give the same bits)."""
    c1 = (SSIM_K1 * SSIM_L) ** 2
    c2 = (SSIM_K2 * SSIM_L) ** 2
    mu1, mu2 = filter_valid(a), filter_valid(b)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = filter_valid(a * a) - mu1_sq
    sigma2_sq = filter_valid(b * b) - mu2_sq
    sigma12 = filter_valid(a * b) - mu1_mu2
    return ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    return float(ssim_map(a, b, _filter_valid).mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of Wang et al. (``ssim_index.m``): 11x11 Gaussian (sigma 1.5), K = (0.01, 0.03), L = 255,
    'valid' filtering, no downsampling, mean of the map. Colour images: mean of the per-channel values.

    >>> hr = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))   # a 32x32 ramp
    >>> sr = hr.copy()
    >>> sr[::2] += 4                                                   # every other row 4 levels brighter
    >>> round(ssim(sr, hr), 4), ssim(hr, hr)
    (0.9883, 1.0)
    """
    a, b = _pair(a, b, "ssim")
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise BadInputError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape[:2]}")
    if a.ndim == 2:
        return _ssim_plane(a, b)
    return float(np.mean([_ssim_plane(a[..., c], b[..., c]) for c in range(a.shape[2])]))
