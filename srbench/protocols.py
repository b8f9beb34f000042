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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from srbench import metrics as M
from srbench.errors import BadInputError
from srbench.images import describe_channels
from srbench.matlab import rgb2y, shave, to_uint8

PIRM_SHAVE = 4
# PIRM-SR 2018 regions of the perception-distortion plane, by dataset RMSE (upper bounds, inclusive).
PIRM_REGIONS = (("R1", 11.5), ("R2", 12.5), ("R3", 16.0))


@dataclass(frozen=True)
class ProtocolMetric:
    """A number a protocol reports, tied to the base metric that computes it."""

    name: str
    base: str  # key into srbench.metrics.METRICS
    requires: tuple[str, ...] = ()  # other protocol metrics it is derived from
    extra_outputs: tuple[str, ...] = ()  # per-image values it also produces (aggregation inputs, diagnostics)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.name, *self.extra_outputs)

    @property
    def spec(self) -> M.MetricSpec:
        return M.METRICS[self.base]


def quantize(img: np.ndarray) -> np.ndarray:
    """SR output as it would be saved to PNG: uint8 unchanged, float in 0..255 clamped and rounded."""
    img = np.asarray(img)
    return img if img.dtype == np.uint8 else to_uint8(img)


def _check_pair(sr: np.ndarray, hr: np.ndarray) -> None:
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


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    metrics: tuple[ProtocolMetric, ...]
    default_metrics: tuple[str, ...]
    per_image: Callable[[np.ndarray, np.ndarray, int, Sequence[str], dict], dict[str, float]]
    aggregate: Callable[[list[dict[str, float]], Sequence[str]], dict[str, float]]

    def metric(self, name: str) -> ProtocolMetric:
        for m in self.metrics:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.metrics)
        raise BadInputError(f"unknown metric {name!r} for protocol {self.name!r}; known: {known}")

    def resolve_metrics(self, names: Sequence[str] | None) -> list[str]:
        """Requested metrics plus what derived ones need, in the protocol's order; unknown names fail."""
        wanted = set(names or self.default_metrics)
        for name in list(wanted):
            wanted.update(self.metric(name).requires)
        return [m.name for m in self.metrics if m.name in wanted]

    def output_versions(self, names: Sequence[str]) -> dict[str, str]:
        """Version of every per-image value the metrics ``names`` produce (what the store caches)."""
        versions = self.versions(names)
        return {out: versions[n] for n in names for out in self.metric(n).outputs}

    def versions(self, names: Sequence[str]) -> dict[str, str]:
        """Implementation version of each reported metric (derived ones include what they are made of)."""
        out = {}
        for n in names:
            m = self.metric(n)
            out[n] = "+".join([m.spec.version, *(self.metric(r).spec.version for r in m.requires)])
        return out


def _mean(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows]
    return float(np.mean(values)) if values else math.nan


def _sr_per_image(sr, hr, scale, names, options) -> dict[str, float]:
    sr = quantize(sr)
    _check_pair(sr, hr)
    out: dict[str, float] = {}
    if "psnr_y" in names or "ssim_y" in names:
        y_sr = shave(_luma(sr, rounded=False), scale)
        y_hr = shave(_luma(hr, rounded=False), scale)
        if "psnr_y" in names:
            out["psnr_y"] = M.psnr(y_sr, y_hr)
        if "ssim_y" in names:
            out["ssim_y"] = M.ssim(y_sr, y_hr)
    if "lpips" in names:
        out["lpips"] = M.lpips(shave(sr, scale), shave(hr, scale), weights_dir=options.get("weights_dir"))
    return out


def _sr_aggregate(rows, names) -> dict[str, float]:
    return {n: _mean(rows, n) for n in names}


def _pirm_per_image(sr, hr, scale, names, options) -> dict[str, float]:
    sr = quantize(sr)
    _check_pair(sr, hr)
    y_sr = shave(_luma(sr, rounded=True), PIRM_SHAVE)
    out: dict[str, float] = {}
    if "rmse" in names:
        y_hr = shave(_luma(hr, rounded=True), PIRM_SHAVE)
        out["mse"] = M.mse(y_sr, y_hr)
        out["rmse"] = math.sqrt(out["mse"])
    if "niqe" in names:
        try:
            cond = M.niqe_conditioning(y_sr)
        except BadInputError:
            # Too small for two 96x96 blocks: NIQE (and PI) are undefined here, while RMSE and Ma still are;
            # the image stays, with NaN marking what it lacks.
            out["niqe"] = out["niqe_spread"] = math.nan
        else:
            out["niqe"] = cond.value
            out["niqe_spread"] = cond.spread
    if "ma" in names:
        out["ma"] = M.ma(y_sr, weights_dir=options.get("weights_dir"))
    if "pi" in names:
        out["pi"] = ((10.0 - out["ma"]) + out["niqe"]) / 2.0
    if "lpips" in names:
        lp_sr, lp_hr = shave(sr, PIRM_SHAVE), shave(hr, PIRM_SHAVE)
        out["lpips"] = M.lpips(lp_sr, lp_hr, weights_dir=options.get("weights_dir"))
    return out


def _pirm_aggregate(rows, names) -> dict[str, float]:
    out: dict[str, float] = {}
    for n in names:
        if n == "rmse":
            out["rmse"] = math.sqrt(_mean(rows, "mse")) if rows else math.nan
        elif n == "pi":
            out["pi"] = ((10.0 - _mean(rows, "ma")) + _mean(rows, "niqe")) / 2.0
        else:
            out[n] = _mean(rows, n)
    return out


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
        (ProtocolMetric("psnr_y", "psnr"), ProtocolMetric("ssim_y", "ssim"), ProtocolMetric("lpips", "lpips")),
        ("psnr_y", "ssim_y"),
        _sr_per_image,
        _sr_aggregate,
    ),
    "pirm": Protocol(
        "pirm",
        "PIRM-SR 2018: rounded uint8 Y, shave 4; RMSE = sqrt(mean MSE); PI = ((10 - Ma) + NIQE) / 2",
        (
            ProtocolMetric("rmse", "mse", extra_outputs=("mse",)),
            ProtocolMetric("niqe", "niqe", extra_outputs=("niqe_spread",)),
            ProtocolMetric("ma", "ma"),
            ProtocolMetric("pi", "pi", requires=("niqe", "ma")),
            ProtocolMetric("lpips", "lpips"),
        ),
        ("rmse", "niqe", "ma", "pi"),
        _pirm_per_image,
        _pirm_aggregate,
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise BadInputError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None
