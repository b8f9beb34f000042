"""The ``srbench`` command: parses options, calls library functions, prints. Heavy imports stay inside the
commands so that ``srbench --help`` is instant."""

from __future__ import annotations

import contextlib
import sys

import click

from srbench.errors import BadInputError, SrbenchError
from srbench.jsonnum import dumps as json_dumps
from srbench.version import __version__


class _Group(click.Group):
    """Turns srbench's user-facing errors into one line on stderr instead of a traceback."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except SystemExit as done:
            from srbench import work_split

            if work_split.in_launch():
                code = done.code
                if isinstance(code, str):
                    click.echo(code, err=True)
                work_split.leave_launch(code if isinstance(code, int) else 0 if code is None else 1)
            raise

    def invoke(self, ctx: click.Context):
        import errno

        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # 128 + SIGINT, as a shell reports it: never 1, which `srbench check` (and scripts after it) read as
            # drift. What was computed is stored already; a re-run resumes.
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except SrbenchError as exc:
            from srbench.errors import StoppedByUser

            click.echo(f"error: {exc}", err=True)
            ctx.exit(130 if isinstance(exc, StoppedByUser) else 1)  # a Ctrl-C that saved first is still one
        except OSError as exc:
            # A last line of defence: a file operation srbench does not wrap yet is still one line, not a
            # traceback. A closed stdout pipe (srbench ... | head) stays click's own business.
            if exc.errno == errno.EPIPE:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="srbench")
def main() -> None:
    """srbench: super-resolution numbers you can put next to published ones."""
    from srbench.workers import keep_freed_memory, short_blas_spin

    keep_freed_memory()  # the command's process is srbench's own (see there)
    short_blas_spin()  # before numpy loads OpenBLAS


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
    from srbench.metrics import get_metric
    from srbench.text import aligned_table, format_value

    shown = ("model", "dataset", "n_images", "protocol", "scale", *metric_names)
    cols = [c for c in shown if any(c in r for r in rows)]
    digits = {name: get_metric(name).digits for name in metric_names}

    def cell(row: dict, col: str) -> str:
        value = row.get(col)
        if col not in digits:
            return "" if value is None else str(value)
        if col in (row.get("unavailable") or {}):
            return "n/a"  # not computed (its weights missing under --skip-unavailable: a line says why)
        # undefined (NaN, which to_dict writes as JSON's null) is '–', the one rule of docs/results.md
        return "–" if value is None or value != value else format_value(float(value), digits[col])

    return aligned_table(cols, [[cell(r, c) for c in cols] for r in rows])


def _allow_unpinned(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from srbench.weights import allowing

        ctx.with_resource(allowing())  # for this command only, restored when it ends


allow_unpinned_weights = click.option(
    "--allow-unpinned-weights", is_flag=True, expose_value=False, callback=_allow_unpinned,
    help="Use weights files whose sha256 is not the pinned one (as SRBENCH_ALLOW_UNPINNED_WEIGHTS=1 does); each "
         "file's sha256 is recorded with the values. Without it such a file is an error.")


@main.command("evaluate")
@click.option("--model", "models", multiple=True,
              help="'bicubic', a generator checkpoint, variant or published checkpoint name (srbench models "
                   "list), or a folder of SR images matched by name; repeat for several.")
@click.option("--tree", type=click.Path(file_okay=False),
              help="A tree of released results <method>/<dataset>/x<scale>/ (e.g. RCAN/Set5/x4/baby_RCAN_x4.png): "
                   "each leaf evaluated on that dataset at that scale, named by its method.")
@click.option("--dataset", "datasets", multiple=True,
              help="A dataset name (set5, set14, bsd100, urban100, pirm-val, div2k-val, skimage) or a folder; "
                   "repeat for several (needed with --model).")
@click.option("--scale", type=click.IntRange(min=1),
              help="The scale of --model [default: 4]; with --tree, only the leaves x<scale> [default: all].")
@click.option("--protocol", default="sr", show_default=True, type=click.Choice(["sr", "pirm"]))
@click.option("--metrics", help="Comma-separated metrics (default: the protocol's own set).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per (model, dataset).")
@click.option("--out", type=click.Path(file_okay=False), help="Also write per-image CSV and JSON here.")
@click.option("--data-root", type=click.Path(file_okay=False), help="Where named datasets live "
              "(default: $SRBENCH_DATA, else the checkout's datasets/, or ~/.cache/srbench/datasets installed).")
@click.option("--weights-dir", type=click.Path(file_okay=False),
              help="Where downloaded weights live (default: $SRBENCH_WEIGHTS, else ~/.cache/srbench/weights).")
@click.option("--skip-unavailable", is_flag=True,
              help="Report metrics whose weights are missing as unavailable instead of failing.")
@click.option("--skip-bad", is_flag=True, help="Exit 0 even if some images were skipped as bad input.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--tile", type=click.IntRange(min=1), help="Tile size (LR pixels) for generator inference.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False),
              help="Results store (SQLite, created if missing): reuse cached values, record provenance, and label "
                   "the results for srbench results/table/pirm-plane.")
@click.option("--name", "names", multiple=True,
              help="The model's name in the store and the output (default: the folder, variant or checkpoint "
                   "name); with several --model, one --name per --model, in order.")
@click.option("--suite", "suite_name", default="evaluate", show_default=True,
              help="The suite the results are labelled under in the store (--suite of table and pirm-plane).")
@click.option("--max-pixels", type=click.IntRange(min=1),
              help="Largest image (width x height) read; larger ones are skipped as bad input.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes computing the metrics (default: the usable CPU cores). Results do not depend on it.")
@allow_unpinned_weights
@click.option("--torch-metrics/--host-metrics", default=None,
              help="PSNR, SSIM, RMSE and LPIPS on the generator's device, where its SR image is (default: when it "
                   "runs on a GPU), or on the host (the reference).")
@click.option("--sr-pattern", help="How the SR folder's files are named, e.g. '{name}_RCAN_x{scale}' (default: by "
                                   "the image's name, else the prefix/suffix all the folder's files share).")
def evaluate_command(models, tree, datasets, scale, protocol, metrics, as_json, out, data_root, weights_dir,
                     skip_unavailable, skip_bad, device, tile, store_path, names, suite_name, max_pixels, workers,
                     torch_metrics, sr_pattern) -> None:
    """Evaluate each --model on datasets, or each leaf of a --tree of released results, under a named protocol
    (sr or pirm)."""
    from contextlib import AbstractContextManager, nullcontext

    from srbench.evaluation import evaluate_model, write_outputs
    from srbench.images import ensure_writable_dir, set_max_pixels
    from srbench.options import EvalOptions
    from srbench.work_split import ranks

    _check_model_arguments(models, tree, datasets, names, sr_pattern, scale)
    set_max_pixels(max_pixels)
    if tree or len(models) > 1:
        _evaluate_many(models, names, tree, datasets, scale, out, as_json, skip_bad, store_path, suite_name,
                       dict(protocol=protocol, metrics=_split_csv(metrics), data_root=data_root,
                            weights_dir=weights_dir, device=device, workers=workers, tile=tile,
                            skip_unavailable=skip_unavailable, torch_metrics=torch_metrics, sr_pattern=sr_pattern))
        return
    model, name = models[0], (names[0] if names else None)
    scale = 4 if scale is None else scale
    # Under torchrun every rank computes its share; rank 0 alone holds the store, writes and prints.
    main_rank = ranks().is_main
    out = out if main_rank else None
    if out:
        ensure_writable_dir(out)
    results = []
    if store_path and main_rank:
        from srbench.store import Store

        store_cm: AbstractContextManager[Store | None] = Store(store_path)
    else:
        store_cm = nullcontext()
    with store_cm as store:
        try:
            options = EvalOptions.build(protocol=protocol, metrics=_split_csv(metrics), scale=scale,
                                        data_root=data_root, weights_dir=weights_dir, device=device, workers=workers,
                                        tile=tile, skip_unavailable=skip_unavailable, torch_metrics=torch_metrics,
                                        sr_pattern=sr_pattern)
            for result in evaluate_model(model, list(datasets), options, store=store,
                                         suite=suite_name if store_path else None, name=name, progress=_progress):
                results.append(result)
                if out:
                    write_outputs(result, out)
        finally:
            if main_rank:
                _report(results, as_json)
    if not main_rank:
        return
    empty = [r.dataset for r in results if not r.per_image]
    if empty:
        click.echo(f"error: nothing was evaluated on {', '.join(empty)}: every image was skipped (see above)",
                   err=True)
        sys.exit(1)
    _refuse_skipped(results, skip_bad)


def _check_model_arguments(models, tree, datasets, names, sr_pattern, scale) -> None:
    if not models and not tree:
        raise click.UsageError("give --model (repeat for several) or --tree")
    if models and not datasets:
        raise click.UsageError("--model needs --dataset")
    if names and len(names) != len(models):
        raise click.UsageError(f"{len(names)} --name for {len(models)} --model: give one per --model, in order (a "
                               "--tree's results are named by their method folders)")
    if len(models) > 1:
        from srbench.many import refuse_shared_names

        # before a store is opened
        refuse_shared_names(list(models), list(names) or None, sr_pattern)
    if tree:  # two leaves of one result, or a leaf named as a --model on its set at its scale: before a store opens
        from srbench.many import refuse_shared_leaves, tree_leaves
        from srbench.sources import source_name

        leaves, _ = tree_leaves(tree, [scale] if scale is not None else None)
        named = []
        for model, name in zip(models, list(names) or [None] * len(models), strict=True):
            with contextlib.suppress(SrbenchError):  # a model that cannot be opened fails alone, as before
                named.append((model, name or source_name(model, sr_pattern), list(datasets), scale or 4))
        refuse_shared_leaves(leaves, named)


def _refuse_skipped(results, skip_bad: bool) -> None:
    skipped = sum(len(r.skipped) for r in results)
    if skipped and not skip_bad:
        click.echo(f"error: {skipped} image(s) skipped as bad input (see above); --skip-bad accepts that",
                   err=True)
        sys.exit(1)


def _evaluate_many(models, names, tree, datasets, scale, out, as_json, skip_bad, store_path, suite_name,
                   settings: dict) -> None:
    """Several --model, and/or the leaves of a --tree (srbench.many): each one's failure is one line naming its
    path, the others are still evaluated and stored; the exit status is 1 when anything failed."""
    from contextlib import AbstractContextManager, nullcontext

    from srbench import many
    from srbench.evaluation import write_outputs
    from srbench.images import ensure_writable_dir
    from srbench.options import EvalOptions
    from srbench.store import Store
    from srbench.work_split import ranks

    main_rank = ranks().is_main
    out = out if main_rank else None
    if out:
        ensure_writable_dir(out)
    options = EvalOptions.build(scale=4 if scale is None else scale, **settings)
    found = many.ManyResults()
    store_cm: AbstractContextManager[Store | None] = Store(store_path) if store_path and main_rank else nullcontext()

    def written(result) -> None:
        if out:
            write_outputs(result, out)

    with store_cm as store:
        suite = suite_name if store_path else None
        try:
            if models:
                found.add(many.evaluate_many(list(models), list(datasets), options, names=list(names), store=store,
                                             suite=suite, progress=_progress, on_result=written))
            if tree:
                found.add(many.evaluate_tree(tree, options, scales=[scale] if scale is not None else None,
                                             store=store, suite=suite, progress=_progress, on_result=written))
        finally:
            if main_rank:
                _report(found.results, as_json)
    if main_rank:
        _refuse_failures(found, bool(store_path))
        _refuse_skipped(found.results, skip_bad)


def _refuse_failures(found, stored: bool) -> None:
    """Each model or tree folder that gave no result, one line naming its path, then exit 1."""
    for failure in found.failures:
        click.echo(f"error: {failure}", err=True)
    empty = [f"{r.model} on {r.dataset} x{r.scale}" for r in found.results if not r.per_image]
    if empty:
        click.echo(f"error: nothing was evaluated for {', '.join(empty)}: every image was skipped (see above)",
                   err=True)
    if found.failures or empty:
        kept = sum(bool(r.per_image) for r in found.results)
        click.echo(f"error: {len(found.failures) + len(empty)} not evaluated (listed above); the {kept} other "
                   f"result(s) were evaluated{' and stored' if stored else ''}", err=True)
        sys.exit(1)


def _report(results, as_json: bool) -> None:
    if not results:
        return
    if as_json:
        click.echo(json_dumps([r.to_dict() for r in results], indent=2))
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
        click.echo(json_dumps(report.to_dict(), indent=2))
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
    """Record FOLDER as a known copy of a dataset in srbench/data/manifests/<name>.json (installed: in
    ~/.cache/srbench/manifests/)."""
    from srbench.manifests import add_copy

    path = add_copy(folder, name, copy_id, source)
    click.echo(f"recorded {copy_id!r} of {name!r} in {path}")


@main.command("metrics")
def metrics_list() -> None:
    """List the metrics, their direction, reference need and implementation version."""
    from srbench.metrics import all_metrics
    from srbench.protocols import PROTOCOLS

    specs = list(all_metrics().values())
    name_w = max(len(s.name) for s in specs)
    version_w = max(len(s.version) for s in specs)
    for spec in specs:
        ref = "full-reference" if spec.needs_reference else "no-reference"
        where = ",".join(spec.protocols) if spec.protocols else "any"
        weights = f"  needs {spec.weights}" if spec.weights else ""
        click.echo(f"{spec.name:{name_w}s} {spec.direction:6s} is better  {ref:14s} v{spec.version:{version_w}s} "
                   f"{where:9s} {spec.description}; dataset value: {spec.aggregation}{weights}")
    for proto in PROTOCOLS.values():
        click.echo(f"protocol {proto.name}: {proto.description}; metrics "
                   f"{', '.join(m.name for m in proto.metrics)} (default {', '.join(proto.default_metrics)})")
    from srbench.paths import WEIGHTS_ENV, weights_dir

    click.echo(f"weights: the files a metric needs go in {weights_dir()} (--weights-dir, or {WEIGHTS_ENV}); "
               "srbench fetch weights downloads those it knows, explicitly (docs/data-and-weights.md)")


@main.group()
def models() -> None:
    """Generator variants and the checkpoints srbench can load."""


@models.command("list")
def models_list() -> None:
    """Show the named variants and the published checkpoints srbench loads."""
    from srbench.archs import GENERATORS, count_parameters
    from srbench.downloads import DOWNLOADS

    click.echo("variants:")
    for v in GENERATORS.values():
        click.echo(f"  {v.name:26s} {v.arch:9s} {count_parameters(v.build()):>11,d} params  {v.description}")
    click.echo("published checkpoints (srbench fetch weights NAME, then NAME is a model; or pass the file's path):")
    for c in DOWNLOADS.values():
        if c.variant is None:
            continue
        digest = f"sha256 {c.sha256[:8]}..." if c.sha256 else "sha256 unpublished"
        how = "direct" if c.url else "manual"
        click.echo(f"  {c.name:18s} {c.variant:7s} {c.layout or '':9s} {digest:19s} {how:6s} {c.filename}\n"
                   f"  {'':18s} {c.description}; {c.source}")


@models.command("inspect")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--arch", help="Generator (rrdb23, ...) or architecture name, if it cannot be inferred.")
@click.option("--json", "as_json", is_flag=True)
def models_inspect(checkpoint, arch, as_json) -> None:
    """Print a checkpoint's detected layout, architecture, parameter count and metadata."""
    from srbench.checkpoints import generator_info, load_generator

    info = dict(generator_info(load_generator(checkpoint, arch)))
    if as_json:
        click.echo(json_dumps(info, indent=2, default=str))
        return
    click.echo(f"file:       {info['source']}")
    click.echo(f"sha256:     {info['sha256']}")
    click.echo(f"layout:     {info['layout']}" + (f" ({'; '.join(info['notes'])})" if info["notes"] else ""))
    click.echo(f"arch:       {info['arch']} {info['config']}" + (f" = {info['variant']}" if info["variant"] else ""))
    click.echo(f"parameters: {info['parameters']:,d}")
    if info["metadata"]:
        meta = info["metadata"]
        click.echo(f"metadata:   stage={meta.get('stage')} iteration={meta.get('iteration')} "
                   f"srbench={meta.get('srbench_version')} created={meta.get('created')}")


