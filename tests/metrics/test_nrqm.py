"""Ma's score, native: each feature group and the score against pyiqa's port, the forest walk, the look-up.

pyiqa's NRQM is within 0.01 of the MATLAB release on its calibration set, so it is the reference here; srbench
must equal it to 1e-6 (relative) per feature group and for the score, given the same model file, once the
places where pyiqa departs from the MATLAB code are set pyiqa's way (``N.PYIQA``); srbench's own numbers
follow MATLAB there, and each departure has its own test below. The real
``NRQM_model.mat`` is a download: where it is absent the score is checked with stand-in model files of the
same structure (srbench.metrics.nrqm_synthetic), and the tests that need the real one skip saying so.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from srbench import paths
from srbench.errors import BadInputError, WeightsUnavailableError
from srbench.images import read_image
from srbench.matlab import imresize, imresize_to, rgb2y
from srbench.metrics import nrqm as N
from srbench.metrics.nrqm_synthetic import write_model_around

torch = pytest.importorskip("torch")
P = pytest.importorskip("pyiqa.archs.nrqm_arch")

REL = 1e-6
PYIQA_CALIBRATION = Path(P.__file__).resolve().parents[2] / "ResultsCalibra" / "dist_dir"
# The user's own copy of the real model, looked up before the tests isolate the weights folders.
_REAL_MODEL = next((p for p in (paths.weights_dir() / N.NRQM_FILENAME,
                                paths.torch_hub_dir() / "pyiqa" / N.NRQM_FILENAME) if p.is_file()), None)
needs_real_model = pytest.mark.skipif(
    _REAL_MODEL is None, reason=f"the real {N.NRQM_FILENAME} is not here (put it in {paths.weights_dir()}; "
                                f"from {N.NRQM_ORIGIN})")

# Real images with their crops (rows, cols): odd and even sizes, textured and flat-ish, small enough that
# pyiqa's features take a few seconds.
CROPS = {
    "set5-baby": ("benchmark/Set5/HR/baby.png", (slice(100, 260), slice(150, 310))),
    "bsd100-001": ("selfexsr/BSD100/image_SRF_4/img_001_SRF_4_HR.png", (slice(20, 171), slice(40, 241))),
    "live-image3": ("niqe/live_examples/image3.bmp", (slice(0, 145), slice(300, 493))),
    "urban100-004": ("selfexsr/Urban100/image_SRF_4/img_004_SRF_4_HR.png", (slice(200, 328), slice(300, 477))),
}


def _plane(path: Path, crop=(slice(None), slice(None))) -> np.ndarray:
    img = read_image(path)
    y = rgb2y(img) if img.ndim == 3 else img.astype(np.float64)
    return np.ascontiguousarray(y[crop], dtype=np.float64)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(np.abs(np.asarray(b)), 1e-12)))


class _PyiqaReference:
    """pyiqa's features of a plane, computed once (they take seconds) and shared by the tests."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def features(self, key: str, plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if key not in self._cache:
            from pyiqa.matlab_utils import im2col

            torch.set_num_threads(1)
            t = torch.from_numpy(plane)[None, None]
            pyr = P.get_gauss_pyramid(t / 255.0)
            dct = torch.cat([P.block_dct(im) for im in pyr], 1)[0].numpy()
            gsm = P.global_gsm(t)[0].numpy()
            svd = torch.cat([torch.linalg.svd(im2col(im, 5, "distinct"), full_matrices=False)[1] for im in pyr],
                            1)[0].numpy()
            self._cache[key] = (dct, gsm, svd)
        return self._cache[key]


@pytest.fixture(scope="module")
def pyiqa_ref() -> _PyiqaReference:
    return _PyiqaReference()


@pytest.fixture(scope="module")
def planes(shared_data) -> dict[str, np.ndarray]:
    return {key: _plane(shared_data / rel, crop) for key, (rel, crop) in CROPS.items()}


