"""Inference: tiling equals untiled output, bounded memory, odd inputs, checkpoints in evaluate."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from srbench.archs import RRDBNet, get_generator
from srbench.checkpoints import save_checkpoint
from srbench.cli import main
from srbench.errors import BadInputError
from srbench.evaluation import evaluate_model
from srbench.images import read_image
from srbench.infer import Runner
from srbench.matlab import rgb2gray


@pytest.fixture(scope="module")
def smoke_net():
    torch.manual_seed(0)
    net = get_generator("rrdb23-smoke").build().eval()
    with torch.no_grad():  # larger weights than the 0.1-scaled init, so context really matters
        for p in net.parameters():
            p.mul_(3.0)
    return net


def _receptive_radius(net, size=96):
    """LR pixels an output pixel depends on, measured by a gradient (so the test's pad is justified)."""
    x = torch.rand(1, 3, size, size, requires_grad=True)
    net(x)[0, :, 2 * size, 2 * size].sum().backward()
    ys, xs = torch.nonzero(x.grad.abs().sum(1)[0], as_tuple=True)
    return int(max(size // 2 - ys.min(), ys.max() - size // 2, size // 2 - xs.min(), xs.max() - size // 2))


def test_tiled_equals_untiled_when_pad_covers_receptive_field(smoke_net):
    radius = _receptive_radius(smoke_net)
    x = torch.rand(1, 3, 70, 53, generator=torch.Generator().manual_seed(3))
    full = Runner.create(smoke_net, device="cpu").upscale_tensor(x)
    tiled = Runner.create(smoke_net, device="cpu", tile=24, tile_pad=radius + 1).upscale_tensor(x)
    assert full.shape == (1, 3, 280, 212)
    assert (full - tiled).abs().max().item() < 1e-5
    default = Runner.create(smoke_net, device="cpu", tile=24).upscale_tensor(x)
    mse = ((full.clamp(0, 1) - default.clamp(0, 1)) ** 2).mean().item()
    assert mse == 0 or 10 * np.log10(1 / mse) > 50


def test_tiling_with_pixel_unshuffle_generators():
    torch.manual_seed(1)
    net = RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4).eval()
    x = torch.rand(1, 3, 41, 30)
    full = Runner.create(net, device="cpu").upscale_tensor(x)
    tiled = Runner.create(net, device="cpu", tile=16, tile_pad=40).upscale_tensor(x)
    assert full.shape == (1, 3, 82, 60)
    assert (full - tiled).abs().max().item() < 1e-5


@pytest.mark.slow
def test_tiled_2048_output_keeps_peak_memory_bounded():
    script = textwrap.dedent("""
        import resource, numpy as np, torch
        from srbench.archs import get_generator
        from srbench.infer import Runner
        torch.manual_seed(0)
        runner = Runner.create(get_generator("rrdb23-smoke").build(), device="cpu", tile=128)
        img = np.random.default_rng(0).integers(0, 256, (512, 512, 3)).astype(np.uint8)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = runner.upscale(img)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(out.shape, (after - before) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out[:3] == ["(2048,", "2048,", "3)"]
    # Untiled, one 64x2048x2048 float activation alone is 1 GiB; tiled stays far below.
    assert int(out[3]) < 450, f"peak RSS grew by {out[3]} MiB"


def test_infer_command_handles_gray_alpha_and_16_bit(smoke_net, tmp_path):
    ckpt = save_checkpoint(smoke_net, tmp_path / "net.safetensors", arch="rrdbnet",
                           config=dict(get_generator("rrdb23-smoke").config), variant="rrdb23-smoke")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 18, 3)).astype(np.uint8)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(rgb).save(inputs / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(inputs / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((20, 18), 200, np.uint8)])).save(inputs / "rgba.png")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(inputs / "deep.png")
    res = CliRunner().invoke(main, ["infer", str(ckpt), str(inputs), "--out", str(tmp_path / "out"),
                                    "--tile", "8", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    assert read_image(out / "rgb.png").shape == (80, 72, 3)
    assert read_image(out / "gray.png").shape == (80, 72)
    with Image.open(out / "rgba.png") as im:
        assert im.mode == "RGBA" and im.size == (72, 80)
        assert (np.asarray(im)[..., 3] == 200).all()
    assert "deep.png: gray 16-bit image read as 8-bit exactly" in res.stderr
    runner = Runner.create(smoke_net, device="cpu")
    np.testing.assert_array_equal(read_image(out / "gray.png"),
                                  rgb2gray(runner.upscale(np.repeat(rgb[..., :1], 3, axis=2))))
    np.testing.assert_array_equal(read_image(out / "deep.png"),
                                  rgb2gray(runner.upscale(np.repeat(rgb[..., 1:2], 3, axis=2))))


def test_evaluate_accepts_a_checkpoint_and_checks_its_scale(smoke_net, tmp_path):
    from srbench import datasets as D
    from srbench.matlab import rgb2y, shave
    from srbench.metrics import psnr

    ckpt = save_checkpoint(smoke_net, tmp_path / "net.safetensors", arch="rrdbnet",
                           config=dict(get_generator("rrdb23-smoke").config), variant="rrdb23-smoke")
    (res,) = evaluate_model(str(ckpt), ["skimage"], scale=4)
    assert res.model == "rrdb23-smoke" and res.n_images == 5
    assert res.provenance["model"]["sha256"] and res.provenance["model"]["layout"] == "basicsr"
    ds = D.resolve("skimage")
    pair = ds.load_pair(ds.item("chelsea"), 4)
    sr = Runner.create(smoke_net, device="cpu").upscale(pair.lr)
    expected = psnr(shave(rgb2y(sr.astype(float)), 4), shave(rgb2y(pair.hr.astype(float)), 4))
    assert next(r for r in res.per_image if r["image"] == "chelsea")["psnr_y"] == expected
    with pytest.raises(BadInputError, match="is a x4 model, evaluation asks x2"):
        list(evaluate_model(str(ckpt), ["skimage"], scale=2))
