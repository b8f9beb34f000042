"""Generators a user names: what a checkpoint must be to give numbers (finite weights, floating point, RGB), what
a published checkpoint's name stands for (its pinned file, in the weights folder asked for), names that are also
files or folders, models that would go by one name, and inputs infer must not overwrite or fail on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from srbench.archs import RRDBNet, SRResNet
from srbench.checkpoints import infer_config, load_generator, save_checkpoint
from srbench.cli import main
from srbench.errors import BadInputError
from srbench.images import write_png
from srbench.infer import Runner, classify_generator, resolve_generator
from srbench.sources import FolderSource, open_source, source_name
from srbench.weightfiles import CheckpointError
from srbench.weights import UnpinnedWeightsError, allowing

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def _rrdb(**config) -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(**{**TINY, **config}).eval()


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_checkpoint_with_a_nan_or_infinite_weight_is_refused_naming_the_tensor(tmp_path):
    for bad in (float("nan"), float("inf")):
        state = _rrdb().state_dict()
        state["conv_first.bias"][0] = bad
        path = tmp_path / "diverged.pth"
        torch.save(state, path)
        with pytest.raises(CheckpointError, match=r"diverged.pth: non-finite weights .* conv_first.bias \(1\)"):
            load_generator(path)


def test_a_nan_output_is_refused_never_clamped_into_black_pixels():
    class Diverged(torch.nn.Module):
        scale = 2

        def forward(self, x):
            out = torch.nn.functional.interpolate(x, scale_factor=2)
            out[..., 0, 0] = float("nan")
            return out

    runner = Runner.create(Diverged(), device="cpu")
    with pytest.raises(BadInputError, match=r"holds 3 non-finite value\(s\)"):
        runner.upscale(np.zeros((4, 4, 3), np.uint8))


def test_integer_weights_are_refused_and_a_missing_batchnorm_counter_is_not(tmp_path):
    state = _rrdb().state_dict()
    state["conv_first.weight"] = state["conv_first.weight"].round().int()
    torch.save(state, tmp_path / "int.pth")
    with pytest.raises(CheckpointError, match=r"not floating point: conv_first.weight torch.int32"):
        load_generator(tmp_path / "int.pth")
    torch.manual_seed(0)
    bn = SRResNet(num_feat=8, num_block=1, norm="batch").eval()
    old = {k: v for k, v in bn.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "pre041.pth")
    loaded = load_generator(tmp_path / "pre041.pth")
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x), bn(x))


def test_gray_networks_are_read_at_their_scale_and_refused_for_rgb_inference(tmp_path):
    assert infer_config(_rrdb(num_in_ch=1, num_out_ch=1, scale=2).state_dict())[1]["scale"] == 2
    assert infer_config(_rrdb(num_in_ch=1, num_out_ch=1, scale=1).state_dict())[1]["scale"] == 1
    assert infer_config(_rrdb(num_in_ch=1, num_out_ch=1).state_dict())[1]["num_in_ch"] == 1
    rgb_x2 = infer_config(_rrdb(scale=2).state_dict())[1]
    assert (rgb_x2["num_in_ch"], rgb_x2["scale"]) == (3, 2)
    torch.save(_rrdb(num_in_ch=1, num_out_ch=1, scale=2).state_dict(), tmp_path / "gray_x2.pth")
    with pytest.raises(BadInputError, match=r"gray_x2\.pth: a network of 1 input and 1 output channel"):
        Runner.create(load_generator(tmp_path / "gray_x2.pth"), device="cpu")


@pytest.mark.parametrize("scale", [1, 2])
def test_pixel_unshuffle_networks_upscale_images_of_one_or_two_pixels(scale):
    runner = Runner.create(_rrdb(scale=scale), device="cpu")
    for shape in ((1, 1, 3), (2, 1, 3), (1, 5, 3), (3, 2)):
        img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        out = runner.upscale(img)
        assert out.shape[:2] == (shape[0] * scale, shape[1] * scale) and out.ndim == img.ndim


def test_a_published_checkpoint_is_its_pinned_file_in_the_weights_folder_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "default"))
    folder = tmp_path / "mine"
    folder.mkdir()
    fake = folder / "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth"  # esrgan-official's file name, other bytes
    torch.save(_rrdb().state_dict(), fake)
    with pytest.raises(UnpinnedWeightsError, match=r"ESRGAN_SRx4_DF2KOST_official-ff704c30.pth: sha256 .* not the "
                                                   r"pinned ff704c30"):
        resolve_generator("esrgan-official", weights_dir=folder)
    with allowing(), pytest.raises(CheckpointError, match="does not fit rrdb23"):  # opted in: the file is read
        resolve_generator("esrgan-official", weights_dir=folder)
    res = _cli("evaluate", "--model", "esrgan-official", "--dataset", "skimage", "--weights-dir", folder)
    assert res.exit_code == 1 and "not the pinned ff704c30" in res.output and str(folder) in res.output
    res = _cli("infer", "esrgan-official", fake, "--out", tmp_path / "out", "--weights-dir", tmp_path / "none")
    assert res.exit_code == 1 and f"it goes to {tmp_path / 'none'}" in res.output


def test_a_name_that_is_also_a_folder_here_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rrdb23-smoke").mkdir()
    write_png(tmp_path / "rrdb23-smoke" / "baby.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(BadInputError, match=r"'rrdb23-smoke' is a variant and also a folder here: pass "
                                            r"'./rrdb23-smoke' for the folder"):
        classify_generator("rrdb23-smoke")
    with pytest.raises(BadInputError, match="also a folder here"):
        open_source("rrdb23-smoke")
    assert isinstance(open_source("./rrdb23-smoke"), FolderSource)
    assert source_name("./rrdb23-smoke") == "rrdb23-smoke"


def test_two_checkpoints_of_one_variant_need_a_name_each(tmp_path):
    for run in ("psnr", "gan"):
        (tmp_path / run).mkdir()
        save_checkpoint(_rrdb(), tmp_path / run / "g_final.safetensors", arch="rrdbnet", config=TINY,
                        variant="tiny", stage=run)
    a, b = tmp_path / "psnr" / "g_final.safetensors", tmp_path / "gan" / "g_final.safetensors"
    assert source_name(str(a)) == source_name(str(b)) == "tiny"  # as GeneratorSource names them
    assert open_source(str(a)).name == "tiny"
    store = tmp_path / "s.sqlite"
    res = _cli("evaluate", "--model", a, "--model", b, "--dataset", "skimage", "--metrics", "psnr_y",
               "--store", store)
    assert res.exit_code == 1 and "would both be named 'tiny'" in res.output and not store.exists()
    import srbench

    with pytest.raises(BadInputError, match="would both be named 'tiny'"):
        srbench.evaluate([a, b], "skimage", metrics="psnr_y")
    res = _cli("evaluate", "--model", a, "--model", b, "--name", "psnr", "--name", "gan", "--dataset", "skimage",
               "--metrics", "psnr_y", "--store", store)
    assert res.exit_code == 0, res.output
    assert {line.split()[0] for line in res.stdout.splitlines()[1:] if line.strip()} >= {"psnr", "gan"}


def test_infer_never_writes_into_a_folder_it_reads(tmp_path):
    torch.save(_rrdb().state_dict(), tmp_path / "g.pth")
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_png(inputs / "a.png", np.full((5, 4, 3), 7, np.uint8))
    before = (inputs / "a.png").read_bytes()
    for given in (inputs, inputs / "a.png"):
        for out in (inputs, f"{inputs}/", inputs / "." ):
            res = _cli("infer", tmp_path / "g.pth", given, "--out", out)
            assert res.exit_code == 1 and "outputs would replace or mix with the inputs" in res.output
    assert (inputs / "a.png").read_bytes() == before and sorted(p.name for p in inputs.iterdir()) == ["a.png"]
    res = _cli("infer", tmp_path / "g.pth", inputs, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output


def test_export_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import pandas as pd

    _cli("evaluate", "--model", "bicubic", "--dataset", "skimage", "--metrics", "psnr_y", "--store",
         tmp_path / "s.sqlite")

    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_engine)
    res = _cli("export", "--store", tmp_path / "s.sqlite", "--format", "parquet", "--out", tmp_path / "r.parquet")
    assert res.exit_code == 1 and 'pip install "srbench[parquet]"' in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "r.parquet").exists()


def test_infer_takes_a_variant_beside_a_folder_of_its_name(tmp_path, monkeypatch):
    # infer takes no folder of SR images, so --out rrdb23-smoke (made by the first run) is no clash there
    from srbench.archs import get_generator

    models = tmp_path / "models"
    models.mkdir()
    variant = get_generator("rrdb23-smoke")
    save_checkpoint(variant.build(), models / "rrdb23-smoke.safetensors", arch=variant.arch,
                    config=dict(variant.config), variant=variant.name)
    monkeypatch.setenv("SRBENCH_MODELS", str(models))
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "in.png", np.zeros((6, 5, 3), np.uint8))
    for _ in range(2):
        res = _cli("infer", "rrdb23-smoke", "in.png", "--out", "rrdb23-smoke")
        assert res.exit_code == 0, res.output
    assert (tmp_path / "rrdb23-smoke" / "in.png").is_file()


def test_a_folder_given_with_a_pattern_is_a_folder_whatever_its_name(tmp_path, monkeypatch):
    import srbench
    from srbench.datasets import resolve

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rrdb23-smoke").mkdir()
    for it in resolve("skimage").items:
        write_png(tmp_path / "rrdb23-smoke" / f"SR_{it.name}.png", it.read_hr()[: it.read_hr().shape[0] // 4 * 4,
                                                                                 : it.read_hr().shape[1] // 4 * 4])
    res = srbench.evaluate("rrdb23-smoke", "skimage", metrics="psnr_y", sr_pattern="SR_{name}", workers=1)
    assert list(res.summary["model"]) == ["rrdb23-smoke"] and list(res.summary["value"]) == [float("inf")]
    assert source_name("rrdb23-smoke", "SR_{name}") == "rrdb23-smoke"