def _parse_alphas(text: str) -> list[float]:
    try:
        alphas = [float(a) for a in text.split(",") if a.strip()]
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of numbers: {text!r}") from None
    if not alphas:
        raise click.BadParameter("no alpha given: e.g. --alpha 0,0.5,1")
    if len(set(alphas)) != len(alphas):
        raise click.BadParameter("give each alpha once")
    outside = [a for a in alphas if not 0.0 <= a <= 1.0]  # NaN included
    if outside:
        raise click.BadParameter(f"each alpha must be in [0, 1]; got {', '.join(map(str, outside))}")
    return alphas


@main.command()
@click.argument("psnr", type=click.Path(exists=True, dir_okay=False))
@click.argument("gan", type=click.Path(exists=True, dir_okay=False))
@click.option("--alpha", "alpha_text", default="0,0.2,0.4,0.6,0.8,1", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
def interp(psnr, gan, alpha_text, out) -> None:
    """Network interpolation: (1 - alpha) PSNR + alpha GAN, one checkpoint per alpha in OUT."""
    from pathlib import Path

    from srbench.archs import same_generator
    from srbench.checkpoints import (
        alpha_label,
        generator_info,
        interpolate,
        load_generator,
        read_metadata,
        save_checkpoint,
    )
    from srbench.errors import BadInputError
    from srbench.images import ensure_writable_dir, file_sha256
    from srbench.paths import user_path

    alphas = _parse_alphas(alpha_text)
    out = user_path(out, "--out")  # --out=~/x reaches here unexpanded by the shell
    ensure_writable_dir(out)  # before the networks are loaded
    info = generator_info(load_generator(gan))  # validates the architecture once
    start = generator_info(load_generator(psnr))
    if start["arch"] != info["arch"] or not same_generator(info["arch"], start["config"], info["config"]):
        # equal tensor shapes do not make one network: an x2 and an x4 RRDBNet (12 input channels) blended as x4
        raise BadInputError(f"cannot interpolate {psnr} ({start['arch']} {start['config']}) with {gan} "
                            f"({info['arch']} {info['config']}): they are not one architecture and configuration")
    inputs = {"psnr": str(Path(psnr).resolve()), "gan": str(Path(gan).resolve()),
              "psnr_sha256": file_sha256(psnr), "gan_sha256": file_sha256(gan)}
    targets = [Path(out) / f"{alpha_label(alpha)}.safetensors" for alpha in alphas]
    for target in targets:  # a file of other inputs is another result: never replaced (the same inputs: the same file)
        before = (read_metadata(target) or {}).get("extra", {}) if target.exists() else None
        if before is not None and (before.get("psnr_sha256"), before.get("gan_sha256")) != (
                inputs["psnr_sha256"], inputs["gan_sha256"]):
            raise BadInputError(f"{target} already holds an interpolation of other checkpoints "
                                f"({before.get('psnr')}, {before.get('gan')}): choose another --out or remove it")
    for alpha, target in zip(alphas, targets, strict=True):
        state = interpolate(psnr, gan, alpha)
        path = save_checkpoint(state, target, arch=info["arch"], config=info["config"], variant=info["variant"],
                               stage="interp", extra={"alpha": alpha, **inputs})
        click.echo(str(path))


@main.command()
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--tile", type=click.IntRange(min=1), help="Tile size in LR pixels (bounds memory).")
@click.option("--tile-pad", default=16, show_default=True, type=click.IntRange(min=0))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--half", is_flag=True, help="float16 on CUDA.")
@click.option("--channels-last", is_flag=True, help="NHWC convolutions on CUDA (often faster; other last bits).")
@click.option("--max-pixels", type=click.IntRange(min=1),
              help="Largest image (width x height) read; larger ones are skipped as bad input "
                   "[default: 134217728, a 16K frame fits].")
@click.option("--weights-dir", type=click.Path(file_okay=False),
              help="Where a published checkpoint was fetched (default: $SRBENCH_WEIGHTS, else "
                   "~/.cache/srbench/weights).")
@allow_unpinned_weights
def infer(model, inputs, out, tile, tile_pad, device, half, channels_last, max_pixels, weights_dir) -> None:
    """Upscale images or folders INPUTS with MODEL (checkpoint, variant or published checkpoint) into OUT as PNG."""
    from tqdm import tqdm

    from srbench.images import ensure_writable_dir, set_max_pixels
    from srbench.infer import (
        Runner,
        collect_inputs,
        generator_ref,
        infer_files,
        refuse_overwriting_inputs,
        resolve_generator,
    )

    set_max_pixels(max_pixels)
    files = collect_inputs(list(inputs))
    refuse_overwriting_inputs(files, out)
    ensure_writable_dir(out)  # before the network is loaded
    # A folder named like the variant (--out rrdb23-smoke) is no model here: infer takes no folder of SR images.
    ref = generator_ref(model, folders=False)
    runner = Runner.create(resolve_generator(ref, weights_dir=weights_dir), device=device, half=half, tile=tile,
                           tile_pad=tile_pad, channels_last=channels_last)
    with tqdm(total=len(files), unit="img", disable=None, file=sys.stderr) as bar:
        written, notes, errors = infer_files(runner, files, out, progress=lambda _: bar.update(1))
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for error in errors:
        click.echo(f"skipped: {error}", err=True)
    click.echo(f"wrote {len(written)} image(s) to {out} (x{runner.scale}, {runner.device})")
    if errors:
        sys.exit(1)


@main.command()
@click.option("--variant", required=True,
              help="A training variant (srgan, ..., esrgan), a generator variant (rrdb23, ...) or a config.toml.")
@click.option("--stage", required=True, type=click.Choice(["psnr", "gan"]))
@click.option("--preset", default="paper", show_default=True, type=click.Choice(["smoke", "short", "paper"]))
@click.option("--init", type=click.Path(exists=True, dir_okay=False),
              help="Generator checkpoint to start from (the gan stage defaults to OUT/psnr/g_final.safetensors).")
@click.option("--data", help="Training images: a named set or a folder of HR images (overrides data.train; the short "
                             "and paper presets need one, smoke trains on skimage-train).")
@click.option("--val", help="Held-out images for the validation L1 (default: the last training image).")
@click.option("--data-root", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default: reports/runs/<name>).")
@click.option("--iters", type=click.IntRange(min=1),
              help="Iterations of this stage (overrides the preset); with --resume, a larger value extends the run.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any configuration value, e.g. --set loss.adversarial=standard --set gan.lr=5e-5.")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/<stage>/state.pt, to the run's own length unless --iters is given.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--seed", type=int)
def train(variant, stage, preset, init, data, val, data_root, out, iters, sets, resume, device, seed) -> None:
    """Train one stage of a variant (run under torchrun for several GPUs or nodes)."""

    from srbench import paths
    from srbench.images import ensure_writable_dir
    from srbench.train import recorded_iters
    from srbench.train import train as run
    from srbench.train.config import check_training_set, load_recipe, resolve_config

    overrides: dict = {"data": {}}
    if data:
        overrides["data"]["train"] = data
    if val:
        overrides["data"]["val"] = val
    if data_root:
        overrides["data"]["data_root"] = data_root
    if iters:
        overrides[stage] = {"iters": iters}
    if seed is not None:
        overrides["seed"] = seed
    config = resolve_config(variant, preset, list(sets), overrides)
    out_dir = paths.user_path(out, "--out") if out else paths.reports_dir() / "runs" / config.name
    _, written = load_recipe(variant)
    stage_in_file = written.get(stage)
    iters_in_file = isinstance(stage_in_file, dict) and "iters" in stage_in_file  # as --set, honoured, not replaced
    if resume and not iters and not iters_in_file and not any(s.strip().startswith(f"{stage}.iters") for s in sets):
        saved = recorded_iters(out_dir, stage)
        if saved is not None and saved != config.stage(stage).iters:
            overrides[stage] = {"iters": saved}
            config = resolve_config(variant, preset, list(sets), overrides)
    check_training_set(config)  # before the run folder is made
    ensure_writable_dir(out_dir)  # before the networks are built and the data loaded
    result = run(config, stage, out_dir, init=init, resume=resume, device=device)
    if result.final is not None:
        click.echo(f"{config.name}/{stage}: {result.iterations} iterations; generator {result.final}")
        if result.val_l1:
            first, last = result.val_l1[0], result.val_l1[-1]
            click.echo(f"held-out L1: {first[1]:.4f} (iteration {first[0]}) -> {last[1]:.4f} (iteration {last[0]})")


@main.group()
def suites() -> None:
    """Ablation suites shipped with srbench."""


@suites.command("list")
def suites_list() -> None:
    """Show the shipped suites and their variants."""
    from srbench.ablate import load_suite, shipped_suites

    for name in shipped_suites():
        suite = load_suite(name)
        click.echo(f"{suite.name}: {suite.description}")
        for v in suite.entries:
            click.echo(f"  {v.name:32s} {v.label}")
        if suite.interp_variant:
            alphas = ", ".join(f"{a:g}" for a in suite.alphas)
            click.echo(f"  + interpolation of {suite.interp_variant}: alpha {alphas}")


@main.command()
@click.option("--suite", "suite_name", default="esrgan", show_default=True, help="Suite name or TOML file.")
@click.option("--preset", type=click.Choice(["smoke", "short", "paper"]),
              help="Training preset (default: smoke without a data root, paper with one).")
@click.option("--datasets", help="Comma-separated datasets (default: the suite's, or skimage without a data root).")
@click.option("--checkpoints", type=click.Path(file_okay=False),
              help="Folder of existing checkpoints: <variant>/<stage>/g_final.safetensors or <variant>-<stage>.pth.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False), help="Results store (SQLite).")
@click.option("--out", type=click.Path(file_okay=False), help="Report folder (default: reports/<suite>).")
@click.option("--data-root", type=click.Path(file_okay=False))
@click.option("--weights-dir", type=click.Path(file_okay=False))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--training-cache", type=click.Path(file_okay=False),
              help="Trained stages by fingerprint (default: $SRBENCH_TRAINING_CACHE, else training-cache/ beside "
                   "the store); a stage found there is not trained again, whatever --out is.")
@click.option("--jobs", type=click.IntRange(min=1),
              help="Trainings side by side, each on its share of the cores (default: 2 on a CPU with 2 or more "
                   "cores, 1 on a GPU).")
@click.option("--workers", type=click.IntRange(min=1), help="Metric workers of each evaluation (as evaluate's).")
@click.option("--train-data", help="Every variant's training set: a named set or a folder of HR images (the short "
                                   "and paper presets need one; the smoke preset trains on skimage-train).")
@allow_unpinned_weights
def ablate(suite_name, preset, datasets, checkpoints, store_path, out, data_root, weights_dir, device,
           training_cache, jobs, workers, train_data) -> None:
    """Train or load every variant of a suite, evaluate under both protocols, write the report."""
    from srbench.ablate import ablate as run

    report = run(suite_name, preset=preset, datasets=_split_csv(datasets), checkpoints=checkpoints,
                 store_path=store_path, out=out, data_root=data_root, weights_dir=weights_dir, device=device,
                 log=lambda msg: click.echo(msg, err=True), training_cache=training_cache, jobs=jobs,
                 workers=workers, train_data=train_data)
    assert report.out_dir is not None  # ablate() always sets it
    table = report.out_dir / "table.md"
    if table.is_file():
        click.echo(table.read_text())
    click.echo(f"report: {report.out_dir}")
    for failure in report.failures:
        click.echo(f"failed: {failure}", err=True)
    if report.failures:
        sys.exit(1)


def _metric_digits(name: str) -> int:
    from srbench.metrics import get_metric

    try:
        return get_metric(name).digits
    except SrbenchError:
        return 4


@main.command()
@click.option("--store", "store_path", type=click.Path(dir_okay=False))
@click.option("--suite", help="Only this suite's labelled models.")
def results(store_path, suite) -> None:
    """List what the results store holds."""
    from srbench.report import tidy_from_store, why_nothing_current
    from srbench.store import Store

    with Store.open_existing(store_path) as store:
        labelled = store.values(suite)
        tidy = tidy_from_store(labelled)
        click.echo(f"{store.path}: {len(store.runs())} runs, {len(store.all_values())} per-image values")
    if tidy.empty:
        click.echo(f"no labelled results{why_nothing_current(labelled)}")
    else:
        # A column a level takes only where the store holds several: one model name in two suites, one metric
        # under two protocols (BRISQUE, LPIPS, the spectrum), two scales are different numbers, never one cell.
        index = [*(["suite"] if tidy["suite"].nunique(dropna=False) > 1 else []), "model", "dataset",
                 *(["protocol"] if tidy["protocol"].nunique() > 1 else []),
                 *(["scale"] if tidy["scale"].nunique() > 1 else [])]
        # not pivot_table: it drops a metric (and a row) whose values are all undefined, which must show as '–'
        wide = tidy.groupby([*index, "metric"], dropna=False, sort=True)["value"].first().unstack("metric")
        # four decimals, or the metric's own digits where it has more (the spectrum's values are 1e-4..1e-2)
        digits = {m: max(4, _metric_digits(m)) for m in wide.columns}
        click.echo(wide.to_string(formatters={m: (lambda v, d=d: f"{v:.{d}f}") for m, d in digits.items()},
                                  na_rep="–"))


@main.command()
@click.option("--store", "store_path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default="csv", show_default=True, type=click.Choice(["csv", "parquet"]))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--per-image", is_flag=True, help="Every stored per-image value instead of dataset aggregates.")
def export(store_path, fmt, out, per_image) -> None:
    """Dump the results store (tidy: one row per model x dataset x protocol x metric)."""
    from pathlib import Path

    import pandas as pd

    from srbench.images import atomic_write_bytes, atomic_write_text, ensure_writable_dir
    from srbench.report import tidy_from_store
    from srbench.store import Store

    with Store.open_existing(store_path) as store:
        ensure_writable_dir(Path(out).expanduser().parent)
        frame = pd.DataFrame(store.values()) if per_image else tidy_from_store(store.values())
    if fmt == "csv":
        atomic_write_text(out, frame.to_csv(index=False))
    else:
        import io

        buf = io.BytesIO()  # then written atomically: a failing disk leaves no half-written parquet file
        try:
            frame.to_parquet(buf, index=False)
        except ImportError:
            raise click.ClickException(
                "parquet needs pyarrow, which is not installed: pip install \"srbench[parquet]\" adds it (or use "
                "--format csv)") from None
        atomic_write_bytes(out, buf.getvalue())
    click.echo(f"wrote {len(frame)} rows to {out}")


@main.command()
@click.option("--suite", required=True)
@click.option("--metrics", default="psnr_y,ssim_y,niqe,pi", show_default=True)
@click.option("--datasets", help="Comma-separated datasets (default: all stored).")
@click.option("--format", "fmt", default="markdown", show_default=True, type=click.Choice(["markdown", "latex", "csv"]))
@click.option("--store", "store_path", type=click.Path(dir_okay=False))
@click.option("--ci", is_flag=True, help="Follow each value with its 95% percentile bootstrap interval over images, "
                                        "as 31.42 [31.07, 31.77] (10000 resamples, seed 0).")
@click.option("--published", help="Comma-separated published collections to add as rows (srbench published list), "
                                  "e.g. esrgan-paper,spsr.")
@click.option("--scale", type=click.IntRange(min=1),
              help="Only the results at this scale (default: every stored scale; several get a Scale column).")
def table(suite, metrics, datasets, fmt, store_path, ci, published, scale) -> None:
    """A paper-style table of a suite from the results store."""
    from srbench.report import paper_table, tidy_from_store, why_nothing_current
    from srbench.store import Store

    with Store.open_existing(store_path) as store:
        rows = _at_scale(store.values(suite), scale, suite)
    tidy = tidy_from_store(rows)
    if tidy.empty:
        raise click.ClickException(f"no results for suite {suite!r} in the store: run srbench ablate first"
                                   f"{why_nothing_current(rows)}")
    names = _split_csv(metrics)
    if names is None:
        raise click.BadParameter("name at least one metric", param_hint="--metrics")
    shown = _known_datasets(_split_csv(datasets), tidy, _split_csv(published), suite)
    intervals, scale_intervals = None, None
    if ci:
        from srbench.stats import table_intervals

        stored = {r["scale"] for r in rows}
        if len(stored) > 1:  # each scale's rows ranked, and their intervals computed, on their own
            scale_intervals = {s: table_intervals([r for r in rows if r["scale"] == s], names,
                                                  datasets=shown) for s in stored}
        else:
            intervals = table_intervals(rows, names, datasets=shown)
    click.echo(paper_table(tidy, names, fmt, datasets=shown, intervals=intervals,
                           published=_split_csv(published), scale_intervals=scale_intervals))


def _known_datasets(requested: list[str] | None, tidy, published: list[str] | None, suite: str) -> list[str] | None:
    from srbench.report import known_datasets

    try:
        return known_datasets(requested, tidy, published, f"suite {suite!r}")
    except BadInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--datasets") from None


def _at_scale(rows: list[dict], scale: int | None, suite: str | None) -> list[dict]:
    """The stored rows at ``scale`` (None: all); none there is an error naming the scales that are stored."""
    if scale is None:
        return rows
    kept = [r for r in rows if r["scale"] == scale]
    if rows and not kept:
        held = ", ".join(f"x{s}" for s in sorted({r["scale"] for r in rows}))
        raise click.ClickException(f"no results at x{scale}{f' for suite {suite!r}' if suite else ''} in the store "
                                   f"(it holds {held})")
    return kept


@main.group()
def fetch() -> None:
    """Download weights and datasets, explicitly (srbench never downloads anything otherwise)."""


def _fetch_each(kind: str, names: tuple[str, ...], run) -> None:
    from srbench.downloads import DOWNLOADS

    known = [d for d in DOWNLOADS.values() if d.kind == kind]
    if not names:
        for d in known:
            where = d.url or "no direct download"
            click.echo(f"{d.name:18s} {d.filename}  {d.description}\n{'':18s} {where}  ({d.source})")
        return
    failed = []
    for name in names:
        try:
            run(name)
        except SrbenchError as exc:
            failed.append(name)
            click.echo(f"error: {exc}", err=True)
    if failed:
        sys.exit(1)


@fetch.command("weights")
@click.argument("names", nargs=-1)
@click.option("--weights-dir", type=click.Path(file_okay=False),
              help="Where weights go (default: $SRBENCH_WEIGHTS, else ~/.cache/srbench/weights).")
def fetch_weights_cmd(names, weights_dir) -> None:
    """Download weights NAMES (none: list what srbench knows), verified against their pinned hashes."""
    from srbench.fetch import fetch_weights

    _fetch_each("weights", names, lambda name: fetch_weights(name, weights_dir=weights_dir, log=click.echo))


@fetch.command("datasets")
@click.argument("names", nargs=-1)
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Where datasets go (default: the first folder of $SRBENCH_DATA, else the checkout's datasets/, or "
                   "~/.cache/srbench/datasets installed); "
                   "archives are kept in the cache's downloads/ ($SRBENCH_CACHE, else ~/.cache/srbench).")
def fetch_datasets_cmd(names, data_root) -> None:
    """Download datasets NAMES (none: list what srbench knows), unpacked into srbench's layout and verified."""
    from srbench.fetch import fetch_dataset

    _fetch_each("datasets", names, lambda name: fetch_dataset(name, data_root=data_root, log=click.echo))


@main.group()
def published() -> None:
    """Published results srbench ships, with their sources (for table/pirm-plane --published)."""


@published.command("list")
def published_list() -> None:
    """Each collection: its citation, what it holds, and how many numbers."""
    from srbench import published_results as P

    for name, c in P.collections().items():
        rows = [v for v in P.values() if v.collection == name]
        kinds = ", ".join(dict.fromkeys(f"{v.metric}/{v.protocol}" for v in rows))
        click.echo(f"{name}: {len(rows)} numbers ({kinds})\n  {c.citation}\n  {c.description}\n  {c.url}")


@published.command("show")
@click.argument("collection")
@click.option("--dataset", help="Only this dataset.")
def published_show(collection, dataset) -> None:
    """Every number of COLLECTION (or of several, comma-separated) with its source, protocol and caveats."""
    import pandas as pd

    from srbench import published_results as P

    selected = P.select(collection)  # an unknown or empty name is one error listing the known ones
    names = list(dict.fromkeys(n.strip() for n in collection.split(",") if n.strip()))
    if dataset is not None:
        held = list(dict.fromkeys(v.dataset for v in selected))
        matched = [d for d in held if d.casefold() == dataset.casefold()]
        if not matched:
            raise click.BadParameter(f"{collection} has no numbers on {dataset!r}; it has {', '.join(held)}",
                                     param_hint="--dataset")
        dataset = matched[0]
    rows = [v for v in selected if dataset is None or v.dataset == dataset]
    frame = pd.DataFrame([{**({"collection": v.collection} if len(names) > 1 else {}), "method": v.method,
                           "dataset": v.dataset, "metric": v.metric, "protocol": v.protocol, "value": P.shown_value(v),
                           "comparable": v.comparable, "source": v.source, "note": v.note} for v in rows])
    for name in names:
        click.echo(P.collections()[name].citation if len(names) == 1 else f"[{name}] {P.collections()[name].citation}")
    click.echo(frame.to_string(index=False) if not frame.empty else "no numbers")
    for name in names:  # what the numbers are and what their source leaves unstated
        click.echo(f"[{name}] {P.collections()[name].description}")


@main.command("pirm-plane")
@click.option("--suite", default="esrgan", show_default=True)
@click.option("--dataset", default="pirm-val", show_default=True)
@click.option("--out", default="plane.png", show_default=True, type=click.Path(dir_okay=False))
@click.option("--store", "store_path", type=click.Path(dir_okay=False))
@click.option("--ci", is_flag=True, help="Error bars: 95% percentile bootstrap intervals over images of each model's "
                                        "RMSE and PI (10000 resamples, seed 0).")
@click.option("--published", help="Comma-separated published collections drawn as hollow, labelled points (their PI "
                                  "and RMSE on the same dataset), e.g. esrgan-paper,pirm2018.")
def pirm_plane_cmd(suite, dataset, out, store_path, ci, published) -> None:
    """Draw the perception-distortion plane (RMSE vs PI) of a suite from the results store."""
    from pathlib import Path

    from srbench.images import ensure_writable_dir
    from srbench.plots import pirm_plane, plane_others, plane_points, region_winners
    from srbench.report import tidy_from_store, why_nothing_current
    from srbench.store import Store

    with Store.open_existing(store_path) as store:
        rows = _plane_scale(store.values(suite), suite)
    tidy = tidy_from_store(rows)
    ensure_writable_dir(Path(out).expanduser().parent)
    if tidy.empty:
        raise click.ClickException(f"no results for suite {suite!r} in the store: run srbench ablate first, or "
                                   f"srbench evaluate --protocol pirm --store (suite evaluate)"
                                   f"{why_nothing_current(rows)}")
    try:
        alike = {d for d in tidy["dataset"] if d.casefold() == dataset.casefold()}
        if alike and dataset not in alike:  # matched without case, as tables match it
            from srbench.report import known_dataset

            dataset = known_dataset(dataset, tidy, None, "the store")
        points, y_metric = plane_points(tidy, dataset)
    except SrbenchError as exc:
        raise click.ClickException(f"suite {suite!r}: {exc}") from None
    intervals = None
    if ci:
        from srbench.stats import table_intervals

        intervals = table_intervals(rows, ["rmse", y_metric], datasets=[dataset], protocols=["pirm"])
    path = pirm_plane(tidy, out, dataset=dataset, intervals=intervals, published=_split_csv(published))
    if y_metric != "pi":
        click.echo("note: PI is unavailable (no Ma weights; srbench fetch weights nrqm): NIQE is on the y axis"
                   f"{'; published PI points are not drawn' if published else ''}", err=True)
    drawn = set(points["model"])
    left_off = [m for m in dict.fromkeys(tidy.loc[(tidy["dataset"] == dataset) & (tidy["protocol"] == "pirm"), "model"])
                if m not in drawn]
    if left_off:  # a model without an RMSE and a defined PI (NIQE) has no place on the plane; never silently
        click.echo(f"note: not drawn (no RMSE, or its {y_metric.upper()} undefined on {dataset}): "
                   f"{', '.join(left_off)}", err=True)
    others = plane_others(tidy, dataset, points, y_metric)
    if others:  # as the tables mark and leave unranked a mean over other images
        click.echo(f"note: over other images than the rest ({', '.join(others)}): marked ¶, never a region's best",
                   err=True)
    # PIRM ranks a region by PI; by NIQE alone it would be another ranking than the challenge's.
    for region, model in sorted(region_winners(points, others).items()) if y_metric == "pi" else ():
        click.echo(f"best in {region}: {model}")
    click.echo(f"wrote {path}")


def _plane_scale(rows: list[dict], suite: str) -> list[dict]:
    """The x4 results (the PIRM convention): results at other scales are left out with a note, and a store holding
    none at x4 is one error naming the scales it holds."""
    others = sorted({r["scale"] for r in rows} - {4})
    if not others:
        return rows
    kept = _at_scale(rows, 4, suite)
    click.echo(f"note: the perception-distortion plane is x4 (the PIRM convention): results at "
               f"{', '.join(f'x{s}' for s in others)} are not drawn", err=True)
    return kept


@main.command()
@click.argument("model_a")
@click.argument("model_b")
@click.option("--dataset", required=True, help="The dataset both models were evaluated on, as tables name it.")
@click.option("--metric", "metric_names", multiple=True,
              help="Metric(s) to compare, comma-separated or repeated (default: every per-image metric of the "
                   "protocol stored for both).")
@click.option("--protocol", default="sr", show_default=True, type=click.Choice(["sr", "pirm"]))
@click.option("--scale", type=click.IntRange(min=1), help="Needed only when several scales are stored.")
@click.option("--suite", help="Only this suite's labelled models (needed when suites name models alike).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per metric.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap and the permutations.")
@click.option("--resamples", default=10000, show_default=True, type=click.IntRange(min=1),
              help="Bootstrap resamples (and random sign patterns of the permutation test).")
def compare(model_a, model_b, dataset, metric_names, protocol, scale, suite, store_path, as_json, seed,
            resamples) -> None:
    """Compare MODEL_A with MODEL_B on the same images: difference of dataset values (A - B) with its paired
    bootstrap 95% interval, per-image wins/ties/losses and a paired test's p-value."""
    from srbench.stats import comparable_metrics, paired_comparison, select_image_set
    from srbench.store import Store

    with Store.open_existing(store_path) as store:
        rows = store.values(suite)
        if not rows and suite is not None:
            known = sorted({str(r["suite"]) for r in store.values()})
            raise click.ClickException(f"no results labelled in suite {suite!r}; the store has "
                                       f"{', '.join(known) or 'none'}")
    a = select_image_set(rows, model_a, dataset, protocol, scale)
    b = select_image_set(rows, model_b, dataset, protocol, scale if scale is not None else a.scale)
    wanted = [n.strip() for item in metric_names for n in item.split(",") if n.strip()]
    specs = comparable_metrics(a, b, wanted or None)
    if not specs:
        raise click.ClickException(f"{model_a} and {model_b} share no per-image {protocol}-protocol metric on "
                                   f"{dataset}")
    results = [paired_comparison(a, b, spec, n_resamples=resamples, n_permutations=resamples, seed=seed)
               for spec in specs]
    if as_json:
        click.echo(json_dumps([r.as_dict() for r in results], indent=2))
    else:
        click.echo(_format_comparisons(results))


def _num(value: float, digits: int, sign: str = "") -> str:
    return "n/a" if value != value else f"{value:{sign}.{digits}f}"


def _format_p(p: float) -> str:
    return "n/a" if p != p else (f"{p:.1e}" if p < 1e-4 else f"{p:.4f}")


def _format_comparisons(results: list) -> str:
    """The text of ``srbench compare``: one line per metric, then what each column means."""
    from srbench.metrics import get_metric

    first = results[0]
    a, b = first.model_a, first.model_b
    undefined = any(r.undefined for r in results)  # then a fourth count, so that the counts add up to n_images
    counts = "wins/ties/losses" + ("/undefined" if undefined else "")
    rows = [["metric", a, b, "A - B", f"{first.confidence:.0%} interval", counts, "p", "p Wilcoxon"]]
    for r in results:
        spec = get_metric(r.metric)
        d = spec.digits
        rows.append([f"{spec.label} {spec.arrow}", _num(r.value_a, d), _num(r.value_b, d), _num(r.difference, d, "+"),
                     f"[{_num(r.low, d, '+')}, {_num(r.high, d, '+')}]",
                     f"{r.wins}/{r.ties}/{r.losses}" + (f"/{r.undefined}" if undefined else ""),
                     _format_p(r.p_value), _format_p(r.wilcoxon_p)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{a} vs {b} on {first.dataset} ({first.protocol} protocol, x{first.scale}, {first.n_images} images "
             "paired by name)"]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
              .rstrip() for row in rows]
    tests = ", ".join(dict.fromkeys(r.test for r in results))
    lines += ["",
              f"A - B: dataset value of {a} minus {b}; interval: paired percentile bootstrap over images "
              f"({first.n_resamples} resamples, seed {first.seed}).",
              f"{counts}: images where {a} is better / differs by at most half a displayed digit "
              f"({', '.join(f'{r.tie_tolerance:g} {r.metric}' for r in results)}; infinite on both sides included) / "
              f"is worse{' / has no value (NaN) on either side' if undefined else ''}.",
              f"p: two-sided {tests} of A - B; p Wilcoxon: Wilcoxon signed-rank test on per-image values."]
    lines += [f"note: {get_metric(r.metric).label}: {r.note}." for r in results if r.note]
    for r in results:
        if r.within_conditioning:
            spec = get_metric(r.metric)
            d = spec.digits
            lines.append(
                f"note: {spec.label}: {a} [{_num(r.cond_low_a, d)}, {_num(r.cond_high_a, d)}] and {b} "
                f"[{_num(r.cond_low_b, d)}, {_num(r.cond_high_b, d)}] overlap: flat areas make each value move that "
                f"much with the signs of their rounding residues (another implementation, MATLAB's included, "
                f"resolves them its own way), so the difference {_num(r.difference, d, '+')} is not a ranking.")
    return "\n".join(lines)


@main.command()
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False),
              help="A check spec (TOML: baseline, [tolerances], [[entries]] of model, datasets, protocols, metrics); "
                   "default: srbench's own reference set.")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="Baseline JSON (default: the spec's, or srbench's own, srbench/data/baselines/default.json).")
