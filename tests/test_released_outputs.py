"""Released SR outputs evaluated as their authors name them (issue 25): the folder's shared affix is found,
stated, and never guessed between."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from srbench.cli import main
from srbench.datasets import load_pair, open_folder
from srbench.errors import BadInputError
from srbench.evaluation import evaluate_model
from srbench.images import read_image, write_png
from srbench.matching import Affix, parse_pattern
from srbench.matlab import imresize

SET5 = ("baby", "bird", "butterfly", "head", "woman")
SET14_SOME = ("baboon", "comic", "zebra")


def _released(shared_data: Path, folder: Path, stem: str, scale: int = 4) -> dict[str, np.ndarray]:
    """Set5's bicubic outputs (from the MATLAB-made LR files) saved under ``stem.format(name=..., scale=...)``."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in SET5:
        lr = read_image(shared_data / f"benchmark/Set5/LR_bicubic/X{scale}/{name}x{scale}.png")
        made[name] = imresize(lr, scale)
        write_png(folder / f"{stem.format(name=name, scale=scale)}.png", made[name])
    return made


@pytest.fixture(scope="module")
def bicubic_set5(shared_data):
    (result,) = evaluate_model("bicubic", [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"])
    return {r["image"]: r["psnr_y"] for r in result.per_image}


@pytest.mark.parametrize("stem", ["{name}_RCAN_x{scale}", "{name}_x{scale}_SR", "{name}_SRGAN-VGG54", "{name}_rlt",
                                  "SR_{name}", "EDSR_{name}_x{scale}_out"])
def test_released_naming_forms_evaluate_out_of_the_box(shared_data, tmp_path, bicubic_set5, stem):
    _released(shared_data, tmp_path / "method", stem)
    (result,) = evaluate_model(str(tmp_path / "method"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"])
    assert not result.skipped
    # The files hold bicubic's pixels: the values must be bicubic's, image by image, bit for bit.
    assert {r["image"]: r["psnr_y"] for r in result.per_image} == bicubic_set5
    pairing = result.provenance["sr_pairing"]
    if stem in ("{name}_x{scale}_SR", "{name}_rlt"):  # suffixes srbench.matching strips: paired by name
        assert pairing == {"rule": "names", "pattern": None, "ignored_files": 0, "data_copies": 0}
    else:
        assert pairing == {"rule": "affix", "pattern": stem, "ignored_files": 0, "data_copies": 0}
        assert any(f"'{stem}'" in w for w in result.warnings)


def test_a_folder_mixing_sets_ignores_the_other_files_with_a_count(shared_data, tmp_path, bicubic_set5):
    folder = tmp_path / "SRGAN"
    _released(shared_data, folder, "{name}_SRGAN-VGG54")
    for name in SET14_SOME:
        write_png(folder / f"{name}_SRGAN-VGG54.png", np.zeros((8, 8, 3), np.uint8))
    (result,) = evaluate_model(str(folder), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"])
    assert {r["image"]: r["psnr_y"] for r in result.per_image} == bicubic_set5
    assert result.provenance["sr_pairing"]["ignored_files"] == 3
    assert any("3 other file(s)" in w and "ignored" in w for w in result.warnings)


def test_two_working_namings_are_an_error_naming_both(shared_data, tmp_path):
    folder = tmp_path / "SRGAN"
    _released(shared_data, folder, "{name}_SRGAN-VGG54")
    _released(shared_data, folder, "{name}_SRGAN-MSE")
    with pytest.raises(BadInputError, match=r"'\{name\}_SRGAN-MSE', '\{name\}_SRGAN-VGG54'.*--sr-pattern"):
        list(evaluate_model(str(folder), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"]))


def test_sr_pattern_picks_one_method_and_is_part_of_the_identity(shared_data, tmp_path, bicubic_set5):
    folder = tmp_path / "SRGAN"
    _released(shared_data, folder, "{name}_SRGAN-VGG54")
    for name in SET5:  # another method's outputs beside them: other pixels, so other values
        write_png(folder / f"{name}_SRGAN-MSE.png", read_image(shared_data / f"benchmark/Set5/HR/{name}.png"))
    data = [str(shared_data / "benchmark/Set5")]
    (vgg,) = evaluate_model(str(folder), data, metrics=["psnr_y"], sr_pattern="{name}_SRGAN-VGG54")
    (mse,) = evaluate_model(str(folder), data, metrics=["psnr_y"], sr_pattern="{name}_SRGAN-MSE.png")
    assert {r["image"]: r["psnr_y"] for r in vgg.per_image} == bicubic_set5
    assert all(r["psnr_y"] == float("inf") for r in mse.per_image)  # the HR itself
    assert vgg.provenance["model_key"] != mse.provenance["model_key"]  # a store never mixes the two


def test_no_working_naming_is_an_error_showing_the_names_and_a_pattern(shared_data, tmp_path):
    folder = tmp_path / "partial"
    _released(shared_data, folder, "{name}_RCAN_x{scale}")
    (folder / "woman_RCAN_x4.png").unlink()  # one image missing: the affix pairs only four of five
    with pytest.raises(BadInputError) as err:
        list(evaluate_model(str(folder), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"]))
    message = str(err.value)
    assert "baby_RCAN_x4.png" in message and "--sr-pattern '{name}_RCAN_x{scale}'" in message


def test_outputs_of_another_dataset_get_no_pattern_that_pairs_by_accident(shared_data, tmp_path):
    # Set5's outputs given for Set14: 'wo{name}_MyNet_x{scale}' pairs Set14's man with Set5's woman, and nothing else.
    folder = tmp_path / "set5_outputs"
    _released(shared_data, folder, "{name}_MyNet_x{scale}")
    with pytest.raises(BadInputError) as err:
        list(evaluate_model(str(folder), [str(shared_data / "benchmark/Set14")], metrics=["psnr_y"]))
    assert "baby_MyNet_x4.png" in str(err.value) and "--sr-pattern" not in str(err.value)


def test_an_explicit_pattern_skips_a_missing_image_with_its_reason(shared_data, tmp_path, bicubic_set5):
    folder = tmp_path / "partial"
    _released(shared_data, folder, "{name}_RCAN_x{scale}")
    (folder / "woman_RCAN_x4.png").unlink()
    (result,) = evaluate_model(str(folder), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"],
                               sr_pattern="{name}_RCAN_x{scale}")
    assert [s["image"] for s in result.skipped] == ["woman"]
    assert "no SR file woman_RCAN_x4.*" in result.skipped[0]["error"]
    assert {r["image"]: r["psnr_y"] for r in result.per_image} == {k: v for k, v in bicubic_set5.items()
                                                                    if k != "woman"}


@pytest.mark.parametrize("scale", [2, 3, 8])
def test_the_scale_field_follows_the_evaluated_scale(shared_data, tmp_path, scale):
    _released(shared_data, tmp_path / "m", "{name}_RDN_x{scale}", scale)
    data = [str(shared_data / "benchmark/Set5")]
    (auto,) = evaluate_model(str(tmp_path / "m"), data, scale=scale, metrics=["psnr_y"])
    (bicubic,) = evaluate_model("bicubic", data, scale=scale, metrics=["psnr_y"])
    assert auto.per_image == bicubic.per_image
    assert auto.provenance["sr_pairing"]["pattern"] == "{name}_RDN_x{scale}"


@pytest.mark.parametrize("pattern", ["{name}_{name}", "{img}_x4", "no_field", "{name}_{scale"])
def test_a_malformed_pattern_is_one_line(tmp_path, pattern):
    write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(BadInputError, match="--sr-pattern"):
        parse_pattern(pattern, 4)


def test_pattern_round_trip():
    assert parse_pattern("{name}_RCAN_x{scale}", 3) == Affix("", "_RCAN_x3")
    assert Affix("", "_RCAN_x3").pattern(3) == "{name}_RCAN_x{scale}"
    assert Affix("SR_", "").pattern(4) == "SR_{name}"


def test_cli_sr_pattern_and_the_affix_line(shared_data, tmp_path, bicubic_set5):
    _released(shared_data, tmp_path / "RCAN", "{name}_RCAN_x{scale}")
    data = str(shared_data / "benchmark/Set5")
    runner = CliRunner()
    auto = runner.invoke(main, ["evaluate", "--model", str(tmp_path / "RCAN"), "--dataset", data,
                                "--metrics", "psnr_y", "--json"])
    assert auto.exit_code == 0, auto.output
    given = runner.invoke(main, ["evaluate", "--model", str(tmp_path / "RCAN"), "--dataset", data,
                                 "--metrics", "psnr_y", "--json", "--sr-pattern", "{name}_RCAN_x{scale}"])
    assert given.exit_code == 0, given.output
    (first,), (second,) = json.loads(auto.stdout), json.loads(given.stdout)
    assert first["psnr_y"] == second["psnr_y"] == pytest.approx(np.mean(list(bicubic_set5.values())), abs=0)
    bad = runner.invoke(main, ["evaluate", "--model", "bicubic", "--dataset", data, "--sr-pattern", "{name}"])
    assert bad.exit_code != 0 and "not a folder" in bad.output and "Traceback" not in bad.output


# ---------------------------------------------------------------------------------------------------------------
# The data's own files beside a method's outputs; SelfExSR-style names; names of another scale; gray as RGB.

def _selfexsr_release(shared_data: Path, folder: Path, method: str, *, with_data: bool) -> dict[str, np.ndarray]:
    """SelfExSR Set5 bicubic outputs named as that release names a method's (``img_001_SRF_4_<method>.png``),
    optionally beside copies of the set's own HR and LR files, as the release ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    data = shared_data / "selfexsr/Set5/image_SRF_4"
    made = {}
    for lr_path in sorted(data.glob("*_LR.png")):
        image = lr_path.name[: -len("_SRF_4_LR.png")]
        made[image] = imresize(read_image(lr_path), 4)
        write_png(folder / f"{image}_SRF_4_{method}.png", made[image])
    if with_data:
        for path in data.iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
    return made


@pytest.fixture(scope="module")
def bicubic_selfexsr_set5(shared_data):
    (result,) = evaluate_model("bicubic", [str(shared_data / "selfexsr/Set5")], metrics=["psnr_y"])
    return {r["image"]: r["psnr_y"] for r in result.per_image}


@pytest.mark.parametrize("with_data", [False, True])
def test_selfexsr_named_outputs_pair_beside_the_release_own_hr_and_lr(shared_data, tmp_path, bicubic_selfexsr_set5,
                                                                      with_data):
    # Each image goes by img_001 and img_001_SRF_4, so two affixes pick the same files: one naming, not two.
    # The HR files beside them were taken for the SR images by name (PSNR inf, exit 0) before.
    _selfexsr_release(shared_data, tmp_path / "MyNet", "MyNet", with_data=with_data)
    (result,) = evaluate_model(str(tmp_path / "MyNet"), [str(shared_data / "selfexsr/Set5")], metrics=["psnr_y"])
    assert not result.skipped
    assert {r["image"]: r["psnr_y"] for r in result.per_image} == bicubic_selfexsr_set5
    assert all(np.isfinite(v) for v in bicubic_selfexsr_set5.values())
    pairing = result.provenance["sr_pairing"]
    n_data = 2 * len(bicubic_selfexsr_set5) if with_data else 0
    assert pairing == {"rule": "affix", "pattern": "{name}_SRF_{scale}_MyNet", "ignored_files": 0,
                       "data_copies": n_data}
    assert any(f"{n_data} file(s)" in w and "copies of" in w for w in result.warnings) == with_data


def test_a_ground_truth_copy_beside_released_outputs_is_set_aside(shared_data, tmp_path, bicubic_set5):
    folder = tmp_path / "RCAN"
    _released(shared_data, folder, "{name}_RCAN_x{scale}")
    for name in SET5:  # the HR files kept next to the outputs: by name alone they are each image's SR file
        (folder / f"{name}.png").write_bytes((shared_data / f"benchmark/Set5/HR/{name}.png").read_bytes())
    (result,) = evaluate_model(str(folder), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"])
    assert {r["image"]: r["psnr_y"] for r in result.per_image} == bicubic_set5
    assert result.provenance["sr_pairing"]["data_copies"] == 5
    assert result.provenance["sr_pairing"]["pattern"] == "{name}_RCAN_x{scale}"


def test_a_folder_of_only_the_data_is_the_data_evaluated_and_says_so(shared_data, tmp_path):
    # NIQE or PI of the HR images themselves is a row of PIRM's tables: the HR folder stays evaluable.
    folder = tmp_path / "HR"
    folder.mkdir()
    for name in SET5:
        (folder / f"{name}.png").write_bytes((shared_data / f"benchmark/Set5/HR/{name}.png").read_bytes())
    (folder / "logo.png").write_bytes(write_png_bytes(np.zeros((8, 8, 3), np.uint8), tmp_path))
    (result,) = evaluate_model(str(folder), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"])
    assert [r["psnr_y"] for r in result.per_image] == [float("inf")] * 5
    assert result.provenance["sr_pairing"]["data_copies"] == 0
    assert sum("equal to its HR image pixel for pixel" in w for w in result.warnings) == 5


def write_png_bytes(pixels: np.ndarray, tmp_path: Path) -> bytes:
    path = tmp_path / "made.png"
    write_png(path, pixels)
    return path.read_bytes()


@pytest.mark.parametrize("stem", ["{name}_x2_SR", "{name}_SRF_2_MyNet", "x2_{name}_EDSR", "{name}_2x"])
def test_a_naming_of_another_scale_is_refused_not_evaluated_at_this_one(shared_data, tmp_path, stem):
    # x2 outputs scored as x4 would lose 4 px of border instead of 2 and be stored as x4 results.
    folder = tmp_path / "released"
    _released(shared_data, folder, stem.replace("{scale}", "2"), scale=2)
    with pytest.raises(BadInputError, match=r"name\(s\) x2, not the evaluated x4: pass --scale 2"):
        list(evaluate_model(str(folder), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"]))
    (at_2,) = evaluate_model(str(folder), [str(shared_data / "benchmark/Set5")], scale=2, metrics=["psnr_y"])
    (bicubic,) = evaluate_model("bicubic", [str(shared_data / "benchmark/Set5")], scale=2, metrics=["psnr_y"])
    assert at_2.per_image == bicubic.per_image


@pytest.mark.parametrize(("files", "given"), [("C2/X2", "C2/X2"), ("C2/X2", "C2"), ("RCAN_x2", "RCAN_x2")])
def test_results_in_a_folder_named_for_another_scale_are_refused(shared_data, tmp_path, files, given):
    # x2 results in X2/ (EDSR's layout), or in a folder named RCAN_x2, were scored as x4 results (33.67 dB, exit 0)
    _released(shared_data, tmp_path / files, "{name}", scale=2)
    given = str(tmp_path / given)
    with pytest.raises(BadInputError, match=r"in folders named for x2, not the evaluated x4: pass --scale 2"):
        list(evaluate_model(given, [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"]))
    (at_2,) = evaluate_model(given, [str(shared_data / "benchmark/Set5")], scale=2, metrics=["psnr_y"])
    (bicubic,) = evaluate_model("bicubic", [str(shared_data / "benchmark/Set5")], scale=2, metrics=["psnr_y"])
    assert at_2.per_image == bicubic.per_image


def test_each_scale_folder_of_one_method_is_read_at_its_scale(shared_data, tmp_path, bicubic_set5):
    # X2/baby.png beside X4/baby.png: two files of one name, 'several SR files match' for every image before
    _released(shared_data, tmp_path / "EDSR" / "X2", "{name}", scale=2)
    _released(shared_data, tmp_path / "EDSR" / "X4", "{name}", scale=4)
    (at_4,) = evaluate_model(str(tmp_path / "EDSR"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"])
    assert {r["image"]: r["psnr_y"] for r in at_4.per_image} == bicubic_set5
    assert at_4.provenance["sr_pairing"]["other_scales"] == 5
    assert any("5 file(s)" in w and "named for another scale" in w for w in at_4.warnings)


def test_selfexsr_named_results_of_another_scale_are_refused(shared_data, tmp_path):
    # img_001_SRF_4_SR.png was paired by the HR's own stem (img_001_SRF_4) at --scale 2 and scored as x2
    _selfexsr_release(shared_data, tmp_path / "B", "SR", with_data=False)
    with pytest.raises(BadInputError, match=r"'\{name\}_SRF_4_SR', which name\(s\) x4, not the evaluated x2"):
        list(evaluate_model(str(tmp_path / "B"), [str(shared_data / "selfexsr/Set5")], scale=2,
                            metrics=["psnr_y"]))


def test_a_selfexsr_scale_folder_given_as_the_dataset_is_read_in_its_layout(shared_data, bicubic_selfexsr_set5):
    # Set5/image_SRF_4 itself: its five _LR files were read as five more HR images (10 images, 25.57 dB)
    (result,) = evaluate_model("bicubic", [str(shared_data / "selfexsr/Set5/image_SRF_4")], metrics=["psnr_y"])
    assert result.dataset == "Set5" and result.n_images == 5
    assert {r["image"]: r["psnr_y"] for r in result.per_image} == bicubic_selfexsr_set5


def test_one_methods_outputs_named_by_a_known_suffix_beside_others_are_not_chosen(shared_data, tmp_path):
    # baby_ESRGAN.png is paired by name (_ESRGAN is a known suffix): beside baby_SRGAN.png and baby_bicubic.png
    # it was evaluated as the folder's results without a word
    for method in ("ESRGAN", "SRGAN", "bicubic"):
        _released(shared_data, tmp_path / "methods", f"{{name}}_{method}")
    with pytest.raises(BadInputError, match=r"under several namings: by name \(e.g. baby_ESRGAN.png\) and "
                                            r"'\{name\}_SRGAN', '\{name\}_bicubic'; pass the one to evaluate as "
                                            r"--sr-pattern"):
        list(evaluate_model(str(tmp_path / "methods"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"]))
    (chosen,) = evaluate_model(str(tmp_path / "methods"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"],
                               sr_pattern="{name}_ESRGAN")
    assert chosen.n_images == 5 and not chosen.skipped


@pytest.mark.parametrize("other", ["{name}_rlt", "{name}_ESRGAN", "Bicubic/{name}x4"])
def test_files_named_after_the_images_beside_a_known_affix_are_another_naming_not_ignored(shared_data, tmp_path,
                                                                                         other):
    # A review: baby.png ... woman.png beside baby_rlt.png ...: the _rlt files were scored (28.43 dB) and the bare
    # names reported as "stand for no image of set5: ignored"
    _released(shared_data, tmp_path / "two", "SR/{name}")
    _released(shared_data, tmp_path / "two", other)
    with pytest.raises(BadInputError, match=r"under several namings: by name \(e.g. baby.png\) and '.*'; pass the "
                                            r"one to evaluate as --sr-pattern, '\{name\}' for the files named after"):
        list(evaluate_model(str(tmp_path / "two"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"]))
    (chosen,) = evaluate_model(str(tmp_path / "two"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"],
                               sr_pattern="{name}")
    assert chosen.n_images == 5 and not chosen.skipped


def test_the_ground_truth_re_saved_beside_the_outputs_is_no_second_naming(shared_data, tmp_path):
    # baby.png holding baby's HR pixels (re-saved: other bytes than the data's file) beside baby_x4.png outputs is
    # the ground truth kept with the results, as a byte-for-byte copy is: the outputs are paired, nothing refused
    from PIL import Image

    _released(shared_data, tmp_path / "gt", "{name}_x{scale}")
    for name in SET5:
        with Image.open(shared_data / f"benchmark/Set5/HR/{name}.png") as hr:
            hr.save(tmp_path / "gt" / f"{name}.png", compress_level=1)
    (result,) = evaluate_model(str(tmp_path / "gt"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"])
    (alone,) = evaluate_model(str(tmp_path / "gt"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"],
                              sr_pattern="{name}_x{scale}")
    assert result.n_images == 5 and result.summary["psnr_y"] == alone.summary["psnr_y"] < 40  # not HR vs HR


@pytest.mark.parametrize(("affix", "scales"), [
    (Affix("", "_x2_SR"), {2}), (Affix("", "x4"), {4}), (Affix("", "_X3"), {3}), (Affix("", "_SRF_8_A+"), {8}),
    (Affix("x2_", "_EDSR"), {2}), (Affix("", "_4x-GAN"), {4}), (Affix("", "_RCAN"), set()),
    (Affix("", "_SRx4net"), set()), (Affix("", "_v2"), set()), (Affix("EDSR_", "_x4_out"), {4}),
])
def test_the_scales_an_affix_names(affix, scales):
    assert affix.scales() == scales


def test_a_gray_image_saved_as_equal_rgb_channels_is_its_gray_channel(shared_data, tmp_path):
    # Set14's bridge is gray; PyTorch releases save its result as RGB with R = G = B.
    data = shared_data / "benchmark/Set14"
    dataset = open_folder(data)
    pair = load_pair(dataset.item("bridge"), 4)
    assert pair.hr.ndim == 2
    sr = imresize(pair.lr, 4)
    (tmp_path / "gray").mkdir()
    (tmp_path / "rgb").mkdir()
    write_png(tmp_path / "gray/bridge.png", sr)
    write_png(tmp_path / "rgb/bridge.png", np.repeat(sr[..., None], 3, axis=2))
    (gray,) = evaluate_model(str(tmp_path / "gray"), [str(data)], metrics=["psnr_y", "ssim_y"])
    (rgb,) = evaluate_model(str(tmp_path / "rgb"), [str(data)], metrics=["psnr_y", "ssim_y"])
    assert [r for r in rgb.per_image] == [r for r in gray.per_image] and len(gray.per_image) == 1
    assert any("three equal channels" in w for w in rgb.warnings)
    # Unequal channels stay refused: no gray form of them is exact.
    tinted = np.repeat(sr[..., None], 3, axis=2)
    tinted[0, 0, 1] ^= 1
    write_png(tmp_path / "rgb/bridge.png", tinted)
    (refused,) = evaluate_model(str(tmp_path / "rgb"), [str(data)], metrics=["psnr_y"])
    assert [s["image"] for s in refused.skipped if s["image"] == "bridge"] == ["bridge"]
    assert "3 channels, HR is" in next(s["error"] for s in refused.skipped if s["image"] == "bridge")


def test_linked_subfolders_of_an_sr_folder_are_entered_once(shared_data, tmp_path, bicubic_set5):
    # A results tree assembled from links (results/Set5 -> ../runs/42/Set5) was "the SR folder holds no images".
    _released(shared_data, tmp_path / "runs/42/Set5", "{name}_RCAN_x{scale}")
    (tmp_path / "results").mkdir()
    (tmp_path / "results/Set5").symlink_to(tmp_path / "runs/42/Set5", target_is_directory=True)
    (tmp_path / "runs/42/Set5/loop").symlink_to(tmp_path / "runs/42", target_is_directory=True)  # a loop ends
    (result,) = evaluate_model(str(tmp_path / "results"), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"])
    assert {r["image"]: r["psnr_y"] for r in result.per_image} == bicubic_set5
    assert result.provenance["sr_pairing"]["ignored_files"] == 0


def test_a_release_hr_of_another_crop_is_never_the_sr_naming(tmp_path):
    # SelfExSR reads each image's HR from its smallest scale's folder: the x4 folder's HR (another crop) is no
    # byte copy of it, and a folder holding it with outputs for some images only named '{name}_SRF_4_HR'.
    rng = np.random.default_rng(3)
    data, folder = tmp_path / "Set5", tmp_path / "release"
    for sub in ("image_SRF_2", "image_SRF_4"):
        (data / sub).mkdir(parents=True)
    folder.mkdir()
    for i in range(1, 6):
        hr = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
        write_png(data / f"image_SRF_2/img_00{i}_SRF_2_HR.png", hr)
        write_png(data / f"image_SRF_2/img_00{i}_SRF_2_LR.png", hr[::2, ::2])
        write_png(data / f"image_SRF_4/img_00{i}_SRF_4_HR.png", hr[:44, :36])
        write_png(data / f"image_SRF_4/img_00{i}_SRF_4_LR.png", hr[:44:4, :36:4])
        for kind in ("HR", "LR"):
            (folder / f"img_00{i}_SRF_4_{kind}.png").write_bytes((data / f"image_SRF_4/img_00{i}_SRF_4_{kind}.png")
                                                                  .read_bytes())
        if i <= 3:  # outputs for three images so far
            write_png(folder / f"img_00{i}_SRF_4_MyNet.png", hr[:44, :36] // 2)
    with pytest.raises(BadInputError, match=r"--sr-pattern '\{name\}_SRF_\{scale\}_MyNet'") as err:
        list(evaluate_model(str(folder), [str(data)], metrics=["psnr_y"]))
    assert "_HR'" not in str(err.value) and "_LR'" not in str(err.value)


def test_short_image_names_are_not_found_inside_longer_ones(tmp_path):
    # Images 1..12 of a plain folder, evaluated from copies of their own files, one re-saved (other bytes, same
    # pixels): image 1 is not "in" 12.png, so no copy is set aside and every image is evaluated.
    data, folder = tmp_path / "data", tmp_path / "sr"
    data.mkdir()
    folder.mkdir()
    rng = np.random.default_rng(4)
    for i in range(1, 13):
        write_png(data / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        (folder / f"{i}.png").write_bytes((data / f"{i}.png").read_bytes())
    from PIL import Image

    Image.open(data / "12.png").save(folder / "12.png", compress_level=0)
    assert (folder / "12.png").read_bytes() != (data / "12.png").read_bytes()
    (result,) = evaluate_model(str(folder), [str(data)], metrics=["psnr_y"])
    assert not result.skipped and len(result.per_image) == 12
    assert result.provenance["sr_pairing"]["data_copies"] == 0
