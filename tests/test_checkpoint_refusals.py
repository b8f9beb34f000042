"""The checkpoint reader's refusals (issue item 10): sidecars of the wrong shape, files that are not checkpoints
at all (told apart from pickles that would run code), malformed state dicts; and a property-based test that
arbitrary bytes and arbitrary sidecar JSON either load or raise one CheckpointError/BadInputError line."""

from __future__ import annotations

import json
import os
import pickle
import random
import time
import zipfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srbench.archs import RRDBNet
from srbench.checkpoints import load_generator, save_checkpoint, sidecar_path
from srbench.errors import BadInputError
from srbench.weightfiles import CheckpointError, check_weights_file, read_weights

CONFIG = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small, valid srbench checkpoint and its sidecar's original text."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    path = save_checkpoint(RRDBNet(**CONFIG), folder / "g.safetensors", arch="rrdbnet", config=CONFIG,
                           variant="tiny", stage="psnr", iteration=3, extra={"train_config": {"seed": 1}})
    return path, sidecar_path(path).read_text()


def _copy(saved, tmp_path, sidecar: str | bytes) -> tuple:
    path, _ = saved
    target = tmp_path / "g.safetensors"
    target.write_bytes(path.read_bytes())
    side = sidecar_path(target)
    side.write_bytes(sidecar.encode() if isinstance(sidecar, str) else sidecar)
    return target, side


def _edit(saved, **changes) -> str:
    meta = json.loads(saved[1])
    for key, value in changes.items():
        if value is _DELETE:
            del meta[key]
        else:
            meta[key] = value
    return json.dumps(meta)


_DELETE = object()


def _refusal(path, kind=CheckpointError) -> str:
    with pytest.raises(kind) as err:
        load_generator(path)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_the_valid_sidecar_loads(saved, tmp_path):
    path, _ = _copy(saved, tmp_path, saved[1])
    info = load_generator(path).srbench_info
    assert info["config"] == CONFIG and info["variant"] == "tiny" and info["metadata"]["iteration"] == 3


# -- sidecars that parse but have the wrong shape: KeyError/AttributeError/TypeError before ---------------------

SIDECARS = {
    "empty-object": ("{}", "checkpoint sidecar has no 'arch'"),
    "list": ("[]", "checkpoint sidecar holds a JSON list, not an object"),
    "null": ("null", "checkpoint sidecar holds a JSON NoneType, not an object"),
    "string": ('"rrdbnet"', "checkpoint sidecar holds a JSON str, not an object"),
    "number": ("5", "checkpoint sidecar holds a JSON int, not an object"),
    "config-null": (lambda s: _edit(s, config=None), "config: expected a table of rrdbnet arguments, got None"),
    "config-list": (lambda s: _edit(s, config=[1, 2]), "config: expected a table of rrdbnet arguments"),
    "config-missing": (lambda s: _edit(s, config=_DELETE), "checkpoint sidecar has no 'config'"),
    "arch-unknown": (lambda s: _edit(s, arch="edsr"), "unknown arch 'edsr'; known: rrdbnet, srresnet"),
    "arch-number": (lambda s: _edit(s, arch=5), "unknown arch 5"),
    "arch-list": (lambda s: _edit(s, arch=["rrdbnet"]), "unknown arch ['rrdbnet']"),
    "config-unknown-key": (lambda s: _edit(s, config={**CONFIG, "depth": 3}), "config: unknown rrdbnet argument"),
    "config-negative": (lambda s: _edit(s, config={**CONFIG, "num_feat": -8}), "config.num_feat: -8 is out of"),
    "config-string": (lambda s: _edit(s, config={**CONFIG, "num_block": "1"}), "config.num_block: expected an "
                                                                                  "integer, got '1'"),
    "sha-number": (lambda s: _edit(s, sha256=5), "sha256 = 5 is not a str"),
    "sha-short": (lambda s: _edit(s, sha256="abc"), "sha256 'abc' is not 64 lowercase hex digits"),
    "variant-table": (lambda s: _edit(s, variant={"a": 1}), "variant = {'a': 1} is not a str"),
    "iteration-text": (lambda s: _edit(s, iteration="3"), "iteration = '3' is not a int"),
    "iteration-bool": (lambda s: _edit(s, iteration=True), "iteration = True is not a int"),
    "extra-list": (lambda s: _edit(s, extra=[]), "'extra' must be an object"),
    "train-config-number": (lambda s: _edit(s, extra={"train_config": 5}), "'extra' must be an object whose "
                                                                           "train_config is an object"),
    "format-other": (lambda s: _edit(s, format="diffusers"), "format 'diffusers' is not 'srbench-checkpoint'"),
    "not-utf8": (b'{"arch": "caf\xe9"}', "corrupt checkpoint sidecar (not UTF-8)"),
    "deep": ("[" * 100_000 + "]" * 100_000, "corrupt checkpoint sidecar"),
}


