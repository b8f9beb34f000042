"""Networks of the ESRGAN ablation: RRDBNet, SRResNet (with a BatchNorm switch), the VGG-style
discriminator and VGG19 feature extraction, plus the registry of named variants.

Every generator takes and returns N x C x H x W tensors in [0, 1] (no clamping inside) and has uniform
argument names: ``num_in_ch``, ``num_out_ch``, ``num_feat``, ``num_block``, ``scale``.
State-dict key names follow BasicSR (``conv_first``, ``body.N.rdb1.conv1``, ``conv_body``, ``conv_up1``,
...), the most common layout of published weights; ``srbench.checkpoints`` converts the others.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from srbench import paths
from srbench.errors import BadInputError

log = logging.getLogger(__name__)


@torch.no_grad()
def _scaled_kaiming_(modules: Sequence[nn.Module], scale: float) -> None:
    """Kaiming-normal init scaled down (ESRGAN: 0.1) so that deep residual stacks start near identity."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.zeros_(m.bias)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs with dense connections; LeakyReLU after the first four; output scaled by 0.2."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32, norm: str | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        # Only for the full-factorial ablation grid (ESRGAN itself has no BN): BN after convs 1-4.
        self.norms = nn.ModuleList([nn.BatchNorm2d(num_grow_ch) for _ in range(4)]) if norm == "batch" else None
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        _scaled_kaiming_([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def _act(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.lrelu(self.norms[i](x) if self.norms is not None else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self._act(0, self.conv1(x))
        x2 = self._act(1, self.conv2(torch.cat((x, x1), 1)))
        x3 = self._act(2, self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self._act(3, self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, residual scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32, norm: str | None = None) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch, norm)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch, norm)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """The ESRGAN generator: 23 RRDBs, no BatchNorm, two nearest-x2 + conv upsampling stages.

    ``scale`` 4 is the paper's network; 2 and 1 pixel-unshuffle the input first (the BasicSR convention
    used by published x2 weights), so the body always runs at 1/4 of the output resolution.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32, norm: str | None = None) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise BadInputError(f"RRDBNet supports scale 1, 2 or 4, not {scale}")
        if norm not in ("batch", "none", None):  # "none": TOML has no null
            raise BadInputError(f"RRDBNet norm must be 'batch' or None, not {norm!r}")
        self.scale = scale
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch, norm) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class SRResBlock(nn.Module):
    """conv-BN-ReLU-conv-BN with an identity skip (BN optional: the ablation's "BN removed")."""

    def __init__(self, num_feat: int, norm: str | None) -> None:
        super().__init__()
        use_bn = norm == "batch"
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=not use_bn)
        self.bn1 = nn.BatchNorm2d(num_feat) if use_bn else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=not use_bn)
        self.bn2 = nn.BatchNorm2d(num_feat) if use_bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class SRResNet(nn.Module):
    """The SRGAN generator (Ledig et al. 2017): 9x9 head with PReLU, residual blocks, a conv(-BN) closing
    the body with a long skip, log2(scale) stages of conv -> PixelShuffle(2) -> PReLU, 9x9 tail.

    ``norm="batch"`` is SRGAN; ``norm=None`` removes every BatchNorm (and gives the convs a bias).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 16, norm: str | None = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "none", None):  # "none": TOML has no null
            raise BadInputError(f"SRResNet norm must be 'batch' or None, not {norm!r}")
        if scale not in (2, 4, 8):
            raise BadInputError(f"SRResNet supports scale 2, 4 or 8, not {scale}")
        self.scale = scale
        use_bn = norm == "batch"
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 9, 1, 4)
        self.act_first = nn.PReLU(num_feat)
        self.body = nn.Sequential(*[SRResBlock(num_feat, norm) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=not use_bn)
        self.bn_body = nn.BatchNorm2d(num_feat) if use_bn else nn.Identity()
        stages = []
        for _ in range(scale.bit_length() - 1):
            stages += [nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(num_feat)]
        self.upsample = nn.Sequential(*stages)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 9, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.act_first(self.conv_first(x))
        feat = feat + self.bn_body(self.conv_body(self.body(feat)))
        return self.conv_last(self.upsample(feat))


class VGGStyleDiscriminator(nn.Module):
    """The SRGAN/ESRGAN discriminator for ``input_size`` x ``input_size`` patches, one logit per patch."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size % 32 or input_size < 32:
            raise BadInputError(f"VGGStyleDiscriminator input_size must be a multiple of 32, not {input_size}")
        self.input_size = input_size
        widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat)
        for i in range(1, 5):
            setattr(self, f"conv{i}_0", nn.Conv2d(widths[i - 1], widths[i], 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(widths[i]))
            setattr(self, f"conv{i}_1", nn.Conv2d(widths[i], widths[i], 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(widths[i]))
        side = input_size // 32
        self.linear1 = nn.Linear(widths[4] * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise BadInputError(
                f"the discriminator takes {self.input_size}x{self.input_size} patches, got "
                f"{x.shape[-2]}x{x.shape[-1]}: set the HR patch size and input_size to the same value"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, 5):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


class VGG8Critic(nn.Module):
    """The WGAN-GP SR project's critic: SRGAN's discriminator body (Ledig et al. 2017, Fig. 4), eight 3x3
    convolutions of ``num_feat`` x (1, 1, 2, 2, 4, 4, 8, 8) channels (64 -> 512), stride 2 in every second one,
    each followed by LeakyReLU(0.2); then a dense layer of 1024 units, LeakyReLU and one output, with no sigmoid:
    an unbounded critic score, as the Wasserstein loss needs.

    No normalisation: the gradient penalty is taken per sample, which batch normalisation would couple across the
    batch (Gulrajani et al. 2017, Sec. 4, leave it out of the critic). The dense layers follow a global average
    pool, so the critic takes any patch size: on the project's 384x384 HR patches SRGAN's
    flattened 24x24x512 input would need a 302M-weight dense layer."""

    STRIDES = (1, 2, 1, 2, 1, 2, 1, 2)
    WIDTHS = (1, 1, 2, 2, 4, 4, 8, 8)

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size % 16 or input_size < 16:
            raise BadInputError(f"VGG8Critic input_size must be a multiple of 16, not {input_size}")
        self.input_size = input_size
        layers: list[nn.Module] = []
        channels = num_in_ch
        for width, stride in zip(self.WIDTHS, self.STRIDES, strict=True):
            layers += [nn.Conv2d(channels, num_feat * width, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True)]
            channels = num_feat * width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, 1024),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise BadInputError(f"the critic takes {self.input_size}x{self.input_size} patches, got "
                                f"{x.shape[-2]}x{x.shape[-1]}: set the HR patch size and input_size to the same value")
        return self.head(self.features(x))


# gan.discriminator -> the network (srbench.train.config.StageConfig): ESRGAN's VGG-style discriminator, or the WGAN-GP
# project's critic.
DISCRIMINATORS: dict[str, type[nn.Module]] = {"vgg": VGGStyleDiscriminator, "vgg8-critic": VGG8Critic}


# VGG19 "features" layer names in torchvision's order.
def _vgg19_layer_names() -> list[str]:
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


VGG19_LAYERS = tuple(_vgg19_layer_names())
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_features_state(path: Path, expected: dict[str, torch.Tensor],
                          name: str = "VGG19") -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a VGG weights file (VGG19; VGG16 for DISTS), refused with one line unless they
    fit exactly."""
    from srbench.weightfiles import CheckpointError, read_weights

    try:
        state = read_weights(path)  # the checkpoint reader's refusals: pickled code, not a checkpoint, truncated
    except CheckpointError as exc:
        raise BadInputError(f"{name} weights: {exc}") from None
    if not isinstance(state, dict):
        raise BadInputError(f"{path}: holds a {type(state).__name__}, not a {name} state dict")
    features = {k.removeprefix("features."): v for k, v in state.items()
                if isinstance(k, str) and k.startswith("features.") and isinstance(v, torch.Tensor)}
    if not features:
        raise BadInputError(f"{path}: no 'features.*' tensors, not a {name} state dict")
    missing = sorted(set(expected) - set(features))
    wrong = sorted(f"{k} {tuple(features[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                   if k in features and features[k].shape != v.shape)
    if missing or wrong:
        problem = f"missing features.{', features.'.join(missing[:4])}" if missing else f"wrong shape: {wrong[0]}"
        raise BadInputError(f"{path}: not a {name} state dict ({problem})")
    if not all(features[k].is_floating_point() for k in expected):
        raise BadInputError(f"{path}: not a {name} state dict (non-floating tensors)")
    return {k: features[k] for k in expected}


class VGGFeatures(nn.Module):
    """Frozen VGG19 features by layer name (``conv5_4`` is before its ReLU, ``relu5_4`` after).

    Input is RGB in [0, 1]; ImageNet normalisation happens inside. ``weights``: ``"imagenet"`` (torchvision's
    VGG19 ImageNet file, looked up locally, never downloaded here), a path to a state dict, or ``None`` for
    random initialisation (tests and smoke runs only; it is logged).
    """

    mean: torch.Tensor  # buffers registered in __init__
    std: torch.Tensor

    def __init__(self, layers: Sequence[str] = ("conv5_4",), weights: str | os.PathLike | None = "imagenet",
                 weights_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torchvision.models import vgg19

        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise BadInputError(f"unknown VGG19 layer(s) {unknown or list(layers)}; known: {', '.join(VGG19_LAYERS)}")
        self.layers = tuple(layers)
        last = max(VGG19_LAYERS.index(name) for name in layers)
        state = None
        if weights is not None:
            path = self.weights_path(weights, weights_dir)
            with torch.device("meta"):  # the expected shapes, without initialising 20M weights for a refusal
                expected = vgg19(weights=None).features.state_dict()
            state = vgg_features_state(path, expected)
        net = vgg19(weights=None)
        if state is None:
            log.warning("VGGFeatures: random initialisation (weights=None); perceptual losses are not ImageNet's")
            self.weights_source = "random"
        else:
            net.features.load_state_dict(state)
            self.weights_source = str(path)
        self.features = net.features[: last + 1]
        # In-place ReLUs would overwrite a conv output that is itself requested (conv5_4 before relu5_4).
        for m in self.features:
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def weights_path(weights: str | os.PathLike, weights_dir: str | os.PathLike | None = None) -> Path:
        """The VGG19 file ``weights`` names (``"imagenet"``: torchvision's, from the weights folders), or an error
        naming what is missing and where it goes."""
        if weights == "imagenet":
            return paths.require_weight(
                VGG19_FILENAME, "VGG19 perceptual features (ImageNet)",
                "torchvision's VGG19_Weights.IMAGENET1K_V1 (online, torchvision.models.vgg19(weights='IMAGENET1K_V1') "
                "caches it in torch.hub's checkpoints folder)",
                [paths.torch_hub_dir() / "checkpoints"], weights_dir,
            )
        from srbench.paths import user_path

        path = user_path(weights, "VGG19 weights")
        if not path.is_file():
            raise BadInputError(f"{path}: VGG19 weights file not found")
        return path

    def train(self, mode: bool = True) -> VGGFeatures:
        # Frozen: always in eval mode, whatever the enclosing model does.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = (x - self.mean) / self.std
        out = {}
        for name, layer in zip(VGG19_LAYERS, self.features, strict=False):  # features is truncated
            h = layer(h)
            if name in self.layers:
                out[name] = h
        return out


def block_indices(state: Mapping[str, torch.Tensor]) -> set[int]:
    return {int(m.group(1)) for k in state if (m := re.match(r"^body\.(\d+)\.", k))}


def _rrdbnet_config(state: Mapping[str, torch.Tensor]) -> dict:
    first = state["conv_first.weight"]
    num_out_ch = state["conv_last.weight"].shape[0]
    # x2 and x1 RRDBNets pixel-unshuffle their input into 4 or 16 times its channels first (12 or 48 for RGB);
    # the output's channels tell which (a gray x2 network's 4 input channels are not a 4-channel x4 network).
    num_in_ch, scale = {num_out_ch * 4: (num_out_ch, 2), num_out_ch * 16: (num_out_ch, 1)}.get(
        first.shape[1], (first.shape[1], 4))
    return {
        "num_in_ch": num_in_ch, "num_out_ch": num_out_ch, "scale": scale,
        "num_feat": first.shape[0], "num_block": len(block_indices(state)),
        "num_grow_ch": state["body.0.rdb1.conv1.weight"].shape[0],
        **({"norm": "batch"} if "body.0.rdb1.norms.0.weight" in state else {}),
    }


def _srresnet_config(state: Mapping[str, torch.Tensor]) -> dict:
    first = state["conv_first.weight"]
    stages = sum(1 for k in state if re.match(r"^upsample\.\d+\.weight$", k) and state[k].ndim == 4)
    return {
        "num_in_ch": first.shape[1], "num_out_ch": state["conv_last.weight"].shape[0], "scale": 2**stages,
        "num_feat": first.shape[0], "num_block": len(block_indices(state)),
        "norm": "batch" if "bn_body.weight" in state else None,
    }


@dataclass(frozen=True)
class Arch:
    """What the rest of srbench needs to know about a generator architecture, in one entry: checkpoints
    dispatch on ``detect``/``infer_config`` (canonical key names), inference pads inputs to ``input_multiple``."""

    name: str
    module: type[nn.Module]
    scales: tuple[int, ...]
    detect: Callable[[Mapping[str, torch.Tensor]], bool]
    infer_config: Callable[[Mapping[str, torch.Tensor]], dict]
    input_multiple: Callable[[nn.Module], int] = lambda module: 1


ARCHS: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("rrdbnet", RRDBNet, (1, 2, 4), lambda state: any(k.startswith("body.0.rdb1.") for k in state),
             _rrdbnet_config, input_multiple=lambda module: cast(RRDBNet, module).unshuffle),
        Arch("srresnet", SRResNet, (2, 4, 8), lambda state: "act_first.weight" in state, _srresnet_config),
    )
}


def input_multiple(module: nn.Module) -> int:
    """The multiple an LR size must be for ``module`` (pixel-unshuffle generators need their factor)."""
    arch = next((a for a in ARCHS.values() if isinstance(module, a.module)), None)
    return int(arch.input_multiple(module)) if arch is not None else 1


@dataclass(frozen=True)
class GeneratorSpec:
    """A named generator configuration."""

    name: str
    arch: str
    config: dict = field(default_factory=dict)
    description: str = ""

    def build(self) -> nn.Module:
        return ARCHS[self.arch].module(**self.config)


# Smoke versions keep each architecture's kind (SRResNet's plain residual blocks with or without BN vs
# RRDB's dense blocks, the deeper and denser of the two) at a width and depth a 2-core CPU trains in minutes.
GENERATORS: dict[str, GeneratorSpec] = {
    v.name: v
    for v in (
        GeneratorSpec("srgan_srresnet16_bn", "srresnet", {"num_block": 16, "num_feat": 64, "norm": "batch"},
                "SRGAN baseline: SRResNet, 16 blocks, BatchNorm"),
        GeneratorSpec("srresnet16", "srresnet", {"num_block": 16, "num_feat": 64, "norm": None},
                "SRResNet, 16 blocks, BatchNorm removed"),
        GeneratorSpec("rrdb23", "rrdbnet", {"num_block": 23, "num_feat": 64, "num_grow_ch": 32},
                "ESRGAN generator: RRDBNet, 23 RRDBs"),
        GeneratorSpec("srgan_srresnet16_bn-smoke", "srresnet", {"num_block": 6, "num_feat": 32, "norm": "batch"},
                "CPU smoke version of srgan_srresnet16_bn (6 blocks, 32 features)"),
        GeneratorSpec("srresnet16-smoke", "srresnet", {"num_block": 6, "num_feat": 32, "norm": None},
                "CPU smoke version of srresnet16 (6 blocks, 32 features)"),
        GeneratorSpec("rrdb23-smoke", "rrdbnet", {"num_block": 3, "num_feat": 32, "num_grow_ch": 16},
                "CPU smoke version of rrdb23 (3 RRDBs, 32 features, growth 16)"),
    )
}


def get_generator(name: str) -> GeneratorSpec:
    try:
        return GENERATORS[name]
    except KeyError:
        raise BadInputError(f"unknown variant {name!r}; known: {', '.join(GENERATORS)}") from None


# What each generator constructor argument accepts: the one table behind training configs
# (``generator_config``), checkpoint sidecars and configurations inferred from tensor shapes. The upper
# bounds are far above any published network; they keep a typo or a hostile sidecar from allocating terabytes.
GENERATOR_INT_ARGS: dict[str, tuple[int, int]] = {
    "num_in_ch": (1, 64), "num_out_ch": (1, 64), "num_feat": (1, 4096), "num_block": (1, 512),
    "num_grow_ch": (1, 4096),
}
GENERATOR_NORMS = ("batch", "none", None)  # "none": TOML has no null


def generator_defaults(arch: str) -> dict:
    """The constructor's keyword arguments of ``arch`` with their default values."""
    if arch not in ARCHS:
        raise BadInputError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    params = inspect.signature(ARCHS[arch].module).parameters
    return {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}


def same_generator(arch: str, a: dict, b: dict) -> bool:
    """Whether two configurations of ``arch`` build one network: each completed by the constructor's defaults, and
    ``norm = "none"`` (TOML has no null) read as None. A sidecar-less file's configuration, inferred from its
    tensors, names every argument; a trained run's names those it set."""
    def complete(config: dict) -> dict:
        out = {**generator_defaults(arch), **config}
        if out.get("norm") == "none":
            out["norm"] = None
        return out

    return complete(a) == complete(b)


def validate_generator_config(arch: str, config: object, where: str = "generator_config") -> dict:
    """``config`` checked key by key against ``arch``'s constructor; one-line BadInputError naming
    ``where.key``, the value and what is allowed."""
    from srbench.text import shown

    known = generator_defaults(arch)
    if not isinstance(config, dict):
        raise BadInputError(f"{where}: expected a table of {arch} arguments, got {shown(config)}")
    for key, value in config.items():
        path = f"{where}.{key}"
        if key not in known:
            raise BadInputError(f"{where}: unknown {arch} argument {shown(key)}; known: {', '.join(known)}")
        if key == "norm":
            if value not in GENERATOR_NORMS:
                raise BadInputError(f"{path}: {shown(value)} is not allowed; allowed: 'batch' or 'none'")
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInputError(f"{path}: expected an integer, got {shown(value)}")
        if key == "scale":
            if value not in ARCHS[arch].scales:
                allowed = ", ".join(map(str, ARCHS[arch].scales))
                raise BadInputError(f"{path}: {value} is not allowed; {arch} supports scale {allowed}")
            continue
        lo, hi = GENERATOR_INT_ARGS[key]
        if not lo <= value <= hi:
            raise BadInputError(f"{path}: {value} is out of range; allowed: an integer in [{lo}, {hi}]")
    return dict(config)


def build_generator(arch: str, config: dict) -> nn.Module:
    validate_generator_config(arch, config, f"{arch} configuration")
    return ARCHS[arch].module(**config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
