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
    adversarial = "ragan"           # srbench.train.losses.ADVERSARIAL_KINDS
    frequency = "fft"               # none, fft, fft-l1, spectral; weighted by frequency_weight
    frequency_weight = 0.3
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
import itertools
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from srbench.errors import BadInputError
from srbench.paths import is_file, user_path
from srbench.text import read_toml, shown

STAGES = ("psnr", "gan")
# Stage keys read by the gan stage alone (its discriminator and the generator's moving average).
GAN_ONLY = ("d_lr", "d_num_feat", "ema_decay", "discriminator")
PRESETS = ("smoke", "short", "paper")
INT64_MAX = 2**63 - 1  # seeds and counters end up in JSON, SQLite and numpy: all 64-bit
# Run and suite names become folder names: one path component, never a way out of the output folder.
SAFE_NAME = re.compile(r"(?!\.{1,2}\Z)[^/\\\x00-\x1f]{1,200}")  # used with fullmatch
SAFE_NAME_TEXT = ("a name usable as one folder name (no '/', '\\' or control characters, not '.' or '..', "
                  "1 to 200 characters)")
PIXEL_LOSSES = ("l1", "l2")  # srbench.train.losses.pixel_loss
VGG_WEIGHTS_NAMED = ("imagenet", "random")


# ---------------------------------------------------------------------------------------------------------
# What each field accepts. Every field of the dataclasses below carries a Rule in its metadata, and
# `check_fields` is the one validator that reads them; a field without a rule is a test failure.


