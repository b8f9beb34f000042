"""Evaluate a model (bicubic, or a folder of SR images) on datasets under a protocol.

Bad images never stop the run: each is reported with the file and the problem, the rest is evaluated.
Metrics whose downloaded weights are missing fail before any work, unless the caller asks to report them
as unavailable instead.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import platform
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

import srbench
from srbench import datasets as D
from srbench.errors import BadInputError, WeightsUnavailableError
from srbench.images import atomic_write_text, content_sha256, decode_image, describe_channels, image_files
from srbench.matching import SRIndex, describe_ambiguity, hr_names
from srbench.matlab import imresize, modcrop
from srbench.metrics.niqe import ILL_CONDITIONED_SPREAD
from srbench.protocols import Protocol, get_protocol
from srbench.store import Store

Progress = Callable[[str, int, int], None]


class BicubicModel:
    """MATLAB bicubic upsampling of the LR (uint8, symmetric borders): the baseline of every table."""

    name = "bicubic"
    key = "bicubic:matlab-imresize-uint8-symmetric"

    def describe(self) -> dict:
        return {"kind": "bicubic", "implementation": "srbench.matlab.imresize (uint8, symmetric)"}

    def predict(self, pair: D.Pair, item: D.Item, scale: int) -> np.ndarray:
        return imresize(pair.lr, scale)

    def take_notes(self, image: str) -> tuple[str, ...]:
        return ()


class FolderModel:
    """A folder of SR images made elsewhere, matched to HR images by name (the PIRM use case).

    Matching is exact on the stem after stripping at most one known suffix (:mod:`srbench.matching`): a
    missing or ambiguous SR file skips that image with its reason, it is never paired by a guess.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise BadInputError(f"{folder}: the model is neither 'bicubic' nor a folder of SR images")
        self.files = image_files(self.folder, recursive=True)
        if not self.files:
            raise BadInputError(f"{self.folder}: the SR folder holds no images")
        self.name = self.folder.name
        self._indexes: dict[int, SRIndex] = {}
        self._notes: dict[str, tuple[str, ...]] = {}

    def take_notes(self, image: str) -> tuple[str, ...]:
        """What the reader noted about the SR file of ``image`` (16-bit read as 8-bit, EXIF ignored...)."""
        return self._notes.pop(image, ())

    @functools.cached_property
    def key(self) -> str:
        h = hashlib.sha256()
        for p in self.files:
            h.update(f"{p.relative_to(self.folder).as_posix()}:{content_sha256(p)}\n".encode())
        return f"folder:{h.hexdigest()}"

    def describe(self) -> dict:
        return {"kind": "folder", "path": str(self.folder), "n_files": len(self.files)}

    def match(self, item: D.Item, scale: int = 4) -> Path:
        if scale not in self._indexes:
            self._indexes[scale] = SRIndex(self.files, scale)
        found = self._indexes[scale].matches(hr_names(item.name, item.hr_path.stem))
        if len(found) == 1:
            return found[0]
        if found:
            raise BadInputError(describe_ambiguity(item.name, found))
        raise BadInputError(f"{item.name}: no SR image for it in {self.folder} (names tried: "
                            f"{', '.join(sorted(hr_names(item.name, item.hr_path.stem)))}, with the suffixes "
                            f"of srbench.matching.SR_SUFFIXES)")

    def predict(self, pair: D.Pair, item: D.Item, scale: int) -> np.ndarray:
        path = self.match(item, scale)
        decoded = decode_image(path)
        sr = decoded.pixels
        self._notes[item.name] = decoded.notes
        if sr.shape == pair.hr.shape:
            return sr
        if pair.cropped_from is not None and sr.shape[:2] == pair.cropped_from:
            # A full-size SR of an HR that is not a multiple of the scale: crop it the same way.
            sr = modcrop(sr, scale)
            if sr.shape == pair.hr.shape:
                return sr
        hr_desc = f"{pair.hr.shape[0]}x{pair.hr.shape[1]}"
        if pair.cropped_from is not None:
            hr_desc += f" (cropped from {pair.cropped_from[0]}x{pair.cropped_from[1]})"
        raise BadInputError(
            f"{path}: SR is {sr.shape[0]}x{sr.shape[1]} {describe_channels(sr)}, "
            f"HR is {hr_desc} {describe_channels(pair.hr)}"
        )


