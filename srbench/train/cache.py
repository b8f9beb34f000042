"""The training cache: a trained stage is stored by what determines its weights, not by where a report goes.

A stage's **fingerprint** is the sha256 of a canonical JSON (sorted keys, no spaces) of its inputs
(:func:`fingerprint_inputs`):

- ``stage``: ``psnr`` or ``gan``;
- ``config``: the resolved configuration that the stage reads: ``generator`` and ``generator_config``, ``seed``,
  ``data`` (``train``, ``val``, ``holdout``, ``patch_size``, ``batch_size``, ``scale``), the stage's own section
  (``iters``, ``lr``, ``milestones``, ``gamma``, ``betas`` and, for gan, ``d_lr``, ``d_num_feat``,
  ``ema_decay``), and the losses it uses (psnr: ``loss.pixel`` alone, with weight 1; gan: every ``loss`` key,
  written as srbench wrote them before the perceptual backbone, perceptual criterion and frequency choices
  existed wherever that says the same (:func:`loss_inputs`): the stages trained then keep their fingerprints).
  Left out because they never change the weights: the run ``name`` and ``preset`` label (the numbers the preset
  chose are in the config), ``data.data_root`` (the data enters by content, below), ``data.workers`` (a sample
  is a pure function of seed and index), ``data.val_crop`` and the stage's ``val_every`` (validation runs in
  eval mode without gradients), ``log_every`` and ``checkpoint_every`` (logging and periodic checkpoints), and
  the other stage's section (the gan stage sees the psnr stage only through its init checkpoint);
- ``data``: the content fingerprints of the training (and named validation) set, as
  :meth:`srbench.datasets.Dataset.fingerprint` computes them (sha256 over every image file's bytes);
- ``pretrained`` (gan, only when such a file is read): the sha256 of each ImageNet or learned file the losses read,
  by role (:func:`srbench.train.stages.pretrained_sha256`): a path, or the weights folder's ``imagenet`` file,
  names whatever file is there, and another VGG19 trains other weights (``loss.vgg_weights``, a name of that
  file, is then left out: ``imagenet`` and a path to the same bytes train the same stage);
- ``init``: the sha256 of the checkpoint the stage starts from (for a gan stage, its psnr stage's output; safetensors
  headers are canonical, so equal weights hash equally), or null;
- ``device``: ``cpu`` or ``cuda`` (CUDA trains under bfloat16 autocast: other weights), and on a CPU ``threads``,
  torch's intra-op threads (reductions split by thread: 1 and 2 threads give weights that differ in the last
  bits; ``srbench ablate`` trains on ``cores // jobs`` threads);
- ``srbench`` and ``torch``: the versions (the code, and the kernels, that produced the weights).

**Layout** (``srbench.paths.training_cache_dir``: ``training-cache/`` beside the results store by default)::

    training-cache/<fingerprint>/      one finished stage: g_final.safetensors (+ .json sidecar),
                                       g_ema_final.* (gan), log.csv, config.json, entry.json
    training-cache/.partial/<fp>/      a stage in training (its state.pt resumes it bitwise)
    training-cache/.locks/<fp>.lock    held while a process trains <fp>

``entry.json`` records the fingerprint, its inputs, the full resolved configuration the stage was trained with,
the weights' sha256, the iterations and the seconds it took. An entry appears by one ``rename`` of a finished
folder, so a half-written entry is never seen; an entry whose weights no longer match its record is ignored
(and replaced when the stage is trained again). Two processes that need the same fingerprint train it once: the
second waits on the lock and then finds the entry.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srbench.errors import OutputError, SrbenchError
from srbench.train.config import GAN_ONLY, STAGES, TrainConfig

CACHE_FORMAT = 1
ENTRY_FILE = "entry.json"
FINAL = "g_final.safetensors"
FINAL_EMA = "g_ema_final.safetensors"
# What an entry keeps of the stage folder besides the final weights: the logs of how it went.
KEPT = (FINAL, "g_final.json", FINAL_EMA, "g_ema_final.json", "log.csv", "config.json", ENTRY_FILE)
# Keys of the resolved data section that change the weights (the rest: data_root, workers, val_crop do not).
DATA_KEYS = ("train", "val", "holdout", "patch_size", "batch_size", "scale")
# Keys of a stage's section that never change its weights.
CADENCE_KEYS = ("checkpoint_every", "val_every", "log_every")
# Stage keys added after the first training caches were written, at the values that train what those trained.
_LEGACY_STAGE_DEFAULTS = {"discriminator": "vgg"}


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def fingerprint_inputs(config: TrainConfig, stage: str, *, data: dict[str, str | None], init_sha256: str | None,
                       device: str, threads: int | None = None, pretrained: dict[str, str] | None = None) -> dict:
    """What determines the weights of ``stage`` of ``config`` (see the module docstring), as JSON-ready values."""
    import torch

    from srbench.version import __version__

    if stage not in STAGES:
        raise SrbenchError(f"unknown stage {stage!r}")
    resolved = config_inputs(json.loads(json.dumps(config.to_dict())), stage, pretrained)  # tuples as lists
    # Left out when empty: stages on random backbones (smoke runs) keep the fingerprints they had.
    files = {"pretrained": dict(pretrained)} if pretrained else {}
    return {
        **files, "format": CACHE_FORMAT, "stage": stage, "config": resolved, "data": data, "init": init_sha256,
        "device": "cuda" if device.startswith("cuda") else device,
        "threads": threads if not device.startswith("cuda") else None, "srbench": __version__,
        "torch": torch.__version__.split("+")[0],
    }


def config_inputs(full: dict, stage: str, pretrained: dict[str, str] | None = None) -> dict:
    """The part of a resolved configuration (``TrainConfig.to_dict()`` as JSON reads it back) that determines the
    weights of ``stage``: two configurations equal here train the same weights from the same data and init."""
    section = {k: v for k, v in full[stage].items()
               if k not in CADENCE_KEYS and _LEGACY_STAGE_DEFAULTS.get(k, object()) != v}
    if stage == "psnr":
        section = {k: v for k, v in section.items() if k not in GAN_ONLY}
        loss = {"pixel": full["loss"]["pixel"]}
    else:
        loss = loss_inputs(full["loss"])
        if pretrained and "perceptual" in pretrained:  # the file by content, however loss.vgg_weights names it
            loss.pop("vgg_weights", None)
    return {"generator": full["generator"], "generator_config": full["generator_config"], "seed": full["seed"],
            "data": {k: full["data"][k] for k in DATA_KEYS}, stage: section, "loss": loss}


# Loss keys added after the first training caches were written, at the values that train what those trained.
_LEGACY_LOSS_DEFAULTS = {"perceptual_backbone": "vgg", "perceptual_criterion": "l1"}


def loss_inputs(loss: dict) -> dict:
    """A resolved ``loss`` section as fingerprint input: keys at their former behaviour are left out and
    ``fft-l1`` (or no frequency term) is written as the former ``fft_weight``, so a configuration that trains
    what an older srbench trained has the fingerprint it had; ``fft`` and ``spectral`` keep the new keys."""
    out = {k: v for k, v in loss.items() if _LEGACY_LOSS_DEFAULTS.get(k, object()) != v}
    frequency = out.pop("frequency", "none")
    weight = out.pop("frequency_weight", 0.0)
    if frequency in ("none", "fft-l1"):
        out["fft_weight"] = weight if frequency == "fft-l1" else 0.0
    else:
        out.update(frequency=frequency, frequency_weight=weight)
    return out


def fingerprint(inputs: dict) -> str:
    import hashlib

    return hashlib.sha256(canonical_json(inputs).encode()).hexdigest()


@dataclass(frozen=True)
class StageKey:
    fingerprint: str
    inputs: dict


def stage_key(config: TrainConfig, stage: str, *, data: dict[str, str | None], init: str | os.PathLike | None,
              device: str, threads: int | None = None) -> StageKey:
    from srbench.images import file_sha256
    from srbench.train.stages import pretrained_sha256

    init_sha = file_sha256(init) if init is not None else None
    pretrained = pretrained_sha256(config.loss, config.preset) if stage == "gan" else None
    inputs = fingerprint_inputs(config, stage, data=data, init_sha256=init_sha, device=device, threads=threads,
                                pretrained=pretrained)
    return StageKey(fingerprint(inputs), inputs)


@dataclass(frozen=True)
class CachedStage:
    """A finished stage in the cache."""

    fingerprint: str
    folder: Path
    record: dict  # entry.json
    trained: bool  # trained by this call (False: found in the cache)

    @property
    def final(self) -> Path:
        return self.folder / FINAL

    @property
    def final_ema(self) -> Path | None:
        path = self.folder / FINAL_EMA
        return path if path.is_file() else None


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class TrainingCache:
    """Finished stages by fingerprint in ``root``; see the module docstring."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()

    def entry_dir(self, fp: str) -> Path:
        return self.root / fp

    def lookup(self, fp: str) -> CachedStage | None:
        """The finished entry of ``fp``, or None (absent, or not what its record says)."""
        from srbench.images import file_sha256

        folder = self.entry_dir(fp)
        try:
            record = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
            ok = (isinstance(record, dict) and record.get("fingerprint") == fp
                  and (folder / "g_final.json").is_file()
                  and record.get("g_final_sha256") == file_sha256(folder / FINAL))
        except (OSError, ValueError):
            return None
        return CachedStage(fp, folder, record, trained=False) if ok else None

    @contextlib.contextmanager
    def locked(self, fp: str, log: Callable[[str], None] = print) -> Iterator[None]:
        """Hold ``.locks/<fp>.lock``: one process trains a fingerprint, another waits for it (then finds it)."""
        import fcntl

        from srbench.train.lock import open_lock_file

        path = self.root / ".locks" / f"{fp}.lock"
        fd = open_lock_file(path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"waiting: another process is training {fp[:12]} (lock {path})")
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def resumable(self, key: StageKey, stage: str) -> bool:
        """Whether training ``key`` resumes an interrupted run (bitwise what a whole run gives)."""
        return _resumable(self.root / ".partial" / key.fingerprint / stage, key, stage)

    def get_or_train(self, config: TrainConfig, stage: str, key: StageKey, *, init: str | os.PathLike | None,
                     device: str = "auto", progress: bool = True, log: Callable[[str], None] = print,
                     announce: bool = True, alone: bool = False) -> CachedStage:
        """The entry of ``key``, trained first (under the fingerprint's lock) when the cache has none;
        ``announce``: log a line when training starts; ``alone``: see :class:`srbench.train.loop.Trainer`."""
        found = self.lookup(key.fingerprint)
        if found is not None:
            return found
        with self.locked(key.fingerprint, log):
            found = self.lookup(key.fingerprint)  # trained by another process while we waited
            if found is not None:
                return found
            return self._train(config, stage, key, init=init, device=device, progress=progress,
                               log=log if announce else None, alone=alone)

    def _train(self, config: TrainConfig, stage: str, key: StageKey, *, init: str | os.PathLike | None,
               device: str, progress: bool, log: Callable[[str], None] | None, alone: bool) -> CachedStage:
        from srbench.images import atomic_write_text, file_sha256
        from srbench.train.loop import Trainer

        fp = key.fingerprint
        run_dir = self.root / ".partial" / fp
        stage_dir = run_dir / stage
        resume = _resumable(stage_dir, key, stage)
        if not resume and stage_dir.exists():
            _remove(stage_dir)  # unreadable, or written by another srbench: start afresh
        if log is not None:
            log(f"training {config.name} / {stage} ({config.preset}{', resuming' if resume else ''}; "
                f"cache {fp[:12]})")
        started = time.perf_counter()
        trainer = Trainer(config, stage, run_dir, init=None if init is None else str(init), device=device,
                          progress=progress, alone=alone)
        trainer.resume_how = "run the same command again to continue"
        # The run may have been started under another name, cadence or gan-only setting: same weights, so resumed.
        trainer.trains_the_same = lambda saved: _trains_the_same(saved, key, stage)
        result = trainer.run(resume=resume)
        seconds = round(time.perf_counter() - started, 3)
        for path in stage_dir.iterdir():  # resume states and periodic checkpoints: not part of an entry
            if path.name not in KEPT:
                _remove(path)
        record = {
            "format": CACHE_FORMAT, "fingerprint": fp, "inputs": key.inputs, "stage": stage,
            "trained_as": config.name, "config": config.to_dict(), "init": None if init is None else str(init),
            "iterations": result.iterations, "seconds": seconds, "g_final_sha256": file_sha256(stage_dir / FINAL),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(stage_dir / ENTRY_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
        target = self.entry_dir(fp)
        if target.exists():  # an entry that failed its check (lookup): set aside, then replaced
            _remove(target)
        try:
            os.rename(stage_dir, target)  # the commit: an entry is whole or absent
        except OSError as exc:
            raise OutputError.from_os_error(target, exc) from None
        _remove(run_dir)
        return CachedStage(fp, target, record, trained=True)


def _resumable(stage_dir: Path, key: StageKey, stage: str) -> bool:
    """A partial run of a configuration that trains what ``key`` trains (its name, cadence or settings the stage
    never reads may differ: they change no weight) to resume."""
    if not (stage_dir / "state.pt").is_file():
        return False
    try:
        saved = json.loads((stage_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and _trains_the_same(saved, key, stage)


def _trains_the_same(saved: dict, key: StageKey, stage: str) -> bool:
    from srbench.train.config import upgrade_saved_config

    try:
        saved = {k: v for k, v in upgrade_saved_config(saved).items() if k != "stage"}
        return config_inputs(saved, stage, key.inputs.get("pretrained")) == key.inputs["config"]
    except (KeyError, TypeError, AttributeError):  # written by another srbench: not resumed
        return False


def _remove(path: Path) -> None:
    """Remove a file or folder tree (a folder is first renamed aside, so it never looks half there)."""
    if path.is_dir() and not path.is_symlink():
        aside = path.with_name(f".removing-{path.name}-{os.getpid()}")
        try:
            os.rename(path, aside)
        except OSError:
            aside = path
        shutil.rmtree(aside, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def place(cached: CachedStage, dest: str | os.PathLike, *, config: TrainConfig, shared_with: list[str]) -> Path:
    """Put the entry's weights into the stage folder ``dest`` (a hard link, else a copy) with sidecars that
    describe ``config`` (this suite entry's own configuration) and name the cache entry; returns the final
    weights there. The weights are the entry's bytes: their sha256, the store's model key, is the entry's."""
    from srbench.checkpoints import sidecar_path
    from srbench.images import atomic_write_text
    from srbench.weightfiles import CheckpointError

    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.from_os_error(dest, exc) from None
    for name in (FINAL, FINAL_EMA):
        source = cached.folder / name
        if not source.is_file():
            continue
        _link_or_copy(source, dest / name)
        try:
            meta = json.loads(sidecar_path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{sidecar_path(source)}: cannot read the cache entry's sidecar ({exc})") from None
        meta.setdefault("extra", {})
        meta["extra"]["train_config"] = config.to_dict()
        meta["extra"]["training_cache"] = {"fingerprint": cached.fingerprint, "entry": str(cached.folder),
                                           "trained_as": cached.record.get("trained_as"),
                                           "shared_with": shared_with}
        atomic_write_text(sidecar_path(dest / name), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if (cached.folder / "log.csv").is_file():
        _link_or_copy(cached.folder / "log.csv", dest / "log.csv")
    atomic_write_text(dest / "config.json", json.dumps({"stage": cached.record.get("stage"), **config.to_dict()},
                                                       indent=2) + "\n")
    return dest / FINAL


def _link_or_copy(source: Path, target: Path) -> None:
    with contextlib.suppress(OSError):
        # Already the cache's file (a re-run): rename() of a link onto the same inode does nothing and would leave
        # the temporary link behind, one per re-run
        if os.path.samefile(source, target):
            return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError.from_os_error(target, exc) from None


def train_in_worker(root: str, config: TrainConfig, stage: str, key: StageKey, init: str | None, device: str,
                    threads: int) -> CachedStage:
    """:meth:`TrainingCache.get_or_train` in a worker process (``srbench ablate`` runs trainings side by side),
    on ``threads`` intra-op threads; without a progress bar (two would garble one terminal)."""
    import sys

    import torch

    from srbench.train.interrupts import training_task

    with training_task():
        torch.set_num_threads(threads)
        return TrainingCache(root).get_or_train(config, stage, key, init=init, device=device, progress=False,
                                                log=lambda msg: print(msg, file=sys.stderr, flush=True),
                                                announce=False)
