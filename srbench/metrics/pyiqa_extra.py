"""LPIPS-VGG and DISTS: two deep full-reference metrics of pyiqa as built-in srbench metrics.

Both are computed by pyiqa (``lpips-vgg``: LPIPS v0.1 with VGG16 features; ``dists``: Ding et al. 2020)
through :mod:`srbench.metrics.pyiqa_adapter`, on the protocol's RGB image in 0..1, lower is better, and never
download. Unlike ``pyiqa:<name>`` their descriptors name the files they need, so ``srbench metrics`` lists
them and a missing file is reported up front together with every other missing one: pyiqa would only name
the first it tries to load. Each file is looked for in srbench's weights folder, then where its loader reads
it (torch.hub's ``checkpoints`` folder for torchvision's VGG16, pyiqa's cache for pyiqa's own file). Every file
is first read with ``weights_only`` loading (refusing pickled code) before pyiqa's own unrestricted
``torch.load`` sees it.

Neither is in a protocol's default set or in ``srbench check``: ask for them with ``--metrics``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from srbench import paths
from srbench.errors import SrbenchError, WeightsUnavailableError
from srbench.metrics.registry import Metric, PerImage


@dataclass(frozen=True)
class WeightFile:
    """A file a metric needs: its name (as pyiqa or torchvision would download it) and where it comes from."""

    filename: str
    origin: str
    reader: str  # "torchvision" (read from torch.hub's checkpoints) or "pyiqa" (read from pyiqa's cache)


_PYIQA_WEIGHTS = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main"
VGG16 = WeightFile("vgg16-397923af.pth",
                   "torchvision's VGG16 ImageNet weights (torchvision.models.VGG16_Weights.IMAGENET1K_V1, "
                   "https://download.pytorch.org/models/vgg16-397923af.pth)", "torchvision")
FILES: dict[str, tuple[WeightFile, ...]] = {
    "lpips-vgg": (WeightFile("LPIPS_v0.1_vgg-a78928a0.pth", f"{_PYIQA_WEIGHTS}/LPIPS_v0.1_vgg-a78928a0.pth",
                             "pyiqa"), VGG16),
    "dists": (WeightFile("DISTS_weights-f5e65c96.pth", f"{_PYIQA_WEIGHTS}/DISTS_weights-f5e65c96.pth", "pyiqa"),
              VGG16),
}


class MissingWeightsError(WeightsUnavailableError):
    """Several files of one metric are missing: all of them named in one message (``filename`` is the first)."""

    def __init__(self, what: str, missing: list[tuple[WeightFile, WeightsUnavailableError]]) -> None:
        first = missing[0][1]
        self.what = what
        self.filename = first.filename
        self.filenames = [f.filename for f, _ in missing]
        self.folder = first.folder
        self.searched = list(dict.fromkeys(s for _, exc in missing for s in exc.searched))
        origins = "; ".join(f"{f.filename} from {f.origin}" for f, _ in missing)
        SrbenchError.__init__(
            self, f"{what} needs {' and '.join(self.filenames)}, which are not on this machine (looked in: "
                  f"{', '.join(self.searched)}). Get {origins}; put them in {self.folder} "
                  "(or set SRBENCH_WEIGHTS to their folder).")


# srbench's name of each (what the one-line error for a missing pyiqa names).
METRIC_NAMES = {"lpips-vgg": "lpips_vgg", "dists": "dists"}


def _reader_dir(reader: str, pyiqa_name: str) -> Path:
    if reader == "torchvision":
        return paths.torch_hub_dir() / "checkpoints"
    from srbench.metrics.pyiqa_adapter import pyiqa_cache_dir

    return pyiqa_cache_dir(METRIC_NAMES[pyiqa_name])  # MissingExtraError where pyiqa is not installed


def weight_paths(pyiqa_name: str, weights_dir: str | None = None) -> list[Path]:
    """The files of pyiqa's ``pyiqa_name`` (in ``FILES`` order), or one :class:`WeightsUnavailableError`
    naming every missing file and the folder to put it in."""
    what = f"{pyiqa_name} (pyiqa)"
    found: list[Path] = []
    missing: list[tuple[WeightFile, WeightsUnavailableError]] = []
    for f in FILES[pyiqa_name]:
        try:
            found.append(paths.require_weight(f.filename, what, f.origin, [_reader_dir(f.reader, pyiqa_name)],
                                              weights_dir))
        except WeightsUnavailableError as exc:
            missing.append((f, exc))
    if len(missing) == 1:
        raise missing[0][1]
    if missing:
        raise MissingWeightsError(what, missing)
    return found


@functools.cache
def _checked(path: str, size: int, mtime_ns: int) -> None:
    from srbench.weightfiles import read_weights

    read_weights(path)  # a CheckpointError (pickled code, not a checkpoint, truncated) before pyiqa loads it


def _read(f: WeightFile, found: Path, pyiqa_name: str) -> Path:
    """The copy pyiqa or torchvision actually loads: the one already in its own folder, else ``found`` (which
    srbench copies there when asked for it)."""
    theirs = _reader_dir(f.reader, pyiqa_name) / f.filename
    return theirs if theirs.is_file() else found


def _files(pyiqa_name: str):
    def files(weights_dir: str | None) -> list[Path]:
        found = [_read(f, p, pyiqa_name)
                 for f, p in zip(FILES[pyiqa_name], weight_paths(pyiqa_name, weights_dir), strict=True)]
        for path in found:
            stat = path.stat()
            _checked(str(path), stat.st_size, stat.st_mtime_ns)
        return found

    return files


def _finder(pyiqa_name: str):
    files = _files(pyiqa_name)

    def find(weights_dir: str | None) -> Path:
        return files(weights_dir)[0]

    return find


def _compute(pyiqa_name: str):
    files = _files(pyiqa_name)

    def stamp(weights_dir: str | None) -> tuple:
        from srbench.weights import stamp

        return tuple(stamp(p) for p in files(weights_dir))

    def compute(x: PerImage) -> float:
        from srbench.metrics import pyiqa_adapter

        return pyiqa_adapter._compute(pyiqa_name, True, stamp)(x)

    return compute


def _pyiqa_version() -> str:
    try:
        return metadata.version("pyiqa")
    except metadata.PackageNotFoundError:
        return "absent"


def _descriptor(name: str, pyiqa_name: str, label: str, description: str) -> Metric:
    files = FILES[pyiqa_name]
    return Metric(name=name, label=label, digits=4, higher_is_better=False, needs_reference=True,
                  version=f"pyiqa-{_pyiqa_version()}", description=description, compute=_compute(pyiqa_name),
                  plane="rgb", protocols=("sr", "pirm"), weights=" + ".join(f.filename for f in files),
                  find_weights=_finder(pyiqa_name), weight_files=_files(pyiqa_name), tolerance=1e-4)


LPIPS_VGG = _descriptor("lpips_vgg", "lpips-vgg", "LPIPS-VGG",
                        "LPIPS v0.1, VGG16 features (pyiqa lpips-vgg), on RGB")
DISTS = _descriptor("dists", "dists", "DISTS",
                    "DISTS (Ding et al. 2020, VGG16 structure and texture similarity; pyiqa dists), on RGB")

__all__ = ["DISTS", "FILES", "LPIPS_VGG", "VGG16", "MissingWeightsError", "WeightFile", "weight_paths"]
