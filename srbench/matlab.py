"""MATLAB image primitives, reproduced bit for bit.

Published SR numbers were computed with MATLAB's ``imresize``, ``rgb2ycbcr`` and ``rgb2gray``. Look-alikes
(PIL bicubic, OpenCV, YIQ luma, numpy's round-half-to-even) shift PSNR by up to a dB, so every primitive
here follows the MATLAB source: the same kernel, tap positions, normalisation, border handling, pass
order and rounding.

Float images are in the 0..255 range throughout srbench (MATLAB's doubles are in 0..1; the scaling is the
only difference and is applied exactly where MATLAB's class conversion would apply it).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from srbench.errors import BadInputError

Border = Literal["symmetric", "replicate"]

# MATLAB rgb2gray: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]).
GRAY_COEFFS = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
# BT.601 studio-range matrix of rgb2ycbcr, for R, G, B in 0..1.
YCBCR_MATRIX = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ]
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``round``: halves go away from zero (numpy's ``round`` goes to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Saturating, half-away-from-zero conversion, as MATLAB's ``uint8(x)``."""
    # floor(x + 0.5) is round_half_away(x) for x >= 0, and is <= 0 (saturated to 0 like it) for x < 0.
    return np.clip(np.floor(np.add(x, 0.5)), 0, 255).astype(np.uint8)


def _cubic(x: np.ndarray) -> np.ndarray:
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    return (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0
    ) * ((absx > 1) & (absx <= 2))


def resize_weights(
    in_length: int, out_length: int, scale: float, border: Border = "symmetric"
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based source indices of one 1-D bicubic pass (MATLAB ``contributions``)."""
    kernel_width = 4.0
    if scale < 1:
        # Antialiasing: the kernel is stretched so that it low-passes before decimation.
        def kernel(d: np.ndarray, /) -> np.ndarray:  # positional like _cubic, its alternative
            return scale * _cubic(scale * d)

        kernel_width = kernel_width / scale
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    indices: np.ndarray = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    indices = indices.astype(np.int64) - 1  # 1-based MATLAB indices -> 0-based
    if border == "symmetric":
        period = 2 * in_length
        indices = np.mod(indices, period)
        indices = np.where(indices < in_length, indices, period - 1 - indices)
    elif border == "replicate":
        indices = np.clip(indices, 0, in_length - 1)
    else:
        raise ValueError(f"unknown border mode {border!r}: use 'symmetric' or 'replicate'")
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_axis(img: np.ndarray, axis: int, scale: float, border: Border, as_uint8: bool,
                 out_length: int | None = None) -> np.ndarray:
    in_length = img.shape[axis]
    if out_length is None:
        out_length = math.ceil(in_length * scale)
    weights, indices = resize_weights(in_length, out_length, scale, border)
    src = img.astype(np.float64, copy=False)
    shape = (*src.shape[:axis], out_length, *src.shape[axis + 1:])
    along_axis = [1] * src.ndim
    along_axis[axis] = out_length
    out = np.zeros(shape, dtype=np.float64)
    # Tap by tap, in MATLAB's order, so the double sums round the same way before quantisation. np.take along
    # the axis keeps every array C-ordered (gathering from a moved-axis view was 1.5x slower per image).
    for k in range(weights.shape[1]):
        term = np.take(src, indices[:, k], axis=axis)
        term *= weights[:, k].reshape(along_axis)
        out += term
    if as_uint8:
        return to_uint8(out)
    return out


def imresize(img: np.ndarray, scale: float, *, border: Border = "symmetric") -> np.ndarray:
    """MATLAB ``imresize(img, scale)`` with the default bicubic kernel and antialiasing.

    uint8 in gives uint8 out, rounded half away from zero after each 1-D pass (rows first); float in
    gives float64 out, never rounded. ``border="replicate"`` reproduces MATLAB releases before R2013
    (e.g. the SelfExSR LR files); current MATLAB mirrors (``"symmetric"``).
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects an HxW or HxWxC image, got shape {img.shape}")
    if not scale > 0:
        raise ValueError(f"imresize scale must be positive, got {scale}")
    as_uint8 = img.dtype == np.uint8
    if not as_uint8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"imresize supports uint8 and float images, got {img.dtype}")
    out = img
    for axis in (0, 1):
        if scale != 1:
            out = _resize_axis(out, axis, scale, border, as_uint8)
    if not as_uint8:
        out = np.asarray(out, dtype=np.float64)
    return out


def imresize_to(img: np.ndarray, shape: tuple[int, int], *, border: Border = "symmetric") -> np.ndarray:
    """MATLAB ``imresize(img, [h w])`` for a float plane: bicubic, antialiased when shrinking, float64 out.

    Each axis is scaled by out/in; MATLAB resizes the axis with the smaller factor first.
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"imresize_to expects an HxW plane, got shape {img.shape}")
    scales = (shape[0] / img.shape[0], shape[1] / img.shape[1])
    out = img
    for axis in (0, 1) if scales[0] <= scales[1] else (1, 0):
        if out.shape[axis] != shape[axis]:
            out = _resize_axis(out, axis, scales[axis], border, False, shape[axis])
    return out


def _check_rgb(img: np.ndarray, fn: str) -> None:
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{fn} expects an HxWx3 RGB image, got shape {img.shape}")


def rgb2ycbcr(img: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` (BT.601 studio range). uint8 -> rounded uint8; float 0..255 -> float64."""
    img = np.asarray(img)
    _check_rgb(img, "rgb2ycbcr")
    if img.dtype == np.uint8:
        matrix = YCBCR_MATRIX / 255.0
        x = img.astype(np.float64, order="C")
        out = x[..., 0:1] * matrix[:, 0] + x[..., 1:2] * matrix[:, 1] + x[..., 2:3] * matrix[:, 2]
        return to_uint8(out + YCBCR_OFFSET)
    x = img.astype(np.float64, order="C") / 255.0  # C order: a matrix product's sums follow the layout
    return x @ YCBCR_MATRIX.T + YCBCR_OFFSET


