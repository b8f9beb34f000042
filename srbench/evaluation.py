"""Evaluate an SR source (bicubic, a folder of SR images, a generator) on datasets under a protocol.

Bad images never stop the run: each is reported with the file and the problem, the rest is evaluated.
Metrics whose downloaded weights are missing fail before any work, unless the caller asks to report them
as unavailable instead. An evaluation is three steps: plan (what the store already holds), the per-image
loop (SR images made while the metrics of the previous ones run in ``workers`` worker processes, see
:mod:`srbench.workers`, or in one thread with ``workers == 1``), and the summary.

Dataset-level metrics (``Metric.level == "dataset"``, e.g. FID) are made by an accumulator fed every
evaluated image's planes in dataset order; their value is stored once per (model, dataset, protocol, scale)
under the store's reserved image key and reported in the summary only, never as a per-image value. When it is
not stored yet, every image is produced again (per-image values already stored are still reused).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from srbench import datasets as D
from srbench import provenance as P
from srbench import weights as Wt
from srbench import work_split as Dist
from srbench import workers as W
from srbench.errors import BadInputError, SrbenchError, WeightsUnavailableError
from srbench.images import atomic_write_text, get_max_pixels
from srbench.jsonnum import dumps as json_dumps
from srbench.jsonnum import json_number
from srbench.metrics.registry import PerImage
from srbench.options import EvalOptions
from srbench.protocols import Protocol
from srbench.sources import BicubicSource, FolderPairing, FolderSource, GeneratorSource, SRSource, open_source
from srbench.store import DATASET_IMAGE, Store

Progress = Callable[[str, int, int], None]
T = TypeVar("T")


@dataclass
class EvalResult:
    model: str
    dataset: str
    protocol: str
    scale: int
    metrics: list[str]
    summary: dict[str, float | None]
    per_image: list[dict]
    skipped: list[dict] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.per_image)

    def to_dict(self) -> dict:
        row: dict = {
            "model": self.model,
            "dataset": self.dataset,
            "n_images": self.n_images,
            "protocol": self.protocol,
            "scale": self.scale,
        }
        for name in self.metrics:
            row[name] = json_number(self.summary.get(name))
        for name in [k for k in self.summary if k not in self.metrics]:  # a dataset-level metric's extra outputs
            row[name] = json_number(self.summary[name])
        row["n_skipped"] = len(self.skipped)
        row["skipped"] = self.skipped
        row["unavailable"] = self.unavailable
        row["warnings"] = self.warnings
        row["provenance"] = self.provenance
        return row

    def per_image_frame(self):
        import pandas as pd

        return pd.DataFrame(self.per_image)


def check_weights(
    protocol: Protocol, names: Sequence[str], weights_dir: str | None, *, raise_missing: bool = False
) -> dict[str, str]:
    """Metrics whose downloaded file is missing, or present and not the file it should be (read here, once, by
    the metric's ``load_weights``) -> the message saying where to put it or what is wrong with it.

    With ``raise_missing`` the first such file raises its :class:`WeightsUnavailableError` or
    :class:`BadInputError` instead.
    """
    missing: dict[str, str] = {}
    for name in names:
        metric = protocol.metric(name)
        try:
            metric.weight_paths(weights_dir)
            if metric.load_weights is not None:
                metric.load_weights(weights_dir)
        except (WeightsUnavailableError, BadInputError) as exc:  # absent, or present and not the file it should be
            if raise_missing:
                raise
            missing[name] = str(exc)
    for name in names:
        if any(r in missing for r in protocol.metric(name).requires) and name not in missing:
            # the requirement's own reason too: "needs ma" alone sends a reader looking for why ma is missing
            missing[name] = "; ".join(f"needs {r}: {missing[r]}" for r in protocol.metric(name).requires
                                      if r in missing)
    return missing


@dataclass
class _Plan:
    """What one evaluation computes: the metrics, those whose weights are missing, the weights files of the others,
    the stored values reused."""

    proto: Protocol
    names: list[str]
    missing: dict[str, str]
    computable: list[str]
    versions: dict[str, str]  # stored versions: implementation, and the sha256 of the weights files read
    dataset_key: str
    cached: dict[str, dict]  # image -> stored per-image values
    dataset_cached: dict[str, float] = field(default_factory=dict)  # stored dataset-level outputs
    weights: dict[str, list[Wt.WeightsFile]] = field(default_factory=dict)  # metric -> its checked weights files
    replace: bool = False  # values computed again because the stored ones were made in another environment

    def _level(self, dataset: bool) -> list[str]:
        return [n for n in self.computable if self.proto.metric(n).is_dataset_level == dataset]

    @property
    def image_metrics(self) -> list[str]:
        return self._level(False)

    @property
    def dataset_metrics(self) -> list[str]:
        return self._level(True)

    @property
    def dataset_needed(self) -> list[str]:
        """Dataset-level metrics whose value the store does not hold yet."""
        return [n for n in self.dataset_metrics
                if not all(k in self.dataset_cached for k in self.proto.metric(n).outputs)]

    def still_needed(self, have: dict) -> list[str]:
        need = [n for n in self.image_metrics if not all(k in have for k in self.proto.metric(n).outputs)]
        return self.proto.resolve_metrics(need) if need else []  # derived metrics bring what they are made of


def _plan(source: SRSource, dataset: D.Dataset, options: EvalOptions, store: Store | None) -> _Plan:
    proto, names = options.protocol, list(options.metrics)
    missing = check_weights(proto, names, options.weights_dir, raise_missing=not options.skip_unavailable)
    computable = [n for n in names if n not in missing]
    weights = Wt.check_metrics(proto, computable, options.weights_dir)  # before any work: another file is refused
    versions = proto.output_versions(computable, Wt.tags(weights))
    dataset_key = dataset.fingerprint()
    made_in = P.environment() if options.same_environment else None
    cached = store.cached(source.key, dataset_key, proto.name, options.scale, versions, made_in) if store else {}
    dataset_cached = cached.pop(DATASET_IMAGE, {})
    return _Plan(proto, names, missing, computable, versions, dataset_key, cached, dataset_cached, weights,
                 replace=options.same_environment)


@dataclass
class _Tally:
    """What the per-image loop found, image by image."""

    values: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    lr_sources: Counter = field(default_factory=Counter)
    read_notes: list[str] = field(default_factory=list)
    cropped: int = 0
    from_cache: int = 0
    dataset_values: dict[str, float] = field(default_factory=dict)  # dataset-level outputs computed now


def _measure(proto: Protocol, sr, hr, scale: int, need: list[str], dataset_names: list[str],
             options: dict, after: Future | None = None,
             order: list[str] | None = None) -> tuple[dict[str, float], dict[str, object]]:
    """Per-image values of ``need``, and what each dataset-level metric's accumulator prepares from this
    image (run in a thread of the calling process).

    With ``order`` (the image's metrics with worker processes), ``need`` are the metrics computed here, after
    the values of the others arrived from a worker (``after``'s result, which derived metrics may read).
    """
    from srbench.protocols import Planes, check_pair, quantize

    if order is None:
        values = proto.per_image(sr, hr, scale, need, options) if need else {}
    else:
        values = dict(after.result()) if after is not None else {}
    planes = None
    if (order is not None and need) or dataset_names:
        # The protocol's own planes (quantised SR, Y/RGB, shave), exactly as its per-image metrics see them.
        sr = quantize(sr)
        check_pair(sr, hr)
        planes = Planes(sr, hr, scale if proto.border is None else proto.border, proto.rounded_luma)
    if order is not None:
        for name in need:  # as Protocol.per_image does, on top of the worker's values
            assert planes is not None
            m = proto.metric(name)
            image = PerImage(planes.get(m.plane, "sr"), planes.get(m.plane, "hr") if m.needs_reference else None,
                             values, options.get("weights_dir"))
            values.update(m.run(image))
        values = _in_order(proto, order, values)
    prepared: dict[str, object] = {}
    if dataset_names:
        assert planes is not None
        for name in dataset_names:
            m = proto.metric(name)
            assert m.accumulator is not None
            image = PerImage(planes.get(m.plane, "sr"), planes.get(m.plane, "hr") if m.needs_reference else None,
                             values, options.get("weights_dir"))
            prepared[name] = m.accumulator.prepared(image)
    return values, prepared


def _in_order(proto: Protocol, order: list[str], values: dict[str, float]) -> dict[str, float]:
    """``values`` with its keys in ``order``'s metrics' order, each metric's in its declared outputs' order (the
    headline value first): one order whether computed here, in a worker or read from a store."""
    owner = {k: (i, j) for i, n in enumerate(order) for j, k in enumerate(proto.metric(n).outputs)}
    return dict(sorted(values.items(), key=lambda kv: owner.get(kv[0], (len(order), 0))))


@dataclass
class _InFlight:
    """One image whose metrics are being computed."""

    index: int  # its place in the dataset
    item: D.Item
    have: dict  # values the store already held
    pair_info: tuple[list[str], str | None, bool]  # (read notes, LR source, cropped) of the pair read
    future: Future  # -> (values, prepared), or the worker's values alone when ``order`` is set and no thread ran
    remote: Future | None = None  # the worker's part, when there is one
    order: list[str] | None = None  # the image's metrics, with worker processes
    early: dict = field(default_factory=dict)  # values computed on the generator's device (torch forms)
    need: list[str] = field(default_factory=list)  # every metric of the image (the order of its values)
    produced: bool = False  # a worker read the pair and made the SR image too (``future`` -> W.produce's result)


@dataclass
class _Outcome:
    """What one image gave. Outcomes are applied (tally, store, accumulators) in dataset order, whichever process
    computed them: the calling process, or under torchrun any rank (rank 0 applies everyone's)."""

    index: int
    item: D.Item
    have: dict
    from_cache: bool = False
    error: str | None = None  # skipped as bad input
    notes: list[str] = field(default_factory=list)
    lr_source: str | None = None  # None: the pair was not read (cached, or a bad file)
    cropped: bool = False
    new: dict = field(default_factory=dict)
    prepared: dict = field(default_factory=dict)


class _ImageLoop:
    """SR images are made one by one while the metrics of earlier ones run in ``workers`` worker processes
    (:mod:`srbench.workers`), or in one thread of this process when that is all there is to it.

    Under ``torchrun`` (``where.active``) each rank takes every ``world``-th image of each round of images, and
    rank 0 gathers the outcomes and applies them in dataset order (it alone holds the store), round by round, so
    an interruption loses at most one round."""

    def __init__(self, source: SRSource, dataset: D.Dataset, plan: _Plan, store: Store | None, suite: str | None,
                 options: EvalOptions, where: Dist.Ranks | None = None) -> None:
        self.source, self.dataset, self.scale, self.plan = source, dataset, options.scale, plan
        on_gpu = isinstance(source, GeneratorSource) and source.runner.device.type == "cuda"
        self.torch_metrics = isinstance(source, GeneratorSource) and (on_gpu if options.torch_metrics is None
                                                                      else options.torch_metrics)
        self.store, self.suite, self.workers = store, suite, W.resolve_workers(options.workers)
        self.where = where or Dist.Ranks()
        self.metric_options = {"weights_dir": options.weights_dir}
        self.tally = _Tally(skipped=[{"image": r.name, "file": str(r.path), "error": r.error}
                                     for r in dataset.rejected])
        self.run_id: int | None = None
        self.dataset_needed = plan.dataset_needed
        self.states: dict[str, object] = {}
        for name in self.dataset_needed:
            accumulator = plan.proto.metric(name).accumulator
            assert accumulator is not None
            self.states[name] = accumulator.start()
        self.dataset_images = 0  # images fed to the accumulators
        self.processes: ProcessPoolExecutor | None = None
        self.env: dict[str, str | None] = {}

    def _use_processes(self) -> bool:
        """Worker processes only for a job worth them: several images to compute, a metric they can run."""
        if self.workers < 2:
            return False
        todo = [it for it in self.where.share(self.dataset.items)
                if self.dataset_needed or self.plan.still_needed(self.plan.cached.get(it.name, {}))]
        if len(todo) < 2:
            return False
        remote, _ = W.split_metrics(self.plan.proto, self.plan.proto.resolve_metrics(self.plan.image_metrics)
                                    if self.plan.image_metrics else [])
        return bool(remote)

    def run(self, progress: Progress | None) -> _Tally:
        label, total = f"{self.source.name} / {self.dataset.name}", len(self.dataset.items)
        if self._use_processes():
            self.processes = W.POOL.get(self.workers)
            self.env = W.environment()
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srbench-metrics")
        try:
            with W.one_blas_thread():  # the metrics computed in this process, as in the workers
                if self.where.active:
                    self._rounds(thread, progress, label, total)
                else:
                    self._images(thread, list(enumerate(self.dataset.items)), self._apply, progress, label, total)
            if self.where.is_main:
                self._finish_dataset_metrics()
                if self.tally.from_cache or self.plan.dataset_cached:
                    # Every evaluation is a run, one served from the store too: the weights it reused are then
                    # the newest used, and shown (Store.values) rather than those of a run in between.
                    self._start_run()
        finally:  # the run is closed even when something unexpected stops it
            thread.shutdown(wait=True, cancel_futures=True)
            if self.store is not None and self.run_id is not None:  # run_id is set only with a store
                self.store.finish_run(self.run_id)
        if progress:
            progress(label, total, total)
        return self.tally

    def _rounds(self, thread: ThreadPoolExecutor, progress: Progress | None, label: str, total: int) -> None:
        """torchrun: rounds of ``world x (2 workers + 2)`` images; in each, this rank's share is computed, then rank
        0 applies every rank's outcomes in dataset order."""
        indexed = list(enumerate(self.dataset.items))
        # Rank 0's worker count for every rank: nodes of other core counts resolve other defaults, and rounds of
        # other sizes would pair one rank's gather with another's next round (the launch hung)
        size = self.where.world * (2 * Dist.broadcast_from_main(self.workers, self.where) + 2)
        for start in range(0, len(indexed), size):
            mine: list[_Outcome] = []
            self._images(thread, self.where.share(indexed[start:start + size]), mine.append, None, label, total)
            everyone = Dist.gather_to_main(mine, self.where)
            if everyone is not None:
                for outcome in sorted((o for part in everyone for o in part), key=lambda o: o.index):
                    if progress:
                        progress(label, outcome.index, total)
                    self._apply(outcome)

    def _images(self, thread: ThreadPoolExecutor, items: list[tuple[int, D.Item]],
                apply: Callable[[_Outcome], None], progress: Progress | None, label: str, total: int) -> None:
        """``items`` in order: produced, handed to the metrics, their outcomes given to ``apply`` in the same
        order."""
        pending: deque[_InFlight | _Outcome] = deque()
        item: D.Item | None = None
        try:
            for index, item in items:
                if progress:
                    progress(label, index, total)
                pending.append(self._submit(thread, index, item))
                while len(pending) > 2 * self.workers:  # bound the SR images held in memory
                    apply(self._collect(pending.popleft()))
            while pending:
                apply(self._collect(pending.popleft()))
        except BaseException as exc:
            self._abandon(pending, exc)
            if isinstance(exc, BrokenExecutor):  # found when handing an image over
                first = next((p.item for p in pending), item)
                assert first is not None
                raise self._crashed(first) from None
            raise

    def _abandon(self, pending: deque[_InFlight | _Outcome], exc: BaseException) -> None:
        """After a failure: nothing queued runs; on Ctrl-C (or a broken pool) the workers are stopped."""
        terminate = self.processes is not None and isinstance(exc, KeyboardInterrupt | SystemExit | BrokenExecutor)
        for left in pending:
            if isinstance(left, _InFlight):
                # A worker's future is left to the killed pool, which fails it: cancelled, and then failed by the
                # pool's manager thread, it printed an InvalidStateError traceback over the 'interrupted' line
                if not (terminate and left.future is left.remote):
                    left.future.cancel()
                if left.remote is not None and not terminate:
                    left.remote.cancel()
        if terminate:
            assert self.processes is not None
            W.POOL.discard(self.processes, terminate=True)  # a running NIQE must not go on after Ctrl-C

    def _submit(self, thread: ThreadPoolExecutor, index: int, item: D.Item) -> _InFlight | _Outcome:
        have = self.plan.cached.get(item.name, {})
        need = self.plan.still_needed(have)
        if not need and not self.dataset_needed:
            return _Outcome(index, item, have, from_cache=True)
        if self.processes is not None and self._whole_in_worker(need):
            whole = self.processes.submit(W.produce, self.plan.proto.name, item, self._sr_recipe(item), self.scale,
                                          need, self.metric_options, self.env, get_max_pixels())
            # no pair read here (None, as for a bad file): the worker's read comes back with its values
            return _InFlight(index, item, have, ([], None, False), whole, whole, need, produced=True)
        try:
            pair = self.dataset.load_pair(item, self.scale)
            done, early, sr = self._on_device(pair, item, need)
            if not done:
                sr = self.source.predict(pair, item, self.scale)
        except BadInputError as exc:
            return _Outcome(index, item, have, error=str(exc))
        info = ([*pair.notes, *self.source.take_notes(item.name)], pair.lr_source, pair.cropped_from is not None)
        proto = self.plan.proto
        full, need = need, [n for n in need if n not in done]
        if done and not need and not self.dataset_needed:  # every metric was computed on the device
            notes, lr_source, cropped = info
            return _Outcome(index, item, have, notes=notes, lr_source=lr_source, cropped=cropped,
                            new=_in_order(proto, full, early))
        assert sr is not None  # made on the host, or brought there for the metrics left
        if self.processes is None:
            return _InFlight(index, item, have, info, thread.submit(_measure, proto, sr, pair.hr, self.scale, need,
                                                                    self.dataset_needed, self.metric_options),
                             early=early, need=full)
        from srbench.protocols import quantize

        remote, local = W.split_metrics(proto, need)
        future = None
        if remote:  # the SR image as every protocol first makes it: uint8 (8x smaller than a float output)
            future = self.processes.submit(W.compute, proto.name, quantize(sr), pair.hr, self.scale, remote,
                                           self.metric_options, self.env)
        if local or self.dataset_needed or future is None:
            return _InFlight(index, item, have, info,
                             thread.submit(_measure, proto, sr, pair.hr, self.scale, local, self.dataset_needed,
                                           self.metric_options, future, need), future, need, early, full)
        return _InFlight(index, item, have, info, future, future, need, early, full)

    def _whole_in_worker(self, need: list[str]) -> bool:
        """Whether a worker makes the image too: a bicubic or folder source (a generator stays where its device
        is), every metric of the image a worker's, no dataset-level accumulator to feed with its planes."""
        return (isinstance(self.source, BicubicSource | FolderSource) and not self.dataset_needed
                and not W.split_metrics(self.plan.proto, need)[1])

    def _sr_recipe(self, item: D.Item) -> tuple[str, str]:
        """How a worker makes ``item``'s SR image: ("bicubic", ""), ("file", the folder's file), or ("error", why no
        file stands for it: raised after the pair was read, as :meth:`FolderSource.predict` would)."""
        if not isinstance(self.source, FolderSource):
            return "bicubic", ""
        try:
            return "file", str(self.source.match(item, self.scale))
        except BadInputError as exc:
            return "error", str(exc)

    def _on_device(self, pair: D.Pair, item: D.Item, need: list[str]) -> tuple[list[str], dict, np.ndarray | None]:
        """With metrics on the generator's device (``torch_metrics``; by default when it is a GPU): the SR image is
        made there and the metrics with a torch form (PSNR, SSIM, RMSE, LPIPS) computed on it before it leaves,
        as the CPU reference computes them (``srbench.metrics.torch_forms``); the host gets its uint8 copy only
        for the other metrics. -> (the metrics computed, their values, the host SR image or None when not made
        here)."""
        proto = self.plan.proto
        names = [n for n in need if proto.metric(n).torch_compute is not None]
        if not (self.torch_metrics and names):
            return [], {}, None
        assert isinstance(self.source, GeneratorSource)
        raw = self.source.predict_on_device(pair, item, self.scale)
        if raw is None:  # grey or RGBA: made on the host
            return [], {}, None
        from srbench.metrics import torch_forms as T

        planes = T.TorchPlanes(raw, T.as_images(pair.hr), self.scale if proto.border is None else proto.border,
                               proto.rounded_luma, unit=True)
        (values,) = T.per_image(proto, planes, names, self.metric_options["weights_dir"])
        rest = len(names) < len(need) or bool(self.dataset_needed)
        return names, values, (T.to_host(planes.image("sr"))[0] if rest else None)

    def _collect(self, flight: _InFlight | _Outcome) -> _Outcome:
        if isinstance(flight, _Outcome):
            return flight
        notes, lr_source, cropped = flight.pair_info
        outcome = _Outcome(flight.index, flight.item, flight.have, notes=notes, lr_source=lr_source, cropped=cropped)
        try:
            result = flight.future.result()
        except BadInputError as exc:
            outcome.error = f"{flight.item.hr_path}: {exc}"
            return outcome
        except BrokenExecutor:
            if self.processes is not None:
                W.POOL.discard(self.processes, terminate=True)
            raise self._crashed(flight.item) from None
        if flight.produced:  # the worker read the pair and made the SR image: what it read comes back with it
            info, result, outcome.error = result
            if info is not None:
                outcome.notes, outcome.lr_source, outcome.cropped = info
            if outcome.error is not None:
                return outcome
        if flight.future is flight.remote:  # the worker's values are all there is
            assert flight.order is not None
            outcome.new = _in_order(self.plan.proto, flight.order, result)
        else:
            outcome.new, outcome.prepared = result
        if flight.early:  # the device's values, in the order the protocol gives every value of the image
            outcome.new = _in_order(self.plan.proto, flight.need, {**outcome.new, **flight.early})
        return outcome

    def _apply(self, outcome: _Outcome) -> None:
        """One image's outcome into the tally, the store and the dataset-level accumulators (in dataset order)."""
        item, have = outcome.item, outcome.have
        order = self.plan.proto.resolve_metrics(self.plan.image_metrics) if self.plan.image_metrics else []
        if outcome.from_cache:
            # the protocol's order, as a computed image's values come: a store gives its own (a resumed run's
            # per-image CSV had other columns than an uninterrupted one's)
            self.tally.values[item.name] = _in_order(self.plan.proto, order, have)
            self.tally.from_cache += 1
            # Provenance stays the same whether values were computed now or read from the store.
            self.tally.lr_sources["file" if self.scale in item.lr_paths else "imresize"] += 1
            self.tally.cropped += P.needs_modcrop(item.hr_path, self.scale)
            return
        self._start_run()
        if outcome.lr_source is not None:
            self.tally.cropped += outcome.cropped
            self.tally.read_notes += outcome.notes
            self.tally.lr_sources[outcome.lr_source] += 1
        if outcome.error is not None:
            self.tally.skipped.append({"image": item.name, "file": str(item.hr_path), "error": outcome.error})
            return
        new = _in_order(self.plan.proto, order, outcome.new)
        if self.store is not None and new:
            self.store.put(self.source.key, self.plan.dataset_key, self.plan.proto.name, self.scale, item.name,
                           new, self.plan.versions, self.run_id, replace=self.plan.replace)
        for name, item_input in outcome.prepared.items():
            accumulator = self.plan.proto.metric(name).accumulator
            assert accumulator is not None
            accumulator.add(self.states[name], item_input)
        self.dataset_images += bool(outcome.prepared)
        self.tally.values[item.name] = _in_order(self.plan.proto, order, {**have, **new})

    def _start_run(self) -> None:
        if self.store is not None and self.run_id is None:
            fields = P.run_fields(self.source, self.dataset, self.plan.dataset_key, self.plan.proto.name, self.scale,
                                  self.suite)
            fields["config"]["weights"] = Wt.provenance(self.plan.weights)
            fields["config"]["versions"] = self.plan.versions  # what it computed or reused (Store.values)
            self.run_id = self.store.start_run(**fields)

    @staticmethod
    def _crashed(item: D.Item) -> W.WorkerCrashedError:
        return W.WorkerCrashedError(
            f"a metric worker process ended abruptly (killed, or out of memory?) while computing {item.hr_path} or "
            "an image after it; the values of the images before it are kept. Run again (--workers 1 computes in "
            "this process)")

    def _finish_dataset_metrics(self) -> None:
        """Each dataset-level value from its accumulator, stored once under the reserved image key."""
        values: dict[str, float] = {}
        for name in self.dataset_needed:
            m = self.plan.proto.metric(name)
            assert m.accumulator is not None
            result = m.accumulator.finish(self.states[name])
            values.update(result if isinstance(result, dict) else {name: result})
            values[m.n_images_output] = float(self.dataset_images)
        self.tally.dataset_values = values
        if values and self.store is not None and self.dataset_images:
            self._start_run()
            self.store.put(self.source.key, self.plan.dataset_key, self.plan.proto.name, self.scale, DATASET_IMAGE,
                           values, self.plan.versions, self.run_id, replace=self.plan.replace)


def _image_warnings(rows: list[dict], computable: Sequence[str], proto: Protocol) -> list[str]:
    # Metrics that report their conditioning (an ``<name>_spread`` output: NIQE, BRISQUE, which fit MSCN statistics
    # where flat areas leave rounding residues whose sign counts) warn where it is poor.
    # The threshold is each metric's own (its descriptor's ill_conditioned_spread).
    conditioned = [(n, m.label, m.ill_conditioned_spread) for n in computable for m in [proto.metric(n)]
                   if f"{n}_spread" in m.outputs and m.ill_conditioned_spread is not None]
    warnings = [
        f"{r['image']}: {label} {r[key]:.4f} is ill-conditioned: {_conditioning_words(key, r)}"
        for key, label, threshold in conditioned for r in rows
        if (r.get(f"{key}_spread") or 0.0) > threshold
    ]
    for r in rows:
        undefined = [k for k in computable if isinstance(r.get(k), float) and math.isnan(r[k])]
        if undefined:
            # each metric's own reason (SSIM's window is not NIQE's blocks); the no-reference ones also on flat images
            why = [w for w in dict.fromkeys(proto.metric(k).undefined_when for k in undefined) if w]
            if set(undefined) & {"niqe", "ma", "pi", "brisque"}:
                why.append("a flat output has no NIQE, Ma or BRISQUE")
            warnings.append(f"{r['image']}: {', '.join(undefined)} undefined (NaN) for this image "
                            f"({'; '.join(why)})")
    return warnings


def _fid_warnings(summary: dict[str, float | None]) -> list[str]:
    """FID from fewer patches than its feature dimensions: the covariance is rank-deficient (defined, biased)."""
    from srbench.metrics.fid import FEATURE_LAYER

    n, dims = summary.get("fid_n_patches"), int(FEATURE_LAYER)  # the layer is named by its dimension
    if n is None or math.isnan(n) or n >= dims:
        return []
    return [f"FID from {n:.0f} patches per side (fid_n_patches), fewer than its {dims} feature dimensions: the "
            "covariance is rank-deficient, so the value is biased; compare FIDs made from the same number of patches "
            "only"]


def _conditioning_words(key: str, row: dict) -> str:
    """What was measured about an ill-conditioned value: NIQE's sampled range where it is stored, else the spread
    over the uniform resolutions (BRISQUE)."""
    if f"{key}_low" in row and f"{key}_high" in row:
        from srbench.metrics.niqe import CONDITIONING_DRAWS

        return (f"over the 3 uniform and {CONDITIONING_DRAWS} random per-gray-level sign patterns of its flat areas' "
                f"rounding residues it ranges over [{row[f'{key}_low']:.4f}, {row[f'{key}_high']:.4f}] (median "
                f"{row[f'{key}_med']:.4f}); another implementation, MATLAB's included, can print any value there")
    return (f"flat areas make it move within {row[f'{key}_spread']:.3f} when their rounding residues' signs are all "
            "zero, all positive or all negative (another implementation, MATLAB's included, resolves them its own way)")


def _summarise(source: SRSource, dataset: D.Dataset, scale: int, plan: _Plan, tally: _Tally,
               pairing: FolderPairing | None) -> EvalResult:
    rows = [{"image": it.name, **tally.values[it.name]} for it in dataset.items if it.name in tally.values]
    summary: dict[str, float | None] = dict.fromkeys(plan.names)
    if rows and plan.image_metrics:
        summary.update(plan.proto.aggregate(rows, plan.image_metrics))
    dataset_values = {**plan.dataset_cached, **tally.dataset_values}
    summary.update({k: dataset_values[k] for n in plan.dataset_metrics for k in plan.proto.metric(n).outputs
                    if k in dataset_values})
    warnings = _image_warnings(rows, plan.computable, plan.proto) + _fid_warnings(summary)
    if pairing is not None and isinstance(source, FolderSource):
        warnings += pairing.notes(source.folder, dataset.name)
    if tally.cropped:
        warnings.append(f"{tally.cropped} HR image(s) cropped to a multiple of {scale} (modcrop) before pairing")
    warnings += tally.read_notes + list(dataset.notes)
    lr_missing = dataset.lr_files_missing(scale)
    if lr_missing:
        warnings.append(
            f"{len(lr_missing)} image(s) have no x{scale} LR file although the set ships them "
            f"({', '.join(lr_missing[:5])}{' ...' if len(lr_missing) > 5 else ''}): their LR was made with "
            f"imresize (uint8, symmetric borders), which changes their numbers")
    provenance = {
        "dataset_location": dataset.location,
        "dataset_layout": dataset.layout,
        "dataset_sha256": plan.dataset_key,
        "lr_source": dict(tally.lr_sources),
        "lr_file_missing": lr_missing,
        # Conversions made while reading the files evaluated in this run (cached images were not read again).
        "read_notes": tally.read_notes,
        "model": source.describe(),
        "model_key": source.key,
        **({"sr_pairing": pairing.describe()} if pairing is not None else {}),
        "metric_versions": plan.proto.versions(plan.names),
        "weights": Wt.provenance(plan.weights),  # metric -> file, sha256, pin, pinned (keyed into stored values)
        "protocol_description": plan.proto.description,
        "versions": dict(P.versions()),
        "cached_images": tally.from_cache,
    }
    return EvalResult(source.name, dataset.name, plan.proto.name, scale, plan.names, summary, rows, tally.skipped,
                      plan.missing, warnings, provenance)


def evaluate_dataset(
    source: SRSource,
    dataset: D.Dataset,
    options: EvalOptions,
    *,
    progress: Progress | None = None,
    store: Store | None = None,
    suite: str | None = None,
) -> EvalResult:
    """Evaluate one source on one dataset as ``options`` say. With a ``store``, values already computed for the same
    source, dataset, protocol, scale and metric versions are reused and only the missing ones computed; metrics are
    computed in ``options.workers`` worker processes (default: the usable cores; see :mod:`srbench.workers`) while
    the source produces the next SR image. Values do not depend on ``workers``, bit for bit.
    ``options.torch_metrics``: compute the metrics with a torch form on the generator's device, where its SR image
    is (default: when that is a GPU; values as the CPU reference's, bitwise except PSNR-Y/SSIM-Y of the ``sr``
    protocol, within 1e-12 relative: see :mod:`srbench.metrics.torch_forms`)."""
    scale = options.scale
    where = Dist.ranks()
    dataset.check_lr_files(scale)
    # Which SR file stands for which image is decided once for the whole dataset, before any work.
    pairing = source.pair(dataset, scale) if isinstance(source, FolderSource) else None
    if not where.active:
        plan = _plan(source, dataset, options, store)
        tally = _ImageLoop(source, dataset, plan, store, suite, options).run(progress)
        return _summarise(source, dataset, scale, plan, tally, pairing)
    # torchrun: rank 0 alone reads and writes the store; every rank computes its share of the images.
    store = store if where.is_main else None
    plan = _plan(source, dataset, options, store)
    _same_on_every_rank(f"the dataset {dataset.name} ({dataset.location})", plan.dataset_key, where)
    _same_on_every_rank(f"the model {source.name}", source.key, where)
    plan.cached, plan.dataset_cached = Dist.broadcast_from_main((plan.cached, plan.dataset_cached), where)
    tally = _ImageLoop(source, dataset, plan, store, suite, options, where).run(progress if where.is_main else None)
    result = _summarise(source, dataset, scale, plan, tally, pairing) if where.is_main else None
    shared = Dist.broadcast_from_main(result, where)  # every rank returns rank 0's result
    assert shared is not None
    return shared


def on_every_rank(prepare: Callable[[], T]) -> T:
    """``prepare()`` (opening the model and datasets). Under torchrun every rank runs it, and a rank's failure is
    raised on every rank, naming it, before any collective work: otherwise the other ranks wait in a collective
    the failed rank never joins, and rank 0 reports a gloo traceback instead of the reason."""
    where = Dist.ranks()
    if not where.active:
        return prepare()
    value: T | None = None
    problem: str | None = None
    try:
        value = prepare()
    except (SrbenchError, OSError) as exc:
        problem = str(exc)
    failed = [(rank, p) for rank, p in enumerate(Dist.all_gather(problem, where)) if p is not None]
    if failed:
        rank, first = failed[0]
        also = f" (rank(s) {', '.join(str(r) for r, _ in failed[1:])} failed too)" if len(failed) > 1 else ""
        raise BadInputError(f"torchrun rank {rank} of {where.world}: {first}{also}")
    return value  # type: ignore[return-value]  # set: no rank failed, this one included


def _same_on_every_rank(what: str, fingerprint: str, where: Dist.Ranks) -> None:
    """Ranks must read the same files: a node with another copy of a dataset (or model) would mix numbers."""
    seen = Dist.all_gather(fingerprint, where)
    if len(set(seen)) > 1:
        differ = [rank for rank, fp in enumerate(seen) if fp != seen[0]]
        raise BadInputError(f"{what} differs between torchrun ranks: rank(s) {differ} read other files than rank 0 "
                            f"(sha256 {seen[0][:12]} on rank 0); give every node the same copy")


def _refuse_one_dataset_twice(given: Sequence[str], resolved: Sequence[D.Dataset]) -> None:
    """Results, stores and --out files are keyed by dataset name (``--out`` files on a case-insensitive disk
    too): two datasets of one name, or one folder given twice (by name and by path), would hide one another or
    count twice."""
    seen: list[tuple[str, D.Dataset]] = []
    for text, ds in zip(given, resolved, strict=True):
        for other_text, other in seen:
            same_folder = ds.layout != "embedded" and other.layout != "embedded" and os.path.samefile(
                ds.location, other.location)
            if ds.name.casefold() == other.name.casefold() or same_folder:
                what = "the same folder" if same_folder else f"datasets named {other.name!r} and {ds.name!r}"
                raise BadInputError(f"--dataset {other_text} and --dataset {text} are {what}: give each dataset "
                                    "once, and two folders of one name in separate runs (with --store, under "
                                    "other --name values: a store labels a set by its name)")
        seen.append((text, ds))


def evaluate_model(
    model: str | SRSource,
    datasets: Sequence[str],
    options: EvalOptions | None = None,
    *,
    store: Store | None = None,
    suite: str | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    **settings: Any,
) -> Iterator[EvalResult]:
    """One model on ``datasets`` as ``options`` say: one :class:`EvalResult` per dataset, yielded as each finishes
    (nothing is lost on a later error).

    ``model`` is a name or path (see :func:`srbench.sources.open_source`) or an already opened source, which
    callers evaluating one model many times (``ablate``, ``check``) pass to open it once. Without ``options``, the
    keyword ``settings`` build them (:meth:`EvalOptions.build`: ``protocol``, ``metrics``, ``scale``,
    ``data_root``, ``weights_dir``, ``device``, ``workers``, ``tile``, ``skip_unavailable``, ``torch_metrics``,
    ``sr_pattern``, ``same_environment``). With a ``store`` and a ``suite``, each result is also labelled there as
    model ``name`` (default: the source's own name) of that suite, so ``srbench results``, ``table`` and
    ``pirm-plane`` show it. Results do not depend on ``options.workers``, bit for bit.
    """
    if options is None:
        options = EvalOptions.build(**settings)
    elif settings:
        raise TypeError(f"evaluate_model: options given, and settings {sorted(settings)} too")
    chosen = options

    def open_inputs() -> tuple[SRSource, list[D.Dataset]]:
        source = (open_source(model, device=chosen.device, tile=chosen.tile, sr_pattern=chosen.sr_pattern,
                              weights_dir=chosen.weights_dir)
                  if isinstance(model, str) else model)
        if name:
            source.name = name
        if isinstance(source, GeneratorSource) and source.runner.scale != chosen.scale:
            raise BadInputError(f"{source.info['source']} is a x{source.runner.scale} model, evaluation asks "
                                f"x{chosen.scale} (--scale)")
        resolved = [D.resolve(ds, chosen.data_root) for ds in datasets]
        _refuse_one_dataset_twice(datasets, resolved)
        return source, resolved

    source, resolved = on_every_rank(open_inputs)
    for ds in resolved:
        result = evaluate_dataset(source, ds, options, progress=progress, store=store, suite=suite)
        if store is not None and suite is not None and result.per_image:
            before = store.labelled(suite, result.model, result.dataset, result.scale)
            label = f"the store's label {result.model!r} of suite {suite!r} on {result.dataset} (x{result.scale})"
            keep = "it names these now (the others stay stored: another --name keeps both in the tables)"
            if before is not None and before[1] != result.provenance["dataset_sha256"]:
                # two folders of one name evaluated in separate runs: the label names the newer one only
                result.warnings.append(f"{label} named results on other images of a set of this name; {keep}")
            elif before is not None and _weights_or_files(before[0]) != _weights_or_files(
                    result.provenance["model_key"]):
                # another folder (x4/ of two methods), checkpoint or version of the outputs under one name
                result.warnings.append(f"{label} named another model's results (other files, or another "
                                       f"checkpoint, under this name); {keep}")
            store.label(suite, result.model, result.provenance["model_key"], result.dataset,
                        result.provenance["dataset_sha256"], result.scale)
        yield result


def _weights_or_files(model_key: str) -> str:
    """The part of a source's key that names its weights or files (``generator:<sha256>``, ``folder:<hash>``),
    without the device, tiling or pairing pattern, which change the values but not which model it is."""
    return ":".join(model_key.split(":")[:2])


def write_outputs(result: EvalResult, out_dir: str | os.PathLike) -> list[Path]:
    """Per-image CSV and the summary JSON of one result, written atomically."""
    out = Path(out_dir)
    stem = f"{_safe(result.model)}__{_safe(result.dataset)}__{result.protocol}_x{result.scale}"
    csv_path = out / f"{stem}.csv"
    json_path = out / f"{stem}.json"
    atomic_write_text(csv_path, result.per_image_frame().to_csv(index=False))
    atomic_write_text(json_path, json_dumps(result.to_dict(), indent=2) + "\n")
    return [csv_path, json_path]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
