"""Every metric passes the one conformance tester (srbench.conformance): each built-in metric, a metric registered
from outside, and broken outside metrics that it must catch, one property each (issue 22).

Weights that are not obtainable here are replaced as the metrics' own tests replace them: a randomly
initialised AlexNet for lpips (tests/metrics/test_torch_forms.py), a seeded random feature net for fid
(tests/metrics/test_fid.py), random VGG16/LPIPS/DISTS files for lpips_vgg and dists
(tests/metrics/test_pyiqa_extra.py), the stand-in NRQM model
(srbench.metrics.nrqm_synthetic) for ma and pi. The sample is a 200x200 crop of Set5's baby.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from srbench import metrics as M
from srbench.conformance import CHECKS, ConformanceError, check_metric
from srbench.images import read_image
from srbench.metrics.builtin import BUILTIN


@pytest.fixture(scope="module")
def image(shared_data) -> np.ndarray:
    return np.ascontiguousarray(read_image(shared_data / "benchmark/Set5/HR/baby.png")[150:350, 150:350])


# -- stand-ins for weights that are not here (module-level, so the fresh processes can import them) ---------------
@functools.cache
def _random_lpips_alex() -> Any:
    import lpips
    import torch

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()


@contextlib.contextmanager
def random_alexnet(folder: str) -> Iterator[None]:
    """LPIPS with a randomly initialised AlexNet (seed 0) in place of the ImageNet download."""
    from srbench.metrics import lpips_alex

    (Path(folder) / "random-alexnet").write_bytes(b"")  # the network is the one above; its file only has to exist
    saved = lpips_alex.lpips_network, lpips_alex.alexnet_path
    lpips_alex.lpips_network = lambda backbone, stamp=(): _random_lpips_alex()  # type: ignore[assignment]
    lpips_alex.alexnet_path = lambda explicit=None: Path(folder) / "random-alexnet"
    try:
        yield
    finally:
        lpips_alex.lpips_network, lpips_alex.alexnet_path = saved  # type: ignore[assignment]


def random_inception() -> contextlib.AbstractContextManager:
    """FID with tests/metrics/test_fid.py's seeded random feature net in place of torch-fidelity's Inception."""
    from test_fid import RandomNet

    from srbench.metrics import fid

    return fid.use_feature_extractor(RandomNet())


# Convolutions in float32 on the CPU sum in an order that depends on torch's thread count.
FLOAT32_THREADS = ("float32 convolutions on the CPU sum in an order that depends on torch's thread count: 1 and 2 "
                   "threads differ by ~1e-8 relative (within the metric's drift tolerance); same threads, same value")


def _small(request) -> np.ndarray:
    """A 72x72 crop (64x64 after the shave): the networks' cost grows with the pixels; LPIPS needs 31x31."""
    return request.getfixturevalue("image")[60:132, 60:132]


def _lpips(request, tmp_path) -> dict:
    pytest.importorskip("lpips")
    return {"context": functools.partial(random_alexnet, str(tmp_path)), "image": _small(request),
            "exceptions": {"determinism": FLOAT32_THREADS}}


def _fid(request, tmp_path) -> dict:
    pytest.importorskip("torch")
    return {"context": random_inception}


STAND_IN = ("the real NRQM_model.mat is not obtainable here; the stand-in model (srbench.metrics.nrqm_synthetic) "
            "has random trees, whose scores carry no quality order")


def _nrqm(request, tmp_path) -> dict:
    folder = request.getfixturevalue("stand_in_nrqm")
    kwargs: dict[str, Any] = {"weights_dir": folder}
    if request.node.callspec.params["name"] == "ma":
        kwargs["exceptions"] = {"direction": STAND_IN}
    return kwargs  # pi passes its direction even so: its NIQE half orders the images


def _pyiqa(request, tmp_path) -> dict:
    pytest.importorskip("pyiqa")
    request.getfixturevalue("offline")
    import torch.hub
    from test_pyiqa_extra import PYIQA_FILES, VGG16_FILE

    name = request.node.callspec.params["name"]
    fakes = request.getfixturevalue("fake_pyiqa_weights")
    weights = Path(os.environ["SRBENCH_WEIGHTS"])
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    (weights / PYIQA_FILES[name]).symlink_to(fakes[PYIQA_FILES[name]])
    (hub / VGG16_FILE).symlink_to(fakes[VGG16_FILE])
    found: dict[str, Any] = {"weights_dir": str(weights), "image": _small(request)}
    if name == "lpips_vgg":
        found["exceptions"] = {"determinism": FLOAT32_THREADS}
    return found


SETUP: dict[str, Callable[[Any, Path], dict]] = {
    "psnr_y": lambda r, t: {}, "ssim_y": lambda r, t: {}, "rmse": lambda r, t: {}, "niqe": lambda r, t: {},
    "niqe_median": lambda r, t: {}, "brisque": lambda r, t: {}, "spectrum": lambda r, t: {},
    "spectrum_discrepancy": lambda r, t: {}, "ma": _nrqm, "pi": _nrqm, "lpips": _lpips, "fid": _fid,
    "lpips_vgg": _pyiqa, "dists": _pyiqa,
}


