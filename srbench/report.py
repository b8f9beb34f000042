"""Tidy result tables and paper tables, built from the results store.

The tidy form has one row per model x dataset x protocol x metric. Dataset-level numbers are always
re-aggregated from the stored per-image values with the protocol's own rule (mean; RMSE = sqrt(mean MSE);
PI from the mean Ma and NIQE), using only values of the current metric versions. Dataset-level metrics (FID)
have no per-image values: their stored set value (image key ``srbench.store.DATASET_IMAGE``) is shown as is.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from srbench.datasets import image_set_digest, recorded_image_sets
from srbench.errors import BadInputError
from srbench.images import atomic_write_text
from srbench.jsonnum import dumps as json_dumps
from srbench.manifests import load_manifests
from srbench.metrics import get_metric
from srbench.metrics.niqe import BLOCK as NIQE_BLOCK
from srbench.metrics.registry import register_stored
from srbench.plots import on_other_images
from srbench.protocols import PROTOCOLS
from srbench.stats import conditioning_range
from srbench.store import DATASET_IMAGE
from srbench.text import format_value


def _dataset_level_row(stored: Mapping[tuple[str, str], float | None], metric, versions: dict[str, str]) -> dict | None:
    """The tidy fields of a dataset-level metric from its stored set values, None when not stored."""
    if any((name, v) not in stored for name, v in versions.items()):
        return None
    value = stored[(metric.name, versions[metric.name])]
    n_images = stored[(metric.n_images_output, versions[metric.n_images_output])]
    return {"value": math.nan if value is None else value, "n_images": int(n_images or 0)}


def tidy_from_store(store_rows: list[dict]) -> pd.DataFrame:
    """Aggregate stored per-image values into the tidy table, with a ``suite`` column first: one model name may
    stand for different results in different suites, whose images must never be averaged together."""
    register_stored(r["metric"] for r in store_rows)
    groups: dict[tuple, dict[str, dict[tuple[str, str], float]]] = defaultdict(lambda: defaultdict(dict))
    for r in store_rows:
        key = (r.get("suite"), r["model"], r["dataset"], r["protocol"], r["scale"])
        groups[key][r["image"]][(r["metric"], r["metric_version"])] = r["value"]
    out = []
    for (suite, model, dataset, protocol, scale), images in groups.items():
        proto = PROTOCOLS[protocol]
        whole_set = images.pop(DATASET_IMAGE, {})  # dataset-level metrics' values, not an image
        for metric in proto.metrics:
            versions = proto.output_versions([metric.name, *metric.requires])
            if metric.is_dataset_level:
                found = _dataset_level_row(whole_set, metric, versions)
                if found is not None:
                    out.append({"suite": suite, "model": model, "dataset": dataset, "protocol": protocol,
                                "scale": scale, "metric": metric.name, **found,
                                "higher_is_better": metric.higher_is_better,
                                "version": proto.versions([metric.name])[metric.name],
                                "cond_low": math.nan, "cond_high": math.nan})
                continue
            rows = []
            for values in images.values():
                if any((name, v) not in values for name, v in versions.items()):
                    break  # not every image has it: the metric was not computed for this model
                # A stored NULL is a NaN (undefined for that image), not a missing value.
                rows.append({name: math.nan if values[(name, v)] is None else values[(name, v)]
                             for name, v in versions.items()})
            else:
                if rows:
                    value = proto.aggregate(rows, [metric.name])[metric.name]
                    out.append({"suite": suite, "model": model, "dataset": dataset, "protocol": protocol,
                                "scale": scale, "metric": metric.name, "value": value, "n_images": len(rows),
                                "higher_is_better": metric.higher_is_better,
                                "version": proto.versions([metric.name])[metric.name],
                                **conditioning_range(metric, rows), "image_set": image_set_digest(images)})
    return pd.DataFrame(out, columns=["suite", *TIDY_COLUMNS])


def why_nothing_current(store_rows: list[dict]) -> str:
    """Why :func:`tidy_from_store` made nothing of labelled values (``""`` where there are none): every one of
    them is of a metric version this srbench does not compute, which 'no results' hid."""
    register_stored(r["metric"] for r in store_rows)
    current: dict[tuple[str, str], str] = {}
    for name, proto in PROTOCOLS.items():
        every = [m.name for m in proto.metrics]
        current.update({(name, out): v for out, v in proto.output_versions(every).items()})
    stale = sorted({f"{r['metric']} {r['metric_version']}" for r in store_rows
                    if current.get((r["protocol"], r["metric"])) != r["metric_version"]})
    if not store_rows or not stale:
        return ""
    return (f" ({len(store_rows)} labelled value(s) are of metric versions this srbench does not compute: "
            f"{', '.join(stale[:4])}{', ...' if len(stale) > 4 else ''}; evaluate again to compute them under the "
            f"current ones)")


# cond_low/cond_high: the dataset value's range when the per-image conditioning ranges (NIQE's flat areas) are
# taken at their ends; NaN for metrics without one. image_set: see image_set_digest (None for dataset-level metrics).
TIDY_COLUMNS = ["model", "dataset", "protocol", "scale", "metric", "value", "n_images", "higher_is_better",
                "version", "cond_low", "cond_high", "image_set"]


def tidy_from_results(results: Sequence) -> pd.DataFrame:
    """The tidy table of in-memory :class:`srbench.evaluation.EvalResult` objects."""
    out = []
    for r in results:
        proto = PROTOCOLS[r.protocol]
        for name in r.metrics:
            value = r.summary.get(name)
            if value is None:
                continue
            # an undefined value (NaN: NIQE of an image under two 96x96 blocks) stays a row, as the store's tidy
            # table keeps it: dropping it hid the metric and, in Results.per_image, its defined per-image values
            metric = proto.metric(name)
            out.append({"model": r.model, "dataset": r.dataset, "protocol": r.protocol, "scale": r.scale,
                        "metric": name, "value": value, "n_images": r.n_images,
                        "higher_is_better": metric.higher_is_better, "version": proto.versions([name])[name],
                        **(conditioning_range(metric, r.per_image) if not metric.is_dataset_level
                           else {"cond_low": math.nan, "cond_high": math.nan}),
                        "image_set": None if metric.is_dataset_level else image_set_digest(
                            row["image"] for row in r.per_image)})
    return pd.DataFrame(out, columns=TIDY_COLUMNS)


def _rank_marks(values: pd.Series, higher: bool) -> dict:
    """model -> 1 (best) / 2 (second) among the present values (ties share the rank)."""
    present = values.dropna()
    ordered = sorted(set(present.tolist()), reverse=higher)
    marks = {}
    for model, v in present.items():
        rank = ordered.index(v) + 1
        if rank <= 2:
            marks[model] = rank
    return marks


@dataclass(frozen=True)
class TableModel:
    """A paper table before formatting: every renderer (Markdown, LaTeX, CSV, HTML) reads this one model."""

    models: list[str]
    columns: list[tuple[str, Any]]  # (dataset, metric descriptor)
    values: dict[tuple[str, str, str], float]  # (model, dataset, metric) -> value; absent = not available
    ranks: dict[tuple[str, str, str], int]  # 1 = best, 2 = second, by the metric's direction
    caption: str
    # (model, dataset, metric) -> a computed interval (``srbench.stats.Interval``: ``low``, ``high``), shown after
    # the value as ``31.42 [31.07, 31.77]``; None or absent: the value alone.
    intervals: Mapping[tuple[str, str, str], Any] | None = None
    published: frozenset[str] = frozenset()  # rows of published numbers: italic, never ranked
    # Cells whose conditioning range (NIQE's flat areas, hence PI) overlaps another model's in the same column:
    # their order is not resolved by the metric's own arithmetic. Marked § and explained under the table.
    unresolved: frozenset[tuple[str, str, str]] = frozenset()
    # Cells whose value is over other images than the rest of the column's (images skipped with --skip-bad):
    # marked ¶, explained under the table and left out of the ranking, as srbench compare refuses such a pair.
    other_images: frozenset[tuple[str, str, str]] = frozenset()
    # Cells shown with other digits than their metric's: published numbers, with as many as their source printed
    # where it printed more (SPSR's PI 7.3699 was shown 7.370).
    digits: Mapping[tuple[str, str, str], int] | None = None

    def cell(self, model: str, dataset: str, metric, fmt: str) -> str:
        key = (model, dataset, metric.name)
        if key not in self.values:
            return "--" if fmt == "latex" else "–"
        text = format_value(self.values[key], (self.digits or {}).get(key, metric.digits), fmt)
        if fmt == "html":
            text = html.escape(text)
        if model in self.published:
            return _ITALIC[fmt].format(text)
        text = _EMPHASIS[fmt].get(self.ranks.get(key, 0), "{}").format(text)  # rank 0: unranked, plain
        if key in self.unresolved:
            text += _UNRESOLVED[fmt]
        if key in self.other_images:
            text += _OTHER_IMAGES[fmt]
        return text + self.interval_text(key, metric.digits, fmt)

    def interval_text(self, key: tuple[str, str, str], digits: int, fmt: str) -> str:
        """`` [low, high]`` of a cell's interval, or nothing (no interval, or an undefined one)."""
        found = (self.intervals or {}).get(key)
        if found is None or math.isnan(found.low) or math.isnan(found.high):
            return ""
        text = f" [{format_value(found.low, digits, fmt)}, {format_value(found.high, digits, fmt)}]"
        return html.escape(text) if fmt == "html" else text


