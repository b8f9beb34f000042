"""Ma's score: srbench's native port against pyiqa's NRQM, single thread, on a BSD100 and an Urban100 image.

The real ``NRQM_model.mat`` is not on every machine; both sides read the same stand-in model file of the
real one's structure (3 forests of 2000 trees, 2881 node slots each), so the forests cost what the real ones do.
Per-image times of niqe, ma and pi (= niqe + ma) are reported for the same images, each as a ratio against
pyiqa's (pi's baseline is the sum of pyiqa's NRQM and NIQE times, ``conftest._pi_baselines``: not a third run
of pyiqa's slow NRQM).
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from srbench.images import read_image
from srbench.matlab import rgb2y
from srbench.metrics import niqe
from srbench.metrics import nrqm as N
from srbench.metrics.nrqm_synthetic import write_model_around

IMAGES = {  # (path under ../shared/data, crop) -> the sizes the issue names
    "480x320": ("selfexsr/BSD100/image_SRF_4/img_004_SRF_4_HR.png", (slice(0, 320), slice(0, 480))),
    "1024x768": ("selfexsr/Urban100/image_SRF_4/img_002_SRF_4_HR.png", (slice(0, 768), slice(0, 1024))),
}


@pytest.fixture(scope="module")
def single_thread():
    """One thread for torch (pyiqa), BLAS (numpy) and OpenCV (srbench's SSIM filter) alike."""
    import cv2

    torch = pytest.importorskip("torch")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with threadpoolctl.threadpool_limits(1):
        yield torch
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


@pytest.fixture(scope="module")
def planes(shared_data) -> dict[str, np.ndarray]:
    out = {}
    for size, (rel, crop) in IMAGES.items():
        img = read_image(shared_data / rel)
        plane = np.ascontiguousarray((rgb2y(img) if img.ndim == 3 else img.astype(np.float64))[crop])
        assert plane.shape == tuple(int(v) for v in reversed(size.split("x")))
        out[size] = plane
    return out


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, planes):
    path = tmp_path_factory.mktemp("nrqm") / N.NRQM_FILENAME
    write_model_around(path, planes.values(), n_trees=2000)
    return path


def _native(plane: np.ndarray, model_path, convention: N.Convention = N.MATLAB) -> float:
    model = N.load_model(str(model_path))
    return model.predict(N.dct_features(plane, convention), N.gsm_features(plane, convention),
                         N.svd_features(plane, convention))


@pytest.mark.parametrize("size", list(IMAGES))
def test_ma_srbench(benchmark, planes, model_path, single_thread, size):
    benchmark.group = f"ma-{size}"
    plane = planes[size]
    _native(plane, model_path)  # the model file is parsed once per process, as in evaluation
    value = benchmark.pedantic(_native, (plane, model_path), rounds=3, iterations=1)
    tracemalloc.start()
    _native(plane, model_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    blocks = math.ceil(plane.shape[0] / 3) * math.ceil(plane.shape[1] / 3)
    benchmark.extra_info.update(peak_mib=peak / 2**20, pyiqa_lookup_mib=min(blocks, 10_000) * 9971 * 8 / 2**20)
    print(f"\nma {size}: srbench peak {peak / 2**20:.0f} MiB traced; pyiqa's shape look-up alone allocates "
          f"{min(blocks, 10_000)} x 9971 doubles = {min(blocks, 10_000) * 9971 * 8 / 2**20:.0f} MiB per chunk")
    # Peak memory is a bounded number of copies of the image and its bands, not blocks x table.
    assert peak < 60 * plane.size * 8  # measured: about 48 planes (the GSM neighbourhoods are 15 of them)
    assert math.isfinite(value)


@pytest.mark.parametrize("size", list(IMAGES))
def test_ma_baseline_pyiqa(benchmark, planes, model_path, single_thread, size):
    from pyiqa.archs.nrqm_arch import NRQM, nrqm

    benchmark.group = f"ma-{size}"
    torch = single_thread
    model = NRQM(test_y_channel=False, pretrained_model_path=str(model_path))
    x = torch.from_numpy(planes[size])[None, None]
    with torch.no_grad():
        value = benchmark.pedantic(nrqm, (x, model.linear_param, model.rf_params_list), rounds=1, iterations=1)
    # The same number once srbench is set to pyiqa's departures from MATLAB (it computes MATLAB's by default).
    assert float(value) == pytest.approx(_native(planes[size], model_path, N.PYIQA), rel=1e-6)


@pytest.mark.parametrize("size", list(IMAGES))
def test_niqe_per_image_srbench(benchmark, planes, single_thread, size):
    benchmark.group = f"niqe-{size}"
    assert math.isfinite(benchmark.pedantic(niqe, (planes[size],), rounds=3, iterations=1))


@pytest.mark.parametrize("size", list(IMAGES))
def test_niqe_per_image_baseline_pyiqa(benchmark, planes, single_thread, size):
    from pyiqa.archs.niqe_arch import niqe as pyiqa_niqe

    from srbench.metrics.niqe import pristine_model

    benchmark.group = f"niqe-{size}"
    torch = single_thread
    mu, cov = pristine_model()
    x = torch.from_numpy(planes[size].astype(np.float64))[None, None]
    value = benchmark.pedantic(pyiqa_niqe, (x, torch.from_numpy(mu.copy())[None], torch.from_numpy(cov.copy())[None]),
                               rounds=3, iterations=1)
    assert abs(float(value) - niqe(planes[size])) < 0.5  # the same metric; pyiqa's port differs slightly


@pytest.mark.parametrize("size", list(IMAGES))
def test_pi_per_image_srbench(benchmark, planes, model_path, single_thread, size):
    from srbench.metrics.builtin import perceptual_index_from

    benchmark.group = f"pi-{size}"

    def pi(plane: np.ndarray) -> float:
        return perceptual_index_from(_native(plane, model_path), niqe(plane))

    assert math.isfinite(benchmark.pedantic(pi, (planes[size],), rounds=3, iterations=1))
