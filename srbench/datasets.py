"""Benchmark datasets: named sets under a data root, the two real-world layouts, plain folders, and an
embedded set built from scikit-image's photographs.

Layouts read:
- EDSR "benchmark": ``<Set>/HR/<name>.png`` with ``<Set>/LR_bicubic/X<s>/<name>x<s>.png``;
- SelfExSR: ``<Set>/image_SRF_<s>/img_NNN_SRF_<s>_HR.png`` and ``..._LR.png``;
- a plain folder of HR images.

HR images are cropped to a multiple of the scale (top-left, ``modcrop``) before pairing, as every
published table does. Where a set ships no LR for the scale, LR is made with MATLAB ``imresize`` (uint8,
symmetric borders) from the cropped HR.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from srbench import paths
from srbench.errors import BadInputError, DatasetNotFoundError
from srbench.images import content_sha256, decode_image, describe_channels, image_files, read_image
from srbench.matlab import imresize, modcrop

# Where each named set is looked for under a data root, in order (folder names seen in the wild).
KNOWN_SETS: dict[str, tuple[str, ...]] = {
    "set5": ("Set5", "benchmark/Set5", "selfexsr/Set5"),
    "set14": ("Set14", "benchmark/Set14", "selfexsr/Set14"),
    "bsd100": ("BSD100", "B100", "benchmark/B100", "benchmark/BSD100", "selfexsr/BSD100"),
    "urban100": ("Urban100", "benchmark/Urban100", "selfexsr/Urban100"),
    "pirm-val": ("PIRM_val", "pirm-val", "PIRM/val", "PIRM/Validation", "benchmark/PIRM_val"),
    "div2k-val": ("DIV2K_valid_HR", "DIV2K/valid", "DIV2K/DIV2K_valid_HR", "benchmark/DIV2K_valid"),
}
# How many images each named set has (what published numbers are means over).
KNOWN_SIZES: dict[str, int] = {"set5": 5, "set14": 14, "bsd100": 100, "urban100": 100, "pirm-val": 100,
                               "div2k-val": 100}
EMBEDDED = "skimage"
EMBEDDED_TRAIN = "skimage-train"
# scikit-image ships these natural RGB photographs inside its wheel (no download).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
# Other RGB images it ships, disjoint from the evaluation set: the smoke preset trains on these.
SKIMAGE_TRAIN = ("motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png")

_SELFEXSR_DIR = re.compile(r"^image_SRF_(\d+)$")
_SELFEXSR_HR = re.compile(r"^(?P<name>.+)_SRF_(?P<scale>\d+)_HR$")


@dataclass(frozen=True)
class Item:
    """One HR image of a dataset and, where the set ships them, its LR files by scale."""

    name: str
    hr_path: Path
    lr_paths: dict[int, Path] = field(default_factory=dict)

    def read_hr(self) -> np.ndarray:
        return read_image(self.hr_path)


@dataclass(frozen=True)
class Pair:
    name: str
    hr: np.ndarray  # cropped to a multiple of the scale
    lr: np.ndarray
    lr_source: str  # "file" or "imresize"
    cropped_from: tuple[int, int] | None  # the original HR size when modcrop changed it
    notes: tuple[str, ...] = ()  # conversions the reader made (16-bit read as 8-bit, EXIF ignored, ...)


@dataclass(frozen=True)
class Rejected:
    """A file of a dataset that cannot be one of its images (e.g. two files share one image name)."""

    name: str
    path: Path
    error: str


@dataclass(frozen=True)
class Dataset:
    name: str
    location: str
    layout: str  # "benchmark", "selfexsr", "folder" or "embedded"
    items: tuple[Item, ...]
    rejected: tuple[Rejected, ...] = ()
    # (scale, folder, number of images) of each LR folder the layout has (benchmark: LR_bicubic/X<scale>).
    lr_folders: tuple[tuple[int, str, int], ...] = ()
    notes: tuple[str, ...] = ()  # what the layout left out, for the result's warnings

    def __len__(self) -> int:
        return len(self.items)

    def item(self, name: str) -> Item:
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(name)

    def fingerprint(self) -> str:
        """sha256 over item names and the bytes of every HR and LR file (an unreadable file by its error)."""
        h = hashlib.sha256(f"{self.layout}\n".encode())
        for it in self.items:
            h.update(f"{it.name}:{content_sha256(it.hr_path)}\n".encode())
            for scale, lr in sorted(it.lr_paths.items()):
                h.update(f"{it.name}:x{scale}:{content_sha256(lr)}\n".encode())
        return h.hexdigest()

    def lr_files_missing(self, scale: int) -> list[str]:
        """Images without an LR file at ``scale`` in a set that ships LR files for it: their LR is made by
        imresize instead, which changes their numbers (SelfExSR LR files use replicated borders)."""
        if not any(scale in it.lr_paths for it in self.items):
            return []
        return [it.name for it in self.items if scale not in it.lr_paths]

    def check_lr_files(self, scale: int) -> None:
        """An LR folder for ``scale`` holding images of which none is named after an HR image is the user's LR,
        misnamed: evaluating with imresize's LR instead would give other numbers without a word."""
        if any(scale in it.lr_paths for it in self.items):
            return
        for folder_scale, folder, count in self.lr_folders:
            if folder_scale == scale and count:
                example = self.items[0].hr_path.stem if self.items else "name"
                *others, last = (naming.format(stem=example, s=scale) for naming in _LR_NAMINGS)
                raise BadInputError(
                    f"{folder}: {count} LR image(s), none named after an HR image of {self.location} (looked for "
                    f"{', '.join(others)} or {last}, any image format): rename them, or move the folder away to "
                    "have the LR made with MATLAB's imresize")

    def load_pair(self, item: Item, scale: int) -> Pair:
        """HR cropped to a multiple of ``scale`` and its LR (the set's file, else MATLAB imresize)."""
        return load_pair(item, scale)


