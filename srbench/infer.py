"""Running a generator on images of any size: device choice, tiling with overlap, odd inputs.

Tiled inference splits the LR into ``tile`` x ``tile`` pieces, runs each with ``tile_pad`` pixels of real
context around it and keeps only the centre. When the pad covers the network's receptive field the stitched
result equals the untiled one (up to float summation order); peak memory is bounded by the tile, not by the
image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from srbench import paths
from srbench.archs import GENERATORS, input_multiple
from srbench.errors import BadInputError
from srbench.matlab import imresize, rgb2gray


def select_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInputError("--device cuda was requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise BadInputError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


@dataclass
class Runner:
    """A generator prepared for inference on one device."""

    model: nn.Module
    scale: int
    device: torch.device
    half: bool = False
    tile: int | None = None
    tile_pad: int = 16
    notes: list[str] = field(default_factory=list)
    channels_last: bool = False  # NHWC convolutions on CUDA (opt-in: faster there, other last bits)

    @classmethod
    def create(cls, model: nn.Module, *, device: str = "auto", half: bool = False, tile: int | None = None,
               tile_pad: int = 16, channels_last: bool = False) -> Runner:
        """``half`` and ``channels_last`` (CUDA only) are opt-in: both change the output's last bits."""
        dev = select_device(device)
        notes = []
        if half and dev.type != "cuda":
            notes.append("--half ignored on CPU (float16 convolutions there are slow and inexact)")
            half = False
        if tile is not None and tile < 1:
            raise BadInputError(f"--tile must be positive, got {tile}")
        if tile_pad < 0:
            raise BadInputError(f"--tile-pad must be non-negative, got {tile_pad}")
        # What a checkpoint's tensors say (load_generator's config; an architecture's default is RGB).
        info = getattr(model, "srbench_info", None) or {}
        config = info.get("config") or {}
        channels = (config.get("num_in_ch", 3), config.get("num_out_ch", 3))
        if channels != (3, 3):
            raise BadInputError(f"{info.get('source', 'the generator')}: a network of {channels[0]} input and "
                                f"{channels[1]} output channel(s); srbench upscales with RGB networks (3 and 3), "
                                "gray images as three equal channels")
        model = model.eval().to(dev)
        channels_last = channels_last and dev.type == "cuda"
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if half:
            model = model.half()
        scale = int(getattr(model, "scale", 4))
        return cls(model, scale, dev, half, tile, tile_pad, notes, channels_last)

    @property
    def _multiple(self) -> int:
        return input_multiple(self.model)

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, host: bool = True) -> torch.Tensor:
        x = x.to(self.device, dtype=torch.float16 if self.half else torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x).float()
        return out.cpu() if host else out

    def upscale_tensor(self, x: torch.Tensor, *, host: bool = True) -> torch.Tensor:
        """N x C x H x W in [0, 1] (CPU) -> N x C x sH x sW, unclamped, on the CPU (``host``) or left on the
        runner's device (for metrics computed there)."""
        m = self._multiple
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            # Reflection needs a pad shorter than the side (BasicSR's convention); a side of 1 or 2 pixels
            # repeats its edge instead.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        if self.tile is None or (x.shape[-2] <= self.tile and x.shape[-1] <= self.tile):
            out = self._forward(x, host)
        else:
            out = self._tiled(x, host)
        out = out[..., : h * self.scale, : w * self.scale]
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            # Clamping and quantising would turn NaN into black pixels and score them: no number from them.
            raise BadInputError(
                f"the network's output holds {bad} non-finite value(s) (NaN or Inf) of {out.numel()}: a diverged or "
                f"corrupt checkpoint{', or float16 overflow (--half)' if self.half else ''}; nothing is computed "
                "from it")
        return out

    def _tiled(self, x: torch.Tensor, host: bool = True) -> torch.Tensor:
        m = self._multiple
        assert self.tile is not None  # upscale_tensor tiles only when a tile size is set
        tile = math.ceil(self.tile / m) * m
        pad = math.ceil(self.tile_pad / m) * m
        n, _, h, w = x.shape
        s = self.scale
        out = None
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                py0, px0 = max(y0 - pad, 0), max(x0 - pad, 0)
                py1, px1 = min(y1 + pad, h), min(x1 + pad, w)
                piece = self._forward(x[..., py0:py1, px0:px1], host)
                if out is None:
                    out = torch.empty((n, piece.shape[1], h * s, w * s), dtype=torch.float32, device=piece.device)
                oy, ox = (y0 - py0) * s, (x0 - px0) * s
                out[..., y0 * s : y1 * s, x0 * s : x1 * s] = piece[..., oy : oy + (y1 - y0) * s,
                                                                   ox : ox + (x1 - x0) * s]
        assert out is not None  # an image has at least one pixel, so at least one tile
        return out

    def upscale(self, img: np.ndarray) -> np.ndarray:
        """uint8 HxW, HxWx3 or HxWx4 in, uint8 of the same kind out.

        Grayscale goes through the network as three equal channels and comes back with rgb2gray; an alpha
        channel is upscaled separately with MATLAB bicubic (networks are trained on RGB only).
        """
        img = np.asarray(img)
        if img.dtype != np.uint8:
            raise BadInputError(f"upscale expects uint8 images, got {img.dtype}")
        alpha = None
        if img.ndim == 3 and img.shape[2] == 4:
            img, alpha = img[..., :3], img[..., 3]
        gray = img.ndim == 2
        rgb = np.repeat(img[..., None], 3, axis=2) if gray else img
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise BadInputError(f"upscale expects HxW, HxWx3 or HxWx4 images, got shape {img.shape}")
        y = self.upscale_tensor(_unit_input(rgb))[0]
        # Quantise as when saving a PNG (clamp, x255, round half up), in place to keep peak memory low.
        out = y.clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_().to(torch.uint8).permute(1, 2, 0).numpy()
        # HxWxC in memory order, as an image read from a file is: a permuted view made a metric's float sums (the
        # Y plane's matrix product) differ in the last bit from a worker's copy of it (--workers 1 vs 2)
        out = np.ascontiguousarray(out)
        if gray:
            out = rgb2gray(out)
        if alpha is not None:
            out = np.dstack([out, imresize(alpha, self.scale)])
        return out


    def upscale_on_device(self, img: np.ndarray) -> torch.Tensor | None:
        """A uint8 HxWx3 image's raw output (1 x 3 x sH x sW float in about 0..1, unclamped) left on the runner's
        device, for the metrics computed there (``srbench.metrics.torch_forms.quantise_unit`` makes the bytes
        :meth:`upscale` returns); None for other images (grey, RGBA: assembled on the host)."""
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            return None
        return self.upscale_tensor(_unit_input(img), host=False)


