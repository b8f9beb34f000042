"""Training losses of the ESRGAN ablation, of the loss study built on it and of the related work they are compared
with. Each choice is named by what it is; its source is given with it.

**Adversarial losses** work on discriminator logits ``C(x)`` of a batch of real (HR) images ``x_r`` and generated
(SR) images ``x_f``; ``E`` is the batch mean. The relativistic losses compare each logit with a reference,
``R(x_r)`` and ``R(x_f)``, and apply one of three pairs ``(f_real, f_fake)`` of per-sample losses:

- GAN (BCE on logits): ``f_real(v) = BCE(v, 1) = softplus(-v)``, ``f_fake(v) = BCE(v, 0) = softplus(v)``;
- hinge: ``f_real(v) = max(0, 1 - v)``, ``f_fake(v) = max(0, 1 + v)``;
- least squares: ``f_real(v) = (v - 1)^2``, ``f_fake(v) = (v + 1)^2``.

The discriminator minimises ``E f_real(R(x_r)) + E f_fake(R(x_f))`` and the generator the same with the roles
swapped, ``E f_fake(R(x_r)) + E f_real(R(x_f))``, so the generator also gets gradients through the real images'
side (through the fake logits' mean in their reference).

- ``standard``: the vanilla GAN with BCE on logits. D: BCE(C(x_r), 1) + BCE(C(x_f), 0); G: BCE(C(x_f), 1).
- Relativistic *average* (Jolicoeur-Martineau 2018, "The relativistic discriminator: a key element missing from
  standard GAN", arXiv:1807.00734, Sec. 4, relativistic average GANs: RaSGAN's losses and their
  generalisation to other losses; the author's code AlexiaJM/RelativisticGAN, ``GAN_losses_iter.py``
  ``--loss_D`` 6/7/8): ``R(x_r) = C(x_r) - E C(x_f)``, ``R(x_f) = C(x_f) - E C(x_r)``.
  ``ragan`` (RaSGAN, ESRGAN's, conventions section 5) with the GAN pair, ``rahinge`` (RaHingeGAN) with the hinge
  pair, ``rals`` (RaLSGAN) with the least-squares pair.
- Relativistic *centered* (Jolicoeur-Martineau 2019, "On Relativistic f-Divergences", arXiv:1901.02474:
  the relativistic centered f-divergences (RcD), where the critic is centred on its expectation under the mixture
  ``M = (P + Q) / 2`` of the real and fake distributions; the author's code AlexiaJM/relativistic-f-divergences,
  ``GAN.py`` ``--loss_D`` 21/22/23, RcSGAN/RcLSGAN/RcHingeGAN): ``R(x) = C(x) - m`` for real and fake alike, with
  ``m = (E C(x_r) + E C(x_f)) / 2``, the mean over the union of the real and fake critics (the two batches are of
  equal size). ``rcgan`` (RcSGAN) with the GAN pair, ``rchinge`` with the hinge pair, ``rcls`` with the
  least-squares pair. (The paired ``RpGAN``, ``C(x_r) - C(x_f)``, is not needed to define them and not offered.)
- ``wgan-gp``: Wasserstein critic with gradient penalty (Gulrajani et al. 2017). D: E C(x_f) - E C(x_r) + lambda GP;
  G: -E C(x_f).
- ``ragp``: ``ragan``'s generator loss; its discriminator loss plus the same gradient penalty,
  ``lambda E (||grad_x C(x_hat)||_2 - 1)^2`` at random interpolates ``x_hat`` of real and generated images.

The papers write each relativistic loss as the sum of its two expectations, as here; the 2018 reference code
halves both sums (BasicSR too), which is the same as halving ``loss.adversarial_weight``.

**Perceptual losses** (``loss.perceptual_backbone``), between SR and HR in [0, 1], HR without gradient:

- ``vgg``: distance between VGG19 features of one layer (ESRGAN: ``conv5_4``), ``l1`` (mean absolute difference,
  ESRGAN) or ``l2`` (mean squared difference, the squared L2 of SRGAN/the WGAN-GP project's perceptual loss).
- ``lpips``: LPIPS v0.1 with AlexNet (Zhang et al. 2018), the ``lpips`` package's calibrated linear layers.
- ``dists``: DISTS (Ding et al. 2020, "Image Quality Assessment: Unifying Structure and Texture Similarity", IEEE TPAMI,
  arXiv:2004.07728; the authors' code, the ``dists-pytorch`` package): VGG16 with its max pools replaced by L2 pooling
  (a 3x3 Hann window, stride 2); on the image and the five stages' outputs (relu1_2 .. relu5_3), per channel ``i``
  of stage ``j``, with global means, variances and covariance, and c1 = c2 = 1e-6, the texture term
  ``l = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)`` and the structure term
  ``s = (2 sigma_xy + c2) / (sigma_x^2 + sigma_y^2 + c2)``;
  ``DISTS = 1 - sum_ij (alpha_ij l_ij + beta_ij s_ij)`` with the learned ``alpha``, ``beta`` (1475 each, normalised
  to sum 1 together) of the authors' MIT-licensed release (the ``dists-pytorch`` package's ``weights.pt``).

**Frequency losses** (``loss.frequency``, weighted by ``loss.frequency_weight``):

- ``fft``: the loss study's normalised spectrum distance, per image
  ``||F(G(x)) - F(y)||_2 / max(||F(G(x))||_2, ||F(y)||_2)`` over the orthonormal 2-D DFT of every channel, averaged
  over the batch. Scale invariant, 0 for identical images, at most 2 (triangle inequality). By Parseval's theorem
  it equals the same ratio of the images themselves.
- ``fft-l1``: the mean magnitude of the difference of the orthonormal 2-D real spectra (srbench's earlier
  ``fft_weight`` term).
- ``spectral``: the spectral loss of Durall et al. (CVPR 2020, "Watch your Up-Convolution: CNN Based Generative Deep
  Neural Networks are Failing to Reproduce Spectral Distributions", arXiv:2003.01826, the spectral loss term of
  its spectral regularisation; their code cc-hpc-itwm/UpConv ``train_spectrum.py``): each image to grey (ITU-R BT.601:
  0.2989 R + 0.5870 G + 0.1140 B), the centred 2-D DFT, its magnitude in decibels ``20 ln(|F| + 1e-8)``,
  azimuthally averaged over rings of integer radius about the centre ``((W - 1)/2, (H - 1)/2)`` (the innermost
  ring, holding DC, and the outermost, a partial corner ring, dropped, as their ``azimuthalAverage``), each 1-D
  spectrum min-max normalised to [0, 1], and the binary cross-entropy of the SR spectrum against the HR one
  (the paper's formula: HR as the target), logarithms clamped at -100 as torch's BCE does. Unlike the reference
  code, which computes the spectra in NumPy (so no gradient reaches the generator except through its
  multiplication by the adversarial loss), the spectra here are differentiable torch operations, as the paper
  describes the loss.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from srbench.errors import BadInputError
from srbench.metrics.spectrum import DURALL_EPS, DURALL_GREY, ring_index

log = logging.getLogger(__name__)

# The contract's order (error messages list them so).
ADVERSARIAL_KINDS = ("standard", "ragan", "rahinge", "rals", "rcgan", "rchinge", "rcls", "ragp", "wgan-gp")
# The adversarial losses whose discriminator step adds a gradient penalty (weight loss.gp_weight).
GRADIENT_PENALTY_LOSSES = ("wgan-gp", "ragp")
PERCEPTUAL_BACKBONES = ("vgg", "lpips", "dists")
PERCEPTUAL_CRITERIA = ("l1", "l2")  # the vgg backbone's feature distance
FREQUENCY_LOSSES = ("none", "fft", "fft-l1", "spectral")
GP_WEIGHT = 10.0

# Relativistic losses: kind -> (reference, per-sample pair); the module docstring gives each one's source.
_RELATIVISTIC = {
    "ragan": ("average", "gan"), "ragp": ("average", "gan"), "rahinge": ("average", "hinge"),
    "rals": ("average", "ls"), "rcgan": ("centered", "gan"), "rchinge": ("centered", "hinge"),
    "rcls": ("centered", "ls"),
}


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """``l1``: mean absolute difference; ``l2``: mean squared difference (MSE)."""
    if kind == "l1":
        return F.l1_loss(sr, hr)
    if kind == "l2":
        return F.mse_loss(sr, hr)
    raise BadInputError(f"unknown pixel loss {kind!r}: use l1 or l2")


class PerceptualLoss(nn.Module):
    """Weighted distance between VGG19 features of SR and HR (HR features carry no gradient): ``l1``, the mean
    absolute difference (ESRGAN), or ``l2``, the mean squared difference (SRGAN's squared L2 of features)."""

    def __init__(self, layer_weights: Mapping[str, float], weights: str | os.PathLike | None = "imagenet",
                 weights_dir: str | os.PathLike | None = None, criterion: str = "l1") -> None:
        super().__init__()
        from srbench.archs import VGGFeatures

        if not layer_weights:
            raise BadInputError("PerceptualLoss needs at least one VGG layer")
        if criterion not in PERCEPTUAL_CRITERIA:
            raise BadInputError(f"unknown perceptual criterion {criterion!r}; known: {', '.join(PERCEPTUAL_CRITERIA)}")
        self.layer_weights = dict(layer_weights)
        self.distance = F.l1_loss if criterion == "l1" else F.mse_loss
        self.vgg = VGGFeatures(tuple(self.layer_weights), weights=weights, weights_dir=weights_dir)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        sr_feats = self.vgg(sr)
        with torch.no_grad():
            hr_feats = self.vgg(hr)
        # layer_weights is never empty (checked in __init__), so sum() never returns its start value 0.
        return cast(torch.Tensor, sum(w * self.distance(sr_feats[name], hr_feats[name])
                                      for name, w in self.layer_weights.items()))


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _f_real(pair: str, v: torch.Tensor) -> torch.Tensor:
    """The per-sample loss that pushes ``v`` up (what the discriminator wants for real images), batch-averaged."""
    if pair == "gan":
        return _bce(v, 1.0)
    if pair == "hinge":
        return F.relu(1.0 - v).mean()
    return ((v - 1.0) ** 2).mean()


def _f_fake(pair: str, v: torch.Tensor) -> torch.Tensor:
    """The per-sample loss that pushes ``v`` down, batch-averaged."""
    if pair == "gan":
        return _bce(v, 0.0)
    if pair == "hinge":
        return F.relu(1.0 + v).mean()
    return ((v + 1.0) ** 2).mean()


def _relative(kind: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(R(x_r), R(x_f), pair) of a relativistic loss (module docstring)."""
    reference, pair = _RELATIVISTIC[kind]
    if reference == "average":
        return real - fake.mean(), fake - real.mean(), pair
    centre = (real.mean() + fake.mean()) / 2
    return real - centre, fake - centre, pair


def _unknown(kind: str) -> BadInputError:
    return BadInputError(f"unknown adversarial loss {kind!r}; known: {', '.join(ADVERSARIAL_KINDS)}")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's adversarial loss from its logits on real and generated images (no penalty)."""
    if kind in _RELATIVISTIC:
        rel_real, rel_fake, pair = _relative(kind, real, fake)
        return _f_real(pair, rel_real) + _f_fake(pair, rel_fake)
    if kind == "standard":
        return _bce(real, 1.0) + _bce(fake, 0.0)
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    raise _unknown(kind)


def generator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss; ``real`` is ignored by ``standard`` and ``wgan-gp``."""
    if kind in _RELATIVISTIC:
        rel_real, rel_fake, pair = _relative(kind, real, fake)
        return _f_fake(pair, rel_real) + _f_real(pair, rel_fake)
    if kind == "standard":
        return _bce(fake, 1.0)
    if kind == "wgan-gp":
        return -fake.mean()
    raise _unknown(kind)


def uses_gradient_penalty(kind: str) -> bool:
    return kind in GRADIENT_PENALTY_LOSSES


def gradient_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] at random interpolates x_hat between real and generated images."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = discriminator(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


# -- frequency losses ------------------------------------------------------------------------------------------
def fft_l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean magnitude of the difference of the orthonormal 2-D real spectra of SR and HR (``fft-l1``)."""
    diff = torch.fft.rfft2(sr.float(), norm="ortho") - torch.fft.rfft2(hr.float(), norm="ortho")
    return diff.abs().mean()


def normalised_fft_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The loss study's ``||F(sr) - F(hr)|| / max(||F(sr)||, ||F(hr)||)`` per image (``fft``), batch mean.

    Two all-zero images are identical: their loss is 0 (the denominator is then kept from 0)."""
    a = torch.fft.fft2(sr.float(), norm="ortho").flatten(1)
    b = torch.fft.fft2(hr.float(), norm="ortho").flatten(1)
    num = torch.linalg.vector_norm(a - b, dim=1)
    den = torch.maximum(torch.linalg.vector_norm(a, dim=1), torch.linalg.vector_norm(b, dim=1))
    return (num / den.clamp_min(torch.finfo(den.dtype).tiny)).mean()


# Durall et al.'s constants and rings are the spectrum_discrepancy metric's (one definition for both).
SPECTRAL_EPS = DURALL_EPS
GREY = DURALL_GREY


def _ring_means(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(rings, H*W): row k averages the pixels of integer radius k about ((W-1)/2, (H-1)/2) of an h x w plane."""
    ring = torch.from_numpy(ring_index(h, w)).to(device).flatten()
    member = (ring[None, :] == torch.arange(int(ring.max()) + 1, device=device)[:, None]).to(dtype)
    return member / member.sum(1, keepdim=True)


def azimuthal_average(plane: torch.Tensor) -> torch.Tensor:
    """Mean of ``plane`` (..., H, W) over each ring of integer radius about ((W-1)/2, (H-1)/2), rings 1 to the
    last but one (Durall et al.'s ``azimuthalAverage``: the central ring and the partial outer ring dropped).
    A product with the ring-averaging matrix, not a scatter: the same sums in the same order on every device
    (CUDA's scatter-add accumulates in an arbitrary order, which would break bitwise resume)."""
    h, w = plane.shape[-2:]
    means = _ring_means(h, w, plane.device, plane.dtype)
    if means.shape[0] < 3:
        raise BadInputError(f"spectral loss: a {h}x{w} image has no ring between its centre and its corners")
    return plane.flatten(-2) @ means[1:-1].T


def spectrum_1d(images: torch.Tensor) -> torch.Tensor:
    """Durall et al.'s normalised 1-D spectrum of each RGB image in a batch (N, 3, H, W) -> (N, rings)."""
    weights = torch.tensor(GREY, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    grey = (images.float() * weights).sum(1)
    spectrum = torch.fft.fftshift(torch.fft.fft2(grey), dim=(-2, -1))
    profile = azimuthal_average(20 * torch.log(spectrum.abs() + SPECTRAL_EPS))
    low = profile.amin(-1, keepdim=True)
    span = profile.amax(-1, keepdim=True) - low
    # A flat profile (a constant image) has no range: it normalises to zeros instead of 0/0.
    return (profile - low) / span.clamp_min(torch.finfo(span.dtype).tiny)


def spectral_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of SR's normalised 1-D spectrum against HR's (``spectral``; module docstring)."""
    p = spectrum_1d(sr)
    with torch.no_grad():
        t = spectrum_1d(hr)
    return -(t * _log_clamped(p) + (1 - t) * _log_clamped(1 - p)).mean()


def _log_clamped(x: torch.Tensor) -> torch.Tensor:
    """``max(ln x, -100)`` as torch's BCE takes it, with a zero gradient (not 0 * inf) where x is 0: each
    min-max normalised spectrum is exactly 0 at its lowest ring and 1 at its highest."""
    positive = x > 0
    return torch.where(positive, torch.log(torch.where(positive, x, torch.ones_like(x))), -100.0).clamp_min(-100.0)


def frequency_loss(kind: str, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The frequency term ``kind`` of ``FREQUENCY_LOSSES`` (not ``none``)."""
    losses = {"fft": normalised_fft_loss, "fft-l1": fft_l1_loss, "spectral": spectral_loss}
    if kind not in losses:
        raise BadInputError(f"unknown frequency loss {kind!r}; known: {', '.join(FREQUENCY_LOSSES)}")
    return losses[kind](sr, hr)


# -- LPIPS and DISTS ---------------------------------------------------------------------------------------------
class LPIPSLoss(nn.Module):
    """LPIPS (v0.1, AlexNet) as a training loss. ``weights``: ``"imagenet"`` (the AlexNet backbone file the metric
    uses, from the weights folder), a path to torchvision's AlexNet state dict, or ``None`` for a randomly
    initialised backbone (tests and smoke runs only); the calibrated linear layers ship with ``lpips``."""

    def __init__(self, weights_dir: str | os.PathLike | None = None,
                 weights: str | os.PathLike | None = "imagenet") -> None:
        super().__init__()
        from srbench.metrics.lpips_alex import lpips_network

        if weights is None:
            log.warning("LPIPSLoss: random AlexNet (weights=None); the perceptual loss is not LPIPS's")
            self.net = _random_lpips()
        else:
            path = alexnet_file(weights, weights_dir)
            # A copy: the metric's cached network must not move to the training device or change.
            self.net = copy.deepcopy(lpips_network(str(path)))
        self.net.requires_grad_(False)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.net(sr * 2 - 1, hr * 2 - 1).mean()


def alexnet_file(weights: str | os.PathLike, weights_dir: str | os.PathLike | None = None) -> Path:
    """The AlexNet file ``weights`` names for LPIPS (``"imagenet"``: the metric's, from the weights folders)."""
    from srbench.metrics.lpips_alex import alexnet_path

    return alexnet_path(weights_dir) if weights == "imagenet" else _weights_file(weights, "AlexNet")


def _random_lpips() -> nn.Module:
    import warnings

    import lpips as lpips_pkg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision's deprecated `pretrained`
        return lpips_pkg.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()


def _weights_file(weights: str | os.PathLike, what: str) -> Path:
    from srbench.paths import user_path

    path = user_path(weights, f"{what} weights")
    if not path.is_file():
        raise BadInputError(f"{path}: {what} weights file not found")
    return path


VGG16_FILENAME = "vgg16-397923af.pth"
VGG16_ORIGIN = ("torchvision's VGG16_Weights.IMAGENET1K_V1 (online, torchvision.models.vgg16(weights='IMAGENET1K_V1') "
                "caches it in torch.hub's checkpoints folder)")
DISTS_WEIGHTS = "weights.pt"  # the learned alpha/beta in the dists-pytorch package (MIT licence)
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)  # the image, then relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_DISTS_STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))  # VGG16 feature indices; each stage after the first
# starts at the max pool that L2 pooling replaces


def dists_weights_path(weights_dir: str | os.PathLike | None = None) -> Path:
    """The DISTS learned weights: the ``dists-pytorch`` package's ``weights.pt``, else ``weights.pt`` in the
    weights folder; a :class:`WeightsUnavailableError` saying how to get it otherwise."""
    from srbench import paths
    from srbench.errors import WeightsUnavailableError

    spec = importlib.util.find_spec("DISTS_pytorch")
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec is not None else []
    folders.append(paths.weights_dir(weights_dir))
    for folder in folders:
        if (folder / DISTS_WEIGHTS).is_file():
            return folder / DISTS_WEIGHTS
    raise WeightsUnavailableError(
        "DISTS (learned alpha/beta)", DISTS_WEIGHTS, str(folders[-1]), [str(f) for f in folders],
        "the dists-pytorch package (MIT licence; pip install dists-pytorch, an srbench dependency; the file is "
        "DISTS_pytorch/weights.pt)")


def _dists_alpha_beta(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from srbench.weightfiles import CheckpointError, read_weights

    try:
        state = read_weights(path)
    except CheckpointError as exc:
        raise BadInputError(f"DISTS weights: {exc}") from None
    shape = (1, sum(DISTS_CHANNELS), 1, 1)
    tensors = {k: state.get(k) for k in ("alpha", "beta")} if isinstance(state, dict) else {}
    found = {k: getattr(v, "shape", None) for k, v in tensors.items()}
    alpha, beta = tensors.get("alpha"), tensors.get("beta")
    if not (isinstance(alpha, torch.Tensor) and isinstance(beta, torch.Tensor)
            and alpha.shape == beta.shape == shape):
        raise BadInputError(f"{path}: not DISTS's learned weights (alpha and beta of shape {shape} expected, "
                            f"found {found or type(state).__name__})")
    return alpha.float(), beta.float()


class L2Pool(nn.Module):
    """DISTS's L2 pooling: sqrt(conv(x^2, g) + 1e-12), ``g`` the normalised outer product of the 3-point Hann
    window (the 5-point one without its zero ends), stride 2, padding 1, per channel."""

    kernel: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        hann = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
        g = hann[:, None] * hann[None, :]
        self.register_buffer("kernel", (g / g.sum()).float().expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.kernel, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


def vgg16_file(weights: str | os.PathLike, weights_dir: str | os.PathLike | None = None) -> Path:
    """The VGG16 file ``weights`` names for DISTS (``"imagenet"``: torchvision's, from the weights folders)."""
    from srbench import paths

    if weights == "imagenet":
        return paths.require_weight(VGG16_FILENAME, "DISTS (VGG16 backbone, ImageNet)", VGG16_ORIGIN,
                                    [paths.torch_hub_dir() / "checkpoints"], weights_dir)
    return _weights_file(weights, "VGG16")


def _vgg16_features(weights: str | os.PathLike | None, weights_dir: str | os.PathLike | None) -> nn.Sequential:
    from torchvision.models import vgg16

    from srbench.archs import vgg_features_state

    if weights is None:
        log.warning("DISTSLoss: random VGG16 (weights=None); the perceptual loss is not DISTS's")
        return vgg16(weights=None).features
    path = vgg16_file(weights, weights_dir)
    with torch.device("meta"):  # the expected shapes, without initialising 138M weights for a refusal
        expected = vgg16(weights=None).features.state_dict()
    state = vgg_features_state(path, expected, "VGG16")
    features = vgg16(weights=None).features
    features.load_state_dict(state)
    return features


class DISTSLoss(nn.Module):
    """DISTS (module docstring) between SR and HR in [0, 1], batch mean; HR without gradient. ``weights`` for the
    VGG16 backbone: ``"imagenet"`` (torchvision's file, from the weights folder), a path to its state dict, or
    ``None`` for random initialisation (tests and smoke runs only). The learned alpha/beta come from
    :func:`dists_weights_path`, or ``alpha_beta`` (tests)."""

    mean: torch.Tensor
    std: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor

    def __init__(self, weights: str | os.PathLike | None = "imagenet", weights_dir: str | os.PathLike | None = None,
                 alpha_beta: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        from srbench.archs import IMAGENET_MEAN, IMAGENET_STD

        alpha, beta = alpha_beta if alpha_beta is not None else _dists_alpha_beta(dists_weights_path(weights_dir))
        features = _vgg16_features(weights, weights_dir)
        stages: list[nn.Module] = []
        for first, end in _DISTS_STAGES:
            layers = list(features[first:end])
            if first:  # the stage's max pool -> L2 pooling over the previous stage's channels
                layers[0] = L2Pool(DISTS_CHANNELS[len(stages)])
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        for m in self.stages.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False  # each stage's output is kept while the next one runs
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        total = alpha.sum() + beta.sum()
        self.register_buffer("alpha", (alpha / total).reshape(-1))
        self.register_buffer("beta", (beta / total).reshape(-1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> DISTSLoss:
        return super().train(False)  # frozen: always in eval mode

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]
        h = (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        fx = self.features(sr)
        with torch.no_grad():
            fy = self.features(hr)
        texture, structure = [], []
        c1 = c2 = 1e-6
        for x, y in zip(fx, fy, strict=True):
            mx, my = x.mean((2, 3)), y.mean((2, 3))
            vx = ((x - mx[..., None, None]) ** 2).mean((2, 3))
            vy = ((y - my[..., None, None]) ** 2).mean((2, 3))
            cov = (x * y).mean((2, 3)) - mx * my
            texture.append((2 * mx * my + c1) / (mx**2 + my**2 + c1))
            structure.append((2 * cov + c2) / (vx + vy + c2))
        similarity = torch.cat(texture, 1) @ self.alpha + torch.cat(structure, 1) @ self.beta
        return (1 - similarity).mean()
