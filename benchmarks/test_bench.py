"""pytest-benchmark: ``nox -s bench`` or ``pytest benchmarks --benchmark-only``.

Inputs are a 512x384 crop of scikit-image's ``coffee`` photograph. pyiqa is the baseline where it has the
same operation (its MATLAB-imresize port, SSIM and NIQE), fed the same pixels in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from srbench.evaluate import evaluate
from srbench.images import read_image
from srbench.matlab import imresize, rgb2gray, rgb2y
from srbench.metrics import niqe, ssim
from srbench.metrics.niqe import pristine_model


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    import skimage.data

    return read_image(f"{skimage.data.data_dir}/coffee.png")[:384, :512]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _tensor(torch, img):
    x = torch.from_numpy(np.asarray(img, dtype=np.float64))
    return x.permute(2, 0, 1)[None] if x.ndim == 3 else x[None, None]


@pytest.mark.benchmark(group="imresize")
def test_imresize_srbench(benchmark, photo):
    out = benchmark(imresize, photo, 0.25)
    assert out.shape == (96, 128, 3)


@pytest.mark.benchmark(group="imresize")
def test_imresize_baseline_pyiqa(benchmark, photo, torch):
    from pyiqa.matlab_utils import imresize as pyiqa_imresize

    x = _tensor(torch, photo)
    out = benchmark(pyiqa_imresize, x, 0.25)
    assert tuple(out.shape[-2:]) == (96, 128)


@pytest.mark.benchmark(group="ssim")
def test_ssim_srbench(benchmark, photo):
    y = rgb2y(photo.astype(np.float64))
    y2 = imresize(imresize(y, 0.25), 4)
    value = benchmark(ssim, y, y2)
    assert 0 < value < 1


@pytest.mark.benchmark(group="ssim")
def test_ssim_baseline_pyiqa(benchmark, photo, torch):
    from pyiqa.archs.ssim_arch import ssim as pyiqa_ssim

    y = rgb2y(photo.astype(np.float64))
    y2 = imresize(imresize(y, 0.25), 4)
    value = benchmark(pyiqa_ssim, _tensor(torch, y), _tensor(torch, y2), data_range=255.0)
    # The same quantity (pyiqa builds its window in float32), so the timings compare.
    assert abs(float(value) - ssim(y, y2)) < 1e-4


@pytest.mark.benchmark(group="niqe")
def test_niqe_srbench(benchmark, photo):
    gray = rgb2gray(photo)
    value = benchmark(niqe, gray)
    assert value > 0


@pytest.mark.benchmark(group="niqe")
def test_niqe_baseline_pyiqa(benchmark, photo, torch):
    from pyiqa.archs.niqe_arch import niqe as pyiqa_niqe

    mu, cov = pristine_model()
    gray = rgb2gray(photo)
    mu_t = torch.from_numpy(mu.copy())[None]
    cov_t = torch.from_numpy(cov.copy())[None]
    value = benchmark(pyiqa_niqe, _tensor(torch, gray), mu_t, cov_t)
    assert abs(float(value) - niqe(gray)) < 0.5  # same metric; pyiqa's port differs slightly


@pytest.mark.benchmark(group="bsd100-bicubic-sr", min_rounds=1, max_time=1.0, warmup=False)
def test_bsd100_bicubic_sr_srbench(benchmark, shared_data):
    def run():
        (result,) = evaluate("bicubic", [str(shared_data / "selfexsr/BSD100")], scale=4, protocol="sr")
        return result

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result.n_images == 100 and abs(result.summary["psnr_y"] - 25.96) < 0.015