_ITALIC = {"markdown": "*{}*", "latex": "\\textit{{{}}}", "html": "<i>{}</i>", "csv": "{}"}
_UNRESOLVED = {"markdown": "§", "latex": "\\S", "html": "§", "csv": ""}
_OTHER_IMAGES = {"markdown": "¶", "latex": "\\P", "html": "¶", "csv": ""}
_EMPHASIS = {"markdown": {1: "**{}**", 2: "<u>{}</u>"}, "latex": {1: "\\textbf{{{}}}", 2: "\\underline{{{}}}"},
             "html": {1: "<b>{}</b>", 2: "<u>{}</u>"}}


def table_model(tidy: pd.DataFrame, metrics: Sequence[str], models: Sequence[str] | None = None,
                datasets: Sequence[str] | None = None, caption: str | None = None,
                intervals: Mapping[tuple[str, str, str], Any] | None = None,
                published: Sequence[str] | None = None) -> TableModel:
    """Models as rows, dataset x metric columns; best and second by each metric's own direction (of the values;
    ``intervals``, from ``srbench.stats.table_intervals``, are shown beside them and named in the caption).

    ``published``: collections of :mod:`srbench.published_results` whose numbers are added as rows (italic,
    marked †, never ranked, cited under the table) of the datasets shown; a number computed otherwise than
    srbench's metric gets a column of its own (marked ‡), next to the metric it resembles."""
    from srbench import published_results as P

    extra = P.select(published) if published else []
    metrics = _with_published_columns(metrics, extra)
    spec = {m: P.published_metrics().get(m) or get_metric(m) for m in metrics}  # unknown names fail here
    models = list(models or dict.fromkeys(tidy["model"]))
    datasets = list(datasets or dict.fromkeys(tidy["dataset"]))
    tidy, columns_under, elsewhere = _one_protocol_per_cell(tidy, spec, models)
    # A published set stands beside the column of its name as stored, whatever its case (a folder named Set5); of
    # two columns whose names differ in case only, beside the one over a recorded copy's images.
    manifests = load_manifests()
    column_of = _published_columns(tidy, datasets, manifests)
    shown, left_out = _comparable(tidy[tidy["model"].isin(models)],
                                  [dataclasses.replace(v, dataset=column_of[v.dataset.casefold()]) for v in extra
                                   if v.dataset.casefold() in column_of and v.metric in metrics])
    published_rows = list(dict.fromkeys(P.row_name(v) for v in shown))
    values, ranks = {}, {}
    other_images: set[tuple[str, str, str]] = set()
    for d in datasets:
        recorded = set(recorded_image_sets(d, manifests))
        for m in metrics:
            column = tidy[(tidy["dataset"] == d) & (tidy["metric"] == m)].set_index("model")
            series = column["value"].reindex(models)
            values.update({(model, d, m): v for model, v in series.items() if v is not None and not pd.isna(v)})
            others = on_other_images(column, [model for model in models if (model, d, m) in values], recorded)
            other_images.update((model, d, m) for model in others)
            # A value under another protocol than the column's (each crops its own border) is not ranked with it.
            apart = [model for model, d2, m2, _ in elsewhere if d2 == d and m2 == m and model in models]
            # Ranked as printed: 28.4249 and 28.4201 are both 28.42, one mark (bold and underline told them apart)
            ranks.update({(model, d, m): r for model, r in
                          _rank_marks(series.drop([*others, *apart]).round(spec[m].digits),
                                      spec[m].higher_is_better).items()})
    values.update({(P.row_name(v), v.dataset, v.metric): v.value for v in shown})
    digits = {(P.row_name(v), v.dataset, v.metric): max(spec[v.metric].digits, v.decimals or 0) for v in shown}
    unresolved = _unresolved(tidy, models, datasets, metrics)
    caption = caption or _default_caption(metrics, spec)
    if unresolved:
        caption += " " + _unresolved_note(sorted({spec[m].label for _, _, m in unresolved}))
    if other_images:
        caption += " " + _other_images_note(tidy, sorted(other_images))
    notes = [f"{spec[m].label} on {d} under the {protocol} protocol" for d, m, protocol in columns_under
             if d in datasets and m in metrics]
    notes += [f"{spec[m].label} of {model} on {d} under the {protocol} protocol, the only one stored (not ranked with "
              "its column)" for model, d, m, protocol in elsewhere if d in datasets and m in metrics]
    if notes:
        caption += " " + "; ".join(notes) + "."
    if intervals:
        caption += " " + _interval_note(intervals)
    if shown:
        caption += " " + _published_note(shown, [spec[m] for m in metrics if m in P.published_metrics()])
    if left_out:
        caption += " " + " ".join(left_out)
    columns = [(d, spec[m]) for d in datasets for m in metrics]
    return TableModel([*models, *published_rows], columns, values, ranks, caption, intervals,
                      frozenset(published_rows), frozenset(unresolved), frozenset(other_images), digits)


