"""What an ablation run reads and writes (:class:`Plan`) and what it makes (:class:`AblationReport`,
:class:`SharedStage`), shared by the training schedule and the run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srbench.ablate.suites import Suite

if TYPE_CHECKING:
    from srbench.options import EvalOptions


@dataclass
class AblationReport:
    """What ``srbench ablate`` made: the models, their results, the failures, where each stage came from. The
    run's inputs are not here: they are the :class:`Plan`'s."""

    suite: Suite
    preset: str
    datasets: list[str]
    results: list = field(default_factory=list)  # EvalResult
    models: dict[str, str | Path] = field(default_factory=dict)  # model name -> checkpoint or "bicubic"
    failures: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    training: list = field(default_factory=list)  # SharedStage: where each stage's checkpoint came from
    iterations: dict[str, tuple[int, int]] = field(default_factory=dict)  # entry -> (psnr, gan) iterations
    batches: dict[str, tuple[int, int]] = field(default_factory=dict)  # entry -> (HR patch size, batch size)
    training_sets: dict[str, str] = field(default_factory=dict)  # entry -> its data.train
    networks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # entry -> its losses' ImageNet networks


def find_checkpoint(folder: Path | None, variant: str, stage: str) -> Path | None:
    if folder is None:
        return None
    candidates = [folder / variant / stage / "g_final.safetensors"]
    candidates += [folder / f"{variant}-{stage}{ext}" for ext in (".safetensors", ".pth", ".pt")]
    return next((c for c in candidates if c.is_file()), None)


def fatal_errors() -> tuple[type[BaseException], ...]:
    """Errors of the machine, not of one variant: they stop the suite instead of failing every variant in turn."""
    from srbench.errors import OutputError, RunInUseError, StoreError
    from srbench.train import TrainingInterrupted

    return (TrainingInterrupted, OutputError, StoreError, RunInUseError)


@dataclass
class Plan:
    """Where one ablation run reads and writes, and what it evaluates its models on."""

    suite: Suite
    preset: str
    out_dir: Path
    runs_dir: Path
    ckpt_dir: Path | None
    device: str
    log: Callable[[str], None]
    evaluation: EvalOptions  # how each model is evaluated, under each of SUITE_PROTOCOLS in turn
    datasets: list[str] = field(default_factory=list)  # what each model is evaluated on
    opened: dict = field(default_factory=dict)  # model name -> opened source of the models the report shows
    cache_dir: Path | None = None  # the training cache (srbench.paths.training_cache_dir)
    jobs: int = 1  # trainings side by side
    where: Any = None  # srbench.work_split.Ranks: this process's place in a torchrun launch

    def existing(self, variant: str, stage: str) -> Path | None:
        """A checkpoint given with --checkpoints (used as it is, never trained)."""
        return find_checkpoint(self.ckpt_dir, variant, stage)

    def check_outputs(self) -> None:
        """Every output location is checked before the first training step: a read-only --out found after
        hours of training would waste them."""
        from srbench.images import ensure_writable_dir

        ensure_writable_dir(self.out_dir)
        if any(self.existing(v.name, stage) is None for v in self.suite.entries for stage in ("psnr", "gan")):
            ensure_writable_dir(self.runs_dir)
            if self.cache_dir is not None:
                ensure_writable_dir(self.cache_dir)
        if self.suite.interp_variant:
            ensure_writable_dir(self.out_dir / "interp" / self.preset)


@dataclass
class SharedStage:
    """One stage the report's models come from, and the suite entries that use it: entries whose stage
    configurations resolve to one fingerprint (srbench.train.cache) train it once and share its checkpoint."""

    stage: str
    entries: list[str]
    checkpoint: str  # the weights the entries use (the cache entry's, or the --checkpoints file)
    fingerprint: str | None = None  # None: a --checkpoints file, not trained here
    source: str = "trained"  # "trained" (now), "cache" (found in the training cache) or "checkpoints"
    seconds: float | None = None  # how long the training took (now or when the cache entry was made)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
