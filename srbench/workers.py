"""Per-image metrics in worker processes: ``evaluate --workers N``.

NIQE, Ma and BRISQUE are CPU-bound Python/numpy code that threads do not scale (the GIL), so with
``workers > 1`` ``evaluate`` computes them in a pool of ``N`` worker processes; the calling process plans, orders
the outcomes and writes the store (and, for a generator, makes the SR images where its device is). The design:

What a worker does: with a bicubic or folder source, the whole image (:func:`produce`): it reads HR and LR, makes
the SR image and computes the metrics, and the parent only plans (the folder's pairing included), orders the
outcomes and writes the store; only paths go out and values (with the read notes) come back. With a generator
(which runs where its device is), a dataset-level metric (fed the image's planes in the parent) or a metric that
stays in the parent, the parent reads and makes the image and hands it over (:func:`compute`, below).

Start method: *fork* where it is safe (Linux, the process has one thread and has not imported torch: the CLI's
bicubic and folder evaluations), so workers start without importing numpy, scipy and srbench again; else *spawn*,
one pool per process, created lazily on the first evaluation that needs it and reused by
every later one (the test suite and ``ablate`` call ``evaluate`` hundreds of times; a worker's start, ~0.6 s of
imports, is paid once per worker, and its caches, e.g. the parsed NRQM forests, stay warm). *fork* would copy
the registry but is unsafe once torch (or any library) has started threads in the parent, which training and
the generator do; *forkserver* shares one server process with everything else in the interpreter. A spawned
worker does not see what the parent changed at run time, so a metric goes to the workers only when the worker
has the very same descriptor: a built-in one (the descriptor the parent's registry holds *is* the object in
:data:`srbench.metrics.builtin.BUILTIN`, not a replacement made with ``srbench.metrics.temporarily``) that runs
on numpy (not LPIPS, LPIPS-VGG, DISTS: torch networks, which keep torch's own threads in the parent) and whose
inputs (``requires``) also run there. Everything else (metrics registered at run time or by plug-ins,
``pyiqa:`` metrics, the torch metrics, the dataset-level accumulators' ``prepare``) runs in one thread of the
parent, after the worker's values of that image arrived (a derived metric may read them). Environment
variables srbench reads (``SRBENCH_*``, ``TORCH_HOME``, ``XDG_CACHE_HOME``, ``HOME``) are sent with every
task, so a worker finds the weights the parent would find, even after the parent changed them.
No pool is made when ``workers == 1``, when fewer than two images need computing, or when no metric can go
to the workers: then one thread of the parent computes the metrics while the next SR image is made (what the
two hard-coded threads did before).

Hand-over (the parent's image): the SR image is quantised to uint8 in the parent (what every protocol does
first; a float generator output shrinks 8x) and pickled to the worker with the HR image. Pickling a 480x320 RGB
pair costs 0.3 ms against ~1.7 s of NIQE + Ma + BRISQUE for it, and ~10 ms of PSNR + SSIM: shared memory would
save nothing measurable and would need segments cleaned up after a killed worker, so it is not used.

Ordering and equality: a worker computes with the same function, :meth:`Protocol.per_image`, on the same
arrays, so its floats are the parent's bit for bit (checked by ``tests/test_workers.py``). BLAS, OpenMP and
OpenCV are limited to one thread in each worker (``N`` workers on ``N`` cores: environment variables set in the
worker's initializer, before it imports numpy), and BLAS to one thread in the parent while it evaluates
(threadpoolctl, a runtime dependency for this: OpenBLAS's threads make NIQE + Ma + BRISQUE 2.4x *slower* on 2
cores, their matrices are small), so both paths also compute with the same BLAS settings. Results are collected in
dataset order in the parent, so store rows, per-image rows and the dataset-level accumulators' ``add`` see the
same sequence as with ``--workers 1``.

Bounded memory: at most ``2 x workers`` images are in flight (produced, not yet collected).

Errors: a :class:`~srbench.errors.BadInputError` raised in a worker is the same "skipped" entry as before; any
other exception is raised again in the parent with the worker's traceback text attached (its ``__cause__``).
Workers ignore SIGINT: on Ctrl-C the parent cancels what is queued and terminates the workers, and the next
evaluation starts a fresh pool. A worker that dies (killed, out of memory) raises :class:`WorkerCrashedError`
naming the image.
"""

from __future__ import annotations