def _unit_input(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> 1 x 3 x H x W float32 in 0..1, the network's input."""
    # Writable too: a read-only image whose transpose is contiguous (1 x 1) would be shared, which torch warns of.
    return torch.from_numpy(np.require(rgb.transpose(2, 0, 1), requirements=["C", "W"])).float().div_(255.0)[None]


@dataclass(frozen=True)
class GeneratorRef:
    """A generator as the user named it, classified once (:func:`classify_generator`): a checkpoint ``file``, a
    ``variant`` (its checkpoint in the models folder) or a ``published`` checkpoint (``published`` holds its
    entry in srbench.downloads)."""

    text: str
    kind: str  # "file", "variant" or "published"
    published: Any = None


def classify_generator(text: str, *, folders: bool = True) -> GeneratorRef | None:
    """What ``text`` names, if it names a generator (None: it does not, e.g. a folder of SR images). The one place
    a model string is classified: :func:`resolve_generator`, srbench.sources.open_source and GeneratorSource all
    go by its answer.

    A bare name that is both a variant or published checkpoint and a file or folder here is refused: either
    reading would score another source under the same name without a word. A path (``./name``) is a path.
    ``folders=False`` where a folder cannot be the model (``srbench infer``): only a file of that name clashes.
    """
    from srbench.downloads import checkpoint_download

    path = Path(text).expanduser()
    published = checkpoint_download(text)
    named = text in GENERATORS or published is not None
    if named and (path.is_file() or (folders and (path.exists() or path.is_symlink()))):
        what = "variant" if text in GENERATORS else "published checkpoint"
        instead = (f"its checkpoint file ({paths.models_dir() / f'{text}.safetensors'})" if text in GENERATORS
                   else "its checkpoint file in the weights folder")
        raise BadInputError(
            f"{text!r} is a {what} and also a {'folder' if path.is_dir() else 'file'} here: pass "
            f"{os.path.join('.', text)!r} for the {'folder' if path.is_dir() else 'file'}, or {instead} for the {what}")
    if path.is_file():
        return GeneratorRef(text, "file")
    if text in GENERATORS:
        return GeneratorRef(text, "variant")
    return GeneratorRef(text, "published", published) if published is not None else None


def generator_ref(text: str | GeneratorRef, *, folders: bool = True) -> GeneratorRef:
    """``text`` classified (:func:`classify_generator`), or one line saying it names no generator."""
    if isinstance(text, GeneratorRef):
        return text
    ref = classify_generator(text, folders=folders)
    if ref is None:
        raise BadInputError(f"{text!r} is neither a checkpoint file, a variant ({', '.join(GENERATORS)}) nor a "
                            "published checkpoint (srbench models list)")
    return ref


def resolve_generator(ckpt_or_variant: str | GeneratorRef, scale: int | None = None, *,
                      weights_dir: str | os.PathLike | None = None) -> nn.Module:
    """A loaded generator from a checkpoint path, from ``<models dir>/<variant>.safetensors``, or a published
    checkpoint by name (``esrgan-official``) once ``srbench fetch weights`` has put it in the weights folder
    (``weights_dir``, else the default one), checked against its pin as metric weights are: numbers under a
    published checkpoint's name are that checkpoint's, unless the user opts in (srbench.weights.allowed)."""
    from srbench.checkpoints import generator_info, load_generator

    ref = generator_ref(ckpt_or_variant)
    if ref.kind == "file":
        return load_generator(Path(ref.text).expanduser(), scale=scale)
    if ref.kind == "variant":
        candidate = paths.models_dir() / f"{ref.text}.safetensors"
        if candidate.is_file():
            return load_generator(candidate, ref.text)
        raise BadInputError(
            f"variant {ref.text!r} has no checkpoint: looked for {candidate} (set SRBENCH_MODELS or pass "
            "a checkpoint file)"
        )
    from srbench.fetch import weights_file
    from srbench.weights import check_file

    path = weights_file(ref.text, weights_dir=weights_dir)
    checked = check_file(path)
    module = load_generator(path, ref.published.variant, scale=scale)
    generator_info(module)["pinned"] = checked.pinned
    return module


def collect_inputs(inputs: list[str]) -> list[Path]:
    """The files to upscale: files as given, and the image-named files of folders.

    Dangling or looping symbolic links (named like images in a folder, or given by name) are kept, so that
    infer_files reports each as skipped with its reason instead of dropping it silently.
    """
    from srbench.images import is_image_candidate

    files: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if is_image_candidate(q))
            if not found:
                raise BadInputError(f"{p}: no images in this folder")
            files += found
        elif p.is_file() or p.is_symlink():
            files.append(p)
        else:
            raise BadInputError(f"{p}: no such file or folder")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise BadInputError(f"{f} and {stems[f.stem]} would both be written as {f.stem}.png")
        stems[f.stem] = f
    return files


