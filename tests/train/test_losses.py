"""Each loss on hand-computable inputs, and the direction of its gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from srbench.errors import BadInputError
from srbench.train import losses as L


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


# Least squares and hinge losses aim at a margin of 1, so they push some of these logits back: the toy problem
# below checks every kind where all of them agree.
@pytest.mark.parametrize("kind", ["standard", "ragan", "rcgan", "wgan-gp", "ragp"])
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
    with pytest.raises(BadInputError, match="unknown adversarial loss 'lsgan'; known: standard, ragan, rahinge, rals, "
                                            "rcgan, rchinge, rcls, ragp, wgan-gp"):
        L.generator_loss("lsgan", torch.zeros(1), torch.zeros(1))
    with pytest.raises(BadInputError, match="unknown adversarial loss 'rsgan'"):
        L.discriminator_loss("rsgan", torch.zeros(1), torch.zeros(1))


def test_fft_l1_loss_of_constant_images():
    h, w = 4, 6
    sr = torch.full((1, 1, h, w), 0.8, requires_grad=True)
    hr = torch.full((1, 1, h, w), 0.2)
    bins = h * (w // 2 + 1)
    expected = 0.6 * math.sqrt(h * w) / bins  # only the DC bin differs: (a - b) sqrt(HW), orthonormal
    loss = L.fft_l1_loss(sr, hr)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert L.frequency_loss("fft-l1", sr, hr).item() == loss.item()
    (grad,) = torch.autograd.grad(loss, sr)
    assert (grad > 0).all()
    assert L.fft_l1_loss(hr, hr).item() == 0.0


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


# -- the relativistic losses of the loss study, worked by hand ---------------------------------------------------
# Critic outputs of two real and two fake images: real = [2, 0] (mean 1), fake = [0.5, -0.5] (mean 0).
# Average (Ra): R(x_r) = real - mean(fake) = [2, 0];        R(x_f) = fake - mean(real) = [-0.5, -1.5].
# Centered (Rc): m = (1 + 0) / 2 = 0.5; R(x_r) = [1.5, -0.5]; R(x_f) = [0, -1].
REAL = torch.tensor([[2.0], [0.0]])
FAKE = torch.tensor([[0.5], [-0.5]])


def sp(x: float) -> float:
    return softplus(x)


HAND = {
    # D: mean relu(1 - R_r) + mean relu(1 + R_f) = mean[0, 1] + mean[0.5, 0] = 0.5 + 0.25
    # G: mean relu(1 + R_r) + mean relu(1 - R_f) = mean[3, 1] + mean[1.5, 2.5] = 2 + 2
    "rahinge": (0.75, 4.0),
    # D: mean (R_r - 1)^2 + mean (R_f + 1)^2 = mean[1, 1] + mean[0.25, 0.25] = 1 + 0.25
    # G: mean (R_r + 1)^2 + mean (R_f - 1)^2 = mean[9, 1] + mean[2.25, 6.25] = 5 + 4.25
    "rals": (1.25, 9.25),
    # D: mean softplus(-R_r) + mean softplus(R_f); G: mean softplus(R_r) + mean softplus(-R_f)
    "rcgan": ((sp(-1.5) + sp(0.5)) / 2 + (sp(0.0) + sp(-1.0)) / 2,
              (sp(1.5) + sp(-0.5)) / 2 + (sp(0.0) + sp(1.0)) / 2),
    # D: mean relu(1 - [1.5, -0.5]) + mean relu(1 + [0, -1]) = mean[0, 1.5] + mean[1, 0] = 0.75 + 0.5
    # G: mean relu(1 + [1.5, -0.5]) + mean relu(1 - [0, -1]) = mean[2.5, 0.5] + mean[1, 2] = 1.5 + 1.5
    "rchinge": (1.25, 3.0),
    # D: mean([0.5, -1.5]^2) + mean([1, 0]^2) = 1.25 + 0.5; G: mean([2.5, 0.5]^2) + mean([-1, -2]^2) = 3.25 + 2.5
    "rcls": (1.75, 5.75),
    # ragan/ragp on the same outputs: D: mean softplus(-[2, 0]) + mean softplus([-0.5, -1.5])
    "ragan": ((sp(-2.0) + sp(0.0)) / 2 + (sp(-0.5) + sp(-1.5)) / 2, (sp(2.0) + sp(0.0)) / 2 + (sp(0.5) + sp(1.5)) / 2),
    "ragp": ((sp(-2.0) + sp(0.0)) / 2 + (sp(-0.5) + sp(-1.5)) / 2, (sp(2.0) + sp(0.0)) / 2 + (sp(0.5) + sp(1.5)) / 2),
}


@pytest.mark.parametrize("kind", list(HAND))
def test_relativistic_losses_equal_their_hand_worked_values(kind):
    d, g = HAND[kind]
    assert L.discriminator_loss(kind, REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert L.generator_loss(kind, REAL, FAKE).item() == pytest.approx(g, rel=1e-6)


def test_centered_reference_is_the_mean_over_real_and_fake_critics():
    # With a batch mean of 0 for both, average and centered references coincide: R = C.
    real, fake = torch.tensor([[1.0], [-1.0]]), torch.tensor([[0.5], [-0.5]])
    for ra, rc in (("ragan", "rcgan"), ("rahinge", "rchinge"), ("rals", "rcls")):
        assert L.discriminator_loss(ra, real, fake).item() == pytest.approx(L.discriminator_loss(rc, real, fake).item())
        assert L.discriminator_loss(ra, REAL, FAKE).item() != pytest.approx(L.discriminator_loss(rc, REAL, FAKE).item())
    # Shifting every critic output by a constant changes no relativistic loss (only differences enter).
    for kind in HAND:
        assert L.discriminator_loss(kind, REAL + 7, FAKE + 7).item() == pytest.approx(HAND[kind][0], rel=1e-6)


@pytest.mark.parametrize("kind", L.ADVERSARIAL_KINDS)
def test_adversarial_losses_on_a_separable_toy_problem(kind):
    """A 1-D linear critic C(x) = w x + b, real samples near +1 and fakes near -1: one gradient step of the
    discriminator on w widens the gap between real and fake critics; one of the generator moves every fake
    towards the reals."""
    x_real = torch.tensor([[0.9], [1.1]])
    x_fake = torch.tensor([[-1.2], [-0.8]], requires_grad=True)
    w = torch.tensor(0.2, requires_grad=True)
    b = torch.tensor(0.1)

    def gap(weight: torch.Tensor) -> float:
        return float((weight * x_real + b).mean() - (weight * x_fake.detach() + b).mean())

    l_d = L.discriminator_loss(kind, w * x_real + b, w * x_fake.detach() + b)
    (grad_w,) = torch.autograd.grad(l_d, w)
    assert grad_w.item() < 0  # descending raises w: reals (x > 0) up, fakes (x < 0) down
    assert gap(w.detach() - 0.1 * grad_w) > gap(w.detach())
    l_g = L.generator_loss(kind, (w * x_real + b).detach(), w.detach() * x_fake + b)
    (grad_x,) = torch.autograd.grad(l_g, x_fake)
    assert (grad_x < 0).all()  # descending moves each fake up, towards the reals at +1
    moved = x_fake.detach() - 0.1 * grad_x
    assert ((moved - 1).abs() < (x_fake.detach() - 1).abs()).all()


# -- frequency losses ------------------------------------------------------------------------------------------
def test_normalised_fft_loss_hand_values():
    y = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    # ||F(2y) - F(y)|| / max(||F(2y)||, ||F(y)||) = ||F(y)|| / (2 ||F(y)||)
    assert L.normalised_fft_loss(2 * y, y).item() == pytest.approx(0.5, rel=1e-6)
    assert L.normalised_fft_loss(-y, y).item() == pytest.approx(2.0, rel=1e-6)  # the bound, reached
    assert L.normalised_fft_loss(torch.zeros_like(y), y).item() == pytest.approx(1.0, rel=1e-6)
    # Two unit impulses: orthonormal DFT keeps norms (1 each) and their difference has norm sqrt(2).
    a = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    b = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    assert L.normalised_fft_loss(a, b).item() == pytest.approx(math.sqrt(2), rel=1e-6)
    # Per image, then the batch mean: (0.5 + 2) / 2.
    assert L.normalised_fft_loss(torch.cat([2 * y, -y]), torch.cat([y, y])).item() == pytest.approx(1.25, rel=1e-6)
    zero = torch.zeros_like(y)
    assert L.normalised_fft_loss(zero, zero).item() == 0.0
    assert L.frequency_loss("fft", 2 * y, y).item() == pytest.approx(0.5, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(arrays=st.lists(st.floats(-4, 4, allow_nan=False, width=32), min_size=32, max_size=32),
       scale=st.floats(1e-3, 1e3))
def test_normalised_fft_loss_properties(arrays, scale):
    x = torch.tensor(arrays[:16], dtype=torch.float64).view(1, 1, 4, 4)
    y = torch.tensor(arrays[16:], dtype=torch.float64).view(1, 1, 4, 4)
    value = L.normalised_fft_loss(x, y).item()
    assert 0.0 <= value <= 2.0 + 1e-6  # triangle inequality: ||a - b|| <= ||a|| + ||b|| <= 2 max
    assert L.normalised_fft_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert L.normalised_fft_loss(scale * x, scale * y).item() == pytest.approx(value, rel=1e-4, abs=1e-6)


def test_normalised_fft_loss_gradient_points_to_the_target():
    y = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x = (y + 0.1 * torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    loss = L.normalised_fft_loss(x, y)
    (grad,) = torch.autograd.grad(loss, x)
    assert L.normalised_fft_loss(x.detach() - 0.05 * grad, y).item() < loss.item()


def test_azimuthal_average_of_a_4x4_plane():
    # Centre (1.5, 1.5): ring 0 is the 4 central pixels (r = 0.71), ring 1 the 8 edge-middle ones (r = 1.58),
    # ring 2 the 4 corners (r = 2.12). Only ring 1 is kept: values 1, 2, 4, 7, 8, 11, 13, 14 -> 60 / 8.
    plane = torch.arange(16.0).view(4, 4)
    torch.testing.assert_close(L.azimuthal_average(plane), torch.tensor([7.5]))
    with pytest.raises(BadInputError, match="spectral loss: a 2x2 image has no ring"):
        L.azimuthal_average(torch.zeros(2, 2))


def _spectral_reference(sr: np.ndarray, hr: np.ndarray) -> float:
    """Durall et al.'s steps, written out with NumPy and loops (srbench's code uses torch's index_add)."""

    def profile(img: np.ndarray) -> np.ndarray:
        grey = 0.2989 * img[0] + 0.5870 * img[1] + 0.1140 * img[2]
        mag = 20 * np.log(np.abs(np.fft.fftshift(np.fft.fft2(grey))) + 1e-8)
        h, w = grey.shape
        rings: dict[int, list[float]] = {}
        for i in range(h):
            for j in range(w):
                rings.setdefault(int(math.hypot(i - (h - 1) / 2, j - (w - 1) / 2)), []).append(mag[i, j])
        prof = np.array([np.mean(rings[k]) for k in range(1, max(rings))])
        return (prof - prof.min()) / (prof.max() - prof.min())

    total = []
    for a, b in zip(sr, hr, strict=True):
        p, t = profile(a), profile(b)
        log_p = np.maximum(np.log(np.maximum(p, 1e-300)), -100)
        log_q = np.maximum(np.log(np.maximum(1 - p, 1e-300)), -100)
        total.append(-(t * log_p + (1 - t) * log_q))
    return float(np.mean(total))


