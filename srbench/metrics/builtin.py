"""The descriptors of srbench's own metrics, in the column order of the protocols' tables.

Versions here key the stored values: bump one when its implementation changes a number (and say so in the
CHANGELOG), never otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path

from srbench.errors import BadInputError
from srbench.metrics.fid import FID
from srbench.metrics.fullref import mse, psnr, ssim
from srbench.metrics.niqe import niqe_conditioning
from srbench.metrics.pyiqa_extra import DISTS, LPIPS_VGG
from srbench.metrics.registry import Metric, PerImage, TorchBatch
from srbench.metrics.spectrum import SPECTRUM, SPECTRUM_DISCREPANCY


def perceptual_index_from(ma: float, niqe: float) -> float:
    """PIRM-SR 2018 perceptual index ((10 - Ma) + NIQE) / 2 (lower is better): per image from its Ma and NIQE,
    per dataset from their means (the only place the formula is written)."""
    return ((10.0 - ma) + niqe) / 2.0


def _nrqm_path(weights_dir: str | None) -> Path:
    from srbench.metrics.nrqm import nrqm_model_path  # scipy.io and the feature code: imported only when asked

    return nrqm_model_path(weights_dir)


def _alexnet_path(weights_dir: str | None) -> Path:
    from srbench.metrics.lpips_alex import alexnet_path

    return alexnet_path(weights_dir)


def _rmse(x: PerImage) -> dict[str, float]:
    value = mse(x.sr_plane(), x.hr_plane())
    return {"mse": value, "rmse": math.sqrt(value)}


def _niqe(x: PerImage) -> dict[str, float]:
    try:
        cond = niqe_conditioning(x.sr_plane())
    except BadInputError:
        # Too small for two 96x96 blocks: NIQE (and PI) are undefined here, while RMSE and Ma still are;
        # the image stays, with NaN marking what it lacks.
        return dict.fromkeys(NIQE_OUTPUTS, math.nan)
    return {"niqe": cond.value, "niqe_spread": cond.spread, "niqe_low": cond.low, "niqe_high": cond.high,
            "niqe_med": cond.median}


# The conditioning range is stored beside each image's value: tables and `srbench compare` read it.
NIQE_OUTPUTS = ("niqe", "niqe_spread", "niqe_low", "niqe_high", "niqe_med")


def _ma(x: PerImage) -> float:
    from srbench.metrics.nrqm import check_size, ma

    try:
        check_size(x.sr_plane().shape)
    except BadInputError:
        return math.nan  # as NIQE: the image stays, NaN marks that Ma (and PI) are undefined at this size
    return ma(x.sr_plane(), weights_dir=x.weights_dir)


def _brisque(x: PerImage) -> dict[str, float]:
    from srbench.metrics.brisque import brisque_conditioning

    try:
        cond = brisque_conditioning(x.sr_plane(), weights_dir=x.weights_dir)
    except BadInputError:
        return {"brisque": math.nan, "brisque_spread": math.nan}  # too small for its two scales
    return {"brisque": cond.value, "brisque_spread": cond.spread}


def _lpips(x: PerImage) -> float:
    from srbench.metrics.lpips_alex import lpips

    return lpips(x.sr_plane(), x.hr_plane(), weights_dir=x.weights_dir)


# Torch forms (srbench.metrics.torch_forms, imported only when a batch is on a device): the same numbers from
# planes already on the device, batched (see that module for what is bitwise and what is within which tolerance).
def _psnr_torch(x: TorchBatch) -> list[float]:
    from srbench.metrics import torch_forms

    return torch_forms.psnr(x.sr, x.hr_plane())


def _ssim_torch(x: TorchBatch) -> list[float]:
    from srbench.metrics import torch_forms

    return torch_forms.ssim(x.sr, x.hr_plane()).tolist()


def _rmse_torch(x: TorchBatch) -> list[dict[str, float]]:
    from srbench.metrics import torch_forms

    return [{"mse": v, "rmse": math.sqrt(v)} for v in torch_forms.mse(x.sr, x.hr_plane()).tolist()]


def _lpips_torch(x: TorchBatch) -> list[float]:
    from srbench.metrics import torch_forms

    return torch_forms.lpips(x.sr, x.hr_plane(), weights_dir=x.weights_dir)


BUILTIN: tuple[Metric, ...] = (
    Metric("psnr_y", "PSNR-Y", 2, True, True, "1", "PSNR in dB of the Y plane, float64, range 255",
           lambda x: psnr(x.sr_plane(), x.hr_plane()), protocols=("sr",), tolerance=2e-3, drift_check=True,
           torch_compute=_psnr_torch),
    Metric("ssim_y", "SSIM-Y", 4, True, True, "wang2004-1",
           "SSIM of the Y plane, 11x11 Gaussian sigma 1.5, valid, no downsampling",
           lambda x: ssim(x.sr_plane(), x.hr_plane()), protocols=("sr",), tolerance=2e-5, drift_check=True,
           torch_compute=_ssim_torch),
    Metric("rmse", "RMSE", 2, False, True, "1", "root mean squared error of the Y plane, float64", _rmse,
           protocols=("pirm",), aggregate=lambda mean: math.sqrt(mean("mse")), extra_outputs=("mse",),
           tolerance=2e-3, drift_check=True, aggregation="sqrt(mean per-image MSE)", torch_compute=_rmse_torch),
    Metric("niqe", "NIQE", 3, False, False, "live-2",
           "NIQE as the LIVE MATLAB release (96x96 blocks, pristine LIVE model)", _niqe, protocols=("pirm",),
           extra_outputs=NIQE_OUTPUTS[1:], tolerance=2e-3, drift_check=True),
    # Opt-in: the median over sign patterns of the flat areas (see srbench.metrics.niqe); nearer the LIVE
    # release's printed value than the deterministic score on 3 of the 4 ill-conditioned reference images.
    Metric("niqe_median", "NIQE-med", 3, False, False, "live-2",
           "median of NIQE over the sign patterns of its flat areas' rounding residues (conditioning sample)",
           lambda x: x.values["niqe_med"], plane="none", protocols=("pirm",), requires=("niqe",),
           tolerance=2e-3),
    Metric("ma", "Ma", 3, True, False, "native-1",
           "Ma et al. NRQM (CVIU 2017), native port of the MATLAB release (pyiqa's departures not followed)", _ma,
           protocols=("pirm",),
           weights="NRQM_model.mat", find_weights=_nrqm_path, tolerance=2e-3),
    Metric("pi", "PI", 3, False, False, "pirm2018-1", "perceptual index ((10 - Ma) + NIQE) / 2",
           lambda x: perceptual_index_from(x.values["ma"], x.values["niqe"]), plane="none", protocols=("pirm",),
           aggregate=lambda mean: perceptual_index_from(mean("ma"), mean("niqe")), requires=("niqe", "ma"),
           weights="NRQM_model.mat", tolerance=2e-3, aggregation="((10 - mean Ma) + mean NIQE) / 2"),
    Metric("lpips", "LPIPS", 4, False, True, "lpips-0.1-alex-1", "LPIPS v0.1, AlexNet, on RGB", _lpips,
           plane="rgb", protocols=("sr", "pirm"), weights="alexnet-owt-7be5be79.pth", find_weights=_alexnet_path,
           tolerance=1e-4, torch_compute=_lpips_torch),
    Metric("brisque", "BRISQUE", 3, False, False, "live-2",
           "BRISQUE as the LIVE MATLAB release (rgb2gray, MSCN 7x7, LIVE allmodel/allrange SVR)", _brisque,
           plane="rgb", protocols=("sr", "pirm"), extra_outputs=("brisque_spread",), tolerance=2e-3),
    SPECTRUM,  # opt-in (not in a protocol's default_metrics, not drift-checked), as are the three below
    SPECTRUM_DISCREPANCY,
    LPIPS_VGG,
    DISTS,
    FID,  # dataset-level: one value per (model, dataset, protocol), opt-in
)
