"""Where SR images come from: MATLAB bicubic, a folder of SR files made elsewhere, or a generator network.

Every source has a ``name``, a ``key`` (its identity in the results store: what changes the pixels changes the
key), ``describe()`` for the provenance, ``predict(pair, item, scale)`` and ``take_notes(image)`` (what the
image reader noted while reading the source's own files).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from srbench import datasets as D
from srbench.errors import BadInputError
from srbench.images import content_sha256, decode_image, describe_channels, image_files
from srbench.matching import SRIndex, describe_ambiguity, hr_names
from srbench.matlab import imresize, modcrop


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


class FolderSource:
    """A folder of SR images made elsewhere, matched to HR images by name (the PIRM use case).

    Matching is exact on the stem after stripping at most one known suffix (:mod:`srbench.matching`): a
    missing or ambiguous SR file skips that image with its reason, it is never paired by a guess.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise BadInputError(f"{folder}: the model is neither 'bicubic' nor a folder of SR images")
        self.files = image_files(self.folder, recursive=True)
        if not self.files:
            raise BadInputError(f"{self.folder}: the SR folder holds no images")
        self.name = self.folder.name
        self._indexes: dict[int, SRIndex] = {}
        self._notes: dict[str, tuple[str, ...]] = {}

    def take_notes(self, image: str) -> tuple[str, ...]:
        """What the reader noted about the SR file of ``image`` (16-bit read as 8-bit, EXIF ignored...)."""
        return self._notes.pop(image, ())

    @functools.cached_property
    def key(self) -> str:
        h = hashlib.sha256()
        for p in self.files:
            h.update(f"{p.relative_to(self.folder).as_posix()}:{content_sha256(p)}\n".encode())
        return f"folder:{h.hexdigest()}"

    def describe(self) -> dict:
        return {"kind": "folder", "path": str(self.folder), "n_files": len(self.files)}

    def match(self, item: D.Item, scale: int = 4) -> Path:
        if scale not in self._indexes:
            self._indexes[scale] = SRIndex(self.files, scale)
        found = self._indexes[scale].matches(hr_names(item.name, item.hr_path.stem))
        if len(found) == 1:
            return found[0]
        if found:
            raise BadInputError(describe_ambiguity(item.name, found))
        raise BadInputError(f"{item.name}: no SR image for it in {self.folder} (names tried: "
                            f"{', '.join(sorted(hr_names(item.name, item.hr_path.stem)))}, with the suffixes "
                            f"of srbench.matching.SR_SUFFIXES)")

    def predict(self, pair: D.Pair, item: D.Item, scale: int) -> np.ndarray:
        path = self.match(item, scale)
        decoded = decode_image(path)
        sr = decoded.pixels
        self._notes[item.name] = decoded.notes
        if sr.shape == pair.hr.shape:
            return sr
        if pair.cropped_from is not None and sr.shape[:2] == pair.cropped_from:
            # A full-size SR of an HR that is not a multiple of the scale: crop it the same way.
            sr = modcrop(sr, scale)
            if sr.shape == pair.hr.shape:
                return sr
        hr_desc = f"{pair.hr.shape[0]}x{pair.hr.shape[1]}"
        if pair.cropped_from is not None:
            hr_desc += f" (cropped from {pair.cropped_from[0]}x{pair.cropped_from[1]})"
        raise BadInputError(
            f"{path}: SR is {sr.shape[0]}x{sr.shape[1]} {describe_channels(sr)}, "
            f"HR is {hr_desc} {describe_channels(pair.hr)}"
        )


class GeneratorSource:
    """A generator network (checkpoint file or variant with a checkpoint in the models folder)."""

    def __init__(self, ckpt_or_variant: str, *, device: str = "auto", tile: int | None = None,
                 tile_pad: int = 16) -> None:
        from srbench.checkpoints import generator_info
        from srbench.infer import Runner, resolve_generator

        module = resolve_generator(ckpt_or_variant)
        self.info = generator_info(module)
        self.runner = Runner.create(module, device=device, tile=tile, tile_pad=tile_pad)
        from srbench.fetch import published_checkpoint

        # A published checkpoint keeps its own name: "rrdb23" would not tell ESRGAN from its PSNR model.
        self.name = (ckpt_or_variant if published_checkpoint(ckpt_or_variant) is not None else
                     self.info["variant"] or Path(ckpt_or_variant).stem)
        r = self.runner
        # Device, precision and tiling change the output in its last bits: they are part of the identity.
        self.key = (f"generator:{self.info['sha256']}:{r.device.type}{':half' if r.half else ''}"
                    f"{':channels-last' if r.channels_last else ''}"
                    f"{f':tile{r.tile}-{r.tile_pad}' if r.tile else ''}")

    def describe(self) -> dict:
        info = {k: self.info[k] for k in ("arch", "config", "variant", "layout", "source", "sha256")}
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


def open_source(model: str, *, device: str = "auto", tile: int | None = None) -> SRSource:
    """``bicubic``, a checkpoint file, variant or published checkpoint name, or a folder of SR images."""
    from srbench.archs import GENERATORS

    if model == "bicubic":
        return BicubicSource()
    from srbench.fetch import published_checkpoint

    path = Path(model).expanduser()
    if path.is_file() or model in GENERATORS or published_checkpoint(model) is not None:
        return GeneratorSource(model, device=device, tile=tile)
    return FolderSource(model)