def test_spectral_loss_follows_durall_et_al():
    gen = torch.Generator().manual_seed(3)
    hr = torch.rand(2, 3, 16, 12, generator=gen, dtype=torch.float64)
    sr = (hr + 0.2 * torch.rand(2, 3, 16, 12, generator=gen, dtype=torch.float64)).clamp(0, 1)
    expected = _spectral_reference(sr.numpy(), hr.numpy())
    value = L.spectral_loss(sr, hr)
    assert value.item() == pytest.approx(expected, rel=1e-4)
    assert L.frequency_loss("spectral", sr, hr).item() == value.item()
    # Scaling both images scales |F|: a shift of the dB spectra, which the min-max normalisation removes.
    assert L.spectral_loss(0.5 * sr, 0.5 * hr).item() == pytest.approx(value.item(), rel=1e-4)
    x = sr.clone().float().requires_grad_(True)
    (grad,) = torch.autograd.grad(L.spectral_loss(x, hr.float()), x)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()  # differentiable, unlike the reference code
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert torch.isfinite(L.spectral_loss(flat, flat))  # a flat spectrum normalises to zeros, not 0/0


def test_unknown_frequency_loss():
    with pytest.raises(BadInputError, match="unknown frequency loss 'none'; known: none, fft, fft-l1, spectral"):
        L.frequency_loss("none", torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))