@pytest.fixture(scope="module")
def fake_pyiqa_weights(tmp_path_factory) -> dict[str, Path]:
    from test_pyiqa_extra import write_fake_weights

    return write_fake_weights(tmp_path_factory.mktemp("fake-weights"))


@pytest.fixture(scope="module")
def stand_in_nrqm(tmp_path_factory, image) -> str:
    from srbench.matlab import rgb2y
    from srbench.metrics.nrqm import NRQM_FILENAME
    from srbench.metrics.nrqm_synthetic import write_model_around

    folder = tmp_path_factory.mktemp("nrqm")
    write_model_around(folder / NRQM_FILENAME, [rgb2y(image)[4:-4, 4:-4]], n_samples=100, n_trees=10, seed=0)
    return str(folder)


def test_every_built_in_metric_has_its_conformance_setup():
    assert set(SETUP) == {m.name for m in BUILTIN}


@pytest.mark.parametrize("name", [m.name for m in BUILTIN])
def test_every_built_in_metric_conforms(name, image, request, tmp_path):
    report = check_metric(name, **{"image": image, **SETUP[name](request, tmp_path)})
    assert [f.check for f in report.findings] == list(CHECKS)
    skipped = {f.check for f in report.findings if f.status == "skip"}
    assert skipped == EXCEPTIONS.get(name, set())


# The properties a built-in metric is excused from here, each with its reason in its setup above.
EXCEPTIONS = {"ma": {"direction"}, "lpips": {"determinism"}, "lpips_vgg": {"determinism"}}


# -- metrics from outside ---------------------------------------------------------------------------------------
def _mae(x: M.PerImage) -> float:
    return float(np.mean(np.abs(x.sr_plane() - x.hr_plane())))


def _random(x: M.PerImage) -> float:
    return _mae(x) + float(np.random.default_rng().random())  # another value on every call


def _thread_dependent(x: M.PerImage) -> float:
    return _mae(x) + 1e-12 * int(os.environ.get("OMP_NUM_THREADS", "0"))  # the same within one process only


def _nan_when_flat(x: M.PerImage) -> float:
    return math.nan if np.ptp(x.hr_plane()) == 0 else _mae(x)


def _float32(x: M.PerImage) -> Any:
    return np.float32(_mae(x))


def _toy(name: str, compute: Callable[[M.PerImage], Any] = _mae, **fields: Any) -> M.Metric:
    card: dict[str, Any] = {"label": "MAE-Y", "digits": 3, "higher_is_better": False, "needs_reference": True,
                            "version": "toy-1", "description": "mean absolute error of Y", "protocols": ("sr",),
                            "identical": 0.0, **fields}
    return M.Metric(name=name, compute=compute, **card)


MAE = _toy("toy_mae")


@pytest.fixture
def registered_mae() -> Iterator[M.Metric]:
    M.register(MAE)
    try:
        yield MAE
    finally:
        M.unregister(MAE.name)


def test_a_metric_registered_from_outside_conforms_by_name(registered_mae, image):
    report = check_metric("toy_mae", image=image)
    assert report.passed and {f.status for f in report.findings} == {"ok"}
    assert "a fresh process with 1 and 2 thread(s)" in report.finding("determinism").detail


def test_an_unregistered_descriptor_is_checked_and_left_unregistered(image):
    assert check_metric(MAE, image=image, processes=False).passed
    assert "toy_mae" not in M.all_metrics()


BROKEN = {
    "direction": _toy("toy_backwards", higher_is_better=True),  # an error declared higher-is-better
    "determinism": _toy("toy_random", _random, identical=None),
    "nan_inf": _toy("toy_nan", _nan_when_flat),  # NaN for a flat HR, without saying when (undefined_when)
    "store": _toy("toy_float32", _float32),  # a numpy float32: the store cannot hold it
    "version": _toy("toy_unversioned", version=""),
}


@pytest.mark.parametrize("check", list(BROKEN))
def test_a_broken_outside_metric_fails_exactly_its_property(check, image):
    metric = BROKEN[check]
    with pytest.raises(ConformanceError, match=rf"metric '{metric.name}': FAILS {check}\n") as found:
        check_metric(metric, image=image, processes=check == "determinism")
    assert isinstance(found.value, AssertionError)
    report = check_metric(metric, image=image, processes=False, raise_on_failure=False)
    assert [f.check for f in report.failures] == [check]


def test_a_value_that_depends_on_the_thread_count_is_caught_across_processes(image):
    metric = _toy("toy_threads", _thread_dependent)
    report = check_metric(metric, image=image, raise_on_failure=False)
    assert [f.check for f in report.failures] == ["determinism"]
    detail = report.finding("determinism").detail
    assert "in a fresh process with 1 thread(s)" in detail and "in a fresh process with 2 thread(s)" in detail
    assert "on a second run in this process" not in detail  # within one process it is the same every time


def test_an_exception_is_reported_with_its_reason_and_unknown_properties_are_refused(image):
    from srbench.errors import BadInputError

    report = check_metric(BROKEN["direction"], image=image, processes=False,
                          exceptions={"direction": "a toy that is wrong on purpose"})
    assert report.finding("direction").status == "skip"
    assert "a toy that is wrong on purpose" in report.finding("direction").detail
    with pytest.raises(BadInputError, match="no property speed"):
        check_metric(MAE, image=image, exceptions={"speed": "x"})