def crop_hr(hr: np.ndarray, scale: int, where: object) -> tuple[np.ndarray, tuple[int, int] | None]:
    """HR cropped to a multiple of ``scale`` from the top left (MATLAB's modcrop), and its size before when that
    cropped it; an HR smaller than the scale is a BadInputError naming ``where``."""
    h, w = hr.shape[:2]
    if h < scale or w < scale:
        raise BadInputError(f"{where}: HR is {h}x{w}, smaller than the scale x{scale}")
    cropped = modcrop(hr, scale)
    return cropped, (h, w) if cropped.shape != hr.shape else None


def load_pair(item: Item, scale: int) -> Pair:
    """:meth:`Dataset.load_pair` of ``item`` (it reads only the item's files: a worker process runs it too)."""
    decoded = decode_image(item.hr_path)
    hr_full, notes = decoded.pixels, decoded.notes
    where = item.hr_path
    h, w = hr_full.shape[:2]
    hr, cropped = crop_hr(hr_full, scale, where)
    lr_path = item.lr_paths.get(scale)
    if lr_path is None:
        return Pair(item.name, hr, imresize(hr, 1.0 / scale), "imresize", cropped, notes)
    decoded = decode_image(lr_path)
    lr, notes = decoded.pixels, notes + decoded.notes
    expected = (hr.shape[0] // scale, hr.shape[1] // scale)
    if lr.shape[:2] != expected:
        raise BadInputError(
            f"{lr_path}: LR is {lr.shape[0]}x{lr.shape[1]}, but HR {where} ({h}x{w}) at x{scale} "
            f"needs {expected[0]}x{expected[1]}"
        )
    if lr.ndim != hr.ndim:
        raise BadInputError(
            f"{lr_path}: LR is {describe_channels(lr)} but HR {where} is {describe_channels(hr)}")
    return Pair(item.name, hr, lr, "file", cropped, notes)


def _images_in(folder: Path) -> list[Path]:
    return image_files(folder)


def _without_clashes(items: list[Item]) -> tuple[tuple[Item, ...], tuple[Rejected, ...]]:
    """Items whose names are unique; two files with one image name (a.png, a.bmp) are both rejected, since
    results are keyed by name and one would silently take the other's values."""
    by_name: dict[str, list[Item]] = {}
    for it in items:
        by_name.setdefault(it.name, []).append(it)
    kept, rejected = [], []
    for name, group in by_name.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        files = " and ".join(str(it.hr_path) for it in group)
        for it in group:
            rejected.append(Rejected(name, it.hr_path, f"{files} share the image name {name!r}; rename or "
                                                       f"remove one (results are keyed by name)"))
    return tuple(kept), tuple(rejected)


def _lr_scale_dirs(folder: Path) -> list[tuple[int, Path]]:
    """(scale, folder) of ``LR_bicubic/X<scale>`` (``x<scale>`` too; both for one scale is refused: which one holds
    the LR would be a guess)."""
    lr_root = folder / "LR_bicubic"
    if not lr_root.is_dir():
        return []
    found: dict[int, list[Path]] = {}
    for sub in sorted(lr_root.iterdir()):
        if sub.is_dir() and (m := re.fullmatch(r"[Xx]([1-9]\d*)", sub.name)):
            found.setdefault(int(m.group(1)), []).append(sub)
    for scale, subs in found.items():
        if len(subs) > 1:
            raise BadInputError(f"{lr_root}: {' and '.join(s.name for s in subs)} are both x{scale} LR folders: "
                                "keep one")
    return sorted((scale, subs[0]) for scale, subs in found.items())


# How an LR file may be named after its image (the benchmark sets' first), at scale s.
_LR_NAMINGS = ("{stem}x{s}", "{stem}_x{s}", "{stem}_LR", "{stem}")


def _lr_files(hrs: list[Path], scale: int, by_stem: dict[str, list[Path]]) -> dict[Path, Path]:
    """HR -> its LR file among one scale folder's files, under the one naming (``_LR_NAMINGS``) that pairs the
    most images: one naming per folder, so that no file is read as two images' LR (HR ``a`` and ``a_x4`` with
    ``a_x4.png`` in the folder). A name with files in several formats, none the HR's, pairs nothing."""
    best: dict[Path, Path] = {}
    for naming in _LR_NAMINGS:
        paired = {}
        for hr in hrs:
            files = by_stem.get(naming.format(stem=hr.stem, s=scale), [])
            same = [p for p in files if p.suffix == hr.suffix]
            if same or len(files) == 1:
                paired[hr] = (same or files)[0]
        if len(paired) > len(best):
            best = paired
    return best


def _benchmark_layout(folder: Path, name: str) -> Dataset:
    hrs = _images_in(folder / "HR")
    lr_paths: dict[Path, dict[int, Path]] = {hr: {} for hr in hrs}
    lr_folders = []
    for scale, sub in _lr_scale_dirs(folder):
        by_stem: dict[str, list[Path]] = {}
        for p in _images_in(sub):
            by_stem.setdefault(p.stem, []).append(p)
        for hr, lr in _lr_files(hrs, scale, by_stem).items():
            lr_paths[hr][scale] = lr
        lr_folders.append((scale, str(sub), sum(map(len, by_stem.values()))))
    items = [Item(hr.stem, hr, lr_paths[hr]) for hr in hrs]
    return Dataset(name, str(folder), "benchmark", *_without_clashes(items), lr_folders=tuple(lr_folders))


def _selfexsr_layout(folder: Path, name: str, scale_dirs: dict[int, Path]) -> Dataset:
    by_name: dict[str, tuple[Path, dict[int, Path]]] = {}
    clashes: list[Item] = []
    # The HR copies of different SRF folders are crops of one image; take the smallest scale's, which is
    # cropped least, and pair each scale with its own LR.
    for scale in sorted(scale_dirs):
        seen: dict[str, Path] = {}
        for path in _images_in(scale_dirs[scale]):
            m = _SELFEXSR_HR.fullmatch(path.stem)
            if not m:
                continue
            if m["name"] in seen:  # img_001_SRF_4_HR.png beside img_001_SRF_4_HR.bmp
                clashes += [Item(m["name"], seen[m["name"]]), Item(m["name"], path)]
                continue
            seen[m["name"]] = path
            lr = path.with_name(f"{m['name']}_SRF_{m['scale']}_LR{path.suffix}")
            _, lrs = by_name.setdefault(m["name"], (path, {}))
            if lr.is_file():
                lrs[scale] = lr
    clashing = {it.name for it in clashes}
    items = [Item(n, hr, lrs) for n, (hr, lrs) in sorted(by_name.items()) if n not in clashing]
    _, rejected = _without_clashes(clashes)
    return Dataset(name, str(folder), "selfexsr", tuple(items), rejected)


def _selfexsr_scale_dirs(folder: Path) -> dict[int, Path]:
    return {int(m.group(1)): p for p in folder.iterdir() if p.is_dir() and (m := _SELFEXSR_DIR.fullmatch(p.name))}


def _is_selfexsr_scale_dir(folder: Path) -> bool:
    return bool(_SELFEXSR_DIR.fullmatch(folder.name)) and any(_SELFEXSR_HR.fullmatch(p.stem)
                                                               for p in _images_in(folder))


def _one_selfexsr_scale_dir(folder: Path, name: str) -> Dataset:
    """``Set5/image_SRF_4`` given as the dataset: that scale's HR and LR files, the set named after its parent."""
    match = _SELFEXSR_DIR.fullmatch(folder.name)
    assert match is not None
    return _selfexsr_layout(folder, folder.parent.name if name == folder.name else name, {int(match[1]): folder})


def _folder_layout(folder: Path, name: str) -> Dataset:
    own = _images_in(folder)
    # One level only (a subfolder may hold the LR or another set), but never silently fewer images than are there
    # (counted one level down: a parent of many sets given by mistake is not walked whole).
    below = sum(len(_images_in(sub)) for sub in folder.iterdir() if sub.is_dir())
    notes = (f"{below} image(s) in subfolders of {folder} were not read: a dataset folder is its own images (give "
             "a subfolder as --dataset to evaluate it)",) if below else ()
    return Dataset(name, str(folder), "folder", *_without_clashes([Item(p.stem, p) for p in own]), notes=notes)


# The layouts a folder is read in, tried in order: (is it this layout?, open it). A new layout is one entry.
LAYOUTS: tuple[tuple[Callable[[Path], bool], Callable[[Path, str], Dataset]], ...] = (
    (lambda folder: (folder / "HR").is_dir(), _benchmark_layout),
    (lambda folder: bool(_selfexsr_scale_dirs(folder)),
     lambda folder, name: _selfexsr_layout(folder, name, _selfexsr_scale_dirs(folder))),
    # One scale folder of that layout given itself: its _LR files were read as HR images, scored as ground truth.
    (lambda folder: _is_selfexsr_scale_dir(folder), _one_selfexsr_scale_dir),
    (lambda folder: True, _folder_layout),
)


def open_folder(folder: str | os.PathLike, name: str | None = None) -> Dataset:
    """A dataset from a folder in the first of :data:`LAYOUTS` it fits."""
    # Absolute, so that '.' or '..' are named after the folder they are and the location says where it is (links
    # kept: a linked folder goes by its link's name).
    folder = Path(os.path.abspath(Path(folder).expanduser()))
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder}: no such folder")
    opener = next(open_ for detect, open_ in LAYOUTS if detect(folder))
    ds = opener(folder, name or folder.name)
    if not ds.items and not ds.rejected:
        raise BadInputError(
            f"{folder}: no images found (expected HR/ + LR_bicubic/X<s>/, image_SRF_<s>/, or image files)"
        )
    return ds


