"""Every checkpoint layout loads to the same network, bit for bit; bad checkpoints fail clearly."""

from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner

from srbench.archs import RRDBNet, SRResNet
from srbench.checkpoints import (
    alpha_label,
    interpolate,
    load_generator,
    load_state,
    save_checkpoint,
    sidecar_path,
)
from srbench.cli import main
from srbench.weightfiles import CheckpointError

CONFIG = {"num_feat": 16, "num_block": 3, "num_grow_ch": 8}


@pytest.fixture(scope="module")
def net() -> RRDBNet:
    torch.manual_seed(0)
    model = RRDBNet(**CONFIG).eval()
    with torch.no_grad():  # make every tensor distinctive, biases included
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def _official(state):
    """The ESRGAN repository's names, written out independently of srbench's converter."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", k)
        k = k.replace("conv_body.", "trunk_conv.").replace("conv_up1.", "upconv1.").replace("conv_up2.", "upconv2.")
        k = k.replace("conv_hr.", "HRconv.")
        out[k] = v
    return out


def _sequential(state, num_block):
    names = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_block}", "conv_up1": "model.3",
             "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
    out = {}
    for k, v in state.items():
        m = re.match(r"^body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$", k)
        if m:
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
        else:
            layer, param = k.rsplit(".", 1)
            out[f"{names[layer]}.{param}"] = v
    return out


def _layouts(net):
    state = net.state_dict()
    noise = {k: v + 1 for k, v in state.items()}
    return {
        "official": (_official(state), "official"),
        "sequential": (_sequential(state, CONFIG["num_block"]), "sequential"),
        "basicsr-ema": ({"params": noise, "params_ema": state}, "basicsr"),
        "basicsr-params": ({"params": state}, "basicsr"),
        "mmagic": ({"state_dict": {**{f"generator.{k}": v for k, v in state.items()},
                                   **{f"discriminator.{k}": v for k, v in state.items()}}}, "basicsr"),
        "ddp": ({f"module.{k}": v for k, v in state.items()}, "basicsr"),
    }


@pytest.mark.parametrize("layout", ["official", "sequential", "basicsr-ema", "basicsr-params", "mmagic", "ddp"])
def test_foreign_layouts_load_bitwise(net, tmp_path, layout):
    obj, expected_layout = _layouts(net)[layout]
    path = tmp_path / f"{layout}.pth"
    torch.save(obj, path)
    loaded = load_generator(path)
    assert loaded.srbench_info["layout"] == expected_layout
    assert loaded.srbench_info["config"]["num_block"] == 3
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_own_format_roundtrip_with_sidecar(net, tmp_path):
    path = save_checkpoint(net, tmp_path / "g", arch="rrdbnet", config=CONFIG, stage="psnr", iteration=1000)
    assert path.name == "g.safetensors"
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["stage"] == "psnr" and meta["iteration"] == 1000 and meta["config"] == CONFIG
    assert len(meta["sha256"]) == 64
    loaded = load_generator(path)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.safetensors"]


def test_sidecar_hash_mismatch_is_refused(net, tmp_path):
    path = save_checkpoint(net, tmp_path / "g.safetensors", arch="rrdbnet", config=CONFIG)
    side = sidecar_path(path)
    meta = json.loads(side.read_text())
    meta["sha256"] = "0" * 64
    side.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="differs from its sidecar"):
        load_generator(path)


def test_truncated_file(net, tmp_path):
    torch.save(net.state_dict(), tmp_path / "full.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "full.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cut\.pth: corrupt or truncated"):
        load_generator(tmp_path / "cut.pth")
    path = save_checkpoint(net, tmp_path / "g.safetensors", arch="rrdbnet", config=CONFIG)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        load_generator(path, "rrdbnet")


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_refused(tmp_path):
    torch.save({"conv_first.weight": torch.zeros(1), "hook": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused: loading it would execute pickled code"):
        load_generator(tmp_path / "evil.pth")


def test_other_architecture_names_missing_and_unexpected_keys(tmp_path):
    torch.save(SRResNet(num_feat=16, num_block=2).state_dict(), tmp_path / "srresnet.pth")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "srresnet.pth", "rrdb23-smoke")
    msg = str(err.value)
    assert "layout guessed: srbench-srresnet" in msg
    assert "missing" in msg and "body.0.rdb1.conv1.weight" in msg
    assert "unexpected" in msg and "act_first.weight" in msg
    with pytest.raises(CheckpointError, match="holds a srresnet"):
        load_generator(tmp_path / "srresnet.pth", "rrdbnet")


def test_wrong_width_is_a_shape_error(net, tmp_path):
    torch.save(net.state_dict(), tmp_path / "g.pth")
    with pytest.raises(CheckpointError, match=r"does not fit rrdb23.*missing"):
        load_generator(tmp_path / "g.pth", "rrdb23")


def test_interpolation_endpoints_and_midpoint(net, tmp_path):
    torch.manual_seed(5)
    other = RRDBNet(**CONFIG).state_dict()
    a, b = net.state_dict(), other
    for key in a:
        assert torch.equal(interpolate(a, b, 0.0)[key], a[key])
        assert torch.equal(interpolate(a, b, 1.0)[key], b[key])
        assert torch.equal(interpolate(a, b, 0.5)[key], (a[key] + b[key]) / 2)
    with pytest.raises(CheckpointError, match="different keys"):
        interpolate(a, {k: v for k, v in b.items() if "conv_hr" not in k}, 0.3)
    with pytest.raises(CheckpointError, match=r"conv_first.weight is \(16, 3, 3, 3\) in PSNR"):
        interpolate(a, {**b, "conv_first.weight": torch.zeros(16, 3, 1, 1)}, 0.3)


def test_interp_command_names_outputs_by_full_alpha(net, tmp_path, monkeypatch):
    torch.save(net.state_dict(), tmp_path / "psnr.pth")
    torch.manual_seed(7)
    torch.save({"params_ema": RRDBNet(**CONFIG).state_dict()}, tmp_path / "gan.pth")
    res = CliRunner().invoke(main, ["interp", str(tmp_path / "psnr.pth"), str(tmp_path / "gan.pth"),
                                    "--alpha", "0,0.8,0.85,1", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "out").glob("*.safetensors"))
    assert names == ["alpha0.0.safetensors", "alpha0.8.safetensors", "alpha0.85.safetensors", "alpha1.0.safetensors"]
    mid = load_state(tmp_path / "out/alpha0.85.safetensors")
    assert mid.metadata["extra"]["alpha"] == 0.85 and mid.metadata["stage"] == "interp"
    assert alpha_label(0.1 + 0.2) == "alpha0.30000000000000004"  # never rounded into a clash with 0.3
    # --out=~/x arrives unexpanded (the shell expands no ~ after '='): it was a folder named '~' in the working one
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    res = CliRunner().invoke(main, ["interp", str(tmp_path / "psnr.pth"), str(tmp_path / "gan.pth"), "--alpha",
                                    "0.5", "--out=~/io"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "home/io/alpha0.5.safetensors").is_file()


def test_interp_and_init_take_one_network_however_its_configuration_is_written(net, tmp_path):
    # A review: a copy without its sidecar (configuration inferred from the tensors, every argument named) and the
    # trained file (its run's arguments only) were "not one architecture and configuration"; so were norm "none"
    # (TOML's spelling) and None
    from srbench.archs import same_generator

    save_checkpoint(net, tmp_path / "psnr.safetensors", arch="rrdbnet", config=dict(CONFIG))
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare/gan.safetensors").write_bytes((tmp_path / "psnr.safetensors").read_bytes())
    res = CliRunner().invoke(main, ["interp", str(tmp_path / "psnr.safetensors"),
                                    str(tmp_path / "bare/gan.safetensors"), "--alpha", "0.5", "--out",
                                    str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert same_generator("srresnet", {"norm": "none"}, {"norm": None})
    assert same_generator("rrdbnet", {"num_block": 23}, {})  # the default
    assert not same_generator("rrdbnet", {"num_block": 3}, {})


@pytest.mark.parametrize("case", ["alpha 1.5", "alpha nan", "other architecture"])
def test_interp_refuses_before_writing_anything(net, tmp_path, case):
    # A refusal after the first checkpoints were written left a partial OUT that looked like a finished run;
    # the alphas are checked before anything, the networks before the first checkpoint is written.
    torch.save(net.state_dict(), tmp_path / "psnr.pth")
    gan = net.state_dict()
    if case == "other architecture":
        gan = {k: v for k, v in gan.items() if "conv_hr" not in k}
    torch.save(gan, tmp_path / "gan.pth")
    alphas = {"alpha 1.5": "0,1.5", "alpha nan": "0,nan"}.get(case, "0,0.5")
    res = CliRunner().invoke(main, ["interp", str(tmp_path / "psnr.pth"), str(tmp_path / "gan.pth"),
                                    "--alpha", alphas, "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert ("[0, 1]" in res.output) == case.startswith("alpha")
    out = tmp_path / "out"
    assert out.exists() == (case == "other architecture")  # --out is checked before the networks are loaded
    assert not out.exists() or not any(out.iterdir())


def test_interp_refuses_two_networks_of_equal_shapes_but_other_configurations(tmp_path):
    # an x2 RRDBNet and an x4 one with 12 input channels have the same tensors' shapes: blended, saved as x4
    from srbench.archs import build_generator
    from srbench.checkpoints import save_checkpoint

    x2 = {"num_block": 1, "num_feat": 8, "num_grow_ch": 4, "scale": 2}
    x4 = {"num_block": 1, "num_feat": 8, "num_grow_ch": 4, "scale": 4, "num_in_ch": 12}
    save_checkpoint(build_generator("rrdbnet", x2), tmp_path / "x2.safetensors", arch="rrdbnet", config=x2)
    save_checkpoint(build_generator("rrdbnet", x4), tmp_path / "x4.safetensors", arch="rrdbnet", config=x4)
    res = CliRunner().invoke(main, ["interp", str(tmp_path / "x2.safetensors"), str(tmp_path / "x4.safetensors"),
                                    "--alpha", "0.5", "--out", str(tmp_path / "out")])
    assert res.exit_code == 1 and "they are not one architecture and configuration" in res.output
    assert not any((tmp_path / "out").iterdir())


def test_interp_never_replaces_an_interpolation_of_other_checkpoints(net, tmp_path):
    # the same --out with another psnr checkpoint replaced alpha0.5 without a word, beside the first pair's alpha0
    torch.save(net.state_dict(), tmp_path / "psnr.pth")
    torch.manual_seed(7)
    torch.save(RRDBNet(**CONFIG).state_dict(), tmp_path / "gan.pth")
    torch.save(RRDBNet(**CONFIG).state_dict(), tmp_path / "other.pth")

    def interp(psnr: str, alphas: str):
        return CliRunner().invoke(main, ["interp", str(tmp_path / psnr), str(tmp_path / "gan.pth"), "--alpha", alphas,
                                         "--out", str(tmp_path / "out")])

    assert interp("psnr.pth", "0,0.5").exit_code == 0
    made = (tmp_path / "out/alpha0.5.safetensors").read_bytes()
    extra = load_state(tmp_path / "out/alpha0.5.safetensors").metadata["extra"]
    assert len(extra["psnr_sha256"]) == 64 and len(extra["gan_sha256"]) == 64  # what it was made of, by content
    assert interp("psnr.pth", "0.5").exit_code == 0  # the same inputs again: the same file
    assert (tmp_path / "out/alpha0.5.safetensors").read_bytes() == made
    refused = interp("other.pth", "0.5")
    assert refused.exit_code == 1 and "already holds an interpolation of other checkpoints" in refused.output
    assert (tmp_path / "out/alpha0.5.safetensors").read_bytes() == made


def test_models_inspect_and_list(net, tmp_path):
    torch.save({"params_ema": net.state_dict()}, tmp_path / "g.pth")
    res = CliRunner().invoke(main, ["models", "inspect", str(tmp_path / "g.pth")])
    assert res.exit_code == 0, res.output
    assert "layout:     basicsr (BasicSR container, using 'params_ema')" in res.stdout
    assert f"parameters: {sum(p.numel() for p in net.parameters()):,d}" in res.stdout
    res = CliRunner().invoke(main, ["models", "list"])
    assert "rrdb23 " in res.stdout and "16,697,987" in res.stdout and "RRDB_ESRGAN_x4.pth" in res.stdout


def test_x2_rrdbnet_roundtrip_keeps_its_scale(tmp_path):
    torch.manual_seed(0)
    net = RRDBNet(scale=2, **CONFIG)
    torch.save(net.state_dict(), tmp_path / "x2.pth")
    assert load_generator(tmp_path / "x2.pth").srbench_info["config"]["scale"] == 2
    path = save_checkpoint(net, tmp_path / "x2", arch="rrdbnet", config={**CONFIG, "scale": 2})
    info = load_generator(path, "rrdbnet").srbench_info  # an architecture name still uses the sidecar
    assert info["config"] == {**CONFIG, "scale": 2}


def test_saved_checkpoints_are_byte_identical_across_processes(tmp_path):
    """The checkpoint's sha256 is its identity in the results store: equal weights, equal digest, whatever
    order safetensors' hash map gives its metadata in a process."""
    import subprocess
    import sys

    code = ("import sys, torch; from srbench.checkpoints import save_checkpoint\n"
            "torch.manual_seed(0)\n"
            "state = {'conv_first.weight': torch.randn(4, 3, 3, 3), 'conv_first.bias': torch.zeros(4)}\n"
            "save_checkpoint(state, sys.argv[1], arch='rrdbnet', config={})\n")
    digests = set()
    for i in range(6):  # safetensors alone gives two header orders at random: 6 equal by chance is 1 in 32
        path = tmp_path / f"c{i}.safetensors"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120,
                       env={**__import__("os").environ, "PYTHONHASHSEED": str(i)})
        digests.add(path.read_bytes())
    assert len(digests) == 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "c0.safetensors"), "pt") as fh:
        assert fh.metadata() == {"format": "srbench-checkpoint", "arch": "rrdbnet"}
        assert torch.equal(fh.get_tensor("conv_first.bias"), torch.zeros(4))
