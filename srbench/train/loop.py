"""The trainer of one stage in one run folder: set-up, checkpoints, exact resume and the training loop.

Model, optimisers, schedulers and the EMA (the stage's ``state_dict``) are checkpointed together with the
iteration, and the batches of an iteration never depend on what ran before (see ``data``): resuming therefore gives
the weights an uninterrupted run gives (bitwise on CPU).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from srbench.checkpoints import save_checkpoint, variant_of
from srbench.errors import BadInputError, OutputError, SrbenchError, StoppedByUser
from srbench.images import atomic_write_bytes, atomic_write_text, ensure_writable_dir
from srbench.train.config import TrainConfig, check_training_set, data_fingerprints, upgrade_saved_config
from srbench.train.data import training_data, validation_l1
from srbench.train.ddp import Dist, any_rank, init_distributed, sync_buffers, write_rank_digests
from srbench.train.lock import lock_run_folder
from srbench.train.logs import RunLog
from srbench.train.stages import STAGES, NonFiniteLoss, TrainingDiverged
from srbench.weightfiles import CheckpointError

log = logging.getLogger(__name__)


class TrainingInterrupted(StoppedByUser):
    """Ctrl-C during training; a checkpoint was written first."""


@dataclass
class TrainResult:
    out_dir: Path
    stage: str
    iterations: int
    final: Path | None
    final_ema: Path | None
    val_l1: list[tuple[int, float]] = field(default_factory=list)


class _DeferredSigint:
    def __init__(self) -> None:
        self.pressed = 0

    def handler(self, signum, frame) -> None:
        self.pressed += 1
        if self.pressed > 1:
            raise KeyboardInterrupt

    def raise_if_pressed(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt


@contextmanager
def deferred_sigint() -> Iterator[_DeferredSigint]:
    """Within the block, a first Ctrl-C only sets ``.pressed`` (the loop raises KeyboardInterrupt at the end of its
    step with ``raise_if_pressed()``, so a saved state is never a half-applied update); a second one raises at once.
    Outside the main thread, where signal handlers cannot be set, Ctrl-C keeps its usual effect."""
    state = _DeferredSigint()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, state.handler)
    try:
        yield state
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


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


def _versions() -> dict[str, str]:
    from srbench.version import __version__

    return {"srbench": __version__, "torch": torch.__version__}


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


@dataclass
class _Session:
    """What one call of ``Trainer.run`` writes to besides the weights."""

    result: TrainResult
    loader: torch.utils.data.DataLoader
    val: list
    bar: Any  # tqdm
    log: RunLog | None  # rank 0 only
    started: float = field(default_factory=time.perf_counter)

    def close(self) -> None:
        self.bar.close()
        if self.log is not None:
            self.log.close()


class Trainer:
    """One stage of one configuration in ``out_dir/<stage>``; the networks and optimisers are ``self.model``
    (a :class:`PsnrStage` or :class:`GanStage`), the loop, files and resume are here."""

    # How a user continues an interrupted run: ``srbench train`` takes --resume; the training cache (ablate)
    # resumes by itself, and has no such option
    resume_how = "continue with --resume"
    # Whether a saved configuration (as TrainConfig.to_dict() reads back) trains bitwise what this one trains,
    # though written otherwise: the training cache's test (its name, cadence, keys the stage never reads). None:
    # only the same configuration resumes (bar this stage's iters).
    trains_the_same: Callable[[dict], bool] | None = None

    def __init__(self, config: TrainConfig, stage: str, out_dir: str | os.PathLike, *, init: str | None = None,
                 device: str = "auto", progress: bool = True, alone: bool = False) -> None:
        """``alone``: train in this process only, even under ``torchrun`` (``srbench ablate`` gives each rank whole
        stages), on this node's GPU of the rank when training on CUDA."""
        check_training_set(config)  # before a network is built or a folder written
        self.config = config
        self.stage = stage
        self.sc = config.stage(stage)
        self.dist = Dist(local_rank=int(os.environ.get("LOCAL_RANK", "0"))) if alone else init_distributed()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if device == "cuda" else device)
        self.run_dir = Path(out_dir).expanduser()
        self.dir = self.run_dir / stage
        self.progress = progress and self.dist.is_main
        torch.manual_seed(config.seed)
        self.model = STAGES[stage](config, self.device, self.dist, init=self._init_path(init))

    def _init_path(self, init: str | None) -> str | None:
        """The checkpoint the stage starts from: ``init``, else for the gan stage the run's psnr result."""
        if init is not None or self.stage != "gan":
            return init
        candidate = self.run_dir / "psnr" / "g_final.safetensors"
        if not candidate.is_file():
            raise BadInputError(
                f"the gan stage starts from a psnr checkpoint: pass --init or train the psnr stage into "
                f"{self.run_dir} first (looked for {candidate})"
            )
        return str(candidate)

    @property
    def iteration(self) -> int:
        """Completed iterations."""
        return self.model.iteration

    @iteration.setter
    def iteration(self, value: int) -> None:
        self.model.iteration = value

    # -- state -------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.dir / "state.pt"

    @functools.cached_property
    def data_sha256(self) -> dict[str, str | None]:
        """Content fingerprints of the training and validation sets (what the training cache keys them by)."""
        return data_fingerprints(self.config)

    @functools.cached_property
    def pretrained_sha256(self) -> dict[str, str]:
        """The pretrained files the stage's losses read, by role (what the training cache keys them by)."""
        from srbench.train.stages import pretrained_sha256

        return pretrained_sha256(self.config.loss, self.config.preset) if self.stage == "gan" else {}

    @functools.cached_property
    def trained_under(self) -> list[dict[str, str]]:
        """The srbench and torch versions the run was trained under, in order (one entry unless it was resumed
        under others: then it is not bitwise what an uninterrupted run under either gives)."""
        return [_versions()]

    def state(self) -> dict:
        return {"iteration": self.iteration, "stage": self.stage, "config": json.dumps(self.config.to_dict()),
                "init": self.model.init_source or "", "init_sha256": self.model.init_sha256,
                "data_sha256": json.dumps(self.data_sha256), "world_size": self.dist.world,
                "pretrained_sha256": json.dumps(self.pretrained_sha256),
                "trained_under": json.dumps(self.trained_under),
                **self.model.state_dict()}

    def load_state(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path}: cannot resume from it ({type(exc).__name__}: {str(exc)[:160]})") from None
        try:
            self._load_state(path, state)
        except SrbenchError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # JSON fields edited or cut
            raise CheckpointError(f"{path}: not a whole training state of this run ({type(exc).__name__}: "
                                  f"{str(exc)[:160]}); train afresh into another folder, or resume from an intact "
                                  "copy") from None

    def _load_state(self, path: Path, state: object) -> None:
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: not a training state (a {type(state).__name__})")
        if state.get("stage") != self.stage:
            raise CheckpointError(f"{path}: a {state.get('stage')} stage state, not {self.stage}")
        try:
            saved = upgrade_saved_config(json.loads(state["config"]))
            done = int(state["iteration"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: not a training state written by srbench (no config or iteration)") from None
        self._check_resumable(path, saved, done)
        self._check_inputs(path, state)
        # Other kernels (torch) or code (srbench) for the rest of the run: allowed (an upgrade mid-run is no reason to
        # start over), but said, and recorded with the weights. States written before this was kept: as before.
        if "trained_under" in state:
            then = json.loads(state["trained_under"])
            if then[-1] != _versions():
                now = _versions()
                log.warning("resuming %s under srbench %s, torch %s; it was trained under srbench %s, torch %s until "
                            "iteration %d: the weights will not be bitwise what one uninterrupted run gives (recorded "
                            "as trained_under)", path, now["srbench"], now["torch"], then[-1]["srbench"],
                            then[-1]["torch"], done)
                then.append(now)
            self.trained_under = then
        try:
            self.model.load_state_dict(state)
        except SrbenchError:
            raise
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:  # a key gone, a tensor of another shape
            raise CheckpointError(f"{path}: not a whole training state of this run ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:160] if str(exc) else 'no detail'}); train afresh "
                                  "into another folder, or resume from an intact copy") from None
        self.iteration = done

    def _check_inputs(self, path: Path, state: dict) -> None:
        """What the run was trained from and on, as the state records it, against this run's."""
        # States written before the starting weights were kept say nothing about them (resumed as before).
        if "init_sha256" in state and state["init_sha256"] != self.model.init_sha256:
            then = f"{state.get('init') or 'no init'} (sha256 {state['init_sha256'][:12] or '-'})"
            now = f"{self.model.init_source or 'no init'} (sha256 {self.model.init_sha256[:12] or '-'})"
            raise CheckpointError(f"{path}: trained from {then}, not {now}: resume with the --init it started "
                                  "from, or train afresh into another folder")
        # The same folder name or set name with other images in it trained on for the rest of the run, recorded as one
        # set. States written before this was kept say nothing about it (resumed as before).
        if "data_sha256" in state and json.loads(state["data_sha256"]) != self.data_sha256:
            was, is_now = json.loads(state["data_sha256"]), self.data_sha256
            which = [k for k in ("train", "val") if was.get(k) != is_now.get(k)]
            shown = "; ".join(f"data.{k} {getattr(self.config.data, k)!r}: content {str(was.get(k))[:12]} there, "
                              f"{str(is_now.get(k))[:12]} now" for k in which)
            raise CheckpointError(f"{path}: trained on other images ({shown}): resume with the images it was "
                                  "trained on, or train afresh into another folder")
        # loss.vgg_weights names a path (or the weights folder's file): another network there is another loss for
        # the rest of the run. States written before this was kept say nothing about it (resumed as before).
        if "pretrained_sha256" in state and json.loads(state["pretrained_sha256"]) != self.pretrained_sha256:
            from srbench.train.stages import pretrained_files

            files_then, files_now = json.loads(state["pretrained_sha256"]), self.pretrained_sha256
            differing = sorted(r for r in set(files_then) | set(files_now) if files_then.get(r) != files_now.get(r))
            where = {role: str(path) for role, path in pretrained_files(self.config.loss, self.config.preset).items()}
            shown = "; ".join(f"{role} {where.get(role, '(none now)')}: sha256 {str(files_then.get(role))[:12]} "
                              f"there, {str(files_now.get(role))[:12]} now" for role in differing)
            raise CheckpointError(f"{path}: trained with other pretrained loss networks ({shown}): resume with the "
                                  "files it was trained with, or train afresh into another folder")
        # Each rank draws its own batch_size images per step: another number of ranks is another training (its
        # samples and its batch), which no uninterrupted run gives. States written before this was kept: as before.
        if "world_size" in state and int(state["world_size"]) != self.dist.world:
            ranks, batch = int(state["world_size"]), self.config.data.batch_size
            raise CheckpointError(
                f"{path}: trained on {ranks} rank(s) ({ranks * batch} images per step), resumed on {self.dist.world} "
                f"({self.dist.world * batch}): the result would be neither run's; resume with {ranks} rank(s) "
                f"({'torchrun --nproc_per_node ' + str(ranks) if ranks > 1 else 'without torchrun'}), or train "
                "afresh into another folder")

    def _check_resumable(self, path: Path, saved: dict, done: int) -> None:
        # Only this stage's length may change: a larger --iters extends a run (the schedule and the samples
        # depend on the iteration number alone, so the result is the one a longer run gives).
        ours = json.loads(json.dumps(self.config.to_dict()))
        extendable = f"{self.stage}.iters"
        differing = [k for k in _config_diff(saved, ours) if k != extendable]
        if differing and self.trains_the_same is not None and self.trains_the_same(saved):
            differing = []
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

    def save(self, final: bool = False) -> None:
        if not self.dist.is_main:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError.from_os_error(self.state_path, exc) from None
        _atomic_torch_save(self.state(), self.state_path)
        model = self.model
        meta: dict[str, Any] = {
            "arch": model.arch, "config": model.gen_config,
            "variant": variant_of(self.config.generator, model.arch, model.gen_config), "stage": self.stage,
            "iteration": self.iteration, "extra": {"train_config": self.config.to_dict(), "init": model.init_source,
                                                   "init_sha256": model.init_sha256 or None,
                                                   "data_sha256": self.data_sha256,
                                                   "pretrained_sha256": self.pretrained_sha256,
                                                   "trained_under": self.trained_under,
                                                   # batch_size is per rank: the images per step are world x it
                                                   "world_size": self.dist.world},
        }
        suffix = "final" if final else f"iter{self.iteration:07d}"
        names = [(f"g_{suffix}", model.generator)]
        if model.ema is not None:
            names.append((f"g_ema_{suffix}", model.ema))
        for name, module in names:
            save_checkpoint(module, self.dir / f"{name}.safetensors", **meta)

    # -- one iteration -----------------------------------------------------------------------------------
    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        try:
            return self.model.step(lr, hr)
        except NonFiniteLoss as exc:
            raise TrainingDiverged(
                f"iteration {exc.iteration}: loss {exc.name} is {exc.value}; stopped, the last good checkpoint in "
                f"{self.dir} is kept (lower the learning rate or check the data)"
            ) from None

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self, resume: bool = False, on_iteration: Callable[[int, dict], None] | None = None) -> TrainResult:
        """Train to ``iters`` (from the saved state with ``resume``, which also extends a finished run to a
        larger ``iters``). Rank 0 holds the run folder's lock throughout: a second trainer fails at once."""
        with lock_run_folder(self.run_dir) if self.dist.is_main else nullcontext():
            return self._run(resume, on_iteration)

    def _run(self, resume: bool, on_iteration: Callable[[int, dict], None] | None) -> TrainResult:
        session = self._start(resume)
        sc = self.sc
        self.model.train()
        # Ctrl-C is deferred to the end of the current step, so the saved state is never a half-applied update;
        # a second Ctrl-C stops at once without saving (the last periodic checkpoint stays).
        with closing(session), deferred_sigint() as sigint:
            try:
                for lr, hr in session.loader:
                    logs = self.step(lr, hr)
                    if on_iteration is not None:
                        on_iteration(self.iteration, logs)
                    session.bar.update(1)
                    self._record(logs, session)
                    if self.iteration % sc.checkpoint_every == 0 and self.iteration < sc.iters:
                        self.save()
                    if self.dist.world > 1:
                        # Every rank stops at the same step, and rank 0 saves: a Ctrl-C reaching one rank only
                        # (or the ranks on either side of a step's end) left rank 0 in the next step's gradient
                        # exchange, killed by torchrun, and nothing saved.
                        if any_rank(sigint.pressed, self.device):
                            raise KeyboardInterrupt
                    else:
                        sigint.raise_if_pressed()
            except KeyboardInterrupt:
                self._interrupted(sigint.pressed)
        return self._finish(session.result)

    def _refuse_replacing_a_start(self) -> None:
        """A psnr stage run again into its folder (extended) replaces g_final.safetensors, which the run's gan stage
        may have started from: that stage could then not be resumed, and its record named weights that were gone."""
        final = self.dir / "g_final.safetensors"
        gan = self.run_dir / "gan"
        if self.stage != "psnr" or not final.is_file() or not gan.is_dir():
            return
        from srbench.weights import sha256

        ours = sha256(final)
        for sidecar in sorted(gan.glob("g_*.json")):
            init = init_sha = None
            with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):  # not a sidecar: not a start
                extra = json.loads(sidecar.read_text()).get("extra", {})
                init, init_sha = extra.get("init"), extra.get("init_sha256")
            # By content (a run moved, copied or named by a relative --out from elsewhere has other paths), and by
            # path for sidecars written before the starting weights' sha256 was kept.
            if init_sha == ours or (isinstance(init, str) and init
                                    and Path(init).expanduser().resolve() == final.resolve()):
                raise BadInputError(
                    f"{final} is where the gan stage in {gan} started from ({sidecar.name} names it): training "
                    f"the psnr stage further would replace those weights. Copy {self.dir} into another run folder "
                    f"and extend it there (--out), or move {gan} away first")

    def _start(self, resume: bool) -> _Session:
        """Resume or refuse to overwrite, record the configuration, load the data, validate iteration 0."""
        if self.dist.is_main:
            self._refuse_replacing_a_start()
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
        loader, val = training_data(self.config, self.sc.iters, self.iteration, self.dist.rank, self.dist.world,
                                    pin_memory=self.device.type == "cuda")
        run_log = RunLog(self.dir, self.stage, self.iteration, resume=resume) if self.dist.is_main else None
        result = TrainResult(self.dir, self.stage, self.iteration, None, None)
        if self.iteration == 0 and run_log is not None:
            result.val_l1.append((0, validation_l1(self.model.generator, val, self.device)))
            run_log.csv.write({"iteration": 0, "val_l1": result.val_l1[0][1]})  # the log only, not TensorBoard
        from tqdm import tqdm

        bar = tqdm(total=self.sc.iters, initial=self.iteration, disable=not self.progress or None,
                   desc=f"{self.config.name}/{self.stage}", unit="it")
        return _Session(result, loader, val, bar, run_log)

    def _record(self, logs: dict[str, float], session: _Session) -> None:
        """The iteration's log row (every ``log_every``) and validation (every ``val_every``), and the last one."""
        it, sc = self.iteration, self.sc
        row = None
        if it % sc.log_every == 0 or it == sc.iters:
            row = {"iteration": it, "lr": self.model.lr, **logs,
                   "seconds": round(time.perf_counter() - session.started, 3)}
            session.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k.startswith("l_")}, refresh=False)
        if (it % sc.val_every == 0 or it == sc.iters) and self.dist.is_main:
            value = validation_l1(self.model.generator, session.val, self.device)
            session.result.val_l1.append((it, value))
            row = {**(row or {"iteration": it}), "val_l1": value}
        if row is not None and session.log is not None:
            session.log.write(row)

    def _interrupted(self, presses: int) -> None:
        if presses > 1:
            raise TrainingInterrupted(
                f"stopped during iteration {self.iteration + 1} without saving; {self.resume_how} from the last "
                f"checkpoint in {self.dir}"
            ) from None
        self.save()
        saved = "saved" if self.dist.is_main else "rank 0 saved"
        raise TrainingInterrupted(
            f"interrupted at iteration {self.iteration}; {saved} {self.state_path}, {self.resume_how}"
        ) from None

    def _finish(self, result: TrainResult) -> TrainResult:
        """Ranks agree on buffers, rank 0 writes the final weights (and every rank's digest under DDP)."""
        if self.dist.world > 1:
            sync_buffers(self.model.networks())
        self.save(final=True)
        result.iterations = self.iteration
        result.final = self.dir / "g_final.safetensors"
        result.final_ema = self.dir / "g_ema_final.safetensors" if self.model.ema is not None else None
        if self.dist.world > 1:
            write_rank_digests(self.model.generator, self.dist, self.dir / "ddp_ranks.json")
        return result


def recorded_iters(out_dir: str | os.PathLike, stage: str) -> int | None:
    """The length a run folder's stage was started with (None when there is no readable record).

    A resume without a new length keeps this one: now that a larger ``--iters`` extends a run, falling back to
    the preset's length would silently train an interrupted ``--iters 1000`` run to a million iterations.
    """
    folder = Path(out_dir).expanduser() / stage
    try:
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))[stage]["iters"]
    except (OSError, ValueError, KeyError, TypeError):
        saved = None
    if saved is None:  # config.json gone: the state records the configuration too
        try:
            state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
            saved = json.loads(state["config"])[stage]["iters"]
        except Exception:  # unreadable or not srbench's: the training state's own check decides
            return None
    return saved if isinstance(saved, int) and not isinstance(saved, bool) else None


def train(config: TrainConfig, stage: str, out_dir: str | os.PathLike, *, init: str | None = None,
          resume: bool = False, device: str = "auto", progress: bool = True) -> TrainResult:
    """Train one stage of one variant; see :class:`Trainer`."""
    return Trainer(config, stage, out_dir, init=init, device=device, progress=progress).run(resume=resume)
