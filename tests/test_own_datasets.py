"""A researcher's own dataset folders: LR files as they name them (never silently replaced by imresize's), images
in subfolders counted, '.' named after its folder, a folder beside the command that shares a known set's name, and
two datasets of one name refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import srbench
from srbench.datasets import resolve
from srbench.errors import BadInputError
from srbench.evaluation import evaluate_model
from srbench.images import read_image, write_png

SET5 = ("baby", "bird", "butterfly", "head", "woman")


def _blurred_lr(hr: np.ndarray) -> np.ndarray:
    """Another degradation than bicubic (every 4th pixel): its numbers differ from imresize's LR's."""
    h, w = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
    return np.ascontiguousarray(hr[:h:4, :w:4])


@pytest.fixture(scope="module")
def own_lr(shared_data, tmp_path_factory):
    """Set5's HR with LR files of another degradation, in the standard place and names."""
    root = tmp_path_factory.mktemp("own")
    for name in SET5:
        hr = read_image(shared_data / f"benchmark/Set5/HR/{name}.png")
        write_png(root / "ref" / "HR" / f"{name}.png", hr)
        write_png(root / "ref" / "LR_bicubic" / "X4" / f"{name}x4.png", _blurred_lr(hr))
    (result,) = evaluate_model("bicubic", [str(root / "ref")], metrics=["psnr_y"])
    return root, {r["image"]: r["psnr_y"] for r in result.per_image}


@pytest.mark.parametrize(("folder", "stem", "ext"), [("x4", "{name}x4", "png"), ("X4", "{name}_x4", "png"),
                                               ("X4", "{name}_LR", "png"), ("X4", "{name}x4", "bmp"),
                                               ("X4", "{name}", "png")])
def test_lr_files_as_users_name_them_are_read(own_lr, tmp_path, folder, stem, ext):
    root, reference = own_lr
    shutil.copytree(root / "ref" / "HR", tmp_path / "HR")
    for name in SET5:
        lr = read_image(root / "ref" / "LR_bicubic" / "X4" / f"{name}x4.png")
        write_png(tmp_path / "LR_bicubic" / folder / f"{stem.format(name=name)}.{ext}", lr)
    (result,) = evaluate_model("bicubic", [str(tmp_path)], metrics=["psnr_y"])
    assert {r["image"]: r["psnr_y"] for r in result.per_image} == reference
    assert result.provenance["lr_source"] == {"file": 5}


def test_lr_files_none_of_which_pairs_are_refused_not_replaced(own_lr, tmp_path):
    root, _ = own_lr
    shutil.copytree(root / "ref" / "HR", tmp_path / "HR")
    for i, name in enumerate(SET5):
        lr = read_image(root / "ref" / "LR_bicubic" / "X4" / f"{name}x4.png")
        write_png(tmp_path / "LR_bicubic" / "X4" / f"img{i}.png", lr)
    with pytest.raises(BadInputError, match=r"X4: 5 LR image\(s\), none named after an HR image .*looked for "
                                            r"babyx4, baby_x4, baby_LR or baby"):
        list(evaluate_model("bicubic", [str(tmp_path)], metrics=["psnr_y"]))


def test_images_in_subfolders_of_a_plain_folder_are_counted(shared_data, tmp_path):
    write_png(tmp_path / "baby.png", read_image(shared_data / "benchmark/Set5/HR/baby.png"))
    for sub, name in (("city", "bird"), ("nature", "head")):
        write_png(tmp_path / sub / f"{name}.png", read_image(shared_data / f"benchmark/Set5/HR/{name}.png"))
    (result,) = evaluate_model("bicubic", [str(tmp_path)], metrics=["psnr_y"])
    assert result.n_images == 1
    assert any("2 image(s) in subfolders of" in w and "were not read" in w for w in result.warnings)