def _one_protocol_per_cell(tidy: pd.DataFrame, spec: Mapping[str, Any], models: Sequence[str]
                           ) -> tuple[pd.DataFrame, list[tuple], list[tuple]]:
    """One row per model, dataset and metric. A metric of several protocols (BRISQUE, LPIPS, the spectrum; each
    protocol crops its own border, so the values differ) stored under more than one shows the value under its
    first protocol, the one the caption names. A column's protocol is the first any of ``models`` has there.
    -> (the rows; the (dataset, metric, protocol) columns under another protocol than the metric's first; the
    (model, dataset, metric, protocol) cells under another protocol than their column's: shown, never ranked)."""
    if tidy.empty or "protocol" not in tidy.columns:
        return tidy, [], []

    from srbench.metrics.registry import protocol_rank

    ranked = tidy.assign(protocol_rank=[protocol_rank(spec.get(m), p)
                                        for m, p in zip(tidy["metric"], tidy["protocol"], strict=True)])
    key = ["model", "dataset", "metric", *(["scale"] if "scale" in tidy.columns else [])]
    kept = ranked.sort_values("protocol_rank", kind="stable").drop_duplicates(key).sort_index()
    several = {m for m in spec if len(getattr(spec[m], "protocols", None) or ()) > 1}
    columns_under, elsewhere = [], []
    for (d, m), column in kept[kept["metric"].isin(several) & kept["model"].isin(models)].groupby(
            ["dataset", "metric"], sort=False):
        first = column.loc[column["protocol_rank"].idxmin()]
        if first["protocol_rank"] > 0:
            columns_under.append((d, m, first["protocol"]))
        elsewhere += [(r.model, d, m, r.protocol) for r in column.itertuples() if r.protocol != first["protocol"]]
    return kept.drop(columns="protocol_rank"), columns_under, elsewhere


def _default_caption(metrics: Sequence[str], spec: Mapping[str, Any] | None = None) -> str:
    """The caption's first sentence: how the metrics shown are computed (by their protocols)."""
    spec = spec or {m: get_metric(m) for m in metrics}
    return _caption(sorted({p for m in metrics for p in (getattr(spec[m], "protocols", None) or ())[:1]}))


def _other_images_note(tidy: pd.DataFrame, cells: Sequence[tuple[str, str, str]]) -> str:
    counts = tidy.set_index(["model", "dataset", "metric"])["n_images"] if "n_images" in tidy.columns else {}
    named = ", ".join(dict.fromkeys(f"{model} on {d} ({counts.get((model, d, m), '?')} images)"
                                    for model, d, m in cells))
    return (f"¶ A mean over other images than the rest of its column ({named}; e.g. images skipped as bad input "
            "with --skip-bad): not comparable, so not ranked.")


def _unresolved_note(labels: Sequence[str]) -> str:
    return (f"§ {', '.join(labels)}: this value's conditioning range (flat areas, where the metric's floating-point "
            "residues decide its AGGD fits; srbench.metrics.niqe) overlaps another model's in the same column, so "
            "their order is within the metric's own arithmetic noise.")


def _unresolved(tidy: pd.DataFrame, models: Sequence[str], datasets: Sequence[str],
                metrics: Sequence[str]) -> set[tuple[str, str, str]]:
    """(model, dataset, metric) cells whose [cond_low, cond_high] overlaps another model's in the column."""
    if "cond_low" not in tidy.columns:
        return set()
    found = set()
    for d in datasets:
        for m in metrics:
            rows = tidy[(tidy["dataset"] == d) & (tidy["metric"] == m) & tidy["model"].isin(models)
                        & tidy["cond_low"].notna() & tidy["cond_high"].notna()]
            ranges = list(zip(rows["model"], rows["cond_low"], rows["cond_high"], strict=True))
            for i, (a, a_low, a_high) in enumerate(ranges):
                for b, b_low, b_high in ranges[i + 1:]:
                    if a_low <= b_high and b_low <= a_high:
                        found.update({(a, d, m), (b, d, m)})
    return found


def _with_published_columns(metrics: Sequence[str], extra: list) -> list[str]:
    """``metrics``, each followed by the published-only metrics (``srbench.published_results``) that resemble it and
    have values in ``extra``: another implementation's numbers never share srbench's column."""
    from srbench import published_results as P

    own = P.published_metrics()
    present = list(dict.fromkeys(v.metric for v in extra if v.metric in own))
    out: list[str] = []
    for m in metrics:
        out += [m, *(p for p in present if own[p].like == m and p not in metrics)]
    return out