# -- perceptual backbones --------------------------------------------------------------------------------------
def test_perceptual_loss_l2_criterion_is_the_mean_squared_feature_difference():
    torch.manual_seed(0)
    loss = L.PerceptualLoss({"conv2_2": 1.0}, weights=None, criterion="l2")
    sr, hr = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    net = loss.vgg.features[:8]
    expected = ((net((sr - mean) / std) - net((hr - mean) / std)) ** 2).mean()
    torch.testing.assert_close(loss(sr, hr), expected)
    with pytest.raises(BadInputError, match="unknown perceptual criterion 'fro'"):
        L.PerceptualLoss({"conv2_2": 1.0}, weights=None, criterion="fro")


def test_lpips_loss_with_a_random_backbone():
    torch.manual_seed(0)
    loss = L.LPIPSLoss(weights=None)
    x = torch.rand(1, 3, 32, 32)
    y = torch.rand(1, 3, 32, 32, requires_grad=True)
    assert loss(x, x).item() == 0.0
    value = loss(y, x)
    assert value.item() > 0 and torch.autograd.grad(value, y)[0].abs().sum() > 0


@pytest.fixture(scope="module")
def random_vgg16(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.vgg16(weights=None)
    path = tmp_path_factory.mktemp("vgg16") / "vgg16-397923af.pth"
    torch.save({k: v for k, v in net.state_dict().items() if k.startswith("features.")}, path)
    return net, path


def test_dists_equals_the_authors_implementation(random_vgg16, monkeypatch):
    """The same VGG16 and learned weights in DISTS_pytorch's own DISTS (the MIT-licensed release) and in
    srbench's: the same distances."""
    dists_pt = pytest.importorskip("DISTS_pytorch.DISTS_pt")
    net, path = random_vgg16
    monkeypatch.setattr(dists_pt.models, "vgg16", lambda *a, **k: net)
    weights = L.dists_weights_path()
    monkeypatch.setattr(dists_pt.os.path, "join", lambda *parts: str(weights))  # where the package put it
    ref = dists_pt.DISTS()
    mine = L.DISTSLoss(weights=path)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 40, 36, generator=gen), torch.rand(2, 3, 40, 36, generator=gen)
    assert mine(x, y).item() == pytest.approx(ref(x, y, batch_average=True).item(), rel=1e-5)
    assert mine(y, y).item() == pytest.approx(0.0, abs=1e-6)
    alpha, beta = L._dists_alpha_beta(weights)
    assert alpha.shape == beta.shape == (1, 1475, 1, 1)