def test_the_current_folder_is_named_after_itself(shared_data, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    shutil.copytree(shared_data / "benchmark/Set5/HR", folder)
    monkeypatch.chdir(folder)
    (result,) = evaluate_model("bicubic", ["."], metrics=["psnr_y"])
    assert result.dataset == "mine" and result.provenance["dataset_location"] == str(folder)
    monkeypatch.chdir(folder / "..")
    assert resolve("mine").location == str(folder)


def test_a_folder_here_named_like_a_known_set_is_named_in_the_warnings(shared_data, tmp_path, monkeypatch):
    shutil.copytree(shared_data / "benchmark/Set5", tmp_path / "Set5")
    monkeypatch.chdir(tmp_path)
    named = resolve("Set5", shared_data / "benchmark")
    assert named.location == str(shared_data / "benchmark/Set5")
    assert named.notes == (f"--dataset Set5 is the named set set5 in {shared_data / 'benchmark/Set5'}, not the "
                           "folder ./Set5 here (pass that path to evaluate the folder)",)
    assert resolve("./Set5").location == str(tmp_path / "Set5")
    assert resolve("Set5", tmp_path).notes == ()  # the data root's set is that very folder
    # SR outputs named after the set beside the command are evaluated as before, with the note
    (result,) = evaluate_model(str(tmp_path / "Set5/HR"), ["Set5"], metrics=["psnr_y"],
                               data_root=shared_data / "benchmark")
    assert result.summary["psnr_y"] == float("inf") and named.notes[0] in result.warnings


def test_one_lr_file_is_never_two_images_lr(tmp_path):
    rng = np.random.default_rng(0)
    for stem in ("a", "a_x4", "b", "b_LR"):
        write_png(tmp_path / "HR" / f"{stem}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        write_png(tmp_path / "LR_bicubic" / "X4" / f"{stem}.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    lrs = {it.name: it.lr_paths[4].name for it in resolve(str(tmp_path)).items}
    assert lrs == {"a": "a.png", "a_x4": "a_x4.png", "b": "b.png", "b_LR": "b_LR.png"}  # one naming: the plain one


def test_two_lr_folders_of_one_scale_are_refused(tmp_path):
    write_png(tmp_path / "HR" / "a.png", np.zeros((16, 16, 3), np.uint8))
    for folder in ("X4", "x4"):
        write_png(tmp_path / "LR_bicubic" / folder / "ax4.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(BadInputError, match=r"X4 and x4 are both x4 LR folders: keep one"):
        resolve(str(tmp_path))


def test_two_datasets_of_one_name_are_refused(shared_data, tmp_path):
    for run in ("a", "b"):
        shutil.copytree(shared_data / "benchmark/Set5/HR", tmp_path / run / "HR")
    shutil.copytree(shared_data / "benchmark/Set5/HR", tmp_path / "c/hr")
    cases = {"datasets named 'HR' and 'HR'": [str(tmp_path / "a/HR"), str(tmp_path / "b/HR")],
             "datasets named 'skimage' and 'skimage'": ["skimage", "SKIMAGE"],
             "datasets named 'HR' and 'hr'": [str(tmp_path / "a/HR"), str(tmp_path / "c/hr")],  # one --out file
             "the same folder": ["set5", str(shared_data / "benchmark/Set5")]}
    for what, given in cases.items():
        with pytest.raises(BadInputError, match=f"are {what}: give each dataset once"):
            list(evaluate_model("bicubic", given, metrics=["psnr_y"], data_root=shared_data / "benchmark"))
    with pytest.raises(BadInputError, match="are datasets named 'HR' and 'HR'"):
        srbench.evaluate("bicubic", cases["datasets named 'HR' and 'HR'"], metrics="psnr_y", workers=1)


def test_a_full_size_sr_is_cropped_as_its_hr_with_a_note(shared_data, tmp_path):
    # Set5 at x3: four HR images are not a multiple of 3; an SR saved at the full HR size is cropped like them
    for name in SET5:
        write_png(tmp_path / f"{name}.png", read_image(shared_data / f"benchmark/Set5/HR/{name}.png"))
    (result,) = evaluate_model(str(tmp_path), [str(shared_data / "benchmark/Set5")], metrics=["psnr_y"], scale=3)
    assert all(r["psnr_y"] == float("inf") for r in result.per_image)  # the HR itself, cropped the same way
    cropped = [w for w in result.warnings if "the full HR size: cropped to" in w]
    assert len(cropped) == 4 and any("baby.png: 512x512, the full HR size: cropped to 510x510" in w for w in cropped)