class GeneratorModel:
    """A generator network (checkpoint file or variant with a checkpoint in the models folder)."""

    def __init__(self, ckpt_or_variant: str, *, device: str = "auto", tile: int | None = None,
                 tile_pad: int = 16) -> None:
        from srbench.infer import Runner, resolve_generator

        module = resolve_generator(ckpt_or_variant)
        self.info = module.srbench_info
        self.runner = Runner.create(module, device=device, tile=tile, tile_pad=tile_pad)
        self.name = self.info["variant"] or Path(ckpt_or_variant).stem
        r = self.runner
        # Device, precision and tiling change the output in its last bits: they are part of the identity.
        self.key = (f"generator:{self.info['sha256']}:{r.device.type}{':half' if r.half else ''}"
                    f"{f':tile{r.tile}-{r.tile_pad}' if r.tile else ''}")

    def describe(self) -> dict:
        info = {k: self.info[k] for k in ("arch", "config", "variant", "layout", "source", "sha256")}
        return {"kind": "generator", **info, "device": str(self.runner.device)}

    def predict(self, pair: D.Pair, item: D.Item, scale: int) -> np.ndarray:
        if self.runner.scale != scale:
            raise BadInputError(f"{self.info['source']} is a x{self.runner.scale} model, evaluation asks x{scale}")
        return self.runner.upscale(pair.lr)

    def take_notes(self, image: str) -> tuple[str, ...]:
        return ()


SRModel = BicubicModel | FolderModel | GeneratorModel


def open_model(model: str, *, device: str = "auto", tile: int | None = None) -> SRModel:
    """``bicubic``, a checkpoint file or variant name, or a folder of SR images."""
    from srbench.archs import VARIANTS

    if model == "bicubic":
        return BicubicModel()
    path = Path(model).expanduser()
    if path.is_file() or model in VARIANTS:
        return GeneratorModel(model, device=device, tile=tile)
    return FolderModel(model)


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
        row["n_skipped"] = len(self.skipped)
        row["skipped"] = self.skipped
        row["unavailable"] = self.unavailable
        row["warnings"] = self.warnings
        row["provenance"] = self.provenance
        return row

    def per_image_frame(self):
        import pandas as pd

        return pd.DataFrame(self.per_image)


