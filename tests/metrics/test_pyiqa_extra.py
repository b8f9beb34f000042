"""LPIPS-VGG and DISTS through the pyiqa adapter: descriptors, missing files, and the mechanics with fake weights.

The real weights are not on this machine and nothing may be downloaded: the numbers of the real networks are
not tested here, only that srbench finds, checks and hands pyiqa the files it would have downloaded. The fake
files hold randomly initialised networks of the right shapes under the expected names.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from srbench import metrics as M
from srbench.cli import main
from srbench.errors import WeightsUnavailableError
from srbench.protocols import PROTOCOLS
from srbench.weightfiles import CheckpointError

pytest.importorskip("pyiqa")

NAMES = {"lpips_vgg": "lpips-vgg", "dists": "dists"}
PYIQA_FILES = {"lpips_vgg": "LPIPS_v0.1_vgg-a78928a0.pth", "dists": "DISTS_weights-f5e65c96.pth"}
VGG16_FILE = "vgg16-397923af.pth"


def _random_vgg16():
    import torchvision

    return torchvision.models.vgg16(weights=None)


@pytest.fixture(scope="session")
def fake_files(tmp_path_factory) -> dict[str, Path]:
    """Randomly initialised weights under the names pyiqa and torchvision download them as (written once)."""
    return write_fake_weights(tmp_path_factory.mktemp("fake-weights"))


def write_fake_weights(folder: Path) -> dict[str, Path]:
    """The files of :func:`fake_files` written to ``folder`` (tests/metrics/test_conformance.py uses them too)."""
    import torch
    import torchvision
    from pyiqa.archs import dists_arch, lpips_arch

    torch.manual_seed(0)
    vgg = _random_vgg16().state_dict()
    # torchvision loads the whole VGG16 strictly, but LPIPS and DISTS use only its features: the classifier
    # (120M parameters) is a stride-0 view of one zero, a few bytes on disk instead of 480 MB.
    vgg = {k: torch.zeros(1).expand(v.shape) if k.startswith("classifier") else v for k, v in vgg.items()}
    torch.save(vgg, folder / VGG16_FILE)
    real_vgg16 = torchvision.models.vgg16
    torchvision.models.vgg16 = lambda *args, **kwargs: real_vgg16(weights=None)  # the archs build it at init
    try:
        lpips_net = lpips_arch.LPIPS(net="vgg", version="0.1", pretrained=False)
        dists_net = dists_arch.DISTS(pretrained=False)
    finally:
        torchvision.models.vgg16 = real_vgg16
    torch.save({k: v for k, v in lpips_net.state_dict().items() if k.startswith("lin")},
               folder / PYIQA_FILES["lpips_vgg"])
    torch.save({k: v for k, v in dists_net.state_dict().items() if k in ("alpha", "beta")},
               folder / PYIQA_FILES["dists"])
    return {p.name: p for p in folder.iterdir()}


def _weights_dir() -> Path:
    return Path(os.environ["SRBENCH_WEIGHTS"])  # an empty folder of this test (conftest)


def _place(fake_files: dict[str, Path], names: list[str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(fake_files[name])


def _image(seed: int, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.uint8)


def _run(name: str, sr: np.ndarray, hr: np.ndarray) -> dict[str, float]:
    return M.get_metric(name).run(M.PerImage(sr, hr, {}, str(_weights_dir())))


@pytest.mark.parametrize("name", list(NAMES))
def test_registered_full_reference_lower_is_better_on_rgb_and_opt_in(name):
    spec = M.get_metric(name)
    assert (spec.higher_is_better, spec.needs_reference, spec.plane) == (False, True, "rgb")
    assert spec.weights == f"{PYIQA_FILES[name]} + {VGG16_FILE}" and spec.find_weights is not None
    assert not spec.drift_check and spec.version.startswith("pyiqa-")
    assert all(name not in p.default_metrics for p in PROTOCOLS.values())


@pytest.mark.parametrize("name", list(NAMES))
def test_without_weights_every_missing_file_is_named_with_its_folder(name, offline):
    with pytest.raises(WeightsUnavailableError) as info:
        _run(name, _image(0), _image(1))
    message = str(info.value)
    assert PYIQA_FILES[name] in message and VGG16_FILE in message
    assert str(_weights_dir()) in message and "put them in" in message
    assert info.value.folder == str(_weights_dir()) and str(offline) in info.value.searched
    assert not offline.exists() or not any(offline.iterdir())  # nothing fetched, nothing written


@pytest.mark.parametrize("name", list(NAMES))
def test_one_missing_file_is_named_alone(name, offline, fake_files):
    _place(fake_files, [VGG16_FILE], _weights_dir())
    with pytest.raises(WeightsUnavailableError) as info:
        M.get_metric(name).find_weights(str(_weights_dir()))
    assert info.value.filename == PYIQA_FILES[name] and VGG16_FILE not in str(info.value)


def test_cli_evaluate_reports_the_missing_files_in_one_line(offline):
    out = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage",
                                    "--metrics", "dists"])
    assert out.exit_code == 1
    assert PYIQA_FILES["dists"] in out.stderr and VGG16_FILE in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", list(NAMES))
def test_with_fake_weights_it_runs_and_is_zero_for_identical_images(name, offline, fake_files):
    # pyiqa's file in srbench's weights folder; VGG16 where torchvision reads it (torch.hub's checkpoints)
    _place(fake_files, [PYIQA_FILES[name]], _weights_dir())
    import torch.hub

    _place(fake_files, [VGG16_FILE], Path(torch.hub.get_dir()) / "checkpoints")
    assert M.get_metric(name).find_weights(str(_weights_dir())).name == PYIQA_FILES[name]
    a, b = _image(0), _image(1)
    same = _run(name, a, a)[name]
    other = _run(name, a, b)[name]
    assert abs(same) < 1e-5 and math.isfinite(other) and other != same
    assert (offline / PYIQA_FILES[name]).is_file()  # copied from the weights folder to where pyiqa reads it


def test_weights_carrying_pickled_code_are_refused_before_pyiqa_loads_them(offline, fake_files):
    import torch

    _place(fake_files, [VGG16_FILE], _weights_dir())
    torch.save({"alpha": torch.zeros(1), "trap": _Trap()}, _weights_dir() / PYIQA_FILES["dists"])
    with pytest.raises(CheckpointError):
        _run("dists", _image(0), _image(1))
    assert not _Trap.loaded


class _Trap:
    loaded = False

    def __setstate__(self, state):
        _Trap.loaded = True
