"""Image quality metrics: pure functions (numpy in, float out) and the registry of metric descriptors.

Images are HxW or HxWx3 arrays, uint8 or float in 0..255. Protocols (``srbench.protocols``) decide which
plane a metric sees; these functions compute on exactly what they are given. Each reported metric is one
:class:`Metric` (``srbench.metrics.registry``); :func:`register` adds one from outside the package.
"""

from __future__ import annotations

import numpy as np

from srbench.metrics.builtin import perceptual_index_from
from srbench.metrics.fullref import mse, psnr, ssim
from srbench.metrics.niqe import NiqeConditioning, niqe, niqe_conditioning
from srbench.metrics.registry import (
    ENTRY_POINT_GROUP,
    Metric,
    PerImage,
    all_metrics,
    get_metric,
    register,
    temporarily,
    unregister,
)


def ma(img: np.ndarray, **kwargs) -> float:
    """Ma et al.'s score (pyiqa's ``nrqm``) of a 2-D plane; needs ``NRQM_model.mat``
    (:func:`srbench.metrics.nrqm.ma` has an example with a stand-in model).

    >>> import tempfile
    >>> ma(np.zeros((96, 96)), weights_dir=tempfile.mkdtemp())        # doctest: +ELLIPSIS
    Traceback (most recent call last):
    srbench.errors.WeightsUnavailableError: ...NRQM_model.mat...
    """
    from srbench.metrics.nrqm import ma as _ma

    return _ma(img, **kwargs)


def lpips(a: np.ndarray, b: np.ndarray, **kwargs) -> float:
    """LPIPS v0.1 (AlexNet); needs torchvision's AlexNet ImageNet weights.

    >>> lpips(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)))
    Traceback (most recent call last):
    srbench.errors.BadInputError: lpips: AlexNet needs an image of at least 31x31 pixels; got 16x16
    """
    from srbench.metrics.lpips_alex import lpips as _lpips

    return _lpips(a, b, **kwargs)


def perceptual_index(img: np.ndarray, **kwargs) -> float:
    """PIRM-SR 2018 perceptual index of one plane: ((10 - Ma) + NIQE) / 2, lower is better.

    A dataset's PI is built from the *means* of Ma and NIQE (the ``pi`` descriptor's aggregation), which
    equals the mean of this per-image value because both are linear.

    >>> import tempfile
    >>> perceptual_index(np.zeros((96, 96)), weights_dir=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    srbench.errors.WeightsUnavailableError: ...NRQM_model.mat...
    """
    return perceptual_index_from(ma(img, **kwargs), niqe(img))


__all__ = [
    "ENTRY_POINT_GROUP", "Metric", "NiqeConditioning", "PerImage", "all_metrics", "get_metric", "lpips", "ma",
    "mse", "niqe", "niqe_conditioning", "perceptual_index", "perceptual_index_from", "psnr", "register", "ssim",
    "temporarily", "unregister",
]