def refuse_overwriting_inputs(files: list[Path], out_dir: str | os.PathLike) -> None:
    """Outputs never replace inputs, nor land among them (a second run would upscale its own outputs):
    ``out_dir`` may be no folder an input came from."""
    out = Path(out_dir).expanduser().resolve()
    for f in files:
        if f.parent.resolve() == out:
            raise BadInputError(f"--out {out_dir} is where {f} is: outputs would replace or mix with the inputs; "
                                "choose another --out")


def infer_files(runner: Runner, files: list[Path], out_dir: str | os.PathLike,
                progress: Callable[[Path], None] | None = None) -> tuple[list[Path], list[str], list[str]]:
    """Upscale every file into ``out_dir`` as PNG; returns (written, notes, errors). Bad files are skipped.

    Files are read by srbench.images.decode_image, the reader every command uses (see MODES there), with a
    non-opaque alpha channel kept: it is upscaled separately.
    """
    from srbench.images import decode_image, write_png

    refuse_overwriting_inputs(files, out_dir)
    out = Path(out_dir)
    written, notes, errors = [], list(runner.notes), []
    for f in files:
        try:
            decoded = decode_image(f, allow_alpha=True)
            notes += decoded.notes
            target = out / f"{f.stem}.png"
            write_png(target, runner.upscale(decoded.pixels))
            written.append(target)
        except BadInputError as exc:
            errors.append(str(exc))
        if progress:
            progress(f)
    return written, notes, errors
