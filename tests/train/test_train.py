"""Training: configuration layering, the smoke preset learning, exact resume, NaN stop, DDP on CPU."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from safetensors.torch import load_file

from srbench.errors import BadInputError
from srbench.train import Trainer, TrainingDiverged, TrainingInterrupted, train
from srbench.train import losses as L
from srbench.train.config import resolve_config
from srbench.weightfiles import CheckpointError


def test_config_layers_and_rejects_unknown_keys(tmp_path):
    cfg = resolve_config("esrgan", "smoke")
    assert cfg.generator == "rrdb23-smoke" and cfg.loss.adversarial == "ragan"
    assert cfg.loss.perceptual_layer == "conv5_4" and cfg.loss.vgg_weights == "random"
    assert cfg.data.patch_size == 32 and cfg.data.batch_size == 4 and cfg.psnr.iters == 200
    paper = resolve_config("srgan", "paper")
    assert paper.generator == "srgan_srresnet16_bn" and paper.loss.perceptual_layer == "relu5_4"
    assert paper.loss.adversarial == "standard" and paper.gan.milestones == (50_000, 100_000, 200_000, 300_000)
    assert paper.psnr.lr == 2e-4 and paper.gan.lr == 1e-4 and paper.data.batch_size == 16
    toml = tmp_path / "mine.toml"
    toml.write_text('name = "mine"\ngenerator = "rrdb23"\n[generator_config]\nnum_block = 2\n'
                    '[loss]\nadversarial = "wgan-gp"\n[gan]\nlr = 5e-5\n')
    mine = resolve_config(str(toml), "smoke", ["gan.iters=7", "loss.fft_weight=0.1"])
    assert mine.name == "mine" and mine.generator_config == {"num_block": 2}
    assert mine.loss.adversarial == "wgan-gp" and mine.gan.lr == 5e-5 and mine.gan.iters == 7
    assert mine.loss.frequency == "fft-l1" and mine.loss.frequency_weight == 0.1  # the former fft_weight
    assert resolve_config("esrgan", "smoke").gan.iters == 40  # presets are never mutated by a resolution
    toml.write_text('generator = "rrdb23"\n[loss]\nadversarial_wieght = 1\n')
    with pytest.raises(BadInputError, match=r"unknown configuration key 'loss\.adversarial_wieght'"):
        resolve_config(str(toml))
    with pytest.raises(BadInputError, match="expected a number"):
        resolve_config("esrgan", sets=["gan.lr=fast"])
    with pytest.raises(BadInputError, match="multiple of 32"):
        resolve_config("esrgan", sets=["data.patch_size=48"])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["srgan", "esrgan"])
def test_smoke_preset_learns_and_runs_both_stages(tmp_path, variant):
    cfg = resolve_config(variant, "smoke")
    psnr = train(cfg, "psnr", tmp_path, progress=False)
    first, last = psnr.val_l1[0][1], psnr.val_l1[-1][1]
    assert last < 0.7 * first, psnr.val_l1
    meta = json.loads((tmp_path / "psnr/g_final.json").read_text())
    # The resolved config travels with the weights.
    assert meta["extra"]["train_config"] == json.loads(json.dumps(cfg.to_dict()))
    assert meta["iteration"] == 200 and meta["stage"] == "psnr"
    short = resolve_config(variant, "smoke", ["gan.iters=12"])
    gan = train(short, "gan", tmp_path, progress=False)
    assert gan.iterations == 12 and gan.final_ema.is_file()
    assert json.loads((tmp_path / "gan/g_final.json").read_text())["extra"]["init"].endswith("g_final.safetensors")
    header = (tmp_path / "gan/log.csv").read_text().splitlines()[0].split(",")
    assert {"l_pix", "l_percep", "l_g_adv", "l_d", "val_l1"} <= set(header)


def _tiny(adversarial="ragan", **stage):
    sets = [f"loss.adversarial={json.dumps(adversarial)}", "data.batch_size=2", "gan.iters=9", "psnr.iters=9",
            "gan.checkpoint_every=3", "psnr.checkpoint_every=3", "gan.val_every=100", "psnr.val_every=100"]
    sets += [f"{k}={v}" for k, v in stage.items()]
    return resolve_config("rrdb23-smoke", "smoke", sets)


def _interrupt_resume_and_compare(cfg, tmp_path) -> None:
    """Both stages straight through in ``a``; in ``b`` the GAN stage interrupted at iteration 5 and resumed: the
    final weights (and their EMA) equal bit for bit."""
    train(cfg, "psnr", tmp_path / "a", progress=False)
    train(cfg, "gan", tmp_path / "a", progress=False)
    init = str(tmp_path / "a/psnr/g_final.safetensors")

    def interrupt_at_5(iteration, logs):
        if iteration == 5:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match="interrupted at iteration 5"):
        Trainer(cfg, "gan", tmp_path / "b", init=init, progress=False).run(on_iteration=interrupt_at_5)
    state = torch.load(tmp_path / "b/gan/state.pt", weights_only=True)
    assert state["iteration"] == 5
    Trainer(cfg, "gan", tmp_path / "b", init=init, progress=False).run(resume=True)
    for name in ("g_final", "g_ema_final"):
        a = load_file(tmp_path / f"a/gan/{name}.safetensors")
        b = load_file(tmp_path / f"b/gan/{name}.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}:{key}"


@pytest.mark.slow
@pytest.mark.parametrize("adversarial", ["ragan", "ragp"])
def test_resume_after_interrupt_gives_identical_weights(tmp_path, adversarial):
    _interrupt_resume_and_compare(_tiny(adversarial), tmp_path)
    import csv

    def logged(run):
        with open(tmp_path / run / "gan/log.csv", newline="") as fh:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]

    assert logged("b") == logged("a")  # the losses logged across the interruption are the uninterrupted ones


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = _tiny()
    real = L.pixel_loss
    calls = {"n": 0}

    def poisoned(sr, hr, kind="l1"):
        calls["n"] += 1
        value = real(sr, hr, kind)
        return value * float("nan") if calls["n"] == 7 else value

    monkeypatch.setattr(L, "pixel_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="iteration 7: loss l_pix is nan"):
        train(cfg, "psnr", tmp_path, progress=False)
    state = torch.load(tmp_path / "psnr/state.pt", weights_only=True)
    assert state["iteration"] == 6
    assert torch.isfinite(torch.cat([v.flatten() for v in state["g"].values() if v.is_floating_point()])).all()


def test_gan_stage_needs_a_psnr_start(tmp_path):
    with pytest.raises(BadInputError, match="starts from a psnr checkpoint"):
        train(_tiny(), "gan", tmp_path, progress=False)


@pytest.mark.slow
def test_two_process_ddp_ends_with_identical_weights(tmp_path, ddp_train):
    """srgan has BatchNorm (buffers DDP only broadcasts at each forward) and the gan stage has a DDP-wrapped
    discriminator that is frozen during the generator step: both stages must end identical on both ranks."""
    common = ["--variant", "srgan", "--preset", "smoke", "--set", "data.batch_size=2"]
    for port, stage, iters in ((29533, "psnr", 4), (29534, "gan", 3)):
        digests = ddp_train(stage, iters, common, tmp_path, port)
        assert digests[0] == digests[1], stage
        meta = json.loads((tmp_path / stage / "g_final.json").read_text())
        assert meta["iteration"] == iters and meta["extra"]["world_size"] == 2  # batch_size is per rank
    # Each rank drew its own batch: resumed by one process, the run would be neither a 1- nor a 2-rank run's.
    (tmp_path / "gan").rename(tmp_path / "gan-elsewhere")  # the psnr stage is not extended under its gan stage
    one = resolve_config("srgan", "smoke", ["data.batch_size=2", "psnr.iters=6"])
    with pytest.raises(CheckpointError, match=r"trained on 2 rank\(s\) \(4 images per step\), resumed on 1 "
                                              r"\(2\).*torchrun --nproc_per_node 2"):
        Trainer(one, "psnr", tmp_path, device="cpu", progress=False).run(resume=True)


@pytest.mark.slow
def test_two_process_ddp_with_the_study_losses_ends_with_identical_weights(tmp_path, ddp_train):
    """The loss study's and the WGAN-GP project's choices under DDP: a relativistic centered loss with DISTS and the
    spectral loss, and WGAN-GP with the 8-convolution critic and the normalised FFT loss; both ranks end equal."""
    cases = {
        "study": ['loss.adversarial="rchinge"', 'loss.perceptual_backbone="dists"', 'loss.frequency="spectral"',
                  "loss.frequency_weight=0.3"],
        "wgan": ['loss.adversarial="wgan-gp"', 'gan.discriminator="vgg8-critic"', 'loss.frequency="fft"',
                 "loss.frequency_weight=0.5"],
    }
    port = 29550  # apart from the other DDP tests' ports
    for name, sets in cases.items():
        out = tmp_path / name
        common = ["--variant", "srgan-nobn", "--preset", "smoke", "--set", "data.batch_size=2",
                  *[arg for s in sets for arg in ("--set", s)]]
        for stage, iters in (("psnr", 2), ("gan", 3)):
            port += 1
            digests = ddp_train(stage, iters, common, out, port)
            assert digests[0] == digests[1], (name, stage)
        assert json.loads((out / "gan" / "g_final.json").read_text())["iteration"] == 3
        config = json.loads((out / "gan" / "config.json").read_text())
        chosen = {f"{section}.{key}={json.dumps(value)}" for section in ("loss", "gan")
                  for key, value in config[section].items()}
        assert set(sets) <= chosen, name  # trained as asked, not with defaults


def test_sigint_is_deferred_to_the_end_of_the_step(tmp_path):
    """A real SIGINT in the middle of an iteration saves the state after that iteration, never a half update."""
    import signal

    cfg = _tiny()
    trainer = Trainer(cfg, "psnr", tmp_path, progress=False)
    real_step = trainer.step

    def step_with_signal(lr, hr):
        if trainer.iteration == 3:  # during the 4th iteration
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(lr, hr)

    trainer.step = step_with_signal
    with pytest.raises(TrainingInterrupted, match="interrupted at iteration 4"):
        trainer.run()
    assert torch.load(tmp_path / "psnr/state.pt", weights_only=True)["iteration"] == 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.fixture(scope="module")
def psnr_start(tmp_path_factory):
    """A psnr-stage checkpoint of one iteration for the gan runs below (trained once)."""
    out = tmp_path_factory.mktemp("psnr-start")
    train(_tiny(**{"psnr.iters": 1}), "psnr", out, progress=False)
    return str(out / "psnr/g_final.safetensors")


def _gan_run(tmp_path, init: str, adversarial: str = "ragan", *sets: str) -> list[dict[str, str]]:
    import csv

    cfg = _tiny(adversarial, **{"gan.iters": 2, "gan.log_every": 1}, **dict(s.split("=", 1) for s in sets))
    result = Trainer(cfg, "gan", tmp_path, init=init, progress=False).run()
    assert result.iterations == 2
    weights, start = load_file(tmp_path / "gan/g_final.safetensors"), load_file(init)
    assert any(not torch.equal(weights[k], start[k]) for k in start)  # the generator was trained
    with open(tmp_path / "gan/log.csv", newline="") as fh:
        return [row for row in csv.DictReader(fh) if row.get("l_g")]


@pytest.mark.parametrize("adversarial", L.ADVERSARIAL_KINDS)
def test_every_adversarial_loss_trains_under_the_smoke_preset(tmp_path, psnr_start, adversarial):
    rows = _gan_run(tmp_path, psnr_start, adversarial)
    assert len(rows) == 2
    for row in rows:
        assert all(math.isfinite(float(row[k])) for k in ("l_g", "l_g_adv", "l_d", "d_real", "d_fake"))
        assert bool(row.get("l_d_gp")) == L.uses_gradient_penalty(adversarial)


@pytest.mark.parametrize(("backbone", "frequency", "logged"), [
    ("lpips", "fft", "l_fft_norm"), ("dists", "spectral", "l_spectral"), ("vgg", "fft-l1", "l_fft")])
def test_perceptual_backbones_and_frequency_losses_train_under_the_smoke_preset(tmp_path, psnr_start, backbone,
                                                                                frequency, logged):
    rows = _gan_run(tmp_path, psnr_start, "rcls", f"loss.perceptual_backbone={json.dumps(backbone)}",
                    f"loss.frequency={json.dumps(frequency)}", "loss.frequency_weight=0.3",
                    "loss.perceptual_criterion='l2'")
    assert all(math.isfinite(float(row[k])) for row in rows for k in ("l_percep", logged))


@pytest.mark.slow
def test_resume_with_the_study_losses_gives_identical_weights(tmp_path):
    """The existing resume test's pattern with a relativistic centered loss, DISTS and the spectral loss."""
    sets = {"loss.perceptual_backbone": '"dists"', "loss.frequency": '"spectral"', "loss.frequency_weight": "0.3"}
    _interrupt_resume_and_compare(_tiny("rchinge", **sets), tmp_path)
    header = (tmp_path / "b/gan/log.csv").read_text().splitlines()[0].split(",")
    assert {"l_percep", "l_spectral", "l_g_adv", "l_d"} <= set(header)