def _comparable(tidy: pd.DataFrame, values: list) -> tuple[list, list[str]]:
    """The published values that can stand beside these results (the shown models'): of their scale, and of a
    dataset whose results are over as many images as the named set has (a folder of one's own named ``set14`` is
    not Set14). The others are left out, each reason said once for the caption."""
    from srbench.datasets import KNOWN_SIZES
    from srbench.plots import comparable_with, unrecorded_images

    kept: list = []
    notes: dict[tuple, str] = {}
    unrecorded: dict[str, bool] = {}
    other_scale: dict[tuple[int, tuple[int, ...]], list[str]] = {}  # (published scale, results' scales) -> sets
    for v in values:
        scales, full_set = comparable_with(tidy, v.dataset)
        if v.dataset not in unrecorded:
            unrecorded[v.dataset] = unrecorded_images(tidy, v.dataset)
        if scales is not None and v.scale not in scales:
            where = other_scale.setdefault((v.scale, tuple(sorted(scales))), [])
            if v.dataset not in where:
                where.append(v.dataset)
            notes[("scale", v.scale, tuple(sorted(scales)))] = ""  # worded below, once every set is known
        elif not full_set:
            counts = sorted(set(tidy.loc[tidy["dataset"] == v.dataset, "n_images"].dropna().astype(int)))
            notes[("size", v.dataset)] = (f"Published numbers on {v.dataset} left out: its results here are over "
                                          f"{', '.join(map(str, counts))} images, the published set has "
                                          f"{KNOWN_SIZES[v.dataset.casefold()]}.")
        else:
            kept.append(v)
            if unrecorded[v.dataset]:
                notes[("names", v.dataset)] = (
                    f"{v.dataset} here is over images named as no recorded copy of it names them (a folder of one's "
                    f"own called {v.dataset}?): its published rows assume the same images. `srbench datasets verify "
                    f"FOLDER` checks a copy; `srbench datasets manifest` records one.")
    for (scale, theirs), sets in other_scale.items():
        notes[("scale", scale, theirs)] = (f"Published x{scale} numbers on {', '.join(sets)} left out: these results "
                                           f"are at x{', x'.join(map(str, theirs))}.")
    return kept, list(notes.values())


def _published_note(shown: list, own_columns: list) -> str:
    """The citation footnote of published rows, and what the columns of their own measure."""
    from srbench import published_results as P

    cited = []
    for name in dict.fromkeys(v.collection for v in shown):
        c = P.collections()[name]
        where = ", ".join(dict.fromkeys(v.source for v in shown if v.collection == name))
        cited.append(f"[{name}] {c.citation} ({where})")
    note = "† Published numbers, not computed here (italic, not ranked): " + "; ".join(cited) + "."
    if own_columns:
        note += " ‡ Published only, computed otherwise than srbench's metrics: " + "; ".join(
            f"{m.label.removesuffix(' ‡')}: {m.description}" for m in own_columns) + "."
    return note


def _interval_note(intervals: Mapping[tuple[str, str, str], Any]) -> str:
    """What the brackets are, and which values have none and why (one image: ``srbench.stats.ONE_IMAGE_NOTE``)."""
    interval = next(iter(intervals.values()))
    note = (f"Brackets: {interval.confidence:.0%} interval, {interval.method} ({interval.n_resamples} "
            f"resamples, seed {interval.seed}).")
    missing = defaultdict(list)
    for (model, dataset, _), found in intervals.items():
        if getattr(found, "note", ""):
            missing[found.note].append(f"{model} on {dataset}")
    for why, cells in missing.items():
        note += f" No brackets for {', '.join(dict.fromkeys(cells))}: {why}."
    return note


def _published_columns(tidy: pd.DataFrame, datasets: Sequence[str], manifests: dict[str, dict]) -> dict[str, str]:
    """Set name without case -> the column its published rows stand beside: of two columns whose names differ in
    case only, the one over a recorded copy's images, else the first."""
    column_of: dict[str, str] = {}
    for d in datasets:
        if d.casefold() not in column_of or (_over_recorded(tidy, d, manifests)
                                             and not _over_recorded(tidy, column_of[d.casefold()], manifests)):
            column_of[d.casefold()] = d
    return column_of


def _over_recorded(tidy: pd.DataFrame, dataset: str, manifests: dict[str, dict]) -> bool:
    """Whether ``dataset``'s results are over the images a recorded copy of the set of its name holds."""
    digests = set(tidy.loc[tidy["dataset"] == dataset, "image_set"].dropna()) if "image_set" in tidy else set()
    return bool(digests) and digests <= set(recorded_image_sets(dataset, manifests))


def known_datasets(requested: Sequence[str] | None, tidy: pd.DataFrame, published: Sequence[str] | None,
                   where: str) -> list[str] | None:
    """Requested dataset names as the results name them (``evaluate --dataset Set5`` stores set5: matched without
    case); a name that neither the results (``where``) nor the published rows asked for hold is a BadInputError
    naming those that exist, never a column of dashes."""
    if requested is None:
        return None
    stored = list(dict.fromkeys(tidy["dataset"]))
    known = list(stored)
    if published:
        from srbench import published_results as P

        known += [d for d in dict.fromkeys(v.dataset for v in P.select(published)) if d not in known]
    out = []
    for name in requested:
        # the results' own sets first: published set5 beside a stored Set5 (a folder) blanked its column
        for names in (stored, known):
            exact = [n for n in names if n == name] or [n for n in names if n.casefold() == name.casefold()]
            if len(exact) == 1:
                out.append(exact[0])
                break
            if len(exact) > 1:
                raise BadInputError(f"dataset {name!r} in {where} is ambiguous: it names {' and '.join(exact)}, "
                                    "which differ only in case; name one exactly")
        else:
            raise BadInputError(f"no results for dataset {name!r} in {where}"
                                f"{' or the published rows' if published else ''}; it has "
                                f"{', '.join(known) or 'none'}")
    return out


def known_dataset(name: str, tidy: pd.DataFrame, published: Sequence[str] | None, where: str) -> str:
    """One name as :func:`known_datasets` finds it."""
    return known_datasets([name], tidy, published, where)[0]  # type: ignore[index]


def paper_table(tidy: pd.DataFrame, metrics: Sequence[str], fmt: str = "markdown", models: Sequence[str] | None = None,
                datasets: Sequence[str] | None = None, caption: str | None = None,
                intervals: Mapping[tuple[str, str, str], Any] | None = None,
                published: Sequence[str] | None = None,
                scale_intervals: Mapping[int, Mapping[tuple[str, str, str], Any]] | None = None) -> str:
    """Models as rows, dataset x metric columns with direction arrows; best bold, second underlined;
    missing values shown as such, never as zero. With ``intervals`` each value is followed by its interval
    ``[low, high]`` (CSV: columns ``<dataset>/<metric>_low`` and ``_high``); ``published``: see
    :func:`table_model`.

    Results of several scales (one method at x2 and x4) get a Scale column: a row per model and scale, ranked
    within its scale only, the intervals of each scale from ``scale_intervals`` (scale -> its intervals)."""
    if fmt not in ("markdown", "latex", "csv"):
        raise BadInputError(f"unknown table format {fmt!r}: use markdown, latex or csv")
    scales = sorted({int(s) for s in tidy["scale"].dropna()}) if "scale" in tidy.columns else []
    groups: list[tuple[int | None, TableModel]]
    if len(scales) > 1:
        if published:
            raise BadInputError(f"the table holds several scales (x{', x'.join(map(str, scales))}); published "
                                "numbers are given at one scale: choose it with --scale")
        datasets = list(datasets or dict.fromkeys(tidy["dataset"]))
        base = caption or _default_caption(metrics)
        groups = [(s, table_model(tidy[tidy["scale"] == s], metrics, None if models is None else
                                  [m for m in models if m in set(tidy.loc[tidy["scale"] == s, "model"])],
                                  datasets, base, (scale_intervals or {}).get(s)))
                  for s in scales]
        notes = [f"x{s}: {t.caption.removeprefix(base).strip()}" for s, t in groups
                 if t.caption.removeprefix(base).strip()]
        groups = [(s, dataclasses.replace(t, caption=" ".join([base, *notes]))) for s, t in groups]
    else:
        groups = [(None, table_model(tidy, metrics, models, datasets, caption, intervals, published))]
    return _render_table(groups, fmt)


