"""Where SR images come from: MATLAB bicubic, a folder of SR files made elsewhere, or a generator network.

Every source has a ``name``, a ``key`` (its identity in the results store: what changes the pixels changes the
key), ``describe()`` for the provenance, ``predict(pair, item, scale)`` and ``take_notes(image)`` (what the
image reader noted while reading the source's own files).
"""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from srbench import datasets as D
from srbench.errors import BadInputError, SrbenchError
from srbench.images import content_sha256, decode_image, describe_channels, image_files
from srbench.matching import (
    Affix,
    SRIndex,
    best_affix,
    describe_ambiguity,
    files_by_stem,
    hr_names,
    infer_affixes,
    pair_by_affix,
    parse_pattern,
    scales_named,
    suggest_pattern,
)
from srbench.matlab import imresize, modcrop

if TYPE_CHECKING:
    from srbench.infer import GeneratorRef


class BicubicSource:
    """MATLAB bicubic upsampling of the LR (uint8, symmetric borders): the baseline of every table."""

    name = "bicubic"
    key = "bicubic:matlab-imresize-uint8-symmetric"

    def describe(self) -> dict:
        return {"kind": "bicubic", "implementation": "srbench.matlab.imresize (uint8, symmetric)"}

    def predict(self, pair: D.Pair, item: D.Item, scale: int) -> np.ndarray:
        return imresize(pair.lr, scale)

    def take_notes(self, image: str) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class FolderPairing:
    """Which SR file stands for which image of one dataset, and by what rule."""

    rule: str  # "names" (srbench.matching's names and suffixes), "affix" (read off the folder), "pattern" (given)
    pattern: str | None  # the affix as --sr-pattern writes it
    files: dict[str, list[Path]]  # image -> the files standing for it (one, or none: missing; several: ambiguous)
    ignored: int  # files of the folder standing for no image of the dataset
    data_copies: int = 0  # files left out as byte-for-byte copies of the dataset's own HR or LR files
    other_scales: int = 0  # files left out as in folders named for another scale

    def notes(self, folder: Path, dataset: str) -> list[str]:
        notes = []
        if self.data_copies:
            notes.append(f"{self.data_copies} file(s) in {folder} are byte-for-byte copies of {dataset}'s own HR or "
                         f"LR files: not taken for SR results")
        if self.other_scales:
            notes.append(f"{self.other_scales} file(s) in {folder} are in folders named for another scale: not taken "
                         f"for SR results at this one")
        if self.rule == "affix":
            notes.append(f"SR files in {folder} paired with {dataset}'s images by their shared naming "
                         f"'{self.pattern}' (--sr-pattern states it explicitly)")
        if self.ignored:
            notes.append(f"{self.ignored} other file(s) in {folder} stand for no image of {dataset}: ignored")
        return notes

    def describe(self) -> dict:
        described = {"rule": self.rule, "pattern": self.pattern, "ignored_files": self.ignored,
                     "data_copies": self.data_copies}
        if self.other_scales:
            described["other_scales"] = self.other_scales
        return described


# The version of the rules pairing a folder's files with a dataset's images (srbench.matching, FolderSource.pair):
# 2 sets aside copies of the data's own files, never takes an ``_HR``-tagged stem for an image's name and refuses
# a naming of another scale; 3 sets aside files in folders named for another scale and never takes an HR stem
# naming another scale for an image's name; under 1 and 2 some folders paired other files.
PAIRING_RULES = 3