def rgb2y(img: np.ndarray) -> np.ndarray:
    """The Y plane of :func:`rgb2ycbcr` alone (same dtype rules), without computing Cb and Cr."""
    img = np.asarray(img)
    _check_rgb(img, "rgb2y")
    if img.dtype == np.uint8:
        coeffs = YCBCR_MATRIX[0] / 255.0
        x = img.astype(np.float64)
        return to_uint8(x[..., 0] * coeffs[0] + x[..., 1] * coeffs[1] + x[..., 2] * coeffs[2] + 16.0)
    x = img.astype(np.float64, order="C") / 255.0  # C order: a matrix product's sums follow the layout
    return x @ YCBCR_MATRIX[0] + 16.0


def rgb2gray(img: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray``. uint8 -> rounded uint8; float -> float64 (same range as the input)."""
    img = np.asarray(img)
    _check_rgb(img, "rgb2gray")
    x = img.astype(np.float64)
    gray = x[..., 0] * GRAY_COEFFS[0] + x[..., 1] * GRAY_COEFFS[1] + x[..., 2] * GRAY_COEFFS[2]
    return to_uint8(gray) if img.dtype == np.uint8 else gray


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop to a multiple of ``scale`` in height and width, anchored top-left."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels from every side; an image with nothing left is bad input (a BadInputError, so
    that an evaluation reports it as a skipped image and goes on)."""
    if border <= 0:
        return img
    h, w = img.shape[:2]
    if h <= 2 * border or w <= 2 * border:
        raise too_small_to_shave(h, w, border)
    return img[border:-border, border:-border, ...]


def too_small_to_shave(h: int, w: int, border: int) -> ValueError:
    """The error of an image too small for its protocol's border."""
    return BadInputError(f"a {h}x{w} image is too small for the protocol: it shaves {border} px from every side "
                         f"(at least {2 * border + 1}x{2 * border + 1} pixels needed)")


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """``fspecial('gaussian', size, sigma)``: a ``size`` x ``size`` Gaussian, float64.

    As ``fspecial.m``: ``exp(-(x.^2 + y.^2) / (2*sigma*sigma))`` on the grid ``-(size-1)/2:(size-1)/2``,
    values below ``eps * max`` set to 0, then divided by the sum.
    """
    if size < 1 or sigma <= 0:
        raise ValueError(f"fspecial_gaussian needs size >= 1 and sigma > 0, got {size}, {sigma}")
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    x, y = np.meshgrid(r, r)
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0
    return h / h.sum()


def colon(a: float, step: float, b: float) -> np.ndarray:
    """MATLAB's ``a:step:b`` element by element (the algorithm of MathWorks' ``colonop.m``).

    The count is ``round((b-a)/step)`` (one less if that overshoots ``b`` by more than
    ``2*eps*max(|a|,|b|)``); the end point is snapped to ``b`` when within that tolerance. The first half is
    ``a + k*step``, the second half ``last - k*step`` counted from the end, and the middle element of an even
    count ``(a + last)/2``: both ends are exact and the vector is symmetric about its middle. Not the same
    as ``np.arange`` (drifts towards the end) nor ``np.linspace`` (another formula): ``0.2:0.001:10``
    differs from ``np.linspace(0.2, 10, 9801)`` in 1774 of its 9801 elements (by up to 1.8e-15).
    """
    a, step, b = float(a), float(step), float(b)
    if not (math.isfinite(a) and math.isfinite(step) and math.isfinite(b)):
        return np.array([math.nan])
    if step == 0 or (a < b and step < 0) or (b < a and step > 0):
        return np.zeros(0)
    tol = 2.0 * np.finfo(np.float64).eps * max(abs(a), abs(b))
    sig = math.copysign(1.0, step)
    if a == math.floor(a) and step == 1:
        n = math.floor(b) - int(a)
    elif a == math.floor(a) and step == math.floor(step):
        first = math.floor(a / step)
        n = math.floor((b - (a - first * step)) / step) - first
    else:
        q = (b - a) / step
        n = math.floor(q) + (q - math.floor(q) >= 0.5)  # MATLAB's round: halves away from zero (q >= 0)
        if sig * (a + n * step - b) > tol:
            n -= 1
    last = a + n * step
    if sig * (last - b) > -tol:
        last = b
    k = np.arange(n + 1, dtype=np.float64)
    out = np.where(k <= n // 2, a + k * step, last - (n - k) * step)
    if n % 2 == 0:
        out[n // 2] = (a + last) / 2
    return out
