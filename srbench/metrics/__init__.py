"""Image quality metrics: pure functions (numpy in, float out) and a registry describing each.

Images are HxW or HxWx3 arrays, uint8 or float in 0..255. Protocols (``srbench.protocols``) decide which
plane a metric sees; these functions compute on exactly what they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from srbench.errors import BadInputError
from srbench.metrics.fullref import mse, psnr, ssim
from srbench.metrics.niqe import NiqeConditioning, niqe, niqe_conditioning


def ma(img: np.ndarray, **kwargs) -> float:
    """Ma et al.'s score (pyiqa's ``nrqm``) of a 2-D plane; needs ``NRQM_model.mat``."""
    from srbench.metrics.nrqm import ma as _ma

    return _ma(img, **kwargs)


def lpips(a: np.ndarray, b: np.ndarray, **kwargs) -> float:
    """LPIPS v0.1 (AlexNet); needs torchvision's AlexNet ImageNet weights."""
    from srbench.metrics.lpips_alex import lpips as _lpips

    return _lpips(a, b, **kwargs)


def perceptual_index(img: np.ndarray, **kwargs) -> float:
    """PIRM-SR 2018 perceptual index of one plane: ((10 - Ma) + NIQE) / 2, lower is better.

    A dataset's PI is built from the *means* of Ma and NIQE (see ``srbench.protocols``), which equals the
    mean of this per-image value because both are linear.
    """
    return ((10.0 - ma(img, **kwargs)) + niqe(img)) / 2.0


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    needs_reference: bool
    version: str
    description: str
    weights: str | None = None  # the downloaded file it needs, if any

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


METRICS: dict[str, MetricSpec] = {
    "psnr": MetricSpec("psnr", psnr, True, True, "1", "PSNR in dB, float64, range 255"),
    "mse": MetricSpec("mse", mse, False, True, "1", "mean squared error, float64"),
    "ssim": MetricSpec("ssim", ssim, True, True, "wang2004-1",
                       "SSIM, 11x11 Gaussian sigma 1.5, valid, no downsampling; RGB = channel mean"),
    "niqe": MetricSpec("niqe", niqe, False, False, "live-1",
                       "NIQE as the LIVE MATLAB release (96x96 blocks, pristine LIVE model)"),
    "ma": MetricSpec("ma", ma, True, False, "pyiqa-nrqm-1", "Ma et al. NRQM via pyiqa", "NRQM_model.mat"),
    "pi": MetricSpec("pi", perceptual_index, False, False, "pirm2018-1",
                     "perceptual index ((10 - Ma) + NIQE) / 2", "NRQM_model.mat"),
    "lpips": MetricSpec("lpips", lpips, False, True, "lpips-0.1-alex-1", "LPIPS v0.1, AlexNet",
                        "alexnet-owt-7be5be79.pth"),
}


def get_metric(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        raise BadInputError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


__all__ = [
    "METRICS", "MetricSpec", "NiqeConditioning", "get_metric", "lpips", "ma", "mse", "niqe",
    "niqe_conditioning", "perceptual_index", "psnr", "ssim",
]
