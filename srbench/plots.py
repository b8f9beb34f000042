"""The PIRM perception-distortion plane (Blau et al. 2018; ESRGAN paper Fig. 2)."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from srbench.errors import BadInputError
from srbench.protocols import PIRM_REGIONS

_ALPHA = re.compile(r"-interp-alpha([0-9.eE+-]+)$")  # srbench.checkpoints.alpha_label: repr of a float


def _alpha_of(model: str) -> float | None:
    """The interpolation weight in a model name made by ``ablate``, or None for any other model."""
    found = _ALPHA.search(model)
    try:
        return float(found.group(1)) if found else None
    except ValueError:
        return None


def plane_points(tidy: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, str]:
    """(model, rmse, y) for one dataset, and which quantity y is: ``pi``, or ``niqe`` when PI is missing.
    Without a point to draw, a BadInputError says why (no pirm results for the dataset, and what there is; or
    every value undefined)."""
    sub = tidy[(tidy["dataset"] == dataset) & (tidy["protocol"] == "pirm")]
    if sub.empty:
        raise BadInputError(_no_pirm_results(tidy, dataset))
    wide = sub.pivot_table(index="model", columns="metric", values="value", aggfunc="first", dropna=False)
    if "rmse" not in wide:
        raise BadInputError(f"no pirm-protocol RMSE for dataset {dataset!r}")
    y_metric = "pi" if "pi" in wide and wide["pi"].notna().any() else "niqe"
    if y_metric not in wide:
        raise BadInputError(f"neither PI nor NIQE for dataset {dataset!r}")
    points = wide[["rmse", y_metric]].dropna().rename(columns={y_metric: "y"}).reset_index()
    if points.empty:
        from srbench.metrics import get_metric

        raise BadInputError(f"no model has both an RMSE and a {y_metric.upper()} on {dataset!r}: every value "
                            f"is undefined (NaN: {get_metric('niqe').undefined_when}, a flat image has "
                            "none), so there is no point to draw")
    return points, y_metric


def _no_pirm_results(tidy: pd.DataFrame, dataset: str) -> str:
    if tidy.empty:
        return "no results"
    held = sorted({f"{d} ({p})" for d, p in zip(tidy["dataset"], tidy["protocol"], strict=True)})
    return (f"no pirm-protocol results for dataset {dataset!r} (there are: {', '.join(held)}); the plane needs "
            f"srbench evaluate --protocol pirm --dataset {dataset} --store, or srbench ablate")


def region_winners(points: pd.DataFrame, others: Collection[str] = ()) -> dict[str, str]:
    """PIRM region -> the model with the lowest y inside it, among the models not in ``others`` (means over other
    images: :func:`plane_others`)."""
    from srbench.protocols import pirm_region

    winners: dict[str, tuple[float, str]] = {}
    for _, p in points[~points["model"].isin(list(others))].iterrows():
        region = pirm_region(p["rmse"])
        if region and (region not in winners or p["y"] < winners[region][0]):
            winners[region] = (p["y"], p["model"])
    return {r: m for r, (_, m) in winners.items()}


def error_bars(points: pd.DataFrame, y_metric: str, dataset: str, intervals: Mapping) -> tuple[list, list]:
    """Matplotlib's asymmetric (xerr, yerr) of the plane's points from (model, dataset, metric) -> interval
    (``srbench.stats.table_intervals``); a point without an interval gets no bar."""
    bars = []
    for metric, column in (("rmse", "rmse"), (y_metric, "y")):
        below, above = [], []
        for model, value in zip(points["model"], points[column], strict=True):
            found = intervals.get((model, dataset, metric))
            low, high = (found.low, found.high) if found is not None else (math.nan, math.nan)
            ok = not (math.isnan(low) or math.isnan(high))
            below.append(max(value - low, 0.0) if ok else 0.0)
            above.append(max(high - value, 0.0) if ok else 0.0)
        bars.append([below, above])
    return bars[0], bars[1]


def conditioning_ranges(tidy: pd.DataFrame, points: pd.DataFrame, y_metric: str, dataset: str) -> pd.DataFrame:
    """(model, rmse, low, high) of the points whose y (NIQE, or PI through NIQE) has a conditioning range wider
    than NIQE's ill-conditioning threshold (tidy's ``cond_low``/``cond_high``): where the order of two points on
    the y axis can be an artifact of the metric's arithmetic."""
    from srbench.metrics import get_metric

    threshold = get_metric("niqe").ill_conditioned_spread
    columns = ["model", "rmse", "low", "high"]
    if "cond_low" not in tidy.columns:
        return pd.DataFrame(columns=columns)
    rows = tidy[(tidy["dataset"] == dataset) & (tidy["protocol"] == "pirm") & (tidy["metric"] == y_metric)]
    ranges = rows.set_index("model")[["cond_low", "cond_high"]]
    out = []
    for model, rmse in zip(points["model"], points["rmse"], strict=True):
        if model in ranges.index:
            low, high = ranges.loc[model, "cond_low"], ranges.loc[model, "cond_high"]
            if high - low > threshold:  # False with NaN
                out.append({"model": model, "rmse": rmse, "low": low, "high": high})
    return pd.DataFrame(out, columns=columns)


