"""The two evaluation protocols of the field, named, so every number says how it was made.

``sr``   PSNR/SSIM tables (SRCNN, EDSR, RCAN, ESRGAN Table 2, BasicSR): SR quantised to uint8, Y of
         YCbCr from *double* input (not rounded), border of ``scale`` pixels shaved, PSNR and SSIM per
         image, averaged over images.
``pirm`` PIRM-SR 2018 (PI/RMSE of the ESRGAN paper): Y from *uint8* input (rounded), shaved 4 pixels;
         that plane feeds MSE, NIQE and Ma. Dataset RMSE = sqrt(mean per-image MSE);
         PI = ((10 - mean Ma) + mean NIQE) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from srbench import metrics as M
from srbench.errors import BadInputError
from srbench.images import describe_channels
from srbench.matlab import rgb2y, shave, to_uint8
from srbench.metrics.registry import mean_of

PIRM_SHAVE = 4
# PIRM-SR 2018 regions of the perception-distortion plane, by dataset RMSE (upper bounds, inclusive).
PIRM_REGIONS = (("R1", 11.5), ("R2", 12.5), ("R3", 16.0))


def quantize(img: np.ndarray) -> np.ndarray:
    """SR output as it would be saved to PNG: uint8 unchanged, float in 0..255 clamped and rounded."""
    img = np.asarray(img)
    return img if img.dtype == np.uint8 else to_uint8(img)


def check_pair(sr: np.ndarray, hr: np.ndarray) -> None:
    """A BadInputError naming both sizes when an SR image and its HR differ in shape."""
    if sr.shape != hr.shape:
        raise BadInputError(f"SR is {_describe(sr)} but HR is {_describe(hr)}")


def _describe(img: np.ndarray) -> str:
    h, w = img.shape[:2]
    return f"{h}x{w} {describe_channels(img)}"


def _luma(img: np.ndarray, *, rounded: bool) -> np.ndarray:
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim == 3 and img.shape[2] == 3:
        return rgb2y(img).astype(np.float64) if rounded else rgb2y(img.astype(np.float64))
    raise BadInputError(f"expected a grayscale or RGB image, got shape {img.shape}")


class Planes:
    """The planes of one SR/HR pair a protocol hands its metrics, each made once and only when asked."""

    def __init__(self, sr: np.ndarray, hr: np.ndarray, border: int, rounded: bool) -> None:
        self._images = {"sr": sr, "hr": hr}
        self._border = border
        self._rounded = rounded
        self._cache: dict[tuple[str, str], np.ndarray | None] = {}

    def get(self, plane: str, which: str) -> np.ndarray | None:
        key = (plane, which)
        if key not in self._cache:
            img = self._images[which]
            if plane == "y":
                self._cache[key] = shave(_luma(img, rounded=self._rounded), self._border)
            elif plane == "rgb":
                self._cache[key] = shave(img, self._border)
            else:
                self._cache[key] = None
        return self._cache[key]


@dataclass(frozen=True)
class Protocol:
    """How SR and HR become the planes metrics see (Y rounded or not, border shaved); its metrics are the
    registered descriptors that name it (``srbench.metrics.registry``)."""

    name: str
    description: str
    default_metrics: tuple[str, ...]
    rounded_luma: bool  # Y from uint8 input (rounded, PIRM) or from double input (unrounded)
    border: int | None  # pixels shaved from every side; None = the scale

    @property
    def metrics(self) -> tuple[M.Metric, ...]:
        return tuple(m for m in M.all_metrics().values() if m.in_protocol(self.name))

    def metric(self, name: str) -> M.Metric:
        try:
            metric = M.get_metric(name)
        except BadInputError:
            if name.startswith("pyiqa:"):
                raise  # pyiqa's own reason (no such metric, not installed) is the one to give
            metric = None
        if metric is None or not metric.in_protocol(self.name):
            known = ", ".join(m.name for m in self.metrics)
            raise BadInputError(f"unknown metric {name!r} for protocol {self.name!r}; known: {known}")
        return metric

    def resolve_metrics(self, names: Sequence[str] | None) -> list[str]:
        """Requested metrics plus what derived ones need, in the protocol's order; unknown names fail."""
        wanted = set(names or self.default_metrics)
        for name in list(wanted):
            wanted.update(self.metric(name).requires)
        return [m.name for m in self.metrics if m.name in wanted]

    def output_versions(self, names: Sequence[str], weights: Mapping[str, str] | None = None) -> dict[str, str]:
        """Version of every per-image value the metrics ``names`` produce (what the store caches); ``weights``:
        metric -> the tags of its weights files (``srbench.weights.tags``), part of the version stored."""
        versions = self.versions(names, weights)
        return {out: versions[n] for n in names for out in self.metric(n).outputs}

    def versions(self, names: Sequence[str], weights: Mapping[str, str] | None = None) -> dict[str, str]:
        """Implementation version of each reported metric (derived ones include what they are made of), with the
        tags of the weights files each reads where ``weights`` gives them."""
        tags = weights or {}

        def own(name: str) -> str:
            return self.metric(name).version + tags.get(name, "")

        return {n: "+".join([own(n), *(own(r) for r in self.metric(n).requires)]) for n in names}

    def per_image(self, sr: np.ndarray, hr: np.ndarray, scale: int, names: Sequence[str],
                  options: dict) -> dict[str, float]:
        """Per-image values of ``names`` (in the protocol's order: what a derived metric reads comes first)."""
        sr = quantize(sr)
        check_pair(sr, hr)
        planes = Planes(sr, hr, scale if self.border is None else self.border, self.rounded_luma)
        out: dict[str, float] = {}
        for name in names:
            m = self.metric(name)
            image = M.PerImage(planes.get(m.plane, "sr"), planes.get(m.plane, "hr") if m.needs_reference else None,
                               out, options.get("weights_dir"))
            out.update(m.run(image))
        return out

    def aggregate(self, rows: list[dict[str, float]], names: Sequence[str]) -> dict[str, float]:
        """Dataset values of ``names`` from per-image rows, each by its descriptor's rule."""
        mean = mean_of(rows)
        return {n: self.metric(n).dataset_value(mean) for n in names}


def pirm_region(rmse: float) -> str | None:
    """The PIRM-SR 2018 region (R1, R2, R3) of a dataset RMSE, or None outside all three."""
    low = -math.inf
    for name, high in PIRM_REGIONS:
        if low < rmse <= high:
            return name
        low = high
    return None


PROTOCOLS: dict[str, Protocol] = {
    "sr": Protocol(
        "sr",
        "PSNR/SSIM on Y of YCbCr (double, unrounded), border = scale, mean over images",
        ("psnr_y", "ssim_y"),
        rounded_luma=False,
        border=None,
    ),
    "pirm": Protocol(
        "pirm",
        "PIRM-SR 2018: rounded uint8 Y, shave 4; RMSE = sqrt(mean MSE); PI = ((10 - Ma) + NIQE) / 2",
        ("rmse", "niqe", "ma", "pi"),
        rounded_luma=True,
        border=PIRM_SHAVE,
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise BadInputError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None
