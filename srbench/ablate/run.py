"""``srbench ablate``: train or load every variant of a suite (:mod:`srbench.ablate.schedule`), evaluate all
models on every dataset under both protocols, as they become available, and write the report with its visual
comparison (:mod:`srbench.ablate.visual`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from srbench import paths
from srbench import work_split as distributed
from srbench.ablate.plan import AblationReport, Plan, fatal_errors
from srbench.ablate.schedule import default_jobs, train_suite
from srbench.ablate.suites import SUITE_PROTOCOLS, load_suite, resolve_suite_configs
from srbench.ablate.visual import shown_models, visual_comparison
from srbench.errors import BadInputError, SrbenchError
from srbench.suite_settings import protocol_metrics
from srbench.train.config import check_gan_batch, check_training_set
from srbench.work_split import Ranks


def _has_data_root(data_root: str | None) -> bool:
    return data_root is not None or bool(os.environ.get(paths.DATA_ENV))


def _refuse_unknown_sets(datasets: list[str], train_data: str | None, datasets_from: str = "--datasets") -> None:
    """A mistyped dataset or training set found before the training, not after it (a known set that is not
    downloaded is still that dataset's failure alone, reported with where to put it). ``datasets_from``: where the
    dataset names were written (the option, or the suite file's ``datasets``)."""
    from srbench.datasets import available_names, is_known_name
    from srbench.paths import is_dir, user_path

    for option, names in ((datasets_from, datasets), ("--train-data", [train_data] if train_data else [])):
        for name in names:
            if not is_known_name(name) and not is_dir(user_path(name, option)):
                raise BadInputError(f"{option}: {name!r} is neither a known dataset ({', '.join(available_names())}) "
                                    "nor a folder")


def _interpolate(plan: Plan, report: AblationReport) -> None:
    from srbench.checkpoints import alpha_label, generator_info, interpolate, load_generator, save_checkpoint
    from srbench.weights import sha256

    name = plan.suite.interp_variant
    psnr, gan = report.models.get(f"{name}-psnr"), report.models.get(f"{name}-gan")
    if not (psnr and gan):
        return
    info = generator_info(load_generator(gan))
    # An interpolation is reused only when made from these very weights: a retrained stage, or other
    # --checkpoints, into the same --out would otherwise keep the former networks under the new names.
    inputs = {"psnr_sha256": sha256(psnr), "gan_sha256": sha256(gan)}
    for alpha in plan.suite.alphas:
        path = plan.out_dir / "interp" / plan.preset / f"{name}-{alpha_label(alpha)}.safetensors"
        if not _made_from(path, inputs):
            save_checkpoint(interpolate(psnr, gan, alpha), path, arch=info["arch"], config=info["config"],
                            variant=info["variant"], stage="interp",
                            extra={"alpha": alpha, "psnr": str(psnr), "gan": str(gan), **inputs})
        report.models[f"{name}-interp-{alpha_label(alpha)}"] = path


def _made_from(path: Path, inputs: dict[str, str]) -> bool:
    """Whether the interpolated checkpoint at ``path`` exists and was made from the weights ``inputs`` names."""
    from srbench.checkpoints import read_metadata

    if not path.is_file():
        return False
    try:
        extra = (read_metadata(path) or {}).get("extra") or {}
    except SrbenchError:
        return False  # an unreadable sidecar: made again
    return all(extra.get(k) == v for k, v in inputs.items())


def _evaluate_model(plan: Plan, report: AblationReport, store, model_name: str, source) -> None:
    """Every dataset under both protocols, with the model opened once."""
    from srbench.evaluation import evaluate_model
    from srbench.sources import open_source

    metrics = protocol_metrics(plan.suite.settings.metrics, SUITE_PROTOCOLS)
    try:
        opened = open_source(str(source), device=plan.evaluation.device, weights_dir=plan.evaluation.weights_dir)
    except fatal_errors():
        raise
    except SrbenchError as exc:
        report.failures.append(f"{model_name}: {exc}")
        plan.log(f"FAILED {model_name}: {exc}")
        return
    # Only the models the visual comparison shows stay open: a network each would hold every generator in memory.
    plan.opened.update(shown_models({model_name: opened}))
    for dataset in plan.datasets:
        for protocol in SUITE_PROTOCOLS:
            try:
                options = plan.evaluation.under(protocol, metrics[protocol])
                for result in evaluate_model(opened, [dataset], options, store=store,
                                             suite=plan.suite.name, name=model_name):
                    report.results.append(result)
                    cached = result.provenance["cached_images"]
                    plan.log(f"evaluated {model_name} on {dataset} ({protocol}): {result.n_images} images"
                             f"{f', {cached} from the store' if cached else ''}")
                    report.failures += [f"{model_name} / {dataset}: {bad['error']}" for bad in result.skipped]
            except fatal_errors():
                raise
            except SrbenchError as exc:
                report.failures.append(f"{model_name} / {dataset} / {protocol}: {exc}")
                plan.log(f"FAILED {model_name} on {dataset} ({protocol}): {exc}")


def _each_failing_alone(report: AblationReport, what: str, step: Callable[[], None],
                        log: Callable[[str], None]) -> None:
    """Run ``step``; a failure of its own is recorded and the suite goes on, a fatal one stops the suite."""
    try:
        step()
    except fatal_errors():
        raise
    except SrbenchError as exc:
        report.failures.append(f"{what}: {exc}")
        log(f"FAILED {what}: {exc}")


def ablate(
    suite_name: str,
    *,
    preset: str | None = None,
    datasets: list[str] | None = None,
    checkpoints: str | None = None,
    store_path: str | None = None,
    out: str | None = None,
    data_root: str | None = None,
    weights_dir: str | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
    training_cache: str | None = None,
    jobs: int | None = None,
    workers: int | None = None,
    train_data: str | None = None,
) -> AblationReport:
    """Run a suite end to end; see the module docstring. Failures of one variant do not stop the others.

    ``training_cache``: the training cache folder (default: srbench.paths.training_cache_dir, beside the store);
    ``jobs``: trainings side by side (default: :func:`default_jobs`); ``workers``: metric workers of each
    evaluation (default: srbench.evaluation's); ``train_data``: every variant's training set (a named set or
    folder; the ``short`` and ``paper`` presets need one unless ``checkpoints`` gives every stage)."""
    from srbench.options import EvalOptions  # the metrics' registry, only when a suite runs
    from srbench.report import suite_report_is_current, write_suite_report
    from srbench.store import Store

    suite = load_suite(suite_name)
    no_data = not _has_data_root(data_root)
    preset = preset or ("smoke" if no_data else "paper")
    # A bad variant fails now, not after the others trained; named training sets are looked for where the data is.
    configs = resolve_suite_configs(suite, preset, train_data=train_data, data_root=data_root)
    from_suite = not datasets and not no_data
    datasets = list(datasets or (["skimage"] if no_data else suite.datasets))
    _refuse_unknown_sets(datasets, train_data, f"{suite.where}: datasets" if from_suite else "--datasets")
    out_dir = Path(out).expanduser() if out else paths.reports_dir() / suite.name
    if jobs is not None and jobs < 1:
        raise BadInputError(f"--jobs {jobs}: allowed: 1 or more")
    where = distributed.ranks()
    if where.active:
        jobs = 1  # one training at a time per torchrun process: the ranks are the trainings side by side
        log = _rank_log(log, where)
    # Checked now, not after the training: a bad --workers or device.
    evaluation = EvalOptions.build(data_root=data_root, weights_dir=weights_dir, device=device, workers=workers,
                                   skip_unavailable=True)
    plan = Plan(suite, preset, out_dir, out_dir / "runs" / preset,
                Path(checkpoints).expanduser() if checkpoints else None, device, log, evaluation, datasets,
                cache_dir=paths.training_cache_dir(training_cache, store_path), jobs=jobs or default_jobs(device),
                where=where)
    report = AblationReport(suite, preset, datasets, out_dir=out_dir,
                            iterations={name: (c.stage("psnr").iters, c.stage("gan").iters)
                                        for name, c in configs.items()},
                            batches={name: (c.data.patch_size, c.data.batch_size) for name, c in configs.items()},
                            training_sets={name: c.data.train for name, c in configs.items()},
                            networks={name: c.loss.pretrained_networks() for name, c in configs.items()})
    for name, config in configs.items():
        if any(plan.existing(name, stage) is None for stage in ("psnr", "gan")):  # it trains a stage
            check_training_set(config)
        if plan.existing(name, "gan") is None:
            try:
                check_gan_batch(config)
            except BadInputError as exc:  # found before any stage trains, not after the psnr stage
                raise BadInputError(f"{suite.where}: variant {name}: {exc}") from None
    plan.check_outputs()
    assert plan.cache_dir is not None
    _check_shared(plan.cache_dir, where)
    # Opened (and checked) before any training too; under torchrun rank 0 alone holds it.
    store = Store(store_path) if where.is_main else None
    try:
        log(f"suite {suite.name}: {len(suite.entries)} variants, preset {preset}, datasets {', '.join(datasets)}")
        report.models.update({baseline: baseline for baseline in suite.baselines})
        evaluations = _Evaluations(plan, report, store)
        # Under torchrun every rank evaluates each model in step with the others (collectives): none meanwhile.
        train_suite(plan, report, configs, None if where.active else evaluations.next)
        evaluations.interpolate()
        while evaluations.next():
            pass
        # In the models' order, whatever order they were evaluated in (trainings end in any order).
        report.results = [r for model_name in report.models for r in evaluations.done.get(model_name, [])]
    finally:
        if store is not None:
            store.close()
    if where.is_main:
        # The crops are made only when the report is (re)written: a cached re-run whose numbers did not change
        # leaves it as it is.
        # In the report's (suite) order: plan.opened is in the order the models were evaluated, as trainings ended.
        shown = {name: plan.opened[name] for name in report.models if name in plan.opened}
        visual = None if suite_report_is_current(report) else visual_comparison(
            shown, datasets[0], evaluation.data_root, weights_dir=evaluation.weights_dir)
        write_suite_report(report, visual)
    return report


class _Evaluations:
    """The suite's models evaluated one at a time, as they become available (while trainings run)."""

    def __init__(self, plan: Plan, report: AblationReport, store) -> None:
        self.plan, self.report, self.store = plan, report, store
        self.done: dict[str, list] = {}  # model name -> its results
        self.interpolated = False

    def interpolate(self) -> None:
        if self.plan.suite.interp_variant and not self.interpolated:
            self.interpolated = True
            _interpolate_in_turn(self.plan, self.report)

    def next(self) -> bool:
        """Evaluate one model not evaluated yet (False when there is none). The interpolated models are made as soon
        as both stages of their variant are there, so they are evaluated while the other trainings run."""
        variant = self.plan.suite.interp_variant
        if variant and all(f"{variant}-{stage}" in self.report.models for stage in ("psnr", "gan")):
            self.interpolate()
        for model_name, source in list(self.report.models.items()):
            if model_name not in self.done:
                self.report.results, self.done[model_name] = [], []
                try:
                    _evaluate_model(self.plan, self.report, self.store, model_name, source)
                finally:
                    self.done[model_name] = self.report.results
                return True
        return False


def _interpolate_in_turn(plan: Plan, report: AblationReport) -> None:
    """The interpolated checkpoints, written by rank 0 first; under torchrun a rank of another machine then
    writes its own copy (the files are a pure function of the two checkpoints)."""
    where = plan.where or Ranks()
    for turn in ("main", "others"):
        if (turn == "main") == where.is_main:
            _each_failing_alone(report, "interpolation", lambda: _interpolate(plan, report), plan.log)
        distributed.barrier(where)


def _rank_log(log: Callable[[str], None], where: Ranks) -> Callable[[str], None]:
    """Rank 0 logs the suite; the other ranks only the trainings they run, labelled with their rank."""
    if where.is_main:
        return log
    return lambda msg: log(f"[rank {where.rank}] {msg}") if msg.startswith("training ") else None


def _check_shared(cache_dir: Path, where: Ranks) -> None:
    """Under torchrun, each rank trains its share of the stages into the training cache and every rank reads them
    all: the folder must be one that every rank sees (one machine's disk, or a file system shared by the nodes)."""
    if not where.active:
        return
    import secrets

    from srbench.images import atomic_write_text

    token = secrets.token_hex(8) if where.is_main else None
    probe = cache_dir / f".torchrun-{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}"
    if where.is_main:
        atomic_write_text(probe, str(token))
    token = distributed.broadcast_from_main(token, where)
    seen = probe.read_text() if probe.is_file() else None
    ok = distributed.all_gather(seen == token, where)
    distributed.barrier(where)
    if where.is_main:
        probe.unlink(missing_ok=True)
    if not all(ok):
        raise BadInputError(f"the training cache {cache_dir} is not shared by every torchrun rank (rank(s) "
                            f"{[r for r, good in enumerate(ok) if not good]} do not see rank 0's files): give "
                            "--training-cache a folder on a file system every node mounts")
