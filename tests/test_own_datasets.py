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


def test_a_folder_here_named_like_a_known_set_is_asked_about(shared_data, tmp_path, monkeypatch):
    shutil.copytree(shared_data / "benchmark/Set5", tmp_path / "Set5")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInputError, match=r"'Set5' is the dataset set5 \(.*\) and also a folder here: pass "
                                            r"'\./Set5' for the folder"):
        resolve("Set5", shared_data / "benchmark")
    assert resolve("./Set5").location == str(tmp_path / "Set5")
    assert resolve("Set5", tmp_path).location == str(tmp_path / "Set5")  # the data root's set is that folder


def test_two_datasets_of_one_name_are_refused(shared_data, tmp_path):
    for run in ("a", "b"):
        shutil.copytree(shared_data / "benchmark/Set5/HR", tmp_path / run / "HR")
    for given in ([str(tmp_path / "a/HR"), str(tmp_path / "b/HR")], ["skimage", "SKIMAGE"]):
        with pytest.raises(BadInputError, match="are both the dataset"):
            list(evaluate_model("bicubic", given, metrics=["psnr_y"]))
        with pytest.raises(BadInputError, match="are both the dataset"):
            srbench.evaluate("bicubic", given, metrics="psnr_y", workers=1)
