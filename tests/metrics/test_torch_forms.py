"""Torch forms of the metrics (srbench.metrics.torch_forms) against the numpy reference.

On CPU float64: quantisation, the rounded Y plane, shave, MSE, PSNR and SSIM are bitwise equal to the
reference given the same input; the unrounded Y plane is within one ulp of ``rgb2y`` (BLAS fuses its
multiply-adds), so PSNR-Y/SSIM-Y of the ``sr`` protocol are compared within 1e-12 relative. CUDA tests
(skipped without a GPU) compare the device with the CPU forms: bitwise expected (float64 add/mul/div are
correctly rounded on CUDA and nothing is fused), asserted within 1e-12 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from srbench import protocols  # noqa: E402
from srbench.images import decode_image  # noqa: E402
from srbench.matlab import imresize, modcrop, rgb2y, shave, to_uint8  # noqa: E402
from srbench.metrics import fullref  # noqa: E402
from srbench.metrics import torch_forms as T  # noqa: E402
from srbench.metrics.registry import PerImage, TorchBatch, get_metric  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (compares it with the CPU)")
REL = 1e-12  # unrounded Y: <= 1 ulp per pixel apart, summed into PSNR/SSIM


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _pairs(shared_data, names=("baby", "bird", "butterfly", "head", "woman"), scale=4):
    """(SR, HR) of Set5: MATLAB bicubic x4 of the cropped HR's own LR, a real SR/HR pair."""
    out = []
    for name in names:
        hr = modcrop(decode_image(shared_data / "benchmark" / "Set5" / "HR" / f"{name}.png").pixels, scale)
        out.append((imresize(imresize(hr, 1 / scale), scale), hr))
    return out


