"""Any pyiqa metric as an srbench metric: ``pyiqa:<name>`` (e.g. ``--metrics pyiqa:brisque``).

The descriptor is built from pyiqa's own configuration: direction from ``lower_better``, full-reference
from ``metric_mode``, version from pyiqa's version (another pyiqa release is another implementation, so
stored values are recomputed). The metric sees the protocol's RGB image (quantised, shaved), in 0..1 as pyiqa
expects; pyiqa's own conventions (its Y conversion, borders) apply inside it.

srbench never downloads: while the pyiqa network is built, pyiqa's and torch.hub's download functions are
replaced by one that looks for the file in srbench's weights folder (copying it to where pyiqa reads it)
and otherwise raises :class:`WeightsUnavailableError` naming the file and the folder to put it in.

pyiqa is an extra (``pip install "srbench[pyiqa]"``), not a dependency: its wheels are licensed
PolyForm-Noncommercial-1.0.0 while srbench is MIT. Every import of it goes through :func:`import_pyiqa`, so that
where it is missing the metric that needs it says so in one line.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from srbench import paths
from srbench.errors import BadInputError, MissingExtraError, SrbenchError, WeightsUnavailableError
from srbench.metrics.registry import Metric, PerImage

PREFIX = "pyiqa:"
EXTRA = "pyiqa"
# As pyiqa's 0.1.x wheels declare it (their License-Expression); named so that nobody installs it unaware.
LICENCE = "PolyForm-Noncommercial-1.0.0"
_BUILD_LOCK = threading.Lock()  # the download guard patches module globals: one build at a time


def import_pyiqa(what: str) -> Any:
    """The pyiqa module, or a :class:`MissingExtraError` naming ``what`` needs it, the extra that installs it and
    its licence."""
    try:
        import pyiqa
    except ImportError as exc:
        state = "is not installed" if exc.name == "pyiqa" else f"cannot be imported ({exc})"
        raise MissingExtraError(
            f"{what} needs pyiqa, which {state}: pip install \"srbench[{EXTRA}]\" adds it (pyiqa's licence: "
            f"{LICENCE}, non-commercial use only)") from None
    return pyiqa


def _configs(what: str) -> dict:
    import_pyiqa(what)
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    return DEFAULT_CONFIGS


def pyiqa_cache_dir(what: str = "pyiqa's cache folder") -> Path:
    """Where pyiqa keeps (and would download) its weights."""
    import_pyiqa(what)
    from pyiqa.utils import download_util

    return Path(download_util.DEFAULT_CACHE_DIR)


def _fetch_locally(what: str, weights_dir: str | None):
    """A stand-in for ``download_url_to_file(url, dst, ...)``: srbench's weights folder, or a clear error."""

    def fetch(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        filename = os.path.basename(urlparse(url).path) or os.path.basename(dst)
        found = paths.require_weight(filename, what, url, [Path(dst).parent], weights_dir)
        if Path(dst).name != filename:  # pyiqa asked for it under another name: look for that one too
            found = paths.require_weight(Path(dst).name, what, url, [Path(dst).parent], weights_dir)
        shutil.copyfile(found, dst)  # pyiqa reads from its cache path; the copy is local, never a download

    return fetch


@contextlib.contextmanager
def no_downloads(what: str, weights_dir: str | None = None) -> Iterator[None]:
    """Inside the block, pyiqa, torch.hub and the Hugging Face hub cannot reach the network."""
    import torch.hub

    import_pyiqa(what)
    from pyiqa.utils import download_util

    fetch = _fetch_locally(what, weights_dir)
    saved = [(download_util, "download_url_to_file", download_util.download_url_to_file),
             (torch.hub, "download_url_to_file", torch.hub.download_url_to_file)]
    with contextlib.suppress(ImportError):
        from huggingface_hub import constants as hf_constants

        saved.append((hf_constants, "HF_HUB_OFFLINE", hf_constants.HF_HUB_OFFLINE))
        hf_constants.HF_HUB_OFFLINE = True
    download_util.download_url_to_file = fetch
    torch.hub.download_url_to_file = fetch
    try:
        # pyiqa prints "Downloading: ..." to stdout before calling the stand-in: untrue here, and it would
        # corrupt ``srbench evaluate --json``.
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)


@functools.cache
def _network(name: str, weights_dir: str | None, stamp: tuple = ()) -> Any:
    """pyiqa's network ``name``, built offline; ``stamp`` (of its weights files, where srbench knows them) keys the
    cache, so a replaced file is read again."""
    pyiqa = import_pyiqa(f"{PREFIX}{name}")

    with _BUILD_LOCK, no_downloads(f"{PREFIX}{name}", weights_dir):
        try:
            return pyiqa.create_metric(name, device="cpu")
        except SrbenchError:
            raise
        except Exception as exc:  # pyiqa raises anything (KeyError, OSError, hub errors): one line for users
            raise SrbenchError(
                f"{PREFIX}{name}: pyiqa could not build it offline: {type(exc).__name__}: {exc}") from None


def _tensor(img: np.ndarray):
    import torch

    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def _compute(name: str, fr: bool, stamp: Callable[[str | None], tuple] | None = None):
    def compute(x: PerImage) -> float:
        import torch

        net = _network(name, x.weights_dir, stamp(x.weights_dir) if stamp is not None else ())
        with torch.no_grad():
            score = net(_tensor(x.sr_plane()), _tensor(x.hr_plane())) if fr else net(_tensor(x.sr_plane()))
        return float(score.flatten()[0])

    return compute


def _finder(name: str):
    def find(weights_dir: str | None) -> Path:
        _network(name, weights_dir)  # building it is the only way to learn which files it needs
        return pyiqa_cache_dir(f"{PREFIX}{name}")

    return find


def pyiqa_metric(name: str) -> Metric:
    """The descriptor of pyiqa's metric ``name`` (nothing is built or loaded until it is used)."""
    pyiqa = import_pyiqa(f"{PREFIX}{name}")
    configs = _configs(f"{PREFIX}{name}")
    if name not in configs:
        raise BadInputError(f"unknown metric {PREFIX + name!r}: pyiqa has no metric {name!r} "
                            f"(python -c 'import pyiqa; print(pyiqa.list_models())' lists them)")

    cfg = configs[name]
    fr = cfg.get("metric_mode") == "FR"
    return Metric(
        name=f"{PREFIX}{name}", label=name.upper(), digits=4, higher_is_better=not cfg.get("lower_better", False),
        needs_reference=fr, version=f"pyiqa-{pyiqa.__version__}",
        description=f"pyiqa's {name} ({cfg.get('metric_mode')}, range {cfg.get('score_range', '?')}) on the "
                    "protocol's RGB",
        compute=_compute(name, fr), plane="rgb", find_weights=_finder(name),
    )


__all__ = ["EXTRA", "LICENCE", "PREFIX", "WeightsUnavailableError", "import_pyiqa", "no_downloads", "pyiqa_cache_dir",
           "pyiqa_metric"]