@pytest.mark.parametrize("case", list(SIDECARS))
def test_sidecar_of_the_wrong_shape_is_one_checkpoint_error_naming_it(saved, tmp_path, case):
    text, expected = SIDECARS[case]
    path, side = _copy(saved, tmp_path, text(saved) if callable(text) else text)
    msg = _refusal(path)
    assert msg.startswith(f"{side}: "), msg
    assert expected in msg, msg


def test_sidecar_config_that_disagrees_with_the_tensors_fails_fast(saved, tmp_path):
    # Built as asked, num_block=512 at num_feat=4096 would need about 1 TB; it is compared on the meta device.
    path, _ = _copy(saved, tmp_path, _edit(saved, config={"num_feat": 4096, "num_block": 512, "num_grow_ch": 4096}))
    start = time.perf_counter()
    msg = _refusal(path)
    assert time.perf_counter() - start < 5
    assert msg.endswith("(layout guessed: basicsr); 512 blocks in the configuration, 1 in the file"), msg
    path, _ = _copy(saved, tmp_path, _edit(saved, config={"num_feat": 4096, "num_block": 1, "num_grow_ch": 4096}))
    start = time.perf_counter()
    msg = _refusal(path)
    assert time.perf_counter() - start < 5
    assert "does not fit tiny {" in msg and "wrong shape: body.0.rdb1.conv1.bias (4,) vs (4096,)" in msg
    path, _ = _copy(saved, tmp_path, _edit(saved, config={**CONFIG, "num_block": 10**9}))
    assert "config.num_block: 1000000000 is out of range; allowed: an integer in [1, 512]" in _refusal(path)


# -- files that are not checkpoints, told apart from pickles that would run code -------------------------------


@pytest.mark.parametrize("seed", [0, 1, 3, 4, 5])  # each was reported as "would execute pickled code" before
def test_random_bytes_are_not_a_checkpoint(tmp_path, seed):
    path = tmp_path / "noise.pth"
    data = random.Random(seed).randbytes(256)
    path.write_bytes(data)
    msg = _refusal(path)
    assert msg == (f"{path}: not a checkpoint (neither a PyTorch zip archive nor a pickle; it starts with "
                   f"{data[:8]!r})")
    assert "pickled code" not in msg


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("empty.pth", b"", "not a checkpoint (neither a PyTorch zip archive nor a pickle; it starts with b'')"),
    ("text.pt", b"hello world\n", "not a checkpoint (neither a PyTorch zip archive nor a pickle"),
    ("plain.pth", pickle.dumps({"a": 1}, protocol=4), "not a checkpoint torch can read as plain tensors "
                                                      "(Unsupported operand 149)"),
    ("zip.pth", b"PK\x03\x04" + bytes(200), "corrupt or truncated checkpoint (PyTorch zip archive: "),
    ("proto2.pth", b"\x80\x02" + bytes(50), "corrupt or truncated checkpoint ("),
])
def test_non_checkpoints_say_what_they_are(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    msg = _refusal(path)
    assert msg.startswith(f"{path}: ") and expected in msg and "pickled code" not in msg, msg


def test_zip_archive_without_a_pickle(tmp_path):
    path = tmp_path / "a.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert _refusal(path) == f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl)"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pickled code ran",))


@pytest.mark.parametrize("how", ["torch-zip", "torch-legacy", "pickle-0", "pickle-2", "pickle-4", "pickle-5"])
def test_pickles_with_code_are_still_refused_and_name_what_they_import(tmp_path, how):
    path = tmp_path / "evil.pth"
    obj = {"conv_first.weight": torch.zeros(1), "hook": _Evil()}
    if how == "torch-zip":
        torch.save(obj, path)
    elif how == "torch-legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps({"hook": _Evil()}, protocol=int(how[-1])))
    msg = _refusal(path)
    assert msg.startswith(f"{path}: refused: loading it would execute pickled code (it imports posix.system")
    with pytest.raises(CheckpointError, match="refused: loading it would execute pickled code"):
        check_weights_file(path)  # the cheap check used for configuration values says the same


def test_check_weights_file_reads_no_tensors_and_accepts_state_dicts(tmp_path, saved):
    torch.save({"w": torch.zeros(3)}, tmp_path / "ok.pth")
    check_weights_file(tmp_path / "ok.pth")
    check_weights_file(saved[0])
    (tmp_path / "bad.safetensors").write_bytes(b"\x08" + bytes(20))
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        check_weights_file(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        check_weights_file(tmp_path / "missing.pth")


# -- state dicts of the wrong shape (AttributeError/IndexError before) ----------------------------------------


@pytest.mark.parametrize(("obj", "expected"), [
    ({1: torch.zeros(1), 2: torch.zeros(1)}, "no tensors found"),
    ({"conv_first.weight": torch.zeros(3), "body.0.rdb1.conv1.weight": torch.zeros(4, 8, 3, 3),
      "conv_last.weight": torch.zeros(3, 8, 3, 3)},
     "cannot infer the architecture: a tensor it needs has too few dimensions (layout guessed: basicsr)"),
    ({"conv_first.weight": torch.zeros(8, 3, 3, 3), "body.0.rdb1.conv1.weight": torch.zeros(4, 8, 3, 3)},
     "cannot infer the architecture: no conv_last.weight (layout guessed: basicsr)"),
    ({"params": {"conv_first.weight": torch.zeros(0, 3, 3, 3), "body.0.rdb1.conv1.weight": torch.zeros(4, 8, 3, 3),
                 "conv_last.weight": torch.zeros(3, 8, 3, 3)}}, "config.num_feat: 0 is out of range"),
    ({"conv_first.weight": torch.zeros(100_000, 3, 0, 0), "body.0.rdb1.conv1.weight": torch.zeros(4, 8, 3, 3),
      "conv_last.weight": torch.zeros(3, 8, 3, 3)}, "config.num_feat: 100000 is out of range"),
])
def test_malformed_state_dicts(tmp_path, obj, expected):
    path = tmp_path / "odd.pth"
    torch.save(obj, path)
    msg = _refusal(path)
    assert msg.startswith(str(path)) and expected in msg, msg


def test_read_weights_is_the_one_reader(tmp_path, saved):
    assert set(read_weights(saved[0])) == set(RRDBNet(**CONFIG).state_dict())
    (tmp_path / "noise.pth").write_bytes(bytes(range(7, 250)))
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        read_weights(tmp_path / "noise.pth")


# -- property-based: nothing but a model, a CheckpointError or a BadInputError ---------------------------------

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=4), max_leaves=12)
NEAR_SIDECAR = st.fixed_dictionaries(
    {"arch": st.sampled_from(["rrdbnet", "srresnet"]) | JSON,
     "config": st.fixed_dictionaries({}, optional={k: st.integers(-2, 40) | JSON for k in
                                                   ("num_feat", "num_block", "num_grow_ch", "scale", "num_in_ch")})
     | JSON},
    optional={"sha256": JSON, "variant": JSON, "stage": JSON, "iteration": JSON, "extra": JSON, "format": JSON},
)


