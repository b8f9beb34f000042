"""What a training run and an ablation train on and from: no paper-scale run on srbench's evaluation photos, the
data root and training set given to ablate reach every variant, keys a stage never reads are refused, a resume
keeps the weights it started from, interpolations follow their inputs, and a rewritten report holds this run's
files only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from srbench.ablate import ablate, load_suite, resolve_suite_configs
from srbench.ablate.run import _interpolate
from srbench.archs import get_generator
from srbench.checkpoints import load_generator, read_metadata, save_checkpoint
from srbench.cli import main
from srbench.errors import BadInputError
from srbench.report import _remove_former
from srbench.train import Trainer, train
from srbench.train.config import check_training_set, resolve_config
from srbench.weightfiles import CheckpointError


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("preset", ["short", "paper"])
def test_the_real_presets_never_train_on_the_evaluation_photos(preset, tmp_path):
    config = resolve_config("esrgan", preset)
    assert config.data.train == "skimage"  # the field's default, scikit-image's evaluation set
    with pytest.raises(BadInputError, match=f"the {preset} preset would train on 'skimage', srbench's evaluation"):
        check_training_set(config)
    check_training_set(resolve_config("esrgan", preset, overrides={"data": {"train": str(tmp_path)}}))
    check_training_set(resolve_config("esrgan", "smoke"))  # trains on skimage-train, other photos
    res = _cli("train", "--variant", "srgan-nobn", "--stage", "psnr", "--preset", preset, "--iters", "1",
               "--out", tmp_path / "run")
    assert res.exit_code == 1 and "--data (srbench train)" in res.output and not (tmp_path / "run").exists()
    with pytest.raises(BadInputError, match="--train-data"):  # refused before anything trains
        ablate("esrgan", preset=preset, data_root=str(tmp_path), out=str(tmp_path / "report"),
               store_path=str(tmp_path / "s.sqlite"), log=lambda _: None)
    assert not (tmp_path / "report").exists()


def test_ablate_gives_its_training_set_and_data_root_to_every_variant(tmp_path):
    suite = load_suite("esrgan")
    configs = resolve_suite_configs(suite, "paper", train_data="div2k-train-hr", data_root=str(tmp_path))
    assert {(c.data.train, c.data.data_root) for c in configs.values()} == {("div2k-train-hr", str(tmp_path))}
    untouched = resolve_suite_configs(suite, "smoke")
    assert {(c.data.train, c.data.data_root) for c in untouched.values()} == {("skimage-train", None)}


def test_keys_the_psnr_stage_never_reads_are_refused():
    for key, value in (("discriminator", '"vgg8-critic"'), ("ema_decay", "0.5"), ("d_lr", "9"), ("d_num_feat", "8")):
        with pytest.raises(BadInputError, match=f"psnr.{key}: the psnr stage trains no discriminator"):
            resolve_config("srgan-nobn", "smoke", [f"psnr.{key}={value}"])
        resolve_config("srgan-nobn", "smoke", [f"gan.{key}={value}"])


def _tiny(psnr_iters: int = 2):
    sets = ["data.batch_size=2", f"psnr.iters={psnr_iters}", "gan.iters=4", "psnr.val_every=100", "gan.val_every=100",
            "psnr.checkpoint_every=2", "gan.checkpoint_every=2"]
    return resolve_config("rrdb23-smoke", "smoke", sets)


def test_a_resume_from_other_starting_weights_is_refused(tmp_path):
    cfg = _tiny()
    for run in ("a", "b"):
        torch.manual_seed(len(run))
        train(resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", "psnr.iters=2", "psnr.val_every=100",
                                                       f"seed={ord(run)}"]), "psnr", tmp_path / run, progress=False)
    start_a, start_b = (str(tmp_path / run / "psnr/g_final.safetensors") for run in ("a", "b"))

    def stop_at_2(iteration, logs):
        if iteration == 2:
            raise KeyboardInterrupt

    with pytest.raises(Exception, match="interrupted at iteration 2"):
        Trainer(cfg, "gan", tmp_path / "gan", init=start_a, progress=False).run(on_iteration=stop_at_2)
    with pytest.raises(CheckpointError, match=r"trained from .*a/psnr/g_final.safetensors \(sha256 [0-9a-f]{12}\), "
                                              r"not .*b/psnr/g_final.safetensors"):
        Trainer(cfg, "gan", tmp_path / "gan", init=start_b, progress=False).run(resume=True)
    done = Trainer(cfg, "gan", tmp_path / "gan", init=start_a, progress=False).run(resume=True)
    assert done.iterations == 4
    assert read_metadata(tmp_path / "gan/gan/g_final.safetensors")["extra"]["init"] == start_a


def test_a_resume_on_other_images_is_refused(tmp_path, shared_data):
    # the same folder with other images in it: iterations 3-4 trained on them, recorded as one set
    import shutil

    data = tmp_path / "imgs"
    data.mkdir()
    for i in (1, 2, 3, 4):
        shutil.copy(shared_data / f"train/T91/t{i}.png", data)
    cfg = resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", "psnr.iters=2", "psnr.val_every=100",
                                                   f"data.train='{data}'", "data.patch_size=32"])
    train(cfg, "psnr", tmp_path / "run", progress=False)
    recorded = read_metadata(tmp_path / "run/psnr/g_final.safetensors")["extra"]
    assert recorded["data_sha256"]["train"] and recorded["data_sha256"]["val"] is None  # held out of train
    longer = resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", "psnr.iters=4", "psnr.val_every=100",
                                                      f"data.train='{data}'", "data.patch_size=32"])
    (data / "t4.png").unlink()
    shutil.copy(shared_data / "train/T91/t50.png", data)
    with pytest.raises(CheckpointError, match=rf"trained on other images \(data.train '{data}': content "
                                              r"[0-9a-f]{12} there, [0-9a-f]{12} now\)"):
        Trainer(longer, "psnr", tmp_path / "run", progress=False).run(resume=True)
    (data / "t50.png").unlink()
    shutil.copy(shared_data / "train/T91/t4.png", data)
    assert Trainer(longer, "psnr", tmp_path / "run", progress=False).run(resume=True).iterations == 4


def test_extending_the_psnr_stage_a_gan_stage_started_from_is_refused(tmp_path):
    # psnr --resume --iters 6 replaced psnr/g_final.safetensors: the gan stage could not be resumed, and its
    # record named weights that were gone
    cfg = _tiny()
    train(cfg, "psnr", tmp_path, progress=False)
    train(cfg, "gan", tmp_path, progress=False)
    before = (tmp_path / "psnr/g_final.safetensors").read_bytes()
    longer = resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", "psnr.iters=3", "psnr.val_every=100"])
    with pytest.raises(BadInputError, match=r"psnr/g_final.safetensors is where the gan stage in .*gan started from "
                                            r"\(g_\w+.json names it\): training the psnr stage further would replace"):
        Trainer(longer, "psnr", tmp_path, progress=False).run(resume=True)
    assert (tmp_path / "psnr/g_final.safetensors").read_bytes() == before
    assert read_metadata(tmp_path / "gan/g_final.safetensors")["extra"]["init_sha256"] == \
        __import__("hashlib").sha256(before).hexdigest()  # the record names the weights, not only their path
    # A copy of the run (or a relative --out from another folder): its sidecars name the first run's path, and the
    # extension was accepted, replacing the weights the copy's gan stage started from
    import shutil

    shutil.copytree(tmp_path / "psnr", tmp_path / "copy/psnr")
    shutil.copytree(tmp_path / "gan", tmp_path / "copy/gan")
    with pytest.raises(BadInputError, match=r"is where the gan stage in .*copy/gan started from"):
        Trainer(longer, "psnr", tmp_path / "copy", progress=False).run(resume=True)
    assert (tmp_path / "copy/psnr/g_final.safetensors").read_bytes() == before


def test_a_resume_honours_the_iters_its_file_sets(tmp_path):
    # the file's edited iters = 4 was replaced by the recorded 2 ('t/psnr: 2 iterations', exit 0); --set was honoured
    toml = tmp_path / "it.toml"
    text = 'name = "t"\ngenerator = "rrdb23"\n[data]\nbatch_size = 2\n[psnr]\niters = {}\nval_every = 100\n'
    toml.write_text(text.format(2))
    args = ["train", "--variant", toml, "--stage", "psnr", "--preset", "smoke", "--out", tmp_path / "run"]
    assert _cli(*args).exit_code == 0
    toml.write_text(text.format(4))
    res = _cli(*args, "--resume")
    assert res.exit_code == 0 and "t/psnr: 4 iterations" in res.output, res.output


def test_interpolations_are_made_again_when_their_inputs_change(tmp_path):
    variant = get_generator("rrdb23-smoke")
    nets = {}
    for name, seed in (("psnr", 1), ("gan", 2)):
        torch.manual_seed(seed)
        nets[name] = variant.build()
        save_checkpoint(nets[name], tmp_path / f"{name}.safetensors", arch=variant.arch, config=dict(variant.config),
                        variant=variant.name, stage=name)
    suite = SimpleNamespace(interp_variant="esrgan", alphas=(0.0,))
    plan = SimpleNamespace(suite=suite, out_dir=tmp_path / "out", preset="smoke")

    def alpha0(psnr, gan):
        report = SimpleNamespace(models={"esrgan-psnr": psnr, "esrgan-gan": gan})
        _interpolate(plan, report)
        return load_generator(report.models["esrgan-interp-alpha0.0"]).state_dict()

    first = alpha0(tmp_path / "psnr.safetensors", tmp_path / "gan.safetensors")
    assert all(torch.equal(first[k], v) for k, v in nets["psnr"].state_dict().items())
    swapped = alpha0(tmp_path / "gan.safetensors", tmp_path / "psnr.safetensors")  # other --checkpoints
    assert all(torch.equal(swapped[k], v) for k, v in nets["gan"].state_dict().items())


def test_a_rewritten_report_keeps_no_file_of_an_earlier_run(tmp_path):
    for name in ("failures.txt", "pirm_plane_nosuch.png", "pirm_plane_set5.png", "table.md", "notes.txt"):
        (tmp_path / name).write_text("x")
    _remove_former(tmp_path, [tmp_path / "pirm_plane_set5.png", tmp_path / "table.md"])
    # the earlier run's failures and the plane of a dataset no longer evaluated go; the user's own file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "pirm_plane_set5.png", "table.md"]


def test_a_mistyped_dataset_or_training_set_is_refused_before_any_training(tmp_path):
    for option in ({"datasets": ["skimage", "set55"]}, {"train_data": "div2k-trian"}):
        with pytest.raises(BadInputError, match=r"'(set55|div2k-trian)' is neither a known dataset .* nor a folder"):
            ablate("esrgan", preset="smoke", out=str(tmp_path / "report"), store_path=str(tmp_path / "s.sqlite"),
                   log=lambda _: None, **option)
    assert not (tmp_path / "report").exists()


def test_interp_without_an_alpha_says_so(tmp_path):
    for name in ("psnr.pth", "gan.pth"):
        (tmp_path / name).write_bytes(b"")
    res = _cli("interp", tmp_path / "psnr.pth", tmp_path / "gan.pth", "--alpha", " , ", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "no alpha given" in res.output and not (tmp_path / "o").exists()


def _vgg19_file(path, seed):
    """A VGG19 features state dict of random values in half precision (40 MB): a stand-in for another network."""
    from torchvision.models import vgg19

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in vgg19(weights=None).features.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    torch.save({f"features.{k}": (torch.randn(s, generator=generator) * 0.05).half() for k, s in shapes.items()},
               path)
    return path


def test_the_perceptual_network_s_file_keys_the_gan_stage_by_content(tmp_path, monkeypatch):
    # A swapped VGG19 file at the same path (or in the weights folder, for "imagenet") reused the stage trained with
    # the other network: 21.40 dB for a stage that trains to 22.50 dB.
    from srbench import paths
    from srbench.archs import VGG19_FILENAME
    from srbench.images import file_sha256
    from srbench.train.cache import stage_key

    data = {"train": "t" * 64, "val": None}
    monkeypatch.setenv(paths.WEIGHTS_ENV, str(tmp_path))
    own = tmp_path / "mine.pth"
    keys = {}
    for size in (1, 2):  # two files of other sizes: an in-place rewrite within one mtime tick keeps no stale hash
        torch.save({"features.0.weight": torch.zeros(size)}, own)
        (tmp_path / VGG19_FILENAME).write_bytes(own.read_bytes())
        for vgg in ("imagenet", str(own)):
            cfg = resolve_config("rrdb23-smoke", "smoke", [f"loss.vgg_weights='{vgg}'"])
            key = stage_key(cfg, "gan", data=data, init=None, device="cpu")
            assert key.inputs["pretrained"] == {"perceptual": file_sha256(own)}
            keys[size, vgg] = key.fingerprint
            assert stage_key(cfg, "psnr", data=data, init=None, device="cpu").inputs.get("pretrained") is None
    assert len(set(keys.values())) == 2  # one per content, whichever way the file is named
    # Random backbones read no file: smoke stages keep the fingerprints they had.
    smoke = stage_key(resolve_config("rrdb23-smoke", "smoke"), "gan", data=data, init=None, device="cpu")
    assert "pretrained" not in smoke.inputs
    # LPIPS beside the perceptual term reads the weights folder's AlexNet file.
    from srbench.metrics.lpips_alex import ALEXNET_FILENAME

    (tmp_path / ALEXNET_FILENAME).write_bytes(b"alexnet")
    both = stage_key(resolve_config("rrdb23-smoke", "smoke", ["loss.lpips_weight=0.1"]), "gan", data=data, init=None,
                     device="cpu")
    assert both.inputs["pretrained"] == {"lpips": file_sha256(tmp_path / ALEXNET_FILENAME)}


def test_a_resume_with_another_perceptual_network_is_refused(tmp_path):
    vgg = _vgg19_file(tmp_path / "vgg19.pth", 1)
    cfg = resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", "gan.iters=2", "gan.val_every=100",
                                                   "data.patch_size=32", f"loss.vgg_weights='{vgg}'",
                                                   "psnr.iters=1", "psnr.val_every=100"])
    train(cfg, "psnr", tmp_path / "run", progress=False)

    def stop_at_1(iteration, logs):
        if iteration == 1:
            raise KeyboardInterrupt

    with pytest.raises(Exception, match="interrupted at iteration 1"):
        Trainer(cfg, "gan", tmp_path / "run", progress=False).run(on_iteration=stop_at_1)
    first = vgg.read_bytes()
    _vgg19_file(vgg, 2)
    with pytest.raises(CheckpointError, match=r"trained with other pretrained loss networks \(perceptual "
                                              r".*/vgg19\.pth: sha256 [0-9a-f]{12} there, [0-9a-f]{12} now\)"):
        Trainer(cfg, "gan", tmp_path / "run", progress=False).run(resume=True)
    vgg.write_bytes(first)
    assert Trainer(cfg, "gan", tmp_path / "run", progress=False).run(resume=True).iterations == 2


def test_a_gan_stage_whose_discriminator_would_normalise_one_value_is_refused_before_training(tmp_path):
    # batch 1 at 32x32 patches: torch's "Expected more than 1 value per channel when training" at the first step
    cfg = resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=1", "data.patch_size=32", "psnr.iters=1",
                                                   "psnr.val_every=100", "gan.iters=1", "gan.val_every=100"])
    train(cfg, "psnr", tmp_path, progress=False)  # the generator alone has no such limit
    with pytest.raises(BadInputError, match=r"^data.batch_size 1 with data.patch_size 32: the vgg discriminator's "
                                            r"last BatchNorm would normalise one value per channel"):
        train(cfg, "gan", tmp_path, progress=False)
    critic = resolve_config({"variant": "rrdb23-smoke", "gan": {"discriminator": "vgg8-critic", "iters": 1,
                                                               "val_every": 100}, "data": {"batch_size": 1,
                                                                                           "patch_size": 32}},
                            "smoke")
    assert train(critic, "gan", tmp_path / "critic", init=str(tmp_path / "psnr/g_final.safetensors"),
                 progress=False).iterations == 1  # no BatchNorm in the critic


def test_a_resume_under_other_versions_is_said_and_recorded(tmp_path, monkeypatch, caplog):
    import srbench.train.loop as loop

    cfg = resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", "psnr.iters=2", "psnr.val_every=100",
                                                   "data.patch_size=32"])

    def stop_at_1(iteration, logs):
        if iteration == 1:
            raise KeyboardInterrupt

    with pytest.raises(Exception, match="interrupted at iteration 1"):
        Trainer(cfg, "psnr", tmp_path, progress=False).run(on_iteration=stop_at_1)
    before = loop._versions()
    after = {**before, "torch": before["torch"] + ".later"}
    monkeypatch.setattr(loop, "_versions", lambda: dict(after))
    with caplog.at_level("WARNING", logger="srbench.train.loop"):
        assert Trainer(cfg, "psnr", tmp_path, progress=False).run(resume=True).iterations == 2
    (warning,) = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert f"torch {after['torch']}; it was trained under srbench {before['srbench']}, torch {before['torch']} " \
           "until iteration 1: the weights will not be bitwise" in warning
    recorded = read_metadata(tmp_path / "psnr/g_final.safetensors")["extra"]["trained_under"]
    assert recorded == [before, after]


def test_an_unreadable_pretrained_file_is_that_stage_s_error_naming_it(tmp_path, monkeypatch):
    # The raw OSError of hashing it stopped a whole ablation; loading it is a CheckpointError (one variant fails).
    from srbench import paths
    from srbench.metrics.lpips_alex import ALEXNET_FILENAME
    from srbench.train.cache import stage_key

    monkeypatch.setenv(paths.WEIGHTS_ENV, str(tmp_path))
    (tmp_path / ALEXNET_FILENAME).symlink_to("/proc/self/mem")  # a file whose reading fails (EIO)
    cfg = resolve_config("rrdb23-smoke", "smoke", ["loss.lpips_weight=0.1"])
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / ALEXNET_FILENAME}: cannot read checkpoint \("):
        stage_key(cfg, "gan", data={"train": "t" * 64, "val": None}, init=None, device="cpu")


def test_a_resume_keeps_the_run_s_length_when_its_config_json_is_gone_or_its_out_unexpanded(tmp_path, monkeypatch):
    # A review: --out=~/run (the shell leaves ~ as it is) or a run folder without psnr/config.json resumed to the
    # preset's 200 iterations and replaced the finished run's g_final
    monkeypatch.setenv("HOME", str(tmp_path))
    args = ["train", "--variant", "rrdb23-smoke", "--stage", "psnr", "--preset", "smoke", "--set", "data.batch_size=2",
            "--set", "data.patch_size=32", "--set", "psnr.val_every=100"]
    assert _cli(*args, "--iters", "2", "--out=~/run").exit_code == 0
    assert (tmp_path / "run/psnr/g_final.safetensors").is_file()
    (tmp_path / "run/psnr/config.json").unlink()
    res = _cli(*args, "--out=~/run", "--resume")
    assert res.exit_code == 0 and "psnr: 2 iterations" in res.output, res.output


def test_a_damaged_state_or_log_is_one_line_not_a_traceback(tmp_path):
    cfg = _tiny()
    train(cfg, "psnr", tmp_path, progress=False)
    longer = _tiny(3)
    # a cut log line is dropped like the rows past the resumed iteration: the resume goes on
    log = tmp_path / "psnr/log.csv"
    log.write_text(log.read_text() + "xx,1\n")
    assert Trainer(longer, "psnr", tmp_path, progress=False).run(resume=True).iterations == 3
    state_path = tmp_path / "psnr/state.pt"
    good = state_path.read_bytes()
    for damage in ("drop g", "wrong shape", "bad json"):
        state = torch.load(state_path, weights_only=True)
        if damage == "drop g":
            del state["g"]
        elif damage == "wrong shape":
            state["g"][next(iter(state["g"]))] = torch.zeros(1)
        else:
            state["trained_under"] = "{not json"
        torch.save(state, state_path)
        even_longer = _tiny(4)
        with pytest.raises(CheckpointError, match=r"state\.pt: not a whole training state of this run \("):
            Trainer(even_longer, "psnr", tmp_path, progress=False).run(resume=True)
        state_path.write_bytes(good)


def test_a_run_of_another_configuration_is_not_labelled_as_its_variant(tmp_path):
    # A review: esrgan --set generator_config.num_block=1 recorded and showed variant rrdb23-smoke, and evaluate
    # stored it under that name; a sidecar edited to name a variant is not believed either
    import json

    from srbench.checkpoints import generator_info, load_generator
    from srbench.sources import source_name

    cfg = resolve_config("esrgan", "smoke", ["data.batch_size=2", "psnr.iters=1", "psnr.val_every=100",
                                             "generator_config.num_block=1"])
    train(cfg, "psnr", tmp_path / "nb1", progress=False)
    final = tmp_path / "nb1/psnr/g_final.safetensors"
    assert read_metadata(final)["variant"] is None
    assert generator_info(load_generator(final))["variant"] is None and source_name(str(final)) == "g_final"
    sidecar = final.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "variant": "rrdb23"}))
    assert generator_info(load_generator(final))["variant"] is None and source_name(str(final)) == "g_final"
    plain = resolve_config("esrgan", "smoke", ["data.batch_size=2", "psnr.iters=1", "psnr.val_every=100"])
    train(plain, "psnr", tmp_path / "plain", progress=False)
    assert source_name(str(tmp_path / "plain/psnr/g_final.safetensors")) == "rrdb23-smoke"
