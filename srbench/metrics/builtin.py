"""The descriptors of srbench's own metrics, in the column order of the protocols' tables.

Versions here key the stored values: bump one when its implementation changes a number (and say so in the
CHANGELOG), never otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path

from srbench.errors import BadInputError
from srbench.metrics.fid import FID
from srbench.metrics.fullref import SSIM_WINDOW, mse, psnr, ssim
from srbench.metrics.lpips_alex import MIN_SIDE as LPIPS_MIN_SIDE
from srbench.metrics.niqe import BLOCK, ILL_CONDITIONED_SPREAD, niqe_conditioning
from srbench.metrics.pyiqa_extra import DISTS, LPIPS_VGG
from srbench.metrics.registry import Metric, PerImage, TorchBatch
from srbench.metrics.spectrum import SPECTRUM, SPECTRUM_DISCREPANCY


def perceptual_index_from(ma: float, niqe: float) -> float:
    """PIRM-SR 2018 perceptual index ((10 - Ma) + NIQE) / 2 (lower is better): per image from its Ma and NIQE,
    per dataset from their means (the only place the formula is written).

    >>> perceptual_index_from(ma=6.0, niqe=4.0), perceptual_index_from(ma=8.5, niqe=3.0)
    (4.0, 2.25)
    """
    return ((10.0 - ma) + niqe) / 2.0


def _nrqm_path(weights_dir: str | None) -> Path:
    from srbench.metrics.nrqm import nrqm_model_path  # scipy.io and the feature code: imported only when asked

    return nrqm_model_path(weights_dir)


def _load_nrqm(weights_dir: str | None) -> object:
    from srbench.metrics.nrqm import model_in

    return model_in(weights_dir)


def _load_brisque(weights_dir: str | None) -> object:
    from srbench.metrics.brisque import load_model

    return load_model(weights_dir)


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
    from srbench.metrics.lpips_alex import lpips, too_small

    if too_small(x.sr_plane().shape):
        return math.nan  # as NIQE: the image stays, NaN marks that LPIPS is undefined at this size
    return lpips(x.sr_plane(), x.hr_plane(), weights_dir=x.weights_dir)


# Torch forms (srbench.metrics.torch_forms, imported only when a batch is on a device): the same numbers from
# planes already on the device, batched (see that module for what is bitwise and what is within which tolerance).
def _psnr_torch(x: TorchBatch) -> list[float]:
    from srbench.metrics import torch_forms

    return torch_forms.psnr(x.sr, x.hr_plane())


def _ssim(x: PerImage) -> float:
    sr = x.sr_plane()
    if min(sr.shape[:2]) < SSIM_WINDOW:
        # as NIQE: the image stays (its PSNR with it), NaN marks SSIM undefined (MATLAB's ssim_index gives -Inf)
        return math.nan
    return ssim(sr, x.hr_plane())


def _ssim_torch(x: TorchBatch) -> list[float]:
    from srbench.metrics import torch_forms

    if min(x.sr.shape[-2:]) < SSIM_WINDOW:
        return [math.nan] * len(x.sr)
    return torch_forms.ssim(x.sr, x.hr_plane()).tolist()


def _rmse_torch(x: TorchBatch) -> list[dict[str, float]]:
    from srbench.metrics import torch_forms

    return [{"mse": v, "rmse": math.sqrt(v)} for v in torch_forms.mse(x.sr, x.hr_plane()).tolist()]


def _lpips_torch(x: TorchBatch) -> list[float]:
    from srbench.metrics import torch_forms
    from srbench.metrics.lpips_alex import too_small

    if too_small(tuple(x.sr.shape)):
        return [math.nan] * len(x.sr)
    return torch_forms.lpips(x.sr, x.hr_plane(), weights_dir=x.weights_dir)


BUILTIN: tuple[Metric, ...] = (
    Metric(name="psnr_y", label="PSNR-Y", digits=2, higher_is_better=True, needs_reference=True,
           version="1", description="PSNR in dB of the Y plane, float64, range 255",
           compute=lambda x: psnr(x.sr_plane(), x.hr_plane()), torch_compute=_psnr_torch,
           protocols=("sr",), tolerance=2e-3, drift_check=True, identical=math.inf),
    Metric(name="ssim_y", label="SSIM-Y", digits=4, higher_is_better=True, needs_reference=True,
           version="wang2004-1", description="SSIM of the Y plane, 11x11 Gaussian sigma 1.5, valid, no downsampling",
           compute=_ssim, torch_compute=_ssim_torch,
           undefined_when=f"SSIM needs an image of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after the shave",
           protocols=("sr",), tolerance=2e-5, drift_check=True, identical=1.0),
    Metric(name="rmse", label="RMSE", digits=2, higher_is_better=False, needs_reference=True,
           version="1", description="root mean squared error of the Y plane, float64",
           compute=_rmse, torch_compute=_rmse_torch, extra_outputs=("mse",),
           aggregate=lambda mean: math.sqrt(mean("mse")), aggregation="sqrt(mean per-image MSE)",
           protocols=("pirm",), tolerance=2e-3, drift_check=True, identical=0.0),
    Metric(name="niqe", label="NIQE", digits=3, higher_is_better=False, needs_reference=False,
           version="live-2", description="NIQE as the LIVE MATLAB release (96x96 blocks, pristine LIVE model)",
           compute=_niqe, extra_outputs=NIQE_OUTPUTS[1:],
           ill_conditioned_spread=ILL_CONDITIONED_SPREAD,
           undefined_when=f"NIQE needs two {BLOCK}x{BLOCK} blocks after the shave",
           protocols=("pirm",), tolerance=2e-3, drift_check=True),
    # Opt-in: the median over sign patterns of the flat areas (see srbench.metrics.niqe); nearer the LIVE
    # release's printed value than the deterministic score on 3 of the 4 ill-conditioned reference images.
    Metric(name="niqe_median", label="NIQE-med", digits=3, higher_is_better=False, needs_reference=False,
           version="live-2",
           description="median of NIQE over the sign patterns of its flat areas' rounding residues (conditioning "
                       "sample)",
           compute=lambda x: x.values["niqe_med"], plane="none", requires=("niqe",),
           undefined_when="where NIQE is", protocols=("pirm",), tolerance=2e-3),
    Metric(name="ma", label="Ma", digits=3, higher_is_better=True, needs_reference=False,
           version="native-1",
           description="Ma et al. NRQM (CVIU 2017), native port of the MATLAB release (pyiqa's departures not "
                       "followed)",
           compute=_ma, weights="NRQM_model.mat", find_weights=_nrqm_path, load_weights=_load_nrqm,
           undefined_when="Ma needs a plane of at least 45x45 pixels whose quarter-size level has 25 5x5 blocks "
                          "(e.g. 84x84 after the shave), and one that is not flat",
           protocols=("pirm",), tolerance=2e-3),
    Metric(name="pi", label="PI", digits=3, higher_is_better=False, needs_reference=False,
           version="pirm2018-1", description="perceptual index ((10 - Ma) + NIQE) / 2",
           compute=lambda x: perceptual_index_from(x.values["ma"], x.values["niqe"]), plane="none",
           requires=("niqe", "ma"), weights="NRQM_model.mat",
           aggregate=lambda mean: perceptual_index_from(mean("ma"), mean("niqe")),
           aggregation="((10 - mean Ma) + mean NIQE) / 2",
           undefined_when="where NIQE or Ma is", protocols=("pirm",), tolerance=2e-3),
    Metric(name="lpips", label="LPIPS", digits=4, higher_is_better=False, needs_reference=True,
           version="lpips-0.1-alex-1", description="LPIPS v0.1, AlexNet, on RGB",
           compute=_lpips, torch_compute=_lpips_torch, plane="rgb",
           weights="alexnet-owt-7be5be79.pth", find_weights=_alexnet_path, identical=0.0,
           undefined_when=f"LPIPS (AlexNet) needs an image of at least {LPIPS_MIN_SIDE}x{LPIPS_MIN_SIDE} pixels "
                          "after the shave",
           protocols=("sr", "pirm"), tolerance=1e-4),
    Metric(name="brisque", label="BRISQUE", digits=3, higher_is_better=False, needs_reference=False,
           version="live-2",
           description="BRISQUE as the LIVE MATLAB release (rgb2gray, MSCN 7x7, LIVE allmodel/allrange SVR)",
           compute=_brisque, plane="rgb", extra_outputs=("brisque_spread",), load_weights=_load_brisque,
           ill_conditioned_spread=ILL_CONDITIONED_SPREAD,
           undefined_when="BRISQUE is undefined for a constant image, and one too small for its two scales",
           protocols=("sr", "pirm"), tolerance=2e-3),
    SPECTRUM,  # opt-in (not in a protocol's default_metrics, not drift-checked), as are the four below
    SPECTRUM_DISCREPANCY,
    LPIPS_VGG,
    DISTS,
    FID,  # dataset-level: one value per (model, dataset, protocol), opt-in
)