def json_number(value: float | None) -> float | str | None:
    """A value as JSON has it: NaN (undefined) is null, infinity is the string "inf" or "-inf" (PSNR of an
    SR identical to its HR); JSON itself has no infinity."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@functools.cache
def _versions() -> dict[str, str]:
    out = {"srbench": srbench.__version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "pillow", "scikit-image", "torch", "pyiqa"):
        with contextlib.suppress(metadata.PackageNotFoundError):  # absent packages are simply not listed
            out[pkg] = metadata.version(pkg)
    return out


def check_weights(
    protocol: Protocol, names: Sequence[str], weights_dir: str | None, *, raise_missing: bool = False
) -> dict[str, str]:
    """Metrics whose downloaded file is missing -> the message saying where to put it.

    With ``raise_missing`` the first missing file raises its :class:`WeightsUnavailableError` instead.
    """
    missing: dict[str, str] = {}
    for name in names:
        finder = protocol.metric(name).find_weights
        if finder is None:
            continue
        try:
            finder(weights_dir)
        except WeightsUnavailableError as exc:
            if raise_missing:
                raise
            missing[name] = str(exc)
    for name in names:
        if any(r in missing for r in protocol.metric(name).requires) and name not in missing:
            missing[name] = f"needs {', '.join(r for r in protocol.metric(name).requires if r in missing)}"
    return missing


def evaluate_dataset(
    model: SRModel,
    dataset: D.Dataset,
    *,
    scale: int = 4,
    protocol: str = "sr",
    metrics: Sequence[str] | None = None,
    weights_dir: str | None = None,
    skip_unavailable: bool = False,
    progress: Progress | None = None,
    store: Store | None = None,
    suite: str | None = None,
    workers: int = 2,
) -> EvalResult:
    """Evaluate one model on one dataset. With a ``store``, values already computed for the same model,
    dataset, protocol, scale and metric versions are reused and only the missing ones computed; metric
    computation runs in ``workers`` threads while the model produces the next SR image."""
    proto = get_protocol(protocol)
    if scale < 1:
        raise BadInputError(f"scale must be a positive integer, got {scale}")
    names = proto.resolve_metrics(metrics)
    missing = check_weights(proto, names, weights_dir, raise_missing=not skip_unavailable)
    computable = [n for n in names if n not in missing]
    versions = proto.output_versions(computable)
    options = {"weights_dir": weights_dir}
    dataset_key = dataset.fingerprint()
    cached = store.cached(model.key, dataset_key, proto.name, scale, versions) if store else {}
    values_by_image: dict[str, dict] = {}
    skipped: list[dict] = [{"image": r.name, "file": str(r.path), "error": r.error} for r in dataset.rejected]
    cropped = 0
    lr_sources: dict[str, int] = {}
    read_notes: list[str] = []
    run_id: int | None = None
    from_cache = 0
    pending: deque[tuple[D.Item, set[str], Future]] = deque()

    def collect(item: D.Item, have: dict, future: Future) -> None:
        try:
            new = future.result()
        except BadInputError as exc:
            skipped.append({"image": item.name, "file": str(item.hr_path), "error": f"{item.hr_path}: {exc}"})
            return
        if store is not None:
            store.put(model.key, dataset_key, proto.name, scale, item.name, new, versions, run_id)
        values_by_image[item.name] = {**have, **new}

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for i, item in enumerate(dataset.items):
                if progress:
                    progress(f"{model.name} / {dataset.name}", i, len(dataset.items))
                have = cached.get(item.name, {})
                need = [n for n in computable if not all(k in have for k in proto.metric(n).outputs)]
                if not need:
                    values_by_image[item.name] = have
                    from_cache += 1
                    # Provenance stays the same whether values were computed now or read from the store.
                    source = "file" if scale in item.lr_paths else "imresize"
                    lr_sources[source] = lr_sources.get(source, 0) + 1
                    cropped += _needs_modcrop(item.hr_path, scale)
                    continue
                need = proto.resolve_metrics(need)  # derived metrics bring what they are made of
                if store is not None and run_id is None:
                    run_id = store.start_run(**_run_fields(model, dataset, dataset_key, proto.name, scale, suite))
                try:
                    pair = dataset.load_pair(item, scale)
                    sr = model.predict(pair, item, scale)
                except BadInputError as exc:
                    skipped.append({"image": item.name, "file": str(item.hr_path), "error": str(exc)})
                    continue
                cropped += pair.cropped_from is not None
                read_notes += [*pair.notes, *model.take_notes(item.name)]
                lr_sources[pair.lr_source] = lr_sources.get(pair.lr_source, 0) + 1
                future = pool.submit(proto.per_image, sr, pair.hr, scale, need, options)
                pending.append((item, have, future))
                while len(pending) > 2 * max(1, workers):  # bound the SR images held in memory
                    collect(*pending.popleft())
            while pending:
                collect(*pending.popleft())
    finally:  # the run is closed even when something unexpected stops it
        if store is not None and run_id is not None:
            store.finish_run(run_id)
    if progress:
        progress(f"{model.name} / {dataset.name}", len(dataset.items), len(dataset.items))
    rows = [{"image": it.name, **values_by_image[it.name]} for it in dataset.items if it.name in values_by_image]
    warnings = [
        f"{r['image']}: NIQE {r['niqe']:.4f} is ill-conditioned: flat areas make it move within "
        f"{r['niqe_spread']:.3f} under another summation order (MATLAB's included)"
        for r in rows if (r.get("niqe_spread") or 0.0) > ILL_CONDITIONED_SPREAD
    ]
    for r in rows:
        undefined = [k for k in computable if isinstance(r.get(k), float) and math.isnan(r[k])]
        if undefined:
            warnings.append(f"{r['image']}: {', '.join(undefined)} undefined (NaN) for this image (NIQE needs two "
                            f"96x96 blocks after the shave; a flat output has no NIQE or Ma)")
    summary: dict[str, float | None] = dict.fromkeys(names)
    if rows and computable:
        summary.update(proto.aggregate(rows, computable))
    if cropped:
        warnings.append(f"{cropped} HR image(s) cropped to a multiple of {scale} (modcrop) before pairing")
    warnings += read_notes
    lr_missing = dataset.lr_files_missing(scale)
    if lr_missing:
        warnings.append(
            f"{len(lr_missing)} image(s) have no x{scale} LR file although the set ships them "
            f"({', '.join(lr_missing[:5])}{' ...' if len(lr_missing) > 5 else ''}): their LR was made with "
            f"imresize (uint8, symmetric borders), which changes their numbers")
    provenance = {
        "dataset_location": dataset.location,
        "dataset_layout": dataset.layout,
        "dataset_sha256": dataset_key,
        "lr_source": lr_sources,
        "lr_file_missing": lr_missing,
        # Conversions made while reading the files evaluated in this run (cached images were not read again).
        "read_notes": read_notes,
        "model": model.describe(),
        "model_key": model.key,
        "metric_versions": proto.versions(names),
        "protocol_description": proto.description,
        "versions": dict(_versions()),
        "cached_images": from_cache,
    }
    return EvalResult(model.name, dataset.name, proto.name, scale, names, summary, rows, skipped,
                      missing, warnings, provenance)


def _needs_modcrop(path: Path, scale: int) -> bool:
    """Whether an HR file's size is not a multiple of the scale, read from its header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError:
        return False
    return h % scale != 0 or w % scale != 0


