"""BRISQUE (LIVE release): features, fits, the libsvm side, the packaged model, and the release's values."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, signal, special, stats

from srbench.errors import BadInputError, WeightsUnavailableError
from srbench.matlab import rgb2gray
from srbench.metrics import brisque as B

# pyiqa's ResultsCalibra/dist_dir (chaofengc/IQA-PyTorch): set this to the folder holding I03.bmp ... I19.bmp.
CALIBRA_ENV = "SRBENCH_BRISQUE_CALIBRA"
# The release's scores on them, from pyiqa's ResultsCalibra/results_official.csv (MATLAB brisquescore.m on
# rgb2gray input, footnote 12 of ResultsCalibra.md), as svm-predict printed them (%g).
RELEASE_SCORES = {"I03": 94.6421, "I04": -0.107618, "I06": 0.992889, "I08": 5.35827, "I19": 72.2617}
# Indices of the shape features (GGD/AGGD alpha, looked up on the 0.001 grid) among the 36.
SHAPE_INDICES = [0, 2, 6, 10, 14, 18, 20, 24, 28, 32]


def _texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A float plane in 0..255 with natural-looking local statistics and no flat 7x7 neighbourhood."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=(h, w)), 3.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return 20.0 + 200.0 * smooth + rng.normal(scale=4.0, size=(h, w))


# --- fits -------------------------------------------------------------------------------------------------


def test_shape_grid_is_matlab_colon():
    grid = B.shape_grid()
    assert grid.size == 9801 and grid[0] == 0.2 and grid[-1] == 10.0 and grid[4900] == 5.1
    np.testing.assert_allclose(np.diff(grid), 0.001, rtol=1e-9)


@pytest.mark.parametrize("shape", [0.6, 1.0, 2.0, 3.5])
def test_ggd_fit_recovers_shape_and_std(shape):
    x = stats.gennorm.rvs(shape, scale=0.7, size=400_000, random_state=np.random.default_rng(1))
    alpha, sigma = B.ggd_fit(x)
    # Moment matching with 4e5 samples: the shape is within a few percent, sigma is the sample RMS.
    assert alpha == pytest.approx(shape, rel=0.04)
    assert sigma == pytest.approx(0.7 * math.sqrt(special.gamma(3 / shape) / special.gamma(1 / shape)), rel=0.01)


def _aggd_samples(shape: float, beta_l: float, beta_r: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    magnitude = np.abs(stats.gennorm.rvs(shape, size=n, random_state=rng))
    left = rng.random(n) < beta_l / (beta_l + beta_r)  # P(x < 0) of the AGGD
    return np.where(left, -beta_l * magnitude, beta_r * magnitude)


@pytest.mark.parametrize(("shape", "beta_l", "beta_r"), [(0.8, 0.2, 0.5), (1.5, 1.0, 0.3), (2.0, 0.4, 0.4)])
def test_aggd_fit_recovers_shape_and_side_stds(shape, beta_l, beta_r):
    x = _aggd_samples(shape, beta_l, beta_r, 400_000, seed=2)
    alpha, left_std, right_std = B.aggd_fit(x)
    ratio = math.sqrt(special.gamma(3 / shape) / special.gamma(1 / shape))  # std of a side / its scale
    assert alpha == pytest.approx(shape, rel=0.05)
    assert left_std == pytest.approx(beta_l * ratio, rel=0.01)
    assert right_std == pytest.approx(beta_r * ratio, rel=0.01)


def test_aggd_fit_degenerate_side_is_nan_like_matlab():
    # mean of an empty vector is NaN in MATLAB, and min over an all-NaN vector gives index 1 (0.2).
    alpha, left_std, right_std = B.aggd_fit(np.array([0.0, 0.5, 1.0, 2.0]))
    assert alpha == 0.2 and math.isnan(left_std) and right_std > 0


def test_aggd_zeros_count_on_neither_side():
    x = np.array([-1.0, 2.0, 0.0, 0.0])
    _, left_std, right_std = B.aggd_fit(x)
    assert (left_std, right_std) == (1.0, 2.0)


# --- MSCN and features ------------------------------------------------------------------------------------


def test_mscn_is_filter2_same_with_zero_padding():
    plane = _texture(40, 50)
    window = B._gaussian_window()
    mu = signal.correlate2d(plane, window, mode="same", boundary="fill", fillvalue=0)
    var = signal.correlate2d(plane * plane, window, mode="same", boundary="fill", fillvalue=0) - mu * mu
    expected = (plane - mu) / (np.sqrt(np.abs(var)) + 1)
    np.testing.assert_allclose(B.mscn(plane), expected, rtol=0, atol=1e-12)
    # Zero padding: a constant plane is ~0 inside but not within 3 pixels of the border.
    flat = B.mscn(np.full((20, 20), 100.0))
    assert np.abs(flat[3:-3, 3:-3]).max() < 1e-12 and flat[0, 0] > 0.5


def test_gaussian_window_is_fspecial():
    window = B._gaussian_window()
    assert window.shape == (7, 7) and window.sum() == pytest.approx(1.0, abs=1e-15)
    g = np.exp(-np.arange(-3, 4) ** 2 / (2 * (7 / 6) ** 2))
    np.testing.assert_allclose(window, np.outer(g, g) / np.outer(g, g).sum(), rtol=1e-14)  # separable form


def test_features_shape_and_determinism():
    plane = _texture()
    feats = B.brisque_features(plane)
    assert feats.shape == (36,) and feats.dtype == np.float64 and np.all(np.isfinite(feats))
    np.testing.assert_array_equal(feats, B.brisque_features(plane.copy()))
    # The shapes lie on the grid; the left and right variances of the products are positive.
    assert np.all(np.isin(feats[SHAPE_INDICES], B.shape_grid()))
    assert np.all(feats[[4, 5, 8, 9, 12, 13, 16, 17, 22, 23, 26, 27, 30, 31, 34, 35]] > 0)


def test_rgb_input_goes_through_rgb2gray():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(B.brisque_features(rgb), B.brisque_features(rgb2gray(rgb).astype(np.float64)))


@pytest.mark.parametrize(
    "bad", [np.zeros(10), np.zeros((1, 30)), np.full((8, 8), np.nan), np.zeros((4, 4, 2))]
)
def test_bad_planes_are_refused(bad):
    with pytest.raises(BadInputError):
        B.brisque_features(bad)


def test_features_match_pyiqa_original_at_float64():
    torch = pytest.importorskip("torch")
    brisque_arch = pytest.importorskip("pyiqa.archs.brisque_arch")
    pyiqa_imresize = pytest.importorskip("pyiqa.matlab_utils").imresize
    plane = _texture(120, 160, seed=4)
    x = torch.from_numpy(plane)[None, None]
    ref = []
    for _ in range(2):
        ref.append(brisque_arch.natural_scene_statistics(x))
        x = pyiqa_imresize(x, scale=0.5, antialiasing=True)
    ref_feats = torch.cat(ref, dim=-1).numpy().ravel()
    mine = B.brisque_features(plane)
    # pyiqa builds its Gaussian window and its shape grid in float32 even on float64 input (torch's default
    # dtype), which moves the other features by ~1e-5 relative and may move a shape by one 0.001 grid step.
    others = np.setdiff1d(np.arange(36), SHAPE_INDICES)
    np.testing.assert_allclose(mine[others], ref_feats[others], rtol=1e-4)
    np.testing.assert_allclose(mine[SHAPE_INDICES], ref_feats[SHAPE_INDICES], rtol=0, atol=1.1e-3)


# --- libsvm text formats ----------------------------------------------------------------------------------

SYNTHETIC_MODEL = """svm_type epsilon_svr
kernel_type rbf
gamma 0.5
nr_class 2
total_sv 3
rho -1.25
probA 1.5
SV
2 1:0.5 3:-1
-0.75 2:1
1 1:-0.25 2:0.5 3:0.125
"""


def test_libsvm_model_parser_and_predictor():
    model = B.parse_libsvm_model(SYNTHETIC_MODEL)
    assert model.gamma == 0.5 and model.rho == -1.25
    np.testing.assert_array_equal(model.coef, [2, -0.75, 1])
    np.testing.assert_array_equal(model.sv, [[0.5, 0, -1], [0, 1, 0], [-0.25, 0.5, 0.125]])
    x = np.array([0.1, -0.2, 0.3])
    terms = zip(model.coef, model.sv, strict=True)
    expected = sum(c * math.exp(-0.5 * float(np.sum((x - sv) ** 2))) for c, sv in terms) + 1.25
    assert model.predict(x) == pytest.approx(expected, rel=1e-14)


def test_libsvm_model_parser_refusals():
    with pytest.raises(BadInputError, match="RBF regression"):
        B.parse_libsvm_model(SYNTHETIC_MODEL.replace("kernel_type rbf", "kernel_type linear"))
    with pytest.raises(BadInputError, match="3 support vectors"):
        B.parse_libsvm_model(SYNTHETIC_MODEL.replace("-0.75 2:1\n", ""))
    with pytest.raises(BadInputError, match="no 'SV' line"):
        B.parse_libsvm_model("svm_type epsilon_svr\n")


def test_svm_scale_range_file():
    ranges = B.parse_libsvm_range("x\n-1 1\n1 0.5 1.5\n2 -2 2\n3 1e-005 1e-005\n")
    scaled = ranges.scale(np.array([0.5, 2.0, 7.0]))
    assert scaled[0] == -1.0 and scaled[1] == 1.0 and scaled[2] == 0.0  # ends exact; single-valued dropped
    assert ranges.scale(np.array([2.5, -4.0, 0.0]))[:2].tolist() == [3.0, -2.0]  # extrapolated, not clipped
    with pytest.raises(BadInputError):
        B.parse_libsvm_range("-1 1\n1 0 1\n")


def test_score_goes_through_the_release_text_files():
    model = B.SvrModel(np.array([1.0]), np.zeros((1, 2)), 1.0, -123.4567891)
    ranges = B.parse_libsvm_range("x\n-1 1\n1 0 1\n2 0 1\n")
    # Features are printed with %f (6 decimals), scaled values and the score with %g (6 significant digits).
    assert B.brisque_from_features(np.array([0.5, 0.5]), model, ranges) == 124.457
    assert math.isnan(B.brisque_from_features(np.array([0.5, np.nan]), model, ranges))


# --- the packaged LIVE model ------------------------------------------------------------------------------


def test_packaged_model_is_the_live_release():
    model, ranges = B._load_model(B.brisque_model_path())
    assert model.sv.shape == (774, 36) and model.gamma == 0.05 and model.rho == -153.591
    assert ranges.lower == -1 and ranges.upper == 1 and ranges.minimum.size == 36
    assert (ranges.minimum[0], ranges.maximum[0]) == (0.338, 10.0) and ranges.minimum[22] == 1.5e-5


def test_weights_dir_copy_must_be_the_live_model(tmp_path):
    (tmp_path / B.MODEL_FILE).write_text(SYNTHETIC_MODEL)
    (tmp_path / B.RANGE_FILE).write_text("x\n-1 1\n")
    with pytest.raises(BadInputError, match="not the LIVE BRISQUE release"):
        B.brisque(_texture(), weights_dir=str(tmp_path))


def test_missing_model_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "packaged_model_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(WeightsUnavailableError, match="allmodel"):
        B.brisque_model_path(str(tmp_path))


def test_score_is_finite_and_deterministic():
    plane = _texture()
    value = B.brisque(plane)
    assert math.isfinite(value) and value == B.brisque(plane.copy())
    cond = B.brisque_conditioning(plane)
    assert cond.flat_fraction == 0 and cond.spread == 0 and cond.value == value and not cond.ill_conditioned


def test_flat_regions_are_reported_as_ill_conditioned():
    plane = _texture()
    plane[20:70, 30:100] = 128.0  # a saturated patch: I - mu there is a rounding residue
    cond = B.brisque_conditioning(plane)
    assert cond.flat_fraction > 0.2 and cond.low <= cond.value <= cond.high


def _calibra_dir() -> Path:
    """pyiqa's wheel ships its calibration images (site-packages/ResultsCalibra/dist_dir); or set the env var."""
    folder = os.environ.get(CALIBRA_ENV)
    if not folder:
        nrqm_arch = pytest.importorskip("pyiqa.archs.nrqm_arch")
        folder = str(Path(nrqm_arch.__file__).resolve().parents[2] / "ResultsCalibra" / "dist_dir")
    if not (Path(folder) / "I04.bmp").is_file():
        pytest.skip(f"pyiqa's ResultsCalibra/dist_dir images not found at {folder} (set {CALIBRA_ENV})")
    return Path(folder)