@dataclass(frozen=True)
class Rule:
    """The values one configuration field accepts (after TOML types are coerced to the field's type)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | Callable[[], tuple] | None = None  # a callable defers heavy imports (torch) to load time
    length: int | None = None  # sequences: exactly this many items
    increasing: bool = False  # sequences: strictly increasing
    text: bool = False  # a non-empty string
    safe_name: bool = False  # usable as one folder name (runs are stored under it)
    extra: Callable[[Any, str], None] | None = None  # a check the table cannot express

    def allowed(self, integer: bool) -> str:
        if self.choices is not None:
            return ", ".join(repr(c) for c in self._choices())
        kind = "an integer" if integer else "a finite number"
        if self.lo is not None and self.hi is not None and self.hi != math.inf:
            return (f"{kind} in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {_num(self.lo)}"
        return kind

    def _choices(self) -> tuple:
        return self.choices() if callable(self.choices) else (self.choices or ())  # callers check for None first

    def check(self, value: Any, path: str) -> None:
        if value is None:
            return  # only Optional fields can hold None (the coercion refused it elsewhere)
        if isinstance(value, tuple):
            self._check_items(value, path)
            return
        if self.choices is not None and value not in self._choices():
            raise BadInputError(f"{path}: {shown(value)} is not allowed; allowed: {self.allowed(False)}")
        if isinstance(value, str):
            if self.text and not value.strip():
                raise BadInputError(f"{path}: must not be empty")
            if self.safe_name and not SAFE_NAME.fullmatch(value):
                raise BadInputError(f"{path}: {shown(value)} is not allowed; allowed: {SAFE_NAME_TEXT}")
        elif isinstance(value, (int, float)):
            self._check_number(value, path)
        if self.extra is not None:
            self.extra(value, path)

    def _check_number(self, value: float, path: str, what: str = "") -> None:
        integer = isinstance(value, int)
        if not integer and not math.isfinite(value):
            raise BadInputError(f"{path}: {what}{shown(value)} is not allowed; allowed: {self.allowed(integer)}")
        low = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        high = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if low or high:
            raise BadInputError(f"{path}: {what}{shown(value)} is out of range; allowed: {self.allowed(integer)}")

    def _check_items(self, items: tuple, path: str) -> None:
        integer = all(isinstance(v, int) for v in items)
        if self.length is not None and len(items) != self.length:
            raise BadInputError(f"{path}: {shown(list(items))} has {len(items)} item(s); allowed: exactly "
                                f"{self.length}, each {self.allowed(integer)}")
        for i, v in enumerate(items):
            self._check_number(v, path, f"item {i} = ")
        if self.increasing and any(b <= a for a, b in itertools.pairwise(items)):
            raise BadInputError(f"{path}: {shown(list(items))} is not strictly increasing; allowed: strictly "
                                f"increasing values, each {self.allowed(integer)}")


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _f(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **rule: Any) -> Any:
    """A dataclass field with its Rule."""
    return field(default=default, default_factory=default_factory, metadata={"rule": Rule(**rule)})


POSITIVE_INT = {"lo": 1, "hi": INT64_MAX}
WEIGHT = {"lo": 0.0, "hi": math.inf}  # a loss weight: zero switches the term off, negative would maximise it
RATE = {"lo": 0.0, "lo_open": True, "hi": math.inf}


def _vgg_layers() -> tuple:
    from srbench.archs import VGG19_LAYERS

    return VGG19_LAYERS


def _adversarial_kinds() -> tuple:
    from srbench.train.losses import ADVERSARIAL_KINDS

    return ADVERSARIAL_KINDS


def _perceptual_backbones() -> tuple:
    from srbench.train.losses import PERCEPTUAL_BACKBONES

    return PERCEPTUAL_BACKBONES


def _perceptual_criteria() -> tuple:
    from srbench.train.losses import PERCEPTUAL_CRITERIA

    return PERCEPTUAL_CRITERIA


def _frequency_losses() -> tuple:
    from srbench.train.losses import FREQUENCY_LOSSES

    return FREQUENCY_LOSSES


def _gradient_penalty_losses() -> tuple:
    from srbench.train.losses import GRADIENT_PENALTY_LOSSES

    return GRADIENT_PENALTY_LOSSES


def _discriminators() -> tuple:
    from srbench.archs import DISCRIMINATORS

    return tuple(DISCRIMINATORS)


def _generators() -> tuple:
    from srbench.archs import GENERATORS

    return tuple(GENERATORS)


def _check_vgg_weights(value: str, path: str) -> None:
    if value in VGG_WEIGHTS_NAMED:
        return
    allowed = ("'imagenet', 'random' or the path of a VGG19 state-dict file (AlexNet's with perceptual_backbone "
               "'lpips', VGG16's with 'dists')")
    file = user_path(value, path)
    if not is_file(file):
        raise BadInputError(f"{path}: {shown(value)} is not allowed: no such file; allowed: {allowed}")
    from srbench.weightfiles import CheckpointError, check_weights_file

    try:  # reads only the file's pickle, not its tensors: pickled code and non-checkpoints fail here, not hours later
        check_weights_file(file)
    except CheckpointError as exc:
        raise BadInputError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class LossConfig:
    pixel: str = _f("l1", choices=PIXEL_LOSSES)
    # gan stage; the psnr stage uses the pixel loss alone with weight 1
    pixel_weight: float = _f(1e-2, **WEIGHT)
    # The perceptual term (weight perceptual_weight): VGG19 features of perceptual_layer at perceptual_criterion
    # distance (vgg), or LPIPS (lpips) or DISTS (dists) in its place.
    perceptual_backbone: str = _f("vgg", choices=_perceptual_backbones)
    perceptual_layer: str = _f("conv5_4", choices=_vgg_layers)
    perceptual_criterion: str = _f("l1", choices=_perceptual_criteria)
    perceptual_weight: float = _f(1.0, **WEIGHT)
    # The backbone's ImageNet network (VGG19 for vgg, AlexNet for lpips, VGG16 for dists): "imagenet" (the file
    # in the weights folder), a file path, or "random" (smoke runs only, logged)
    vgg_weights: str = _f("imagenet", text=True, extra=_check_vgg_weights)
    adversarial: str = _f("ragan", choices=_adversarial_kinds)
    adversarial_weight: float = _f(5e-3, **WEIGHT)
    gp_weight: float = _f(10.0, **WEIGHT)
    lpips_weight: float = _f(0.0, **WEIGHT)  # LPIPS beside the perceptual term (AlexNet from the weights folder)
    # none, or a term of srbench.train.losses.FREQUENCY_LOSSES weighted by frequency_weight (> 0 exactly when one is
    # chosen). The former key fft_weight = w reads as frequency = "fft-l1", frequency_weight = w.
    frequency: str = _f("none", choices=_frequency_losses)
    frequency_weight: float = _f(0.0, **WEIGHT)

    def pretrained_networks(self) -> tuple[str, ...]:
        """The ImageNet networks the gan stage's losses stand on (what ``vgg_weights`` names), for a reader."""
        named = {"vgg": "VGG19", "lpips": "AlexNet (LPIPS)", "dists": "VGG16 (DISTS)"}
        out = [named[self.perceptual_backbone]] if self.perceptual_weight > 0 else []
        if self.lpips_weight > 0 and named["lpips"] not in out:
            out.append(named["lpips"])
        return tuple(out)


