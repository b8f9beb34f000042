"""Two-stage ESRGAN training (PSNR-oriented, then GAN) for every variant of the ablation.

Determinism and exact resume: every training sample is a pure function of (seed, global sample index), so
the batches of iteration ``it`` never depend on what ran before; model, optimisers, schedulers and the EMA
are checkpointed together. Resuming therefore gives the weights an uninterrupted run gives (bitwise on CPU).

Multi-GPU/multi-node: run under ``torchrun`` (``torchrun --nproc_per_node N -m srbench train ...``); each rank
draws a disjoint slice of every iteration's sample indices (the role DistributedSampler plays for epoch-based
loops), gradients are averaged by DDP, and rank 0 writes every file.

The parts: ``data`` (patches, sampler, validation), ``stages`` (:class:`PsnrStage`, :class:`GanStage`: networks,
optimisers, one ``step``), ``ddp`` (process group, DDP wrapping, buffer sync, rank digests), ``logs`` (log.csv,
TensorBoard), ``lock`` (one trainer per run folder), ``loop`` (:class:`Trainer`: files, resume, the loop) and
``cache`` (finished stages by fingerprint, shared by every run and suite entry that needs them).
"""

from srbench.train.cache import TrainingCache, stage_key
from srbench.train.data import (
    IterationSampler,
    PatchDataset,
    load_hr_images,
    training_data,
    validation_l1,
    validation_pairs,
)
from srbench.train.ddp import Dist, init_distributed, state_digest, sync_buffers, write_rank_digests
from srbench.train.lock import LOCK_NAME, lock_run_folder
from srbench.train.logs import CsvLog, RunLog
from srbench.train.loop import (
    Trainer,
    TrainingInterrupted,
    TrainResult,
    deferred_sigint,
    recorded_iters,
    train,
)
from srbench.train.stages import STAGES, GanStage, NonFiniteLoss, PsnrStage, TrainingDiverged

__all__ = [
    "LOCK_NAME", "STAGES", "CsvLog", "Dist", "GanStage", "IterationSampler", "NonFiniteLoss", "PatchDataset",
    "PsnrStage", "RunLog", "TrainResult", "Trainer", "TrainingCache", "TrainingDiverged", "TrainingInterrupted",
    "deferred_sigint", "init_distributed", "load_hr_images", "lock_run_folder", "recorded_iters", "stage_key",
    "state_digest", "sync_buffers", "train", "training_data", "validation_l1", "validation_pairs",
    "write_rank_digests",
]