def _render_table(groups: list[tuple[int | None, TableModel]], fmt: str) -> str:
    """The table's text: each group's rows in turn, after a Scale cell when the groups are scales."""
    if not any(t.models for _, t in groups) or not groups[0][1].columns:
        n_models = sum(len(t.models) for _, t in groups)
        raise BadInputError(f"no results to tabulate ({n_models} model(s), {len(groups[0][1].columns)} "
                            "dataset x metric column(s))")
    scaled = groups[0][0] is not None
    table = groups[0][1]
    if fmt == "csv":
        columns: dict[str, list] = {"scale": [s for s, t in groups for _ in t.models]} if scaled else {}
        for d, m in table.columns:
            columns[f"{d}/{m.name}"] = [t.values.get((model, d, m.name)) for _, t in groups for model in t.models]
            if any(t.intervals for _, t in groups):
                columns.update(_bound_columns(f"{d}/{m.name}", groups, d, m.name))
        frame = pd.DataFrame(columns, index=[model for _, t in groups for model in t.models])
        return frame.to_csv(index_label="model")
    rows = [(model, scale, [t.cell(model, d, m, fmt) for d, m in t.columns]) for scale, t in groups
            for model in t.models]
    scale_head = ["Scale"] if scaled else []
    if fmt == "markdown":
        head = "| " + " | ".join(["Model", *scale_head, *(f"{_md(d)} {m.label} {m.arrow}" for d, m in table.columns)])
        head += " |"
        sep = "|---|" + "".join("---:|" for _ in scale_head) + "|".join("---:" for _ in table.columns) + "|"
        body = ["| " + " | ".join([_md(model), *([f"x{scale}"] if scaled else []), *cells]) + " |"
                for model, scale, cells in rows]
        return "\n".join([head, sep, *body, "", f"*{table.caption}*", ""])
    latex_arrow = {"↑": "$\\uparrow$", "↓": "$\\downarrow$"}
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{_tex(table.caption)}}}",
             "\\begin{tabular}{l" + "r" * (len(scale_head) + len(table.columns)) + "}", "\\toprule",
             " & ".join(["Model", *scale_head, *(f"{_tex(d)} {_tex(m.label)} {latex_arrow[m.arrow]}" for d, m in
                                                 table.columns)]) + " \\\\", "\\midrule"]
    lines += [" & ".join([_tex(model), *([f"$\\times${scale}"] if scaled else []), *cells]) + " \\\\"
              for model, scale, cells in rows]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _bound_columns(name: str, groups: list[tuple[int | None, TableModel]], dataset: str,
                   metric: str) -> dict[str, list]:
    """The CSV columns ``<name>_low`` and ``<name>_high`` of a table with intervals."""
    found = [(t.intervals or {}).get((model, dataset, metric)) for _, t in groups for model in t.models]
    return {f"{name}_{bound}": [getattr(i, bound) if i is not None else None for i in found]
            for bound in ("low", "high")}


# Every character LaTeX reads as markup: model names and captions are text (``my_model&50%#``, "95% interval").
_TEX_SPECIAL = {"\\": "\\textbackslash{}", "{": "\\{", "}": "\\}", "$": "\\$", "#": "\\#", "%": "\\%",
                "&": "\\&", "_": "\\_", "^": "\\textasciicircum{}", "~": "\\textasciitilde{}"}


def _tex(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(c, c) for c in text)


def _md(text: str) -> str:
    """A Markdown table cell's text: a ``|`` would end the cell."""
    return text.replace("|", "\\|")


def _caption(protocols: list[str]) -> str:
    parts = []
    if "sr" in protocols:
        parts.append("PSNR/SSIM under the sr protocol (Y of YCbCr, unrounded, border = scale)")
    if "pirm" in protocols:
        parts.append("RMSE/NIQE/Ma/PI under the pirm protocol (rounded Y, shave 4, RMSE = sqrt(mean MSE))")
    said = "; ".join(parts) + ". " if parts else ""  # a pyiqa metric belongs to no protocol of srbench's
    return said + "Best in bold, second underlined; – = not available."


SUITE_TABLE_METRICS = ("psnr_y", "ssim_y", "rmse", "niqe", "ma", "pi")


def _suite_metrics(tidy: pd.DataFrame) -> list[str]:
    """The columns of a suite's tables: those it has; PI stays when it could not be computed (a missing
    column would hide that it is missing)."""
    present = set(tidy["metric"])
    return [m for m in SUITE_TABLE_METRICS if m in present or m == "pi"]