@dataclass(frozen=True)
class DataConfig:
    train: str = _f("skimage", text=True)
    val: str | None = _f(None, text=True)  # None: hold out the last `holdout` training images
    holdout: int = _f(1, lo=0, hi=INT64_MAX)  # at least 1 without `val` (checked in _check_cross)
    # HR size of the central crop each held-out image is scored on (at least one LR pixel: _check_cross)
    val_crop: int = _f(128, **POSITIVE_INT)
    data_root: str | None = _f(None, text=True)
    patch_size: int = _f(128, lo=32, hi=INT64_MAX)  # HR patch; the discriminator's input size follows
    batch_size: int = _f(16, **POSITIVE_INT)
    workers: int = _f(0, lo=0, hi=1024)
    scale: int = _f(4, lo=1, hi=8)  # the generator's own scales are checked in _check_cross


@dataclass(frozen=True)
class StageConfig:
    iters: int = _f(**POSITIVE_INT)
    lr: float = _f(**RATE)
    milestones: tuple[int, ...] = _f(increasing=True, **POSITIVE_INT)
    gamma: float = _f(0.5, lo=0.0, lo_open=True, hi=1.0)  # MultiStepLR's factor: > 1 would raise the rate
    betas: tuple[float, float] = _f((0.9, 0.999), length=2, lo=0.0, hi=1.0, hi_open=True)  # Adam's
    d_lr: float = _f(1e-4, **RATE)
    d_num_feat: int = _f(64, lo=1, hi=4096)
    # srbench.archs.DISCRIMINATORS: ESRGAN's VGG-style discriminator, or the WGAN-GP project's critic
    discriminator: str = _f("vgg", choices=_discriminators)
    ema_decay: float = _f(0.999, lo=0.0, hi=1.0)
    checkpoint_every: int = _f(5000, **POSITIVE_INT)
    val_every: int = _f(5000, **POSITIVE_INT)
    log_every: int = _f(100, **POSITIVE_INT)


@dataclass(frozen=True)
class TrainConfig:
    name: str = _f(text=True, safe_name=True)
    generator: str = _f(choices=_generators)
    # checked against the generator's constructor (srbench.archs.validate_generator_config) in _check_cross
    generator_config: dict = _f(default_factory=dict)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    psnr: StageConfig = field(default_factory=lambda: PAPER_STAGES["psnr"])
    gan: StageConfig = field(default_factory=lambda: PAPER_STAGES["gan"])
    seed: int = _f(0, lo=0, hi=INT64_MAX)
    preset: str = _f("paper", choices=PRESETS)

    def stage(self, name: str) -> StageConfig:
        if name not in STAGES:
            raise BadInputError(f"unknown stage {shown(name)}: use psnr or gan")
        return getattr(self, name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PAPER_STAGES: dict[str, StageConfig] = {
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
        # 32 px HR patches are the discriminator's smallest; batch and iterations keep `srbench ablate` with no
        # data root (the main job) under 150 s on 2 cores (docs/scaling.md); each stage still checkpoints,
        # validates and steps its learning rate down before it ends.
        "data": {"train": "skimage-train", "patch_size": 32, "batch_size": 4, "workers": 0, "val_crop": 96},
        "psnr": {"iters": 200, "lr": 5e-4, "milestones": [150], "checkpoint_every": 100, "val_every": 100,
                 "log_every": 10},
        "gan": {"iters": 40, "milestones": [30], "checkpoint_every": 20, "val_every": 20, "log_every": 10,
                "d_num_feat": 16},
    },
}

