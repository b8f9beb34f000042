"""Two power-spectrum discrepancies between an SR image and its HR image, both lower is better, both
phase-blind (0 means the same radial spectrum, not equal images). They answer different questions and their
numbers are not interchangeable:

- ``spectrum`` (srbench's own, in decades of power): how far the SR image's radially averaged power spectrum is
  from the HR one's, frequency by frequency, on an absolute scale: blur removes power at high frequencies, GAN
  artefacts (checkerboards, hallucinated texture, ringing) add it. Values are decades (1.0 is a factor 10).
- ``spectrum_discrepancy`` (Durall et al.'s normalised 1-D spectrum, values of about 1e-4 to 1e-2): how far the
  *shapes* of the two spectra are apart once each is min-max normalised to [0, 1]; it ignores gain and offset.
  This is the "spectrum discrepancy" the loss study of the published collection ``gan-sr-thesis`` reports.

**spectrum** (the view behind the frequency-domain (FFT) losses of ESRGAN follow-up work). Definition, for one
plane (the protocol's Y plane, float64 in 0..255) of H x W pixels:

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

**spectrum_discrepancy** follows the azimuthally integrated 1-D spectrum of Durall, Keuper and Keuper, "Watch your
Up-Convolution: CNN Based Generative Deep Neural Networks are Failing to Reproduce Spectral Distributions", CVPR 2020
(arXiv:2003.01826), as their code computes it (github.com/cc-hpc-itwm/UpConv, ``Experiments_Codes/train_spectrum.py``
for the spectral loss, ``Visualization.ipynb`` for the spectra they plot, ``radialProfile.py`` for the average).
For one image (the protocol's RGB image, border shaved, as uint8 0..255):

1. grey ``g = 0.2989 R + 0.5870 G + 0.1140 B`` (their ``RGB2gray``, ITU-R BT.601; a grey image is used as it is);
2. the centred 2-D DFT ``F = fftshift(fft2(g))`` and its magnitude in decibels, ``20 ln(|F| + 1e-8)`` (natural
   log and 1e-8 as their code; they add 1e-8 to the complex value, which differs only where |F| is 0 to rounding);
3. the azimuthal average: the mean over each ring of integer radius ``floor(hypot(y - (H-1)/2, x - (W-1)/2))``
   about the centre ``((W-1)/2, (H-1)/2)``, rings 1 to the last but one (their ``azimuthalAverage`` drops the
   innermost ring, which holds DC, and the outermost, a partial ring of corner pixels);
4. min-max normalisation of that 1-D profile to [0, 1] (their ``(psd1D - min) / (max - min)``).

The paper's spectral loss is the binary cross-entropy of the generated image's normalised spectrum against the
real one's (``srbench.train.losses.spectral_loss``); as a metric srbench takes the **mean squared difference** of
the two normalised spectra over the rings, per image, and the mean over images per dataset. The study does not
print its formula: this is the most plausible reading of "spectrum discrepancy" in its range, checked on the reference
data (bicubic x4 gives 0.0074 on Set5, 0.0078 on Set14 and 0.0089 on BSD100, where the study's GAN models give
3e-4 to 8e-3; the other candidates are off by orders of magnitude: the BCE is at least the HR spectrum's
binary entropy, about 0.5 on Set5, the mean absolute difference about 0.07, and the MSE of linear power spectra
normalised by their maximum about 1e-7). The SR and HR images have the same size, so no interpolation to a
common length (their notebook's for real images of another size) is needed. Symmetric in SR and HR; unchanged
when either image is scaled or offset in brightness (the offset is DC, in the dropped ring; a gain is a constant
dB shift, removed by the normalisation). A constant image has a flat profile, with no range to normalise: NaN.

Images smaller than :data:`MIN_SIZE` on a side have too few bins for a meaningful spectrum: the metric hooks
give NaN for them (the image stays in the set, as NIQE does), the functions raise :class:`BadInputError`.
"""

from __future__ import annotations

import math

import numpy as np

from srbench.errors import BadInputError
from srbench.metrics.registry import Metric, PerImage

