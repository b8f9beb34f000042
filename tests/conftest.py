from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SRBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_configure(config) -> None:
    """Ma's compiled loops (numba) compile once per test run: every test's SRBENCH_CACHE is new, so each process
    that computes Ma (spawned workers, torchrun ranks, subprocesses) would compile them again, about 5 s each.
    A developer's own NUMBA_CACHE_DIR is kept; the test of where srbench puts the cache sets it itself."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="srbench-tests-numba-")
        os.environ["NUMBA_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only reference data beside the checkout (../shared/data)."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"reference data not found at {SHARED_DATA} (CI provides it as ../shared/data)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_weights(tmp_path_factory, monkeypatch):
    """No test may find (or write) weights, or anything else, in the user's real caches."""
    empty = tmp_path_factory.mktemp("weights")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(empty))
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("TORCH_HOME", str(empty / "torch"))
    monkeypatch.delenv("SRBENCH_DATA", raising=False)


@pytest.fixture(autouse=True)
def _default_max_pixels():
    """--max-pixels sets a process-wide limit (as Pillow's own is): no test may leave it changed for the next."""
    from srbench.images import set_max_pixels

    yield
    set_max_pixels(None)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No socket may connect, pyiqa's cache is an empty folder (a download attempt fails loudly), and no
    network built in the test outlives it."""
    pytest.importorskip("pyiqa")
    import socket

    from pyiqa.utils import download_util

    from srbench.metrics import pyiqa_adapter

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    cache = tmp_path / "pyiqa-cache"
    monkeypatch.setattr(download_util, "DEFAULT_CACHE_DIR", str(cache))
    yield cache
    pyiqa_adapter._network.cache_clear()  # fake networks must not serve a later test


@pytest.fixture
def ddp_train():
    """``srbench train`` of one stage on 2 gloo processes (torchrun, one thread each); returns the two ranks'
    weight digests (``ddp_ranks.json``) after checking that the launch succeeded."""
    def run(stage: str, iters: int, args: list[str], out, port: int) -> list:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "srbench", "train", "--stage", stage, "--iters", str(iters), "--out", str(out), "--device",
               "cpu", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        digests = json.loads((Path(out) / stage / "ddp_ranks.json").read_text())
        assert len(digests) == 2, digests
        return digests

    return run


# A tiny two-stage training (two iterations a stage) and a 4-entry suite of it (training cache, torchrun).
TINY_STAGES = {"psnr": {"iters": 2, "milestones": [1], "val_every": 2, "checkpoint_every": 2},
               "gan": {"iters": 2, "milestones": [1], "val_every": 2, "checkpoint_every": 2}}

SHARED_SUITE = """
name = "shared"
[[variants]]
name = "a"
training = {{ variant = "srgan-nobn", {tiny} }}
[[variants]]
name = "b"
training = {{ variant = "srgan-nobn", {tiny} }}
[[variants]]
name = "c"
training = {{ variant = "srgan-nobn", seed = 1, {tiny} }}
[[variants]]
name = "d"
training = {{ variant = "srgan-nobn", {tiny_gan_lr} }}
"""


def _shared_suite_text() -> str:
    def table(stages):
        return ", ".join(f"{stage} = {{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in sc.items()) + " }"
                         for stage, sc in stages.items())

    gan_lr = {**TINY_STAGES, "gan": {**TINY_STAGES["gan"], "lr": 5e-5}}
    return SHARED_SUITE.format(tiny=table(TINY_STAGES), tiny_gan_lr=table(gan_lr))



@pytest.fixture
def tiny_stages() -> dict:
    """Both stages of a training cut to two iterations."""
    return copy.deepcopy(TINY_STAGES)


@pytest.fixture
def shared_suite() -> str:
    """A suite whose entries a and b are equal; c has another seed; d another gan learning rate."""
    return _shared_suite_text()
