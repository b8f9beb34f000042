"""Training losses of the ESRGAN ablation and of the related work it is compared with.

Adversarial losses are named by what they are and work on discriminator logits:

- ``standard``: the vanilla GAN with BCE on logits. D: BCE(C(x_r), 1) + BCE(C(x_f), 0); G: BCE(C(x_f), 1).
- ``ragan``: relativistic average GAN (ESRGAN, conventions section 5). D: BCE(C(x_r) - E C(x_f), 1) +
  BCE(C(x_f) - E C(x_r), 0); G: BCE(C(x_r) - E C(x_f), 0) + BCE(C(x_f) - E C(x_r), 1), so the generator also
  gets gradients through the real logits. (BasicSR halves both sums; srbench follows the paper's sum.)
- ``wgan-gp``: Wasserstein critic with gradient penalty. D: E C(x_f) - E C(x_r) + lambda GP; G: -E C(x_f).
- ``ragp``: ``ragan`` plus the same gradient penalty on the discriminator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from srbench.errors import BadInputError

ADVERSARIAL_KINDS = ("standard", "ragan", "wgan-gp", "ragp")
GP_WEIGHT = 10.0


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    if kind == "l1":
        return F.l1_loss(sr, hr)
    if kind == "l2":
        return F.mse_loss(sr, hr)
    raise BadInputError(f"unknown pixel loss {kind!r}: use l1 or l2")


class PerceptualLoss(nn.Module):
    """Weighted L1 distance between VGG19 features of SR and HR (HR features carry no gradient)."""

    def __init__(self, layer_weights: Mapping[str, float], weights: str | os.PathLike | None = "imagenet",
                 weights_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        from srbench.archs import VGGFeatures

        if not layer_weights:
            raise BadInputError("PerceptualLoss needs at least one VGG layer")
        self.layer_weights = dict(layer_weights)
        self.vgg = VGGFeatures(tuple(self.layer_weights), weights=weights, weights_dir=weights_dir)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        sr_feats = self.vgg(sr)
        with torch.no_grad():
            hr_feats = self.vgg(hr)
        # layer_weights is never empty (checked in __init__), so sum() never returns its start value 0.
        return cast(torch.Tensor, sum(w * F.l1_loss(sr_feats[name], hr_feats[name])
                                      for name, w in self.layer_weights.items()))


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's adversarial loss from its logits on real and generated images (no penalty)."""
    if kind == "standard":
        return _bce(real, 1.0) + _bce(fake, 0.0)
    if kind in ("ragan", "ragp"):
        return _bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0)
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    raise BadInputError(f"unknown adversarial loss {kind!r}; known: {', '.join(ADVERSARIAL_KINDS)}")


def generator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss; ``real`` is ignored by ``standard`` and ``wgan-gp``."""
    if kind == "standard":
        return _bce(fake, 1.0)
    if kind in ("ragan", "ragp"):
        return _bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0)
    if kind == "wgan-gp":
        return -fake.mean()
    raise BadInputError(f"unknown adversarial loss {kind!r}; known: {', '.join(ADVERSARIAL_KINDS)}")


def uses_gradient_penalty(kind: str) -> bool:
    return kind in ("wgan-gp", "ragp")


def gradient_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] at random interpolates x_hat between real and generated images."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = discriminator(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def fft_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean magnitude of the difference of the orthonormal 2-D real spectra of SR and HR."""
    diff = torch.fft.rfft2(sr.float(), norm="ortho") - torch.fft.rfft2(hr.float(), norm="ortho")
    return diff.abs().mean()


class LPIPSLoss(nn.Module):
    """LPIPS (v0.1, AlexNet) as a training loss; needs the AlexNet backbone file like the metric."""

    def __init__(self, weights_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        from srbench.metrics.lpips_alex import _model, alexnet_path

        self.net = _model(str(alexnet_path(weights_dir)))
        self.net.requires_grad_(False)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.net(sr * 2 - 1, hr * 2 - 1).mean()
