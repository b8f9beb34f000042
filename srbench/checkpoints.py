"""Loading every generator checkpoint layout users bring, and srbench's own safe checkpoint format.

Layouts recognised (after unwrapping BasicSR's ``params``/``params_ema``, ``state_dict`` containers,
mmagic's ``generator.``/``generator_ema.`` prefixes and DDP's ``module.``):

- ``official``: the ESRGAN repository (``conv_first``, ``RRDB_trunk.N.RDB1.conv1``, ``trunk_conv``,
  ``upconv1``, ``upconv2``, ``HRconv``, ``conv_last``);
- ``sequential``: the older ESRGAN/BasicSR sequential model (``model.0``, ``model.1.sub.N.RDB1.conv1.0``,
  ``model.1.sub.23``, ``model.3``, ``model.6``, ``model.8``, ``model.10``);
- ``basicsr``: BasicSR and mmagic (``body.N.rdb1.conv1``, ``conv_body``, ``conv_up1``, ...), also srbench's
  own RRDBNet naming;
- ``srbench-srresnet``: srbench's SRResNet.

``.pth`` files are read with ``weights_only=True``: a file that needs arbitrary pickled code to load is
refused. srbench writes safetensors plus a JSON sidecar, atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from srbench.archs import (
    ARCHS,
    GENERATORS,
    block_indices,
    build_generator,
    count_parameters,
    generator_defaults,
    get_generator,
    same_generator,
    validate_generator_config,
)
from srbench.errors import BadInputError
from srbench.images import atomic_write_bytes, file_sha256
from srbench.text import one_line, shown
from srbench.version import __version__
from srbench.weightfiles import CheckpointError, read_weights

FORMAT = "srbench-checkpoint"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------------------
# Reading


def _key(name: str) -> str:
    """A state-dict key as printed in a one-line message (quoted when it holds odd characters)."""
    return name if name.isprintable() and name.strip() == name and name else repr(name)


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json") if path.suffix != ".safetensors" else path.with_suffix(".json")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Sidecar fields srbench reads, with the types it accepts (others are kept, unread, for newer versions).
_SIDECAR_OPTIONAL = {"variant": str, "stage": str, "iteration": int, "sha256": str, "format": str,
                     "srbench_version": str, "torch_version": str, "created": str}


def _check_sidecar(meta: object, side: Path) -> dict:
    """A parsed sidecar as load_generator and the reports use it, or a CheckpointError naming the problem."""
    fix = "fix it, or move it away to load the weights by their tensor shapes"
    if not isinstance(meta, dict):
        raise CheckpointError(f"{side}: checkpoint sidecar holds a JSON {type(meta).__name__}, not an object; {fix}")
    if meta.get("format", FORMAT) != FORMAT:
        raise CheckpointError(f"{side}: format {shown(meta['format'])} is not {shown(FORMAT)}; {fix}")
    for key in ("arch", "config"):
        if key not in meta:
            raise CheckpointError(f"{side}: checkpoint sidecar has no {shown(key)}; {fix}")
    if not isinstance(meta["arch"], str) or meta["arch"] not in ARCHS:
        raise CheckpointError(f"{side}: unknown arch {shown(meta['arch'])}; known: {', '.join(ARCHS)}")
    try:
        validate_generator_config(meta["arch"], meta["config"], "config")
    except BadInputError as exc:
        raise CheckpointError(f"{side}: {exc}") from None
    _check_optional_fields(meta, side, fix)
    return meta


def _check_optional_fields(meta: dict, side: Path, fix: str) -> None:
    for key, kind in _SIDECAR_OPTIONAL.items():
        value = meta.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise CheckpointError(f"{side}: {key} = {shown(value)} is not a {kind.__name__}; {fix}")
    if meta.get("sha256") is not None and not _SHA256.match(meta["sha256"]):
        raise CheckpointError(f"{side}: sha256 {shown(meta['sha256'])} is not 64 lowercase hex digits; {fix}")
    extra = meta.get("extra", {})
    if not isinstance(extra, dict) or not isinstance(extra.get("train_config", {}), dict | None):
        raise CheckpointError(f"{side}: 'extra' must be an object whose train_config is an object; {fix}")


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The checked JSON sidecar of ``path``, or None when it has none."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc) or type(exc).__name__
        raise CheckpointError(f"{side}: corrupt checkpoint sidecar ({reason})") from None
    except OSError as exc:
        raise CheckpointError(f"{side}: cannot read checkpoint sidecar ({exc.strerror or exc})") from None
    return _check_sidecar(meta, side)




def _unwrap(obj: object, origin: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The generator's tensors from whatever container they came in, and how they were found."""
    notes: list[str] = []
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{origin}: holds a {type(obj).__name__}, not a state dict")
    for key in ("params_ema", "params"):
        if key in obj and isinstance(obj[key], Mapping):
            notes.append(f"BasicSR container, using '{key}'")
            obj = obj[key]
            break
    else:
        if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
            notes.append("'state_dict' container")
            obj = obj["state_dict"]
    # obj is a Mapping here (checked above, for it and for each container taken out of it). Parameter names are
    # strings; other keys are not ours.
    obj = {k: v for k, v in cast(Mapping, obj).items() if isinstance(k, str)}
    keys = list(obj)
    for prefix in ("generator_ema.", "generator."):
        if any(k.startswith(prefix) for k in keys):
            notes.append(f"mmagic '{prefix}' prefix")
            obj = {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix)}
            break
    if obj and all(k.startswith("module.") for k in obj):
        notes.append("DDP 'module.' prefix")
        obj = {k[len("module."):]: v for k, v in obj.items()}
    # Only dense real tensors can be a generator's weights (torch.load also rebuilds sparse and meta ones).
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and v.layout == torch.strided
               and v.device.type != "meta" and not v.is_complex()}
    if not tensors:
        raise CheckpointError(f"{origin}: no tensors found (keys: {', '.join(map(_key, list(obj)[:8]))})")
    return tensors, notes


