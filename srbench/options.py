"""How models are evaluated: one :class:`EvalOptions`, resolved and checked once where a run starts (the CLI, the
API, ``ablate``, ``check``) and handed down the evaluation, instead of the same dozen parameters repeated by every
function on the way."""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass

from srbench.errors import BadInputError
from srbench.protocols import Protocol, get_protocol

DEVICES = ("auto", "cpu", "cuda")


def _path(value: str | os.PathLike | None) -> str | None:
    return None if value is None else os.fspath(value)


@dataclass(frozen=True)
class EvalOptions:
    """Everything an evaluation is told, resolved: the protocol object, the metric names it resolves (the asked
    ones and what derived ones need, in the protocol's order), and where data and weights live. Build it with
    :meth:`build`, which refuses a bad value with one line before any work."""

    protocol: Protocol
    metrics: tuple[str, ...]
    scale: int = 4
    data_root: str | None = None
    weights_dir: str | None = None
    device: str = "auto"
    workers: int | None = None  # metric worker processes (None: the usable cores; see srbench.workers)
    tile: int | None = None  # LR tile size of generator inference
    skip_unavailable: bool = False  # report a metric whose weights are missing as unavailable instead of failing
    torch_metrics: bool | None = None  # see srbench.evaluation.evaluate_dataset
    sr_pattern: str | None = None  # how an SR folder's files are named (srbench.sources.FolderSource)
    # Reuse a stored value only when it was made under the installed srbench, numpy, scipy and torch (srbench
    # check: those versions are what it compares); one made under others is computed again and replaced.
    same_environment: bool = False

    @classmethod
    def build(cls, *, protocol: str = "sr", metrics: Sequence[str] | None = None, scale: int = 4,
              data_root: str | os.PathLike | None = None, weights_dir: str | os.PathLike | None = None,
              device: str = "auto", workers: int | None = None, tile: int | None = None,
              skip_unavailable: bool = False, torch_metrics: bool | None = None,
              sr_pattern: str | None = None, same_environment: bool = False) -> EvalOptions:
        """The options, each value checked: an unknown protocol, metric or device, a scale under 1 or a bad
        ``workers`` is one BadInputError naming it."""
        from srbench.workers import resolve_workers

        if device not in DEVICES:
            raise BadInputError(f"unknown device {device!r}: use {', '.join(DEVICES)}")
        resolve_workers(workers)  # refuses 0, negatives and non-integers; None stays "the usable cores"
        if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
            raise BadInputError(f"scale must be a positive integer, got {scale!r}")
        proto = get_protocol(protocol)
        return cls(proto, tuple(proto.resolve_metrics(metrics)), int(scale), _path(data_root), _path(weights_dir),
                   device, workers, tile, skip_unavailable, torch_metrics, sr_pattern, bool(same_environment))

    def under(self, protocol: str, metrics: Sequence[str] | None = None) -> EvalOptions:
        """These options under another protocol, with its ``metrics`` (default: its own set) resolved."""
        proto = get_protocol(protocol)
        return dataclasses.replace(self, protocol=proto, metrics=tuple(proto.resolve_metrics(metrics)))