@pytest.fixture(scope="module")
def synthetic_model(tmp_path_factory, planes) -> Path:
    """A model file with the real one's structure: 3 forests of 200 bagged trees grown on 1440 samples
    around the features of real images (so thresholds split where real features fall)."""
    path = tmp_path_factory.mktemp("nrqm") / N.NRQM_FILENAME
    write_model_around(path, planes.values(), n_trees=200, seed=3, sample_seed=7, convention=N.PYIQA)
    return path


# ------------------------------------------------------------------------------------ per feature group
@pytest.mark.parametrize("key", list(CROPS))
def test_each_feature_group_equals_pyiqa(planes, pyiqa_ref, key):
    plane = planes[key]
    dct, gsm, svd = pyiqa_ref.features(key, plane)
    mine = (N.dct_features(plane, N.PYIQA), N.gsm_features(plane, N.PYIQA), N.svd_features(plane, N.PYIQA))
    assert [m.shape for m in mine] == [(N.N_DCT,), (N.N_GSM,), (N.N_SVD,)]
    assert _rel(mine[0], dct) < REL
    assert _rel(mine[1], gsm) < REL
    assert _rel(mine[2], svd) < REL


@pytest.mark.parametrize("shape", [(64, 80), (63, 81), (97, 64)])
def test_steerable_pyramid_equals_pyiqa_for_even_and_odd_sizes(shape):
    from pyiqa.matlab_utils import SCFpyr_PyTorch

    img = np.random.default_rng(1).random(shape) * 255
    highpass, scales = N.steerable_pyramid(img)
    ref = SCFpyr_PyTorch(height=2, nbands=6).build(torch.from_numpy(img)[None, None])
    # pyiqa's masks are float32, so bands agree to float32 precision, not further.
    assert _rel(highpass, ref[0][0].numpy()) < 1e-5 or np.abs(highpass - ref[0][0].numpy()).max() < 1e-5
    for s in range(2):
        for b in range(6):
            theirs = ref[s + 1][b][0, ..., 0].numpy()
            assert np.abs(scales[s][b] - theirs).max() < 1e-6 * np.abs(theirs).max()


def test_gaussian_pyramid_halves_with_the_release_offset():
    img = np.arange(12 * 10, dtype=np.float64).reshape(12, 10)
    pyr = N.gaussian_pyramid(img)
    assert [p.shape for p in pyr] == [(12, 10), (6, 5), (3, 2)]  # MATLAB im(2:2:end, 2:2:end)
    ref = P.get_gauss_pyramid(torch.from_numpy(img)[None, None])
    for mine, theirs in zip(pyr, ref, strict=True):
        assert np.allclose(mine, theirs[0, 0].numpy(), rtol=1e-7, atol=1e-9)


# Features of the Set5 'baby' crop computed by the implementation of commit 53014ee (before issue 24's speed-up),
# MATLAB convention: dct (18), gsm (45), svd (75). Generated once with that commit's code, not with the code
# under test (benchmarks/ma_old.py loads it from git).
OLD_FEATURES = Path(__file__).resolve().parents[1] / "data" / "nrqm_features_set5_baby_53014ee.npy"


def test_features_equal_those_of_the_implementation_before_the_speed_up(planes):
    old = np.load(OLD_FEATURES)
    plane = planes["set5-baby"]
    mine = np.concatenate([N.dct_features(plane), N.gsm_features(plane), N.svd_features(plane)])
    assert old.shape == mine.shape == (N.N_DCT + N.N_GSM + N.N_SVD,)
    assert _rel(mine, old) < 1e-9


# ------------------------------------------------------------------------------------- shape look-up
def test_shape_look_up_is_the_release_min_over_its_table():
    shapes, r = N._shape_table(False)
    assert shapes.size == 9971 and shapes[0] == 0.03 and shapes[-1] == 10.0
    rng = np.random.default_rng(3)
    x = rng.laplace(size=(2000, 48)) * rng.uniform(0.1, 3, (2000, 1)) ** rng.uniform(0, 2, (2000, 48))
    rho = x.var(axis=-1, ddof=1) / (np.abs(x - x.mean(axis=-1, keepdims=True)).mean(axis=-1) ** 2 + 1e-7)
    brute = shapes[np.argmin(np.abs(r[None, :] - rho[:, None]), axis=1)]  # [~,idx]=min(abs(r-rho)); g(idx)
    assert np.array_equal(N.gen_gauss_shape(x), brute)