class FolderSource:
    """A folder of SR images made elsewhere, matched to HR images by name (the PIRM use case).

    Matching is exact on the stem after stripping at most one known suffix (:mod:`srbench.matching`). Where no
    file is named so, released outputs' own naming is read off the folder: the one prefix and/or suffix shared
    by its files whose removal pairs every image with exactly one file (``baby_RCAN_x4.png``, ``SR_baby.png``);
    ``sr_pattern`` (``"{name}_RCAN_x{scale}"``) states it instead. A missing or ambiguous SR file skips that image
    with its reason; two working affixes, or none, are an error naming what was found: never a guess.
    """

    def __init__(self, folder: str | os.PathLike, sr_pattern: str | None = None) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise BadInputError(f"{folder}: the model is neither 'bicubic' nor a folder of SR images")
        try:
            str(self.folder.resolve()).encode("utf-8")
        except UnicodeEncodeError:  # the store, reports and JSON keep the folder's path and name as text
            shown = os.fsencode(self.folder).decode("utf-8", "replace")
            raise BadInputError(f"{shown}: the folder's path is not UTF-8 text (a name in another system's "
                                "encoding, e.g. from a zip archive): rename it to evaluate it") from None
        self.files = image_files(self.folder, recursive=True, follow_links=True)
        if not self.files:
            raise BadInputError(f"{self.folder}: the SR folder holds no images")
        if sr_pattern is not None:
            parse_pattern(sr_pattern, 4)  # refuse a malformed pattern before any work
        self.sr_pattern = sr_pattern
        self.name = _folder_name(self.folder)
        self._indexes: dict[int, SRIndex] = {}
        self._pairings: dict[int, FolderPairing] = {}
        self._notes: dict[str, tuple[str, ...]] = {}

    def take_notes(self, image: str) -> tuple[str, ...]:
        """What the reader noted about the SR file of ``image`` (16-bit read as 8-bit, EXIF ignored...)."""
        return self._notes.pop(image, ())

    @functools.cached_property
    def key(self) -> str:
        h = hashlib.sha256()
        for p in self.files:
            # surrogateescape: a file name that is not UTF-8 (Latin-1 from a zip archive) is still its bytes
            line = f"{p.relative_to(self.folder).as_posix()}:{content_sha256(p)}\n"
            h.update(line.encode("utf-8", "surrogateescape"))
        # A given pattern can pick other files of the same folder (one method's outputs among several), and so can
        # another version of the pairing rules (PAIRING_RULES): values stored under one are never read for another.
        return (f"folder:{h.hexdigest()}:pairing-{PAIRING_RULES}"
                + (f":pattern={self.sr_pattern}" if self.sr_pattern else ""))

    def describe(self) -> dict:
        described = {"kind": "folder", "path": str(self.folder), "n_files": len(self.files)}
        if self.sr_pattern:
            described["sr_pattern"] = self.sr_pattern
        return described

    def pair(self, dataset: D.Dataset, scale: int) -> FolderPairing:
        """Decide which file stands for which image of ``dataset`` at ``scale`` (used by :meth:`match` from
        then on): the given pattern, else the names rule, else the one affix the folder's names share."""
        images = [(it.name, hr_names(it.name, it.hr_path.stem, scale)) for it in dataset.items]
        # A byte-for-byte copy of the data's own HR or LR file beside another file named after the same image is
        # the ground truth (or the input) kept next to a method's output, never the SR result; alone it may be
        # the data evaluated as it is (NIQE or PI of the HR images, say), or an upper bound.
        copies = self._data_copies(dataset)
        set_aside = {c for c, image in copies.items() if image in self._named_otherwise(copies, images, scale)}
        other_scales = self._of_other_scales(scale) - set_aside
        candidates = [p for p in self.files if p not in set_aside and p not in other_scales]
        by_stem = files_by_stem(candidates)
        if self.sr_pattern is not None:
            pairing = self._pairing("pattern", parse_pattern(self.sr_pattern, scale), by_stem, images, scale)
        else:
            pairing = self._by_names_or_affix(dataset, images, candidates, by_stem, scale)
        pairing = dataclasses.replace(pairing, data_copies=len(set_aside), other_scales=len(other_scales))
        self._pairings[scale] = pairing
        return pairing

    def _of_other_scales(self, scale: int) -> set[Path]:
        """The files in folders named for other scales than ``scale`` only (``X2/baby.png``, ``RCAN_x2/``; the SR
        folder's own name counts): x2 results in ``X2/`` were scored as x4 ones. All of them: refused, naming the
        scale, unless --sr-pattern states the pairing."""
        def named(path: Path) -> set[int]:
            parts = (self.folder.resolve().name, *path.relative_to(self.folder).parent.parts)
            return set().union(*(scales_named(part) for part in parts))

        other = {p for p in self.files if (s := named(p)) and scale not in s}
        if other and len(other) == len(self.files) and self.sr_pattern is None:
            scales = sorted(set().union(*(named(p) for p in other)))
            raise BadInputError(f"{self.folder}: its images are in folders named for x{', x'.join(map(str, scales))},"
                                f" not the evaluated x{scale}: pass --scale {scales[0]} if they are x{scales[0]} "
                                f"results (or --sr-pattern to pair them anyway)")
        return other if len(other) < len(self.files) else set()

    def _data_copies(self, dataset: D.Dataset) -> dict[Path, str]:
        """The folder's files equal byte for byte to one of ``dataset``'s HR or LR files (sizes compared first)
        -> the image whose file each copies."""
        by_size: dict[int, list[tuple[Path, str]]] = {}
        for it in dataset.items:
            for path in (it.hr_path, *it.lr_paths.values()):
                with contextlib.suppress(OSError):
                    by_size.setdefault(path.stat().st_size, []).append((path, it.name))
        copies = {}
        for path in self.files:
            with contextlib.suppress(OSError):  # an unreadable file is reported when it is read as an image
                image = next((name for data, name in by_size.get(path.stat().st_size, ())
                              if filecmp.cmp(path, data, shallow=False)), None)
                if image is not None:
                    copies[path] = image
        return copies

    def _named_otherwise(self, copies: dict[Path, str], images: list[tuple[str, set[str]]], scale: int) -> set[str]:
        """The images another file than the copies stands for: by name, or by the naming most of the other
        files share (complete or not: a method's outputs with one missing still claim their images), the name
        met at a separator (image 5 is not in 57.png)."""
        if not copies:
            return set()
        others = [p for p in self.files if p not in copies]
        index = SRIndex(others, scale)
        claimed = {image for image, names in images if index.matches(names)}
        by_stem = files_by_stem(others)
        affix = best_affix(by_stem, images, scale, bounded=True)
        if affix is not None:
            claimed |= {image for image, found in pair_by_affix(affix, by_stem, images).items() if found}
        return claimed

    def _pairing(self, rule: str, affix: Affix, by_stem: dict[str, list[Path]],
                 images: list[tuple[str, set[str]]], scale: int) -> FolderPairing:
        files = pair_by_affix(affix, by_stem, images)
        used = {p for found in files.values() for p in found}
        return FolderPairing(rule, affix.pattern(scale), files, sum(map(len, by_stem.values())) - len(used))

    def _by_names_or_affix(self, dataset: D.Dataset, images: list[tuple[str, set[str]]], candidates: list[Path],
                           by_stem: dict[str, list[Path]], scale: int) -> FolderPairing:
        index = SRIndex(candidates, scale)
        files = {image: index.matches(names) for image, names in images}
        used = {p for found in files.values() for p in found}
        by_names = FolderPairing("names", None, files, len(candidates) - len(used))
        if all(len(found) == 1 for found in files.values()):
            # Other files pairing every image too are another method's outputs (ESRGAN's beside SRGAN's): which
            # one is meant is never guessed, as between two affixes.
            rest = files_by_stem(p for p in candidates if p not in used) if by_names.ignored >= len(images) else {}
            others = [a for a in infer_affixes(rest, images) if not a.scales() - {scale}] if rest else []
            if others:
                example = next(iter(files.values()))[0].name
                raise BadInputError(
                    f"{self.folder}: the files pair with {dataset.name}'s images under several namings: by name "
                    f"(e.g. {example}) and {', '.join(repr(a.pattern(scale)) for a in others)}; pass the one to "
                    f"evaluate as --sr-pattern (srbench never guesses)")
            return by_names
        found = infer_affixes(by_stem, images)
        affixes = [a for a in found if not a.scales() - {scale}]
        if not affixes and found:
            other = sorted({s for a in found for s in a.scales()} - {scale})
            raise BadInputError(
                f"{self.folder}: the files pair with {dataset.name}'s images only as "
                f"{', '.join(repr(a.pattern(scale)) for a in found)}, which name(s) x{', x'.join(map(str, other))}, "
                f"not the evaluated x{scale}: pass --scale {other[0]} if they are x{other[0]} results (or "
                f"--sr-pattern to pair them anyway)")
        # Files named after the images themselves, one for each, beside an affix's (baby.png and baby_rlt.png:
        # two methods, or a result and a re-saved HR): another complete naming, never guessed between.
        bare = {image: sorted({p for n in names for p in by_stem.get(n, ())}) for image, names in images}
        if affixes and all(len(found) == 1 for found in bare.values()) \
                and len({found[0] for found in bare.values()}) == len(bare) \
                and not _ground_truth(dataset, {image: found[0] for image, found in bare.items()}):
            example = next(iter(bare.values()))[0].name
            raise BadInputError(
                f"{self.folder}: the files pair with {dataset.name}'s images under several namings: by name (e.g. "
                f"{example}) and {', '.join(repr(a.pattern(scale)) for a in affixes)}; pass the one to evaluate as "
                f"--sr-pattern, '{{name}}' for the files named after the images (srbench never guesses)")
        if len(affixes) == 1:
            return self._pairing("affix", affixes[0], by_stem, images, scale)
        if len(affixes) > 1:
            raise BadInputError(
                f"{self.folder}: the files pair with {dataset.name}'s images under several namings: "
                f"{', '.join(repr(a.pattern(scale)) for a in affixes)}; pass the one to evaluate as --sr-pattern "
                f"(srbench never guesses)")
        if not used:
            raise BadInputError(f"{self.folder}: no file is named after an image of {dataset.name}"
                                f"{self._naming_hint(by_stem, images, scale)}")
        return by_names

    def _naming_hint(self, by_stem: dict[str, list[Path]], images: list[tuple[str, set[str]]], scale: int) -> str:
        examples = ", ".join(p.name for p in self.files[:3])
        hint = f" (its files are named like {examples}{', ...' if len(self.files) > 3 else ''}; the images are "
        hint += ", ".join(name for name, _ in images[:3]) + (", ..." if len(images) > 3 else "")
        suggested = suggest_pattern(by_stem, images, scale)
        if suggested:
            hint += f"; if each file is an image's name with a fixed prefix or suffix, pass e.g. --sr-pattern " \
                    f"'{suggested}'"
        return hint + ")"

    def _index(self, scale: int) -> SRIndex:
        if scale not in self._indexes:
            self._indexes[scale] = SRIndex(self.files, scale)
        return self._indexes[scale]

    def match(self, item: D.Item, scale: int = 4) -> Path:
        pairing = self._pairings.get(scale)
        if pairing is not None and item.name in pairing.files:
            found = pairing.files[item.name]
        else:
            found = self._index(scale).matches(hr_names(item.name, item.hr_path.stem, scale))
        if len(found) == 1:
            return found[0]
        if found:
            raise BadInputError(describe_ambiguity(item.name, found))
        if pairing is not None and pairing.rule != "names":
            expected = str(pairing.pattern).replace("{name}", item.name).replace("{scale}", str(scale))
            raise BadInputError(f"{item.name}: no SR file {expected}.* in {self.folder} (named as "
                                f"'{pairing.pattern}')")
        raise BadInputError(f"{item.name}: no SR image for it in {self.folder} (names tried: "
                            f"{', '.join(sorted(hr_names(item.name, item.hr_path.stem, scale)))}, with the suffixes "
                            f"of srbench.matching.SR_SUFFIXES)")

    def predict(self, pair: D.Pair, item: D.Item, scale: int) -> np.ndarray:
        sr, notes = read_folder_sr(self.match(item, scale), pair, scale)
        self._notes[item.name] = notes
        return sr


