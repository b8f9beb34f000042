"""Ma et al.'s no-reference SR quality score (NRQM), through pyiqa's port of the MATLAB code.

Ma, Yang, Yang and Yang, "Learning a No-Reference Quality Metric for Single-Image Super-Resolution",
CVIU 2017. The trained regression forests (``NRQM_model.mat``) are a download: srbench never fetches it,
it looks in the weights folder and in pyiqa's own cache and says where to put it when it is missing.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from srbench import paths
from srbench.errors import BadInputError

NRQM_FILENAME = "NRQM_model.mat"
NRQM_ORIGIN = "pyiqa's model release (the file pyiqa caches as NRQM_model.mat) or chaoma99/sr-metric"


def nrqm_model_path(explicit: str | os.PathLike | None = None) -> Path:
    """Where ``NRQM_model.mat`` is, or a :class:`WeightsUnavailableError` saying where to put it."""
    return paths.require_weight(NRQM_FILENAME, "Ma's score (ma, and pi which uses it)", NRQM_ORIGIN,
                                [paths.torch_hub_dir() / "pyiqa"], explicit)


@functools.cache
def _load_model(path: str) -> tuple[Any, list]:
    from pyiqa.archs.nrqm_arch import NRQM

    model = NRQM(test_y_channel=False, pretrained_model_path=path)
    return model.linear_param, model.rf_params_list


def ma(img: np.ndarray, *, weights_dir: str | os.PathLike | None = None) -> float:
    """Ma's score of a 2-D plane in 0..255 (the protocol's Y plane, fed as is), higher is better."""
    import torch
    from pyiqa.archs.nrqm_arch import nrqm

    plane = np.asarray(img)
    if plane.ndim != 2:
        raise BadInputError(f"ma expects a 2-D plane (Y or gray) in 0..255, got shape {plane.shape}")
    linear, forests = _load_model(str(nrqm_model_path(weights_dir)))
    tensor = torch.from_numpy(plane.astype(np.float64))[None, None]
    with torch.no_grad():
        try:
            return float(nrqm(tensor, linear, forests))
        except torch.linalg.LinAlgError:
            # Flat images make the GSM covariance singular; Ma's score has no value there.
            raise BadInputError(
                f"Ma's score is undefined for this {plane.shape[0]}x{plane.shape[1]} plane: it has too little "
                "texture (the steerable-pyramid covariance is singular)"
            ) from None