def test_shape_fit_recovers_the_shape_of_generalised_gaussian_samples():
    from scipy.stats import gennorm

    for beta in (0.5, 1.0, 2.0, 4.0):
        x = gennorm.rvs(beta, size=(4, 200_000), random_state=np.random.default_rng(int(beta * 10)))
        assert np.allclose(N.gen_gauss_shape(x), beta, rtol=0.05)


def test_shape_fit_equals_pyiqa_on_blocks():
    x = np.random.default_rng(5).laplace(size=(5000, 48)) * np.linspace(0.1, 3, 48)
    theirs = P.gamma_gen_gauss(torch.from_numpy(x)).numpy()
    assert np.array_equal(N.gen_gauss_shape(x, N.PYIQA), theirs)
    # srbench's own grid is MATLAB's, in doubles: the same shapes to float32 rounding, or one step apart where
    # a ratio sits at the middle of two entries.
    mine = N.gen_gauss_shape(x)
    assert np.abs(mine - theirs).max() < 1e-3 + 1e-6
    assert np.mean(np.abs(mine - theirs) < 1e-6) > 0.999


# ---------------------------------------------------------------------------------------- the forests
def test_loader_reads_what_pyiqa_reads(synthetic_model):
    model = N.load_model(str(synthetic_model))
    theirs = P.NRQM(test_y_channel=False, pretrained_model_path=str(synthetic_model))
    assert np.array_equal(model.linear, np.asarray(theirs.linear_param).ravel())
    for forest, rf in zip(model.forests, theirs.rf_params_list, strict=True):
        assert rf[0].shape == (2881, 200)  # randomforest-matlab's node slots for 1440 samples, 200 trees
        used = forest.left.shape[0]
        assert 100 < used < 2881 and not rf[0][used:].any() and not rf[1][used:].any()
        for mine, ref in zip((forest.left + 1, forest.right + 1, forest.threshold, forest.prediction,
                              forest.attribute + 1), rf, strict=True):
            assert np.array_equal(mine, ref[:used])


def test_forest_walk_equals_pyiqa_tree_by_tree_regression(synthetic_model, planes):
    model = N.load_model(str(synthetic_model))
    theirs = P.NRQM(test_y_channel=False, pretrained_model_path=str(synthetic_model))
    rng = np.random.default_rng(11)
    plane = planes["set5-baby"]
    groups = (N.dct_features(plane), N.gsm_features(plane), N.svd_features(plane))
    for forest, rf, feat in zip(model.forests, theirs.rf_params_list, groups, strict=True):
        # Real features and jittered ones (both sides of many thresholds), one pyiqa call for all of them.
        batch = np.stack([feat, *(feat * (1 + 0.05 * rng.normal(size=(7, feat.size))))])
        ref = P.random_forest_regression(torch.from_numpy(batch), *rf).numpy().ravel()
        mine = np.array([forest.predict(f) for f in batch])
        assert np.array_equal(mine, ref.astype(np.float64)) or _rel(mine, ref) < 1e-12


@pytest.mark.parametrize("key", list(CROPS))
def test_score_equals_pyiqa_given_the_same_model_file(planes, pyiqa_ref, synthetic_model, key, monkeypatch):
    plane = planes[key]
    theirs = P.NRQM(test_y_channel=False, pretrained_model_path=str(synthetic_model))
    feats = pyiqa_ref.features(key, plane)
    parts = [float(P.random_forest_regression(torch.from_numpy(f)[None], *rf)) for f, rf in
             zip(feats, theirs.rf_params_list, strict=True)]
    ref = float(np.array([1.0, *parts]) @ np.asarray(theirs.linear_param).ravel())
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(synthetic_model.parent))
    assert N.ma(plane, convention=N.PYIQA) == pytest.approx(ref, rel=REL)