# The ESRGAN ablation chain (paper Sec. 4.4): each step changes one switch of the one before.
RECIPES: dict[str, dict[str, Any]] = {
    "srgan": {"generator": "srgan_srresnet16_bn",
              "loss": {"perceptual_layer": "relu5_4", "adversarial": "standard"}},
    "srgan-nobn": {"generator": "srresnet16", "loss": {"perceptual_layer": "relu5_4", "adversarial": "standard"}},
    "srgan-nobn-preact": {"generator": "srresnet16",
                          "loss": {"perceptual_layer": "conv5_4", "adversarial": "standard"}},
    "srgan-nobn-preact-ragan": {"generator": "srresnet16",
                                "loss": {"perceptual_layer": "conv5_4", "adversarial": "ragan"}},
    "esrgan": {"generator": "rrdb23", "loss": {"perceptual_layer": "conv5_4", "adversarial": "ragan"}},
}


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{where}: expected a number, got {shown(value)}")
    try:
        return float(value)
    except OverflowError:  # a Python int beyond float range (TOML's are 64-bit)
        raise BadInputError(f"{where}: {value} is too large for a number") from None


def _of_type(kind: type[Any], words: str) -> Callable[[Any, str], Any]:
    def check(value: Any, where: str) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise BadInputError(f"{where}: expected {words}, got {shown(value)}")
        return dict(value) if kind is dict else value
    return check


