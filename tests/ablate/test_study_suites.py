"""The loss study's and the WGAN-GP project's suites (issue 23): listed, resolved to valid configurations, the
critic, the data recipe, the report's metric order and spectrum table, the suite settings' validation."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from srbench.ablate import AblationReport, load_suite, parse_suite, resolve_suite_configs  # noqa: E402
from srbench.errors import BadInputError, WeightsUnavailableError  # noqa: E402
from srbench.train import losses as L  # noqa: E402

STUDY_SUITES = ("loss-perceptual", "loss-adversarial", "loss-frequency", "loss-final", "wgan-gp")
STUDY_ORDER = ["niqe", "fid", "lpips", "psnr_y", "ssim_y", "brisque", "spectrum_discrepancy"]
CPU = torch.device("cpu")


def test_the_study_suites_are_listed_by_srbench_suites_list():
    from click.testing import CliRunner

    from srbench.cli import main

    result = CliRunner().invoke(main, ["suites", "list"])
    assert result.exit_code == 0, result.output
    listed = {line.split(":")[0] for line in result.output.splitlines() if line and not line.startswith(" ")}
    assert set(STUDY_SUITES) <= listed
    assert "  ragp-spectral-0.5" in result.output and "  rchinge" in result.output


@pytest.mark.parametrize("name", STUDY_SUITES)
@pytest.mark.parametrize("preset", ["smoke", "short", "paper"])
def test_every_entry_resolves_to_a_valid_configuration(name, preset):
    suite = load_suite(name)
    configs = resolve_suite_configs(suite, preset)
    assert list(configs) == [e.name for e in suite.entries] and len(configs) >= 1
    for cfg in configs.values():
        assert cfg.loss.adversarial in L.ADVERSARIAL_KINDS
        assert cfg.loss.perceptual_backbone in L.PERCEPTUAL_BACKBONES
        assert cfg.loss.frequency in L.FREQUENCY_LOSSES
        assert (cfg.loss.frequency == "none") == (cfg.loss.frequency_weight == 0)
        assert cfg.generator == ("rrdb23-smoke" if preset == "smoke" else "rrdb23") and cfg.data.scale == 4
    assert suite.source and suite.training_data
    assert suite.settings.metrics == tuple(STUDY_ORDER)
    assert suite.settings.spectrum_table == (name == "loss-frequency")


def _losses(name: str) -> dict[str, tuple]:
    configs = resolve_suite_configs(load_suite(name), "paper")
    return {k: (c.loss.perceptual_backbone, c.loss.adversarial, c.loss.frequency, c.loss.frequency_weight)
            for k, c in configs.items()}


def test_the_loss_study_suites_are_its_ablations():
    assert _losses("loss-perceptual") == {"vgg": ("vgg", "ragan", "none", 0.0),
                                          "lpips": ("lpips", "ragan", "none", 0.0),
                                          "dists": ("dists", "ragan", "none", 0.0)}
    adversarial = _losses("loss-adversarial")
    assert [a for _, a, _, _ in adversarial.values()] == ["ragan", "rahinge", "rals", "rcgan", "rchinge", "rcls",
                                                          "ragp"]
    assert {(b, f) for b, _, f, _ in adversarial.values()} == {("lpips", "none")}
    assert _losses("loss-frequency") == {
        "ragp": ("lpips", "ragp", "none", 0.0),
        "ragp-fft-0.3": ("lpips", "ragp", "fft", 0.3), "ragp-spectral-0.3": ("lpips", "ragp", "spectral", 0.3),
        "ragp-fft-0.5": ("lpips", "ragp", "fft", 0.5), "ragp-spectral-0.5": ("lpips", "ragp", "spectral", 0.5)}
    assert _losses("loss-final") == {"baseline": ("vgg", "ragan", "none", 0.0), "final": ("lpips", "ragp", "fft", 0.3)}
    base = resolve_suite_configs(load_suite("loss-final"), "paper")["baseline"]
    assert (base.loss.pixel, base.loss.perceptual_layer, base.loss.perceptual_criterion) == ("l1", "conv5_4", "l1")


def test_the_wgan_gp_suite_is_the_projects_recipe():
    paper = resolve_suite_configs(load_suite("wgan-gp"), "paper")["wgan-gp"]
    loss = paper.loss
    assert (loss.pixel, loss.perceptual_backbone, loss.perceptual_layer, loss.perceptual_criterion) == (
        "l2", "vgg", "relu5_4", "l2")
    assert loss.adversarial == "wgan-gp" and loss.gp_weight == 10.0 and loss.frequency == "none"
    assert paper.gan.discriminator == "vgg8-critic" and paper.gan.betas == (0.0, 0.9)
    assert paper.data.patch_size == 384 and paper.data.patch_size // paper.data.scale == 96  # 96 px LR patches
    assert paper.generator_config.get("norm") in (None, "none")  # RRDBNet: no BN
    smoke = resolve_suite_configs(load_suite("wgan-gp"), "smoke")["wgan-gp"]
    assert smoke.data.patch_size == 32 and smoke.gan.discriminator == "vgg8-critic"


def test_the_wgan_gp_critic_has_eight_3x3_convs_and_no_sigmoid():
    from torch import nn

    from srbench.archs import DISCRIMINATORS, VGG8Critic

    critic = DISCRIMINATORS["vgg8-critic"](num_feat=64, input_size=96)
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and all(c.kernel_size == (3, 3) for c in convs)
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert not any(isinstance(m, nn.Sigmoid | nn.BatchNorm2d) for m in critic.modules())
    assert sum(isinstance(m, nn.LeakyReLU) for m in critic.modules()) == 9  # after each conv and the dense layer
    with torch.no_grad():
        critic.head[-1].bias.fill_(5.0)  # a sigmoid would cap this at 1
        out = critic(torch.rand(2, 3, 96, 96))
    assert out.shape == (2, 1) and (out > 1).all()
    with pytest.raises(BadInputError, match="takes 96x96 patches, got 64x64"):
        critic(torch.rand(1, 3, 64, 64))
    from srbench.train import GanStage

    torch.manual_seed(0)
    stage = GanStage(resolve_suite_configs(load_suite("wgan-gp"), "smoke")["wgan-gp"], CPU)
    assert isinstance(stage.d, VGG8Critic) and stage.d.input_size == 32


def test_the_critic_choice_leaves_earlier_fingerprints_and_saved_configs_alone():
    from srbench.train.cache import fingerprint_inputs
    from srbench.train.config import resolve_config, upgrade_saved_config

    data = {"train": "x", "val": None}
    vgg = fingerprint_inputs(resolve_config("esrgan", "smoke"), "gan", data=data, init_sha256=None, device="cpu")
    assert "discriminator" not in vgg["config"]["gan"]  # the fingerprint an older srbench gave this stage
    critic = resolve_config("esrgan", "smoke", ['gan.discriminator="vgg8-critic"'])
    assert fingerprint_inputs(critic, "gan", data=data, init_sha256=None, device="cpu")["config"]["gan"][
        "discriminator"] == "vgg8-critic"
    saved = json.loads(json.dumps(resolve_config("esrgan", "smoke").to_dict()))
    old = copy.deepcopy(saved)
    for stage in ("psnr", "gan"):
        del old[stage]["discriminator"]
    assert upgrade_saved_config(old) == saved
    with pytest.raises(BadInputError, match=r"gan\.discriminator: 'sigmoid' is not allowed; allowed: 'vgg', "
                                            r"'vgg8-critic'"):
        resolve_config("esrgan", "smoke", ['gan.discriminator="sigmoid"'])


def _dihedral(a: np.ndarray) -> list[np.ndarray]:
    rotations = [np.rot90(a, k) for k in range(4)]
    return rotations + [np.fliplr(r) for r in rotations]


def test_training_patches_are_96_px_lr_and_take_all_eight_flips_and_rotations():
    """The WGAN-GP recipe's data: 384 px HR patches are 96 px LR at x4, and the augmentation gives exactly the
    eight flips/rotations of a patch (the dihedral group), each of them, and LR and HR always alike."""
    from srbench.matlab import imresize
    from srbench.train import PatchDataset

    hr = np.random.default_rng(1).integers(0, 256, (384, 384, 3), dtype=np.uint8)  # one patch position only
    ds = PatchDataset([("img", hr)], 4, 384, seed=5)
    lr = imresize(hr, 0.25)
    expected_hr, expected_lr = _dihedral(hr), _dihedral(lr)
    seen = set()
    for index in range(48):
        lr_t, hr_t = ds[index]
        assert tuple(lr_t.shape) == (3, 96, 96) and tuple(hr_t.shape) == (3, 384, 384)
        hr_p = np.rint(hr_t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        lr_p = np.rint(lr_t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        k = [i for i, e in enumerate(expected_hr) if np.array_equal(hr_p, e)]
        assert len(k) == 1 and np.array_equal(lr_p, expected_lr[k[0]])
        seen.add(k[0])
    assert seen == set(range(8))


def test_dists_and_lpips_train_on_random_networks_under_smoke_and_name_the_file_otherwise(monkeypatch, caplog):
    from srbench.train.config import resolve_config
    from srbench.train.stages import _perceptual

    def missing(weights_dir=None):
        raise WeightsUnavailableError("DISTS (learned alpha/beta)", "weights.pt", "/w", ["/w"], "dists-pytorch")

    monkeypatch.setattr(L, "dists_weights_path", missing)
    smoke = resolve_config("esrgan", "smoke", ['loss.perceptual_backbone="dists"'])
    with caplog.at_level("WARNING"):
        net = _perceptual(smoke.loss, "smoke")
    assert "uniform alpha/beta" in caplog.text and "random VGG16" in caplog.text
    assert torch.equal(net.alpha, torch.full_like(net.alpha, 1 / (2 * sum(L.DISTS_CHANNELS))))
    x = torch.rand(1, 3, 32, 32)
    assert float(net(x, x)) == pytest.approx(0.0, abs=1e-6)
    paper = resolve_config("esrgan", "paper", ['loss.perceptual_backbone="dists"', 'loss.vgg_weights="imagenet"'])
    monkeypatch.setattr(L, "_vgg16_features", lambda *a: pytest.fail("the learned weights are looked up first"))
    with pytest.raises(WeightsUnavailableError, match=r"needs weights\.pt.*\(the paper preset trains with it: only "
                                                      r"the smoke preset"):
        _perceptual(paper.loss, "paper")


# -- suite settings --------------------------------------------------------------------------------------------
def _suite(**extra) -> dict:
    return {"name": "t", "variants": [{"name": "a", "training": "esrgan"}], **extra}


@pytest.mark.parametrize(("extra", "message"), [
    ({"report": {"metrics": ["niqe", "nique"]}}, r"suite\.toml: report\.metrics: unknown metric\(s\) 'nique'; known: "),
    ({"report": {"metrics": ["niqe", "niqe"]}}, r"report\.metrics repeats 'niqe'"),
    ({"report": {"metrics": "niqe"}}, r"report\.metrics = 'niqe': expected a list of metric names"),
    ({"report": {"spectrum_table": "yes"}}, r"report\.spectrum_table = 'yes'; allowed: true or false"),
    ({"report": {"order": 1}}, r"report: unknown key\(s\) 'order'; known: metrics, spectrum_table"),
    ({"presets": {"fast": {}}}, r"presets: unknown preset\(s\) 'fast'; known: smoke, short, paper"),
    ({"source": 3}, r"source = 3; allowed: a string"),
    # which name repeats, and where (once only "variant names repeat")
    ({"variants": [{"name": "a", "training": "esrgan"}, {"name": "b", "training": "srgan"},
                   {"name": "a", "training": "srgan"}]},
     r"suite\.toml: variant names repeat: 'a' \(entries 1, 3\); each \[\[variants\]\] entry needs its own name"),
])
def test_bad_suite_settings_are_one_line_errors(extra, message):
    with pytest.raises(BadInputError, match=message) as info:
        parse_suite(_suite(**extra), "suite.toml")
    assert "\n" not in str(info.value)


def test_a_bad_preset_table_names_the_entry_and_key():
    suite = parse_suite(_suite(presets={"smoke": {"data": {"patch_size": 48}}}), "suite.toml")
    assert resolve_suite_configs(suite, "paper")["a"].data.patch_size == 128  # other presets untouched
    # the key is the suite's [presets.smoke], not variant a's (a's own training table has no such key)
    with pytest.raises(BadInputError, match=r"^suite\.toml: \[presets\.smoke\] \(given to every variant; here to "
                                            r"a\): data\.patch_size 48 must be a multiple of 32"):
        resolve_suite_configs(suite, "smoke")
    own = parse_suite({"name": "t", "variants": [{"name": "a", "training": {"variant": "esrgan",
                                                                             "data": {"patch_size": 48}}}]},
                      "suite.toml")
    with pytest.raises(BadInputError, match=r"^suite\.toml: variant a: data\.patch_size 48 must be a multiple of 32"):
        resolve_suite_configs(own, "smoke")


def test_a_suite_file_s_training_files_are_read_beside_it(tmp_path, monkeypatch):
    # `training = "recipes/mine.toml"` was read from the working folder: the suite ran only from its own folder.
    from srbench.ablate import load_suite

    folder = tmp_path / "study"
    (folder / "recipes").mkdir(parents=True)
    (folder / "recipes" / "mine.toml").write_text('generator = "rrdb23"\nseed = 7\n')
    (folder / "s.toml").write_text('name = "s"\n[[variants]]\nname = "a"\ntraining = "recipes/mine.toml"\n'
                                   '[[variants]]\nname = "b"\ntraining = {variant = "recipes/mine.toml", seed = 8}\n'
                                   '[[variants]]\nname = "c"\ntraining = "esrgan"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    configs = resolve_suite_configs(load_suite(str(folder / "s.toml")), "smoke")
    assert (configs["a"].seed, configs["b"].seed, configs["c"].seed) == (7, 8, resolve_suite_configs(
        parse_suite(_suite(), "x.toml"), "smoke")["a"].seed)
    # A path that was written relative to the working folder: said, not silently read from elsewhere.
    (elsewhere / "recipes").mkdir()
    (elsewhere / "recipes" / "other.toml").write_text('generator = "rrdb23"\n')
    (folder / "t.toml").write_text('name = "t"\n[[variants]]\nname = "a"\ntraining = "recipes/other.toml"\n')
    with pytest.raises(BadInputError, match=r"variants\[0\]: training = 'recipes/other\.toml': a path in a suite "
                                            r"file is relative to the suite's folder, and .*study/recipes/other\.toml "
                                            r"does not exist \(.*elsewhere/recipes/other\.toml, relative to the "
                                            r"working folder, does\)"):
        load_suite(str(folder / "t.toml"))
    # A suite's dataset that is no known set nor a folder names the suite file, not an option never given.
    from srbench.ablate import ablate

    (folder / "u.toml").write_text('name = "u"\ndatasets = ["set55"]\n[[variants]]\nname = "a"\ntraining = "esrgan"\n')
    with pytest.raises(BadInputError, match=r"^.*study/u\.toml: datasets: 'set55' is neither a known dataset"):
        ablate(str(folder / "u.toml"), preset="smoke", data_root=str(tmp_path), out=str(tmp_path / "out"),
               store_path=str(tmp_path / "s.sqlite"), log=lambda _: None)


def test_each_report_metric_is_computed_under_one_protocol_beside_the_defaults():
    from srbench.suite_settings import protocol_metrics

    got = protocol_metrics(tuple(STUDY_ORDER), ("sr", "pirm"))
    assert got["sr"] == ["psnr_y", "ssim_y", "fid", "lpips", "brisque"] + (
        ["spectrum_discrepancy"] if _registered("spectrum_discrepancy") else [])
    assert got["pirm"] == ["rmse", "niqe", "ma", "pi"]
    assert protocol_metrics((), ("sr", "pirm")) == {"sr": None, "pirm": None}


def _registered(name: str) -> bool:
    from srbench.metrics import all_metrics

    return name in all_metrics()


# -- the report ------------------------------------------------------------------------------------------------
def _result(model, dataset, protocol, summary, unavailable=None):
    from srbench.evaluation import EvalResult

    images = [{"image": f"im{i}"} for i in range(2)]
    return EvalResult(model, dataset, protocol, 4, list(summary), summary, images, unavailable=unavailable or {})


def _report(name: str, results: list) -> AblationReport:
    suite = load_suite(name)
    report = AblationReport(suite, "smoke", ["skimage"], results=results)
    report.models = {"bicubic": "bicubic", "vgg-gan": "x", "lpips-gan": "y"}
    return report


def test_the_report_leads_with_the_suites_metrics_in_the_studys_order():
    from srbench.report import study_metrics_table, tidy_from_results

    no_lpips = "LPIPS (AlexNet backbone) needs alexnet-owt-7be5be79.pth, which is not on this machine"
    results = []
    for model, (psnr, niqe, brisque) in {"bicubic": (24.0, 6.5, 60.0), "vgg-gan": (23.0, 4.0, 30.0),
                                          "lpips-gan": (22.5, 3.5, 35.0)}.items():
        results.append(_result(model, "skimage", "sr", {"psnr_y": psnr, "ssim_y": 0.7, "brisque": brisque},
                               {"lpips": no_lpips, "fid": "FID needs pt_inception.pth"}))
        results.append(_result(model, "skimage", "pirm", {"rmse": 10.0, "niqe": niqe}))
    report = _report("loss-perceptual", results)
    text = study_metrics_table(report, tidy_from_results(results))
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    labels = [cell.split()[1] for cell in header.strip("| ").split(" | ")[1:]]
    assert labels == ["NIQE", "FID", "LPIPS", "PSNR-Y", "SSIM-Y", "BRISQUE"] + (
        ["Spectrum"] if _registered("spectrum_discrepancy") else [])
    assert "| lpips-gan | **3.5" in text and "| bicubic | 6.5" in text  # NIQE first, lower is better
    assert f"- Not available: LPIPS: {no_lpips}" in text and "- Not available: FID: FID needs pt_inception.pth" in text
    if not _registered("spectrum_discrepancy"):
        assert ("- Not available: spectrum_discrepancy: not computed: this srbench has no metric "
                "'spectrum_discrepancy'") in text
    assert "NIQE" not in text.split("Not available")[1]  # a metric with values is never listed as missing
    assert "Source: thesis presentation 'GAN-based model for super-resolution problem'" in text
    assert "This smoke run trained on scikit-image's images instead." in text
    assert "Spectrum discrepancy per dataset" not in text  # the frequency suite's table only
    html = study_metrics_table(report, tidy_from_results(results), "html")
    assert html.index("NIQE") < html.index("FID") < html.index("LPIPS") < html.index("PSNR") < html.index("BRISQUE")


def _stand_in():
    """The loss study's spectrum discrepancy as the registry would have it, where this srbench lacks it (the values
    come from the store; the table reads them, it never computes one)."""
    from srbench.metrics import Metric, get_metric

    if _registered("spectrum_discrepancy"):
        return get_metric("spectrum_discrepancy")
    return Metric("spectrum_discrepancy", "Spectrum", 5, False, True, "1", "stand-in",
                  lambda x: math.nan, protocols=("sr", "pirm"))


def test_the_spectrum_table_shows_what_the_store_holds_and_not_computed_otherwise(tmp_path):
    from srbench.metrics.registry import temporarily
    from srbench.protocols import PROTOCOLS
    from srbench.report import spectrum_table, tidy_from_store
    from srbench.store import Store

    known = {("ragp", "set5"): [0.0003, 0.0005], ("ragp", "set14"): [0.0006, 0.0008],
             ("ragp-fft-0.3", "set5"): [0.0001, 0.0002]}
    metric = _stand_in()
    with temporarily(metric):
        versions = PROTOCOLS["sr"].output_versions(["spectrum_discrepancy"])
        with Store(tmp_path / "s.sqlite") as store:
            for (model, dataset), values in known.items():
                for i, v in enumerate(values):
                    store.put(f"k-{model}", f"d-{dataset}", "sr", 4, f"im{i}", {"spectrum_discrepancy": v},
                              versions, None)
                store.label("loss-frequency", model, f"k-{model}", dataset, f"d-{dataset}")
            tidy = tidy_from_store(store.values("loss-frequency"))
        if metric.aggregate is not None or metric.is_dataset_level:
            pytest.skip("the registered metric aggregates otherwise than a mean over images")
        text = spectrum_table(tidy, ["ragp", "ragp-fft-0.3", "ragp-spectral-0.3"], ["set5", "set14"])
    lines = text.splitlines()
    assert lines[0] == "| Model | set5 | set14 |"
    digits = metric.digits
    assert lines[2] == f"| ragp | {0.0004:.{digits}f} | {0.0007:.{digits}f} |"
    assert lines[3] == f"| ragp-fft-0.3 | {0.00015:.{digits}f} | not computed |"
    assert lines[4] == "| ragp-spectral-0.3 | not computed | not computed |"


def test_the_frequency_suites_report_has_the_spectrum_table():
    from srbench.report import study_metrics_table, tidy_from_results

    results = [_result("ragp-gan", "skimage", "sr", {"psnr_y": 24.0})]
    report = _report("loss-frequency", results)
    report.models = {"ragp-gan": "x"}
    text = study_metrics_table(report, tidy_from_results(results))
    assert "### Spectrum discrepancy per dataset (lower is better)" in text
    assert "| ragp-gan | not computed |" in text


# -- DDP ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_study_loss_trains_under_two_process_ddp(tmp_path, ddp_train):
    """RaHinge with the spectral loss and the LPIPS backbone (random AlexNet under smoke): one GAN step on 2 gloo
    processes ends with identical weights on both ranks, as the ESRGAN losses do."""
    sets = ["--set", "data.batch_size=2", "--set", 'loss.adversarial="rahinge"', "--set",
            'loss.perceptual_backbone="lpips"', "--set", 'loss.frequency="spectral"', "--set",
            "loss.frequency_weight=0.3", "--set", "gan.log_every=1"]
    common = ["--variant", "esrgan", "--preset", "smoke", *sets]
    for port, stage, iters in ((29541, "psnr", 1), (29542, "gan", 2)):
        digests = ddp_train(stage, iters, common, tmp_path, port)
        assert digests[0] == digests[1], stage
    header = (tmp_path / "gan/log.csv").read_text().splitlines()[0].split(",")
    assert {"l_percep", "l_spectral", "l_g_adv", "l_d"} <= set(header)


def test_suite_training_names_and_paths_read_as_written(tmp_path, monkeypatch):
    from srbench.ablate import ablate

    folder = tmp_path / "study"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)

    def suite(training: str, extra: str = "") -> str:
        (folder / "s.toml").write_text(f'name = "s"\n{extra}[[variants]]\nname = "a"\ntraining = {training}\n')
        return str(folder / "s.toml")

    # a file beside the suite that carries a recipe's name does not replace the recipe
    (folder / "esrgan").write_text("#!/bin/sh\n")
    assert resolve_suite_configs(load_suite(suite('"esrgan"')), "smoke")["a"].generator == "rrdb23-smoke"
    # a relative path without .toml is read beside the suite too, and one only the working folder has is said
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "other").write_text('generator = "rrdb23"\n')
    with pytest.raises(BadInputError, match=r"variants\[0\]: training = 'recipes/other': a path in a suite file is "
                                            r"relative to the suite's folder"):
        load_suite(suite('"recipes/other"'))
    with pytest.raises(BadInputError, match=r"variants\[0\]: training\.variant = 'recipes/other': a path"):
        load_suite(suite('{ variant = "recipes/other", seed = 3 }'))
    # a name too long for the file system: the recipe loader's one line, naming suite and variant
    with pytest.raises(BadInputError, match=r"^.*s\.toml: variant a: unknown variant 'y+"):
        resolve_suite_configs(load_suite(suite('"' + "y" * 300 + '"')), "smoke")
    # the variant's own error, not the preset table's blamed on it, when both are wrong
    both = suite('{ variant = "esrgan", loss = { perceptual_backbone = "lpips", lpips_weight = 0.1 } }',
                 "[presets.smoke]\ndata = { batch_size = 0 }\n")
    with pytest.raises(BadInputError, match=r"^.*s\.toml: variant a: loss\.lpips_weight adds LPIPS"):
        resolve_suite_configs(load_suite(both), "smoke")
    # a gan stage that cannot train is refused before the psnr stage trains; a ~user dataset name is one line
    common = {"preset": "smoke", "out": str(tmp_path / "out"), "store_path": str(tmp_path / "s.sqlite"),
              "log": lambda _: None, "training_cache": str(tmp_path / "cache")}
    with pytest.raises(BadInputError, match=r"^.*s\.toml: variant a: data\.batch_size 1 with data\.patch_size 32"):
        ablate(suite('{ variant = "rrdb23-smoke", data = { batch_size = 1, patch_size = 32 } }'), **common)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(BadInputError, match=r"^--datasets: cannot expand '~nosuchuser/x': no such user"):
        ablate(suite('"esrgan"'), datasets=["~nosuchuser/x"], **common)
