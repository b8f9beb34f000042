"""Two-stage ESRGAN training (PSNR-oriented, then GAN) for every variant of the ablation.

Determinism and exact resume: every training sample is a pure function of (seed, global sample index), so
the batches of iteration ``it`` never depend on what ran before; model, optimisers, schedulers and the EMA
are checkpointed together. Resuming therefore gives the weights an uninterrupted run gives (bitwise on CPU).

Multi-GPU/multi-node: run under ``torchrun`` (``torchrun --nproc_per_node N -m srbench train ...``); each rank
draws a disjoint slice of every iteration's sample indices (the role DistributedSampler plays for epoch-based
loops), gradients are averaged by DDP, and rank 0 writes every file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from srbench import losses as L
from srbench.archs import VARIANTS, VGGStyleDiscriminator, build_generator
from srbench.checkpoints import CheckpointError, load_generator, save_checkpoint
from srbench.config import TrainConfig
from srbench.errors import BadInputError, OutputError, RunInUseError, SrbenchError
from srbench.images import atomic_write_bytes, atomic_write_text, ensure_writable_dir
from srbench.matlab import imresize, modcrop

log = logging.getLogger(__name__)


class TrainingDiverged(SrbenchError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(SrbenchError):
    """Ctrl-C during training; a checkpoint was written first."""


# ---------------------------------------------------------------------------------------------------------
# Data


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


# ---------------------------------------------------------------------------------------------------------
# Distributed set-up


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


# ---------------------------------------------------------------------------------------------------------
# One trainer per run folder

LOCK_NAME = ".srbench.lock"


def _command_line() -> str:
    import shlex
    import sys

    if not sys.argv or not sys.argv[0]:
        return "?"
    program = Path(sys.argv[0])
    name = program.parent.name if program.name == "__main__.py" else program.name  # python -m srbench
    return shlex.join([name, *sys.argv[1:]])


def _lock_holder(fd: int) -> dict | None:
    """What the lock file says about its holder; None while the holder has not written it yet."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        info = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