# Plain field types -> how a TOML value becomes one (bool is an int in Python, never a number here).
_SCALARS: dict[Any, Callable[[Any, str], Any]] = {
    float: _as_float, int: _of_type(int, "an integer"), str: _of_type(str, "a string"), dict: _of_type(dict, "a table"),
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
            raise BadInputError(f"{where}: expected a list, got {shown(value)}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    convert = _SCALARS.get(dict if origin is dict else annotation)
    return convert(value, where) if convert is not None else value


def _merge(base: Any, overrides: dict[str, Any], where: str) -> Any:
    """A copy of dataclass ``base`` with ``overrides`` applied; unknown keys are errors."""
    hints = typing.get_type_hints(type(base))
    known = {f.name for f in dataclasses.fields(base)}
    changes = {}
    for key, value in overrides.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            raise BadInputError(f"unknown configuration key {shown(path)}; known here: {', '.join(sorted(known))}")
        current = getattr(base, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise BadInputError(f"{path}: expected a table, got {shown(value)}")
            changes[key] = _merge(current, value, path)
        elif key == "generator_config":
            changes[key] = {**current, **_coerce(value, dict, path)}
        else:
            changes[key] = _coerce(value, hints[key], path)
    return dataclasses.replace(base, **changes)


def check_fields(obj: Any, where: str = "") -> None:
    """Check every field of a configuration dataclass (recursively) against the Rule it declares."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            check_fields(value, path)
        elif "rule" in f.metadata:
            f.metadata["rule"].check(value, path)


def _parse_set(assignment: str) -> dict[str, Any]:
    """``section.key=value`` (value in TOML syntax) -> nested dict."""
    if "=" not in assignment:
        raise BadInputError(f"--set expects section.key=value, got {shown(assignment)}")
    dotted, raw = assignment.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        value = raw.strip()  # a bare word is a string
    parts = dotted.strip().split(".")
    if not all(part.strip() for part in parts):
        raise BadInputError(f"--set expects section.key=value, got {shown(assignment)}")
    out: dict[str, Any] = {}
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part.strip(), {})
    node[parts[-1].strip()] = value
    return out


def _deep_update(target: dict, source: dict) -> dict:
    """Merge ``source`` into ``target`` recursively, copying so that no shared preset table is ever mutated."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def load_recipe(variant: str | dict) -> tuple[str, dict[str, Any]]:
    """A training variant name, a generator variant name, a TOML file, or an inline table (suites)
    -> (name, TOML-shaped dict)."""
    from srbench.archs import GENERATORS

    if isinstance(variant, dict):
        base = variant.get("variant")
        if base is not None and not isinstance(base, str):
            raise BadInputError(f"variant: expected the name of a training variant or a .toml path, got {shown(base)}")
        base_name, data = load_recipe(base) if base is not None else ("", {})
        rest = {k: v for k, v in variant.items() if k != "variant"}
        generator = rest.get("generator", data.get("generator"))
        default = base_name or (generator if isinstance(generator, str) else "")  # an inline table names no run
        return rest.get("name", default), _deep_update(copy.deepcopy(data), rest)
    if not isinstance(variant, str):
        raise BadInputError(f"variant: expected a name, a .toml path or a table, got {shown(variant)}")
    path = user_path(variant, "variant")
    if variant.endswith(".toml") or is_file(path):
        if not is_file(path):
            raise BadInputError(f"{path}: no such config file")
        data = read_toml(path)
        return data.get("name", path.stem), data
    if variant in RECIPES:
        return variant, copy.deepcopy(RECIPES[variant])
    if variant in GENERATORS:
        return variant, {"generator": variant}
    known = ", ".join([*RECIPES, *GENERATORS])
    raise BadInputError(f"unknown variant {shown(variant)} (not a TOML file either); known: {known}")


def resolve_config(variant: str | dict, preset: str = "paper", sets: Sequence[str] = (),
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The full configuration of a training run (see the module docstring for the layering), every field
    checked against its Rule and the fields against each other; errors are one-line BadInputErrors."""

    if preset not in PRESETS:
        raise BadInputError(f"unknown preset {shown(preset)}; known: {', '.join(PRESETS)}")
    name, data = load_recipe(variant)
    layered: dict[str, Any] = {}
    _deep_update(layered, PRESET_OVERRIDES[preset])
    _deep_update(layered, data)
    for assignment in sets:
        _deep_update(layered, _parse_set(assignment))
    if overrides:
        # Every value as written (the file, --set) is checked before the command line's options replace it: a file's
        # iters = -5 or train = 42 trained without a word under --iters or --data.
        _checked_fields(copy.deepcopy(layered), name, variant, preset)
    _deep_update(layered, overrides or {})
    config = _checked_fields(layered, name, variant, preset)
    _check_cross(config)
    _check_losses(config.loss)
    return config


def _checked_fields(layered: dict[str, Any], name: str, variant: str | dict, preset: str) -> TrainConfig:
    """The configuration the layered values make (modified in place), each field checked against its Rule."""
    from srbench.archs import GENERATORS

    if layered.get("preset", preset) != preset:
        # The preset chose every number below; recording another one would misreport the run.
        raise BadInputError(f"preset = {shown(layered['preset'])} in the configuration contradicts the preset in use "
                            f"({shown(preset)}): choose the preset with --preset {shown(layered['preset'])}")
    layered["name"] = layered.get("name", name)
    generator = layered.get("generator")
    if generator is None:
        raise BadInputError(f"variant {shown(variant)} names no generator")
    if not isinstance(generator, str) or generator not in GENERATORS:
        allowed = ", ".join(map(repr, GENERATORS))
        raise BadInputError(f"generator: {shown(generator)} is not allowed; allowed: {allowed}")
    if preset == "smoke" and not generator.endswith("-smoke") and f"{generator}-smoke" in GENERATORS:
        # Smoke runs keep the architecture's kind (blocks, BN) at CPU-friendly width and depth.
        layered["generator"] = f"{generator}-smoke"
    if not isinstance(layered["name"], str):
        raise BadInputError(f"name: expected a string, got {shown(layered['name'])}")
    base = TrainConfig(name=layered["name"], generator=layered["generator"], preset=preset)
    rest = {k: v for k, v in layered.items() if k not in ("name", "generator")}
    _legacy_fft_weight(rest)
    config = _merge(base, rest, "")
    check_fields(config)
    return config


def check_training_set(config: TrainConfig) -> None:
    """The ``short`` and ``paper`` presets train on a set the user names. ``data.train`` defaults to ``skimage``,
    srbench's embedded *evaluation* set (5 photos): right for no run that claims to follow a paper, and a model
    trained on the photos it is then scored on. The ``smoke`` preset trains on ``skimage-train``, other photos."""
    from srbench.datasets import EMBEDDED

    if config.preset != "smoke" and config.data.train.lower() == EMBEDDED:  # dataset names are case-insensitive
        raise BadInputError(
            f"{config.name}: the {config.preset} preset would train on {EMBEDDED!r}, srbench's evaluation set (5 "
            "photos): name a training set, e.g. a folder of DIV2K's 800 training HR images (ESRGAN trained on "
            "DIV2K + Flickr2K + OST), with --data (srbench train), --train-data (srbench ablate) or [data] train")


def check_gan_batch(config: TrainConfig) -> None:
    """The vgg discriminator's last BatchNorm normalises each channel over batch x (patch / 32)^2 values in training
    mode: one value is torch's ValueError at the first gan step, after the networks and the data were set up (and,
    in an ablation, after the psnr stage trained)."""
    batch, patch = config.data.batch_size, config.data.patch_size
    if config.gan.discriminator == "vgg" and batch * (patch // 32) ** 2 < 2:
        raise BadInputError(f"data.batch_size {batch} with data.patch_size {patch}: the vgg discriminator's last "
                            "BatchNorm would normalise one value per channel (a 1x1 map of one image); use "
                            "data.batch_size 2 or more, or data.patch_size 64 or more")


def _legacy_fft_weight(layered: dict[str, Any]) -> None:
    """``loss.fft_weight = w`` (srbench before the frequency choice) -> ``loss.frequency = "fft-l1"`` with
    ``loss.frequency_weight = w`` (``none`` and 0 for w = 0), in place: old configuration files keep working and
    train what they trained before."""
    loss = layered.get("loss")
    if not isinstance(loss, dict) or "fft_weight" not in loss:
        return
    value = _as_float(loss.pop("fft_weight"), "loss.fft_weight")
    Rule(lo=0.0, hi=math.inf).check(value, "loss.fft_weight")  # as WEIGHT says
    if "frequency" in loss or "frequency_weight" in loss:
        raise BadInputError("loss.fft_weight is the former name of loss.frequency = 'fft-l1' with "
                            "loss.frequency_weight: give either fft_weight or the two new keys, not both")
    loss["frequency"] = "fft-l1" if value > 0 else "none"
    loss["frequency_weight"] = value


def upgrade_saved_config(saved: dict) -> dict:
    """A resolved configuration as srbench wrote it (``config.json``, a training state) in today's layout: the
    former ``loss.fft_weight`` as ``frequency``/``frequency_weight``, and the loss and stage keys added since at
    the defaults that reproduce what was trained then. Anything else is returned unchanged."""
    loss = saved.get("loss") if isinstance(saved, dict) else None
    if not isinstance(loss, dict):
        return saved
    loss = dict(loss)
    if "fft_weight" in loss and "frequency" not in loss:
        weight = loss.pop("fft_weight")
        loss["frequency"] = "fft-l1" if isinstance(weight, (int, float)) and weight > 0 else "none"
        loss["frequency_weight"] = weight
    defaults = dataclasses.asdict(LossConfig())
    for key in ("perceptual_backbone", "perceptual_criterion", "frequency", "frequency_weight"):
        loss.setdefault(key, defaults[key])
    stages = {name: {"discriminator": "vgg", **saved[name]} for name in STAGES if isinstance(saved.get(name), dict)}
    return {**saved, "loss": loss, **stages}


def _check_losses(loss: LossConfig) -> None:
    """Loss keys that constrain each other: a frequency term and its weight, and LPIPS chosen twice."""
    if loss.frequency != "none" and loss.frequency_weight == 0:
        raise BadInputError(f"loss.frequency_weight: 0 switches loss.frequency = {shown(loss.frequency)} off; "
                            f"allowed: a weight > 0 with it, or loss.frequency = 'none'")
    if loss.frequency == "none" and loss.frequency_weight > 0:
        others = ", ".join(repr(k) for k in _frequency_losses() if k != "none")
        raise BadInputError(f"loss.frequency_weight: {_num(loss.frequency_weight)} weighs no term "
                            f"(loss.frequency = 'none'); choose loss.frequency: {others}")
    # Recorded with the run (and in the training cache's fingerprint) but never read: the configuration would say
    # something the weights do not.
    defaults = LossConfig()
    penalised = _gradient_penalty_losses()
    if loss.adversarial not in penalised and loss.gp_weight != defaults.gp_weight:
        raise BadInputError(f"loss.gp_weight: only the gradient-penalty losses ({', '.join(penalised)}) "
                            f"read it; with loss.adversarial = {shown(loss.adversarial)} it would be ignored")
    if loss.perceptual_backbone == "lpips" and loss.lpips_weight > 0:
        raise BadInputError("loss.lpips_weight adds LPIPS beside the perceptual term, which is LPIPS already "
                            "(loss.perceptual_backbone = 'lpips'): set loss.perceptual_weight instead")


def _check_cross(config: TrainConfig) -> None:
    """What no single field's Rule can say: fields that constrain each other."""
    from srbench.archs import ARCHS, GENERATORS, validate_generator_config

    defaults = StageConfig(iters=1, lr=1e-4, milestones=(1,))
    for key in GAN_ONLY:
        if getattr(config.psnr, key) != getattr(defaults, key):
            # Recorded with the run but never read: the config would say something the weights do not.
            raise BadInputError(f"psnr.{key}: the psnr stage trains no discriminator and keeps no moving average, "
                                f"so it would be ignored; set gan.{key}")

    data = config.data
    variant = GENERATORS[config.generator]
    scale = config.generator_config.get("scale", data.scale)
    if scale != data.scale:  # the trainer builds the generator at data.scale: another value would be ignored
        raise BadInputError(f"generator_config.scale: {shown(scale)} differs from data.scale ({data.scale}), which "
                            f"sets the scale of the run: set data.scale instead")
    validate_generator_config(variant.arch, config.generator_config)
    scales = ARCHS[variant.arch].scales
    if data.scale not in scales:
        raise BadInputError(f"data.scale: {data.scale} is not allowed for {config.generator} ({variant.arch}); "
                            f"allowed: {', '.join(map(str, scales))}")
    if data.val is None and data.holdout < 1:
        raise BadInputError("data.holdout must be at least 1 when no data.val set is given")
    if data.val is not None and data.holdout != DataConfig().holdout:
        raise BadInputError(f"data.holdout: no training image is held out when data.val names the validation set "
                            f"({shown(data.val)}), so it would be ignored")
    if data.patch_size % 32 or data.patch_size % data.scale:
        raise BadInputError(
            f"data.patch_size {data.patch_size} must be a multiple of 32 (the discriminator) and of the scale")
    if data.val_crop < data.scale:
        raise BadInputError(f"data.val_crop: {data.val_crop} is out of range; allowed: at least data.scale "
                            f"({data.scale}), so that the held-out LR crop has a pixel")
    # RRDBNet pixel-unshuffles x2 and x1 inputs by 2 and 4: the LR crop must divide evenly.
    unshuffle = {"rrdbnet": {2: 2, 1: 4}}.get(variant.arch, {}).get(data.scale, 1)
    if (data.val_crop // data.scale) % unshuffle:
        raise BadInputError(f"data.val_crop: {data.val_crop} gives a {data.val_crop // data.scale}-pixel LR crop, "
                            f"which {variant.arch} at x{data.scale} cannot pixel-unshuffle; allowed: a multiple "
                            f"of {unshuffle * data.scale}")


def data_fingerprints(config: TrainConfig, memo: dict | None = None) -> dict[str, str | None]:
    """Content fingerprints of the training set and the named validation set (None when held out of training)."""
    from srbench.datasets import resolve

    memo = {} if memo is None else memo

    def of(name: str) -> str:
        key = (name, config.data.data_root)
        if key not in memo:
            memo[key] = resolve(name, config.data.data_root).fingerprint()
        return memo[key]

    return {"train": of(config.data.train), "val": of(config.data.val) if config.data.val is not None else None}
