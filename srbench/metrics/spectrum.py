"""Power-spectrum discrepancy: how far the SR image's radially averaged power spectrum is from the HR one's.

The view behind the frequency-domain (FFT) losses of ESRGAN follow-up work: blur removes power at high
frequencies, GAN artefacts (checkerboards, hallucinated texture, ringing) add it. Lower is better; 0 means the
two images have the same radial power spectrum (not that they are equal: phase is ignored).

Definition, for one plane (the protocol's Y plane, float64 in 0..255) of H x W pixels:

1. ``x = plane - mean(plane)``: the DC term is removed, so adding a constant changes nothing.
2. ``x * w`` with the 2-D periodic Hann window ``w[i, j] = h_H[i] h_W[j]``, ``h_N[n] = 0.5 - 0.5 cos(2 pi n / N)``.
   The DFT treats the image as periodic: without a window the jump between opposite borders acts as a
   sharp edge whose power falls only as f^-2, no faster than a natural image's own, so this edge leakage
   would fill the high frequencies (by orders of magnitude on smooth content: see the tests) and hide
   exactly the blur and artefacts the metric is for. The Hann window's own leakage falls as f^-6.
3. ``P(k) = |FFT2(x * w)(k)|^2 / sum(w^2)``: power per frequency sample, normalised so that white noise of
   variance s^2 has P = s^2 at every frequency, window or not (without a window this is |FFT|^2 / (H W)).
4. Radial bins: the radius of frequency ``(fy, fx)`` (cycles per pixel, ``numpy.fft.fftfreq``) is
   ``r = sqrt(fy^2 + fx^2)``; bin ``k = round(r / d)`` with width ``d = 1 / min(H, W)`` (the coarser of the two
   frequency grids, so no bin is empty). Bins ``k = 1 .. K``, ``K = floor(min(H, W) / 2)``, are kept: their
   centres ``k d`` run from ``d`` to the Nyquist frequency 0.5; bin 0 (DC, removed) and the corners beyond
   Nyquist are dropped. ``P`` is averaged within each bin.
5. ``L(k) = log10(mean P in bin k + EPS)`` with ``EPS = 1e-6`` (in (0..255)^2 units): five decades below
   the power of uint8 quantisation noise (1/12), so it never matters for a real image, and it keeps the
   spectrum of a flat image finite.

``spectrum`` = mean over the K bins of ``|L_sr(k) - L_hr(k)|`` (in decades: 1.0 is a factor 10 in power).
``spectrum_hf`` = the same mean over the bins above half the range (``k d > 0.25`` cycles per pixel), where
blur and GAN artefacts show. Scaling an image by ``c`` shifts every ``L(k)`` by ``2 log10 c``, so the
discrepancy of ``x`` and ``c x`` is ``2 |log10 c|``.

Images smaller than :data:`MIN_SIZE` on a side have too few bins for a meaningful spectrum: the metric hook
gives NaN for them (the image stays in the set, as NIQE does), the functions raise :class:`BadInputError`.
"""

from __future__ import annotations

import math

import numpy as np

from srbench.errors import BadInputError
from srbench.metrics.registry import Metric, PerImage

EPS = 1e-6  # added to the bin means before log10, in (0..255)^2 units
MIN_SIZE = 8  # smallest side: K = 4 bins, two of them above 0.25 cycles per pixel
HF_FROM = 0.25  # cycles per pixel: bins strictly above it make ``spectrum_hf``


def _hann(n: int) -> np.ndarray:
    """The periodic Hann window of length n (the DFT's own period: no repeated end point)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _check_plane(plane: np.ndarray) -> np.ndarray:
    arr = np.asarray(plane, dtype=np.float64)
    if arr.ndim != 2:
        raise BadInputError(f"spectrum: expected a 2-D plane, got shape {arr.shape}")
    if min(arr.shape) < MIN_SIZE:
        raise BadInputError(f"spectrum: a {arr.shape[0]}x{arr.shape[1]} plane is too small "
                            f"(at least {MIN_SIZE} pixels a side)")
    if not np.all(np.isfinite(arr)):
        raise BadInputError("spectrum: the plane has NaN or infinite values")
    return arr


def radial_power_spectrum(plane: np.ndarray, *, window: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(freqs, log_power)``: bin centres ``k / min(H, W)`` in cycles per pixel (k = 1 .. min(H, W) // 2) and
    ``log10`` of the mean power in each bin (the module docstring gives every step).

    ``window=False`` skips the Hann window (for showing what it is for; the metric always uses it).
    """
    x = _check_plane(plane)
    h, w = x.shape
    x = x - x.mean()
    if window:
        win = np.outer(_hann(h), _hann(w))
        x = x * win
        norm = float(np.sum(win**2))
    else:
        norm = float(h * w)
    power = np.abs(np.fft.fft2(x)) ** 2 / norm
    width = 1.0 / min(h, w)
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    bins = np.rint(radius / width).astype(np.int64).ravel()
    n_bins = min(h, w) // 2
    counts = np.bincount(bins, minlength=n_bins + 1)[1:n_bins + 1]
    sums = np.bincount(bins, weights=power.ravel(), minlength=n_bins + 1)[1:n_bins + 1]
    freqs = np.arange(1, n_bins + 1) * width
    return freqs, np.log10(sums / counts + EPS)


def spectrum_discrepancy(sr: np.ndarray, hr: np.ndarray) -> dict[str, float]:
    """``{"spectrum": ..., "spectrum_hf": ...}``: mean absolute difference, in decades, of the two log spectra
    over all bins and over the bins above 0.25 cycles per pixel (symmetric in ``sr`` and ``hr``)."""
    if np.shape(sr) != np.shape(hr):
        raise BadInputError(f"spectrum: planes differ in size, {np.shape(sr)} vs {np.shape(hr)}")
    freqs, log_sr = radial_power_spectrum(sr)
    _, log_hr = radial_power_spectrum(hr)
    diff = np.abs(log_sr - log_hr)
    return {"spectrum": float(diff.mean()), "spectrum_hf": float(diff[freqs > HF_FROM].mean())}


def spectrum_of(x: PerImage) -> dict[str, float]:
    """The registry's hook: the discrepancy of the protocol's Y planes, NaN for planes under MIN_SIZE."""
    sr, hr = x.sr_plane(), x.hr_plane()
    if min(np.shape(sr)) < MIN_SIZE:
        return {"spectrum": math.nan, "spectrum_hf": math.nan}
    return spectrum_discrepancy(sr, hr)


SPECTRUM = Metric(
    name="spectrum", label="Spectrum", digits=3, higher_is_better=False, needs_reference=True, version="1",
    description="power-spectrum discrepancy of the Y plane: mean |log10 P_sr - log10 P_hr| over radial frequency bins "
    "of width 1/min(H,W) up to 0.5 cycles/px (mean removed, 2-D Hann window, eps 1e-6), in decades; "
    "spectrum_hf: the same over the bins above 0.25 cycles/px",
    compute=spectrum_of, protocols=("sr", "pirm"), extra_outputs=("spectrum_hf",), tolerance=1e-3,
)

__all__ = ["EPS", "HF_FROM", "MIN_SIZE", "SPECTRUM", "radial_power_spectrum", "spectrum_discrepancy", "spectrum_of"]