def point_labels(points: pd.DataFrame, marked: Collection[str] = ()) -> list[tuple[float, float, str]]:
    """One label per distinct point, in the points' order: models at the same (RMSE, y) share it ("a = b"), an
    interpolated model is named by its weight (α=0.2), a model of ``marked`` (other images) followed by ¶."""
    groups: dict[tuple[float, float], list[str]] = {}
    for model, x, y in zip(points["model"], points["rmse"], points["y"], strict=True):
        alpha = _alpha_of(model)
        name = (model if alpha is None else f"α={alpha:g}") + ("¶" if model in marked else "")
        groups.setdefault((float(x), float(y)), []).append(name)
    # Trained models first, then interpolation weights ("esrgan-psnr = α=0").
    return [(x, y, " = ".join(sorted(names, key=lambda n: n.startswith("α=")))) for (x, y), names in groups.items()]


def comparable_with(tidy: pd.DataFrame, dataset: str) -> tuple[Collection[int] | None, bool]:
    """(the scales of ``dataset``'s results, whether they are over as many images as the named set has): what
    published numbers beside them must match, on the plane and in tables (a folder of one's own named
    ``set14``, or a mean over some images only, is not Set14)."""
    from srbench.datasets import KNOWN_SIZES

    rows = tidy[tidy["dataset"] == dataset]
    scales = set(rows["scale"]) if "scale" in rows and not rows.empty else None
    counts = set(rows["n_images"].dropna().astype(int)) if "n_images" in rows else set()
    known = KNOWN_SIZES.get(dataset.casefold())
    return scales, not (known is not None and counts and counts != {known})


def unrecorded_images(tidy: pd.DataFrame, dataset: str) -> bool:
    """Whether ``dataset``'s results are over images named as no copy of the named set the manifests record names
    them (a folder of one's own called ``set5`` holding other images): published numbers beside them say so."""
    from srbench.datasets import recorded_image_sets

    rows = tidy[tidy["dataset"] == dataset]
    digests = set(rows["image_set"].dropna()) if "image_set" in rows else set()
    recorded = recorded_image_sets(dataset) if digests else []
    return bool(recorded) and not digests <= set(recorded)


def _image_set_of(row: pd.Series) -> Any:
    """What a cell's value is over: its image_set digest, else (older tidy tables, dataset-level metrics) its count."""
    found = row.get("image_set")
    return found if isinstance(found, str) else ("n", row.get("n_images"))