def embedded_skimage(name: str = EMBEDDED) -> Dataset:
    """The RGB photographs that scikit-image ships, so everything runs with no data at all: ``skimage`` for
    evaluation, ``skimage-train`` (other images) for smoke training."""
    import skimage.data

    folder = Path(skimage.data.data_dir)
    files = SKIMAGE_PHOTOS if name == EMBEDDED else SKIMAGE_TRAIN
    items = tuple(Item(Path(p).stem, folder / p) for p in files)
    return Dataset(name, str(folder), "embedded", items)


def available_names() -> list[str]:
    return [*KNOWN_SETS, EMBEDDED, EMBEDDED_TRAIN]


def is_known_name(text: str) -> bool:
    """Whether ``text`` names a dataset (in any case, as :func:`resolve` reads it) rather than a folder."""
    return text.lower() in available_names()


def resolve(name_or_folder: str, data_root: str | os.PathLike | None = None) -> Dataset:
    """A dataset by name (``set5``, ``bsd100``, ..., ``skimage``) or by folder path."""
    key = name_or_folder.lower()
    if key in (EMBEDDED, EMBEDDED_TRAIN):
        return embedded_skimage(key)
    if key in KNOWN_SETS:
        # A folder of that name here (your own Set5, or SR outputs named after the set) is not what the name reads:
        # said in the result's warnings, never taken instead.
        here = Path(name_or_folder) if Path(name_or_folder).is_dir() else None
        roots = paths.data_roots(data_root)
        for root in roots:
            for rel in KNOWN_SETS[key]:
                if (root / rel).is_dir():
                    found = open_folder(root / rel, key)
                    if here is not None and not os.path.samefile(here, root / rel):
                        note = (f"--dataset {name_or_folder} is the named set {key} in {root / rel}, not the folder "
                                f"{os.path.join('.', name_or_folder)} here (pass that path to evaluate the folder)")
                        found = replace(found, notes=(*found.notes, note))
                    return found
        looked = ", ".join(str(r / rel) for r in roots for rel in KNOWN_SETS[key])
        from srbench.downloads import DOWNLOADS

        fetch = (f"`srbench fetch datasets {key}` downloads it; or put it" if key in DOWNLOADS else "Put it")
        if here is not None:
            fetch = f"The folder {name_or_folder} here is read as itself when given as ./{name_or_folder}. " + fetch
        raise DatasetNotFoundError(
            f"dataset {key!r} not found (looked in: {looked}). {fetch} under a data root (--data-root or "
            f"{paths.DATA_ENV}, default {paths.default_data_root()}) as {KNOWN_SETS[key][0]}/HR/*.png with optional "
            f"{KNOWN_SETS[key][0]}/LR_bicubic/X4/<name>x4.png, or in the SelfExSR layout "
            f"{KNOWN_SETS[key][0]}/image_SRF_4/img_001_SRF_4_HR.png, or as a plain folder of HR images"
        )
    path = Path(name_or_folder).expanduser()
    if path.is_dir():
        return open_folder(path)
    raise DatasetNotFoundError(
        f"{name_or_folder!r} is neither a known dataset ({', '.join(available_names())}) nor a folder"
    )


