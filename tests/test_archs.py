"""Network structure: parameter counts from first principles, the BN switch, VGG features, discriminator."""

from __future__ import annotations

import pytest
import torch

from srbench.archs import (
    GENERATORS,
    RRDBNet,
    SRResNet,
    VGGFeatures,
    VGGStyleDiscriminator,
    count_parameters,
    get_generator,
)
from srbench.errors import BadInputError, WeightsUnavailableError


def _conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def _rrdbnet_params(num_feat, num_block, grow, cin=3, cout=3):
    rdb = sum(_conv(num_feat + i * grow, grow, 3) for i in range(4)) + _conv(num_feat + 4 * grow, num_feat, 3)
    return (_conv(cin, num_feat, 3) + num_block * 3 * rdb + 4 * _conv(num_feat, num_feat, 3)
            + _conv(num_feat, cout, 3))


def _srresnet_params(num_feat, num_block, bn, stages=2):
    bn_params = 2 * num_feat if bn else 0
    block = 2 * (_conv(num_feat, num_feat, 3, bias=not bn) + bn_params)
    up = stages * (_conv(num_feat, 4 * num_feat, 3) + num_feat)
    return (_conv(3, num_feat, 9) + num_feat + num_block * block + _conv(num_feat, num_feat, 3, bias=not bn)
            + bn_params + up + _conv(num_feat, 3, 9))


def test_rrdbnet_has_the_papers_parameter_count():
    assert count_parameters(RRDBNet()) == 16_697_987
    assert _rrdbnet_params(64, 23, 32) == 16_697_987


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_variant_parameter_count(name):
    v = get_generator(name)
    c = v.config
    if v.arch == "rrdbnet":
        expected = _rrdbnet_params(c["num_feat"], c["num_block"], c["num_grow_ch"])
    else:
        expected = _srresnet_params(c["num_feat"], c["num_block"], c["norm"] == "batch")
    assert count_parameters(v.build()) == expected


def test_batchnorm_switch_changes_only_norm_layers_and_conv_biases():
    with_bn = set(SRResNet(norm="batch").state_dict())
    without = set(SRResNet(norm=None).state_dict())
    only_bn = with_bn - without
    only_plain = without - with_bn
    assert only_bn and all(".bn" in k or k.startswith("bn_body.") for k in only_bn)
    assert only_plain and all(k.endswith(".bias") and ("conv" in k) for k in only_plain)
    assert len(only_plain) == 2 * 16 + 1  # conv1, conv2 of each block and conv_body regain their bias
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in SRResNet(norm=None).modules())


def test_generators_upscale_by_their_scale():
    x = torch.rand(1, 3, 12, 20)
    assert get_generator("rrdb23-smoke").build()(x).shape == (1, 3, 48, 80)
    assert get_generator("srresnet16-smoke").build()(x).shape == (1, 3, 48, 80)
    assert RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4)(x).shape == (1, 3, 24, 40)
    with pytest.raises(BadInputError, match="scale"):
        RRDBNet(scale=3)


def test_discriminator_shapes_and_patch_size_error():
    d = VGGStyleDiscriminator(num_feat=8, input_size=128)
    assert d(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    with pytest.raises(BadInputError, match="takes 128x128 patches, got 96x96"):
        d(torch.rand(1, 3, 96, 96))
    assert VGGStyleDiscriminator(num_feat=8, input_size=192)(torch.rand(1, 3, 192, 192)).shape == (1, 1)


def test_vgg_features_before_and_after_activation(tmp_path):
    torch.manual_seed(0)
    feats = VGGFeatures(("conv5_4", "relu5_4", "relu2_2"), weights=None)
    assert feats.weights_source == "random"
    assert not any(p.requires_grad for p in feats.parameters())
    out = feats(torch.rand(1, 3, 48, 48))
    assert torch.equal(out["relu5_4"], torch.relu(out["conv5_4"]))
    assert (out["conv5_4"] < 0).any()
    assert out["relu2_2"].shape == (1, 128, 24, 24)
    feats.train()
    assert not feats.training


def test_vgg_features_weights_from_a_local_file_and_missing_imagenet(tmp_path):
    from torchvision.models import vgg19

    torch.manual_seed(1)
    net = vgg19(weights=None)
    torch.save(net.state_dict(), tmp_path / "vgg.pth")
    feats = VGGFeatures(("conv1_1",), weights=tmp_path / "vgg.pth")
    assert torch.equal(feats.features[0].weight, net.features[0].weight)
    x = torch.rand(1, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(feats(x)["conv1_1"], net.features[0]((x - mean) / std))
    with pytest.raises(WeightsUnavailableError, match=r"vgg19-dcbb9e9d\.pth"):
        VGGFeatures(weights="imagenet")
    with pytest.raises(BadInputError, match="unknown VGG19 layer"):
        VGGFeatures(("conv6_1",), weights=None)


class _ToyUnshuffleNet(torch.nn.Module):
    """An architecture srbench does not ship, with an input multiple of 2 (it pixel-unshuffles first)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 8, scale: int = 2) -> None:
        super().__init__()
        self.toy_in = torch.nn.Conv2d(num_in_ch * 4, num_feat, 3, 1, 1)
        self.toy_out = torch.nn.Conv2d(num_feat, num_out_ch * (2 * scale) ** 2, 3, 1, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.toy_out(torch.relu(self.toy_in(torch.nn.functional.pixel_unshuffle(x, 2))))
        return torch.nn.functional.pixel_shuffle(y, 2 * self.scale)


def test_an_architecture_is_one_registry_entry_for_checkpoints_and_inference(tmp_path, monkeypatch):
    import numpy as np

    from srbench.archs import ARCHS, Arch, input_multiple
    from srbench.checkpoints import load_generator
    from srbench.infer import Runner

    def config_of(state):
        return {"num_in_ch": state["toy_in.weight"].shape[1] // 4, "num_feat": state["toy_in.weight"].shape[0],
                "num_out_ch": 3, "scale": int((state["toy_out.weight"].shape[0] // 3) ** 0.5) // 2}

    monkeypatch.setitem(ARCHS, "toy", Arch("toy", _ToyUnshuffleNet, (2, 4), lambda s: "toy_in.weight" in s,
                                           config_of, input_multiple=lambda module: 2))
    torch.manual_seed(0)
    net = _ToyUnshuffleNet(num_feat=5, scale=4).eval()
    torch.save(net.state_dict(), tmp_path / "toy.pth")
    loaded = load_generator(tmp_path / "toy.pth")  # detected and configured from its tensors alone
    assert loaded.srbench_info["arch"] == "toy"
    assert loaded.srbench_info["config"] == {"num_in_ch": 3, "num_feat": 5, "num_out_ch": 3, "scale": 4}
    assert input_multiple(loaded) == 2
    runner = Runner.create(loaded, device="cpu")
    odd = np.random.default_rng(0).integers(0, 256, (7, 9, 3)).astype(np.uint8)  # padded to 8 x 10 inside
    assert runner.upscale(odd).shape == (28, 36, 3)