@contextmanager
def lock_run_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the run folder ``folder`` (created if needed) for the ``with`` block.

    An flock on ``folder/.srbench.lock``, which also records the holder (pid, host, start time, command). The
    kernel drops the lock when its process ends, however it ends (kill -9 included), so a lock is never stale.
    A second process gets RunInUseError at once, naming the holder, and touches nothing in the folder.
    """
    import fcntl
    import socket
    from datetime import datetime

    folder = Path(folder).expanduser()
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputError.from_os_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = None
            for _ in range(20):  # the holder writes its details just after taking the lock
                holder = _lock_holder(fd)
                if holder is not None:
                    break
                time.sleep(0.05)
            if holder is None:
                who = "another process (it recorded no details)"
            else:
                command = str(holder.get("command", "?"))
                command = command if len(command) <= 160 else command[:157] + "..."
                who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')} "
                       f"({command})")
            raise RunInUseError(f"{folder} is in use by {who}; wait for it or use another --out") from None
        except OSError as exc:
            raise OutputError(f"cannot lock {path}: {exc.strerror or exc}") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": _command_line()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as exc:
            raise OutputError.from_os_error(path, exc) from None
        try:
            yield folder
        finally:
            try:
                os.ftruncate(fd, 0)  # no stale details for the next holder's first instant
            except OSError:
                pass
    finally:
        os.close(fd)  # releases the flock


# ---------------------------------------------------------------------------------------------------------
# The trainer


@dataclass
class TrainResult:
    out_dir: Path
    stage: str
    iterations: int
    final: Path | None
    final_ema: Path | None
    val_l1: list[tuple[int, float]] = field(default_factory=list)


def _state_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def _atomic_torch_save(obj: dict, path: Path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _config_diff(a: object, b: object, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configuration dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                out.append(dotted)
            else:
                out += _config_diff(a[key], b[key], dotted)
        return out
    return [] if a == b else [prefix]


class _Absent:
    def __repr__(self) -> str:
        return "absent"


def _dotted(config: dict, key: str) -> object:
    node: object = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _Absent()
        node = node[part]
    return node


class Trainer:
    def __init__(self, config: TrainConfig, stage: str, out_dir: str | os.PathLike, *, init: str | None = None,
                 device: str = "auto", progress: bool = True) -> None:
        self.config = config
        self.stage = stage
        self.sc = config.stage(stage)
        self.dist = init_distributed()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if device == "cuda" else device)
        self.run_dir = Path(out_dir).expanduser()
        self.dir = self.run_dir / stage
        self.progress = progress and self.dist.is_main
        torch.manual_seed(config.seed)
        variant = VARIANTS[config.generator]
        self.arch = variant.arch
        self.gen_config = {**variant.config, **config.generator_config, "scale": config.data.scale}
        self.g = build_generator(self.arch, self.gen_config).to(self.device)
        self.d: nn.Module | None = None
        self.ema: nn.Module | None = None
        self.percep = None
        self.lpips = None
        if stage == "gan":
            self._load_init(init)
            self.d = VGGStyleDiscriminator(num_feat=self.sc.d_num_feat, input_size=config.data.patch_size)
            self.d = self.d.to(self.device)
            loss = config.loss
            vgg = None if loss.vgg_weights == "random" else loss.vgg_weights
            self.percep = L.PerceptualLoss({loss.perceptual_layer: 1.0}, weights=vgg).to(self.device)
            self.lpips = L.LPIPSLoss().to(self.device) if loss.lpips_weight > 0 else None
            self.ema = build_generator(self.arch, self.gen_config).to(self.device)
            self.ema.load_state_dict(self.g.state_dict())
            self.ema.requires_grad_(False)
        elif init is not None:
            self._load_init(init)
        if self.device.type == "cuda":
            self.g = self.g.to(memory_format=torch.channels_last)
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g = nn.parallel.DistributedDataParallel(self.g, device_ids=ids)
            if self.d is not None:
                self.d = nn.parallel.DistributedDataParallel(self.d, device_ids=ids)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=self.sc.lr, betas=self.sc.betas)
        self.sched_g = torch.optim.lr_scheduler.MultiStepLR(self.opt_g, list(self.sc.milestones), self.sc.gamma)
        self.opt_d = self.sched_d = None
        if self.d is not None:
            self.opt_d = torch.optim.Adam(self.d.parameters(), lr=self.sc.d_lr, betas=self.sc.betas)
            self.sched_d = torch.optim.lr_scheduler.MultiStepLR(self.opt_d, list(self.sc.milestones), self.sc.gamma)
        self.iteration = 0

    # -- set-up ------------------------------------------------------------------------------------------
    def _load_init(self, init: str | None) -> None:
        if init is None:
            candidate = self.run_dir / "psnr" / "g_final.safetensors"
            if self.stage == "gan" and candidate.is_file():
                init = str(candidate)
            elif self.stage == "gan":
                raise BadInputError(
                    f"the gan stage starts from a psnr checkpoint: pass --init or train the psnr stage into "
                    f"{self.run_dir} first (looked for {candidate})"
                )
        try:
            loaded = load_generator(init, self.arch)
        except CheckpointError as exc:
            raise BadInputError(f"--init: {exc}") from None
        theirs = loaded.srbench_info["config"]
        if {k: theirs.get(k) for k in self.gen_config} != self.gen_config:
            raise BadInputError(f"--init {init}: generator {theirs} differs from this run's {self.gen_config}")
        self.g.load_state_dict(loaded.state_dict())
        self.init_source = str(init)

    def _data(self) -> tuple[torch.utils.data.DataLoader, list]:
        images = load_hr_images(self.config.data.train, self.config.data.data_root)
        images, val = validation_pairs(self.config, images)
        ds = PatchDataset(images, self.config.data.scale, self.config.data.patch_size, self.config.seed)
        sampler = IterationSampler(self.iteration + 1, self.sc.iters + 1, self.config.data.batch_size,
                                   self.dist.rank, self.dist.world)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=self.config.data.batch_size, sampler=sampler, num_workers=self.config.data.workers,
            persistent_workers=False, pin_memory=self.device.type == "cuda",
        )
        return loader, val

    # -- state -------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.dir / "state.pt"

    def state(self) -> dict:
        out = {
            "iteration": self.iteration, "stage": self.stage, "config": json.dumps(self.config.to_dict()),
            "g": _unwrap(self.g).state_dict(), "opt_g": self.opt_g.state_dict(), "sched_g": self.sched_g.state_dict(),
        }
        if self.d is not None:
            out.update(d=_unwrap(self.d).state_dict(), opt_d=self.opt_d.state_dict(),
                       sched_d=self.sched_d.state_dict(), ema=self.ema.state_dict())
        return out

    def load_state(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path}: cannot resume from it ({type(exc).__name__}: {str(exc)[:160]})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: not a training state (a {type(state).__name__})")
        if state.get("stage") != self.stage:
            raise CheckpointError(f"{path}: a {state.get('stage')} stage state, not {self.stage}")
        try:
            saved = json.loads(state["config"])
            done = int(state["iteration"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: not a training state written by srbench (no config or iteration)") from None
        # Only this stage's length may change: a larger --iters extends a run (the schedule and the samples
        # depend on the iteration number alone, so the result is the one a longer run gives).
        ours = json.loads(json.dumps(self.config.to_dict()))
        extendable = f"{self.stage}.iters"
        differing = [k for k in _config_diff(saved, ours) if k != extendable]
        if differing:
            shown = "; ".join(f"{k}: {_dotted(saved, k)!r} there, {_dotted(ours, k)!r} now" for k in differing[:6])
            more = f" and {len(differing) - 6} more" if len(differing) > 6 else ""
            raise CheckpointError(
                f"{path}: written with another configuration ({shown}{more}); resume with the same options "
                f"(only {extendable} may change, to extend the run)")
        if done > self.sc.iters:
            raise BadInputError(
                f"--iters {self.sc.iters}: {path} is already at iteration {done} and a run cannot be shortened; "
                f"use --iters {done} or more (earlier weights are in its g_iter*.safetensors checkpoints)")
        _unwrap(self.g).load_state_dict(state["g"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.sched_g.load_state_dict(state["sched_g"])
        if self.d is not None:
            _unwrap(self.d).load_state_dict(state["d"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_d.load_state_dict(state["sched_d"])
            self.ema.load_state_dict(state["ema"])
        self.iteration = done

    def save(self, final: bool = False) -> None:
        if not self.dist.is_main:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError.from_os_error(self.state_path, exc) from None
        _atomic_torch_save(self.state(), self.state_path)
        meta = {"arch": self.arch, "config": self.gen_config, "variant": self.config.generator, "stage": self.stage,
                "iteration": self.iteration, "extra": {"train_config": self.config.to_dict(),
                                                       "init": getattr(self, "init_source", None)}}
        names = [("g_final", _unwrap(self.g))] if final else [(f"g_iter{self.iteration:07d}", _unwrap(self.g))]
        if self.ema is not None:
            names.append(("g_ema_final" if final else f"g_ema_iter{self.iteration:07d}", self.ema))
        for name, module in names:
            save_checkpoint(module, self.dir / f"{name}.safetensors", **meta)

    # -- one iteration -----------------------------------------------------------------------------------
    def _check(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        out = {}
        for name, value in values.items():
            v = float(value.detach())
            if not math.isfinite(v):
                raise TrainingDiverged(
                    f"iteration {self.iteration + 1}: loss {name} is {v}; stopped, the last good checkpoint in "
                    f"{self.dir} is kept (lower the learning rate or check the data)"
                )
            out[name] = v
        return out

    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        lr = lr.to(self.device, non_blocking=True)
        hr = hr.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            lr = lr.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        loss_cfg = self.config.loss
        if self.stage == "psnr":
            with autocast:
                sr = self.g(lr)
            l_pix = L.pixel_loss(sr.float(), hr, loss_cfg.pixel)
            logs = self._check({"l_pix": l_pix})
            self.opt_g.zero_grad(set_to_none=True)
            l_pix.backward()
            self.opt_g.step()
            self.sched_g.step()
            return logs

        # Generator step, with D frozen.
        self.d.requires_grad_(False)
        with autocast:
            sr = self.g(lr)
        sr = sr.float()
        terms = {
            "l_pix": loss_cfg.pixel_weight * L.pixel_loss(sr, hr, loss_cfg.pixel),
            "l_percep": loss_cfg.perceptual_weight * self.percep(sr, hr),
        }
        real_logits = self.d(hr).detach()
        fake_logits = self.d(sr)
        terms["l_g_adv"] = loss_cfg.adversarial_weight * L.generator_loss(loss_cfg.adversarial, real_logits,
                                                                          fake_logits)
        if self.lpips is not None:
            terms["l_lpips"] = loss_cfg.lpips_weight * self.lpips(sr, hr)
        if loss_cfg.fft_weight > 0:
            terms["l_fft"] = loss_cfg.fft_weight * L.fft_loss(sr, hr)
        l_g = sum(terms.values())
        logs = self._check({**terms, "l_g": l_g})
        self.opt_g.zero_grad(set_to_none=True)
        l_g.backward()
        self.opt_g.step()

        # Discriminator step on the same batch.
        self.d.requires_grad_(True)
        real_logits = self.d(hr)
        fake_logits = self.d(sr.detach())
        l_d = L.discriminator_loss(loss_cfg.adversarial, real_logits, fake_logits)
        d_terms = {"l_d": l_d}
        if L.uses_gradient_penalty(loss_cfg.adversarial):
            seed = self.config.seed * 1_000_003 + self.iteration + 1
            gen = torch.Generator(device=self.device).manual_seed(seed)
            d_terms["l_d_gp"] = loss_cfg.gp_weight * L.gradient_penalty(self.d, hr, sr, gen)
        l_d_total = sum(d_terms.values())
        logs.update(self._check({**d_terms, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}))
        self.opt_d.zero_grad(set_to_none=True)
        l_d_total.backward()
        self.opt_d.step()
        self.sched_g.step()
        self.sched_d.step()
        with torch.no_grad():
            decay = self.sc.ema_decay
            for p_ema, p in zip(self.ema.state_dict().values(), _unwrap(self.g).state_dict().values(), strict=True):
                if p_ema.is_floating_point():
                    p_ema.mul_(decay).add_(p.detach(), alpha=1 - decay)
                else:
                    p_ema.copy_(p)
        return logs

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers. DDP broadcasts BatchNorm statistics at the start of each forward,
        but each rank's last forward then updates them with its own batch, so they end up slightly different."""
        modules = [_unwrap(self.g)] + [m for m in (self.d and _unwrap(self.d), self.ema) if m is not None]
        for module in modules:
            for buf in module.buffers():
                dist.broadcast(buf.data, src=0)

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self, resume: bool = False, on_iteration: Callable[[int, dict], None] | None = None) -> TrainResult:
        """Train to ``iters`` (from the saved state with ``resume``, which also extends a finished run to a
        larger ``iters``). Rank 0 holds the run folder's lock throughout: a second trainer fails at once."""
        with lock_run_folder(self.run_dir) if self.dist.is_main else nullcontext():
            return self._run(resume, on_iteration)

    def _run(self, resume: bool, on_iteration: Callable[[int, dict], None] | None) -> TrainResult:
        if resume:
            if not self.state_path.is_file():
                raise BadInputError(f"--resume: no training state at {self.state_path}")
            self.load_state(self.state_path)
        elif self.dist.is_main and self.state_path.exists():
            raise BadInputError(f"{self.dir} already holds a run; use --resume to continue it or another --out")
        if self.dist.is_main:
            ensure_writable_dir(self.dir)  # before the data is loaded
            atomic_write_text(self.dir / "config.json",
                              json.dumps({"stage": self.stage, **self.config.to_dict()}, indent=2) + "\n")
        loader, val = self._data()
        if self.dist.is_main and not resume:
            (self.dir / "log.csv").unlink(missing_ok=True)  # left by a run that died before its first checkpoint
        csv_log = _CsvLog(self.dir / "log.csv", self.iteration) if self.dist.is_main else None
        tb = _tensorboard(self.dir / "tb") if self.dist.is_main else None
        result = TrainResult(self.dir, self.stage, self.iteration, None, None)
        if self.iteration == 0 and self.dist.is_main:
            result.val_l1.append((0, validation_l1(_unwrap(self.g), val, self.device)))
            csv_log.write({"iteration": 0, "val_l1": result.val_l1[0][1]})
        from tqdm import tqdm

        bar = tqdm(total=self.sc.iters, initial=self.iteration, disable=not self.progress or None,
                   desc=f"{self.config.name}/{self.stage}", unit="it")
        self.g.train()
        if self.d is not None:
            self.d.train()
        start = time.perf_counter()
        # Ctrl-C is deferred to the end of the current step, so the saved state is never a half-applied update;
        # a second Ctrl-C stops at once without saving (the last periodic checkpoint stays).
        sigint = {"pressed": 0}

        def on_sigint(signum, frame):
            sigint["pressed"] += 1
            if sigint["pressed"] > 1:
                raise KeyboardInterrupt

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            for lr, hr in loader:
                logs = self.step(lr, hr)
                self.iteration += 1  # only once the step is complete: an interrupt saves a consistent state
                if on_iteration is not None:
                    on_iteration(self.iteration, logs)
                bar.update(1)
                row = None
                if self.iteration % self.sc.log_every == 0 or self.iteration == self.sc.iters:
                    row = {"iteration": self.iteration, "lr": self.opt_g.param_groups[0]["lr"], **logs,
                           "seconds": round(time.perf_counter() - start, 3)}
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k.startswith("l_")}, refresh=False)
                if (self.iteration % self.sc.val_every == 0 or self.iteration == self.sc.iters) and self.dist.is_main:
                    value = validation_l1(_unwrap(self.g), val, self.device)
                    result.val_l1.append((self.iteration, value))
                    row = {**(row or {"iteration": self.iteration}), "val_l1": value}
                if row is not None and csv_log is not None:
                    csv_log.write(row)
                    if tb is not None:
                        for k, v in row.items():
                            if k != "iteration":
                                tb.add_scalar(f"{self.stage}/{k}", v, self.iteration)
                if self.iteration % self.sc.checkpoint_every == 0 and self.iteration < self.sc.iters:
                    self.save()
                if sigint["pressed"]:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if sigint["pressed"] > 1:
                raise TrainingInterrupted(
                    f"stopped during iteration {self.iteration + 1} without saving; --resume continues from the "
                    f"last checkpoint in {self.dir}"
                ) from None
            self.save()
            raise TrainingInterrupted(
                f"interrupted at iteration {self.iteration}; saved {self.state_path}, continue with --resume"
            ) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            bar.close()
            if tb is not None:
                tb.close()
        if self.dist.world > 1:
            self._sync_buffers()
        self.save(final=True)
        result.iterations = self.iteration
        result.final = self.dir / "g_final.safetensors"
        result.final_ema = self.dir / "g_ema_final.safetensors" if self.ema is not None else None
        if self.dist.world > 1:
            digests = [None] * self.dist.world
            dist.all_gather_object(digests, _state_digest(_unwrap(self.g)))
            if self.dist.is_main:
                atomic_write_text(self.dir / "ddp_ranks.json", json.dumps(digests, indent=1) + "\n")
            dist.barrier()
        return result


