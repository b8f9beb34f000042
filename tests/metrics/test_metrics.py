"""Metrics against MATLAB reference values, independent float64 references and their own properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from srbench import metrics as M
from srbench.errors import WeightsUnavailableError
from srbench.images import read_image
from srbench.metrics.niqe import niqe_features, prepare_plane, pristine_model

# The LIVE release's computequality() on its example images (../shared/data/README.md).
LIVE_NIQE = {"image1": 5.0290, "image2": 17.8659, "image3": 8.0362, "image4": 2.6571}


def _rng_pair(shape, seed=0, noise=12.0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, noise, shape), 0, 255)
    return a, b


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Wang's ssim_index.m written out literally: 2-D fspecial window, filter2(..., 'valid')."""
    r = np.arange(-5, 6, dtype=np.float64)
    x, y = np.meshgrid(r, r)
    w = np.exp(-(x * x + y * y) / (2 * 1.5**2))
    w /= w.sum()
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    f = lambda img: signal.correlate2d(img, w, mode="valid")  # noqa: E731
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = f(a), f(b)
    s1 = f(a * a) - mu1 * mu1
    s2 = f(b * b) - mu2 * mu2
    s12 = f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def test_psnr_and_mse_match_the_formula():
    a, b = _rng_pair((40, 50))
    ref_mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    assert M.mse(a, b) == pytest.approx(ref_mse, rel=0, abs=1e-12)
    assert abs(M.psnr(a, b) - 10 * math.log10(255**2 / ref_mse)) < 1e-10
    assert M.psnr(a, a) == math.inf


@pytest.mark.parametrize("shape", [(64, 80), (33, 47), (48, 40, 3)])
def test_ssim_equals_independent_reference(shape):
    a, b = _rng_pair(shape, seed=shape[0])
    got = M.ssim(a, b)
    if len(shape) == 2:
        ref = _ssim_reference(a, b)
    else:
        ref = float(np.mean([_ssim_reference(a[..., c], b[..., c]) for c in range(3)]))
    assert abs(got - ref) < 1e-10
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_is_symmetric_and_rejects_mismatch():
    a, b = _rng_pair((30, 30))
    assert abs(M.ssim(a, b) - M.ssim(b, a)) < 1e-14
    with pytest.raises(ValueError, match="differ in size"):
        M.ssim(a, b[:-1])
    with pytest.raises(ValueError, match="at least 11x11"):
        M.ssim(a[:8, :8], b[:8, :8])


@pytest.mark.parametrize("name", ["image1", "image2", "image4"])
def test_niqe_matches_the_live_matlab_release(shared_data, name):
    img = read_image(shared_data / f"niqe/live_examples/{name}.bmp")
    assert abs(M.niqe(img) - LIVE_NIQE[name]) < 1e-3


def test_niqe_is_bitwise_repeatable(shared_data):
    img = read_image(shared_data / "niqe/live_examples/image3.bmp")
    values = {M.niqe(img) for _ in range(3)}
    assert len(values) == 1


def test_niqe_conditioning_flags_flat_images(shared_data):
    flat = M.niqe_conditioning(read_image(shared_data / "niqe/live_examples/image3.bmp"))
    assert flat.ill_conditioned
    assert flat.flat_fraction > 0.1
    # MATLAB's printed value is one legitimate resolution of the flat-area signs
    # (tests/metrics/test_niqe_conditioning.py).
    assert flat.low <= LIVE_NIQE["image3"] <= flat.high
    assert flat.low <= flat.value <= flat.high
    sound = M.niqe_conditioning(read_image(shared_data / "niqe/live_examples/image1.bmp"))
    assert not sound.ill_conditioned
    assert sound.spread == 0.0 and sound.flat_fraction == 0.0


def test_niqe_colour_input_goes_through_rounded_rgb2gray(shared_data):
    from srbench.matlab import rgb2gray

    img = read_image(shared_data / "niqe/live_examples/image1.bmp")
    assert M.niqe(img) == M.niqe(rgb2gray(img))
    assert M.niqe(img) == M.niqe(img.astype(np.float64))


def test_niqe_features_shape_and_crop():
    rng = np.random.default_rng(3)
    plane = prepare_plane(rng.integers(0, 256, (200, 300)).astype(np.uint8))
    assert plane.shape == (192, 288)
    feats = niqe_features(plane)
    assert feats.shape == (2 * 3, 36)
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        prepare_plane(np.zeros((95, 200)))
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        prepare_plane(np.zeros((120, 191)))


def test_pristine_model_is_the_live_release(shared_data):
    from scipy.io import loadmat

    mat = loadmat(shared_data / "niqe/modelparameters.mat")
    mu, cov = pristine_model()
    np.testing.assert_array_equal(mu, mat["mu_prisparam"].ravel())
    np.testing.assert_array_equal(cov, mat["cov_prisparam"])


def test_missing_nrqm_model_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    with pytest.raises(WeightsUnavailableError) as err:
        M.ma(np.zeros((64, 64)))
    msg = str(err.value)
    assert "NRQM_model.mat" in msg and str(tmp_path / "w") in msg


