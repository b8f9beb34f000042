"""What every result records about how it was made: package versions, the code's commit, the run's fields."""

from __future__ import annotations

import contextlib
import functools
import platform
from importlib import metadata
from pathlib import Path

from srbench import datasets as D
from srbench.version import __version__


@functools.cache
def versions() -> dict[str, str]:
    out = {"srbench": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "pillow", "scikit-image", "torch", "pyiqa"):
        with contextlib.suppress(metadata.PackageNotFoundError):  # absent packages are simply not listed
            out[pkg] = metadata.version(pkg)
    return out


# The packages whose versions can move any computed value (others are in each result's provenance): srbench check
# compares them, and a stored value made under other versions is reused only where the caller accepts it
# (srbench.options.EvalOptions.same_environment). Not pyiqa: the metrics it computes carry its version in their
# own ("pyiqa-0.1.16"), and no other value depends on it, so the light install (no pyiqa) is no changed fingerprint.
FINGERPRINT_PACKAGES = ("srbench", "numpy", "scipy", "torch")


def environment() -> dict[str, str]:
    """The installed versions of :data:`FINGERPRINT_PACKAGES` (those present)."""
    found = versions()
    return {pkg: found[pkg] for pkg in FINGERPRINT_PACKAGES if pkg in found}


def needs_modcrop(path: Path, scale: int) -> bool:
    """Whether an HR file's size is not a multiple of the scale, read from its header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError:
        return False
    return h % scale != 0 or w % scale != 0


@functools.cache
def git_commit() -> str | None:
    """The checkout's commit srbench runs from, with ``-dirty`` (git describe's mark) when the package's code
    differs from it: a commit alone would claim numbers for code that was never committed."""
    import subprocess

    package = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(package.parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if out.returncode != 0 or not out.stdout.strip():
            return None
        changed = subprocess.run(["git", "-C", str(package.parent), "status", "--porcelain", "--", str(package)],
                                 capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = changed.returncode != 0 or bool(changed.stdout.strip())
    return out.stdout.strip() + ("-dirty" if dirty else "")


def run_fields(model, dataset: D.Dataset, dataset_key: str, protocol: str, scale: int,
                suite: str | None) -> dict:
    info = getattr(model, "info", {}) or {}
    meta = info.get("metadata") or {}
    found = versions()
    return {
        "suite": suite, "model": model.name, "model_key": model.key, "dataset": dataset.name,
        "dataset_key": dataset_key, "protocol": protocol, "scale": scale,
        "config": {"model": model.describe(), "train_config": meta.get("extra", {}).get("train_config"),
                   "environment": {pkg: found[pkg] for pkg in FINGERPRINT_PACKAGES if pkg in found}},
        "checkpoint_sha256": info.get("sha256"), "srbench_version": found["srbench"],
        "torch_version": found.get("torch"), "git_commit": git_commit(),
        "device": str(getattr(getattr(model, "runner", None), "device", "cpu")),
        "seed": (meta.get("extra", {}).get("train_config") or {}).get("seed"),
    }
