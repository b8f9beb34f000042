"""Ma et al.'s no-reference SR quality score (NRQM, "Ma's score"), native and vectorised.

Ma, Yang, Yang and Yang, "Learning a No-Reference Quality Metric for Single-Image Super-Resolution",
CVIU 2017; MATLAB release chaoma99/sr-metric (``quality_predict.m``). Three feature groups, each regressed by
a random forest, combined linearly:

- local frequency (18): 7x7 block DCTs at stride 3 on a 3-level Gaussian pyramid; per block the
  generalised-Gaussian shape of the AC coefficients, their coefficient of variation, and the variance of
  that coefficient over three orientation groups; per level the mean over all blocks and over the 10%
  most telling ones;
- global GSM (45): a 2-scale 6-orientation complex steerable pyramid, each band divisively normalised by
  its neighbourhood (3x3, parent, other orientations), then shapes per band and across scales, and the
  SSIM structure term between scales and between orientations;
- spatial (75): singular values of the 5x5 blocks of each pyramid level.

Every stage is float64: whole-array numpy, except the divisive normalisation's neighbourhood sums, the SSIM
terms and the block DCT's gather and statistics, which are compiled loops (:mod:`srbench.metrics.nrqm_kernels`,
numba); the shape look-up is a sorted search in the ratio table (monotonic in the shape), the forests are
walked for all trees at once, one depth level per step.

pyiqa's port (``pyiqa.archs.nrqm_arch``) is the cross-check (it is within 0.01 of MATLAB on its
calibration set); the tests hold srbench to it per feature group. Where pyiqa departs from MATLAB, srbench
follows MATLAB and says so at that line.

The trained model (``NRQM_model.mat``) is a download: srbench never fetches it. It looks in the weights
folder and in pyiqa's cache and says where to put it when missing.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft, special

from srbench import paths
from srbench.errors import BadInputError
from srbench.matlab import colon, fspecial_gaussian, imresize_to
from srbench.metrics.fullref import gaussian_1d
from srbench.metrics.nss import ggd_ratio, nearest_index

NRQM_FILENAME = "NRQM_model.mat"
NRQM_ORIGIN = ("https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/NRQM_model.mat (pyiqa's copy of "
               "the model of Ma's MATLAB release chaoma99/sr-metric; pyiqa caches it under <torch hub>/pyiqa)")
VERSION = "native-1"

N_DCT, N_GSM, N_SVD = 18, 45, 75
_BANDS = 6  # orientations of the steerable pyramid
_SCALES = 2
@dataclass(frozen=True)
class Convention:
    """The places where pyiqa's port departs from the MATLAB release (each True = pyiqa's way).

    srbench computes :data:`MATLAB`; :data:`PYIQA` reproduces pyiqa's numbers, so that every other stage can
    be held to pyiqa's to 1e-6 and the effect of each departure measured (``benchmarks``, the closing notes).
    """

    centred_block_grid: bool = False  # block_dct.m: blkproc pads 2 zeros top/left; pyiqa centres the padding
    percentile_counts: bool = False  # block_dct.m: 1:ceil(.1n) and fix(.9n):end; pyiqa takes one more, one less
    parent_of_last_band: bool = False  # norm_sender_normalized.m: band 7 (scale 1, orientation 6) has no parent
    parent_resized_to_size: bool = False  # imresize(parent, 2) then crop; pyiqa resizes to the band's size
    clamped_ssim_cs: bool = False  # ssim_index_new.m averages cs_map as is; pyiqa clips it at 0 first
    # MATLAB computes in doubles; pyiqa builds its shape grid (torch.arange) and its Gaussian kernels
    # (fspecial(...).float()) in float32. Tiny in itself, but a ratio near the middle of two grid entries
    # then picks the other shape.
    float32_constants: bool = False


MATLAB = Convention()
PYIQA = Convention(True, True, True, True, True, True)


def nrqm_model_path(explicit: str | os.PathLike | None = None) -> Path:
    """Where ``NRQM_model.mat`` is, or a :class:`WeightsUnavailableError` saying where to put it."""
    return paths.require_weight(NRQM_FILENAME, "Ma's score (ma, and pi which uses it)", NRQM_ORIGIN,
                                [paths.torch_hub_dir() / "pyiqa"], explicit)


# --------------------------------------------------------------------------------------------- primitives
def _fspecial_gaussian(size: int, sigma: float, convention: Convention = MATLAB) -> np.ndarray:
    h = fspecial_gaussian(size, sigma)
    return h.astype(np.float32).astype(np.float64) if convention.float32_constants else h


@functools.cache
def _shape_table(float32: bool) -> tuple[np.ndarray, np.ndarray]:
    """The shape grid and its ratios Γ(1/g)Γ(3/g)/Γ(2/g)² (strictly decreasing), read-only.

    ``gama_gen_gauss.m``: ``g = 0.03:0.001:10; r = gamma(1./g).*gamma(3./g)./(gamma(2./g).^2)``; pyiqa
    builds g with ``torch.arange`` in float32 and r through ``lgamma``.
    """
    if float32:
        import torch  # only to reproduce pyiqa's float32 grid, whose rounding no numpy formula matches

        shapes = torch.arange(0.03, 10 + 0.001, 0.001).double().numpy()
        ratios = np.exp(special.gammaln(1.0 / shapes) + special.gammaln(3.0 / shapes)
                        - 2.0 * special.gammaln(2.0 / shapes))
    else:
        shapes = colon(0.03, 0.001, 10.0)
        ratios = ggd_ratio(shapes)
    shapes.flags.writeable = False
    ratios.flags.writeable = False
    return shapes, ratios


def gen_gauss_shape(x: np.ndarray, convention: Convention = MATLAB) -> np.ndarray:
    """Generalised-Gaussian shape of each row of ``x`` (last axis = samples), ``gama_gen_gauss.m``: unbiased
    variance over the squared mean absolute deviation, then the nearest ratio of the table (a sorted search,
    not a blocks x 9,971 matrix)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, ddof=1)
    mean_abs = np.abs(x - mean).mean(axis=-1) ** 2
    shapes, ratios = _shape_table(convention.float32_constants)
    return shapes[nearest_index(ratios, var / (mean_abs + 1e-7))]