def on_other_images(column: pd.DataFrame, shown: Sequence[str], recorded: Collection[str] = ()) -> list[str]:
    """The models of one column (tidy rows of one dataset and metric, indexed by model) whose value is over other
    images than the column's reference set: a recorded copy's images of the set the column names (a folder of
    one's own called set5 beside the real Set5 was the reference when it came first), then the set most shown
    values share, of those the largest, of those the first model's. The tables mark them and rank them not; the
    plane marks them and names no region's best among them."""
    if len(shown) < 2 or column.index.has_duplicates:
        return []
    sets = {model: _image_set_of(column.loc[model]) for model in shown}
    counts = {model: column.loc[model].get("n_images") for model in shown}
    usage = {s: list(sets.values()).count(s) for s in sets.values()}
    reference = max(shown, key=lambda model: (sets[model] in recorded, usage[sets[model]], counts[model] or 0,
                                              -shown.index(model)))
    return [model for model in shown if sets[model] != sets[reference]]


def plane_others(tidy: pd.DataFrame, dataset: str, points: pd.DataFrame, y_metric: str) -> list[str]:
    """The plane's models whose RMSE or y is a mean over other images than the rest's (see
    :func:`on_other_images`): marked ¶, never a region's best."""
    from srbench.datasets import recorded_image_sets

    models = list(points["model"])
    rows = tidy[(tidy["dataset"] == dataset) & (tidy["protocol"] == "pirm") & tidy["model"].isin(models)]
    recorded = set(recorded_image_sets(dataset))
    found: set[str] = set()
    for metric in ("rmse", y_metric):
        found.update(on_other_images(rows[rows["metric"] == metric].set_index("model"), models, recorded))
    return [m for m in models if m in found]


def published_points(collections: Sequence[str], dataset: str, scales: Collection[int] | None = None,
                     full_set: bool = True) -> pd.DataFrame:
    """(model, rmse, y) of the published methods of ``collections`` (``srbench.published_results``) with both a
    pirm-protocol RMSE and a PI on ``dataset`` (at one of ``scales``, when given: the plane's results'; none when
    the results are not over the ``full_set``); the model is the published row's name (marked †)."""
    from srbench import published_results as P

    found: dict[str, dict[str, float]] = {}
    for v in P.select(collections):
        if (scales is not None and v.scale not in scales) or not full_set:
            continue
        if v.dataset == dataset and v.protocol == "pirm" and v.metric in ("rmse", "pi"):
            found.setdefault(P.row_name(v), {})["rmse" if v.metric == "rmse" else "y"] = v.value
    rows = [{"model": m, **xy} for m, xy in found.items() if len(xy) == 2]
    return pd.DataFrame(rows, columns=["model", "rmse", "y"])


def pirm_plane(tidy: pd.DataFrame, out: str | Path, *, dataset: str, title: str | None = None,
               intervals: Mapping | None = None, published: Sequence[str] | None = None) -> Path:
    """Draw RMSE (x) against PI (y, lower is better) with the three PIRM regions shaded; with ``intervals``
    ((model, dataset, metric) -> interval, from ``srbench.stats.table_intervals``) each point gets error bars.
    Labels are placed so that none overlaps another (adjustText), and the legend sits beside the axes."""
    fmt = Path(out).suffix[1:].lower() or "png"
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        from srbench.errors import BadInputError

        raise BadInputError(f"{out}: cannot draw a .{fmt} file; use one of {', '.join(sorted(supported))}")
    fig = draw_plane(tidy, dataset=dataset, title=title, intervals=intervals, published=published)
    import io

    from srbench.images import atomic_write_bytes

    out = Path(out)
    # Rendered in memory, then written atomically: a read-only folder or a full disk is one OutputError
    # naming the file, and never leaves a half-written image or a temporary file behind.
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches="tight")
    atomic_write_bytes(out, buf.getvalue())
    return out


