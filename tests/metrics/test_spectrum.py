"""Power-spectrum discrepancy: known spectra, the metric's invariances, and its place in the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from srbench import metrics as M
from srbench.cli import main
from srbench.errors import BadInputError
from srbench.evaluation import evaluate_model
from srbench.metrics.spectrum import EPS, HF_FROM, log_spectrum_distance, radial_power_spectrum
from srbench.protocols import PROTOCOLS

N = 64


def _slope(freqs: np.ndarray, log_power: np.ndarray, first_bin: int = 4) -> float:
    """Least-squares slope of log10 power against log10 frequency from bin ``first_bin`` on. The first bins
    hold few samples and are shaped by the window's main lobe (about +-1 bin) and the removed mean."""
    return float(np.polyfit(np.log10(freqs[first_bin - 1:]), log_power[first_bin - 1:], 1)[0])


def _mean_spectrum(make, realisations: int) -> tuple[np.ndarray, np.ndarray]:
    """log10 of the power averaged over independent realisations (averaging power, not logs: no log bias)."""
    total = 0.0
    for seed in range(realisations):
        freqs, log_power = radial_power_spectrum(make(np.random.default_rng(seed)))
        total = total + (10.0**log_power - EPS)
    return freqs, np.log10(total / realisations)


def _power_law_noise(rng: np.random.Generator, exponent: float, n: int = N) -> np.ndarray:
    """Noise whose power falls as f^-exponent, made in the Fourier domain (random phases)."""
    radius = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * radius ** (-exponent / 2)
    spectrum[0, 0] = 0.0
    return np.real(np.fft.ifft2(spectrum))


def _texture(seed: int = 0) -> np.ndarray:
    """A natural-image-like Y plane: 1/f^2 structure plus fine detail, in about 0..255."""
    rng = np.random.default_rng(seed)
    x = _power_law_noise(rng, 2.0, 96)
    x = x / x.std() * 30 + rng.normal(0, 6, x.shape)
    return np.clip(x + 128, 0, 255)