def test_release_values_on_pyiqa_calibration_images():
    from srbench.images import read_image

    folder = _calibra_dir()
    for name, expected in RELEASE_SCORES.items():
        cond = B.brisque_conditioning(read_image(folder / f"{name}.bmp"))
        if cond.flat_fraction == 0:
            # Well-conditioned: every step is the release's, down to the printed digits.
            assert cond.value == expected, name
        else:
            # Flat areas: the release's value depends on MATLAB's conv2 summation order (module docstring);
            # srbench must say so rather than print a number it cannot vouch for.
            assert cond.ill_conditioned, name


def test_an_all_zero_plane_has_no_brisque():
    """MSCN of a black plane is 0 everywhere: the fits are 0/0 (NaN in MATLAB), never an exception."""
    assert np.isnan(B.brisque_features(np.zeros((64, 64)))).any()
    assert math.isnan(B.brisque(np.zeros((64, 64))))


def test_evaluation_warns_where_brisque_is_ill_conditioned(tmp_path):
    """A saturated patch in an SR output: evaluation keeps the value and says how far it can move."""
    from srbench.evaluation import evaluate_model
    from srbench.images import write_png

    rng = np.random.default_rng(3)
    hr = np.clip(rng.normal(120, 40, (128, 128, 3)), 0, 255).astype(np.uint8)
    hr[16:112, 16:112] = 255  # bicubic keeps the middle of this patch exactly flat
    folder = tmp_path / "set"
    write_png(folder / "flat.png", hr)
    (res,) = evaluate_model("bicubic", [str(folder)], protocol="pirm", metrics=["brisque"])
    (row,) = res.per_image
    assert math.isfinite(row["brisque"]) and row["brisque_spread"] > 1e-3
    assert any(w.startswith("flat: BRISQUE") and "ill-conditioned" in w for w in res.warnings)