def test_pyiqa_reference_score_is_its_nrqm_function(planes, pyiqa_ref, synthetic_model):
    """The per-stage reference above is pyiqa's ``nrqm`` taken apart: check it once end to end."""
    plane = planes["bsd100-001"]
    theirs = P.NRQM(test_y_channel=False, pretrained_model_path=str(synthetic_model))
    whole = float(P.nrqm(torch.from_numpy(plane)[None, None], theirs.linear_param, theirs.rf_params_list))
    assert N.ma(plane, weights_dir=str(synthetic_model.parent), convention=N.PYIQA) == pytest.approx(whole, rel=REL)


MATLAB_CALIBRATION = [("I03.bmp", 1.3894), ("I04.bmp", 8.9394), ("I06.bmp", 8.9735), ("I08.bmp", 6.829),
                      ("I19.bmp", 6.312)]  # the release's values, pyiqa's ResultsCalibra/calibration_summary.csv


@needs_real_model
@pytest.mark.parametrize(("name", "matlab"), MATLAB_CALIBRATION)
def test_real_model_reproduces_matlab_on_pyiqa_calibration_images(name, matlab):
    """The release converts with rgb2gray (feature_all.m); srbench follows it there too."""
    from srbench.matlab import rgb2gray

    plane = rgb2gray(read_image(PYIQA_CALIBRATION / name)).astype(np.float64)
    assert N.ma(plane, weights_dir=str(_REAL_MODEL.parent)) == pytest.approx(matlab, abs=0.01)


@needs_real_model
@pytest.mark.parametrize(("name", "matlab"), MATLAB_CALIBRATION)
def test_real_model_pyiqa_convention_gives_pyiqa_numbers(name, matlab):
    from pyiqa.utils.color_util import to_y_channel

    img = read_image(PYIQA_CALIBRATION / name).astype(np.float64) / 255.0
    y = to_y_channel(torch.from_numpy(img).permute(2, 0, 1)[None], 255, "yiq")[0, 0].double().numpy()
    theirs = P.NRQM(test_y_channel=False, pretrained_model_path=str(_REAL_MODEL))
    ref = float(P.nrqm(torch.from_numpy(y)[None, None], theirs.linear_param, theirs.rf_params_list))
    assert N.ma(y, weights_dir=str(_REAL_MODEL.parent), convention=N.PYIQA) == pytest.approx(ref, rel=REL)
    assert ref == pytest.approx(matlab, abs=0.01)  # pyiqa's own claim, which makes it the reference


# ------------------------------------------------------------------ where srbench follows MATLAB, not pyiqa
def test_dct_blocks_are_blkproc_blocks_two_zeros_top_left_whatever_the_size():
    for h in (30, 31, 32):  # 31 is 1 mod 3: pyiqa's centred padding puts 3 zero rows on top there
        img = np.arange(1.0, h * 34 + 1).reshape(h, 34)
        blocks = N._blocks(img, N.MATLAB)
        assert blocks.shape == (math.ceil(h / 3) * math.ceil(34 / 3), 7, 7)
        first = blocks[0]
        assert not first[:2].any() and not first[:, :2].any()
        assert np.array_equal(first[2:, 2:], img[:5, :5])
        second_row_first = blocks[math.ceil(34 / 3)]
        assert np.array_equal(second_row_first[:, 2:], img[1:8, :5])  # the next block row starts 3 rows down
    pyiqa_first = N._blocks(np.arange(1.0, 31 * 34 + 1).reshape(31, 34), N.PYIQA)[0]
    assert not pyiqa_first[:3].any()


def test_ten_percent_means_take_matlab_counts():
    x = np.arange(1.0, 21.0)  # n = 20
    assert N._mean_low(x, N.MATLAB) == np.mean([1, 2])  # 1:ceil(2)
    assert N._mean_low(x, N.PYIQA) == np.mean([1, 2, 3])
    assert N._mean_high(x, N.MATLAB) == np.mean([18, 19, 20])  # fix(18):end, 1-based
    assert N._mean_high(x, N.PYIQA) == np.mean([19, 20])