EPS = 1e-6  # added to the bin means before log10, in (0..255)^2 units
MIN_SIZE = 8  # smallest side: K = 4 bins, two of them above 0.25 cycles per pixel
HF_FROM = 0.25  # cycles per pixel: bins strictly above it make ``spectrum_hf``
DURALL_GREY = (0.2989, 0.5870, 0.1140)  # Durall et al.'s RGB -> grey weights (ITU-R BT.601)
DURALL_EPS = 1e-8  # added to |F| before the logarithm (Durall et al.'s epsilon)


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


def log_spectrum_distance(sr: np.ndarray, hr: np.ndarray) -> dict[str, float]:
    """``{"spectrum": ..., "spectrum_hf": ...}``: mean absolute difference, in decades, of the two log spectra
    over all bins and over the bins above 0.25 cycles per pixel (symmetric in ``sr`` and ``hr``).

    >>> plane = np.random.default_rng(0).normal(100, 20, (64, 64))
    >>> log_spectrum_distance(plane, plane)
    {'spectrum': 0.0, 'spectrum_hf': 0.0}
    >>> {k: round(v, 4) for k, v in log_spectrum_distance(2 * plane, plane).items()}   # 2 log10(2) decades
    {'spectrum': 0.6021, 'spectrum_hf': 0.6021}
    """
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
    return log_spectrum_distance(sr, hr)


SPECTRUM = Metric(
    name="spectrum", label="Spectrum", digits=3, higher_is_better=False, needs_reference=True, version="1",
    description="power-spectrum discrepancy of the Y plane: mean |log10 P_sr - log10 P_hr| over radial frequency bins "
    "of width 1/min(H,W) up to 0.5 cycles/px (mean removed, 2-D Hann window, eps 1e-6), in decades; "
    "spectrum_hf: the same over the bins above 0.25 cycles/px",
    compute=spectrum_of, protocols=("sr", "pirm"), extra_outputs=("spectrum_hf",), tolerance=1e-3, identical=0.0,
    undefined_when=f"a side of the plane under {MIN_SIZE} pixels",
)


# -- spectrum_discrepancy: Durall et al.'s normalised 1-D spectrum -------------------------------------------------
def ring_index(h: int, w: int) -> np.ndarray:
    """(H, W) int64: the ring of each pixel of an h x w plane, ``floor`` of its distance to ((W-1)/2, (H-1)/2).

    The one definition of Durall et al.'s rings, shared by this metric and the spectral training loss
    (``srbench.train.losses``), which averages over them with a matrix product on the training device."""
    y = np.arange(h, dtype=np.float64)[:, None] - (h - 1) / 2
    x = np.arange(w, dtype=np.float64)[None, :] - (w - 1) / 2
    return np.floor(np.hypot(y, x)).astype(np.int64)


def azimuthal_profile(plane: np.ndarray) -> np.ndarray:
    """Mean of a 2-D ``plane`` over each ring of :func:`ring_index`, rings 1 to the last but one (Durall et
    al.'s ``azimuthalAverage``: the central ring and the partial outer ring dropped)."""
    arr = np.asarray(plane, dtype=np.float64)
    rings = ring_index(*arr.shape).ravel()
    counts = np.bincount(rings)
    if counts.size < 4:
        raise BadInputError(f"spectrum_discrepancy: a {arr.shape[0]}x{arr.shape[1]} plane has fewer than two rings "
                            "between its centre and its corners")
    sums = np.bincount(rings, weights=arr.ravel())
    return sums[1:-1] / counts[1:-1]


