"""The MATLAB primitives against MATLAB-made files and MATLAB's documented arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srbench.images import read_image
from srbench.matlab import (
    imresize,
    modcrop,
    resize_weights,
    rgb2gray,
    rgb2y,
    rgb2ycbcr,
    round_half_away,
    shave,
    to_uint8,
)

SET5 = ("baby", "bird", "butterfly", "head", "woman")


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", SET5)
def test_uint8_imresize_reproduces_matlab_lr_bit_for_bit(shared_data, name, scale):
    hr = modcrop(read_image(shared_data / f"benchmark/Set5/HR/{name}.png"), scale)
    lr = read_image(shared_data / f"benchmark/Set5/LR_bicubic/X{scale}/{name}x{scale}.png")
    out = imresize(hr, 1 / scale)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, lr)


@pytest.mark.parametrize("name", SET5)
def test_double_imresize_reproduces_matlab_x8_bit_for_bit(shared_data, name):
    hr = modcrop(read_image(shared_data / f"benchmark/Set5/HR/{name}.png"), 8)
    lr = read_image(shared_data / f"benchmark/Set5/LR_bicubic/X8/{name}x8.png")
    out = imresize(hr.astype(np.float64), 1 / 8)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(to_uint8(out), lr)


@pytest.mark.parametrize("subset", ["Set5", "Set14", "BSD100", pytest.param("Urban100", marks=pytest.mark.slow)])
def test_replicate_border_reproduces_selfexsr_lr_bit_for_bit(shared_data, subset):
    pairs = sorted((shared_data / "selfexsr" / subset / "image_SRF_4").glob("*_HR.png"))
    assert pairs, "no SelfExSR files"
    for hr_path in pairs:
        hr = read_image(hr_path)
        lr = read_image(hr_path.with_name(hr_path.name.replace("_HR", "_LR")))
        np.testing.assert_array_equal(imresize(hr, 0.25, border="replicate"), lr, err_msg=str(hr_path))


def test_symmetric_and_replicate_differ_only_near_the_border(shared_data):
    hr = read_image(shared_data / "selfexsr/Set5/image_SRF_4/img_001_SRF_4_HR.png")
    sym = imresize(hr, 0.25).astype(int)
    rep = imresize(hr, 0.25, border="replicate").astype(int)
    assert (sym != rep).any()
    np.testing.assert_array_equal(sym[3:-3, 3:-3], rep[3:-3, 3:-3])


def test_round_half_away_from_zero():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999, 254.5])
    np.testing.assert_array_equal(round_half_away(x), [-3, -2, -1, 1, 2, 3, 2, 255])
    np.testing.assert_array_equal(to_uint8(np.array([-3.0, 0.5, 255.5, 300.0])), [0, 1, 255, 255])


def test_resize_weights_match_matlab_contributions():
    # x4 upsampling: 6 taps of the Keys kernel (a = -0.5); the first output sits at u = 0.625.
    w, idx = resize_weights(10, 40, 4.0)
    assert w.shape == (40, 4)  # two all-zero tap columns are dropped, as MATLAB does
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    d = 0.625 - np.array([-1.0, 0.0, 1.0, 2.0])
    keys = np.where(np.abs(d) <= 1, 1.5 * np.abs(d) ** 3 - 2.5 * d**2 + 1,
                    -0.5 * np.abs(d) ** 3 + 2.5 * d**2 - 4 * np.abs(d) + 2)
    np.testing.assert_allclose(w[0], keys / keys.sum(), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(idx[0], [1, 0, 0, 1])  # 1-based -1, 0 mirror to 2, 1 (0-based 1, 0)


def test_imresize_shapes_and_constant_images():
    img = np.full((37, 23, 3), 77, np.uint8)
    out = imresize(img, 1 / 3)
    assert out.shape == (13, 8, 3)  # ceil(37/3), ceil(23/3)
    assert (out == 77).all()
    up = imresize(np.full((5, 7), 3.25), 4)
    assert up.shape == (20, 28)
    np.testing.assert_allclose(up, 3.25, rtol=0, atol=1e-12)


def _imresize_by_definition(img: np.ndarray, scale: float, border: str) -> np.ndarray:
    """MATLAB's imresize written out pixel by pixel: each output is 0 plus its contributions' weight times
    source value, added in tap order, rounded half away from zero and saturated after each pass for uint8."""
    as_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    for axis in (0, 1):
        w, idx = resize_weights(out.shape[axis], int(np.ceil(out.shape[axis] * scale)), scale, border)
        src = np.moveaxis(out, axis, 0)
        dst = np.empty((w.shape[0], *src.shape[1:]))
        for o in range(w.shape[0]):
            acc = np.zeros(src.shape[1:])
            for k in range(w.shape[1]):
                acc = acc + w[o, k] * src[idx[o, k]]
            dst[o] = acc
        if as_uint8:
            dst = np.clip(np.sign(dst) * np.floor(np.abs(dst) + 0.5), 0, 255)
        out = np.moveaxis(dst, 0, axis)
    return out.astype(np.uint8) if as_uint8 else out


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 24), w=st.integers(1, 24), channels=st.sampled_from([0, 1, 3]),
       scale=st.sampled_from([4, 3, 2, 1.7, 0.6, 0.5, 1 / 3, 0.25]), as_uint8=st.booleans(),
       border=st.sampled_from(["symmetric", "replicate"]), seed=st.integers(0, 2**32 - 1))
def test_imresize_equals_its_definition_bit_for_bit(h, w, channels, scale, as_uint8, border, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    img = rng.integers(0, 256, shape, dtype=np.uint8) if as_uint8 else rng.random(shape) * 300 - 20
    got, want = imresize(img, scale, border=border), _imresize_by_definition(img, scale, border)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


def test_imresize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="border"):
        imresize(np.zeros((8, 8)), 0.5, border="circular")
    with pytest.raises(TypeError, match="int64"):
        imresize(np.zeros((8, 8), np.int64), 0.5)
    with pytest.raises(ValueError, match="positive"):
        imresize(np.zeros((8, 8)), 0)


def test_rgb2ycbcr_studio_range_and_rounding():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], np.uint8)
    ycc = rgb2ycbcr(px)
    assert ycc.dtype == np.uint8
    np.testing.assert_array_equal(ycc[0, 0], [16, 128, 128])
    np.testing.assert_array_equal(ycc[0, 1], [235, 128, 128])
    np.testing.assert_array_equal(ycc[0, 2], [81, 90, 240])  # MATLAB: rgb2ycbcr(uint8([255 0 0]))
    y_exact = 16 + (65.481 * 10 + 128.553 * 200 + 24.966 * 30) / 255
    yf = rgb2ycbcr(px.astype(np.float64))
    assert abs(yf[0, 3, 0] - y_exact) < 1e-12
    assert ycc[0, 3, 0] == int(np.floor(y_exact + 0.5))
    np.testing.assert_array_equal(rgb2y(px), ycc[..., 0])
    np.testing.assert_allclose(rgb2y(px.astype(float)), yf[..., 0], rtol=0, atol=1e-12)


def test_rgb2gray_coefficients():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]]], np.uint8)
    np.testing.assert_array_equal(rgb2gray(px), [[76, 150, 29, 141]])
    g = rgb2gray(px.astype(float))
    assert abs(g[0, 3] - (0.298936021293775 * 100 + 0.587043074451121 * 150 + 0.114020904255103 * 200)) < 1e-12


def test_modcrop_and_shave():
    img = np.arange(11 * 14).reshape(11, 14)
    assert modcrop(img, 4).shape == (8, 12)
    np.testing.assert_array_equal(modcrop(img, 4), img[:8, :12])
    np.testing.assert_array_equal(shave(img, 2), img[2:-2, 2:-2])
    assert shave(img, 0) is img
    with pytest.raises(ValueError, match="shave"):
        shave(img, 6)
