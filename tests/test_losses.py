"""Each loss on hand-computable inputs, and the direction of its gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from srbench import losses as L
from srbench.errors import BadInputError


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_pixel_losses_values_and_gradient_direction():
    sr = torch.zeros(1, 3, 4, 4, requires_grad=True)
    hr = torch.full((1, 3, 4, 4), 0.5)
    assert L.pixel_loss(sr, hr, "l1").item() == pytest.approx(0.5)
    assert L.pixel_loss(sr, hr, "l2").item() == pytest.approx(0.25)
    (grad,) = torch.autograd.grad(L.pixel_loss(sr, hr, "l1"), sr)
    assert (grad < 0).all()  # descending moves sr up towards hr
    with pytest.raises(BadInputError):
        L.pixel_loss(sr, hr, "l3")


def test_standard_gan_values():
    real = torch.tensor([[2.0], [0.0]])
    fake = torch.tensor([[1.0], [-1.0]])
    expected_d = (softplus(-2) + softplus(0)) / 2 + (softplus(1) + softplus(-1)) / 2
    assert L.discriminator_loss("standard", real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    expected_g = (softplus(-1) + softplus(1)) / 2
    assert L.generator_loss("standard", real, fake).item() == pytest.approx(expected_g, rel=1e-6)


def test_ragan_values_follow_the_relativistic_average():
    real = torch.tensor([[2.0], [0.0]])  # mean 1
    fake = torch.tensor([[1.0], [-1.0]])  # mean 0
    # real - mean(fake) = [2, 0]; fake - mean(real) = [0, -2]
    d = (softplus(-2) + softplus(0)) / 2 + (softplus(0) + softplus(-2)) / 2
    g = (softplus(2) + softplus(0)) / 2 + (softplus(0) + softplus(2)) / 2
    assert L.discriminator_loss("ragan", real, fake).item() == pytest.approx(d, rel=1e-6)
    assert L.generator_loss("ragan", real, fake).item() == pytest.approx(g, rel=1e-6)


def test_ragan_generator_loss_depends_on_real_logits_standard_does_not():
    fake = torch.tensor([[0.3], [-0.2]], requires_grad=True)
    real = torch.tensor([[1.0], [0.5]], requires_grad=True)
    (g_real,) = torch.autograd.grad(L.generator_loss("ragan", real, fake), real)
    assert g_real.abs().sum() > 0
    std = L.generator_loss("standard", real, fake)
    assert not std.requires_grad or torch.autograd.grad(std, real, allow_unused=True)[0] is None
    moved = real.detach() + 3.0
    assert L.generator_loss("standard", moved, fake).item() == std.item()
    assert L.generator_loss("ragan", moved, fake).item() != pytest.approx(L.generator_loss("ragan", real, fake).item())


@pytest.mark.parametrize("kind", ["standard", "ragan", "wgan-gp", "ragp"])
def test_adversarial_gradient_directions(kind):
    real = torch.tensor([[0.5], [1.5]], requires_grad=True)
    fake = torch.tensor([[-0.5], [0.2]], requires_grad=True)
    g_fake = torch.autograd.grad(L.generator_loss(kind, real.detach(), fake), fake)[0]
    assert (g_fake < 0).all()  # the generator wants its logits higher
    d_real, d_fake = torch.autograd.grad(L.discriminator_loss(kind, real, fake), (real, fake))
    assert (d_real < 0).all() and (d_fake > 0).all()  # the discriminator pushes real up, fake down


def test_wgan_values_and_gradient_penalty_of_a_linear_critic():
    real = torch.tensor([[2.0], [4.0]])
    fake = torch.tensor([[1.0], [-1.0]])
    assert L.discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(0.0 - 3.0)
    assert L.generator_loss("wgan-gp", real, fake).item() == pytest.approx(-0.0)
    w = torch.zeros(1, 1, 2, 2)
    w.view(-1)[:2] = torch.tensor([2.0, math.sqrt(5.0)])  # ||w|| = 3

    def critic(x):
        return (x * w).flatten(1).sum(1, keepdim=True)

    x_r, x_f = torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
    assert L.gradient_penalty(critic, x_r, x_f).item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-6)
    assert L.uses_gradient_penalty("ragp") and not L.uses_gradient_penalty("ragan")


def test_unknown_adversarial_kind():
    with pytest.raises(BadInputError, match="unknown adversarial loss 'lsgan'"):
        L.generator_loss("lsgan", torch.zeros(1), torch.zeros(1))


def test_fft_loss_of_constant_images():
    h, w = 4, 6
    sr = torch.full((1, 1, h, w), 0.8, requires_grad=True)
    hr = torch.full((1, 1, h, w), 0.2)
    bins = h * (w // 2 + 1)
    expected = 0.6 * math.sqrt(h * w) / bins  # only the DC bin differs: (a - b) sqrt(HW), orthonormal
    loss = L.fft_loss(sr, hr)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    (grad,) = torch.autograd.grad(loss, sr)
    assert (grad > 0).all()
    assert L.fft_loss(hr, hr).item() == 0.0


def test_perceptual_loss_equals_l1_of_the_named_vgg_layer():
    torch.manual_seed(0)
    loss = L.PerceptualLoss({"conv2_2": 1.0}, weights=None)
    sr = torch.rand(2, 3, 24, 24, requires_grad=True)
    hr = torch.rand(2, 3, 24, 24)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    net = loss.vgg.features[:8]  # up to conv2_2, before its ReLU
    expected = F.l1_loss(net((sr - mean) / std), net((hr - mean) / std))
    value = loss(sr, hr)
    torch.testing.assert_close(value, expected)
    assert loss(hr, hr).item() == 0.0
    (grad,) = torch.autograd.grad(value, sr)
    assert grad.abs().sum() > 0
    after = L.PerceptualLoss({"relu2_2": 1.0}, weights=None)
    after.vgg.load_state_dict(loss.vgg.state_dict())
    assert after(sr, hr).item() != pytest.approx(value.item())


def test_lpips_loss_with_a_local_backbone(tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    loss = L.LPIPSLoss()
    x = torch.rand(1, 3, 32, 32)
    y = torch.rand(1, 3, 32, 32, requires_grad=True)
    assert loss(x, x).item() == 0.0
    value = loss(y, x)
    assert value.item() > 0
    assert torch.autograd.grad(value, y)[0].abs().sum() > 0