@click.option("--tolerance", "tolerances", multiple=True, metavar="METRIC=ABS", help="Override a tolerance.")
@click.option("--update", is_flag=True, help="Write the current numbers as the new baseline.")
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Where named datasets are (default: the spec's data_root, $SRBENCH_DATA, the default data root).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False),
              help="A results store: values already computed for the same fingerprints are read, not recomputed.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False),
              help="Write a JUnit XML file (one test case per checked value).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False),
              help="Write a Markdown summary (for a pull-request comment).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of text.")
@allow_unpinned_weights
def check(spec_path, baseline, tolerances, update, data_root, store_path, junit_path, markdown_path,
          as_json) -> None:
    """Recompute metric values and compare them with a baseline (metric drift). Exit status: 0 no drift, 1 a
    value moved beyond its tolerance or went missing, 2 the check could not run."""
    import dataclasses
    from pathlib import Path

    from srbench import check as C
    from srbench.images import atomic_write_text

    try:
        tol = C.parse_tolerances(tolerances)
        outputs = [C.check_output_file(path, what) for path, what in ((junit_path, "JUnit file"),
                                                                       (markdown_path, "Markdown summary")) if path]
        spec = C.load_spec(spec_path) if spec_path else C.default_spec(data_root)
        spec = dataclasses.replace(spec, baseline=Path(baseline) if baseline else spec.baseline,
                                   data_root=data_root or spec.data_root)
        if update:
            folder = spec.baseline.expanduser().parent
            new_folder = not folder.exists()
            path, computed = C.update_baseline(spec, tolerances=tol, store_path=store_path)
            for n in computed.not_run:
                click.echo(f"not checked (optional): {n}", err=True)
            # The baseline's folder is the spec's own word, so it is made, but never silently.
            click.echo(f"wrote {len(computed.entries)} values to {path}"
                       + (f" (created the folder {folder})" if new_folder else ""))
            return
        report = C.run_check(spec, tolerances=tol, store_path=store_path)
        if junit_path:
            atomic_write_text(outputs[0], C.junit_xml(report))
        if markdown_path:
            atomic_write_text(outputs[-1], C.markdown(report))
    except SrbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(C.EXIT_NOT_RUN)
    if as_json:
        click.echo(json_dumps(report.as_dict(), indent=2))
    else:
        click.echo(C.format_rows(report.rows))
        for n in report.not_run:
            click.echo(f"not checked ({'optional' if n.optional else 'REQUIRED'}): {n}", err=True)
        click.echo(report.summary())
    if report.exit_code == C.EXIT_DRIFT:
        click.echo(f"error: {sum(r.failed for r in report.rows)} value(s) moved beyond tolerance, went missing or "
                   "are not in the baseline; "
                   "if the change is intended, run srbench check --update", err=True)
    sys.exit(report.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
