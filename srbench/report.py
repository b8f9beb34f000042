"""Tidy result tables and paper tables, built from the results store.

The tidy form has one row per model x dataset x protocol x metric. Dataset-level numbers are always
re-aggregated from the stored per-image values with the protocol's own rule (mean; RMSE = sqrt(mean MSE);
PI from the mean Ma and NIQE), using only values of the current metric versions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from srbench.images import atomic_write_text
from srbench.protocols import PROTOCOLS

# Display names and the protocol each reported metric comes from.
METRIC_PROTOCOL = {"psnr_y": "sr", "ssim_y": "sr", "lpips": "sr", "rmse": "pirm", "niqe": "pirm", "ma": "pirm",
                   "pi": "pirm"}
METRIC_LABEL = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "lpips": "LPIPS", "rmse": "RMSE", "niqe": "NIQE",
                "ma": "Ma", "pi": "PI"}
DIGITS = {"psnr_y": 2, "ssim_y": 4, "lpips": 4, "rmse": 2, "niqe": 3, "ma": 3, "pi": 3}


def tidy_from_store(store_rows: list[dict]) -> pd.DataFrame:
    """Aggregate stored per-image values into the tidy table."""
    groups: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in store_rows:
        key = (r["model"], r["dataset"], r["protocol"], r["scale"])
        groups[key][r["image"]][(r["metric"], r["metric_version"])] = r["value"]
    out = []
    for (model, dataset, protocol, scale), images in groups.items():
        proto = PROTOCOLS[protocol]
        for metric in proto.metrics:
            versions = proto.output_versions([metric.name, *metric.requires])
            rows = []
            for values in images.values():
                row = {name: values.get((name, v)) for name, v in versions.items()}
                if any(v is None for v in row.values()):
                    break  # not every image has it: the metric was not computed for this model
                rows.append(row)
            else:
                if rows:
                    value = proto.aggregate(rows, [metric.name])[metric.name]
                    out.append({"model": model, "dataset": dataset, "protocol": protocol, "scale": scale,
                                "metric": metric.name, "value": value, "n_images": len(rows),
                                "higher_is_better": metric.spec.higher_is_better,
                                "version": proto.versions([metric.name])[metric.name]})
    return pd.DataFrame(out, columns=["model", "dataset", "protocol", "scale", "metric", "value", "n_images",
                                      "higher_is_better", "version"])


def tidy_from_results(results: Sequence) -> pd.DataFrame:
    """The tidy table of in-memory :class:`srbench.evaluate.EvalResult` objects."""
    out = []
    for r in results:
        proto = PROTOCOLS[r.protocol]
        for name in r.metrics:
            value = r.summary.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            out.append({"model": r.model, "dataset": r.dataset, "protocol": r.protocol, "scale": r.scale,
                        "metric": name, "value": value, "n_images": r.n_images,
                        "higher_is_better": proto.metric(name).spec.higher_is_better,
                        "version": proto.versions([name])[name]})
    return pd.DataFrame(out, columns=["model", "dataset", "protocol", "scale", "metric", "value", "n_images",
                                      "higher_is_better", "version"])


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


def paper_table(tidy: pd.DataFrame, metrics: Sequence[str], fmt: str = "markdown", models: Sequence[str] | None = None,
                datasets: Sequence[str] | None = None, caption: str | None = None) -> str:
    """Models as rows, dataset x metric columns with direction arrows; best bold, second underlined;
    missing values shown as such, never as zero."""
    if fmt not in ("markdown", "latex", "csv"):
        raise ValueError(f"unknown table format {fmt!r}: use markdown, latex or csv")
    unknown = [m for m in metrics if m not in METRIC_PROTOCOL]
    if unknown:
        from srbench.errors import BadInputError

        raise BadInputError(f"unknown metric(s) {unknown}; known: {', '.join(METRIC_PROTOCOL)}")
    models = list(models or dict.fromkeys(tidy["model"]))
    datasets = list(datasets or dict.fromkeys(tidy["dataset"]))
    columns = [(d, m) for d in datasets for m in metrics]
    cells: dict[tuple, dict[str, str]] = {}
    raw: dict[tuple, pd.Series] = {}
    for d, m in columns:
        sub = tidy[(tidy["dataset"] == d) & (tidy["metric"] == m)].set_index("model")["value"]
        raw[(d, m)] = sub.reindex(models)
    if fmt == "csv":
        frame = pd.DataFrame({f"{d}/{m}": raw[(d, m)] for d, m in columns}, index=models)
        return frame.to_csv(index_label="model")
    for (d, m), series in raw.items():
        higher = m not in ("rmse", "niqe", "pi", "lpips")
        marks = _rank_marks(series, higher)
        col = {}
        for model in models:
            v = series.get(model)
            if v is None or pd.isna(v):
                col[model] = "–" if fmt == "markdown" else "--"
                continue
            text = f"{v:.{DIGITS[m]}f}"
            if marks.get(model) == 1:
                text = f"**{text}**" if fmt == "markdown" else f"\\textbf{{{text}}}"
            elif marks.get(model) == 2:
                text = f"<u>{text}</u>" if fmt == "markdown" else f"\\underline{{{text}}}"
            col[model] = text
        cells[(d, m)] = col
    arrow = {m: ("↑" if m not in ("rmse", "niqe", "pi", "lpips") else "↓") for m in metrics}
    protocols = sorted({METRIC_PROTOCOL[m] for m in metrics})
    caption = caption or _caption(protocols)
    if fmt == "markdown":
        head = "| Model | " + " | ".join(f"{d} {METRIC_LABEL[m]} {arrow[m]}" for d, m in columns) + " |"
        sep = "|---|" + "|".join("---:" for _ in columns) + "|"
        body = ["| " + model + " | " + " | ".join(cells[c][model] for c in columns) + " |" for model in models]
        return "\n".join([head, sep, *body, "", f"*{caption}*", ""])
    latex_arrow = {"↑": "$\\uparrow$", "↓": "$\\downarrow$"}
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}",
             "\\begin{tabular}{l" + "r" * len(columns) + "}", "\\toprule",
             "Model & " + " & ".join(f"{_tex(d)} {METRIC_LABEL[m]} {latex_arrow[arrow[m]]}" for d, m in columns)
             + " \\\\", "\\midrule"]
    lines += [_tex(model) + " & " + " & ".join(cells[c][model] for c in columns) + " \\\\" for model in models]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _tex(text: str) -> str:
    return text.replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def _caption(protocols: list[str]) -> str:
    parts = []
    if "sr" in protocols:
        parts.append("PSNR/SSIM under the sr protocol (Y of YCbCr, unrounded, border = scale)")
    if "pirm" in protocols:
        parts.append("RMSE/NIQE/Ma/PI under the pirm protocol (rounded Y, shave 4, RMSE = sqrt(mean MSE))")
    return "; ".join(parts) + ". Best in bold, second underlined; -- = not available."


def write_suite_report(report) -> list[Path]:
    """Tidy CSV, Markdown and LaTeX tables, the perception-distortion plane and the HTML page of a suite run."""
    out = report.out_dir
    out.mkdir(parents=True, exist_ok=True)
    tidy = tidy_from_results(report.results)
    written = []
    atomic_write_text(out / "results.csv", tidy.to_csv(index=False))
    written.append(out / "results.csv")
    metrics = [m for m in ("psnr_y", "ssim_y", "rmse", "niqe", "ma", "pi") if m in set(tidy["metric"])]
    if metrics:
        for fmt, suffix in (("markdown", "md"), ("latex", "tex")):
            text = paper_table(tidy, metrics, fmt, models=list(report.models))
            atomic_write_text(out / f"table.{suffix}", text)
            written.append(out / f"table.{suffix}")
        from srbench.plots import pirm_plane

        for dataset in report.datasets:
            try:
                path = pirm_plane(tidy, out / f"pirm_plane_{dataset}.png", dataset=dataset)
                written.append(path)
            except ValueError:
                pass  # no pirm numbers for this dataset
    if report.failures:
        atomic_write_text(out / "failures.txt", "\n".join(report.failures) + "\n")
        written.append(out / "failures.txt")
    return written