def read_folder_sr(path: Path, pair: D.Pair, scale: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """The SR file ``path`` fitted to ``pair``'s HR (cropped as it was where the SR is full size), and what the
    reader noted; a BadInputError naming both sizes when it does not fit. (A worker process runs it too.)"""
    decoded = decode_image(path)
    try:
        sr, notes = fit_sr(decoded.pixels, pair.hr, pair.cropped_from, scale)
    except BadInputError as exc:
        raise BadInputError(f"{path}: {exc}") from None
    if sr.shape == pair.hr.shape and np.array_equal(sr, pair.hr):
        notes = (*notes, "equal to its HR image pixel for pixel (a copy of the ground truth, not an SR result?)")
    return sr, (*decoded.notes, *(f"{path}: {note}" for note in notes))


def fit_sr(sr: np.ndarray, hr: np.ndarray, cropped_from: tuple[int, int] | None,
           scale: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """``sr`` as it is compared with ``hr`` (an HR image cropped to a multiple of ``scale``, from
    ``cropped_from`` when that cropped it), and what was done to it; a BadInputError naming both sizes when it
    does not fit. The folder sources and ``srbench.metric`` share it, so both give one value for one image."""
    notes: tuple[str, ...] = ()
    if hr.ndim == 2 and sr.ndim == 3 and sr.shape[2] == 3 and (sr == sr[..., :1]).all():
        # Gray images are compared on their one channel; PyTorch releases save a gray image's result (Set14's
        # bridge) as RGB with three equal channels, which is that channel exactly.
        sr = np.ascontiguousarray(sr[..., 0])
        notes = (*notes, "RGB with three equal channels, its HR is gray: compared on its one channel")
    if sr.shape != hr.shape and cropped_from is not None and sr.shape[:2] == cropped_from:
        # A full-size SR of an HR that is not a multiple of the scale: crop it the same way.
        full = sr.shape[:2]
        sr = modcrop(sr, scale)
        notes = (*notes, f"{full[0]}x{full[1]}, the full HR size: cropped to {sr.shape[0]}x{sr.shape[1]} "
                         "as its HR is (modcrop, from the top left)")
    if sr.shape == hr.shape:
        return sr, notes
    hr_desc = f"{hr.shape[0]}x{hr.shape[1]}"
    if cropped_from is not None:
        hr_desc += f" (cropped from {cropped_from[0]}x{cropped_from[1]})"
    raise BadInputError(f"SR is {sr.shape[0]}x{sr.shape[1]} {describe_channels(sr)}, "
                        f"HR is {hr_desc} {describe_channels(hr)}{_size_hint(sr.shape[:2], hr, cropped_from, scale)}")


def _size_hint(size: tuple[int, ...], hr: np.ndarray, cropped_from: tuple[int, int] | None, scale: int) -> str:
    """What an SR size that does not fit says: another scale's crop of the HR (an x3 model's outputs evaluated at
    x4 are a few pixels off, nothing more), or the size of an LR image (the input, not a result)."""
    full = cropped_from or hr.shape[:2]
    if size == hr.shape[:2]:  # the channels differ, not the size
        return ""
    for other in (2, 3, 4, 8):
        if other != scale and size == (full[0] // other * other, full[1] // other * other):
            return f": the HR's size cropped to a multiple of {other}, as x{other} results are (--scale {other}?)"
    for other in (scale, *(s for s in (2, 3, 4, 8) if s != scale)):
        if size == (full[0] // other, full[1] // other):
            return f": the size of its x{other} LR image (an input, not an SR result?)"
    return ""


class GeneratorSource:
    """A generator network (checkpoint file or variant with a checkpoint in the models folder)."""

    def __init__(self, ckpt_or_variant: str | GeneratorRef, *, device: str = "auto", tile: int | None = None,
                 tile_pad: int = 16, weights_dir: str | os.PathLike | None = None) -> None:
        from srbench.checkpoints import generator_info
        from srbench.infer import Runner, generator_ref, resolve_generator

        ref = generator_ref(ckpt_or_variant)
        module = resolve_generator(ref, weights_dir=weights_dir)
        self.info = generator_info(module)
        self.runner = Runner.create(module, device=device, tile=tile, tile_pad=tile_pad)
        # A published checkpoint keeps its own name: "rrdb23" would not tell ESRGAN from its PSNR model.
        self.name = ref.text if ref.kind == "published" else self.info["variant"] or Path(ref.text).stem
        r = self.runner
        # Device, precision and tiling change the output in its last bits: they are part of the identity.
        self.key = (f"generator:{self.info['sha256']}:{r.device.type}{':half' if r.half else ''}"
                    f"{':channels-last' if r.channels_last else ''}"
                    f"{f':tile{r.tile}-{r.tile_pad}' if r.tile else ''}")

    def describe(self) -> dict:
        info = {k: self.info[k] for k in ("arch", "config", "variant", "layout", "source", "sha256", "pinned")
                if k in self.info}
        return {"kind": "generator", **info, "device": str(self.runner.device)}

    def predict(self, pair: D.Pair, item: D.Item, scale: int) -> np.ndarray:
        if self.runner.scale != scale:
            raise BadInputError(f"{self.info['source']} is a x{self.runner.scale} model, evaluation asks x{scale}")
        return self.runner.upscale(pair.lr)

    def predict_on_device(self, pair: D.Pair, item: D.Item, scale: int):
        """The raw SR output left on the generator's device (see :meth:`srbench.infer.Runner.upscale_on_device`),
        or None where only :meth:`predict` applies."""
        if self.runner.scale != scale:
            raise BadInputError(f"{self.info['source']} is a x{self.runner.scale} model, evaluation asks x{scale}")
        return self.runner.upscale_on_device(pair.lr)

    def take_notes(self, image: str) -> tuple[str, ...]:
        return ()


SRSource = BicubicSource | FolderSource | GeneratorSource


def _folder_name(folder: Path) -> str:
    """A folder's own name, '.' and '..' included (the folder they are; links kept)."""
    return Path(os.path.abspath(folder)).name


def source_name(model: str, sr_pattern: str | None = None) -> str:
    """The name ``model``'s results go by, as :func:`open_source`'s source is named (with ``sr_pattern``: a folder),
    found without loading a network: results are keyed by it, so two models of one name must be told apart before
    either is evaluated."""
    if sr_pattern is not None:
        return _folder_name(Path(model).expanduser())
    if model == "bicubic":
        return "bicubic"
    from srbench.infer import classify_generator

    ref = classify_generator(model)
    if ref is None:
        return _folder_name(Path(model).expanduser())  # a folder of SR images (FolderSource)
    if ref.kind != "file":
        return ref.text
    from srbench.checkpoints import read_metadata, variant_of

    path = Path(ref.text).expanduser()
    meta = read_metadata(path) or {}
    config = meta.get("config")
    named = variant_of(meta.get("variant"), str(meta.get("arch")), config) if isinstance(config, dict) else None
    return named or path.stem  # as load_generator names it (GeneratorSource)


def _ground_truth(dataset: D.Dataset, files: dict[str, Path]) -> bool:
    """Whether each of ``files`` (image name -> file) holds its image's HR pixels: the ground truth re-saved beside
    a method's outputs (another PNG encoder: other bytes, so not set aside as a copy), not a second method."""
    for item in dataset.items:
        path = files.get(item.name)
        try:
            if path is None or not np.array_equal(decode_image(path).pixels, decode_image(item.hr_path).pixels):
                return False
        except SrbenchError:
            return False
    return True


def first_shared_name(models: Sequence[str], names: Sequence[str | None] | None = None,
                      sr_pattern: str | None = None) -> tuple[str, str, str] | None:
    """(earlier model, later model, the name) of the first two of ``models`` that would go by one name (``names``:
    one per model, None for the source's own), or None. Results are keyed by model name: two folders ``run1/x4``
    and ``run2/x4``, or two checkpoints of one variant, would be averaged together in tables and one would replace
    the other in a store. A model whose name cannot be found here fails the same way when it is opened."""
    seen: dict[str, str] = {}
    for model, name in zip(models, names or [None] * len(models), strict=True):
        try:
            effective = name or source_name(model, sr_pattern)
        except SrbenchError:
            continue
        if effective in seen:
            return seen[effective], model, effective
        seen[effective] = model
    return None


def open_source(model: str, *, device: str = "auto", tile: int | None = None, sr_pattern: str | None = None,
                weights_dir: str | os.PathLike | None = None) -> SRSource:
    """``bicubic``, a checkpoint file, variant or published checkpoint name (looked for in ``weights_dir``), or a
    folder of SR images (named after the dataset's images, or as ``sr_pattern`` says: see :class:`FolderSource`)."""

    if sr_pattern is not None:
        if not Path(model).expanduser().is_dir():
            raise BadInputError(f"--sr-pattern names the files of a folder of SR images; {model} is not a folder")
        return FolderSource(model, sr_pattern)
    if model == "bicubic":
        return BicubicSource()
    from srbench.infer import classify_generator

    ref = classify_generator(model)  # the one place a model string is classified
    if ref is not None:
        return GeneratorSource(ref, device=device, tile=tile, weights_dir=weights_dir)
    if not Path(model).expanduser().exists():
        from srbench.infer import GENERATORS

        raise BadInputError(f"{model}: no such file or folder, and not 'bicubic', a variant ({', '.join(GENERATORS)}) "
                            f"or a published checkpoint (srbench models list); --model takes one of those, a "
                            f"checkpoint file or a folder of SR images")
    return FolderSource(model, sr_pattern)