def image_set_digest(names: Iterable[str]) -> str:
    """What a value is over: a digest of the sorted image names (equal digests: the same images; a count alone
    would not say that)."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def recorded_image_sets(name: str, manifests: dict[str, dict] | None = None) -> list[str]:
    """The :func:`image_set_digest` of each copy of the named set the manifests record, its items named as a
    folder of that copy names them (``HR/baby.png``: baby; ``image_SRF_4/img_001_SRF_4_HR.png``: img_001); none
    for a set without a manifest. ``manifests``: :func:`srbench.manifests.load_manifests`, read once by a caller
    that asks for several sets."""
    if manifests is None:
        from srbench.manifests import load_manifests

        manifests = load_manifests()
    manifest = manifests.get(name.casefold())
    found = []
    for copy in (manifest or {}).get("copies", []):
        names = set()
        for rel in copy.get("files", {}):
            parts = rel.split("/")
            stem = parts[-1].rsplit(".", 1)[0]
            if len(parts) == 1 or (len(parts) == 2 and parts[0].casefold() == "hr"):
                names.add(stem)
            elif len(parts) == 2 and _SELFEXSR_DIR.match(parts[0]) and (m := _SELFEXSR_HR.match(stem)):
                names.add(m.group("name"))
        if names:
            found.append(image_set_digest(names))
    return found