def test_dists_mechanics_with_random_networks():
    torch.manual_seed(0)
    n = sum(L.DISTS_CHANNELS)
    loss = L.DISTSLoss(weights=None, alpha_beta=(torch.full((1, n, 1, 1), 0.1), torch.full((1, n, 1, 1), 0.1)))
    assert loss.alpha.sum().item() + loss.beta.sum().item() == pytest.approx(1.0)
    x = torch.rand(1, 3, 32, 32)
    y = torch.rand(1, 3, 32, 32, requires_grad=True)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    value = loss(y, x)
    assert 0 < value.item() <= 2 and torch.autograd.grad(value, y)[0].abs().sum() > 0
    loss.train()
    assert not loss.training  # frozen in eval mode inside a training stage


def test_l2_pooling_kernel_is_the_normalised_hann_window():
    pool = L.L2Pool(1)
    # outer([0.5, 1, 0.5]) / 4
    torch.testing.assert_close(pool.kernel[0, 0], torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0)
    ones = torch.ones(1, 1, 4, 4)
    # Inside the image the window sums to 1: sqrt(1 * 1 + 1e-12) = 1 at every interior output.
    assert pool(ones)[0, 0, 1, 1].item() == pytest.approx(1.0)


def test_missing_dists_files_name_what_is_missing(tmp_path, monkeypatch):
    from srbench.errors import WeightsUnavailableError

    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(L.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsUnavailableError, match=r"DISTS \(learned alpha/beta\) needs weights\.pt.*dists-pytorch"):
        L.DISTSLoss(weights=None)
    n = sum(L.DISTS_CHANNELS)
    ab = (torch.ones(1, n, 1, 1), torch.ones(1, n, 1, 1))
    with pytest.raises(WeightsUnavailableError, match=r"VGG16 backbone.*needs vgg16-397923af\.pth"):
        L.DISTSLoss(alpha_beta=ab)
    (tmp_path / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match="DISTS weights: "):
        L.DISTSLoss(weights=None)
    torch.save({"alpha": torch.ones(3)}, tmp_path / "weights.pt")
    with pytest.raises(BadInputError, match="not DISTS's learned weights"):
        L.DISTSLoss(weights=None)


def test_docs_list_the_loss_choices_the_code_accepts():
    from pathlib import Path

    usage = (Path(__file__).resolve().parents[2] / "docs" / "usage.md").read_text(encoding="utf-8")
    usage = " ".join(usage.split())
    for choices in (L.ADVERSARIAL_KINDS, L.PERCEPTUAL_BACKBONES):
        assert ", ".join(f"`{k}`" for k in choices) in usage
    assert all(f"`{k}`" in usage for k in L.FREQUENCY_LOSSES)