_OFFICIAL = [
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$"), r"body.\1.rdb\2.conv\3.\4"),
    (re.compile(r"^trunk_conv\.(weight|bias)$"), r"conv_body.\1"),
    (re.compile(r"^upconv1\.(weight|bias)$"), r"conv_up1.\1"),
    (re.compile(r"^upconv2\.(weight|bias)$"), r"conv_up2.\1"),
    (re.compile(r"^HRconv\.(weight|bias)$"), r"conv_hr.\1"),
]
_SEQUENTIAL = [
    (re.compile(r"^model\.0\.(weight|bias)$"), r"conv_first.\1"),
    (re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$"), r"body.\1.rdb\2.conv\3.\4"),
    (re.compile(r"^model\.3\.(weight|bias)$"), r"conv_up1.\1"),
    (re.compile(r"^model\.6\.(weight|bias)$"), r"conv_up2.\1"),
    (re.compile(r"^model\.8\.(weight|bias)$"), r"conv_hr.\1"),
    (re.compile(r"^model\.10\.(weight|bias)$"), r"conv_last.\1"),
]


def detect_layout(keys: list[str]) -> str:
    if any(k.startswith("RRDB_trunk.") for k in keys):
        return "official"
    if any(k.startswith("model.1.sub.") for k in keys):
        return "sequential"
    if any(re.match(r"^body\.\d+\.rdb\d\.", k) for k in keys):
        return "basicsr"
    if any(k.startswith("act_first.") for k in keys):
        return "srbench-srresnet"
    return "unknown"


def _rename(state: dict[str, torch.Tensor], rules) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            if pattern.match(key):
                key = pattern.sub(replacement, key)
                break
        out[key] = value
    return out


def to_canonical(state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """Rename a state dict of ``layout`` to srbench's (BasicSR) key names."""
    if layout == "official":
        return _rename(state, _OFFICIAL)
    if layout == "sequential":
        trunk = [int(m.group(1)) for k in state if (m := re.match(r"^model\.1\.sub\.(\d+)\.(weight|bias)$", k))]
        rules = list(_SEQUENTIAL)
        if trunk:  # the trunk conv closes the sequential body: model.1.sub.<num_block>
            rules.append((re.compile(rf"^model\.1\.sub\.{max(trunk)}\.(weight|bias)$"), r"conv_body.\1"))
        return _rename(state, rules)
    return dict(state)


def infer_config(state: dict[str, torch.Tensor]) -> tuple[str, dict]:
    """Architecture and configuration from canonical tensor shapes (scale 4 assumed for RRDBNet)."""
    try:
        return _infer_config(state)
    except KeyError as exc:
        raise CheckpointError(f"cannot infer the architecture: no {exc.args[0]}") from None
    except IndexError:
        raise CheckpointError("cannot infer the architecture: a tensor it needs has too few dimensions") from None


def _infer_config(state: dict[str, torch.Tensor]) -> tuple[str, dict]:
    for arch in ARCHS.values():
        if arch.detect(state):
            return arch.name, arch.infer_config(state)
    if "conv_first.weight" not in state:
        raise CheckpointError("cannot infer the architecture: no conv_first.weight")
    raise CheckpointError("cannot infer the architecture from these keys")


@dataclass
class LoadedCheckpoint:
    """A state dict in srbench's key names, with what was learnt while reading it."""

    state: dict[str, torch.Tensor]
    layout: str
    notes: list[str] = field(default_factory=list)
    metadata: dict | None = None
    source: str = "<state dict>"
    sha256: str | None = None


def generator_info(model: nn.Module) -> dict[str, Any]:
    """The ``srbench_info`` that :func:`load_generator` attached to ``model`` (typed for the callers)."""
    return cast(dict[str, Any], model.srbench_info)


def load_state(path_or_state: str | os.PathLike | Mapping) -> LoadedCheckpoint:
    """Read, unwrap and canonicalise a generator checkpoint (file or in-memory state dict)."""
    metadata = None
    sha = None
    if isinstance(path_or_state, Mapping):
        origin = "<state dict>"
        obj: object = path_or_state
    else:
        path = Path(path_or_state).expanduser()
        origin = str(path)
        obj = read_weights(path)
        sha = file_sha256(path)
        metadata = read_metadata(path)
        if metadata is not None and metadata.get("sha256") not in (None, sha):
            raise CheckpointError(
                f"{path}: sha256 {sha[:12]}... differs from its sidecar's {metadata['sha256'][:12]}...: the "
                "weights changed after the sidecar was written"
            )
    tensors, notes = _unwrap(obj, origin)
    layout = detect_layout(list(tensors))
    return LoadedCheckpoint(to_canonical(tensors, layout), layout, notes, metadata, origin, sha)


def _resolve_arch(arch: str | None, loaded: LoadedCheckpoint, scale: int | None) -> tuple[str, dict, str | None]:
    if arch in GENERATORS:
        variant = get_generator(arch)
        return variant.arch, dict(variant.config), variant.name
    if loaded.metadata is not None and arch in (None, loaded.metadata.get("arch")):
        meta_arch, meta_config = loaded.metadata["arch"], dict(loaded.metadata["config"])
        return meta_arch, meta_config, variant_of(loaded.metadata.get("variant"), meta_arch, meta_config)
    try:
        inferred_arch, config = infer_config(loaded.state)
    except CheckpointError as exc:
        raise CheckpointError(f"{loaded.source}: {exc} (layout guessed: {loaded.layout})") from None
    if arch is not None and arch != inferred_arch:
        raise CheckpointError(
            f"{loaded.source}: holds a {inferred_arch} (layout guessed: {loaded.layout}), not a {arch}"
        )
    if scale is not None:
        config["scale"] = scale
    return inferred_arch, config, None


def variant_of(name: str | None, arch: str, config: dict) -> str | None:
    """``name``, when the generator variant of that name is this network (its architecture and configuration),
    else None: a run of ``rrdb23-smoke`` with another ``num_block``, or a hand-edited sidecar, is no such variant
    and is not evaluated, stored or shown under its name. A name srbench has no variant of is kept as written."""
    if not name:
        return None
    variant = GENERATORS.get(name)
    if variant is None:
        return name  # a label of the tool that wrote the file: nothing here to check it against
    if variant.arch != arch:
        return None
    # a variant used at several scales names none: the file's own scale stands
    own_scale = {"scale": config["scale"]} if "scale" in config else {}
    return name if same_generator(arch, {**own_scale, **variant.config}, config) else None


def _sizes_agree(arch: str, config: dict, state: dict[str, torch.Tensor]) -> bool:
    """Whether the width and depth ``config`` asks for are those of the tensors (so building it is cheap)."""
    try:
        inferred_arch, inferred = infer_config(state)
    except CheckpointError:
        return False
    full = {**generator_defaults(arch), **config}
    return inferred_arch == arch and all(full.get(k) == inferred.get(k) for k in ("num_feat", "num_block",
                                                                                  "num_grow_ch"))


def load_generator(
    path_or_state: str | os.PathLike | Mapping, arch: str | None = None, *, scale: int | None = None
) -> nn.Module:
    """A generator in eval mode from any supported checkpoint; strict, with a precise error on mismatch.

    ``arch`` is a variant name (``rrdb23``), an architecture name (``rrdbnet``) or None (from the sidecar, or
    inferred from tensor shapes). The module gets ``srbench_info`` describing what was loaded.
    """
    loaded = load_state(path_or_state)
    arch_name, config, variant = _resolve_arch(arch, loaded, scale)
    try:
        validate_generator_config(arch_name, config, "config")
    except BadInputError as exc:
        raise CheckpointError(f"{loaded.source}: {exc}") from None
    model = None
    if arch in GENERATORS or _sizes_agree(arch_name, config, loaded.state):
        model = build_generator(arch_name, config)
        expected = model.state_dict()
    else:
        # A configuration from a sidecar or from shapes that disagree with the tensors is compared on the meta
        # device first, so that a wrong one fails at once instead of allocating (up to terabytes) for nothing;
        # a wrong depth is told without building at all (hundreds of blocks take seconds even there).
        want = {**generator_defaults(arch_name), **config}.get("num_block")
        blocks = len(block_indices(loaded.state))
        if want is not None and want != blocks:
            raise CheckpointError(
                f"{loaded.source} does not fit {variant or arch_name} {config} (layout guessed: {loaded.layout}); "
                f"{want} blocks in the configuration, {blocks} in the file")
        with torch.device("meta"):
            expected = build_generator(arch_name, config).state_dict()
    parts = _mismatches(expected, loaded.state)
    if parts:
        raise CheckpointError(
            f"{loaded.source} does not fit {variant or arch_name} {config} (layout guessed: {loaded.layout}); "
            + "; ".join(parts)
        )
    if model is None:
        model = build_generator(arch_name, config)
    try:
        model.load_state_dict(loaded.state, strict=True)
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as exc:  # dtypes torch cannot copy in
        raise CheckpointError(f"{loaded.source}: its tensors cannot be loaded into {variant or arch_name} "
                              f"({one_line(str(exc))})") from None
    _refuse_non_finite(model, loaded.source)
    model.eval()
    # nn.Module types attribute assignment as Tensor | Module; a plain dict is stored in __dict__ as usual.
    model.srbench_info = {  # type: ignore[assignment]
        "arch": arch_name, "config": config, "variant": variant, "layout": loaded.layout, "notes": loaded.notes,
        "source": loaded.source, "sha256": loaded.sha256, "metadata": loaded.metadata,
        "parameters": count_parameters(model),
    }
    return model


def _mismatches(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading strictly into a module of state dict ``expected``, one phrase each."""
    # BatchNorm's step counter changes no output, and files saved before PyTorch 0.4.1 (or converted) lack it:
    # load_state_dict fills it in, as strict loading in PyTorch itself does.
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith(".num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    shared = set(expected) & set(state)
    wrong_shape = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                         for k in shared if state[k].shape != expected[k].shape)
    # An integer tensor would be cast to float silently: weights that were quantised or are not weights at all.
    wrong_dtype = sorted(f"{k} {state[k].dtype}" for k in shared
                         if expected[k].is_floating_point() and not state[k].is_floating_point())
    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)}: {', '.join(map(_key, unexpected[:6]))}"
                     f"{' ...' if len(unexpected) > 6 else ''}")
    if wrong_shape:
        parts.append(f"wrong shape: {', '.join(wrong_shape[:4])}")
    if wrong_dtype:
        parts.append(f"not floating point: {', '.join(wrong_dtype[:4])}")
    return parts


def _refuse_non_finite(model: nn.Module, source: str) -> None:
    """A checkpoint of a diverged run (NaN or Inf weights) gives NaN images, which quantise to black pixels that
    would be scored: refused at load, naming the tensors."""
    bad = [(name, int((~torch.isfinite(t)).sum())) for name, t in model.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        listed = ", ".join(f"{name} ({count})" for name, count in bad[:4]) + (" ..." if len(bad) > 4 else "")
        raise CheckpointError(f"{source}: non-finite weights (NaN or Inf) in {len(bad)} tensor(s): {listed}; a "
                              "diverged or corrupt checkpoint gives no numbers")


# ---------------------------------------------------------------------------------------------------------
# Writing


def save_checkpoint(
    module_or_state: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    arch: str,
    config: dict,
    variant: str | None = None,
    stage: str | None = None,
    iteration: int | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``path`` (safetensors) and its JSON sidecar, each atomically; returns the weights path."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else dict(module_or_state)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    data = _canonical_header(save(tensors, metadata={"format": FORMAT, "arch": arch}))
    atomic_write_bytes(path, data)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "arch": arch, "config": config, "variant": variant,
        "stage": stage, "iteration": iteration, "sha256": hashlib.sha256(data).hexdigest(),
        "srbench_version": __version__, "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "extra": extra or {},
    }
    atomic_write_bytes(sidecar_path(path), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return path


def _canonical_header(data: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted. safetensors writes the metadata table in a
    hash order that changes from process to process, so equal weights would get different sha256 digests (the
    identity of a checkpoint in the results store); the header keeps its length, the tensors their offsets."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(text) > size:  # cannot happen for the same content; never write a file that would not load
        return data
    return data[:8] + text.ljust(size, b" ") + data[8 + size :]


# ---------------------------------------------------------------------------------------------------------
# Network interpolation


def interpolate(psnr_ckpt, gan_ckpt, alpha: float) -> dict[str, torch.Tensor]:
    """theta = (1 - alpha) theta_PSNR + alpha theta_GAN over floating tensors (Wang et al. 2018, Sec. 3.4).

    Both checkpoints must have the same keys and shapes. Non-floating tensors (BatchNorm counters) are
    taken from the GAN model.
    """
    if not 0.0 <= alpha <= 1.0:
        raise BadInputError(f"alpha must be in [0, 1], got {alpha}")
    a = load_state(psnr_ckpt).state
    b = load_state(gan_ckpt).state
    if set(a) != set(b):
        only_a = sorted(set(a) - set(b))[:5]
        only_b = sorted(set(b) - set(a))[:5]
        raise CheckpointError(f"cannot interpolate: different keys (only in PSNR: {only_a}; only in GAN: {only_b})")
    out = {}
    for key in a:
        if a[key].shape != b[key].shape:
            raise CheckpointError(
                f"cannot interpolate: {key} is {tuple(a[key].shape)} in PSNR, {tuple(b[key].shape)} in GAN")
        if a[key].is_floating_point():
            out[key] = (1.0 - alpha) * a[key] + alpha * b[key]
        else:
            out[key] = b[key].clone()
    return out


def alpha_label(alpha: float) -> str:
    """File-name label of an interpolation weight: the shortest text that round-trips (never rounded)."""
    return f"alpha{float(alpha)!r}"