def _loads_or_refuses(path) -> None:
    try:
        model = load_generator(path)
    except (CheckpointError, BadInputError) as exc:
        assert "\n" not in str(exc), str(exc)  # noqa: PT017 - the property: whatever is refused, in one line
        return
    assert isinstance(model, torch.nn.Module) and model.srbench_info["arch"] in ("rrdbnet", "srresnet")


@PROPERTY
@given(data=st.binary(max_size=2048) | st.sampled_from([b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95"]).flatmap(
    lambda head: st.binary(max_size=512).map(lambda tail: head + tail)),
       suffix=st.sampled_from([".pth", ".pt", ".safetensors", ".ckpt"]))
def test_property_arbitrary_bytes_never_raise_anything_else(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    _loads_or_refuses(path)


@PROPERTY
@given(meta=JSON | NEAR_SIDECAR)
def test_property_arbitrary_sidecars_never_raise_anything_else(saved, tmp_path, meta):
    path, _ = _copy(saved, tmp_path, json.dumps(meta))
    _loads_or_refuses(path)


_NAMES = ["conv_first.weight", "conv_first.bias", "body.0.rdb1.conv1.weight", "body.0.rdb1.conv1.bias",
          "conv_last.weight", "conv_body.weight", "act_first.weight", "upsample.0.weight", "bn_body.weight",
          "body.1.conv1.weight", "RRDB_trunk.0.RDB1.conv1.weight", "model.1.sub.0.RDB1.conv1.0.weight",
          "params_ema", "module.conv_first.weight"]


@PROPERTY
@given(state=st.dictionaries(st.sampled_from(_NAMES) | st.text(max_size=12),
                             st.lists(st.integers(0, 9), max_size=4), max_size=8),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.int64, torch.uint8, torch.bool]),
       suffix=st.sampled_from([".pth", ".safetensors"]))
def test_property_arbitrary_tensor_dicts_never_raise_anything_else(tmp_path, state, dtype, suffix):
    tensors = {k: torch.zeros(shape, dtype=dtype) for k, shape in state.items()}
    path = tmp_path / f"t{suffix}"
    if suffix == ".pth":
        torch.save(tensors, path)
    else:
        from safetensors.torch import save_file

        save_file(tensors, str(path))
    _loads_or_refuses(path)