@functools.cache
def git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent.parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _run_fields(model: SRModel, dataset: D.Dataset, dataset_key: str, protocol: str, scale: int,
                suite: str | None) -> dict:
    info = getattr(model, "info", {}) or {}
    meta = info.get("metadata") or {}
    versions = _versions()
    return {
        "suite": suite, "model": model.name, "model_key": model.key, "dataset": dataset.name,
        "dataset_key": dataset_key, "protocol": protocol, "scale": scale,
        "config": {"model": model.describe(), "train_config": meta.get("extra", {}).get("train_config")},
        "checkpoint_sha256": info.get("sha256"), "srbench_version": versions["srbench"],
        "torch_version": versions.get("torch"), "git_commit": git_commit(),
        "device": str(getattr(getattr(model, "runner", None), "device", "cpu")),
        "seed": (meta.get("extra", {}).get("train_config") or {}).get("seed"),
    }


def evaluate(
    model: str,
    datasets: Sequence[str],
    *,
    scale: int = 4,
    protocol: str = "sr",
    metrics: Sequence[str] | None = None,
    data_root: str | None = None,
    weights_dir: str | None = None,
    skip_unavailable: bool = False,
    progress: Progress | None = None,
    device: str = "auto",
    tile: int | None = None,
    store: Store | None = None,
    suite: str | None = None,
    name: str | None = None,
) -> Iterator[EvalResult]:
    """One :class:`EvalResult` per dataset, yielded as each finishes (nothing is lost on a later error).

    With a ``store`` and a ``suite``, each result is also labelled there as model ``name`` (default: the
    model's own name) of that suite, so ``srbench results``, ``table`` and ``pirm-plane`` show it.
    """
    sr_model = open_model(model, device=device, tile=tile)
    if name:
        sr_model.name = name
    if isinstance(sr_model, GeneratorModel) and sr_model.runner.scale != scale:
        raise BadInputError(f"{model} is a x{sr_model.runner.scale} model, evaluation asks x{scale} (--scale)")
    get_protocol(protocol).resolve_metrics(metrics)  # fail on unknown names before any work
    resolved = [D.resolve(name, data_root) for name in datasets]
    for ds in resolved:
        result = evaluate_dataset(sr_model, ds, scale=scale, protocol=protocol, metrics=metrics,
                                  weights_dir=weights_dir, skip_unavailable=skip_unavailable,
                                  progress=progress, store=store, suite=suite)
        if store is not None and suite is not None and result.per_image:
            store.label(suite, result.model, result.provenance["model_key"], result.dataset,
                        result.provenance["dataset_sha256"])
        yield result


def write_outputs(result: EvalResult, out_dir: str | os.PathLike) -> list[Path]:
    """Per-image CSV and the summary JSON of one result, written atomically."""
    out = Path(out_dir)
    stem = f"{_safe(result.model)}__{_safe(result.dataset)}__{result.protocol}_x{result.scale}"
    csv_path = out / f"{stem}.csv"
    json_path = out / f"{stem}.json"
    atomic_write_text(csv_path, result.per_image_frame().to_csv(index=False))
    atomic_write_text(json_path, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    return [csv_path, json_path]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
