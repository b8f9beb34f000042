from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SRBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


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