import multiprocessing.context
import numbers
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from srbench.errors import BadInputError, SrbenchError

if TYPE_CHECKING:
    from srbench.metrics.registry import Metric
    from srbench.protocols import Protocol

# Built-in metrics that run torch networks: they stay in the parent (torch threads there, weights loaded once).
TORCH_METRICS = frozenset({"lpips", "lpips_vgg", "dists"})
# The environment a metric may read (weights folders and caches), sent with every task.
_ENV_PREFIXES = ("SRBENCH_",)
_ENV_NAMES = ("TORCH_HOME", "XDG_CACHE_HOME", "HOME")
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class WorkerCrashedError(SrbenchError):
    """A metric worker process ended abruptly (killed, out of memory): the evaluation cannot go on."""


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or ``taskset``'s share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``None`` -> the usable cores, shared among the processes ``torchrun`` started on this machine
    (``LOCAL_WORLD_SIZE``); otherwise ``workers``, a positive whole number (0 or less is refused, not rounded
    up: it says nothing about what was meant)."""
    if workers is None:
        return max(1, usable_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise BadInputError(f"workers must be a positive whole number of processes, or None for the usable "
                            f"cores; got {workers!r}")
    return int(workers)


# ------------------------------------------------------------------------------------------ which metrics go
def _runs_in_worker(metric: Metric) -> bool:
    from srbench.metrics.builtin import BUILTIN

    builtin = next((m for m in BUILTIN if m.name == metric.name), None)
    return builtin is metric and not metric.is_dataset_level and metric.name not in TORCH_METRICS


def split_metrics(proto: Protocol, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``names`` (in protocol order) -> (computed in a worker, computed in the parent after the worker's values).

    A metric goes to the worker when its descriptor is the built-in one, it is numpy code, and every metric it
    reads (``requires``) goes there too.
    """
    remote: list[str] = []
    for name in names:
        m = proto.metric(name)
        if _runs_in_worker(m) and all(r in remote for r in m.requires):
            remote.append(name)
    return remote, [n for n in names if n not in remote]


# ----------------------------------------------------------------------------------------------- the worker
def _environment() -> dict[str, str | None]:
    keys = {k for k in os.environ if k.startswith(_ENV_PREFIXES)} | set(_ENV_NAMES)
    return {k: os.environ.get(k) for k in sorted(keys)}