def absent_notes(report, tidy: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """Why a column of a suite's main table has no value at all (PI without Ma's weights): a '–' column with no
    reason beside it reads as a failure of the run."""
    from srbench.suite_settings import missing_reasons

    absent = tuple(m for m in metrics if m not in set(tidy["metric"]))
    return [f"Not available: {_metric_label(m)}: {why}" for m, why in missing_reasons(absent, report.results).items()]


def _suite_report_digest(report, tidy: pd.DataFrame, training: list[dict]) -> str:
    """What the report on disk shows: srbench's version, the numbers, models, failures, datasets and trainings."""
    import hashlib

    from srbench.version import __version__

    return hashlib.sha256(json.dumps(
        [__version__, tidy.to_csv(index=False), {k: str(v) for k, v in report.models.items()},
         report.failures, report.datasets, training, preset_notice(report), study_metrics_table(report, tidy),
         absent_notes(report, tidy, _suite_metrics(tidy))],
        sort_keys=True).encode()).hexdigest()


def suite_report_is_current(report) -> bool:
    """Whether the report in ``report.out_dir`` already shows these numbers, models and failures: then
    :func:`write_suite_report` writes nothing, and its visual comparison need not be made (a cached re-run stays
    fast)."""
    digest = _suite_report_digest(report, tidy_from_results(report.results), training_rows(report))
    return _stamped(report.out_dir, digest)


def _stamped(out: Path, digest: str) -> bool:
    """Whether ``out`` holds the report of ``digest`` whole: its stamp names the digest, then the files written
    with it, and every one of them is still there (a deleted results.csv is written again)."""
    stamp = out / ".report.sha256"
    try:
        lines = stamp.read_text().splitlines()
    except OSError:
        return False
    return bool(lines) and lines[0] == digest and all((out / name).is_file() for name in lines[1:] or ["index.html"])


def write_suite_report(report, visual=None) -> list[Path]:
    """Tidy CSV, Markdown and LaTeX tables, the perception-distortion plane and the HTML page of a suite run, with
    ``visual`` (a :class:`srbench.ablate.VisualComparison`, or None) as the page's crops."""
    out = report.out_dir
    out.mkdir(parents=True, exist_ok=True)
    tidy = tidy_from_results(report.results)
    training = training_rows(report)
    study = study_metrics_table(report, tidy)
    # Same numbers, models and failures as the report on disk: nothing to redo (a cached re-run stays fast).
    digest = _suite_report_digest(report, tidy, training)
    if _stamped(out, digest):
        return sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    written = []
    atomic_write_text(out / "results.csv", tidy.to_csv(index=False))
    written.append(out / "results.csv")
    metrics = _suite_metrics(tidy)
    if not tidy.empty:
        for fmt, suffix in (("markdown", "md"), ("latex", "tex")):
            absent = absent_notes(report, tidy, metrics)
            caption = " ".join([_default_caption(metrics), *absent]) if absent and fmt == "latex" else None
            text = paper_table(tidy, metrics, fmt, models=list(report.models), caption=caption)
            if fmt == "markdown":
                notice = preset_notice(report)
                text = ((f"> {notice}\n\n" if notice else "") + study + text + "".join(f"- {n}\n" for n in absent)
                        + shared_training_note(training))
            else:  # the suite's own metrics first, as in table.md
                text = study_metrics_table(report, tidy, "latex") + text
            atomic_write_text(out / f"table.{suffix}", text)
            written.append(out / f"table.{suffix}")
        from srbench.plots import pirm_plane

        for dataset in dict.fromkeys(tidy["dataset"]):  # resolved names (a folder's name, not its path)
            try:
                path = pirm_plane(tidy, out / f"pirm_plane_{dataset}.png", dataset=dataset)
                written.append(path)
            except ValueError:
                pass  # no pirm numbers for this dataset
    if report.failures:
        atomic_write_text(out / "failures.txt", "\n".join(report.failures) + "\n")
        written.append(out / "failures.txt")
    if training:
        atomic_write_text(out / "training.json", json_dumps(training, indent=2) + "\n")
        written.append(out / "training.json")
    planes = [p for p in written if p.suffix == ".png"]
    written.append(write_html(report, tidy, planes, visual))
    _remove_former(out, written)
    atomic_write_text(out / ".report.sha256", "\n".join([digest, *(p.name for p in written)]) + "\n")
    return written


# The files a suite report is made of that a run may not write (no failures, no pirm numbers for a dataset).
_REPORT_FILES = ("failures.txt", "training.json", "table.md", "table.tex", "pirm_plane_*.png")


def _remove_former(out: Path, written: list[Path]) -> None:
    """A report's own files that this run did not write are an earlier run's (last run's failures, the plane of a
    dataset no longer evaluated): removed, so that the folder is this run's report only. Other files stay."""
    keep = {p.name for p in written}
    for pattern in _REPORT_FILES:
        for path in out.glob(pattern):
            if path.name not in keep and path.is_file():
                path.unlink()


def training_rows(report) -> list[dict]:
    """Where each stage's checkpoint came from (``srbench.ablate.SharedStage``): its suite entries, fingerprint,
    weights and training time; stable across cached re-runs, so an unchanged report is not rewritten."""
    rows = []
    for share in getattr(report, "training", None) or []:
        row = share.to_dict()
        row["source"] = "checkpoints" if row["source"] == "checkpoints" else "training"
        rows.append(row)
    return rows


def _shared(training: list[dict]) -> list[dict]:
    return [row for row in training if len(row["entries"]) > 1]


def preset_notice(report) -> str | None:
    """What the numbers of a ``smoke`` run mean, in plain words, and the command that runs the real thing (None
    for the other presets). The iterations, patch and batch sizes are the suite's resolved ones
    (``report.iterations``, ``report.batches``)."""
    if report.preset != "smoke":
        return None
    stages = getattr(report, "training", None) or []
    given = [s for s in stages if s.source == "checkpoints"]
    if stages and len(given) == len(stages):
        return None  # no stage was trained here: the numbers are the --checkpoints files'
    from srbench.datasets import EMBEDDED_TRAIN, SKIMAGE_TRAIN

    def span(values: list[int]) -> str:
        return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"

    iters = getattr(report, "iterations", None) or {}
    trained = (f"trained for {span([p for p, _ in iters.values()])} PSNR-stage and "
               f"{span([g for _, g in iters.values()])} GAN-stage iterations" if iters else "briefly trained")
    batches = getattr(report, "batches", None) or {}
    if batches:
        trained += (f" on batches of {span([b for _, b in batches.values()])} HR patches "
                    f"({span([p for p, _ in batches.values()])} px on a side) cut from")
    else:
        trained += " on"
    suite = report.suite.name
    except_given = (f" (except the {len(given)} stage(s) given with --checkpoints, which are those files)"
                    if given else "")
    sets = sorted(set((getattr(report, "training_sets", None) or {}).values()) - {EMBEDDED_TRAIN})
    source = (f"{len(SKIMAGE_TRAIN)} images scikit-image ships" if not sets else  # --train-data under smoke
              " and ".join(sets) + (f" (and {len(SKIMAGE_TRAIN)} images scikit-image ships)"
                                    if EMBEDDED_TRAIN in (report.training_sets or {}).values() else ""))
    # The networks the suite's perceptual losses stand on (VGG19 for ESRGAN's; AlexNet, VGG16 in the loss study)
    nets = list(dict.fromkeys(n for entry in (getattr(report, "networks", None) or {}).values() for n in entry))
    if not getattr(report, "networks", None):
        nets = ["VGG19"]
    listed = " and ".join([", ".join(nets[:-1]), nets[-1]] if len(nets) > 2 else nets)
    random_nets = (f", with {'a ' if len(nets) == 1 else ''}randomly initialised {listed} for the perceptual "
                   f"loss{'es' if len(nets) > 1 else ''}" if nets else "")
    needs = f"; it needs {listed}'s ImageNet weights in the weights folder" if nets else ""
    return (f"Smoke preset: small versions of the networks, {trained} {source}{random_nets}{except_given}. "
            "These numbers show that the harness works end to end; they are not the paper's results, and trained "
            "models losing to bicubic, or colour casts in the crops, are what such brief training gives. "
            f"The real thing: srbench ablate --suite {suite} --data-root DIR --train-data TRAIN (the paper preset "
            f"on the suite's datasets, trained on TRAIN, e.g. a folder of DIV2K's training HR images{needs}).")


def shared_training_note(training: list[dict]) -> str:
    """Markdown lines under the table naming the entries that share a training (empty when none do)."""
    lines = [f"- {row['stage']} stage ({row['fingerprint'][:12]}) trained once for "
             f"{', '.join(row['entries'])}: identical configuration, one checkpoint" for row in _shared(training)]
    return "\nShared trainings:\n\n" + "\n".join(lines) + "\n" if lines else ""


def _training_html(training: list[dict]) -> str:
    import html

    if not training:
        return ""
    cells = []
    for row in training:
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f} s"
        cells.append(f"<tr><td>{html.escape(row['stage'])}</td><td>{html.escape(', '.join(row['entries']))}</td>"
                     f"<td>{'yes' if len(row['entries']) > 1 else ''}</td>"
                     f"<td><code>{html.escape((row['fingerprint'] or 'given checkpoint')[:12])}</code></td>"
                     f"<td>{seconds}</td></tr>")
    rows = "".join(cells)
    return ("<h3>Trainings</h3><p class=\"note\">Suite entries whose stage configurations resolve to one "
            "fingerprint are trained once and share the checkpoint.</p><table class=\"results\"><tr><th>Stage</th>"
            f"<th>Entries</th><th>Shared</th><th>Fingerprint</th><th>Training time</th></tr>{rows}</table>")