def _random_pair(rng, shape=(53, 67, 3)):
    hr = rng.integers(0, 256, shape, dtype=np.uint8)
    sr = np.clip(hr.astype(np.int16) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    return sr, hr


# -- quantisation -------------------------------------------------------------------------------------------
HALVES = st.integers(-3, 258).map(lambda k: k + 0.5)


@st.composite
def near_halves(draw, dtype):
    x = np.asarray(draw(HALVES), dtype)
    steps = draw(st.integers(-2, 2))
    for _ in range(abs(steps)):
        x = np.nextafter(x, np.asarray(np.inf if steps > 0 else -np.inf, dtype))
    return x


@settings(max_examples=300, deadline=None)
@given(st.lists(near_halves(np.float64), min_size=1, max_size=16))
def test_quantise_float64_halves_equal_to_uint8(values):
    x = np.array(values, np.float64)
    assert np.array_equal(T.quantise_like_matlab(_t(x)).numpy(), to_uint8(x))


@settings(max_examples=300, deadline=None)
@given(st.lists(near_halves(np.float32), min_size=1, max_size=16))
def test_quantise_float32_halves_equal_to_uint8(values):
    x = np.array(values, np.float32)
    assert np.array_equal(T.quantise_like_matlab(_t(x)).numpy(), to_uint8(x))


def test_quantise_edges_and_random():
    x = np.array([-1e9, -0.5, -0.49, -0.0, 0.0, 0.49999999999999994, 0.5, 1.5, 2.5, 254.5, 254.49999999999997,
                  255.0, 255.5, 1e9, np.inf, -np.inf])
    assert np.array_equal(T.quantise_like_matlab(_t(x)).numpy(), to_uint8(x))
    y = np.random.default_rng(0).uniform(-10, 265, 100_000)
    assert np.array_equal(T.quantise_like_matlab(_t(y)).numpy(), to_uint8(y))
    assert np.array_equal(T.quantise_like_matlab(_t(y.astype(np.float32))).numpy(), to_uint8(y.astype(np.float32)))


def test_quantise_unit_as_runner_upscale():
    y = torch.from_numpy(np.random.default_rng(1).uniform(-0.1, 1.1, (1, 3, 20, 30)).astype(np.float32))
    expected = y.clone().clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_().to(torch.uint8)  # Runner.upscale's ops
    assert torch.equal(T.quantise_unit(y), expected)


# -- planes ---------------------------------------------------------------------------------------------------
def test_y_planes_and_shave(shared_data):
    for sr, _hr in _pairs(shared_data, ("baby", "butterfly")):
        images = T.as_images(sr)
        rounded = T.shave(T.y_plane(images, rounded=True), 4)[0].numpy()
        assert np.array_equal(rounded, shave(rgb2y(sr).astype(np.float64), 4))  # bitwise
        unrounded = T.y_plane(images, rounded=False)[0].numpy()
        ref = rgb2y(sr.astype(np.float64))
        assert np.max(np.abs(unrounded - ref)) <= 2.0**-45 * 256  # one ulp at most (BLAS's fused order)
        c = np.array([65.481, 128.553, 24.966])
        x = sr.astype(np.float64) / 255.0
        assert np.array_equal(unrounded, ((x[..., 0] * c[0] + x[..., 1] * c[1]) + x[..., 2] * c[2]) + 16.0)


def test_planes_like_protocol_planes():
    rng = np.random.default_rng(2)
    sr, hr = _random_pair(rng)
    gray_sr, gray_hr = sr[..., 0], hr[..., 0]
    for s, h in ((sr, hr), (gray_sr, gray_hr)):
        planes = T.TorchPlanes(T.as_images(s), T.as_images(h), 3, rounded=True)
        ref = protocols.Planes(s, h, 3, True)
        for which in ("sr", "hr"):
            assert np.array_equal(planes.get("y", which)[0].numpy(), ref.get("y", which))
            assert np.array_equal(T.to_host(planes.get("rgb", which))[0], ref.get("rgb", which))
    with pytest.raises(Exception, match="HR is"):
        T.TorchPlanes(T.as_images(sr), T.as_images(hr[:-1]), 3, rounded=True)


# -- full-reference metrics -----------------------------------------------------------------------------------
def test_numpy_sum_is_numpys_order():
    rng = np.random.default_rng(3)
    for n in (1, 7, 8, 9, 127, 128, 129, 136, 255, 1000, 8193, 65537, 145_700):
        v = rng.random(n) * 300 - 20
        assert T.numpy_sum(_t(v)[None]).item() == np.sum(v)
        assert T.numpy_mean(_t(v)[None]).item() == np.mean(v)


def test_metrics_bitwise_on_same_planes(shared_data):
    rng = np.random.default_rng(4)
    cases = [(rgb2y(sr.astype(np.float64))[4:-4, 4:-4], rgb2y(hr.astype(np.float64))[4:-4, 4:-4])
             for sr, hr in _pairs(shared_data, ("bird", "head"))]
    cases.append((rng.random((41, 77)) * 255, rng.random((41, 77)) * 255))
    for a, b in cases:
        ta, tb = _t(a), _t(b)
        assert T.mse(ta, tb).item() == fullref.mse(a, b)
        assert T.psnr(ta[None], tb[None]) == [fullref.psnr(a, b)]
        assert T.ssim(ta, tb).item() == fullref.ssim(a, b)
    assert T.psnr(_t(cases[0][0])[None], _t(cases[0][0])[None]) == [math.inf]


def test_batched_equals_one_by_one():
    rng = np.random.default_rng(5)
    a, b = rng.random((3, 37, 45)) * 255, rng.random((3, 37, 45)) * 255
    ta, tb = _t(a), _t(b)
    for fn in (T.mse, T.ssim):
        batched = fn(ta, tb).tolist()
        assert batched == [fn(ta[i], tb[i]).item() for i in range(3)]
    assert T.psnr(ta, tb) == [T.psnr(ta[i:i + 1], tb[i:i + 1])[0] for i in range(3)]


@pytest.mark.parametrize("protocol", ["sr", "pirm"])
def test_descriptors_on_protocol_planes(shared_data, protocol):
    """Each wired descriptor's torch form, on the device planes of a protocol, against Protocol.per_image."""
    proto = protocols.get_protocol(protocol)
    names = [n for n in ("psnr_y", "ssim_y", "rmse") if get_metric(n).in_protocol(protocol)]
    for sr, hr in _pairs(shared_data, ("baby", "woman")):
        ref = proto.per_image(sr, hr, 4, names, {})
        planes = T.TorchPlanes(T.as_images(sr), T.as_images(hr), 4, proto.rounded_luma)
        (got,) = T.per_image(proto, planes, names)
        assert set(got) == set(ref)
        for key, value in ref.items():
            if protocol == "pirm":
                assert got[key] == value, key  # rounded Y: bitwise
            else:
                assert got[key] == pytest.approx(value, rel=REL, abs=0), key


def test_descriptors_batched_random():
    rng = np.random.default_rng(6)
    pairs = [_random_pair(rng, (40, 48, 3)) for _ in range(3)]
    sr = torch.cat([T.as_images(s) for s, _ in pairs])
    hr = torch.cat([T.as_images(h) for _, h in pairs])
    proto = protocols.get_protocol("pirm")
    rows = T.per_image(proto, T.TorchPlanes(sr, hr, 4, True), ["rmse"])
    assert rows == [proto.per_image(s, h, 4, ["rmse"], {}) for s, h in pairs]
    m = get_metric("psnr_y")
    with pytest.raises(Exception, match="no torch form"):
        get_metric("niqe").run_torch(TorchBatch(sr, None))
    assert len(m.run_torch(TorchBatch(T.y_plane(sr, rounded=False), T.y_plane(hr, rounded=False)))) == 3


def test_unit_float_sr_quantised_as_the_runner_does():
    rng = np.random.default_rng(7)
    out = torch.from_numpy(rng.uniform(-0.05, 1.05, (1, 3, 32, 40)).astype(np.float32))
    host = out[0].clone().clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_().to(torch.uint8).permute(1, 2, 0).numpy()
    hr = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    planes = T.TorchPlanes(out, T.as_images(hr), 4, rounded=True, unit=True)
    assert np.array_equal(T.to_host(planes.get("rgb", "sr"))[0], shave(host, 4))


# -- LPIPS and FID --------------------------------------------------------------------------------------------
def test_lpips_input_as_host_conversion():
    from srbench.metrics.lpips_alex import to_tensor

    rng = np.random.default_rng(8)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    assert torch.equal(T.lpips_input(T.as_images(rgb)), to_tensor(rgb))
    assert torch.equal(T.lpips_input(T.as_images(rgb[..., 1])), to_tensor(rgb[..., 1]))


def test_lpips_torch_form_with_a_random_network(monkeypatch, tmp_path):
    """The AlexNet weights are a download: a randomly initialised LPIPS network stands in for it."""
    lpips_pkg = pytest.importorskip("lpips")
    import warnings

    from srbench.metrics import lpips_alex

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = lpips_pkg.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    monkeypatch.setattr(lpips_alex, "lpips_network", lambda backbone, stamp=(): net)
    (tmp_path / "random-alexnet").write_bytes(b"")  # the network is the one above; its file only has to exist
    monkeypatch.setattr(lpips_alex, "alexnet_path", lambda explicit=None: tmp_path / "random-alexnet")
    monkeypatch.setattr(T, "_DEVICE_MODELS", {})
    rng = np.random.default_rng(9)
    pairs = [_random_pair(rng, (48, 56, 3)) for _ in range(2)]
    ref = [lpips_alex.lpips(s, h) for s, h in pairs]
    sr = torch.cat([T.as_images(s) for s, _ in pairs])
    hr = torch.cat([T.as_images(h) for _, h in pairs])
    got = [r["lpips"] for r in get_metric("lpips").run_torch(TorchBatch(sr, hr))]
    assert got == pytest.approx(ref, abs=1e-5)  # float32 network, batched
    assert [T.lpips(sr[i:i + 1], hr[i:i + 1])[0] for i in range(2)] == pytest.approx(ref, abs=1e-6)


def test_fid_patches_and_prepare():
    from srbench.metrics import fid

    rng = np.random.default_rng(10)
    sr, hr = _random_pair(rng, (100, 130, 3))
    (patches,) = T.fid_patches(T.as_images(sr))
    assert np.array_equal(patches.permute(0, 2, 3, 1).numpy(), fid.extract_patches(sr))
    (gray,) = T.fid_patches(T.as_images(sr[..., 0]))
    assert np.array_equal(gray.permute(0, 2, 3, 1).numpy(), fid.extract_patches(sr[..., 0]))

    def features(p: np.ndarray) -> np.ndarray:
        return p.reshape(len(p), -1)[:, ::97].astype(np.float64)

    with fid.use_feature_extractor(features):
        ref = fid._prepare(PerImage(sr, hr, {}))
        (got,) = T.fid_prepare(T.as_images(sr), T.as_images(hr))
    assert all(np.array_equal(g, r) for g, r in zip(got, ref, strict=True))


# -- CUDA against the CPU reference ---------------------------------------------------------------------------
@CUDA
def test_cuda_full_reference_matches_cpu(shared_data):
    for protocol in ("sr", "pirm"):
        proto = protocols.get_protocol(protocol)
        names = [n for n in ("psnr_y", "ssim_y", "rmse") if get_metric(n).in_protocol(protocol)]
        pairs = _pairs(shared_data, ("bird", "head"))  # both 288x288 after modcrop: one batch
        sr = torch.cat([T.as_images(s) for s, _ in pairs])
        hr = torch.cat([T.as_images(h) for _, h in pairs])
        cpu = T.per_image(proto, T.TorchPlanes(sr, hr, 4, proto.rounded_luma), names)
        gpu = T.per_image(proto, T.TorchPlanes(sr.cuda(), hr.cuda(), 4, proto.rounded_luma), names)
        ref = [proto.per_image(s, h, 4, names, {}) for s, h in pairs]
        for c, g, r in zip(cpu, gpu, ref, strict=True):
            for key in r:
                assert g[key] == pytest.approx(c[key], rel=REL, abs=0), (protocol, key)
                assert g[key] == pytest.approx(r[key], rel=REL, abs=0), (protocol, key)


@CUDA
def test_cuda_primitives_match_cpu():
    rng = np.random.default_rng(11)
    x = rng.uniform(-10, 265, 100_000)
    assert np.array_equal(T.quantise_like_matlab(_t(x).cuda()).cpu().numpy(), to_uint8(x))
    a, b = rng.random((2, 97, 131)) * 255, rng.random((2, 97, 131)) * 255
    for fn in (T.mse, T.ssim):
        assert fn(_t(a).cuda(), _t(b).cuda()).cpu().tolist() == pytest.approx(fn(_t(a), _t(b)).tolist(),
                                                                                rel=REL, abs=0)
    v = rng.random(145_700)
    assert T.numpy_sum(_t(v)[None].cuda()).item() == pytest.approx(np.sum(v), rel=REL, abs=0)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    from srbench.archs import GENERATORS, build_generator
    from srbench.checkpoints import save_checkpoint

    torch.manual_seed(3)
    spec = GENERATORS["rrdb23-smoke"]
    config = {**spec.config, "scale": 4}
    path = tmp_path_factory.mktemp("gen") / "g.safetensors"
    save_checkpoint(build_generator(spec.arch, config), path, arch=spec.arch, config=config, variant="rrdb23-smoke",
                    stage="psnr")
    return path


@pytest.fixture(scope="module")
def small_set(shared_data, tmp_path_factory):
    from srbench.images import read_image, write_png

    root = tmp_path_factory.mktemp("set")
    for name, (h, w) in {"baby": (200, 240), "bird": (160, 208), "head": (208, 176)}.items():
        write_png(root / f"{name}.png", read_image(shared_data / f"benchmark/Set5/HR/{name}.png")[:h, :w])
    return root


@pytest.mark.parametrize("protocol", ["sr", "pirm"])
def test_evaluation_with_metrics_on_the_generators_device(generator_file, small_set, protocol):
    """``torch_metrics``: PSNR/SSIM/RMSE computed where the generator's output is (here the CPU standing in for a
    GPU) give the host reference's values (pirm: bitwise; sr: within one ulp of rgb2y's BLAS order), in the same
    order, and the other metrics (NIQE, BRISQUE) see the same uint8 SR image."""
    from srbench.evaluation import evaluate_model

    metrics = ["psnr_y", "ssim_y", "brisque"] if protocol == "sr" else ["rmse", "niqe"]
    host_only = "brisque" if protocol == "sr" else "niqe"
    runs = [next(evaluate_model(str(generator_file), [str(small_set)], protocol=protocol, metrics=metrics, device="cpu",
                                workers=1, torch_metrics=on)) for on in (False, True)]
    host, device = runs
    assert [list(r) for r in host.per_image] == [list(r) for r in device.per_image]
    for a, b in zip(host.per_image, device.per_image, strict=True):
        assert np.array_equal(a[host_only], b[host_only], equal_nan=True)  # a flat crop has no NIQE: NaN in both
        conditioning = {f"{host_only}_{k}" for k in ("spread", "low", "high", "med")}  # NaN with it
        for key in set(a) - {"image", host_only} - conditioning:
            if protocol == "pirm":
                assert a[key] == b[key], key
            else:
                assert b[key] == pytest.approx(a[key], rel=1e-12, abs=0), key


def test_metrics_on_the_device_never_bring_the_sr_image_to_the_host(generator_file, small_set, monkeypatch):
    """With only torch-form metrics, neither the host prediction nor a host copy of the SR image is made."""
    from srbench.evaluation import evaluate_model
    from srbench.sources import GeneratorSource

    def refuse(*args, **kwargs):
        raise AssertionError("the SR image was brought to the host")

    reference = next(evaluate_model(str(generator_file), [str(small_set)], protocol="pirm", metrics=["rmse"],
                                    device="cpu", workers=1))
    monkeypatch.setattr(GeneratorSource, "predict", refuse)
    monkeypatch.setattr(T, "to_host", refuse)
    on_device = next(evaluate_model(str(generator_file), [str(small_set)], protocol="pirm", metrics=["rmse"],
                                    device="cpu", workers=1, torch_metrics=True))
    assert on_device.n_images == 3 and on_device.summary["rmse"] == reference.summary["rmse"]


@CUDA
@pytest.mark.parametrize("protocol", ["sr", "pirm"])
def test_cuda_evaluation_matches_the_host_metrics_on_the_same_output(generator_file, small_set, protocol):
    """On a GPU the default computes PSNR/SSIM/RMSE there: equal to the host reference on the same generator
    output (deterministic kernels, so both runs make the same SR image)."""
    from srbench.evaluation import evaluate_model

    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    metrics = ["psnr_y", "ssim_y"] if protocol == "sr" else ["rmse"]
    host, device = (next(evaluate_model(str(generator_file), [str(small_set)], protocol=protocol, metrics=metrics,
                                        device="cuda", workers=1, torch_metrics=on)) for on in (False, None))
    for a, b in zip(host.per_image, device.per_image, strict=True):
        for key in set(a) - {"image"}:
            assert b[key] == pytest.approx(a[key], rel=REL, abs=0), key


def test_lpips_torch_form_of_images_under_31_pixels_is_nan_as_the_host_form():
    """AlexNet's pooling has no output below 31x31 (torch raised): NaN, as the descriptor's host hook gives."""
    small = T.as_images(np.zeros((20, 40, 3), np.uint8))
    assert all(math.isnan(r["lpips"]) for r in get_metric("lpips").run_torch(TorchBatch(small, small)))
    assert math.isnan(get_metric("lpips").run(PerImage(np.zeros((20, 40, 3), np.uint8),
                                                       np.zeros((20, 40, 3), np.uint8), {}))["lpips"])
