"""Work split across the processes of a ``torchrun`` launch (evaluation and whole suites).

Under ``torchrun`` every rank runs the same command. Ranks take disjoint shares of the work (images, training
stages); Python objects travel through torch.distributed's object collectives on a gloo group, which works
on CPU and beside NCCL alike; rank 0 alone writes the results store and the output files. The store lives on
rank 0's disk: SQLite is not for network file systems (``srbench.store`` refuses one).

Outside ``torchrun`` (no ``WORLD_SIZE``, or 1) nothing here imports torch or starts a process group.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items: every ``world``-th, starting at its rank (disjoint, together all of them)."""
        return list(items[self.rank :: self.world])


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


@functools.cache
def _group() -> Any:
    """A gloo group for Python objects: NCCL moves tensors on GPUs, gloo anything on CPU."""
    import torch.distributed as dist

    return dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD


def ranks() -> Ranks:
    """This process's place in a ``torchrun`` launch (the process group is started on first use)."""
    if world_size() == 1:
        return Ranks()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():  # each process of a node on its own GPU ("cuda" means it from now on)
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def leave_launch(code: int) -> NoReturn:
    """End a process of a ``torchrun`` launch with exit status ``code`` once its results are written.

    A rank that leaves through the interpreter's normal shutdown aborts now and then in C++ static destructors
    ("terminate called without an active exception", SIGABRT), after every result was written, and torchrun
    then kills its peers and fails the launch. So: close the process group, run Python's exit handlers, flush,
    and leave without the C++ destructors.
    """
    import atexit

    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    # The metric workers first: their executor is stopped by threading's shutdown hook, which os._exit skips, and
    # multiprocessing's exit handler would otherwise wait for them forever (torchrun with --workers >= 2 hung)
    workers = sys.modules.get("srbench.workers")
    if workers is not None:
        workers.POOL.shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def in_launch() -> bool:
    """Whether this process has started a torchrun process group (without importing torch to find out)."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and bool(dist.is_available() and dist.is_initialized())


def broadcast_from_main(obj: T, where: Ranks) -> T:
    """Rank 0's ``obj`` on every rank."""
    if not where.active:
        return obj
    import torch.distributed as dist

    box = [obj if where.is_main else None]
    dist.broadcast_object_list(box, src=0, group=_group())
    return box[0]  # type: ignore[return-value]


def gather_to_main(obj: T, where: Ranks) -> list[T] | None:
    """Every rank's ``obj``, in rank order, on rank 0; None on the others."""
    if not where.active:
        return [obj]
    import torch.distributed as dist

    out: list[Any] | None = [None] * where.world if where.is_main else None
    dist.gather_object(obj, out, dst=0, group=_group())
    return out


def all_gather(obj: T, where: Ranks) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not where.active:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * where.world
    dist.all_gather_object(out, obj, group=_group())
    return out


def barrier(where: Ranks) -> None:
    if where.active:
        import torch.distributed as dist

        dist.barrier(group=_group())