# ---------------------------------------------------------------------------------------------------------
# Known spectra


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 28), st.integers(0, 28), st.floats(0, 2 * math.pi))
def test_a_sinusoid_puts_its_power_in_the_bin_of_its_frequency(u, v, phase):
    radius = math.hypot(u, v)  # in units of the bin width 1/N
    if not 2 <= radius <= N // 2 - 1:
        return  # the window spreads power over +-1 bin: keep the neighbours inside the range
    i, j = np.mgrid[:N, :N]
    freqs, log_power = radial_power_spectrum(100 * np.cos(2 * np.pi * (u * i + v * j) / N + phase))
    peak = int(np.argmax(log_power))
    assert freqs[peak] == pytest.approx(round(radius) / N)
    far = np.abs(np.arange(1, N // 2 + 1) - radius) > 2.5  # beyond the Hann main lobe: nothing but eps
    assert np.all(log_power[far] < math.log10(EPS) + 1e-3)


def test_bins_run_from_one_over_the_short_side_to_nyquist():
    freqs, log_power = radial_power_spectrum(np.random.default_rng(0).normal(size=(40, 70)))
    assert len(freqs) == len(log_power) == 20
    assert freqs[0] == pytest.approx(1 / 40) and freqs[-1] == pytest.approx(0.5)
    assert np.all(np.isfinite(log_power))  # no empty bin on a non-square grid


def test_white_noise_has_a_flat_spectrum_at_its_variance():
    # 16 realisations of 64x64: a bin at k >= 4 averages >= 16 * ~25 power samples (half of them independent,
    # the window correlating neighbours), so its relative scatter is ~0.1, 0.04 decades: a slope over
    # log10(f) in [-0.9, -0.3] moves by well under 0.1, and every bin stays within 0.15 decades (~3.5 sigma).
    sigma = 5.0
    freqs, log_power = _mean_spectrum(lambda rng: rng.normal(0, sigma, (N, N)), 16)
    assert abs(_slope(freqs, log_power)) < 0.1
    assert np.all(np.abs(log_power[3:] - math.log10(sigma**2)) < 0.15)  # normalised by sum(w^2): P = sigma^2


def test_brown_noise_falls_as_f_to_the_minus_two():
    # Same averaging as white noise (scatter ~0.04 decades a bin, far less on the fitted slope); the Hann
    # window's leakage falls as f^-6, steeper than the f^-2 it sits under, so it cannot bend the slope.
    freqs, log_power = _mean_spectrum(lambda rng: _power_law_noise(rng, 2.0), 16)
    assert _slope(freqs, log_power) == pytest.approx(-2.0, abs=0.15)
    freqs, log_power = _mean_spectrum(lambda rng: _power_law_noise(rng, 1.0), 16)
    assert _slope(freqs, log_power) == pytest.approx(-1.0, abs=0.15)


def test_the_window_keeps_the_border_jump_out_of_the_high_frequencies():
    ramp = np.add.outer(np.arange(N, dtype=float), np.arange(N, dtype=float))  # smooth, but not periodic
    freqs, windowed = radial_power_spectrum(ramp)
    _, bare = radial_power_spectrum(ramp, window=False)
    high = freqs > HF_FROM
    assert np.all(bare[high] - windowed[high] > 4)  # four decades of leakage from the wrap-around edge


def test_bad_planes_are_refused():
    with pytest.raises(BadInputError, match="2-D plane"):
        radial_power_spectrum(np.zeros((16, 16, 3)))
    with pytest.raises(BadInputError, match="too small"):
        radial_power_spectrum(np.zeros((7, 32)))
    with pytest.raises(BadInputError, match="differ in size"):
        log_spectrum_distance(np.zeros((16, 16)), np.zeros((16, 17)))


# ---------------------------------------------------------------------------------------------------------
# The discrepancy


def test_an_image_against_itself_is_zero_and_the_discrepancy_is_symmetric():
    a, b = _texture(0), _texture(1)
    assert log_spectrum_distance(a, a) == {"spectrum": 0.0, "spectrum_hf": 0.0}
    ab, ba = log_spectrum_distance(a, b), log_spectrum_distance(b, a)
    assert ab == ba and ab["spectrum"] > 0


def test_blur_raises_the_discrepancy_mostly_at_high_frequencies():
    hr = _texture()
    mild, strong = (log_spectrum_distance(gaussian_filter(hr, s), hr) for s in (0.7, 1.5))
    assert 0 < mild["spectrum"] < strong["spectrum"]
    for d in (mild, strong):
        # spectrum is the mean of the low and high halves: the high half carries most of it
        low = 2 * d["spectrum"] - d["spectrum_hf"]
        assert d["spectrum_hf"] > 3 * low


@settings(max_examples=25, deadline=None)
@given(st.floats(-1e3, 1e3, allow_nan=False))
def test_adding_a_constant_changes_nothing(c):
    x = _texture()
    _, base = radial_power_spectrum(x)
    _, shifted = radial_power_spectrum(x + c)
    np.testing.assert_allclose(shifted, base, atol=1e-9)
    assert log_spectrum_distance(x + c, x)["spectrum"] < 1e-9


@settings(max_examples=25, deadline=None)
@given(st.floats(0.05, 20))
def test_scaling_by_c_shifts_every_bin_by_two_log10_c(c):
    x = _texture()  # its smallest bin power is ~1e-1: EPS moves the shift by < 1e-5 decades
    _, base = radial_power_spectrum(x)
    _, scaled = radial_power_spectrum(c * x)
    np.testing.assert_allclose(scaled - base, 2 * math.log10(c), atol=1e-4)
    d = log_spectrum_distance(x, c * x)
    assert d["spectrum"] == pytest.approx(2 * abs(math.log10(c)), abs=1e-4)
    assert d["spectrum_hf"] == pytest.approx(2 * abs(math.log10(c)), abs=1e-4)


# ---------------------------------------------------------------------------------------------------------
# Registry, protocols, CLI


def test_registered_as_an_opt_in_full_reference_metric_of_both_protocols():
    spec = M.get_metric("spectrum")
    assert (spec.higher_is_better, spec.needs_reference, spec.plane, spec.version) == (False, True, "y", "1")
    assert spec.protocols == ("sr", "pirm") and spec.outputs == ("spectrum", "spectrum_hf")
    assert not spec.drift_check and spec.weights is None
    assert PROTOCOLS["sr"].default_metrics == ("psnr_y", "ssim_y")  # the default columns stay as they were
    assert PROTOCOLS["pirm"].default_metrics == ("rmse", "niqe", "ma", "pi")


def test_evaluated_on_the_protocol_y_plane():
    (res,) = evaluate_model("bicubic", ["skimage"], metrics=["psnr_y", "spectrum"])
    assert res.metrics == ["psnr_y", "spectrum"]
    values = [r["spectrum"] for r in res.per_image]
    hf = [r["spectrum_hf"] for r in res.per_image]
    assert all(v > 0 for v in values) and res.summary["spectrum"] == pytest.approx(np.mean(values), abs=1e-12)
    assert np.mean(hf) > res.summary["spectrum"]  # bicubic upscaling is blur: its loss is at high frequencies


def test_too_small_planes_give_nan_not_an_error():
    tiny = M.PerImage(np.zeros((6, 40)), np.zeros((6, 40)), {})
    assert all(math.isnan(v) for v in M.get_metric("spectrum").run(tiny).values())


def test_cli_lists_the_new_metrics_with_their_directions():
    out = CliRunner().invoke(main, ["metrics"])
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    for name in ("spectrum", "lpips_vgg", "dists"):
        assert lines[name].split()[1:5] == ["lower", "is", "better", "full-reference"]
    assert "needs LPIPS_v0.1_vgg-a78928a0.pth + vgg16-397923af.pth" in lines["lpips_vgg"]
    assert "needs DISTS_weights-f5e65c96.pth + vgg16-397923af.pth" in lines["dists"]
    sr = next(line for line in out.stdout.splitlines() if line.startswith("protocol sr:"))
    assert "spectrum" in sr and sr.endswith("(default psnr_y, ssim_y)")
