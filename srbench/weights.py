"""The weights files behind metric values: checked against their pins, and part of each value's identity.

A metric computed with downloaded weights (LPIPS's AlexNet, FID's Inception, LPIPS-VGG's and DISTS's VGG16, Ma's
``NRQM_model.mat``) gives another number with other weights, so before an evaluation computes anything each such
file is hashed (sha256, once per process and file: cached by path, size, mtime and inode) and

- checked against its pin, the one table of them being :data:`srbench.downloads.DOWNLOADS`: the whole sha256, the
  prefix a file name carries (torchvision's ``alexnet-owt-7be5be79.pth``), or, for files no project publishes a
  hash of, the sha256 recorded at its first ``srbench fetch`` (``fetched.json`` beside it). Another file is
  refused in one line naming it, the pin and the fix, unless the user opts in: the environment variable
  :data:`ALLOW_ENV` (``SRBENCH_ALLOW_UNPINNED_WEIGHTS=1``) is the one switch, which ``--allow-unpinned-weights``
  (evaluate, check, ablate) and the API's ``allow_unpinned_weights=True`` set for their run;
- hashed into the metric's stored version (``lpips-0.1-alex-1@<sha256>``), so a replaced file is recomputed,
  never answered from the store, and recorded in the evaluation's provenance (pinned or not).

A file srbench knows no pin for (pyiqa's own files, a file placed by hand where the pin is the one recorded at
download) cannot be checked; its sha256 still keys and records the values.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from srbench.errors import SrbenchError


class _Metrics(Protocol):
    """What the checks need of a protocol (:class:`srbench.protocols.Protocol`, a level above): its metrics by name.
    Typed by shape, not by import, so that this module stays below the protocols that use it."""

    def metric(self, name: str) -> Any: ...

ALLOW_ENV = "SRBENCH_ALLOW_UNPINNED_WEIGHTS"
# How a weights file's sha256 appears in a stored metric version: "<implementation version>@<sha256>" per file.
TAG = re.compile(r"@[0-9a-f]{64}")


class UnpinnedWeightsError(SrbenchError):
    """A weights file is not the one srbench pins for it (and the user did not opt in)."""


@dataclass(frozen=True)
class WeightsFile:
    """One weights file a metric read: where, its sha256, and the pin it was checked against."""

    path: Path
    sha256: str
    pin: str | None  # the pinned sha256 or its prefix; None where srbench knows none
    fetch_name: str | None  # its ``srbench fetch weights`` name, if it has one

    @property
    def pinned(self) -> bool | None:
        """Whether it is the pinned file (None: no pin known)."""
        return None if self.pin is None else self.sha256.startswith(self.pin.lower())

    def provenance(self) -> dict:
        return {"file": str(self.path), "sha256": self.sha256, "pin": self.pin, "pinned": self.pinned}


def allowed() -> bool:
    """Whether the user opted in to weights that are not the pinned ones."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def allowing(allow: bool = True) -> Iterator[None]:
    """The opt-in for the block (``--allow-unpinned-weights``, the API's ``allow_unpinned_weights``): the same
    environment variable, set while it runs and restored after, so there is one switch however it is given."""
    if not allow:
        yield
        return
    before = os.environ.get(ALLOW_ENV)
    os.environ[ALLOW_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_ENV, None)
        else:
            os.environ[ALLOW_ENV] = before


def stamp(path: str | os.PathLike) -> tuple[int, int, int]:
    """(size, mtime in ns, inode) of a file: what changes when it is replaced or rewritten. Caches of networks
    loaded from a file include it in their key, so a replaced file is loaded again in the same process."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def sha256(path: str | os.PathLike) -> str:
    """The file's sha256, computed once per process for each version of the file."""
    resolved = str(Path(path).resolve())
    return _sha256(resolved, *stamp(resolved))


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    from srbench.images import file_sha256

    return file_sha256(path)


def pin_of(path: Path) -> tuple[str | None, str | None]:
    """(pinned sha256 or prefix, fetch name) of a weights file, by its file name in ``downloads.DOWNLOADS``; the sha256
    recorded at first download (in the ledger beside the file) where the project publishes none."""
    from srbench import downloads

    for download in downloads.DOWNLOADS.values():
        if download.kind == "weights" and download.filename == path.name:
            recorded = downloads.ledger(path.parent).get(download.filename, {}).get("sha256")
            return download.sha256 or recorded, download.name
    return None, None


def check_file(path: str | os.PathLike) -> WeightsFile:
    """The file hashed and checked against its pin: an :class:`UnpinnedWeightsError` for another file, unless
    :func:`allowed`."""
    path = Path(path)
    pin, name = pin_of(path)
    found = WeightsFile(path, sha256(path), pin, name)
    if found.pinned is False and not allowed():
        fix = f"`srbench fetch weights {name}` (after moving this file away)" if name else "the pinned file"
        raise UnpinnedWeightsError(
            f"{path}: sha256 {found.sha256} is not the pinned {pin}: not the weights srbench's numbers are made "
            f"with; replace it with {fix}, or set {ALLOW_ENV}=1 to use it anyway (its sha256 is then recorded "
            "with every value)")
    return found


def check_metric(protocol: _Metrics, name: str, weights_dir: str | None) -> list[WeightsFile]:
    """Every weights file metric ``name`` reads, checked (the metric's weights must be there)."""
    return [check_file(p) for p in protocol.metric(name).weight_paths(weights_dir)]


def check_metrics(protocol: _Metrics, names: Sequence[str], weights_dir: str | None) -> dict[str, list[WeightsFile]]:
    """:func:`check_metric` of each of ``names`` that reads weights files."""
    found = {n: check_metric(protocol, n, weights_dir) for n in names}
    return {n: files for n, files in found.items() if files}


def tags(checked: Mapping[str, Sequence[WeightsFile]]) -> dict[str, str]:
    """metric -> what its files add to its stored version ("@<sha256>" per file)."""
    return {n: "".join(f"@{f.sha256}" for f in files) for n, files in checked.items()}


def provenance(checked: Mapping[str, Sequence[WeightsFile]]) -> dict[str, list[dict]]:
    return {n: [f.provenance() for f in files] for n, files in checked.items()}


def split_version(stored: str) -> tuple[str, str]:
    """A stored metric version as (implementation version, the weights' tags); tags are "" for a metric without
    weights files, or a value stored before weights were part of the key."""
    return TAG.sub("", stored), "".join(TAG.findall(stored))