# ---------------------------------------------------------------------------------------------------------
# A suite's own metrics (``[report] metrics``, srbench.suite_settings): its first table, in its order


def study_metrics_table(report, tidy: pd.DataFrame, fmt: str = "markdown") -> str:
    """The suite's ``[report] metrics`` as its first table (Markdown, HTML or LaTeX), in the suite's order, then what is
    missing and why (an unregistered metric, a missing weights file), then the per-dataset spectrum-discrepancy
    table where the suite asks for it. Empty for a suite without report metrics or without results."""
    from srbench.metrics import all_metrics
    from srbench.suite_settings import missing_reasons

    settings = report.suite.settings
    if not settings.metrics or tidy.empty:
        return ""
    registered = [m for m in settings.metrics if m in all_metrics()]
    missing = missing_reasons(settings.metrics, report.results)
    caption = ("In the order of the suite's source. Best in bold, second underlined; – = not available"
               + (" (below)." if missing else "."))
    notes = [_source_note(report)]
    notes += [f"Not available: {_metric_label(m)}: {why}" for m, why in missing.items()]
    models = list(report.models)
    if fmt == "html":
        table = html_table(tidy, registered, models) if registered else ""
        text = "\n".join(f'<p class="note">{html.escape(n)}</p>' for n in notes if n)
        spectrum = spectrum_table(tidy, models, report.datasets, "html") if settings.spectrum_table else ""
        caption_html = f'<p class="note">{html.escape(caption)}</p>'
        return f"<h2>The suite's metrics</h2>\n{table}\n{caption_html}\n{text}\n{spectrum}"
    if fmt == "latex":  # the notes go into the caption: a table.tex is pasted into a paper whole
        full = " ".join([caption, *(n for n in notes if n)])
        table = paper_table(tidy, registered, "latex", models=models, caption=full) if registered else ""
        spectrum = (spectrum_table(tidy, models, report.datasets, "latex") if settings.spectrum_table else "")
        return "\n".join(part for part in (f"% {report.suite.name}: the suite's metrics", table, spectrum)
                         if part) + "\n"
    table = paper_table(tidy, registered, "markdown", models=models, caption=caption) if registered else ""
    lines = [f"## {report.suite.name}: the suite's metrics", "", table, *(f"- {n}" for n in notes if n), ""]
    if settings.spectrum_table:
        lines += ["### Spectrum discrepancy per dataset (lower is better)", "",
                  spectrum_table(tidy, models, report.datasets, "markdown"), ""]
    return "\n".join(lines) + "\n"


def _metric_label(name: str) -> str:
    found = _registered().get(name)
    return found.label if found is not None else name


def _source_note(report) -> str:
    suite = report.suite
    parts = [f"Source: {suite.source}." if suite.source else "",
             f"Its training data: {suite.training_data}." if suite.training_data else ""]
    if suite.training_data and report.preset == "smoke":
        parts.append("This smoke run trained on scikit-image's images instead.")
    return " ".join(p for p in parts if p)


SPECTRUM_NOT_COMPUTED = "not computed"


def spectrum_table(tidy: pd.DataFrame, models: Sequence[str], datasets: Sequence[str], fmt: str = "markdown",
                   metric: str | None = None) -> str:
    """Models as rows, datasets as columns, of the spectrum discrepancy (``metric``, default
    ``srbench.suite_settings.SPECTRUM_DISCREPANCY``) as the tidy table has it (first protocol that has a value);
    "not computed" where it has none: never a made-up number."""
    from srbench.suite_settings import SPECTRUM_DISCREPANCY

    name = metric or SPECTRUM_DISCREPANCY
    digits = get_metric(name).digits if name in _registered() else 5
    found = tidy[tidy["metric"] == name]
    shown_datasets = list(dict.fromkeys([*datasets, *found["dataset"]])) if not found.empty else list(datasets)
    cells = {}
    for model in models:
        for d in shown_datasets:
            rows = found[(found["model"] == model) & (found["dataset"] == d)]["value"].dropna()
            cells[(model, d)] = (format_value(float(rows.iloc[0]), digits, fmt) if len(rows)
                                 else SPECTRUM_NOT_COMPUTED)
    if fmt == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in ["Model", *shown_datasets])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in
                                         [m, *(cells[(m, d)] for d in shown_datasets)]) + "</tr>" for m in models)
        return (f"<h3>Spectrum discrepancy per dataset (lower is better)</h3><table class=\"results\"><thead><tr>"
                f"{head}</tr></thead><tbody>{body}</tbody></table>")
    if fmt == "latex":
        tex = ["\\begin{table}[t]", "\\centering",
               "\\caption{Spectrum discrepancy per dataset (lower is better).}",
               "\\begin{tabular}{l" + "r" * len(shown_datasets) + "}", "\\toprule",
               " & ".join(["Model", *(_tex(d) for d in shown_datasets)]) + " \\\\", "\\midrule"]
        tex += [" & ".join([_tex(m), *(_tex(cells[(m, d)]) if cells[(m, d)] == SPECTRUM_NOT_COMPUTED
                                       else cells[(m, d)] for d in shown_datasets)]) + " \\\\" for m in models]
        return "\n".join([*tex, "\\bottomrule", "\\end{tabular}", "\\end{table}", ""])
    lines = ["| Model | " + " | ".join(shown_datasets) + " |", "|---|" + "|".join("---:" for _ in shown_datasets) + "|"]
    lines += ["| " + m + " | " + " | ".join(cells[(m, d)] for d in shown_datasets) + " |" for m in models]
    return "\n".join(lines) + "\n"