def gaussian_pyramid(plane: np.ndarray, levels: int = 3, convention: Convention = MATLAB) -> list[np.ndarray]:
    """``levels`` images: the plane, then 3x3 Gaussian (sigma 0.5) with zero borders and every second pixel."""
    kernel = _fspecial_gaussian(3, 0.5, convention)
    pyr = [plane]
    for _ in range(levels - 1):
        pyr.append(_blur_every_second(pyr[-1], kernel))
    return pyr


def _blur_every_second(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``ndimage.correlate(img, kernel, mode="constant")[1::2, 1::2]`` bit for bit, computed at the kept pixels
    only (a quarter of the work): correlate's sum, the nine products added to 0 in the kernel's row-major
    order, over strided views of the zero-padded image."""
    rows, cols = img.shape[0] // 2, img.shape[1] // 2  # outputs at 1, 3, ...
    padded = np.pad(img, 1)
    acc = np.zeros((rows, cols))
    for a in range(3):
        for b in range(3):
            acc += kernel[a, b] * padded[1 + a:1 + a + 2 * rows:2, 1 + b:1 + b + 2 * cols:2]
    return acc


# ------------------------------------------------------------------------------------- local frequency
def _blocks(img: np.ndarray, convention: Convention) -> np.ndarray:
    """The 7x7 DCT blocks in block-row order, shape (n_blocks, 7, 7): the windows of :func:`_block_padded` at
    rows and columns 0, 3, 6, ... (what :func:`nrqm_kernels.block_columns` gathers a chunk at a time)."""
    return np.lib.stride_tricks.sliding_window_view(_block_padded(img, convention), (7, 7))[::3, ::3].reshape(-1, 7, 7)


def _block_padded(img: np.ndarray, convention: Convention) -> np.ndarray:
    """The image in the zeros of the 7x7 DCT blocks of ``blkproc(im, [3 3], [2 2], fun)`` (each 3x3 block with
    a 2-pixel border, in zeros beyond the image): its blocks are the 7x7 windows at rows and columns 0, 3, 6, ...,
    ceil(side / 3) of them on each side.

    ::

        MATLAB block_dct.m   blkproc(im,[3,3],[2,2],@gama_dct)       % pads 2 top/left, 2 + the rest bottom/right
        pyiqa nrqm_arch.py   extract_2d_patches(img, 3 + 2 * 2, 3)   # 'same' padding, half of it on top

    The two grids differ by one pixel where a side is 1 mod 3 (at any pyramid level).
    """
    pads = []
    for n in img.shape:
        total = (math.ceil(n / 3) - 1) * 3 + 7 - n
        before = total // 2 if convention.centred_block_grid else 2
        pads.append((before, total - before))
    return np.pad(img, pads)


# Three orientation groups of a 7x7 DCT block (row, column ranges), as in the release.
_ORIENTATIONS = (
    ((0, slice(1, None)), (1, slice(2, None)), (2, slice(4, None)), (3, slice(5, None))),
    ((1, slice(1, 2)), (2, slice(2, 4)), (3, slice(2, 5)), (4, slice(3, None)), (5, slice(4, None)),
     (6, slice(4, None))),
    ((slice(1, None), 0), (slice(2, None), 1), (slice(4, None), 2), (slice(5, None), 3)),
)


def _mean_low(sorted_x: np.ndarray, convention: Convention) -> float:
    """Mean of the lowest 10%::

        MATLAB block_dct.m   mean(gama_sorted_temp(1:ceil(gama_count*0.1)))
        pyiqa nrqm_arch.py   gamma_L1[:, : math.ceil(0.1 * gamma_L1.shape[-1]) + 1].mean(dim=-1)
    """
    return float(sorted_x[: math.ceil(0.1 * sorted_x.size) + convention.percentile_counts].mean())


def _mean_high(sorted_x: np.ndarray, convention: Convention) -> float:
    """Mean of the highest 10%::

        MATLAB block_dct.m   mean(cv_sorted_temp(fix(cv_count*0.9):end))           % 1-based start
        pyiqa nrqm_arch.py   coeff_var_L1[:, math.floor(0.9 * coeff_var_L1.shape[-1]) :]   # 0-based start
    """
    return float(sorted_x[math.floor(0.9 * sorted_x.size) - (not convention.percentile_counts):].mean())


@functools.cache
def _dct_operator() -> np.ndarray:
    """The 7x7 orthonormal 2-D DCT-II as one 49x49 matrix acting on flattened blocks (row-major): row 0 gives
    the DC coefficient, rows 1-16, 17-32 and 33-48 the three orientation groups of :data:`_ORIENTATIONS`
    (which partition the 48 AC coefficients), each group's coefficients in row-major order.

    One matrix product for all blocks is 12x faster than ``dctn`` on 7x7 blocks (pocketfft's odd length), and
    equal to it to 6e-16 of the largest coefficient; with the rows in group order every statistic below is a
    sum over a contiguous slice of rows.
    """
    d = fft.dct(np.eye(7), type=2, norm="ortho", axis=0)  # d @ v = dct(v)
    flat = np.arange(49).reshape(7, 7)
    order = np.concatenate([[0], *(np.concatenate([flat[ix].ravel() for ix in group]) for group in _ORIENTATIONS)])
    assert np.array_equal(np.sort(order), np.arange(49)) and order.size == 49
    op = np.ascontiguousarray(np.kron(d, d)[order])
    op.flags.writeable = False
    return op


_DCT_CHUNK = 2048  # blocks per step (256 to 4096 all take the same time at 480x320 and 1024x768)


def _dct_level(img: np.ndarray, convention: Convention) -> list[float]:
    """The six features of one pyramid level, a few block rows at a time: each chunk's blocks are gathered,
    transformed (one matrix product, AC rows only) and reduced (:func:`nrqm_kernels.dct_block_statistics`)
    while they are in cache (at 1024x768 the whole coefficient array would be 44 MB)."""
    from srbench.metrics import nrqm_kernels

    ac_operator = _dct_operator()[1:]
    padded = _block_padded(img, convention)
    rows, cols = math.ceil(img.shape[0] / 3), math.ceil(img.shape[1] / 3)
    step = max(1, _DCT_CHUNK // cols)
    stats = np.empty((3, rows * cols))
    for top in range(0, rows, step):
        bottom = min(rows, top + step)
        blocks = np.empty((49, (bottom - top) * cols))
        nrqm_kernels.block_columns(padded, top, bottom, cols, blocks)
        first, last = top * cols, bottom * cols
        nrqm_kernels.dct_block_statistics(ac_operator @ blocks, stats[0, first:last], stats[1, first:last],
                                          stats[2, first:last])
    table, ratios = _shape_table(convention.float32_constants)
    # The look-up of sorted ratios is twice as fast (the bisection's steps stay in cache). The table's ratios
    # fall as its shapes rise, so the nearest shapes of rising ratios fall: reversed, they are the sorted
    # shapes, the same values in the same order as sorting them (checked, since a NaN ratio would break it).
    shape = table[nearest_index(ratios, np.sort(stats[0]))][::-1]
    if np.any(shape[1:] < shape[:-1]):
        shape = np.sort(shape)
    variation, orientation = np.sort(stats[1]), np.sort(stats[2])
    return [_mean_low(shape, convention), float(shape.mean()), _mean_high(variation, convention),
            float(variation.mean()), _mean_high(orientation, convention), float(orientation.mean())]


def dct_features(plane: np.ndarray, convention: Convention = MATLAB) -> np.ndarray:
    """The 18 local frequency features of a plane in 0..255."""
    levels = gaussian_pyramid(plane / 255.0, convention=convention)
    return np.array([f for level in levels for f in _dct_level(level, convention)])


# ---------------------------------------------------------------------------------------------- global GSM
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """buildSCFpyr's polar frequency grid: log2 radius and angle, centre at ceil((dims+0.5)/2).

    pyrtools' ``SteerablePyramidFreq`` builds its ramps with ``linspace(-1, 1, n+1)[:-1]``, which differs
    from matlabPyrTools for odd sizes (BSD100's 481x321 included), so srbench builds the pyramid itself.
    """
    ctr = (math.ceil((h + 0.5) / 2), math.ceil((w + 0.5) / 2))
    y = (np.arange(1, h + 1) - ctr[0]) / (h / 2.0)
    x = (np.arange(1, w + 1) - ctr[1]) / (w / 2.0)
    xr, yr = np.meshgrid(x, y)
    angle = np.arctan2(yr, xr)
    rad = np.sqrt(xr**2 + yr**2)
    rad[ctr[0] - 1, ctr[1] - 1] = rad[ctr[0] - 1, ctr[1] - 2]
    return np.log2(rad), angle


def _rcos(width: float, position: float) -> tuple[np.ndarray, np.ndarray]:
    """matlabPyrTools ``rcosFn``: a raised-cosine transition sampled at 259 points."""
    n = 256
    x = np.pi * np.arange(-n - 1, 2) / (2 * n)
    y = np.cos(x) ** 2
    y[0] = y[1]
    y[n + 2] = y[n + 1]
    return position + 2 * width / np.pi * (x + np.pi / 4), y


def _hermitian_half(mask: np.ndarray, phase: complex = 1) -> np.ndarray:
    """The half (last axis 0..w//2) of the Hermitian part (M(f) + conj M(-f)) / 2 of the unshifted mask
    M = phase * mask (``mask`` real): for a real image's spectrum F, ``Re ifft2(F M) = irfft2(F half(M))``
    (F is Hermitian itself), at half the cost. Real when the phase is 1."""
    w = mask.shape[1]
    rows = np.concatenate([mask[:1], mask[:0:-1]])  # mask at -f, f's rows and columns taken modulo the size
    mirrored = np.concatenate([rows[:, :1], rows[:, w - 1:w - w // 2 - 1:-1]], axis=1)
    half = mask[:, : w // 2 + 1]
    if phase == 1:
        return (half + mirrored) / 2
    return phase.real * ((half + mirrored) / 2) + 1j * (phase.imag * ((half - mirrored) / 2))


# Per scale: the low-pass carried into it, the spectrum's rows and columns it reads, its bands' masks.
_ScaleMasks = tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray], list[np.ndarray]]


def _unshifted_index(kept: np.ndarray, n: int) -> np.ndarray:
    """Indices into a length-n unshifted spectrum of the entries ``kept`` (indices into the shifted one), in
    the unshifted order of the kept part."""
    return fft.ifftshift(fft.fftshift(np.arange(n))[kept])


@functools.lru_cache(maxsize=2)  # BSD100's two orientations; 60 MB each at 1024x768
def _pyramid_masks(h: int, w: int, height: int, nbands: int) -> tuple[np.ndarray, list[_ScaleMasks]]:
    """buildSCFpyr's masks for an h x w image, on the unshifted frequency grid, made once per size (their
    table look-ups cost more than the transforms): the high-pass half mask and, per scale, the low-pass
    factor carried into it (None at the first scale, whose low-pass is in its bands' masks), the rows and
    columns of the coarser spectrum kept, and each band's mask (the Hermitian half at the first scale,
    where the image's spectrum is Hermitian, the whole mask after the crop).
    """
    log_rad, angle = _grid(h, w)
    xrcos, yrcos = _rcos(1.0, -0.5)
    yrcos = np.sqrt(yrcos)
    yircos = np.sqrt(1.0 - yrcos**2)
    highpass = _hermitian_half(fft.ifftshift(np.interp(log_rad, xrcos, yrcos)))
    lo0 = np.interp(log_rad, xrcos, yircos)

    lut = 1024
    xcosn = np.pi * np.arange(-(2 * lut + 1), lut + 2) / lut
    order = nbands - 1
    const = 2 ** (2 * order) * math.factorial(order) ** 2 / (nbands * math.factorial(2 * order))
    alpha = np.mod(xcosn + np.pi, 2 * np.pi) - np.pi
    ycosn = 2 * math.sqrt(const) * np.cos(xcosn) ** order * (np.abs(alpha) < np.pi / 2)
    phase = (-1j) ** order
    scales: list[_ScaleMasks] = []
    lowpass = lo0  # the low-pass applied so far, on the current (shifted) grid
    rows_kept, cols_kept = np.arange(h), np.arange(w)  # the current grid's place in the full shifted one
    for scale in range(height):
        xrcos = xrcos - 1.0
        himask = np.interp(log_rad, xrcos, yrcos)
        angular = [np.interp(angle, xcosn + np.pi * b / nbands, ycosn) * himask for b in range(nbands)]
        if scale == 0:
            masks = [_hermitian_half(fft.ifftshift(a * lowpass), phase) for a in angular]
            carried = None
        else:
            masks = [fft.ifftshift(a * phase) for a in angular]
            carried = fft.ifftshift(lowpass)
        scales.append((carried, (_unshifted_index(rows_kept, h), _unshifted_index(cols_kept, w)), masks))
        dims = np.array(log_rad.shape)
        ctr = np.ceil((dims + 0.5) / 2).astype(int)
        lodims = np.ceil((dims - 0.5) / 2).astype(int)
        start = ctr - np.ceil((lodims + 0.5) / 2).astype(int)
        rows, cols = slice(start[0], start[0] + lodims[0]), slice(start[1], start[1] + lodims[1])
        log_rad, angle = log_rad[rows, cols], angle[rows, cols]
        rows_kept, cols_kept = rows_kept[rows], cols_kept[cols]
        lowpass = lowpass[rows, cols] * np.abs(np.interp(log_rad, xrcos, yircos))
    for _, (r, c), masks in scales:
        r.flags.writeable = c.flags.writeable = False
        for m in masks:
            m.flags.writeable = False
    highpass.flags.writeable = False
    return highpass, scales


def steerable_pyramid(img: np.ndarray, height: int = _SCALES, nbands: int = _BANDS
                      ) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """The real parts of matlabPyrTools ``buildSCFpyr(img, height, nbands-1)``: the high-pass residual and,
    per scale, the ``nbands`` oriented bands (the low-pass residual is not needed).

    ``buildSFpyr`` (the release's call) gives the same real bands: its two-sided angular mask is the sum of
    the complex pyramid's one-sided mask and its mirror.
    """
    h, w = img.shape
    highpass_mask, masks = _pyramid_masks(h, w, height, nbands)
    dft = fft.fft2(img)
    half = dft[:, : w // 2 + 1]

    def real_inverse(mask: np.ndarray) -> np.ndarray:
        # irfft2 as its two passes (complex along the columns, then real along the rows): 1.5x faster than
        # scipy's irfft2 at these sizes, the same transforms.
        return fft.irfft(fft.ifft(half * mask, axis=0, overwrite_x=True), n=w, axis=1, overwrite_x=True)

    highpass = real_inverse(highpass_mask)
    scales = []
    for carried, (rows, cols), band_masks in masks:
        if carried is None:
            scales.append([real_inverse(m) for m in band_masks])
        else:
            lodft = dft[rows[:, None], cols] * carried
            scales.append([fft.ifft2(lodft * m).real for m in band_masks])
    return highpass, scales


# imresize(x, 2)'s bicubic weights (exact binary fractions): output 2m reads inputs m-2..m+1, output 2m+1 reads
# m-1..m+2, with the second set reversed.
_X2_WEIGHTS = (-0.0234375, 0.2265625, 0.8671875, -0.0703125)
# The same as one 8-tap filter (offsets -4..3) of the input with a zero after each sample: at an even output
# the even taps meet the samples m-2..m+1 and the odd taps zeros, at an odd output the other way round.
_X2_STUFFED = np.array([_X2_WEIGHTS[i] for i in (0, 3, 1, 2, 2, 1, 3, 0)])


def _doubled_axis(src: np.ndarray, axis: int) -> np.ndarray:
    """One pass of ``imresize(x, 2)`` along ``axis`` of a 2-D float array, bit for bit: the mirrored input with
    zeros between its samples through OpenCV's 8-tap filter, whose sum over the taps in order adds the zeros'
    products exactly (0 times a tap) and the samples' in MATLAB's order. 1.8x faster than summing shifted
    views tap by tap and interleaving the two output phases (the general :func:`imresize` gathers every tap)."""
    import cv2

    n = src.shape[axis]
    padded = np.pad(src, ((2, 2), (0, 0)) if axis == 0 else ((0, 0), (2, 2)), mode="symmetric")
    if axis == 0:
        stuffed = np.zeros((2 * (n + 4), src.shape[1]))
        stuffed[::2] = padded
        # output j sits at stuffed row 4 + j and reads rows j..j+7 (anchor 0 with the kernel at offsets -4..3)
        return cv2.filter2D(stuffed, cv2.CV_64F, _X2_STUFFED.reshape(-1, 1), anchor=(0, 4),
                            borderType=cv2.BORDER_CONSTANT)[4:4 + 2 * n]
    stuffed = np.zeros((src.shape[0], 2 * (n + 4)))
    stuffed[:, ::2] = padded
    return cv2.filter2D(stuffed, cv2.CV_64F, _X2_STUFFED.reshape(1, -1), anchor=(4, 0),
                        borderType=cv2.BORDER_CONSTANT)[:, 4:4 + 2 * n]


def imresize_x2(band: np.ndarray) -> np.ndarray:
    """``imresize(band, 2)`` of a float plane (rows first, mirrored borders), equal to :func:`imresize`'s
    bit for bit and 4x faster (a 160x240 band, one thread)."""
    return _doubled_axis(_doubled_axis(np.asarray(band, dtype=np.float64), 0), 1)


def _doubled(bands: list[np.ndarray], idx: int, cache: dict[int, np.ndarray]) -> np.ndarray:
    """``imresize(band, 2)``, made once per band: it serves as a parent and, where the sizes are even, as the
    band brought to the high-pass size (the same weights, so the same numbers)."""
    if idx not in cache:
        cache[idx] = imresize_x2(bands[idx])
    return cache[idx]


def _parent(bands: list[np.ndarray], idx: int, convention: Convention, cache: dict[int, np.ndarray]
            ) -> np.ndarray | None:
    """The coarser band at the same orientation, brought to this band's size, or None where there is none::

        MATLAB norm_sender_normalized.m   prnt = parent & (nband < Nband-Nor);   % bands 2..6 of 2..13: not 7
        pyiqa nrqm_arch.py                if parent_idx < len(pyr):              # every band of scale 1

        MATLAB   auxp = real(imresize(auxp,2)); BL(:,:,2) = auxp(1:Nsy,1:Nsx);   % x2, then crop
        pyiqa    tmp_parent = imresize(tmp_parent, sizes=current_band.shape[-2:])  # x (size/parent size)
    """
    last = len(bands) - _BANDS if convention.parent_of_last_band else len(bands) - _BANDS - 1
    if idx >= last:
        return None
    h, w = bands[idx].shape
    parent = bands[idx + _BANDS]
    if convention.parent_resized_to_size:
        return imresize_to(parent, (h, w))
    return _doubled(bands, idx + _BANDS, cache)[:h, :w]


def _neighbourhoods(bands: list[np.ndarray], idx: int, convention: Convention, cache: dict[int, np.ndarray]
                    ) -> tuple[list[np.ndarray], int]:
    """Band ``idx``'s neighbours as views over its inner pixels (the 3x3 window, the parent if it has one, the
    other orientations), and the number of them that are spatial (the window and the parent). The reference
    form of what :class:`_ScaleNeighbourhoods` gathers."""
    band = bands[idx]
    scale, orient = divmod(idx, _BANDS)
    h, w = band.shape
    inner = (slice(1, h - 1), slice(1, w - 1))
    rows = [band[dy:dy + h - 2, dx:dx + w - 2] for dy in range(3) for dx in range(3)]
    parent = _parent(bands, idx, convention, cache)
    if parent is not None:
        rows.append(parent[inner])
    rows += [bands[scale * _BANDS + o][inner] for o in range(_BANDS) if o != orient]
    return rows, 9 + (parent is not None)


class _ScaleNeighbourhoods:
    """One scale's six bands and their parents copied into one flat array, and each band's neighbours as offsets
    into it: neighbour i of band k's inner pixel (y, x) (the pixel (y + 1, x + 1)) is
    ``flat[offsets[k, i] + y * w + x]``, for i < counts[k]: the six orientations' centres (the same for every
    band), then the 3x3 window less its centre and the parent where there is one. Their order is not
    :func:`_neighbourhoods'`; the covariance and the quadratic form do not depend on it."""

    def __init__(self, bands: list[np.ndarray], parents: list[np.ndarray | None]) -> None:
        from srbench.metrics import nrqm_kernels

        self.h, self.w = bands[0].shape
        plane = self.h * self.w
        present = {o: p for o, p in enumerate(parents) if p is not None}
        planes = [*bands, *present.values()]
        self.flat = np.empty(len(planes) * plane)
        for k, image in enumerate(planes):
            self.flat[k * plane:(k + 1) * plane].reshape(self.h, self.w)[...] = image
        w, centre = self.w, self.w + 1
        centres = [o * plane + centre for o in range(len(bands))]
        # Offset 0 past a band's count: in range for every pixel (the quadratic form gives it coefficient 0).
        self.offsets = np.zeros((len(bands), nrqm_kernels.NEIGHBOURS), dtype=np.int64)
        self.counts = np.empty(len(bands), dtype=np.int64)
        for o in range(len(bands)):
            own = [o * plane + dy * w + dx for dy in range(3) for dx in range(3) if (dy, dx) != (1, 1)]
            if o in present:
                own.append((len(bands) + list(present).index(o)) * plane + centre)
            self.counts[o] = len(own) + len(centres)
            self.offsets[o, :self.counts[o]] = centres + own
        self.shared = len(centres)


def _gsm_divisors(scale: _ScaleNeighbourhoods, n_spatial: list[int], gb: int) -> list[np.ndarray] | None:
    """Per band of the scale, z = sqrt(x' C^-1 x / n_spatial) at the inner pixels the guard band ``gb``
    keeps, C the band's neighbourhood covariance over every inner pixel with negative eigenvalues clipped
    (trace kept), as ``norm_sender_normalized.m``; None when a C is singular."""
    from srbench.metrics import nrqm_kernels

    h, w = scale.h, scale.w
    bands, most = scale.offsets.shape
    products = np.zeros((bands, most, most))  # the upper triangles of the neighbourhoods' sums of products
    nrqm_kernels.neighbourhood_products(scale.flat, scale.offsets, scale.counts, scale.shared, h - 2, w - 2, w,
                                        products)
    products[1:, :scale.shared, :scale.shared] = products[0, :scale.shared, :scale.shared]
    forms = np.zeros((bands, most, most))  # unused neighbours (past a band's count) keep coefficients 0
    for k, n in enumerate(scale.counts):
        lam, q = np.linalg.eigh(products[k, :n, :n] / ((h - 2) * (w - 2)), UPLO="U")  # reads the upper triangle
        pos = lam * (lam > 0)
        total = pos.sum()
        lam = pos * lam.sum() / (total + (total == 0))
        cov = (q * lam) @ q.T
        try:
            inverse = np.linalg.inv(cov)
        except np.linalg.LinAlgError:
            return None
        # x' A x counts each pair of neighbours once: the diagonal, and A + A' above it (the kernel reads the
        # upper triangle).
        np.add(inverse, inverse.T, out=forms[k, :n, :n])
        np.fill_diagonal(forms[k, :n, :n], inverse.diagonal())
    first, rows, cols = gb, h - 2 - 2 * gb, w - 2 - 2 * gb
    out = np.empty((bands, rows, cols))
    packed = np.ascontiguousarray(forms[:, *np.triu_indices(most)])  # the upper triangles, row by row
    nrqm_kernels.quadratic_forms(scale.flat, scale.offsets, packed, first, rows, gb, cols, w,
                                 np.asarray(n_spatial, dtype=np.float64), out)
    return list(out)


def _divisive_normalisation(bands: list[np.ndarray], convention: Convention, cache: dict[int, np.ndarray]
                            ) -> list[np.ndarray] | None:
    """Each band over its GSM neighbourhood, guard band (16 px at scale 1, 8 at scale 2) cut, mean removed.

    None when a neighbourhood covariance is singular (a flat image): the normalised band has no value (the
    release's ``pinv`` gives z = 0 everywhere there, and its reshape fails).
    """
    out = []
    for scale in range(len(bands) // _BANDS):
        own = bands[scale * _BANDS:(scale + 1) * _BANDS]
        parents = [_parent(bands, scale * _BANDS + o, convention, cache) for o in range(_BANDS)]
        gb = 16 // 2 ** scale
        divisors = _gsm_divisors(_ScaleNeighbourhoods(own, parents), [9 + (p is not None) for p in parents], gb)
        if divisors is None:
            return None
        for band, z in zip(own, divisors, strict=True):
            centre = band[1:-1, 1:-1]
            g = centre[gb:-gb, gb:-gb] - centre.mean()
            # MATLAB takes o_c(ind)./z(ind) where z ~= 0 (its reshape then fails if any z was 0; pyiqa puts 0
            # there, and so does srbench). pyiqa also adds 1e-12 to z: below 1e-12 relative, not followed.
            if z.all():
                g /= z
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = np.where(z != 0, g / z, 0.0)
            g -= g.mean()
            out.append(g)
    return out


_C2 = (0.03 * 255) ** 2  # SSIM's contrast constant, range 255


def _cs_means(images: list[np.ndarray], pairs: list[tuple[int, int]], convention: Convention) -> list[float]:
    """The mean of SSIM's contrast-structure map (range 255, the valid region) of each pair of same-size images::

        MATLAB ssim_index_new.m   cs_map = (2*sigma12 + C2)./(sigma1_sq + sigma2_sq + C2); mcs = mean2(cs_map);
        pyiqa ssim_arch.py        cs_map = F.relu(cs_map)   # negative correlation clipped to 0 before the mean

    A run of pairs with the same first image filters its local moments once (compiled loops,
    :mod:`srbench.metrics.nrqm_kernels`); each pair then makes the second image's and the cross term row by row.
    """
    from srbench.metrics import nrqm_kernels

    taps = np.ascontiguousarray(gaussian_1d(), dtype=np.float64).ravel()  # SSIM's fspecial('gaussian', 11, 1.5)
    h, w = images[0].shape
    means: list[float] = []
    current = -1
    for i, j in pairs:
        if i != current:
            ref = np.ascontiguousarray(images[i], dtype=np.float64)
            mean, var = np.empty((h - 10, w - 10)), np.empty((h - 10, w - 10))
            nrqm_kernels.local_moments(ref, taps, _C2 / 2, mean, var)
            current = i
        img = np.ascontiguousarray(images[j], dtype=np.float64)
        total = nrqm_kernels.cs_sum(ref, mean, var, img, taps, _C2, convention.clamped_ssim_cs)
        means.append(total / ((h - 10) * (w - 10)))
    return means


def _at_size(bands: list[np.ndarray], idx: int, shape: tuple[int, ...], cache: dict[int, np.ndarray]) -> np.ndarray:
    """``imresize(band, size(hp_band))`` (global_gsm.m); where that is exactly x2, the parents' copy."""
    band = bands[idx]
    if band.shape == shape:
        return band
    if (2 * band.shape[0], 2 * band.shape[1]) == shape:
        return _doubled(bands, idx, cache)
    return imresize_to(band, (shape[0], shape[1]))


def _deviation_sums(x: np.ndarray) -> tuple[int, float, float, float]:
    """The count, mean, sum of squared deviations and sum of absolute deviations of ``x``'s values."""
    n = x.size
    mean = float(x.sum()) / n
    dev = (x - mean).ravel()
    squares = float(dev @ dev)
    return n, mean, squares, float(np.abs(dev, out=dev).sum())


def _pooled(a: tuple[int, float, float, float], b: tuple[int, float, float, float]
            ) -> tuple[int, float, float, float]:
    """:func:`_deviation_sums` of two sets of values together, from each one's.

    The squared deviations are exact (each set's plus its count times its mean's squared distance to the
    pooled mean); the absolute ones move by at most the count times that distance: the normalised bands have
    their mean removed, so that is a few ulps of their mean absolute value.
    """
    n = a[0] + b[0]
    mean = (a[0] * a[1] + b[0] * b[1]) / n
    squares = a[2] + b[2] + a[0] * (a[1] - mean) ** 2 + b[0] * (b[1] - mean) ** 2
    return n, mean, squares, a[3] + b[3]


def _shape_from_sums(n: int, mean: float, squares: float, absolute: float, convention: Convention) -> float:
    """:func:`gen_gauss_shape` of a set of values from its :func:`_deviation_sums`."""
    shapes, ratios = _shape_table(convention.float32_constants)
    ratio = (squares / (n - 1)) / ((absolute / n) ** 2 + 1e-7)
    return float(shapes[nearest_index(ratios, ratio)])


def gsm_features(plane: np.ndarray, convention: Convention = MATLAB) -> np.ndarray:
    """The 45 global GSM features of a plane in 0..255 (NaN when the plane is too flat to normalise)."""
    highpass, scales = steerable_pyramid(plane)
    bands = [b for scale in scales for b in scale]
    del scales
    doubled: dict[int, np.ndarray] = {}
    normalised = _divisive_normalisation(bands, convention, doubled)
    if normalised is None:
        return np.full(N_GSM, np.nan)
    sums = [_deviation_sums(sb) for sb in normalised]
    feats = [_shape_from_sums(*sb, convention) for sb in sums]
    feats += [_shape_from_sums(*_pooled(sums[i], sums[i + _BANDS]), convention) for i in range(_BANDS)]
    at_size = [_at_size(bands, i, highpass.shape, doubled) for i in range(len(bands))]
    feats += _cs_means([*at_size, highpass], [(len(bands), i) for i in range(len(bands))], convention)
    feats += _cs_means(normalised[:_BANDS], [(i, j) for i in range(_BANDS) for j in range(i + 1, _BANDS)],
                       convention)
    return np.array(feats)


# ------------------------------------------------------------------------------------------------- spatial
def svd_features(plane: np.ndarray, convention: Convention = MATLAB) -> np.ndarray:
    """The 75 spatial features: singular values of the 5x5 'distinct' blocks (zero-padded) of each level."""
    out = []
    for level in gaussian_pyramid(plane / 255.0, convention=convention):
        h, w = level.shape
        padded = np.pad(level, ((0, -h % 5), (0, -w % 5)))
        blocks = padded.reshape(padded.shape[0] // 5, 5, padded.shape[1] // 5, 5).transpose(0, 2, 1, 3)
        out.append(np.linalg.svd(blocks.reshape(-1, 25), compute_uv=False))
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------- regression
@dataclass(frozen=True)
class Forest:
    """One randomforest-matlab regression forest: node arrays of shape (nodes, trees), 0-based links, -1 for
    none (the file's 1-based links minus one), cut to the node slots some tree uses."""

    left: np.ndarray  # lDau - 1: child for feature <= threshold
    right: np.ndarray  # rDau - 1
    threshold: np.ndarray  # upper
    prediction: np.ndarray  # avnode
    attribute: np.ndarray  # mbest - 1: feature tested at the node

    @classmethod
    def from_file_fields(cls, l_dau: np.ndarray, r_dau: np.ndarray, upper: np.ndarray, avnode: np.ndarray,
                         mbest: np.ndarray) -> Forest:
        # randomforest-matlab allocates 2n+1 node slots per tree and uses a few hundred: keep those only.
        used = int(max(np.max(l_dau), np.max(r_dau), 1))

        def rows(a: np.ndarray, dtype: type) -> np.ndarray:
            out: np.ndarray = np.ascontiguousarray(np.asarray(a)[:used], dtype=dtype)
            out.flags.writeable = False
            return out

        return cls(rows(l_dau, np.int32) - 1, rows(r_dau, np.int32) - 1, rows(upper, np.float64),
                   rows(avnode, np.float64), rows(mbest, np.int32) - 1)

    def predict(self, features: np.ndarray) -> float:
        """Mean over trees of the prediction at the node each tree's walk ends in, all trees stepping together.

        randomForest's C walk (``regForest``) stops at a node whose ``nodestatus`` is terminal; terminal
        nodes have no children, so stopping where the chosen child is 0 (pyiqa's ``tree_regression``) is the
        same walk, and it reads only the fields whose meaning pyiqa has established on the real file.
        """
        trees = np.arange(self.left.shape[1])
        node = np.zeros(trees.size, dtype=np.int64)
        walking = trees
        for _ in range(self.left.shape[0]):  # a walk visits each node at most once
            at = node[walking]
            go_left = features[self.attribute[at, walking]] <= self.threshold[at, walking]
            nxt = np.where(go_left, self.left[at, walking], self.right[at, walking])
            moving = nxt >= 0
            node[walking[moving]] = nxt[moving]
            walking = walking[moving]
            if walking.size == 0:
                break
        return float(self.prediction[node, trees].mean())


@dataclass(frozen=True)
class NrqmModel:
    linear: np.ndarray  # (4,): bias, then the weights of the DCT, GSM and SVD forests
    forests: tuple[Forest, Forest, Forest]

    def predict(self, dct: np.ndarray, gsm: np.ndarray, svd: np.ndarray) -> float:
        parts = [forest.predict(f) for forest, f in zip(self.forests, (dct, gsm, svd), strict=True)]
        return float(np.array([1.0, *parts]) @ self.linear)


# The parsed forests' cache: one .npy per array in <srbench cache>/nrqm/<sha256 of the .mat>-<format>/, mapped
# read-only into memory. Bump the format when Forest's arrays change meaning or type.
_PARSED_FORMAT = "forests-1"
_FOREST_FIELDS = ("left", "right", "threshold", "prediction", "attribute")
_FIELD_TYPES = (np.int32, np.int32, np.float64, np.float64, np.int32)


def model_in(weights_dir: str | os.PathLike | None = None) -> NrqmModel:
    """The model of the ``NRQM_model.mat`` srbench finds (:func:`nrqm_model_path`), read once per version of the
    file; a WeightsUnavailableError where there is none, a BadInputError naming a file that is not the model."""
    from srbench.weights import stamp

    path = nrqm_model_path(weights_dir)
    return load_model(str(path), stamp(path))


@functools.cache
def load_model(path: str, stamp: tuple[int, ...] = ()) -> NrqmModel:
    """Read ``NRQM_model.mat`` (``model.linear``, ``model.rf{1..3}``); a clear error for anything else. ``stamp``
    (``srbench.weights.stamp``) keys the cache, so a file replaced in place is read again.

    The file is about 70 MB of zlib streams of 600 MB of mostly empty node slots: reading it takes 1.4 s, in
    every process that computes Ma (each evaluation worker). The forests it holds are kept once, by the file's
    sha256, as arrays mapped from srbench's cache (:func:`_cached_forests`): later processes read them in
    milliseconds, and workers share their pages.
    """
    from srbench.weights import sha256

    try:
        folder = paths.cache_dir() / "nrqm" / f"{sha256(path)}-{_PARSED_FORMAT}"
    except OSError as exc:
        raise BadInputError(f"{path}: not an NRQM model file ({type(exc).__name__}: {exc}); expected the "
                            f"MATLAB struct 'model' of {NRQM_ORIGIN}") from None
    cached = _cached_forests(folder)
    if cached is not None:
        return cached
    model = _read_model_file(path)
    _cache_forests(folder, model)
    return model


def _read_model_file(path: str) -> NrqmModel:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(path)
        model = mat["model"]
        linear = np.asarray(model["linear"][0, 0], dtype=np.float64).ravel()
        forests = []
        for i in range(3):
            rf = model["rf"][0, 0].ravel()[i][0, 0]  # a 1x3 cell (pyiqa's file) or 3x1 (the training script's)
            # Fields by position, as regRF_train returns them (pyiqa reads them so from the real file): lDau,
            # rDau, (nodestatus, nrnodes), upper, avnode, mbest.
            forests.append(Forest.from_file_fields(*(rf[k] for k in (0, 1, 4, 5, 6))))
    except (OSError, MatReadError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise BadInputError(f"{path}: not an NRQM model file ({type(exc).__name__}: {exc}); expected the "
                            f"MATLAB struct 'model' of {NRQM_ORIGIN}") from None
    if linear.size != 4:
        raise BadInputError(f"{path}: model.linear has {linear.size} values, expected 4")
    return NrqmModel(linear, (forests[0], forests[1], forests[2]))


def _cached_forests(folder: Path) -> NrqmModel | None:
    """The model kept in ``folder`` by :func:`_cache_forests`, its arrays mapped read-only; None where there is
    none or it is not whole (a damaged cache is read from the file again and replaced)."""
    try:
        linear = np.load(folder / "linear.npy")
        forests = []
        for i in range(3):
            arrays = [np.load(folder / f"rf{i}-{name}.npy", mmap_mode="r") for name in _FOREST_FIELDS]
            if any(a.dtype != t or a.shape != arrays[0].shape or a.ndim != 2 for a, t in zip(arrays, _FIELD_TYPES,
                                                                                          strict=True)):
                return None
            forests.append(Forest(*arrays))
    except (OSError, ValueError):
        return None
    if linear.shape != (4,) or linear.dtype != np.float64:
        return None
    return NrqmModel(linear, (forests[0], forests[1], forests[2]))


def _cache_forests(folder: Path, model: NrqmModel) -> None:
    """Keep ``model``'s arrays in ``folder``: written into a temporary folder beside it, then renamed, so a reader
    sees all of them or none. A cache that cannot be written (read-only, full, another process first) is skipped:
    the next process reads the file again."""
    import shutil

    def save(name: str, array: np.ndarray) -> None:
        with open(temporary / name, "wb") as fh:
            np.save(fh, array)
            fh.flush()
            os.fsync(fh.fileno())

    temporary = folder.parent / f".{folder.name}.{os.getpid()}.part"
    try:
        temporary.mkdir(parents=True, exist_ok=True)
        save("linear.npy", model.linear)
        for i, forest in enumerate(model.forests):
            for name in _FOREST_FIELDS:
                save(f"rf{i}-{name}.npy", getattr(forest, name))
        if folder.exists():  # damaged (it did not load): replaced
            shutil.rmtree(folder, ignore_errors=True)
        temporary.rename(folder)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)


MIN_SIDE = 45  # the GSM guard bands and SSIM's 11x11 window leave nothing of a smaller band


def check_size(shape: tuple[int, ...]) -> None:
    """A clear error for a plane too small for the features the model was trained on.

    Below :data:`MIN_SIDE` the normalised bands are empty; and the spatial group has 75 values only when the
    smallest pyramid level has at least 25 5x5 blocks (fewer blocks give fewer singular values).
    """
    h, w = shape[:2]
    smallest = (h // 4, w // 4)
    blocks = math.ceil(smallest[0] / 5) * math.ceil(smallest[1] / 5)
    if min(h, w) < MIN_SIDE or blocks < 25:
        raise BadInputError(f"Ma's score needs a plane of at least {MIN_SIDE}x{MIN_SIDE} pixels whose quarter-size "
                            f"level has 25 5x5 blocks (e.g. 84x84); got {h}x{w}")


def ma(img: np.ndarray, *, weights_dir: str | os.PathLike | None = None, convention: Convention = MATLAB) -> float:
    """Ma's score of a 2-D plane in 0..255 (the protocol's Y plane, fed as is), higher is better.

    NaN when the plane is too flat for the GSM features (their neighbourhood covariance is singular).
    ``convention=PYIQA`` gives pyiqa's number instead of the MATLAB release's.

    It needs ``NRQM_model.mat`` (see :func:`nrqm_model_path`); without it, one error names the file:

    >>> import skimage.data, tempfile
    >>> plane = skimage.data.camera()[:96, :96].astype(np.float64)
    >>> ma(plane, weights_dir=tempfile.mkdtemp())                     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    srbench.errors.WeightsUnavailableError: ...NRQM_model.mat...

    The tests' stand-in model (:mod:`srbench.metrics.nrqm_synthetic`: random trees, so a number, not a quality)
    shows the call:

    >>> from srbench.metrics.nrqm_synthetic import write_model_around
    >>> folder = tempfile.mkdtemp()
    >>> write_model_around(f"{folder}/{NRQM_FILENAME}", [plane], n_samples=50, n_trees=5)
    >>> round(ma(plane, weights_dir=folder), 4)
    5.3168
    """
    plane = np.asarray(img, dtype=np.float64)
    if plane.ndim != 2:
        raise BadInputError(f"ma expects a 2-D plane (Y or gray) in 0..255, got shape {plane.shape}")
    model = model_in(weights_dir)
    check_size(plane.shape)
    gsm = gsm_features(plane, convention)
    if np.isnan(gsm).any():
        return math.nan
    return model.predict(dct_features(plane, convention), gsm, svd_features(plane, convention))
