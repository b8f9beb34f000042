"""Suites and ``srbench ablate``: train or load every variant of a suite, evaluate all models on every
dataset under both protocols, and write the report.

Nothing finished is ever lost or redone: a trained stage is kept in the training cache (srbench.train.cache) under
its fingerprint (what determines its weights), so entries whose stage configurations are equal train it once and
share it (the report's training.json, table and page say which), and a re-run, into any --out, trains nothing; an
interrupted training resumes from its last checkpoint; evaluation values are cached per image in the results store
(keyed by the checkpoint's sha256: a shared checkpoint is evaluated once), and a re-run of a finished suite only
reads the store. Independent trainings run side by side (``jobs``), and models are evaluated while the last
trainings run.

The package, bottom up: :mod:`~srbench.ablate.suites` (the suite format, beside the shipped suite files),
:mod:`~srbench.ablate.plan` (a run's inputs and its report), :mod:`~srbench.ablate.visual` (the report's crops),
:mod:`~srbench.ablate.schedule` (the trainings) and :mod:`~srbench.ablate.run` (:func:`ablate` itself).
"""

from srbench.ablate.plan import AblationReport, SharedStage
from srbench.ablate.run import ablate
from srbench.ablate.schedule import default_jobs
from srbench.ablate.suites import (
    SUITE_PROTOCOLS,
    Suite,
    SuiteEntry,
    load_suite,
    parse_suite,
    resolve_suite_configs,
    shipped_suites,
)
from srbench.ablate.visual import CROP_H, CROP_W, Crop, VisualComparison, shown_models, visual_comparison

__all__ = ["CROP_H", "CROP_W", "SUITE_PROTOCOLS", "AblationReport", "Crop", "SharedStage", "Suite", "SuiteEntry",
           "VisualComparison", "ablate", "default_jobs", "load_suite", "parse_suite", "resolve_suite_configs",
           "shipped_suites", "shown_models", "visual_comparison"]
