"""Ctrl-C in the training processes of ``srbench ablate --jobs N``: a traceback-free stop.

The terminal sends Ctrl-C to every process of the job. Inside a training task the usual KeyboardInterrupt reaches
the trainer, which defers it to its step's end and saves; outside one (the process starting, or idle between
tasks) it is only remembered, and the next task stops before it begins.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

_sigint_outside_task = False


def init_training_worker() -> None:
    """A training process of ``srbench ablate --jobs N``. The terminal sends Ctrl-C to every process of the job,
    and one that came while this process was starting (unpickling its task imports torch: seconds) or idle between
    tasks printed a KeyboardInterrupt traceback from outside any handler. Outside a task (:func:`training_task`)
    a Ctrl-C is only remembered."""
    signal.signal(signal.SIGINT, _remember_sigint)


def _remember_sigint(signum: int, frame: object) -> None:
    global _sigint_outside_task
    _sigint_outside_task = True


@contextlib.contextmanager
def training_task() -> Iterator[None]:
    """Within the block Ctrl-C has its usual effect (the training defers it to its step's end and saves). After a
    Ctrl-C outside a task, the parent is stopping: a task taken from the queue after it stops before it begins."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if _sigint_outside_task:
            raise KeyboardInterrupt
        yield
    finally:
        signal.signal(signal.SIGINT, _remember_sigint)