def test_the_last_fine_band_has_no_parent_and_parents_are_doubled_then_cropped():
    rng = np.random.default_rng(2)
    _, scales = N.steerable_pyramid(rng.random((63, 81)) * 255)
    bands = [b for scale in scales for b in scale]
    assert [N._parent(bands, i, N.MATLAB, {}) is None for i in range(12)] == [False] * 5 + [True] * 7
    assert [N._parent(bands, i, N.PYIQA, {}) is None for i in range(12)] == [False] * 6 + [True] * 6
    parent = N._parent(bands, 2, N.MATLAB, {})
    assert bands[8].shape == (32, 41) and parent.shape == (63, 81)
    assert np.array_equal(parent, imresize(bands[8], 2)[:63, :81])
    assert not np.allclose(parent, N._parent(bands, 2, N.PYIQA, {}), atol=1e-3)
    # The doubled band serves the SSIM comparison with the high-pass too, where that is exactly x2.
    even = [b for scale in N.steerable_pyramid(rng.random((64, 80)) * 255)[1] for b in scale]
    cache: dict = {}
    N._parent(even, 0, N.MATLAB, cache)
    assert np.array_equal(N._at_size(even, 6, (64, 80), cache), imresize_to(even[6], (64, 80)))
    assert N._at_size(even, 6, (64, 80), cache) is cache[6]


@pytest.mark.parametrize("shape", [(2, 2), (3, 5), (32, 41), (81, 64)])
def test_doubling_equals_imresize_bit_for_bit(shape):
    band = np.random.default_rng(sum(shape)).normal(0, 40, shape)
    assert np.array_equal(N.imresize_x2(band), imresize(band, 2))


@pytest.mark.parametrize("shape", [(2, 3), (7, 9), (145, 97), (320, 481)])
def test_pyramid_blur_equals_correlate_bit_for_bit(shape):
    from scipy import ndimage

    img = np.random.default_rng(sum(shape)).random(shape) * 255
    for convention in (N.MATLAB, N.PYIQA):
        kernel = N._fspecial_gaussian(3, 0.5, convention)
        expected = ndimage.correlate(img, kernel, mode="constant", cval=0.0)[1::2, 1::2]
        assert np.array_equal(N._blur_every_second(img, kernel), expected)


def test_ssim_cs_is_averaged_unclipped_as_in_matlab():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 30, (40, 40))
    assert N._cs_means([x, -x], [(0, 1)], N.MATLAB)[0] < -0.9
    assert N._cs_means([x, -x], [(0, 1)], N.PYIQA) == [0.0]
    assert N._cs_means([x, x], [(0, 1)], N.MATLAB)[0] == pytest.approx(1.0)


def _reference_divisors(bands, convention, gb):
    """Per band of scale 0: z = sqrt(x' C^-1 x / n) by the plain formula over :func:`N._neighbourhoods`' matrix
    (norm_sender_normalized.m's steps: covariance over every inner pixel, negative eigenvalues clipped, trace
    kept, then each pixel's quadratic form)."""
    out = []
    for idx in range(6):
        rows, n = N._neighbourhoods(bands, idx, convention, {})
        x = np.stack([r.ravel() for r in rows])
        lam, q = np.linalg.eigh(x @ x.T / x.shape[1])
        pos = np.maximum(lam, 0)
        c = (q * (pos * lam.sum() / pos.sum())) @ q.T
        z = np.sqrt(np.einsum("ij,ij->j", np.linalg.solve(c, x), x) / n).reshape(rows[0].shape)
        out.append(z[gb:-gb, gb:-gb])
    return out


