"""The visual comparison of an ablation report: centre crops of a dataset's first images, HR and each shown model,
with their PSNR-Y and PI (or NIQE) on the crop."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from srbench import paths
from srbench.errors import SrbenchError
from srbench.report import CROP_H, CROP_W


@dataclass(frozen=True)
class Crop:
    """One model's centre crop of one image, with its numbers on that crop."""

    model: str
    pixels: Any  # uint8 HxW or HxWx3
    psnr_y: float
    no_reference: float  # PI, or NIQE when Ma's weights are missing


@dataclass(frozen=True)
class VisualComparison:
    """Crops of the first images of a dataset (HR first, then each model): what the HTML report shows."""

    nr_label: str
    rows: tuple[tuple[str, tuple[Crop, ...]], ...]  # (image, crops)
    note: str = ""  # why there is nothing to show


def shown_models(models: dict) -> dict:
    """The models a visual comparison shows: the baseline and every GAN-stage model."""
    return {k: v for k, v in models.items() if k == "bicubic" or k.endswith("-gan")}


def _crop_numbers(crop, hr_crop, scale: int, use_pi: bool, weights_dir: str | None) -> tuple[float, float]:
    """PSNR-Y (sr protocol) and PI or NIQE (pirm protocol) of a crop, with no border shaved: the crop is
    exactly what the reader sees."""
    import dataclasses

    from srbench.protocols import get_protocol

    psnr = dataclasses.replace(get_protocol("sr"), border=0).per_image(crop, hr_crop, scale, ["psnr_y"], {})
    pirm = dataclasses.replace(get_protocol("pirm"), border=0)
    name = "pi" if use_pi else "niqe"
    values = pirm.per_image(crop, hr_crop, scale, pirm.resolve_metrics([name]), {"weights_dir": weights_dir})
    return psnr["psnr_y"], values[name]


def visual_comparison(sources: dict, dataset: str, data_root: str | None, *, n_images: int = 3, scale: int = 4,
                      weights_dir: str | None = None) -> VisualComparison:
    """Centre crops of the first ``n_images`` of ``dataset`` for HR and every opened source in ``sources``."""
    from srbench.datasets import resolve
    from srbench.metrics.nrqm import nrqm_model_path
    from srbench.weights import UnpinnedWeightsError, check_file

    try:
        check_file(nrqm_model_path(weights_dir))  # the crops' PI is made with the file the evaluation accepts
        nr_label, use_pi = "PI", True
    except UnpinnedWeightsError:
        nr_label, use_pi = "NIQE (PI unavailable: NRQM_model.mat is not the pinned file; see srbench evaluate)", False
    except SrbenchError:
        nr_label, use_pi = "NIQE (PI unavailable: no Ma weights; srbench fetch weights nrqm)", False
    try:
        ds = resolve(dataset, data_root)
    except SrbenchError as exc:
        return VisualComparison(nr_label, (), f"No visual comparison: {exc}")
    rows = []
    for item in ds.items[:n_images]:
        try:
            pair = ds.load_pair(item, scale)
        except SrbenchError:  # a bad image is listed in the failures already
            continue
        h, w = pair.hr.shape[:2]
        if h >= CROP_H and w >= CROP_W:
            rows.append((item.name, _crops(sources, pair, item, scale, use_pi, weights_dir)))
    return VisualComparison(nr_label, tuple(rows))


def _crops(sources: dict, pair, item, scale: int, use_pi: bool, weights_dir: str | None) -> tuple[Crop, ...]:
    h, w = pair.hr.shape[:2]
    top, left = (h - CROP_H) // 2, (w - CROP_W) // 2
    window = (slice(top, top + CROP_H), slice(left, left + CROP_W))
    hr_crop = pair.hr[window]
    candidates = [("HR", hr_crop)]
    for name, source in sources.items():
        try:
            candidates.append((name, _predicted_crop(source, pair, item, scale, window)))
        except SrbenchError:  # listed in the failures already
            continue
    return tuple(Crop(name, crop, *_crop_numbers(crop, hr_crop, scale, use_pi, weights_dir))
                 for name, crop in candidates)


def _predicted_crop(source, pair, item, scale: int, window: tuple[slice, slice]):
    """``source``'s SR image of ``pair`` cut to ``window``, quantised as every protocol first does. Kept in the cache
    folder (srbench.paths.cache_dir) under what determines it (the source's key: a generator's checkpoint sha256
    and device; the HR and LR pixels; the scale and window), so a re-run into another --out runs no generator."""
    import hashlib
    import io

    import numpy as np

    from srbench.images import atomic_write_bytes
    from srbench.protocols import quantize

    h = hashlib.sha256(f"{source.key}|x{scale}|{window}".encode())
    for pixels in (pair.hr, pair.lr):
        h.update(f"{pixels.dtype}{pixels.shape}".encode())
        h.update(np.ascontiguousarray(pixels).tobytes())
    path = paths.cache_dir() / "visual-crops" / f"{h.hexdigest()}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # not there yet, or a damaged file: made again
        pass
    crop = quantize(source.predict(pair, item, scale)[window])
    buffer = io.BytesIO()
    np.save(buffer, crop, allow_pickle=False)
    with contextlib.suppress(SrbenchError):  # a read-only cache folder costs only the speed-up
        atomic_write_bytes(path, buffer.getvalue())
    return crop