def test_missing_lpips_backbone_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    a, b = _rng_pair((32, 32, 3))
    with pytest.raises(WeightsUnavailableError) as err:
        M.lpips(a, b)
    assert "alexnet-owt-7be5be79.pth" in str(err.value) and str(tmp_path / "w") in str(err.value)


@pytest.mark.parametrize("kind", ["random-bytes", "pickled-code", "wrong-network"])
def test_a_bad_lpips_backbone_file_is_one_clear_error(tmp_path, monkeypatch, kind):
    import os
    import pickle

    torch = pytest.importorskip("torch")
    from srbench.weightfiles import CheckpointError

    path = tmp_path / "alexnet-owt-7be5be79.pth"
    if kind == "random-bytes":
        path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        expected = "not a checkpoint"
    elif kind == "pickled-code":
        path.write_bytes(pickle.dumps({"features.0.weight": os.system}))
        expected = "pickled code"
    else:
        torch.save({"features.0.weight": torch.zeros(3, 3)}, path)
        expected = "not torchvision's AlexNet (features.0.weight is torch.Size([3, 3])"
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    a, b = _rng_pair((32, 32, 3))
    with pytest.raises(CheckpointError) as err:
        M.lpips(a, b)
    message = str(err.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_lpips_uses_a_local_backbone_file(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from srbench.metrics import lpips_alex as lpips_mod

    torch.manual_seed(0)
    state = torchvision.models.alexnet().state_dict()  # random weights: only the mechanics are tested
    torch.save(state, tmp_path / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    a, b = _rng_pair((64, 64, 3), noise=40)
    assert M.lpips(a, a) == 0.0
    d_ab, d_ba = M.lpips(a, b), M.lpips(b, a)
    assert d_ab > 0 and abs(d_ab - d_ba) < 1e-6
    model = lpips_mod.lpips_network(str(tmp_path / "alexnet-owt-7be5be79.pth"))
    assert torch.equal(model.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(model.net.slice5._modules["10"].weight, state["features.10.weight"])


@pytest.mark.parametrize("name", ["psnr_y", "ssim_y", "rmse", "niqe"])
def test_each_descriptor_says_what_its_metric_does(name):
    """Direction and reference need are read by tables, check and evaluate: they must match the numbers."""
    from srbench.datasets import resolve
    from srbench.protocols import PROTOCOLS

    spec = M.get_metric(name)
    (proto,) = [p for p in PROTOCOLS.values() if spec.in_protocol(p.name)]
    ds = resolve("skimage", None)
    hr = ds.load_pair(ds.items[0], 4).hr
    rng = np.random.default_rng(1)
    light = np.clip(hr + rng.normal(0, 3, hr.shape), 0, 255)
    heavy = np.clip(hr + rng.normal(0, 30, hr.shape), 0, 255)

    def score(sr, ref=hr):
        return proto.per_image(sr, ref, 4, [name], {})[name]

    better, worse = score(light), score(heavy)
    assert better > worse if spec.higher_is_better else better < worse
    other = np.ascontiguousarray(hr[::-1])  # another HR: only a full-reference metric may notice
    assert (score(light, other) != better) == spec.needs_reference
    assert round(better, spec.digits) != round(worse, spec.digits)  # its table digits tell them apart


def test_unknown_metric_lists_the_known_ones():
    known = "psnr_y, ssim_y, rmse, niqe, niqe_median, ma, pi, lpips"
    with pytest.raises(ValueError, match=f"unknown metric 'nope'; known: {known}"):
        M.get_metric("nope")


def test_stored_value_versions_do_not_move_by_accident():
    """Stored values are keyed by these strings: changing one silently recomputes every stored number (a bump
    must be deliberate and recorded in the CHANGELOG)."""
    from srbench.protocols import PROTOCOLS

    assert PROTOCOLS["sr"].output_versions(["psnr_y", "ssim_y", "lpips"]) == {
        "psnr_y": "1", "ssim_y": "wang2004-1", "lpips": "lpips-0.1-alex-1"}
    assert PROTOCOLS["pirm"].output_versions(["rmse", "niqe", "ma", "pi", "lpips"]) == {
        "rmse": "1", "mse": "1", "niqe": "live-2", "niqe_spread": "live-2", "niqe_low": "live-2",
        "niqe_high": "live-2", "niqe_med": "live-2", "ma": "native-1", "pi": "pirm2018-1+live-2+native-1",
        "lpips": "lpips-0.1-alex-1"}


def test_pi_per_image_and_per_dataset_use_the_one_formula():
    from srbench.protocols import PROTOCOLS

    rows = [{"ma": 6.0, "niqe": 4.0, "mse": 1.0}, {"ma": 8.0, "niqe": 2.0, "mse": 9.0}]
    agg = PROTOCOLS["pirm"].aggregate(rows, ["pi", "rmse", "niqe"])
    assert agg == {"pi": M.perceptual_index_from(7.0, 3.0), "rmse": math.sqrt(5.0), "niqe": 3.0}
    assert M.perceptual_index_from(7.0, 3.0) == 3.0
    per = M.get_metric("pi").run(M.PerImage(None, None, {"ma": 6.0, "niqe": 4.0}))
    assert per == {"pi": 4.0}
