"""Training configs and suites: every field is checked at load time against the one table of what it accepts;
a bad value is one BadInputError line naming the key, the value and what is allowed, never a raw exception
and never a run that trains nonsense. Includes property-based tests of the TOML/--set loader."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srbench.ablate import load_suite, parse_suite, resolve_suite_configs, shipped_suites
from srbench.archs import GENERATORS
from srbench.errors import BadInputError
from srbench.train.config import (
    PRESETS,
    RECIPES,
    SAFE_NAME,
    DataConfig,
    LossConfig,
    StageConfig,
    TrainConfig,
    resolve_config,
)


def _refused(sets: list[str], variant: str = "esrgan", preset: str = "smoke", **kw) -> str:
    with pytest.raises(BadInputError) as err:
        resolve_config(variant, preset, sets, **kw)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# -- issue items 6 and 9: each value named in the issue, and its neighbours -----------------------------------

BAD_SETS = [
    # (assignment, the dotted key and the allowed range the message must name)
    ("psnr.gamma=-1", r"psnr\.gamma: -1\.0 is out of range; allowed: a finite number in \(0, 1\]"),
    ("gan.gamma=0", r"gan\.gamma: 0\.0 is out of range; allowed: a finite number in \(0, 1\]"),
    ("gan.gamma=1.5", r"gan\.gamma: 1\.5 is out of range"),
    ("gan.ema_decay=5", r"gan\.ema_decay: 5\.0 is out of range; allowed: a finite number in \[0, 1\]"),
    ("gan.ema_decay=-0.1", r"gan\.ema_decay: -0\.1 is out of range"),
    ("psnr.lr=-1", r"psnr\.lr: -1\.0 is out of range; allowed: a finite number > 0"),
    ("psnr.lr=0", r"psnr\.lr: 0\.0 is out of range"),
    ("psnr.lr=nan", r"psnr\.lr: nan is not allowed; allowed: a finite number > 0"),
    ("gan.lr=inf", r"gan\.lr: inf is not allowed"),
    ("gan.d_lr=-1e-4", r"gan\.d_lr: -0\.0001 is out of range"),
    ("gan.d_lr=nan", r"gan\.d_lr: nan is not allowed"),
    ("gan.betas=[2,3]", r"gan\.betas: item 0 = 2\.0 is out of range; allowed: a finite number in \[0, 1\)"),
    ("gan.betas=[0.9]", r"gan\.betas: \[0\.9\] has 1 item\(s\); allowed: exactly 2"),
    ("gan.betas=[0.9,0.99,0.999]", r"gan\.betas: .* has 3 item\(s\)"),
    ("gan.betas=[0.9,1]", r"gan\.betas: item 1 = 1\.0 is out of range"),
    ("psnr.milestones=[300,200]", r"psnr\.milestones: \[300, 200\] is not strictly increasing"),
    ("psnr.milestones=[0,200]", r"psnr\.milestones: item 0 = 0 is out of range"),
    ("psnr.milestones=[100,100]", r"psnr\.milestones: \[100, 100\] is not strictly increasing"),
    ("seed=-1", r"seed: -1 is out of range; allowed: an integer in \[0, 9223372036854775807\]"),
    ("seed=9223372036854775808", r"seed: 9223372036854775808 is out of range"),
    ("generator_config.num_block=-2", r"generator_config\.num_block: -2 is out of range; allowed: an integer in \[1,"),
    ("generator_config.num_block=0", r"generator_config\.num_block: 0 is out of range"),
    ("generator_config.num_feat=0", r"generator_config\.num_feat: 0 is out of range; allowed: an integer in \[1,"),
    ("generator_config.num_grow_ch=-1", r"generator_config\.num_grow_ch: -1 is out of range"),
    ("generator_config.num_feat=1.5", r"generator_config\.num_feat: expected an integer, got 1\.5"),
    ("generator_config.norm='layer'", r"generator_config\.norm: 'layer' is not allowed; allowed: 'batch' or 'none'"),
    ("generator_config.depth=3", r"generator_config: unknown rrdbnet argument 'depth'; known: num_in_ch"),
    ("generator_config.scale=3", r"generator_config\.scale: 3 differs from data\.scale \(4\).*set data\.scale"),
    ("generator_config.scale=2", r"generator_config\.scale: 2 differs from data\.scale \(4\)"),
    ("data.val_crop=2", r"data\.val_crop: 2 is out of range; allowed: at least data\.scale \(4\)"),
    ("data.val_crop=0", r"data\.val_crop: 0 is out of range; allowed: an integer in \[1,"),
    ("data.scale=3", r"data\.scale: 3 is not allowed for rrdb23-smoke \(rrdbnet\); allowed: 1, 2, 4"),
    ("data.scale=8", r"data\.scale: 8 is not allowed for rrdb23-smoke"),
    ("data.batch_size=0", r"data\.batch_size: 0 is out of range"),
    ("data.workers=-1", r"data\.workers: -1 is out of range"),
    ("data.train=''", r"data\.train: must not be empty"),
    ("psnr.iters=0", r"psnr\.iters: 0 is out of range"),
    ("gan.log_every=-5", r"gan\.log_every: -5 is out of range"),
    ("gan.d_num_feat=0", r"gan\.d_num_feat: 0 is out of range"),
    ("loss.pixel=l3", r"loss\.pixel: 'l3' is not allowed; allowed: 'l1', 'l2'"),
    ("loss.adversarial=lsgan", r"loss\.adversarial: 'lsgan' is not allowed; allowed: 'standard', 'ragan'"),
    ("loss.perceptual_layer=conv6_1", r"loss\.perceptual_layer: 'conv6_1' is not allowed; allowed: 'conv1_1'"),
    ("loss.perceptual_weight=-1", r"loss\.perceptual_weight: -1\.0 is out of range; allowed: a finite number >= 0"),
    ("loss.fft_weight=nan", r"loss\.fft_weight: nan is not allowed"),
    ("loss.fft_weight=-0.5", r"loss\.fft_weight: -0\.5 is out of range; allowed: a finite number >= 0"),
    ("loss.fft_weight=fast", r"loss\.fft_weight: expected a number, got 'fast'"),
    ("loss.adversarial=rsgan", r"loss\.adversarial: 'rsgan' is not allowed; allowed: 'standard', 'ragan', 'rahinge', "
                               r"'rals', 'rcgan', 'rchinge', 'rcls', 'ragp', 'wgan-gp'$"),
    ("loss.perceptual_backbone=alexnet", r"loss\.perceptual_backbone: 'alexnet' is not allowed; allowed: 'vgg', "
                                         r"'lpips', 'dists'$"),
    ("loss.perceptual_criterion=fro", r"loss\.perceptual_criterion: 'fro' is not allowed; allowed: 'l1', 'l2'$"),
    ("loss.frequency=fourier", r"loss\.frequency: 'fourier' is not allowed; allowed: 'none', 'fft', 'fft-l1', "
                               r"'spectral'$"),
    ("loss.frequency=spectral", r"loss\.frequency_weight: 0 switches loss\.frequency = 'spectral' off; allowed: a "
                                r"weight > 0 with it, or loss\.frequency = 'none'"),
    ("loss.frequency_weight=0.3", r"loss\.frequency_weight: 0\.3 weighs no term \(loss\.frequency = 'none'\); "
                                  r"choose loss\.frequency: 'fft', 'fft-l1', 'spectral'"),
    ("loss.frequency_weight=inf", r"loss\.frequency_weight: inf is not allowed"),
    ("loss.vgg_weights=''", r"loss\.vgg_weights: must not be empty"),
    ("loss.vgg_weights=no/such/vgg19.pth", r"loss\.vgg_weights: 'no/such/vgg19\.pth' is not allowed: no such file; "
                                           r"allowed: 'imagenet', 'random' or the path"),
    ("generator=5", r"generator: 5 is not allowed; allowed: 'srgan_srresnet16_bn'"),
    ("generator=[1]", r"generator: \[1\] is not allowed"),
    ("generator=vgg", r"generator: 'vgg' is not allowed"),
    ("name=5", r"name: expected a string, got 5"),
    ("name='../../escape'", r"name: '\.\./\.\./escape' is not allowed; allowed: a name usable as one folder name"),
    ("name=''", r"name: must not be empty"),
    ("preset=paper", r"preset = 'paper' in the configuration contradicts the preset in use \('smoke'\): choose "
                     r"the preset with --preset 'paper'"),
    ("preset=fast", r"preset = 'fast' in the configuration contradicts"),
    ("psnr=5", r"psnr: expected a table, got 5"),
    ("=5", r"--set expects section\.key=value"),
    ("psnr..lr=1", r"--set expects section\.key=value"),
]


@pytest.mark.parametrize(("assignment", "message"), BAD_SETS, ids=[a for a, _ in BAD_SETS])
def test_bad_values_are_one_line_errors_naming_key_value_and_range(assignment, message):
    assert re.search(message, _refused([assignment])), _refused([assignment])


def test_loss_keys_that_constrain_each_other():
    assert "loss.lpips_weight adds LPIPS beside the perceptual term, which is LPIPS already" in _refused(
        ["loss.perceptual_backbone='lpips'", "loss.lpips_weight=0.5"])
    assert "give either fft_weight or the two new keys, not both" in _refused(
        ["loss.fft_weight=0.1", "loss.frequency='fft'", "loss.frequency_weight=0.3"])
    for choice in ("fft", "fft-l1", "spectral"):
        cfg = resolve_config("esrgan", "smoke", [f"loss.frequency='{choice}'", "loss.frequency_weight=0.5"])
        assert (cfg.loss.frequency, cfg.loss.frequency_weight) == (choice, 0.5)
    for backbone in ("vgg", "lpips", "dists"):
        assert resolve_config("esrgan", "smoke", [f"loss.perceptual_backbone='{backbone}'"]).loss.perceptual_backbone \
            == backbone


@pytest.mark.parametrize(("sets", "message"), [
    (["loss.gp_weight=1000"], "loss.gp_weight: only the gradient-penalty losses (wgan-gp, ragp) read it; with "
                              "loss.adversarial = 'ragan' it would be ignored"),
    (["data.val='skimage'", "data.holdout=3"], "data.holdout: no training image is held out when data.val names"),
])
def test_values_the_run_would_never_read_are_refused(sets, message):
    # recorded with the run and in the training cache's fingerprint (an identical stage trained again), never read
    assert message in _refused(sets)
    assert resolve_config("esrgan", "smoke", ["loss.adversarial='ragp'", "loss.gp_weight=1000"]).loss.gp_weight == 1000


def test_a_files_value_is_checked_where_an_option_replaces_it(tmp_path):
    # --iters and --data replaced the file's iters = -5 and train = 42: trained, exit 0, the file never reported
    toml = tmp_path / "bad.toml"
    toml.write_text('name = "bad"\ngenerator = "rrdb23"\n[psnr]\niters = -5\n')
    with pytest.raises(BadInputError, match=r"psnr\.iters: -5 is out of range"):
        resolve_config(str(toml), "smoke", overrides={"psnr": {"iters": 2}})
    with pytest.raises(BadInputError, match=r"psnr\.iters: -5 is out of range"):  # a --set value likewise
        resolve_config("esrgan", "smoke", ["psnr.iters=-5"], overrides={"psnr": {"iters": 2}})
    toml.write_text('name = "bad"\ngenerator = "rrdb23"\n[data]\ntrain = 42\n')
    with pytest.raises(BadInputError, match=r"data\.train: expected a string, got 42"):
        resolve_config(str(toml), "smoke", overrides={"data": {"train": "skimage-train"}})


def test_former_fft_weight_reads_as_the_fft_l1_frequency_term(tmp_path):
    toml = tmp_path / "old.toml"
    toml.write_text('generator = "rrdb23"\n[loss]\nfft_weight = 0.25\n')
    cfg = resolve_config(str(toml), "smoke")
    assert (cfg.loss.frequency, cfg.loss.frequency_weight) == ("fft-l1", 0.25)
    assert "fft_weight" not in cfg.to_dict()["loss"]
    off = resolve_config("esrgan", "smoke", ["loss.fft_weight=0"])
    assert (off.loss.frequency, off.loss.frequency_weight) == ("none", 0.0)
    assert off == resolve_config("esrgan", "smoke")


def test_training_cache_fingerprints_of_former_configurations_are_unchanged():
    """The gan stage's fingerprint reads every loss key: configurations that train what srbench trained before
    the backbone/criterion/frequency choices give the loss inputs they gave then (53014ee's, written out),
    so their cache entries stay valid; the new choices give new inputs."""
    from srbench.train.cache import fingerprint_inputs

    def loss_inputs(sets: list[str]) -> dict:
        cfg = resolve_config("esrgan", "paper", sets)
        return fingerprint_inputs(cfg, "gan", data={"train": "x", "val": None}, init_sha256=None,
                                  device="cpu", threads=1)["config"]["loss"]

    before = {"pixel": "l1", "pixel_weight": 0.01, "perceptual_layer": "conv5_4", "perceptual_weight": 1.0,
              "vgg_weights": "imagenet", "adversarial": "ragan", "adversarial_weight": 0.005, "gp_weight": 10.0,
              "lpips_weight": 0.0, "fft_weight": 0.0}
    assert loss_inputs([]) == before
    assert loss_inputs(["loss.fft_weight=0.1"]) == {**before, "fft_weight": 0.1}
    assert loss_inputs(["loss.frequency='fft-l1'", "loss.frequency_weight=0.1"]) == {**before, "fft_weight": 0.1}
    new = loss_inputs(["loss.frequency='fft'", "loss.frequency_weight=0.1", "loss.perceptual_backbone='dists'"])
    assert new == {**{k: v for k, v in before.items() if k != "fft_weight"}, "frequency": "fft",
                   "frequency_weight": 0.1, "perceptual_backbone": "dists"}
    assert loss_inputs(["loss.perceptual_criterion='l2'"]) == {**before, "perceptual_criterion": "l2"}


def test_states_and_configs_written_before_the_frequency_choice_still_resume():
    from srbench.train.config import upgrade_saved_config

    now = resolve_config("esrgan", "smoke", ["loss.fft_weight=0.2"]).to_dict()
    then = json.loads(json.dumps(now))
    for key in ("perceptual_backbone", "perceptual_criterion", "frequency", "frequency_weight"):
        del then["loss"][key]
    then["loss"]["fft_weight"] = 0.2
    assert upgrade_saved_config(then) == json.loads(json.dumps(now))
    assert upgrade_saved_config({"stage": "gan"}) == {"stage": "gan"}


def test_srresnet_generator_config_is_checked_against_its_own_constructor():
    msg = _refused(["generator_config.num_grow_ch=8"], variant="srgan")
    assert "generator_config: unknown srresnet argument 'num_grow_ch'" in msg
    assert "data.scale: 1 is not allowed for srgan_srresnet16_bn-smoke (srresnet); allowed: 2, 4, 8" in _refused(
        ["data.scale=1", "data.patch_size=32", "data.val_crop=96"], variant="srgan")


def test_cli_overrides_are_validated_too(tmp_path):
    from srbench.cli import main

    for seed in ("-1", str(2**63)):
        res = CliRunner().invoke(main, ["train", "--variant", "esrgan", "--stage", "psnr", "--preset", "smoke",
                                        "--seed", seed, "--out", str(tmp_path / "run")])
        assert res.exit_code == 1, res.output
        assert res.stderr.strip().splitlines() == [
            f"error: seed: {seed} is out of range; allowed: an integer in [0, 9223372036854775807]"]
        assert not (tmp_path / "run").exists()  # refused before anything was written
    res = CliRunner().invoke(main, ["train", "--variant", "esrgan", "--stage", "psnr", "--preset", "smoke",
                                    "--data", "", "--val", "", "--set", "preset=paper"])
    assert res.exit_code == 1 and res.stderr.startswith("error: preset = 'paper'"), res.output


def test_generator_that_is_not_a_string_in_a_toml_file(tmp_path):
    toml = tmp_path / "five.toml"
    toml.write_text("generator = 5\n")
    with pytest.raises(BadInputError, match=r"^generator: 5 is not allowed; allowed: 'srgan_srresnet16_bn'"):
        resolve_config(str(toml))
    toml.write_text('generator = "rrdb23"\nname = 7\n')
    with pytest.raises(BadInputError, match=r"^name: expected a string, got 7$"):
        resolve_config(str(toml))


def test_non_utf8_and_unreadable_toml_files_name_the_file(tmp_path):
    toml = tmp_path / "latin1.toml"
    toml.write_bytes('name = "caf\u00e9"\ngenerator = "rrdb23"\n'.encode("latin-1"))
    with pytest.raises(BadInputError) as err:
        resolve_config(str(toml))
    assert str(err.value) == f"{toml}: config file is not UTF-8 text (byte offset 11); TOML files are UTF-8"
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(BadInputError, match="no such config file"):
        resolve_config(str(folder))
    with pytest.raises(BadInputError, match=r"^variant: cannot expand '~no-such-user-x/a\.toml'"):
        resolve_config("~no-such-user-x/a.toml")


def test_preset_and_name_cannot_misreport_the_run(tmp_path):
    # The values come from --preset; a configuration may repeat it but never contradict it.
    assert resolve_config("esrgan", "smoke", ["preset=smoke"]).preset == "smoke"
    toml = tmp_path / "p.toml"
    toml.write_text('generator = "rrdb23"\npreset = "paper"\n')
    assert resolve_config(str(toml), "paper").preset == "paper"
    with pytest.raises(BadInputError, match=r"^preset = 'paper' in the configuration contradicts .*--preset 'paper'"):
        resolve_config(str(toml), "smoke")
    with pytest.raises(BadInputError, match="contradicts"):
        resolve_config("esrgan", "short", overrides={"preset": "smoke"})
    # `name` only labels the run (and names its folder): any folder name is fine, a path is not.
    assert resolve_config("esrgan", "smoke", ["name=mine"]).name == "mine"
    for bad in ("a/b", "..", "x\ny"):
        with pytest.raises(BadInputError, match="one folder name"):
            resolve_config("esrgan", "smoke", overrides={"name": bad})


def test_generator_config_scale_equal_to_data_scale_is_accepted():
    cfg = resolve_config("esrgan", "smoke", ["generator_config.scale=4"])
    assert cfg.generator_config == {"scale": 4} and cfg.data.scale == 4
    cfg = resolve_config("esrgan", "smoke", ["data.scale=2", "generator_config.scale=2"])
    assert cfg.data.scale == 2


def test_val_crop_minimum_gives_a_non_empty_crop():
    import numpy as np

    from srbench.train import validation_pairs

    images = [(f"im{i}", np.full((40, 40, 3), 100 + i, np.uint8)) for i in range(3)]
    for scale, crop in ((4, 4), (2, 4), (1, 4)):
        cfg = resolve_config("esrgan", "smoke", [f"data.scale={scale}", f"data.val_crop={crop}"])
        _, held = validation_pairs(cfg, images)
        _, hr, lr = held[0]
        assert hr.shape == (crop, crop, 3) and lr.shape == (crop // scale, crop // scale, 3)
    # x2 RRDBNet pixel-unshuffles its LR input by 2: a 3-pixel LR crop would crash validation
    assert "allowed: a multiple of 4" in _refused(["data.scale=2", "data.val_crop=6"])
    assert "allowed: a multiple of 4" in _refused(["data.scale=1", "data.val_crop=6"])


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def _vgg_files(tmp_path):
    import torch

    torch.save({"features.0.weight": torch.zeros(1), "hook": _Evil()}, tmp_path / "evil.pth")
    (tmp_path / "noise.pth").write_bytes(bytes(range(7, 250)) * 4)
    torch.save({"classifier.0.weight": torch.zeros(2)}, tmp_path / "novgg.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "partial.pth")
    return tmp_path


@pytest.mark.parametrize(("name", "at_config", "at_loss"), [
    ("evil.pth", "refused: loading it would execute pickled code (it imports builtins.print",
     "refused: loading it would execute pickled code"),
    ("noise.pth", "not a checkpoint (neither a PyTorch zip archive nor a pickle", "not a checkpoint"),
    ("novgg.pth", None, "no 'features.*' tensors, not a VGG19 state dict"),
    ("list.pth", None, "holds a list, not a VGG19 state dict"),
    ("partial.pth", None, "not a VGG19 state dict (missing features.0.bias, features.10.bias"),
])
def test_vgg_weights_files_are_refused_clearly(tmp_path, name, at_config, at_loss):
    from srbench.train.losses import PerceptualLoss

    path = _vgg_files(tmp_path) / name
    if at_config:
        msg = _refused([f"loss.vgg_weights={json.dumps(str(path))}"])
        assert msg.startswith(f"loss.vgg_weights: {path}: ") and at_config in msg
    with pytest.raises(BadInputError) as err:  # the loss itself (gan stage) refuses as clearly
        PerceptualLoss({"conv5_4": 1.0}, weights=str(path))
    assert at_loss in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_vgg_weights_file_that_is_a_state_dict_is_accepted(tmp_path):
    import torch

    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "vgg.pth")
    cfg = resolve_config("esrgan", "smoke", [f"loss.vgg_weights={json.dumps(str(tmp_path / 'vgg.pth'))}"])
    assert cfg.loss.vgg_weights == str(tmp_path / "vgg.pth")


# -- the table itself, and presets -------------------------------------------------------------------------------


def test_every_field_declares_what_it_accepts():
    for cls in (TrainConfig, LossConfig, DataConfig, StageConfig):
        for f in dataclasses.fields(cls):
            if f.name in ("loss", "data", "psnr", "gan"):
                continue
            assert "rule" in f.metadata, f"{cls.__name__}.{f.name} has no Rule"


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("variant", [*RECIPES, *GENERATORS])
def test_every_preset_of_every_variant_validates(variant, preset):
    cfg = resolve_config(variant, preset)
    assert cfg.preset == preset
    _assert_sane(cfg, preset)


def test_good_values_keep_their_values():
    paper = resolve_config("esrgan", "paper")
    assert (paper.psnr.lr, paper.psnr.gamma, paper.psnr.betas, paper.gan.ema_decay) == (2e-4, 0.5, (0.9, 0.999), 0.999)
    assert paper.psnr.milestones == (200_000, 400_000, 600_000, 800_000) and paper.data.val_crop == 128
    cfg = resolve_config("esrgan", "smoke", ["gan.betas=[0, 0.5]", "gan.ema_decay=0", "psnr.gamma=1",
                                             "gan.lr=3", "seed=9223372036854775807", "psnr.milestones=[]"])
    assert (cfg.gan.betas, cfg.gan.ema_decay, cfg.psnr.gamma, cfg.gan.lr) == ((0.0, 0.5), 0.0, 1.0, 3.0)
    assert cfg.seed == 2**63 - 1 and cfg.psnr.milestones == ()


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("suite", list(shipped_suites()))
def test_shipped_suites_validate_under_every_preset(suite, preset):
    configs = resolve_suite_configs(load_suite(suite), preset)
    assert len(configs) == {"esrgan": 5, "esrgan-grid": 16, "loss-perceptual": 3, "loss-adversarial": 7,
                            "loss-frequency": 5, "loss-final": 2, "wgan-gp": 1}[suite]
    for name, cfg in configs.items():
        assert cfg.name == name
        _assert_sane(cfg, preset)


# -- suites (issue item 6: datasets = "abl"; item 9: variants = 5, interpolation = 5, alphas = ["a"]) ---------

SUITE_BASE = '[[variants]]\nname = "a"\ntraining = "esrgan"\n'
BAD_SUITES = [
    ('datasets = "abl"\n', r"datasets = 'abl': expected a list of names"),
    ("datasets = []\n", r"datasets is empty"),
    ('datasets = ["set5", 5]\n', r"datasets = \['set5', 5\]: expected a list of names"),
    ('datasets = ["set5", "set5"]\n', r"datasets repeats 'set5'"),
    ('baselines = "bicubic"\n', r"baselines = 'bicubic': expected a list of names"),
    ("variants = 5\n", r"variants = 5: expected an array of tables"),
    ('variants = ["esrgan"]\n', r"variants = \['esrgan'\]: expected an array of tables"),
    ("interpolation = 5\n", r"interpolation = 5: expected a table"),
    ('[interpolation]\nvariant = "a"\nalphas = ["a"]\n', r"interpolation\.alphas = \['a'\]; allowed: a list of "
                                                          r"numbers in \[0, 1\]"),
    ('[interpolation]\nvariant = "a"\nalphas = 0.5\n', r"interpolation\.alphas = 0\.5; allowed"),
    ('[interpolation]\nvariant = "a"\nalphas = [1.5]\n', r"interpolation\.alphas = \[1\.5\]; allowed"),
    ('[interpolation]\nvariant = "a"\nalphas = [nan]\n', r"interpolation\.alphas = \[nan\]; allowed"),
    ('[interpolation]\nvariant = "a"\nalphas = [true]\n', r"interpolation\.alphas = \[True\]; allowed"),
    ('[interpolation]\nvariant = "a"\nalphas = [0.5, 0.5]\n', r"interpolation\.alphas repeats a value"),
    ('name = 5\n', r"name = 5; allowed: a name usable as one folder name"),
    ('name = "../out"\n', r"name = '\.\./out'; allowed: a name usable as one folder name"),
    ('description = ["x"]\n', r"description = \['x'\]; allowed: a string"),
]


SUITE_IDS = [t.replace('[interpolation]\nvariant = "a"\n', "").strip() for t, _ in BAD_SUITES]


@pytest.mark.parametrize(("text", "message"), BAD_SUITES, ids=SUITE_IDS)
def test_bad_suites_are_one_line_errors_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    if "variants" not in text:  # a valid variant, before any [table] that follows
        text = text.replace("[interpolation]", SUITE_BASE + "[interpolation]") if "[" in text else text + SUITE_BASE
    path.write_text(text)
    with pytest.raises(BadInputError) as err:
        load_suite(str(path))
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert re.search(message, msg), msg


@pytest.mark.parametrize(("variant", "message"), [
    ({"name": 5, "training": "esrgan"}, r"variants\[0\]: name = 5; allowed: a name usable"),
    ({"name": "a/b", "training": "esrgan"}, r"variants\[0\]: name = 'a/b'; allowed"),
    ({"name": "a", "training": 5}, r"variants\[0\]: training = 5: expected a training variant name"),
    ({"name": "a", "training": {"variant": 5}}, r"training = \{'variant': 5\}"),
    ({"name": "a", "training": "esrgan", "label": 3}, r"variants\[0\]: label = 3; allowed: a string"),
])
def test_bad_suite_variants(variant, message):
    with pytest.raises(BadInputError, match=message):
        parse_suite({"variants": [variant]}, "s.toml")


def test_suite_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(BadInputError) as err:
        load_suite(str(path))
    assert str(err.value) == f"{path}: suite file is not UTF-8 text (byte offset 18); TOML files are UTF-8"


def test_suite_variant_configs_are_checked_before_training():
    suite = parse_suite({"variants": [{"name": "ok", "training": "esrgan"},
                                      {"name": "bad", "training": {"variant": "esrgan", "psnr": {"gamma": -1}}}]},
                        "s.toml")
    with pytest.raises(BadInputError, match=r"^s\.toml: variant bad: psnr\.gamma: -1\.0 is out of range"):
        resolve_suite_configs(suite, "smoke")


# -- property-based: the loader never raises anything but BadInputError, and what it accepts is sane ----------


def _assert_sane(cfg: TrainConfig, preset: str) -> None:
    """The ranges re-checked independently of srbench's own table."""
    assert isinstance(cfg, TrainConfig) and cfg.preset == preset
    assert isinstance(cfg.name, str) and SAFE_NAME.fullmatch(cfg.name)
    assert cfg.generator in GENERATORS and 0 <= cfg.seed <= 2**63 - 1
    for stage in (cfg.psnr, cfg.gan):
        assert isinstance(stage.iters, int) and stage.iters >= 1
        for lr in (stage.lr, stage.d_lr):
            assert isinstance(lr, float) and math.isfinite(lr) and lr > 0
        assert 0 < stage.gamma <= 1 and 0 <= stage.ema_decay <= 1
        assert len(stage.betas) == 2 and all(0 <= b < 1 for b in stage.betas)
        assert all(isinstance(m, int) and m >= 1 for m in stage.milestones)
        assert list(stage.milestones) == sorted(set(stage.milestones))
        assert min(stage.checkpoint_every, stage.val_every, stage.log_every, stage.d_num_feat) >= 1
    data = cfg.data
    assert data.scale in (1, 2, 4, 8) and data.batch_size >= 1 and data.workers >= 0
    assert data.patch_size % 32 == 0 and data.patch_size % data.scale == 0
    assert data.val_crop // data.scale >= 1
    assert data.val is not None or data.holdout >= 1
    loss = cfg.loss
    assert loss.pixel in ("l1", "l2") and loss.adversarial in ("standard", "ragan", "rahinge", "rals", "rcgan",
                                                               "rchinge", "rcls", "ragp", "wgan-gp")
    assert loss.perceptual_backbone in ("vgg", "lpips", "dists") and loss.perceptual_criterion in ("l1", "l2")
    assert loss.frequency in ("none", "fft", "fft-l1", "spectral")
    assert (loss.frequency == "none") == (loss.frequency_weight == 0)
    assert not (loss.perceptual_backbone == "lpips" and loss.lpips_weight > 0)
    for w in (loss.pixel_weight, loss.perceptual_weight, loss.adversarial_weight, loss.gp_weight,
              loss.lpips_weight, loss.frequency_weight):
        assert math.isfinite(w) and w >= 0
    arch = GENERATORS[cfg.generator].arch
    for key, value in cfg.generator_config.items():
        if key == "norm":
            assert value in ("batch", "none", None)
        elif key == "scale":
            assert value == data.scale
        else:
            assert key in ("num_in_ch", "num_out_ch", "num_feat", "num_block") + (("num_grow_ch",) if arch == "rrdbnet"
                                                                                  else ())
            assert isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _known_keys() -> list[str]:
    keys = ["name", "generator", "seed", "preset", "generator_config.num_block", "generator_config.num_feat",
            "generator_config.num_grow_ch", "generator_config.scale", "generator_config.norm",
            "generator_config.num_in_ch"]
    for section, cls in (("loss", LossConfig), ("data", DataConfig), ("psnr", StageConfig), ("gan", StageConfig)):
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


KEYS = st.sampled_from(_known_keys()) | st.text(min_size=1, max_size=12)
SCALARS = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=-3, max_value=300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=0, max_value=1.5)
    | st.sampled_from(["l1", "l2", "ragan", "standard", "relu5_4", "rrdb23", "srresnet16", "smoke", "paper",
                       "random", "imagenet", "batch", "none", "skimage"])
    | st.text(max_size=12)
    | st.dates()
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3), max_leaves=8)
_FIELD_TYPES = {f"{section}.{f.name}": f.type for section, cls in (("loss", LossConfig), ("data", DataConfig),
                                                                   ("psnr", StageConfig), ("gan", StageConfig))
                for f in dataclasses.fields(cls)}


