"""Dataset layouts, name resolution, the embedded set and known-copy verification."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from srbench import datasets as D
from srbench.errors import BadInputError, DatasetNotFoundError
from srbench.images import read_image
from srbench.manifests import verify_folder


def test_benchmark_layout_pairs_hr_with_matlab_lr(shared_data):
    ds = D.open_folder(shared_data / "benchmark/Set5")
    assert ds.layout == "benchmark"
    assert [it.name for it in ds.items] == ["baby", "bird", "butterfly", "head", "woman"]
    assert sorted(ds.item("woman").lr_paths) == [2, 3, 4, 8]
    pair = ds.load_pair(ds.item("woman"), 3)
    assert pair.lr_source == "file" and pair.cropped_from == (344, 228)
    assert pair.hr.shape == (342, 228, 3) and pair.lr.shape == (114, 76, 3)


def test_selfexsr_layout(shared_data):
    ds = D.open_folder(shared_data / "selfexsr/Set14")
    assert ds.layout == "selfexsr" and len(ds) == 14
    it = ds.item("img_003")
    pair = ds.load_pair(it, 4)
    assert pair.hr.ndim == 2 and pair.lr.shape == (128, 128)  # bridge is single-channel
    assert pair.lr_source == "file"
    # No x2 files: LR is made with MATLAB imresize from the (already cropped) HR.
    assert ds.load_pair(it, 2).lr_source == "imresize"


def test_plain_folder_makes_lr_with_matlab_imresize(shared_data, tmp_path):
    shutil.copy(shared_data / "benchmark/Set5/HR/bird.png", tmp_path / "bird.png")
    ds = D.open_folder(tmp_path)
    assert ds.layout == "folder"
    pair = ds.load_pair(ds.items[0], 4)
    lr = read_image(shared_data / "benchmark/Set5/LR_bicubic/X4/birdx4.png")
    assert pair.lr_source == "imresize"
    np.testing.assert_array_equal(pair.lr, lr)


def test_named_sets_resolve_under_a_data_root(shared_data, monkeypatch):
    assert D.resolve("set5", shared_data).location == str(shared_data / "benchmark/Set5")
    assert D.resolve("BSD100", shared_data).layout == "selfexsr"
    monkeypatch.setenv("SRBENCH_DATA", str(shared_data))
    assert len(D.resolve("set14")) == 14


def test_missing_named_set_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        D.resolve("urban100", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "Urban100") in msg and "LR_bicubic/X4" in msg and "image_SRF_4" in msg
    with pytest.raises(DatasetNotFoundError, match="neither a known dataset"):
        D.resolve("no-such-set-or-folder")


def test_empty_folder_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="no images found"):
        D.open_folder(tmp_path)


def test_fingerprint_follows_every_file_and_nothing_else(shared_data, tmp_path):
    copy = tmp_path / "a" / "Set5"
    shutil.copytree(shared_data / "benchmark/Set5", copy)
    original = D.open_folder(copy).fingerprint()
    assert original == D.open_folder(shared_data / "benchmark/Set5").fingerprint()  # not tied to the location
    moved = tmp_path / "b" / "Set5"
    shutil.move(copy, moved)
    assert D.open_folder(moved).fingerprint() == original
    lr = moved / "LR_bicubic/X4/birdx4.png"
    data = bytearray(lr.read_bytes())
    data[-20] ^= 1  # one bit of one LR file
    lr.write_bytes(bytes(data))
    edited_lr = D.open_folder(moved).fingerprint()
    assert edited_lr != original
    lr.unlink()
    assert D.open_folder(moved).fingerprint() not in (original, edited_lr)  # a missing LR file counts too
    shutil.copy(shared_data / "benchmark/Set5/LR_bicubic/X4/birdx4.png", lr)
    assert D.open_folder(moved).fingerprint() == original
    Image.open(moved / "HR/baby.png").save(moved / "HR/baby.png", compress_level=1)  # same pixels, new bytes
    assert D.open_folder(moved).fingerprint() != original


def test_embedded_skimage_set_needs_no_data():
    ds = D.resolve("skimage")
    assert [it.name for it in ds.items] == ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left"]
    pair = ds.load_pair(ds.item("chelsea"), 4)
    assert pair.hr.shape == (300, 448, 3) and pair.lr.shape == (75, 112, 3)
    assert len(ds.fingerprint()) == 64


def test_wrong_size_lr_file_is_named(shared_data, tmp_path):
    root = tmp_path / "Set1"
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic/X4").mkdir(parents=True)
    shutil.copy(shared_data / "benchmark/Set5/HR/bird.png", root / "HR/bird.png")
    shutil.copy(shared_data / "benchmark/Set5/LR_bicubic/X3/birdx3.png", root / "LR_bicubic/X4/birdx4.png")
    ds = D.open_folder(root)
    with pytest.raises(BadInputError, match=r"birdx4.png: LR is 96x96.*needs 72x72"):
        ds.load_pair(ds.items[0], 4)


def test_verify_recognises_known_copies(shared_data):
    report = verify_folder(shared_data / "selfexsr/Set14")
    assert report.identical and report.dataset == "set14" and report.copy == "selfexsr"
    assert len(report.findings) == 28


def test_urban100_resolves_and_is_the_recorded_selfexsr_copy(shared_data):
    ds = D.resolve("urban100", shared_data)
    assert ds.layout == "selfexsr" and len(ds) == 100 and not ds.rejected
    assert all(4 in it.lr_paths for it in ds.items)
    report = verify_folder(shared_data / "selfexsr/Urban100")
    assert report.identical and report.dataset == "urban100" and report.copy == "selfexsr"
    assert len(report.findings) == 200


def test_verify_explains_grayscale_crops_and_edits(shared_data, tmp_path):
    for p in (shared_data / "benchmark/Set14/HR").glob("*.png"):
        shutil.copy(p, tmp_path / p.name)
    Image.open(tmp_path / "baboon.png").convert("L").save(tmp_path / "baboon.png")
    comic = read_image(tmp_path / "comic.png")
    Image.fromarray(comic[: comic.shape[0] // 4 * 4, : comic.shape[1] // 4 * 4]).save(tmp_path / "comic.png")
    zebra = read_image(tmp_path / "zebra.png").copy()
    zebra[0, 0, 0] ^= 1
    Image.fromarray(zebra).save(tmp_path / "zebra.png")
    Image.open(tmp_path / "lenna.png").save(tmp_path / "lenna.bmp")
    (tmp_path / "lenna.png").unlink()
    (tmp_path / "ppt3.png").unlink()
    report = verify_folder(tmp_path)
    assert (report.dataset, report.copy) == ("set14", "benchmark")
    assert not report.identical
    by_file = {f.file or f.known: f for f in report.findings}
    assert by_file["baboon.png"].status == "derived" and "pil-L" in by_file["baboon.png"].detail
    assert by_file["comic.png"].detail == "cropped to a multiple of 4"
    assert by_file["lenna.bmp"].status == "re-encoded"
    assert by_file["zebra.png"].status == "different"
    assert by_file["HR/ppt3.png"].status == "missing"
    assert report.counts["identical"] == 9


def test_verify_pairs_by_name_so_swapped_renamed_and_doubled_images_differ(shared_data, tmp_path):
    # Evaluation pairs images by name: identical bytes under another name give other numbers.
    root = tmp_path / "Set5"
    shutil.copytree(shared_data / "benchmark/Set5", root)
    hr = root / "HR"
    (hr / "bird.png").rename(hr / "tmp.png")
    (hr / "butterfly.png").rename(hr / "bird.png")
    (hr / "tmp.png").rename(hr / "butterfly.png")
    (hr / "woman.png").rename(hr / "zzz.png")
    shutil.copy(hr / "baby.png", hr / "baby (1).png")
    report = verify_folder(root)
    assert (report.dataset, report.copy) == ("set5", "benchmark") and not report.identical
    by_file = {f.file: f for f in report.findings}
    assert (by_file["HR/bird.png"].status, by_file["HR/bird.png"].known) == ("renamed", "HR/butterfly.png")
    assert (by_file["HR/butterfly.png"].status, by_file["HR/butterfly.png"].known) == ("renamed", "HR/bird.png")
    assert (by_file["HR/zzz.png"].status, by_file["HR/zzz.png"].known) == ("renamed", "HR/woman.png")
    assert by_file["HR/baby (1).png"].status == "duplicate" and by_file["HR/baby.png"].status == "identical"
    assert report.counts == {"identical": 22, "renamed": 3, "duplicate": 1}


@pytest.mark.parametrize("naming", ["{stem}_x{s}", "{stem}"])
def test_verify_reads_lr_names_as_the_dataset_reader_pairs_them(shared_data, tmp_path, naming):
    # baby_x4.png, or baby.png in X4/, is babyx4.png's image to the reader: the same file, not a renamed one
    root = tmp_path / "Set5"
    shutil.copytree(shared_data / "benchmark/Set5/HR", root / "HR")
    for lr in sorted((shared_data / "benchmark/Set5/LR_bicubic").glob("X*/*.png")):
        s = int(lr.parent.name[1:])
        stem = lr.stem.removesuffix(f"x{s}")
        (root / f"LR_bicubic/X{s}").mkdir(parents=True, exist_ok=True)
        shutil.copy(lr, root / f"LR_bicubic/X{s}" / (naming.format(stem=stem, s=s) + ".png"))
    report = verify_folder(root)
    assert report.identical, report.describe()
    # and an LR of another scale under a scale's name is not (x2's pixels named as x3's)
    x3 = root / "LR_bicubic/X3" / (naming.format(stem="baby", s=3) + ".png")
    shutil.copy(root / "LR_bicubic/X2" / (naming.format(stem="baby", s=2) + ".png"), x3)
    assert not verify_folder(root).identical
