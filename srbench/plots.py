"""The PIRM perception-distortion plane (Blau et al. 2018; ESRGAN paper Fig. 2)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

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
    """(model, rmse, y) for one dataset, and which quantity y is: ``pi``, or ``niqe`` when PI is missing."""
    sub = tidy[(tidy["dataset"] == dataset) & (tidy["protocol"] == "pirm")]
    wide = sub.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    if "rmse" not in wide:
        raise ValueError(f"no pirm-protocol RMSE for dataset {dataset!r}")
    y_metric = "pi" if "pi" in wide and wide["pi"].notna().any() else "niqe"
    if y_metric not in wide:
        raise ValueError(f"neither PI nor NIQE for dataset {dataset!r}")
    points = wide[["rmse", y_metric]].dropna().rename(columns={y_metric: "y"}).reset_index()
    return points, y_metric


def region_winners(points: pd.DataFrame) -> dict[str, str]:
    """PIRM region -> the model with the lowest y inside it."""
    from srbench.protocols import pirm_region

    winners: dict[str, tuple[float, str]] = {}
    for _, p in points.iterrows():
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


def pirm_plane(tidy: pd.DataFrame, out: str | Path, *, dataset: str, title: str | None = None,
               intervals: Mapping | None = None) -> Path:
    """Draw RMSE (x) against PI (y, lower is better) with the three PIRM regions shaded; with ``intervals``
    ((model, dataset, metric) -> interval, from ``srbench.stats.table_intervals``) each point gets error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from srbench.metrics import get_metric

    fmt = Path(out).suffix[1:].lower() or "png"
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        from srbench.errors import BadInputError

        raise BadInputError(f"{out}: cannot draw a .{fmt} file; use one of {', '.join(sorted(supported))}")
    points, y_metric = plane_points(tidy, dataset)
    x_spec, y_spec = get_metric("rmse"), get_metric(y_metric)  # labels and directions from the descriptors
    y_label = f"{y_spec.label} ({y_spec.direction} is better)"
    if y_metric != "pi":
        y_label += " — PI unavailable: no Ma weights"
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=120)
    xerr, yerr = error_bars(points, y_metric, dataset, intervals or {})  # zero without intervals
    lo_x = min(float((points["rmse"] - xerr[0]).min()) - 0.5, 10.5)  # the error bars stay inside the axes
    x_max = max(16.5, float((points["rmse"] + xerr[1]).max()) + 0.5)
    low = lo_x
    colours = ("#d9f0d3", "#fee8c8", "#deebf7")
    for (name, high), colour in zip(PIRM_REGIONS, colours, strict=True):
        ax.axvspan(low, high, color=colour, alpha=0.7, zorder=0, label=f"{name}: RMSE ≤ {high}")
        ax.text((low + high) / 2, 0.99, name, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8)
        low = high
    alphas = {m: a for m in points["model"] if (a := _alpha_of(m)) is not None}
    interp = points[points["model"].isin(alphas)].copy()
    if not interp.empty:
        interp["alpha"] = interp["model"].map(alphas)
        interp = interp.sort_values("alpha")
        ax.plot(interp["rmse"], interp["y"], "-o", color="#555555", ms=4, zorder=2, label="network interpolation")
        for _, p in interp.iterrows():
            ax.annotate(f"α={p['alpha']:g}", (p["rmse"], p["y"]), fontsize=7, xytext=(4, -8),
                        textcoords="offset points")
    others = points[~points["model"].isin(alphas)]
    ax.scatter(others["rmse"], others["y"], color="#1f77b4", zorder=3, label="models")
    for _, p in others.iterrows():
        ax.annotate(p["model"], (p["rmse"], p["y"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    if intervals:
        first = next(iter(intervals.values()))
        ax.errorbar(points["rmse"], points["y"], xerr=xerr, yerr=yerr, fmt="none", ecolor="#777777", elinewidth=1,
                    capsize=2, zorder=1, label=f"{first.confidence:.0%} bootstrap interval over images")
    winners = region_winners(points)
    for region, model in winners.items():
        p = points[points["model"] == model].iloc[0]
        ax.scatter([p["rmse"]], [p["y"]], marker="*", s=220, color="#d62728", zorder=4,
                   label="best in region" if region == next(iter(winners)) else None)
    ax.set_xlim(lo_x, x_max)
    ax.set_xlabel(f"{x_spec.label} (pirm protocol, {x_spec.direction} is better)")
    ax.set_ylabel(y_label)
    what = "PI" if y_metric == "pi" else "NIQE (PI unavailable)"
    ax.set_title(title or f"Perception-distortion plane, {dataset}: RMSE vs {what}")
    if y_metric != "pi":
        ax.plot([], [], " ", label="y axis: NIQE, PI unavailable (no Ma weights)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    import io

    from srbench.images import atomic_write_bytes

    out = Path(out)
    # Rendered in memory, then written atomically: a read-only folder or a full disk is one OutputError
    # naming the file, and never leaves a half-written image or a temporary file behind.
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt)
    finally:
        plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out