def _registered() -> dict:
    from srbench.metrics import all_metrics

    return all_metrics()


# ---------------------------------------------------------------------------------------------------------
# HTML report

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table.results {{ border-collapse: collapse; font-size: 14px; }}
table.results th, table.results td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }}
table.results th:first-child, table.results td:first-child {{ text-align: left; }}
.crops {{ display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 1.5em; }}
figure {{ margin: 0; text-align: center; font-size: 12px; }}
figure img {{ image-rendering: pixelated; width: {zoom_w}px; height: {zoom_h}px; border: 1px solid #999; }}
.note {{ color: #666; font-size: 13px; }}
</style></head>
<body data-images-expected="{n_images}">
<h1>{title}</h1>
<p>{description}</p>
<p class="note">Preset <b>{preset}</b>; datasets {datasets}. {caption}</p>
{notice}
<h2>Results</h2>
{table}
{failures}
{training}
<h2>Perception-distortion plane</h2>
{planes}
<h2>Visual comparison</h2>
<p class="note">The same {crop_h}x{crop_w} crop of each image, shown at 3x. Under each crop: PSNR-Y of the crop
(sr protocol) and {nr_label} of the crop (pirm protocol Y plane).</p>
{crops}
<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-images-loaded", String(ok));
}});
</script>
</body></html>
"""

# The visual comparison's crops (srbench.ablate.visual cuts them, the page lays them out): two of NIQE's blocks
# side by side, the least on which the crop's PI (or NIQE) is defined.
CROP_H, CROP_W = NIQE_BLOCK, 2 * NIQE_BLOCK


def _png_data_uri(img) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def html_table(tidy: pd.DataFrame, metrics: Sequence[str], models: Sequence[str],
               intervals: Mapping[tuple[str, str, str], Any] | None = None) -> str:
    table = table_model(tidy, metrics, models, intervals=intervals)
    head = ["Model", *(f"{d} {m.label} {m.arrow}" for d, m in table.columns)]
    out = ['<table class="results"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head)
           + "</tr></thead><tbody>"]
    for model in table.models:
        cells = [html.escape(model), *(table.cell(model, d, m, "html") for d, m in table.columns)]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    if table.unresolved:
        labels = sorted({m.label for d, m in table.columns if any(k[1:] == (d, m.name) for k in table.unresolved)})
        out.append(f'<p class="note">{html.escape(_unresolved_note(labels))}</p>')
    if table.other_images:
        out.append(f'<p class="note">{html.escape(_other_images_note(tidy, sorted(table.other_images)))}</p>')
    return "\n".join(out)


def render_visual(visual) -> tuple[str, int, str]:
    """HTML of a :class:`srbench.ablate.VisualComparison` (made by ``ablate``): (html, n_img_tags, NR label)."""
    import html

    if visual is None:
        return "<p>No visual comparison.</p>", 0, "PI"
    if visual.note:
        return f"<p>{html.escape(visual.note)}</p>", 0, visual.nr_label
    blocks, count = [], 0
    for image, crops in visual.rows:
        figures = []
        for crop in crops:
            psnr_text = "∞" if math.isinf(crop.psnr_y) else f"{crop.psnr_y:.2f} dB"
            figures.append(f'<figure><img alt="{html.escape(crop.model)}" src="{_png_data_uri(crop.pixels)}">'
                           f"<figcaption>{html.escape(crop.model)}<br>{psnr_text} / {crop.no_reference:.2f}"
                           "</figcaption></figure>")
        count += len(figures)
        blocks.append(f"<h3>{html.escape(image)}</h3><div class=\"crops\">{''.join(figures)}</div>")
    return "\n".join(blocks), count, visual.nr_label


def write_html(report, tidy: pd.DataFrame, planes: list[Path], visual=None) -> Path:
    import html

    metrics = _suite_metrics(tidy)
    table = html_table(tidy, metrics, list(report.models)) if metrics else "<p>No results.</p>"
    table = study_metrics_table(report, tidy, "html") + table + "".join(
        f'<p class="note">{html.escape(n)}</p>' for n in absent_notes(report, tidy, metrics))
    plane_html = "\n".join(f'<img alt="{html.escape(p.name)}" style="max-width:100%" src="{_png_data_uri(_load(p))}">'
                           for p in planes)
    crops, n_crops, nr_label = render_visual(visual)
    crop_h, crop_w = (visual.rows[0][1][0].pixels.shape[:2] if visual is not None and visual.rows
                      else (CROP_H, CROP_W))
    failures = ""
    if report.failures:
        items = "".join(f"<li>{html.escape(f)}</li>" for f in report.failures)
        failures = f"<h3>Failures</h3><ul>{items}</ul>"
    page = _PAGE.format(
        title=html.escape(f"srbench: suite {report.suite.name}"), description=html.escape(report.suite.description),
        preset=html.escape(report.preset), datasets=html.escape(", ".join(report.datasets)),
        notice=_notice_html(preset_notice(report)),
        caption=html.escape(_caption(["sr", "pirm"])), table=table, failures=failures,
        training=_training_html(training_rows(report)),
        planes=plane_html or "<p>No pirm-protocol results.</p>", crops=crops, n_images=n_crops + len(planes),
        crop_h=crop_h, crop_w=crop_w, zoom_h=crop_h * 3 // 2, zoom_w=crop_w * 3 // 2, nr_label=html.escape(nr_label),
    )
    path = report.out_dir / "index.html"
    atomic_write_text(path, page)
    return path


def _notice_html(notice: str | None) -> str:
    if not notice:
        return ""
    return ('<p class="notice" style="background:#fff6dc;border-left:4px solid #e0a800;padding:8px 12px">'
            f"{html.escape(notice)}</p>")


def _load(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
