"""Training configuration: frozen dataclasses, loaded from TOML with unknown keys rejected.

A run's configuration is resolved in layers, each overriding the one before:
preset (``smoke``, ``short``, ``paper``) -> training variant or TOML file -> ``--set section.key=value``.
The resolved configuration is stored next to every checkpoint.

TOML layout (every key optional, every number of a preset can be overridden)::

    name = "my-esrgan"
    generator = "rrdb23"            # a variant of srbench.archs
    [generator_config]              # overrides of the variant's constructor arguments
    num_block = 8
    [loss]
    perceptual_layer = "conv5_4"
    adversarial = "ragan"
    [data]
    train = "div2k"                 # a named set, a folder or "skimage"
    [psnr]                          # stage settings
    iters = 1000000
    [gan]
    lr = 1e-4
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srbench.errors import BadInputError

STAGES = ("psnr", "gan")
PRESETS = ("smoke", "short", "paper")


@dataclass(frozen=True)
class LossConfig:
    pixel: str = "l1"
    pixel_weight: float = 1e-2  # gan stage; the psnr stage uses the pixel loss alone with weight 1
    perceptual_layer: str = "conv5_4"
    perceptual_weight: float = 1.0
    vgg_weights: str = "imagenet"  # "imagenet", a file path, or "random" (smoke runs only, logged)
    adversarial: str = "ragan"
    adversarial_weight: float = 5e-3
    gp_weight: float = 10.0
    lpips_weight: float = 0.0
    fft_weight: float = 0.0


@dataclass(frozen=True)
class DataConfig:
    train: str = "skimage"
    val: str | None = None  # None: hold out the last `holdout` training images
    holdout: int = 1
    val_crop: int = 128  # HR size of the central crop each held-out image is scored on
    data_root: str | None = None
    patch_size: int = 128  # HR patch; the discriminator's input size follows
    batch_size: int = 16
    workers: int = 0
    scale: int = 4


@dataclass(frozen=True)
class StageConfig:
    iters: int
    lr: float
    milestones: tuple[int, ...]
    gamma: float = 0.5
    betas: tuple[float, float] = (0.9, 0.999)
    d_lr: float = 1e-4
    d_num_feat: int = 64
    ema_decay: float = 0.999
    checkpoint_every: int = 5000
    val_every: int = 5000
    log_every: int = 100


@dataclass(frozen=True)
class TrainConfig:
    name: str
    generator: str
    generator_config: dict = field(default_factory=dict)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    psnr: StageConfig = field(default_factory=lambda: PAPER_STAGES["psnr"])
    gan: StageConfig = field(default_factory=lambda: PAPER_STAGES["gan"])
    seed: int = 0
    preset: str = "paper"

    def stage(self, name: str) -> StageConfig:
        if name not in STAGES:
            raise BadInputError(f"unknown stage {name!r}: use psnr or gan")
        return getattr(self, name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PAPER_STAGES = {
    # Wang et al. 2018: PSNR stage Adam 2e-4 halved every 200k; GAN stage 1e-4 halved at 50k/100k/200k/300k.
    "psnr": StageConfig(iters=1_000_000, lr=2e-4, milestones=(200_000, 400_000, 600_000, 800_000)),
    "gan": StageConfig(iters=400_000, lr=1e-4, milestones=(50_000, 100_000, 200_000, 300_000)),
}

# Overrides per preset (TOML-shaped). smoke: CPU, minutes; short: one GPU, about an hour.
PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    "paper": {},
    "short": {
        "data": {"patch_size": 128, "batch_size": 16, "workers": 4},
        "psnr": {"iters": 20_000, "milestones": [10_000, 15_000], "checkpoint_every": 2_000, "val_every": 2_000},
        "gan": {"iters": 10_000, "milestones": [5_000, 7_500], "checkpoint_every": 2_000, "val_every": 2_000},
    },
    "smoke": {
        "loss": {"vgg_weights": "random"},
        "data": {"train": "skimage-train", "patch_size": 32, "batch_size": 8, "workers": 0, "val_crop": 96},
        "psnr": {"iters": 400, "lr": 5e-4, "milestones": [300], "checkpoint_every": 100, "val_every": 100,
                 "log_every": 10},
        "gan": {"iters": 300, "milestones": [200], "checkpoint_every": 100, "val_every": 100, "log_every": 10,
                "d_num_feat": 16},
    },
}

# The ESRGAN ablation chain (paper Sec. 4.4): each step changes one switch of the one before.
TRAINING_VARIANTS: dict[str, dict[str, Any]] = {
    "srgan": {"generator": "srgan_srresnet16_bn",
              "loss": {"perceptual_layer": "relu5_4", "adversarial": "standard"}},
    "srgan-nobn": {"generator": "srresnet16", "loss": {"perceptual_layer": "relu5_4", "adversarial": "standard"}},
    "srgan-nobn-preact": {"generator": "srresnet16",
                          "loss": {"perceptual_layer": "conv5_4", "adversarial": "standard"}},
    "srgan-nobn-preact-ragan": {"generator": "srresnet16",
                                "loss": {"perceptual_layer": "conv5_4", "adversarial": "ragan"}},
    "esrgan": {"generator": "rrdb23", "loss": {"perceptual_layer": "conv5_4", "adversarial": "ragan"}},
}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise BadInputError(f"{where}: expected a list, got {value!r}")
        item = args[0]
        return tuple(_coerce(v, item, where) for v in value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInputError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInputError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise BadInputError(f"{where}: expected a string, got {value!r}")
        return value
    if annotation is dict or origin is dict:
        if not isinstance(value, dict):
            raise BadInputError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    return value


def _merge(base: Any, overrides: dict[str, Any], where: str) -> Any:
    """A copy of dataclass ``base`` with ``overrides`` applied; unknown keys are errors."""
    hints = typing.get_type_hints(type(base))
    known = {f.name for f in dataclasses.fields(base)}
    changes = {}
    for key, value in overrides.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            raise BadInputError(f"unknown configuration key {path!r}; known here: {', '.join(sorted(known))}")
        current = getattr(base, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise BadInputError(f"{path}: expected a table")
            changes[key] = _merge(current, value, path)
        elif key == "generator_config":
            changes[key] = {**current, **_coerce(value, dict, path)}
        else:
            changes[key] = _coerce(value, hints[key], path)
    return dataclasses.replace(base, **changes)


def _parse_set(assignment: str) -> dict[str, Any]:
    """``section.key=value`` (value in TOML syntax) -> nested dict."""
    if "=" not in assignment:
        raise BadInputError(f"--set expects section.key=value, got {assignment!r}")
    dotted, raw = assignment.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is a string
    out: dict[str, Any] = {}
    node = out
    parts = dotted.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _deep_update(target: dict, source: dict) -> dict:
    """Merge ``source`` into ``target`` recursively, copying so that no shared preset table is ever mutated."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def load_variant(variant: str | dict) -> tuple[str, dict[str, Any]]:
    """A training variant name, a generator variant name, a TOML file, or an inline table (suites)
    -> (name, TOML-shaped dict)."""
    from srbench.archs import VARIANTS

    if isinstance(variant, dict):
        base_name, base = load_variant(variant["variant"]) if "variant" in variant else ("", {})
        rest = {k: v for k, v in variant.items() if k != "variant"}
        return rest.get("name", base_name), _deep_update(copy.deepcopy(base), rest)
    path = Path(variant).expanduser()
    if variant.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise BadInputError(f"{path}: no such config file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise BadInputError(f"{path}: invalid TOML ({exc})") from None
        return data.get("name", path.stem), data
    if variant in TRAINING_VARIANTS:
        return variant, dict(TRAINING_VARIANTS[variant])
    if variant in VARIANTS:
        return variant, {"generator": variant}
    known = ", ".join([*TRAINING_VARIANTS, *VARIANTS])
    raise BadInputError(f"unknown variant {variant!r} (not a TOML file either); known: {known}")


def resolve_config(variant: str | dict, preset: str = "paper", sets: list[str] = (),
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The full configuration of a training run (see the module docstring for the layering)."""
    from srbench.archs import VARIANTS

    if preset not in PRESETS:
        raise BadInputError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    name, data = load_variant(variant)
    layered: dict[str, Any] = {}
    _deep_update(layered, PRESET_OVERRIDES[preset])
    _deep_update(layered, data)
    for assignment in sets:
        _deep_update(layered, _parse_set(assignment))
    _deep_update(layered, overrides or {})
    layered["name"] = layered.get("name", name)
    generator = layered.get("generator")
    if generator is None:
        raise BadInputError(f"variant {variant!r} names no generator")
    if preset == "smoke" and not generator.endswith("-smoke") and f"{generator}-smoke" in VARIANTS:
        # Smoke runs keep the architecture's kind (blocks, BN) at CPU-friendly width and depth.
        layered["generator"] = f"{generator}-smoke"
    if layered["generator"] not in VARIANTS:
        raise BadInputError(f"unknown generator {layered['generator']!r}; known: {', '.join(VARIANTS)}")
    base = TrainConfig(name=layered["name"], generator=layered["generator"], preset=preset)
    rest = {k: v for k, v in layered.items() if k not in ("name", "generator")}
    config = _merge(base, rest, "")
    _validate(config)
    return config


def _validate(config: TrainConfig) -> None:
    from srbench.archs import VGG19_LAYERS
    from srbench.losses import ADVERSARIAL_KINDS

    loss, data = config.loss, config.data
    for key in ("scale", "batch_size", "val_crop", "patch_size"):
        if getattr(data, key) < 1:
            raise BadInputError(f"data.{key} must be positive, got {getattr(data, key)}")
    if data.val is None and data.holdout < 1:
        raise BadInputError("data.holdout must be at least 1 when no data.val set is given")
    if data.workers < 0:
        raise BadInputError(f"data.workers must be >= 0, got {data.workers}")
    if loss.adversarial not in ADVERSARIAL_KINDS:
        raise BadInputError(f"loss.adversarial {loss.adversarial!r}; known: {', '.join(ADVERSARIAL_KINDS)}")
    if loss.perceptual_layer not in VGG19_LAYERS:
        raise BadInputError(f"loss.perceptual_layer {loss.perceptual_layer!r} is not a VGG19 layer")
    if data.patch_size % (32 * 1) or data.patch_size % data.scale:
        raise BadInputError(
            f"data.patch_size {data.patch_size} must be a multiple of 32 (the discriminator) and of the scale")
    for stage in STAGES:
        s = config.stage(stage)
        if s.iters < 1 or s.checkpoint_every < 1 or s.val_every < 1 or s.log_every < 1:
            raise BadInputError(f"{stage}: iters, checkpoint_every, val_every and log_every must be positive")