def _grey(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr @ np.asarray(DURALL_GREY)
    if arr.ndim == 2:
        return arr
    raise BadInputError(f"spectrum_discrepancy: expected a grey or RGB image, got shape {arr.shape}")


def durall_profile(img: np.ndarray) -> np.ndarray:
    """The azimuthal average of ``20 ln(|F| + 1e-8)`` of the image's grey plane, before normalisation (steps 1-3
    of the module docstring)."""
    grey = _grey(img)
    if min(grey.shape) < MIN_SIZE:
        raise BadInputError(f"spectrum_discrepancy: a {grey.shape[0]}x{grey.shape[1]} image is too small "
                            f"(at least {MIN_SIZE} pixels a side)")
    if not np.all(np.isfinite(grey)):
        raise BadInputError("spectrum_discrepancy: the image has NaN or infinite values")
    spectrum = np.fft.fftshift(np.fft.fft2(grey))
    return azimuthal_profile(20.0 * np.log(np.abs(spectrum) + DURALL_EPS))


def _normalised_or_none(img: np.ndarray) -> np.ndarray | None:
    """The profile mapped onto [0, 1], or None for a constant image. Its profile is flat in exact arithmetic;
    computed, it is the FFT's rounding residues against the 1e-8, spread over [0, 1] by the normalisation, so
    flatness is decided on the image, not on the profile."""
    profile = durall_profile(img)
    if np.ptp(_grey(img)) == 0:
        return None
    low, span = profile.min(), profile.max() - profile.min()
    return (profile - low) / span if span > 0 else None


def normalised_spectrum_1d(img: np.ndarray) -> np.ndarray:
    """Durall et al.'s 1-D spectrum of an image (H x W grey or H x W x 3 RGB), min-max normalised to [0, 1]."""
    normalised = _normalised_or_none(img)
    if normalised is None:
        raise BadInputError("spectrum_discrepancy: the image's spectrum is flat (a constant image): it has no "
                            "range to normalise")
    return normalised


def _discrepancy_or_none(sr: np.ndarray, hr: np.ndarray) -> float | None:
    if np.shape(sr) != np.shape(hr):
        raise BadInputError(f"spectrum_discrepancy: images differ in size, {np.shape(sr)} vs {np.shape(hr)}")
    a, b = _normalised_or_none(sr), _normalised_or_none(hr)
    if a is None or b is None:
        return None
    return float(np.mean((a - b) ** 2))


def spectrum_discrepancy(sr: np.ndarray, hr: np.ndarray) -> float:
    """Mean squared difference of the normalised 1-D spectra of ``sr`` and ``hr`` (same size, grey or RGB,
    0..255; symmetric). Raises :class:`BadInputError` for a constant image (module docstring).

    >>> hr = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.float64)
    >>> spectrum_discrepancy(hr, hr)
    0.0
    >>> round(spectrum_discrepancy(hr * 0.5 + 64, hr), 12)            # gain and offset: normalised away
    0.0
    """
    value = _discrepancy_or_none(sr, hr)
    if value is None:
        raise BadInputError("spectrum_discrepancy: an image's spectrum is flat (a constant image): it has no range "
                            "to normalise")
    return value


def spectrum_discrepancy_of(x: PerImage) -> float:
    """The registry's hook: NaN where the value is undefined (a side under MIN_SIZE, a constant image)."""
    sr, hr = x.sr_plane(), x.hr_plane()
    if min(np.shape(sr)[:2]) < MIN_SIZE:
        return math.nan
    value = _discrepancy_or_none(sr, hr)
    return math.nan if value is None else value


SPECTRUM_DISCREPANCY = Metric(
    name="spectrum_discrepancy", label="Spectrum discr.", digits=5, higher_is_better=False, needs_reference=True,
    version="durall2020-mse-1",
    description="Durall et al. (CVPR 2020) normalised 1-D spectrum: grey (0.2989/0.5870/0.1140) of the RGB image, "
    "20 ln(|fftshift(fft2)| + 1e-8) averaged over integer rings about the centre (innermost and outer partial ring "
    "dropped), min-max normalised; mean squared difference of SR's and HR's (not `spectrum`, in decades)",
    compute=spectrum_discrepancy_of, plane="rgb", protocols=("sr", "pirm"), tolerance=1e-6, identical=0.0,
    undefined_when=f"a side under {MIN_SIZE} pixels, or a constant image (its spectrum has no range to normalise)",
)

__all__ = ["DURALL_EPS", "DURALL_GREY", "EPS", "HF_FROM", "MIN_SIZE", "SPECTRUM", "SPECTRUM_DISCREPANCY",
           "azimuthal_profile", "durall_profile", "log_spectrum_distance", "normalised_spectrum_1d",
           "radial_power_spectrum", "ring_index", "spectrum_discrepancy", "spectrum_discrepancy_of", "spectrum_of"]
