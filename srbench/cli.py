"""The ``srbench`` command: parses options, calls library functions, prints. Heavy imports stay inside the
commands so that ``srbench --help`` is instant."""

from __future__ import annotations

import json
import sys

import click

from srbench import __version__
from srbench.errors import SrbenchError


class _Group(click.Group):
    """Turns srbench's user-facing errors into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SrbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="srbench")
def main() -> None:
    """srbench: super-resolution numbers you can put next to published ones."""


def _split_csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    return names or None


def _progress(label: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        click.echo(f"\r{label}: {done}/{total}", err=True, nl=False)
        click.echo(end, err=True, nl=False)


def _format_table(rows: list[dict], metric_names: list[str]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    cols = ["model", "dataset", "n_images", "protocol", "scale", *metric_names]
    frame = frame[[c for c in cols if c in frame.columns]]
    for name in metric_names:
        if name in frame.columns:
            digits = 4 if name.startswith("ssim") or name == "lpips" else 2 if name.startswith("psnr") else 3
            frame[name] = [("n/a" if v is None or v != v else f"{v:.{digits}f}") for v in frame[name]]
    return frame.to_string(index=False)


@main.command()
@click.option("--model", required=True, help="'bicubic' or a folder of SR images matched to HR by name.")
@click.option("--dataset", "datasets", multiple=True, required=True,
              help="A dataset name (set5, set14, bsd100, urban100, pirm-val, div2k-val, skimage) or a folder; "
                   "repeat for several.")
@click.option("--scale", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--protocol", default="sr", show_default=True, type=click.Choice(["sr", "pirm"]))
@click.option("--metrics", help="Comma-separated metrics (default: the protocol's own set).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per (model, dataset).")
@click.option("--out", type=click.Path(file_okay=False), help="Also write per-image CSV and JSON here.")
@click.option("--data-root", type=click.Path(file_okay=False), help="Where named datasets live "
              "(default: $SRBENCH_DATA, else the checkout's datasets/).")
@click.option("--weights-dir", type=click.Path(file_okay=False),
              help="Where downloaded weights live (default: $SRBENCH_WEIGHTS, else ~/.cache/srbench/weights).")
@click.option("--skip-unavailable", is_flag=True,
              help="Report metrics whose weights are missing as unavailable instead of failing.")
@click.option("--skip-bad", is_flag=True, help="Exit 0 even if some images were skipped as bad input.")
def evaluate(model, datasets, scale, protocol, metrics, as_json, out, data_root, weights_dir,
             skip_unavailable, skip_bad) -> None:
    """Evaluate MODEL on datasets under a named protocol (sr or pirm)."""
    from srbench.evaluate import evaluate as run
    from srbench.evaluate import write_outputs

    results = []
    try:
        for result in run(model, list(datasets), scale=scale, protocol=protocol, metrics=_split_csv(metrics),
                          data_root=data_root, weights_dir=weights_dir, skip_unavailable=skip_unavailable,
                          progress=_progress):
            results.append(result)
            if out:
                write_outputs(result, out)
    finally:
        _report(results, as_json)
    skipped = sum(len(r.skipped) for r in results)
    if skipped and not skip_bad:
        click.echo(f"error: {skipped} image(s) skipped as bad input (see above); --skip-bad accepts that",
                   err=True)
        sys.exit(1)


def _report(results, as_json: bool) -> None:
    if not results:
        return
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2, allow_nan=False))
    else:
        names = list(dict.fromkeys(n for r in results for n in r.metrics))
        click.echo(_format_table([r.to_dict() for r in results], names))
    for r in results:
        for metric, why in r.unavailable.items():
            click.echo(f"unavailable: {metric} ({r.dataset}): {why}", err=True)
        for warning in r.warnings:
            click.echo(f"note: {r.dataset}: {warning}", err=True)
        for bad in r.skipped:
            click.echo(f"skipped: {r.dataset}: {bad['error']}", err=True)


@main.group()
def datasets() -> None:
    """Named datasets, known copies and their checksums."""


@datasets.command("list")
@click.option("--data-root", type=click.Path(file_okay=False))
def datasets_list(data_root) -> None:
    """Show each named dataset and where it was found."""
    from srbench import datasets as D

    for name in D.available_names():
        try:
            ds = D.resolve(name, data_root)
            click.echo(f"{name:10s} {len(ds):4d} images  {ds.layout:9s} {ds.location}")
        except SrbenchError:
            click.echo(f"{name:10s}    - not found")


@datasets.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def datasets_verify(folder, as_json) -> None:
    """Say which known copy FOLDER is and what differs from it."""
    from srbench.manifests import verify_folder

    report = verify_folder(folder)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.describe())
    if not report.identical:
        sys.exit(1)


@datasets.command("manifest")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--name", required=True, help="Dataset name the copy belongs to (set5, set14, ...).")
@click.option("--copy", "copy_id", required=True, help="An id for this copy (e.g. benchmark, selfexsr).")
@click.option("--source", required=True, help="Where this copy comes from (repository, commit, path).")
def datasets_manifest(folder, name, copy_id, source) -> None:
    """Record FOLDER as a known copy of a dataset in datasets/<name>.json."""
    from srbench.manifests import add_copy

    path = add_copy(folder, name, copy_id, source)
    click.echo(f"recorded {copy_id!r} of {name!r} in {path}")


@main.command("metrics")
def metrics_list() -> None:
    """List the metrics, their direction, reference need and implementation version."""
    from srbench.metrics import METRICS
    from srbench.protocols import PROTOCOLS

    for spec in METRICS.values():
        ref = "full-reference" if spec.needs_reference else "no-reference"
        weights = f"  needs {spec.weights}" if spec.weights else ""
        click.echo(f"{spec.name:6s} {spec.direction:6s} is better  {ref:14s} v{spec.version:16s} "
                   f"{spec.description}{weights}")
    for proto in PROTOCOLS.values():
        click.echo(f"protocol {proto.name}: {proto.description}; metrics "
                   f"{', '.join(m.name for m in proto.metrics)} (default {', '.join(proto.default_metrics)})")


if __name__ == "__main__":  # pragma: no cover
    main()