def draw_plane(tidy: pd.DataFrame, *, dataset: str, title: str | None = None, intervals: Mapping | None = None,
               published: Sequence[str] | None = None):
    """The plane's matplotlib figure (see :func:`pirm_plane`); its point labels are the texts with gid "label".
    ``published``: collections whose methods are drawn as hollow markers (PI and RMSE on ``dataset``), labelled."""
    # A Figure of its own with an Agg canvas, not pyplot's: no backend is switched (a notebook keeps its inline
    # one) and nothing stays registered with pyplot once the figure is dropped.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from srbench.metrics import get_metric

    points, y_metric = plane_points(tidy, dataset)
    x_spec, y_spec = get_metric("rmse"), get_metric(y_metric)  # labels and directions from the descriptors
    y_label = f"{y_spec.label} ({y_spec.direction} is better)"
    if y_metric != "pi":
        y_label += " — PI unavailable: no Ma weights"
    fig = Figure(figsize=(9.5, 5.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    xerr, yerr = error_bars(points, y_metric, dataset, intervals or {})  # zero without intervals
    pub = published_points(published or [], dataset, *comparable_with(tidy, dataset))
    if y_metric != "pi":  # published PI values cannot sit on a NIQE axis
        pub = pub.iloc[0:0]
    lo_x = min(float((points["rmse"] - xerr[0]).min()) - 0.5, 10.5, *(pub["rmse"] - 0.5))  # bars stay inside
    x_max = max(16.5, float((points["rmse"] + xerr[1]).max()) + 0.5, *(pub["rmse"] + 0.5))
    low = lo_x
    colours = ("#d9f0d3", "#fee8c8", "#deebf7")
    for (name, high), colour in zip(PIRM_REGIONS, colours, strict=True):
        ax.axvspan(low, high, color=colour, alpha=0.7, zorder=0, label=f"{name}: RMSE ≤ {high}")
        low = high
    _draw_models(ax, points, intervals, xerr, yerr)
    noisy = conditioning_ranges(tidy, points, y_metric, dataset)
    if not noisy.empty:
        ax.vlines(noisy["rmse"], noisy["low"], noisy["high"], colors="#9467bd", linewidth=5, alpha=0.35, zorder=1,
                  gid="conditioning", label="NIQE's conditioning range (flat areas):\nan order inside it is noise")
    # PIRM ranks a region by PI; by NIQE alone it would be another ranking than the challenge's (as the CLI says)
    others = plane_others(tidy, dataset, points, y_metric)
    winners = region_winners(points, others) if y_metric == "pi" else {}
    for region, model in winners.items():
        p = points[points["model"] == model].iloc[0]
        ax.scatter([p["rmse"]], [p["y"]], marker="*", s=220, color="#d62728", zorder=4,
                   label="best in region" if region == next(iter(winners)) else None)
    ax.set_xlim(lo_x, x_max)
    ax.set_xlabel(f"{x_spec.label} (pirm protocol, {x_spec.direction} is better)")
    ax.set_ylabel(y_label)
    what = "PI" if y_metric == "pi" else "NIQE (PI unavailable)"
    ax.set_title(title or f"Perception-distortion plane, {dataset}: RMSE vs {what}", parse_math=False)
    _draw_notes(ax, tidy, dataset, y_metric, pub, bool(published), bool(others))
    # Beside the axes, never over the data (drawn last: an entry added after it was left out of it).
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)
    everything = pd.concat([points, pub], ignore_index=True) if not pub.empty else points
    # bars stay inside, as on the x axis
    y_low = min([float(everything["y"].min()), float((points["y"] - yerr[0]).min()), *noisy["low"]])
    y_high = max([float(everything["y"].max()), float((points["y"] + yerr[1]).max()), *noisy["high"]])
    y_span = (y_high - y_low) or 1.0
    ax.set_ylim(y_low - 0.08 * y_span, y_high + 0.15 * y_span)
    fig.tight_layout()
    _place_labels(ax, everything, marked=others)
    return fig


def _draw_notes(ax, tidy: pd.DataFrame, dataset: str, y_metric: str, pub: pd.DataFrame, published: bool,
                others: bool) -> None:
    """The published points, and the legend's notes on what the plane shows."""
    if y_metric != "pi":
        ax.plot([], [], " ", label="y axis: NIQE, PI unavailable (no Ma weights:\nsrbench fetch weights nrqm)")
    if not pub.empty:
        ax.scatter(pub["rmse"], pub["y"], facecolors="none", edgecolors="#333333", linewidths=1.2, s=55, zorder=3,
                   label="published (†, not computed here)")
        if unrecorded_images(tidy, dataset):
            ax.plot([], [], " ", label=f"{dataset} here: images named as no recorded\ncopy of it (not the "
                                       "published set?)")
    elif published and y_metric != "pi":
        ax.plot([], [], " ", label="published points not shown: their y is PI")
    if others:
        ax.plot([], [], " ", label="¶ a mean over other images than the rest\n(not comparable; never a region's best)")


def _draw_models(ax, points: pd.DataFrame, intervals: Mapping | None, xerr: list, yerr: list) -> None:
    """The models' points: interpolated ones joined by a line in weight order, their bootstrap error bars."""
    alphas = {m: a for m in points["model"] if (a := _alpha_of(m)) is not None}
    interp = points[points["model"].isin(alphas)].copy()
    if not interp.empty:
        interp["alpha"] = interp["model"].map(alphas)
        interp = interp.sort_values("alpha")
        ax.plot(interp["rmse"], interp["y"], "-o", color="#555555", ms=4, zorder=2, label="network interpolation")
    others = points[~points["model"].isin(alphas)]
    ax.scatter(others["rmse"], others["y"], color="#1f77b4", zorder=3, label="models")
    if intervals:
        first = next(iter(intervals.values()))
        ax.errorbar(points["rmse"], points["y"], xerr=xerr, yerr=yerr, fmt="none", ecolor="#777777", elinewidth=1,
                    capsize=2, zorder=1, label=f"{first.confidence:.0%} bootstrap interval over images")


# adjustText's settings, from gentle to forceful: the first that leaves no two labels overlapping is kept.
_LABEL_PUSHES = (((1.2, 1.6), (0.3, 0.6)), ((1.3, 1.9), (0.5, 1.0)), ((1.5, 2.4), (0.8, 1.5)))


def _place_labels(ax, points: pd.DataFrame, marked: Collection[str] = ()) -> list:
    """One text per distinct point (:func:`point_labels`; a model of ``marked`` followed by ¶), moved by adjustText
    (with a leader line) until none overlaps another; returns the texts (gid "label")."""
    from adjustText import adjust_text  # type: ignore[import-untyped]

    x, y = points["rmse"].to_numpy(float), points["y"].to_numpy(float)
    texts: list = []
    for expand, force in _LABEL_PUSHES:
        before = set(ax.get_children())
        # parse_math off: a model name is text ('cost $5 vs $6' was typeset as math, '$\\foo$' a traceback)
        texts = [ax.text(px, py, label, fontsize=7, gid="label", zorder=5, parse_math=False)
                 for px, py, label in point_labels(points, marked)]
        adjust_text(texts, x=x, y=y, ax=ax, expand=expand, force_text=force,
                    arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.5})
        if not overlapping_labels(texts):
            break
        if (expand, force) != _LABEL_PUSHES[-1]:
            for artist in set(ax.get_children()) - before:  # this attempt's texts and leader lines
                artist.remove()
    return texts


def overlapping_labels(texts: list) -> list[tuple[str, str]]:
    """Pairs of texts whose drawn boxes intersect."""
    if not texts:
        return []
    renderer = texts[0].figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i in range(len(texts)) for j in range(i + 1, len(texts))
            if boxes[i].overlaps(boxes[j])]