def _init_worker(parent: int | None = None) -> None:
    """One thread per worker for BLAS/OpenMP/OpenCV; SIGINT is the parent's business; with ``parent`` (the pool's
    process), the worker ends with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _die_with_parent(parent)
    if "numpy" not in sys.modules:  # the usual case: the libraries read these when they load
        for key in _THREAD_ENV:
            os.environ[key] = "1"
    else:  # numpy is loaded already: limit its BLAS at run time
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(1)
    keep_freed_memory()
    # OpenCV (Ma's filters) reads its thread count when it first needs it; importing it here to set it would cost
    # each worker 0.1 s that PSNR, SSIM and NIQE never use.
    os.environ["OPENCV_FOR_THREADS_NUM"] = "1"
    if "cv2" in sys.modules:  # loaded in the parent before the fork: its setting is made already
        sys.modules["cv2"].setNumThreads(1)


def _die_with_parent(parent: int) -> None:
    """Leave when the parent is gone: a parent killed by SIGTERM, SIGKILL or the OOM killer runs no clean-up, and
    its idle workers were left running for ever, reparented to init. A watcher thread, not Linux's parent-death
    signal, which follows the thread that started the worker (any thread that submits may start one)."""
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="srbench-parent-watch", daemon=True).start()


# glibc's mallopt parameters; thresholds a worker's per-image arrays (a few MB each) stay under.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_WORKER_HEAP = 64 << 20


def keep_freed_memory() -> None:
    """This process keeps freed memory for the next image's arrays (glibc only) instead of mapping and unmapping it.

    By default glibc serves each array over its mmap threshold (128 KiB, raised only up to the largest freed so
    far, and in a thread's own arena not at all) with fresh pages from the kernel, zeroed and page-faulted in,
    and gives them back when freed: MATLAB bicubic and SSIM make dozens of such temporaries per image, and on a
    BSD100 image that kernel time (sys) was about as large as the arithmetic (``evaluate --workers 1`` on BSD100
    ``sr``: 2.1 s of sys time in 4 s). Heap memory up to 64 MiB is kept instead. Only srbench's own processes do
    this, its worker processes and the ``srbench`` command: a program that calls srbench as a library keeps its
    allocator as its owner set it.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    for param, value in ((_M_MMAP_THRESHOLD, _WORKER_HEAP), (_M_TRIM_THRESHOLD, 2 * _WORKER_HEAP),
                         (_M_TOP_PAD, _WORKER_HEAP)):
        mallopt(param, value)


# OpenBLAS's threads spin for 2**THREAD_TIMEOUT cycles after each job before they sleep, and after their start
# too: 2**28 by default, about 0.1 s per thread and per library (numpy's and scipy's each load one). See
# short_blas_spin.
_BLAS_SPIN_ENV = "OPENBLAS_THREAD_TIMEOUT"
_BLAS_SPIN_EXPONENT = "20"


def short_blas_spin() -> None:
    """OpenBLAS's idle threads in this process and its children wait 2**20 cycles (under a millisecond) instead of
    2**28 (about 0.1 s) before they sleep, unless the user set ``OPENBLAS_THREAD_TIMEOUT``.

    The threads spin when the library loads, whether or not any BLAS call follows: numpy's and scipy's OpenBLAS
    together burned about 0.3 s of CPU in every ``srbench`` command and about 0.1 s in each worker, on cores the
    workers need (``evaluate --workers 2`` on Set5: parent 0.8 -> 0.5 s CPU, workers 0.4 -> 0.25 s, wall 0.7 ->
    0.55 s). Back-to-back BLAS calls still find their threads awake. OpenBLAS reads the variable when it loads,
    so this acts only if called before numpy is imported, and in processes started afterwards. Only srbench's own
    command does this (like :func:`keep_freed_memory`).
    """
    os.environ.setdefault(_BLAS_SPIN_ENV, _BLAS_SPIN_EXPONENT)


def one_blas_thread():
    """A context: numpy's and scipy's BLAS (OpenBLAS, MKL, BLIS) on one thread in this process, restored after.

    NIQE, Ma and BRISQUE make many small matrix products and decompositions, where OpenBLAS's threads cost more
    than they give: on 2 cores the three run 2.4x faster on one thread. torch's own thread pools (OpenMP) are
    left alone, so a generator running on the CPU keeps them.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def _worker_env(env: dict[str, str | None]) -> None:
    for key in [k for k in os.environ if k.startswith(_ENV_PREFIXES) and k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def compute(protocol: str, sr, hr, scale: int, names: list[str], options: dict,
            env: dict[str, str | None]) -> dict[str, float]:
    """What a worker runs for one image: the protocol's own per-image computation."""
    _worker_env(env)
    return _per_image(protocol, sr, hr, scale, names, options)


def _per_image(protocol: str, sr, hr, scale: int, names: list[str], options: dict) -> dict[str, float]:
    from srbench.protocols import get_protocol

    try:
        return get_protocol(protocol).per_image(sr, hr, scale, names, options)
    except Exception as exc:
        sendable = _sendable(exc)
        if sendable is exc:
            raise
        raise sendable from exc


def produce(protocol: str, item, sr_recipe: tuple[str, str], scale: int, names: list[str], options: dict,
            env: dict[str, str | None], max_pixels: int) -> tuple[tuple[list[str], str, bool] | None, dict, str | None]:
    """What a worker runs for one image of a bicubic or folder source: the whole per-image pipeline.

    It reads the HR and LR files of ``item`` (:func:`srbench.datasets.load_pair`), makes the SR image (MATLAB
    bicubic, or the folder's file ``sr_recipe`` names, as :func:`srbench.sources.read_folder_sr` fits it) and computes
    ``names`` with :meth:`Protocol.per_image`: the same functions on the same arrays as the parent's path, so the
    same floats. Only the item (paths) comes in and only the values go back. -> (the read notes, LR source and
    cropped flag, or None when the pair could not be read; the values; the bad-input message or None: a read
    error's own message, a metric's prefixed with the HR path, as the parent words them).
    """
    from srbench import datasets as D
    from srbench.images import set_max_pixels
    from srbench.matlab import imresize
    from srbench.sources import read_folder_sr

    _worker_env(env)
    set_max_pixels(max_pixels)
    try:
        pair = D.load_pair(item, scale)
        how, what = sr_recipe
        if how == "error":  # no file of the folder stands for this image
            raise BadInputError(what)
        sr, notes = (imresize(pair.lr, scale), ()) if how == "bicubic" else read_folder_sr(Path(what), pair, scale)
    except BadInputError as exc:
        return None, {}, str(exc)
    info = ([*pair.notes, *notes], pair.lr_source, pair.cropped_from is not None)
    try:
        return info, _per_image(protocol, sr, pair.hr, scale, names, options), None
    except BadInputError as exc:
        return info, {}, f"{item.hr_path}: {exc}"


def _sendable(exc: Exception) -> Exception:
    """``exc`` if it survives the trip to the parent, else one that does with its message (an exception whose
    ``__init__`` takes other arguments than its message, e.g. WeightsUnavailableError, cannot be unpickled, and
    would break the pool). The worker's traceback text goes along either way."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return (SrbenchError if isinstance(exc, SrbenchError) else RuntimeError)(f"{exc}")
    return exc


# ------------------------------------------------------------------------------------------------- the pool
_WORKER_NAME = "srbench-metrics-worker"


class _Named:
    """A worker process named so that :func:`_skip_main_in_workers` knows it."""

    name: str

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name = f"{_WORKER_NAME}-{self.name}"


class _WorkerProcess(_Named, multiprocessing.context.SpawnProcess):
    pass


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


class _ForkProcess(_Named, multiprocessing.context.ForkProcess):
    pass


class _ForkContext(multiprocessing.context.ForkContext):
    Process = _ForkProcess


def start_method() -> str:
    """*fork* where it is safe and available: Linux, this process has one thread and has not imported torch
    (whose thread pools and CUDA state a forked child would inherit broken); else *spawn*."""
    safe = sys.platform == "linux" and "torch" not in sys.modules and threading.active_count() == 1
    return "fork" if safe else "spawn"


def _load_image_decoders() -> None:
    """Pillow and its PNG, JPEG, BMP and GIF readers, loaded once before the fork instead of in every worker at
    its first image (about 0.1 s each; the workers' first images wait for it)."""
    from PIL import Image

    Image.preinit()


def _skip_main_in_workers() -> None:
    """Spawned workers do not run the parent's ``__main__`` again.

    multiprocessing's spawn re-executes the main script in every child (as ``__mp_main__``) so that functions
    defined there can be unpickled; a script that calls ``evaluate`` without an ``if __name__ == "__main__"``
    guard would run again (training, say) in each worker, and then fail. A worker only runs this module's
    :func:`compute`, so the main module is left out of what srbench's workers (and only they: by process
    name) are told to prepare.
    """
    from multiprocessing import spawn

    if getattr(spawn.get_preparation_data, "_srbench", False):
        return
    original = spawn.get_preparation_data

    def get_preparation_data(name: str) -> dict:
        data = original(name)
        if name.startswith(_WORKER_NAME):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    get_preparation_data._srbench = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = get_preparation_data


class _Pool:
    """The process's one pool of metric workers, made on first use and reused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._size = 0

    def get(self, workers: int) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is not None and self._size != workers:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
            if self._executor is None:
                context: multiprocessing.context.BaseContext = _ForkContext()
                if start_method() == "fork":
                    _load_image_decoders()
                else:
                    _skip_main_in_workers()
                    context = _SpawnContext()
                self._executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                     initargs=(os.getpid(),))
                self._size = workers
            return self._executor

    def discard(self, executor: ProcessPoolExecutor, *, terminate: bool) -> None:
        """Stop using a broken ``executor``, or with ``terminate`` (Ctrl-C: a running NIQE must not go on) kill
        its workers; the next evaluation starts a fresh pool."""
        with self._lock:
            if terminate:
                # ProcessPoolExecutor has no public way to stop running tasks before Python 3.14.
                for process in list((getattr(executor, "_processes", None) or {}).values()):
                    if process.is_alive():
                        process.terminate()
            # Killed workers fail every pending future (BrokenProcessPool); cancelling them too raced with that
            # in the pool's manager thread (CPython 3.11: InvalidStateError on a cancelled future)
            executor.shutdown(wait=False, cancel_futures=not terminate)
            if self._executor is executor:
                self._executor = None

    def shutdown(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None


POOL = _Pool()


def environment() -> dict[str, str | None]:
    """The environment sent with each task (read once per evaluation)."""
    return _environment()