def _plausible(key: str) -> st.SearchStrategy:
    """Values near the accepted ones, so that the property also exercises what the loader accepts."""
    kind = _FIELD_TYPES.get(key, "")
    if key.startswith("generator_config."):
        return st.integers(-1, 6) | st.sampled_from([2, 4, "batch", "none"])
    if key == "seed":
        return st.integers(-2, 2**64)
    if "tuple" in kind:
        return st.lists(st.integers(-1, 1000) | st.floats(-0.1, 1.0), max_size=3)
    if "float" in kind:
        return st.floats(-0.1, 1.2) | st.sampled_from([1e-4, 0.5, 1.0, 2.0])
    if "int" in kind:
        return st.integers(-1, 130) | st.sampled_from([32, 64, 96, 128, 1, 2, 4, 8])
    return st.sampled_from(["l1", "l2", "ragan", "standard", "wgan-gp", "relu5_4", "conv5_4", "rrdb23",
                            "srresnet16", "smoke", "paper", "random", "skimage", "x"])


PAIRS = st.lists(KEYS.flatmap(lambda k: st.tuples(st.just(k), _plausible(k) | _plausible(k) | VALUES)),
                 max_size=4).map(dict)


def _toml_value(value) -> str:
    """A tiny TOML writer for the generated values (no TOML writer is a dependency)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf
                                                else repr(value))
    if isinstance(value, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x10000
                             else f"\\U{ord(c):08x}" for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return value.isoformat()  # a date


def _toml_key(dotted: str) -> str:
    return ".".join(_toml_value(part) for part in dotted.split("."))


def _nested(pairs: dict) -> dict:
    out: dict = {}
    for dotted, value in pairs.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def _outcome(call) -> TrainConfig | None:
    try:
        return call()
    except BadInputError as exc:
        assert "\n" not in str(exc), str(exc)  # noqa: PT017 - the property: whatever is refused, in one line
        return None


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(pairs=PAIRS, preset=st.sampled_from(PRESETS),
       variant=st.sampled_from(["esrgan", "srgan", "rrdb23-smoke"]))
def test_property_toml_file_gives_a_sane_config_or_one_bad_input_error(tmp_path, pairs, preset, variant):
    toml = tmp_path / "fuzz.toml"
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in pairs.items()]
    if "generator" not in pairs:
        lines.insert(0, f'generator = "{RECIPES.get(variant, {}).get("generator", variant)}"')
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = _outcome(lambda: resolve_config(str(toml), preset))
    if cfg is not None:
        _assert_sane(cfg, preset)


@PROPERTY
@given(pairs=PAIRS, preset=st.sampled_from(PRESETS),
       variant=st.sampled_from(["esrgan", "srgan", "rrdb23-smoke"]))
def test_property_set_and_overrides_give_a_sane_config_or_one_bad_input_error(pairs, preset, variant):
    sets = [f"{k}={_toml_value(v)}" for k, v in pairs.items()]
    cfg = _outcome(lambda: resolve_config(variant, preset, sets))
    if cfg is not None:
        _assert_sane(cfg, preset)
    cfg = _outcome(lambda: resolve_config(variant, preset, overrides=_nested(pairs)))
    if cfg is not None:
        _assert_sane(cfg, preset)


@PROPERTY
@given(sets=st.lists(st.text(max_size=30), max_size=3), preset=st.sampled_from(PRESETS))
def test_property_arbitrary_set_strings(sets, preset):
    cfg = _outcome(lambda: resolve_config("esrgan", preset, sets))
    if cfg is not None:
        _assert_sane(cfg, preset)


SUITE_VALUES = {
    "name": st.sampled_from(["s", "a/b", ".."]) | VALUES,
    "datasets": st.lists(st.sampled_from(["set5", "set14", ""]), max_size=3) | VALUES,
    "baselines": st.lists(st.sampled_from(["bicubic", "nearest"]), max_size=2) | VALUES,
    "variants": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b"]) | VALUES,
                                                "training": st.sampled_from(["esrgan", "srgan"]) | VALUES},
                                               optional={"label": VALUES}), max_size=3) | VALUES,
    "interpolation": st.fixed_dictionaries({"variant": st.sampled_from(["a", "b"]) | VALUES},
                                           optional={"alphas": st.lists(st.floats(-0.5, 1.5) | VALUES, max_size=3)})
    | VALUES,
}


@PROPERTY
@given(data=st.fixed_dictionaries({}, optional={**SUITE_VALUES, "description": VALUES})
       | st.dictionaries(st.sampled_from(sorted(SUITE_VALUES)) | st.text(max_size=8), VALUES, max_size=4))
def test_property_suites_parse_or_raise_one_bad_input_error(data):
    try:
        suite = parse_suite(data, "fuzz.toml")
    except BadInputError as exc:
        assert "\n" not in str(exc)  # noqa: PT017 - the property: whatever is refused, in one line
        return
    assert all(isinstance(d, str) and d for d in suite.datasets)
    assert all(isinstance(a, float) and 0 <= a <= 1 for a in suite.alphas)
    assert all(SAFE_NAME.fullmatch(v.name) for v in suite.entries)


def test_pickle_is_not_toml(tmp_path):
    """A pickle given where a config is expected is invalid TOML or not UTF-8, never unpickled."""
    path = tmp_path / "cfg.toml"
    path.write_bytes(pickle.dumps({"generator": "rrdb23"}))
    with pytest.raises(BadInputError, match=re.escape(str(path))):
        resolve_config(str(path))