class _CsvLog:
    """The loss log: one row per logged iteration, appended. On resume, rows past the resumed iteration (written
    after the last checkpoint by the interrupted run) are dropped first, so the log matches the weights."""

    EXTRA = ("lr", "seconds", "val_l1")

    def __init__(self, path: Path, resumed_at: int) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file():
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.fields = reader.fieldnames
                rows = [r for r in reader if int(r["iteration"]) <= resumed_at]
            if self.fields:
                self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        import io

        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=self.fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def write(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(dict.fromkeys([*row, *self.EXTRA]))
            self._rewrite([])
        elif not set(row) <= set(self.fields):  # new columns (the first losses after the iteration-0 row)
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            self.fields = list(dict.fromkeys([*self.fields, *row]))
            self._rewrite(rows)
        try:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields, restval="", extrasaction="ignore").writerow(row)
        except OSError as exc:
            raise OutputError.from_os_error(self.path, exc) from None


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


def recorded_iters(out_dir: str | os.PathLike, stage: str) -> int | None:
    """The length a run folder's stage was started with (None when there is no readable record).

    A resume without a new length keeps this one: now that a larger ``--iters`` extends a run, falling back to
    the preset's length would silently train an interrupted ``--iters 1000`` run to a million iterations.
    """
    try:
        saved = json.loads((Path(out_dir) / stage / "config.json").read_text(encoding="utf-8"))[stage]["iters"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # the training state's own check decides
    return saved if isinstance(saved, int) and not isinstance(saved, bool) else None


def train(config: TrainConfig, stage: str, out_dir: str | os.PathLike, *, init: str | None = None,
          resume: bool = False, device: str = "auto", progress: bool = True) -> TrainResult:
    """Train one stage of one variant; see :class:`Trainer`."""
    return Trainer(config, stage, out_dir, init=init, device=device, progress=progress).run(resume=resume)