@pytest.mark.parametrize("shape", [(48, 61), (75, 64)])
def test_compiled_divisive_normalisation_equals_the_neighbourhood_formula(shape):
    # The compiled covariance sums and quadratic forms (nrqm_kernels) against the formula: 15 neighbours with a
    # parent, 14 without (MATLAB's last fine band; every band of pyiqa's convention has one).
    _, scales = N.steerable_pyramid(np.random.default_rng(sum(shape)).random(shape) * 255)
    bands = [b for scale in scales for b in scale]
    for convention in (N.MATLAB, N.PYIQA):
        parents = [N._parent(bands, o, convention, {}) for o in range(6)]
        assert [p is None for p in parents] == [False] * 5 + [convention is N.MATLAB]
        mine = N._gsm_divisors(N._ScaleNeighbourhoods(bands[:6], parents), [9 + (p is not None) for p in parents], 4)
        for z, ref in zip(mine, _reference_divisors(bands, convention, 4), strict=True):
            assert z.shape == ref.shape
            assert _rel(z, ref) < 1e-12


def test_compiled_ssim_terms_equal_the_filtered_maps():
    from scipy import ndimage

    from srbench.metrics.fullref import gaussian_1d

    rng = np.random.default_rng(8)
    x = ndimage.gaussian_filter(rng.normal(0, 400, (37, 52)), 1.5)
    images = [x, 0.5 * x + rng.normal(0, 20, x.shape), -x + rng.normal(0, 5, x.shape)]
    g = gaussian_1d()
    window = np.outer(g, g)

    def filt(a):  # the valid region of the 11x11 window, MATLAB filter2(w, a, 'valid')
        return ndimage.correlate(a, window, mode="constant")[5:-5, 5:-5]

    pairs = [(0, 1), (0, 2), (1, 2), (2, 0)]
    for convention in (N.MATLAB, N.PYIQA):
        for (i, j), mine in zip(pairs, N._cs_means(images, pairs, convention), strict=True):
            a, b = images[i], images[j]
            ma, mb = filt(a), filt(b)
            cs = (2 * (filt(a * b) - ma * mb) + N._C2) / (filt(a * a) - ma**2 + filt(b * b) - mb**2 + N._C2)
            ref = np.maximum(cs, 0).mean() if convention.clamped_ssim_cs else cs.mean()
            assert mine == pytest.approx(ref, rel=1e-12, abs=1e-14)
    assert N._cs_means(images, [(0, 2)], N.MATLAB)[0] < 0 < N._cs_means(images, [(0, 1)], N.MATLAB)[0]


@pytest.mark.parametrize("shape", [(30, 34), (31, 20), (64, 97)])
def test_compiled_dct_blocks_and_statistics_equal_the_release_per_block(shape):
    # block_dct.m's gama_dct per block, written as the release writes it: dct2 of the 7x7 block, the 48 AC
    # coefficients' shape ratio (gama_gen_gauss), std(abs)/mean(abs) of all of them and of each orientation
    # group, and the variance of the three groups' values; against the gathered blocks and compiled statistics.
    from scipy import fft

    from srbench.metrics import nrqm_kernels

    img = np.random.default_rng(sum(shape)).laplace(size=shape) * np.linspace(0.2, 2, shape[1])
    for convention in (N.MATLAB, N.PYIQA):
        blocks = N._blocks(img, convention)
        gathered = np.empty((49, len(blocks)))
        rows, cols = math.ceil(shape[0] / 3), math.ceil(shape[1] / 3)
        nrqm_kernels.block_columns(N._block_padded(img, convention), 0, rows, cols, gathered)
        assert np.array_equal(gathered, blocks.reshape(-1, 49).T)
        ratio, variation, orientation = (np.empty(len(blocks)) for _ in range(3))
        nrqm_kernels.dct_block_statistics(N._dct_operator()[1:] @ gathered, ratio, variation, orientation)
        for b, block in enumerate(blocks):
            coeffs = fft.dctn(block, norm="ortho")
            ac = coeffs.ravel()[1:]
            rho = ac.var(ddof=1) / (np.abs(ac - ac.mean()).mean() ** 2 + 1e-7)
            mag = np.abs(ac)
            groups = [np.abs(np.concatenate([coeffs[ix].ravel() for ix in group])) for group in N._ORIENTATIONS]
            per_group = [g.std(ddof=1) / (g.mean() + 1e-8) for g in groups]
            assert ratio[b] == pytest.approx(rho, rel=1e-11)
            assert variation[b] == pytest.approx(mag.std(ddof=1) / (mag.mean() + 1e-7), rel=1e-11)
            assert orientation[b] == pytest.approx(np.var(per_group, ddof=1), rel=1e-9, abs=1e-15)


