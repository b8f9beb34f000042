"""Training data: HR images, random patches fixed by (seed, sample index), the per-iteration sampler, validation.

Every training sample is a pure function of (seed, global sample index) and iteration ``it`` of rank ``r`` draws a
fixed slice of indices, so the batches of an iteration never depend on what ran before: the basis of exact resume.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from srbench.errors import BadInputError
from srbench.matlab import imresize, modcrop
from srbench.train.config import TrainConfig

log = logging.getLogger("srbench.train")


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def load_hr_images(source: str, data_root: str | None) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 RGB) for every image of a named set, folder or ``skimage``."""
    from srbench.datasets import resolve

    ds = resolve(source, data_root)
    return [(it.name, _as_rgb(it.read_hr())) for it in ds.items]


class PatchDataset(torch.utils.data.Dataset):
    """Random HR patches with their LR, flips and 90-degree rotations; sample ``i`` is fixed by (seed, i)."""

    def __init__(self, images: list[tuple[str, np.ndarray]], scale: int, patch_size: int, seed: int) -> None:
        self.scale = scale
        self.patch = patch_size
        self.seed = seed
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        skipped = []
        for name, hr in images:
            hr = modcrop(hr, scale)
            if min(hr.shape[:2]) < patch_size:
                skipped.append(name)
                continue
            # LR once per image, with the MATLAB kernel the benchmarks use.
            self.pairs.append((hr, imresize(hr, 1.0 / scale)))
        if skipped:
            log.warning("skipped %d training image(s) smaller than the %d px patch: %s", len(skipped), patch_size,
                        ", ".join(skipped[:5]))
        if not self.pairs:
            raise BadInputError(f"no training image is at least {patch_size}x{patch_size}")

    def __len__(self) -> int:  # indices are unbounded; the sampler decides
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        hr, lr = self.pairs[int(rng.integers(len(self.pairs)))]
        lp = self.patch // self.scale
        top = int(rng.integers(lr.shape[0] - lp + 1))
        left = int(rng.integers(lr.shape[1] - lp + 1))
        lr_p = lr[top : top + lp, left : left + lp]
        hr_p = hr[top * self.scale : (top + lp) * self.scale, left * self.scale : (left + lp) * self.scale]
        hflip, vflip, transpose = rng.integers(2, size=3)
        if hflip:
            lr_p, hr_p = lr_p[:, ::-1], hr_p[:, ::-1]
        if vflip:
            lr_p, hr_p = lr_p[::-1], hr_p[::-1]
        if transpose:  # with the flips, gives all eight 90-degree rotations and mirrors
            lr_p, hr_p = lr_p.transpose(1, 0, 2), hr_p.transpose(1, 0, 2)
        return _to_tensor(lr_p), _to_tensor(hr_p)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


class IterationSampler(torch.utils.data.Sampler):
    """Sample indices of iterations [start, end): iteration ``it`` of rank ``r`` gets a disjoint slice."""

    def __init__(self, start: int, end: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.end, self.batch, self.rank, self.world = start, end, batch, rank, world

    def __iter__(self) -> Iterator[int]:
        for it in range(self.start, self.end):
            base = ((it - 1) * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return (self.end - self.start) * self.batch


def training_data(config: TrainConfig, iters: int, done: int, rank: int = 0, world: int = 1,
                  pin_memory: bool = False) -> tuple[torch.utils.data.DataLoader, list]:
    """(batches of iterations ``done + 1 .. iters`` for this rank, held-out validation pairs)."""
    data = config.data
    images = load_hr_images(data.train, data.data_root)
    images, val = validation_pairs(config, images)
    ds = PatchDataset(images, data.scale, data.patch_size, config.seed)
    sampler = IterationSampler(done + 1, iters + 1, data.batch_size, rank, world)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=data.batch_size, sampler=sampler, num_workers=data.workers,
        persistent_workers=False, pin_memory=pin_memory,
    )
    return loader, val


def validation_pairs(config: TrainConfig, train_images: list) -> tuple[list, list]:
    """(training images, held-out (name, HR crop, LR crop)): the named val set, else the last images."""
    data = config.data
    if data.val is not None:
        held = load_hr_images(data.val, data.data_root)
    else:
        if len(train_images) <= data.holdout:
            raise BadInputError(
                f"{data.train}: {len(train_images)} image(s) cannot spare {data.holdout} for validation")
        train_images, held = train_images[: -data.holdout], train_images[-data.holdout :]
    out = []
    # A multiple of 4 in LR pixels too: x2 and x1 RRDBNets pixel-unshuffle their input by 2 and 4.
    multiple = math.lcm(data.scale, 4)
    for name, hr in held:
        h, w = hr.shape[:2]
        c = min(data.val_crop, h, w)
        c -= c % multiple
        if c == 0:
            raise BadInputError(f"held-out image {name!r} is {h}x{w}: too small for a validation crop at "
                                f"x{data.scale} (at least {multiple}x{multiple}); choose another data.val")
        top, left = (h - c) // 2, (w - c) // 2
        crop = hr[top : top + c, left : left + c]
        out.append((name, crop, imresize(crop, 1.0 / data.scale)))
    return train_images, out


@torch.no_grad()
def validation_l1(model: nn.Module, pairs: list, device: torch.device) -> float:
    """Mean L1 (0..1 scale) between the generator's output and HR over held-out crops."""
    was_training = model.training
    model.eval()
    values = []
    for _, hr, lr in pairs:
        sr = model(_to_tensor(lr)[None].to(device)).float().cpu()
        values.append(torch.mean(torch.abs(sr.clamp(0, 1) - _to_tensor(hr)[None])).item())
    model.train(was_training)
    return float(np.mean(values))
