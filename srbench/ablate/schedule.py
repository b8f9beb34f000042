"""Training scheduling of an ablation: every stage of every suite entry is a --checkpoints file, a training cache
entry, or a training (one per fingerprint, side by side up to ``jobs``, or shared among torchrun ranks)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srbench.ablate.plan import AblationReport, Plan, SharedStage, fatal_errors
from srbench.errors import SrbenchError
from srbench.work_split import Ranks


@dataclass
class _Job:
    key: Any  # srbench.train.cache.StageKey
    stage: str
    config: Any  # the first entry's TrainConfig (the others' resolve to the same fingerprint)
    init: str | None
    entries: list[str] = field(default_factory=list)
    done: bool = False


class _Trainings:
    """Every stage of every suite entry: a --checkpoints file, a training cache entry, or a training (one per
    fingerprint, up to ``plan.jobs`` side by side); a gan stage starts once its psnr stage is there."""

    def __init__(self, plan: Plan, report: AblationReport, configs: dict,
                 meanwhile: Callable[[], bool] | None = None) -> None:
        from srbench.train.cache import TrainingCache, resolve_device

        assert plan.cache_dir is not None
        self.plan, self.report, self.configs = plan, report, configs
        self.cache = TrainingCache(plan.cache_dir)
        self.device = resolve_device(plan.device)
        self.where = plan.where or Ranks()
        # Intra-op threads of each training on a CPU: part of the fingerprint (they change the last bits). The
        # cores are shared by the trainings side by side, and by the torchrun processes of this machine.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.where.active else 1
        self.threads = max(1, _cores() // (plan.jobs * local)) if self.device == "cpu" else None
        self.memo: dict = {}  # data fingerprints
        self.jobs: dict[str, _Job] = {}  # fingerprint -> job
        self.queue: list[_Job] = []  # jobs to train, in suite order
        self.shared: dict[str, tuple] = {}  # fingerprint -> (SharedStage, CachedStage) of the stages there
        self.psnr_weights: dict[str, Path] = {}  # entry -> the cache entry of its psnr stage
        self.meanwhile = meanwhile  # evaluates one model that is there; False when there is none to evaluate

    def _fail(self, names: list[str], exc: SrbenchError) -> None:
        for name in names:
            self.report.failures.append(f"{name}: {exc}")
            self.plan.log(f"FAILED {name}: {exc}")

    def add(self, name: str, stage: str) -> None:
        """Stage ``stage`` of entry ``name``: given, cached (placed now), or queued (joining an equal job)."""
        from srbench.train.cache import stage_key
        from srbench.train.config import data_fingerprints

        given = self.plan.existing(name, stage)
        if given is not None:
            self.report.models[f"{name}-{stage}"] = given
            self.report.training.append(SharedStage(stage, [name], str(given), source="checkpoints"))
            if stage == "psnr":
                self.add(name, "gan")
            return
        config = self.configs[name]
        # The psnr weights a gan stage starts from: their cache entry (a path no --out decides), else the file given.
        init = str(self.psnr_weights.get(name, self.report.models.get(f"{name}-psnr"))) if stage == "gan" else None
        try:
            key = stage_key(config, stage, data=data_fingerprints(config, self.memo), init=init, device=self.device,
                            threads=self.threads)
        except fatal_errors():
            raise
        except SrbenchError as exc:
            self._fail([name], exc)
            return
        job = self.jobs.get(key.fingerprint)
        if job is None:
            job = self.jobs[key.fingerprint] = _Job(key, stage, config, init)
            job.entries.append(name)
            cached = self.cache.lookup(key.fingerprint)
            if cached is not None:
                self.finish(job, cached)
            else:
                self.queue.append(job)
        else:
            job.entries.append(name)
            if job.done:  # shared with a stage already there
                self._place(job, name)

    def _place(self, job: _Job, name: str) -> None:
        from srbench.train.cache import CachedStage, place

        cached: CachedStage = self.shared[job.key.fingerprint][1]
        others = [e for e in job.entries if e != name]
        if not self.where.is_main:  # rank 0 alone writes the run folders; the others read the cache entry
            self.report.models[f"{name}-{job.stage}"] = cached.final
            if job.stage == "psnr":
                self.psnr_weights[name] = cached.final
                self.add(name, "gan")
            return
        try:
            self.report.models[f"{name}-{job.stage}"] = place(
                cached, self.plan.runs_dir / name / job.stage, config=self.configs[name], shared_with=others)
        except fatal_errors():
            raise
        except SrbenchError as exc:
            self._fail([name], exc)
            return
        if job.stage == "psnr":
            self.psnr_weights[name] = cached.final
            self.add(name, "gan")

    def finish(self, job: _Job, cached, *, trained: bool | None = None) -> None:
        """``trained``: whether it was trained in this run (default: by this process)."""
        job.done = True
        source = "trained" if (cached.trained if trained is None else trained) else "cache"
        share = SharedStage(job.stage, job.entries, str(cached.final), job.key.fingerprint, source,
                            cached.record.get("seconds"))
        self.report.training.append(share)
        self.shared[job.key.fingerprint] = (share, cached)
        if source == "cache":
            self.plan.log(f"cached {job.stage} stage {job.key.fingerprint[:12]} for {', '.join(job.entries)} "
                          f"({cached.folder})")
        for name in list(job.entries):  # a gan job of an entry placed here may join later entries' jobs
            self._place(job, name)

    def announce(self, job: _Job) -> None:
        shared = f", shared by {', '.join(job.entries)}" if len(job.entries) > 1 else ""
        resume = ", resuming" if self.cache.resumable(job.key, job.stage) else ""
        self.plan.log(f"training {job.entries[0]} / {job.stage} ({self.plan.preset}{resume}; cache "
                      f"{job.key.fingerprint[:12]}{shared})")

    def run(self) -> None:
        for variant in self.plan.suite.entries:
            self.add(variant.name, "psnr")
        if self.where.active:
            self._run_ranked()
            return
        # Side by side even for one job now: a psnr stage shared by every entry (the loss suites) unlocks several
        # gan stages, and the threads of each training were fixed at cores // jobs for the fingerprint, so one at a
        # time would leave cores idle; meanwhile the models already there are evaluated.
        if self.plan.jobs > 1 and self.queue:
            self._run_side_by_side()
            return
        while self.queue:
            job = self.queue.pop(0)
            self.announce(job)
            try:
                with _torch_threads(self.threads):
                    cached = self.cache.get_or_train(job.config, job.stage, job.key, init=job.init,
                                                     device=self.plan.device, progress=True, log=self.plan.log,
                                                     announce=False)
            except fatal_errors():
                raise
            except SrbenchError as exc:
                self._fail(job.entries, exc)
                continue
            self.finish(job, cached)

    def _next(self) -> _Job:
        """The next training side by side: psnr stages first (each unlocks gan stages), then the largest generator
        first, so the longest chain (and the models waiting on it, e.g. the interpolation's) is done early and the
        last, lone training is a short one. The order changes no weights: only when each is there."""
        best = min(self.queue, key=lambda job: (job.stage != "psnr", -_generator_size(job.config),
                                                self.queue.index(job)))
        self.queue.remove(best)
        return best

    def _run_ranked(self) -> None:
        """torchrun: the stages in waves of the dependency graph (the psnr stages, then the gan stages that start
        from them); in each wave rank ``r`` trains every ``world``-th stage on its own (no DDP: a whole stage per
        rank), then every rank reads the wave's entries from the training cache, which the ranks share."""
        from srbench import work_split as Dist

        while self.queue:
            wave, self.queue = self.queue, []
            errors: dict[str, str] = {}
            for job in self.where.share(wave):
                self.announce(job)
                try:
                    with _torch_threads(self.threads):
                        self.cache.get_or_train(job.config, job.stage, job.key, init=job.init,
                                                device=self.plan.device, progress=False, log=self.plan.log,
                                                announce=False, alone=True)
                except fatal_errors():
                    raise  # torchrun stops the other ranks; a re-run resumes from the cache and the checkpoints
                except SrbenchError as exc:
                    errors[job.key.fingerprint] = str(exc)
            for part in Dist.all_gather(errors, self.where):
                errors.update(part)
            for job in wave:
                cached = self.cache.lookup(job.key.fingerprint)
                if job.key.fingerprint in errors or cached is None:
                    why = errors.get(job.key.fingerprint, f"its entry is missing from the training cache "
                                                          f"{self.cache.root} (is it shared by every node?)")
                    self._fail(job.entries, SrbenchError(why))
                else:
                    self.finish(job, cached, trained=True)

    def _run_side_by_side(self) -> None:
        """Up to ``plan.jobs`` trainings at once, each in its own process on its share of the cores; meanwhile this
        process evaluates every model already there (``self.meanwhile``, one model per call), so that a core a
        last, lone training leaves idle is used."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        from srbench.train.cache import train_in_worker
        from srbench.train.interrupts import init_training_worker

        threads = self.threads or 1
        running: dict = {}

        def collect(timeout: float | None) -> None:
            finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    cached = future.result()
                except fatal_errors():
                    raise
                except SrbenchError as exc:
                    self._fail(job.entries, exc)
                    continue
                self.plan.log(f"trained {job.stage} stage {job.key.fingerprint[:12]} ({', '.join(job.entries)}) "
                              f"in {cached.record.get('seconds')} s")
                self.finish(job, cached)

        with ProcessPoolExecutor(self.plan.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=init_training_worker) as pool:
            try:
                while self.queue or running:
                    while self.queue and len(running) < self.plan.jobs:
                        job = self._next()
                        self.announce(job)
                        running[pool.submit(train_in_worker, str(self.cache.root), job.config, job.stage, job.key,
                                            job.init, self.plan.device, threads)] = job
                    if self.meanwhile is not None and self.meanwhile():
                        collect(0)  # a model was evaluated: start the next training at once if one finished
                    else:
                        collect(None)
            except BaseException as exc:
                _stop_trainings(pool, running, interrupted=isinstance(exc, KeyboardInterrupt))
                raise


_SAVE_GRACE_S = 120.0  # how long an interrupted ablate waits for its trainings to save their state
_LEAVE_GRACE_S = 10.0  # then for its idle training processes to leave


def _stop_trainings(pool, running: dict, *, interrupted: bool) -> None:
    """Nothing new starts. After another stage's fatal error the running trainings finish (the pool's exit waits;
    cached for a re-run). After a Ctrl-C they got it too and save their state at their step's end: let them, then
    stop whatever is left (an idle worker the interrupted pool never told to leave hung the exit)."""
    from concurrent.futures import wait

    for future in running:
        future.cancel()
    if not interrupted:
        return
    import time

    processes = list((getattr(pool, "_processes", None) or {}).values())
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
        wait(running, timeout=_SAVE_GRACE_S)
        pool.shutdown(wait=False, cancel_futures=True)  # the idle workers told to leave, as a normal exit does
        deadline = time.monotonic() + _LEAVE_GRACE_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:  # only what did not leave (terminated, a worker leaks its queue's semaphores)
        if process.is_alive():
            process.terminate()


def _generator_size(config) -> int:
    """Parameters of a configuration's generator (built on the meta device: no memory, no initialisation)."""
    import torch

    from srbench.archs import GENERATORS, build_generator, count_parameters

    spec = GENERATORS[config.generator]
    with torch.device("meta"):
        return count_parameters(build_generator(spec.arch, {**spec.config, **config.generator_config,
                                                            "scale": config.data.scale}))


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` (None: unchanged) within the block."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs(device: str) -> int:
    """Trainings side by side: two on a CPU with two or more cores (two small networks on one core each beat one
    on two: measured in docs/scaling.md), one on a GPU."""
    from srbench.train.cache import resolve_device

    return 1 if resolve_device(device) != "cpu" or _cores() < 2 else 2


def train_suite(plan: Plan, report: AblationReport, configs: dict,
                 meanwhile: Callable[[], bool] | None = None) -> None:
    """Every entry's two stages (see :class:`_Trainings`); the report's models stay in suite order."""
    _Trainings(plan, report, configs, meanwhile).run()
    order = [*plan.suite.baselines, *(f"{v.name}-{stage}" for v in plan.suite.entries for stage in ("psnr", "gan"))]
    # Suite order, then what was added while training (the interpolated models, made as soon as they could be).
    report.models = {**{k: report.models[k] for k in order if k in report.models},
                     **{k: v for k, v in report.models.items() if k not in order}}
    report.training.sort(key=lambda s: ([v.name for v in plan.suite.entries].index(s.entries[0]),
                                        s.stage != "psnr"))
