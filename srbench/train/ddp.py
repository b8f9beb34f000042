"""Multi-process training under ``torchrun``: the process group, DDP wrapping, buffer sync and rank digests.

Each rank draws a disjoint slice of every iteration's sample indices (the role DistributedSampler plays for
epoch-based loops), gradients are averaged by DDP, and rank 0 writes every file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from srbench.images import atomic_write_text


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


def any_rank(flag: int, device: torch.device) -> int:
    """The largest of every rank's ``flag`` (one collective: every rank must call it at the same point)."""
    value = torch.tensor([flag], dtype=torch.int64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value.item())


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def wrap(module: nn.Module, device: torch.device, world: int) -> nn.Module:
    """``module`` under DDP when there is more than one rank, else itself."""
    if world == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def sync_buffers(modules: Iterable[nn.Module]) -> None:
    """Give every rank rank 0's buffers. DDP broadcasts BatchNorm statistics at the start of each forward,
    but each rank's last forward then updates them with its own batch, so they end up slightly different."""
    for module in modules:
        for buf in module.buffers():
            dist.broadcast(buf.data, src=0)


def state_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def write_rank_digests(module: nn.Module, ranks: Dist, path: Path) -> None:
    """Rank 0 writes every rank's digest of ``module`` to ``path`` (a record that the ranks ended identical)."""
    digests: list[str | None] = [None] * ranks.world
    dist.all_gather_object(digests, state_digest(module))
    if ranks.is_main:
        atomic_write_text(path, json.dumps(digests, indent=1) + "\n")
    dist.barrier()