def test_dct_features_take_the_shapes_in_sorted_order():
    # The level's shapes are read off sorted ratios and reversed (the table's ratios fall as its shapes rise):
    # the same as sorting every block's shape, its lowest 10% and its mean included.
    img = np.random.default_rng(12).laplace(size=(61, 77)) * np.linspace(0.2, 2, 77)
    for convention in (N.MATLAB, N.PYIQA):
        shapes = np.sort(N.gen_gauss_shape(_ac_coefficients(img, convention), convention))
        assert N._dct_level(img, convention)[:2] == [N._mean_low(shapes, convention), float(shapes.mean())]


def _ac_coefficients(img: np.ndarray, convention: N.Convention) -> np.ndarray:
    from scipy import fft

    return fft.dctn(N._blocks(img, convention), axes=(1, 2), norm="ortho").reshape(-1, 49)[:, 1:]


def test_quadratic_form_kernel_is_the_text_its_generator_writes():
    import importlib.util
    import inspect

    from srbench.metrics import nrqm_kernels

    spec = importlib.util.spec_from_file_location("nrqm_form", Path(__file__).resolve().parents[2] / "benchmarks"
                                                  / "nrqm_form.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "\n".join(module.form_lines()) in inspect.getsource(nrqm_kernels.quadratic_forms.py_func)


def test_compiled_code_is_cached_in_srbench_cache_unless_numba_is_told(tmp_path):
    # One place decides where caches live (srbench.paths); numba's own variable still wins. A new process each:
    # numba reads its settings when it is first imported.
    import subprocess
    import sys

    script = ("import numpy as np; from srbench.metrics import nrqm; "
              "print(np.isfinite(nrqm.gsm_features(np.random.default_rng(0).random((64, 72)) * 255)).all())")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    for told in (False, True):
        cache = tmp_path / f"srbench-{told}"
        env["SRBENCH_CACHE"] = str(cache)
        if told:
            env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-own")
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
        where = tmp_path / "numba-own" if told else cache / "numba"
        assert any(where.rglob("*nrqm_kernels*.nbi")), sorted(tmp_path.rglob("*"))
        assert not (cache / "numba").exists() if told else True


def test_matlab_and_pyiqa_conventions_differ_only_where_they_should(planes):
    plane = planes["live-image3"]  # 145 rows: 1 mod 3, so the block grids differ
    assert np.array_equal(N.svd_features(plane), N.svd_features(plane, N.Convention(float32_constants=False)))
    only_grid = N.Convention(centred_block_grid=True)
    assert not np.array_equal(N.dct_features(plane), N.dct_features(plane, only_grid))
    assert np.array_equal(N.gsm_features(plane), N.gsm_features(plane, only_grid))


# ------------------------------------------------------------------------------ undefined and bad input
def test_a_flat_plane_has_no_score(synthetic_model):
    assert np.isnan(N.gsm_features(np.full((96, 96), 80.0))).all()
    assert math.isnan(N.ma(np.full((96, 96), 80.0), weights_dir=str(synthetic_model.parent)))


def test_a_too_small_plane_is_one_clear_error_and_nan_in_evaluation(synthetic_model):
    from srbench.metrics import PerImage, get_metric

    small = np.random.default_rng(0).random((60, 60)) * 255  # quarter size 15x15: 9 blocks, not 25
    with pytest.raises(BadInputError, match=r"at least 45x45 .* got 60x60"):
        N.ma(small, weights_dir=str(synthetic_model.parent))
    assert math.isnan(get_metric("ma").run(PerImage(small, None, {}, str(synthetic_model.parent)))["ma"])
    N.check_size((84, 84))  # the smallest square with 75 spatial features


def test_parsed_forests_are_kept_by_the_file_sha256_and_score_the_same(tmp_path):
    import skimage.data

    plane = skimage.data.camera()[:120, :120].astype(np.float64)
    path = tmp_path / "w" / N.NRQM_FILENAME
    path.parent.mkdir()
    write_model_around(path, [plane], n_samples=60, n_trees=7, seed=1)
    parsed = N._read_model_file(str(path))
    features = (N.dct_features(plane), N.gsm_features(plane), N.svd_features(plane))

    def same(model):
        assert np.array_equal(model.linear, parsed.linear)
        for mine, theirs in zip(model.forests, parsed.forests, strict=True):
            for name in N._FOREST_FIELDS:
                assert np.array_equal(getattr(mine, name), getattr(theirs, name))
                assert getattr(mine, name).dtype == getattr(theirs, name).dtype
        assert model.predict(*features) == parsed.predict(*features)

    first = N.load_model(str(path), ("test", 1))  # read from the file, then kept
    kept = sorted((paths.cache_dir() / "nrqm").iterdir())
    assert len(kept) == 1 and kept[0].name.endswith(N._PARSED_FORMAT) and len(list(kept[0].iterdir())) == 16
    same(first)
    again = N.load_model(str(path), ("test", 2))  # mapped from the cache
    assert isinstance(again.forests[0].left, np.memmap) and not again.forests[0].left.flags.writeable
    same(again)
    # A damaged cache is read from the file again, and replaced.
    damaged = kept[0] / "rf1-threshold.npy"
    damaged.write_bytes(damaged.read_bytes()[:100])
    same(N.load_model(str(path), ("test", 3)))
    assert isinstance(N.load_model(str(path), ("test", 4)).forests[1].threshold, np.memmap)
    # Another file at the same path has another sha256: its own forests, never the first file's.
    write_model_around(path, [plane], n_samples=60, n_trees=7, seed=2)
    other = N.load_model(str(path), ("test", 5))
    assert len(list((paths.cache_dir() / "nrqm").iterdir())) == 2
    assert not np.array_equal(other.forests[0].threshold[:5], parsed.forests[0].threshold[:5])


def test_a_file_that_is_not_the_model_names_the_file(tmp_path):
    bad = tmp_path / N.NRQM_FILENAME
    bad.write_bytes(b"MATLAB 5.0 MAT-file, but not really")
    with pytest.raises(BadInputError, match=re.escape(f"{bad}: not an NRQM model file")):
        N.ma(np.zeros((96, 96)), weights_dir=str(tmp_path))


def test_missing_model_names_the_file_and_where_it_comes_from(tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"NRQM_model\.mat") as err:
        N.ma(np.zeros((96, 96)), weights_dir=str(tmp_path))
    assert "huggingface.co/chaofengc/IQA-PyTorch-Weights" in str(err.value)
    assert os.fspath(tmp_path) in str(err.value)


def test_ma_does_not_swing_on_flat_areas_as_niqe_does(synthetic_model):
    """NIQE's value on images with flat areas depends on the sign of rounding residues (its spread on TID2013
    I19, 30% flat pixels, is 0.45). Ma has no such step: its features are continuous in the pixels except for
    grid look-ups and forest splits, which an average over blocks and trees smooths. Perturbing I19 by 1e-9
    (far below any rounding that matters to NIQE) moves Ma by less than 1e-3."""
    from srbench.matlab import rgb2gray
    from srbench.metrics.niqe import niqe_conditioning

    if not (PYIQA_CALIBRATION / "I19.bmp").is_file():
        pytest.skip(f"pyiqa's calibration images are not at {PYIQA_CALIBRATION}")
    plane = rgb2gray(read_image(PYIQA_CALIBRATION / "I19.bmp")).astype(np.float64)
    assert niqe_conditioning(plane).spread > 0.1  # the premise: NIQE swings here
    weights = str(synthetic_model.parent)
    base = N.ma(plane, weights_dir=weights)
    rng = np.random.default_rng(0)
    for _ in range(3):
        moved = N.ma(plane + rng.uniform(-1e-9, 1e-9, plane.shape), weights_dir=weights)
        assert abs(moved - base) < 1e-3
