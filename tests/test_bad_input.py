"""Issue 8: inputs that used to give wrong numbers with exit status 0, or a traceback, on `srbench evaluate`.

Each test names the issue item it guards; each fails on the code before the fix.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srbench.cli import main
from srbench.evaluation import evaluate_model
from srbench.images import read_image, write_png
from srbench.matching import SR_SUFFIXES, SRIndex, candidate_names, suffixes
from srbench.matlab import imresize, modcrop


def _hr_set(shared_data, root, names=("bird", "butterfly"), size=200):
    root.mkdir(parents=True)
    for name in names:
        write_png(root / f"{name}.png", read_image(shared_data / f"benchmark/Set5/HR/{name}.png")[:size, :size])
    return root


def _bicubic_sr(hr_path):
    hr = modcrop(read_image(hr_path), 4)
    return imresize(imresize(hr, 0.25), 4)


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- item 1: SR files are matched exactly, never by prefix ---------------------------------------------------


def test_a_missing_sr_file_is_skipped_not_paired_with_a_longer_name(shared_data, tmp_path):
    hr = _hr_set(shared_data, tmp_path / "hr", names=("bird", "butterfly"))
    # bird's SR is missing; bird_2.png (another image of the same size) must not stand in for it.
    sr = tmp_path / "sr"
    write_png(sr / "bird_2.png", _bicubic_sr(hr / "butterfly.png"))
    write_png(sr / "butterfly.png", _bicubic_sr(hr / "butterfly.png"))
    (res,) = evaluate_model(str(sr), [str(hr)])
    assert [r["image"] for r in res.per_image] == ["butterfly"]
    (bad,) = res.skipped
    assert bad["image"] == "bird" and "no SR image for it" in bad["error"]


def test_an_ambiguous_sr_match_is_skipped_naming_both_files(shared_data, tmp_path):
    hr = _hr_set(shared_data, tmp_path / "hr", names=("bird", "butterfly"))
    sr = tmp_path / "sr"
    write_png(sr / "bird.png", _bicubic_sr(hr / "bird.png"))
    write_png(sr / "bird_x4_SR.png", np.zeros((200, 200, 3), np.uint8))
    write_png(sr / "butterfly_x4.png", _bicubic_sr(hr / "butterfly.png"))
    res = _cli("evaluate", "--model", sr, "--dataset", hr, "--json")
    assert res.exit_code == 1
    (row,) = json.loads(res.stdout)
    assert row["n_images"] == 1 and row["n_skipped"] == 1
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("skipped:")]
    assert "bird.png" in line and "bird_x4_SR.png" in line and "several SR files" in line


@pytest.mark.parametrize("stem", ["baby", "baby_x4", "babyx4", "baby_SR", "baby_x4_SR", "babyx4_SR", "baby_rlt",
                                  "baby_SRF_4", "baby_out", "baby_ESRGAN"])
def test_known_suffixes_are_stripped(stem):
    assert "baby" in candidate_names(stem, 4)


@pytest.mark.parametrize("stem", ["baby_2", "baby2", "baby_x2", "babyx2_SR", "baby_SR_2", "babyface", "baby_"])
def test_other_endings_do_not_stand_for_the_image(stem):
    assert "baby" not in candidate_names(stem, 4)


_name = st.text(alphabet="ab_x4SR", min_size=1, max_size=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_name, min_size=1, max_size=4, unique=True),
       stems=st.lists(st.tuples(_name, st.sampled_from(("", "junk", *SR_SUFFIXES))), max_size=8),
       scale=st.sampled_from((2, 4)))
def test_matching_is_exact_on_the_stem_after_one_known_suffix(tmp_path_factory, names, stems, scale):
    from pathlib import Path

    files = sorted({Path(f"/sr/{base}{tail.format(s=scale)}.png") for base, tail in stems})
    index = SRIndex(files, scale)
    allowed = {"", *suffixes(scale)}
    for name in names:
        expected = sorted(p for p in files
                          if any(p.stem == name + s for s in allowed if p.stem != s))
        assert index.matches([name]) == expected


# -- item 2: two files with one stem are never merged --------------------------------------------------------


def test_two_files_with_one_stem_are_both_refused_never_merged(shared_data, tmp_path):
    from PIL import Image

    ds = _hr_set(shared_data, tmp_path / "ds", names=("bird", "butterfly"))
    Image.open(ds / "butterfly.png").save(ds / "bird.bmp")  # another image under bird's name
    res = _cli("evaluate", "--model", "bicubic", "--dataset", ds, "--json")
    assert res.exit_code == 1
    (row,) = json.loads(res.stdout)
    assert row["n_images"] == 1 and row["n_skipped"] == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("skipped:")]
    assert len(lines) == 2
    assert all("bird.png" in ln and "bird.bmp" in ln and "share the image name 'bird'" in ln for ln in lines)
    # The good image keeps exactly its value.
    (alone,) = evaluate_model("bicubic", [str(_hr_set(shared_data, tmp_path / "alone", names=("butterfly",)))])
    assert row["psnr_y"] == alone.summary["psnr_y"]


def test_selfexsr_stem_clash_is_refused(shared_data, tmp_path):
    from PIL import Image

    root = tmp_path / "Set5" / "image_SRF_4"
    shutil.copytree(shared_data / "selfexsr/Set5/image_SRF_4", root)
    Image.open(root / "img_001_SRF_4_HR.png").save(root / "img_001_SRF_4_HR.bmp")
    (res,) = evaluate_model("bicubic", [str(tmp_path / "Set5")])
    assert sorted(r["image"] for r in res.per_image) == ["img_002", "img_003", "img_004", "img_005"]
    assert [s["image"] for s in res.skipped] == ["img_001", "img_001"]


# -- item 7: infinity is represented, the run succeeds --------------------------------------------------------


def test_psnr_infinity_is_explicit_in_json_csv_tables_and_store(shared_data, tmp_path):
    hr = _hr_set(shared_data, tmp_path / "hr", names=("bird",))
    sr = tmp_path / "sr"
    shutil.copytree(hr, sr)  # SR identical to HR
    store = tmp_path / "s.sqlite"
    res = _cli("evaluate", "--model", sr, "--dataset", hr, "--json", "--out", tmp_path / "out",
               "--store", store, "--name", "identity")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["psnr_y"] == "inf" and row["ssim_y"] == 1.0
    written = json.loads((tmp_path / "out" / "identity__hr__sr_x4.json").read_text())
    assert written["psnr_y"] == "inf"
    assert "inf" in (tmp_path / "out" / "identity__hr__sr_x4.csv").read_text().splitlines()[1].split(",")
    res = _cli("evaluate", "--model", sr, "--dataset", hr)
    assert res.exit_code == 0 and " inf " in res.stdout
    table = _cli("table", "--suite", "evaluate", "--store", store, "--metrics", "psnr_y,ssim_y")
    assert table.exit_code == 0, table.output
    assert "| identity | **∞** |" in table.stdout
    latex = _cli("table", "--suite", "evaluate", "--store", store, "--metrics", "psnr_y", "--format", "latex")
    assert "$\\infty$" in latex.stdout
    results = _cli("results", "--store", store)
    assert results.exit_code == 0 and "inf" in results.stdout


def test_scale_1_gives_infinite_psnr_and_exit_0():
    res = _cli("evaluate", "--model", "bicubic", "--dataset", "skimage", "--scale", "1", "--json")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["psnr_y"] == "inf" and row["n_images"] == 5


# -- smaller gaps ------------------------------------------------------------------------------------------


def test_a_missing_lr_file_is_noted_in_the_result_and_provenance(shared_data, tmp_path):
    root = tmp_path / "Set5"
    shutil.copytree(shared_data / "benchmark/Set5", root)
    (root / "LR_bicubic/X4/birdx4.png").unlink()
    (res,) = evaluate_model("bicubic", [str(root)])
    assert res.provenance["lr_file_missing"] == ["bird"]
    assert res.provenance["lr_source"] == {"file": 4, "imresize": 1}
    assert any("no x4 LR file" in w and "bird" in w for w in res.warnings)
    (full,) = evaluate_model("bicubic", [str(shared_data / "benchmark/Set5")])
    assert full.provenance["lr_file_missing"] == [] and not any("no x4 LR file" in w for w in full.warnings)
    # The images that have their file keep exactly their values.
    by_image = {r["image"]: r["psnr_y"] for r in full.per_image}
    assert all(r["psnr_y"] == by_image[r["image"]] for r in res.per_image if r["image"] != "bird")


def test_broken_and_looping_symlinks_are_reported_not_dropped(shared_data, tmp_path):
    ds = _hr_set(shared_data, tmp_path / "ds", names=("bird", "butterfly"))
    (ds / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (ds / "loop.png").symlink_to(ds / "loop.png")
    res = _cli("evaluate", "--model", "bicubic", "--dataset", ds, "--json")
    assert res.exit_code == 1
    (row,) = json.loads(res.stdout)
    assert row["n_images"] == 2 and row["n_skipped"] == 2
    skipped = [ln for ln in res.stderr.splitlines() if ln.startswith("skipped:")]
    assert len(skipped) == 2
    assert any("gone.png" in ln for ln in skipped) and any("loop.png" in ln for ln in skipped)


def test_skip_bad_with_every_image_bad_is_an_error(tmp_path):
    ds = tmp_path / "bad"
    ds.mkdir()
    (ds / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (ds / "b.png").write_bytes(b"")
    res = _cli("evaluate", "--model", "bicubic", "--dataset", ds, "--skip-bad")
    assert res.exit_code == 1
    assert "nothing was evaluated on bad: every image was skipped" in res.stderr


def test_pirm_keeps_rmse_of_an_image_too_small_for_niqe(shared_data, tmp_path):
    ds = _hr_set(shared_data, tmp_path / "ds", names=("bird",), size=200)
    write_png(ds / "small.png", read_image(shared_data / "benchmark/Set5/HR/butterfly.png")[:120, :120])
    (res,) = evaluate_model("bicubic", [str(ds)], protocol="pirm", metrics=["rmse", "niqe"])
    assert not res.skipped
    rows = {r["image"]: r for r in res.per_image}
    assert math.isnan(rows["small"]["niqe"]) and rows["small"]["rmse"] > 0
    from srbench.matlab import rgb2y, shave

    hr = read_image(ds / "small.png")
    sr = imresize(imresize(hr, 0.25), 4)
    expected = math.sqrt(np.mean((shave(rgb2y(sr).astype(float), 4) - shave(rgb2y(hr).astype(float), 4)) ** 2))
    assert rows["small"]["rmse"] == pytest.approx(expected, abs=1e-12)
    assert any(w.startswith("small: niqe undefined (NaN)") for w in res.warnings)
    assert math.isnan(res.summary["niqe"])  # a dataset NIQE over an undefined image is undefined, never partial


def test_evaluate_store_caches_labels_and_shows_in_results_and_table(shared_data, tmp_path):
    hr = _hr_set(shared_data, tmp_path / "hr", names=("bird", "butterfly"))
    sr = tmp_path / "sr"
    for name in ("bird", "butterfly"):
        write_png(sr / f"{name}_x4_SR.png", _bicubic_sr(hr / f"{name}.png"))
    store = tmp_path / "s.sqlite"
    args = ["evaluate", "--model", sr, "--dataset", hr, "--json", "--store", store, "--name", "mine"]
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    (row,) = json.loads(first.stdout)
    assert row["model"] == "mine" and row["provenance"]["cached_images"] == 0
    (second_row,) = json.loads(_cli(*args).stdout)
    assert second_row["provenance"]["cached_images"] == 2 and second_row["psnr_y"] == row["psnr_y"]
    (bicubic,) = evaluate_model("bicubic", [str(hr)])
    assert row["psnr_y"] == bicubic.summary["psnr_y"]
    table = _cli("table", "--suite", "evaluate", "--store", store, "--metrics", "psnr_y,ssim_y")
    assert table.exit_code == 0 and f"| mine | **{row['psnr_y']:.2f}** |" in table.stdout
    results = _cli("results", "--store", store)
    assert "mine" in results.stdout



def test_docs_state_the_reader_table_and_the_suffixes_the_code_applies():
    from pathlib import Path

    from srbench.images import modes_markdown

    inputs = (Path(__file__).resolve().parent.parent / "docs" / "inputs.md").read_text(encoding="utf-8")
    assert modes_markdown() in inputs
    assert ", ".join(f"`{s}`" for s in SR_SUFFIXES) in inputs


def test_a_decompression_bomb_is_skipped_and_the_good_images_scored(shared_data, tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ds = _hr_set(shared_data, tmp_path / "ds", names=("bird", "butterfly"))
    # A header claiming 100000 x 100000 gray pixels (above Pillow's own bomb limit), one row of data.
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    (ds / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                  + chunk(b"IDAT", zlib.compress(b"\0" * 100001)) + chunk(b"IEND", b""))
    (res,) = evaluate_model("bicubic", [str(ds)])
    assert [r["image"] for r in res.per_image] == ["bird", "butterfly"]
    (bad,) = res.skipped
    assert bad["image"] == "bomb" and "100000x100000" in bad["error"] and "--max-pixels" in bad["error"]
    (good,) = evaluate_model("bicubic", [str(_hr_set(shared_data, tmp_path / "good", names=("bird", "butterfly")))])
    assert res.summary == good.summary


def test_evaluate_and_infer_check_their_out_folder_before_any_work(shared_data, tmp_path, monkeypatch):
    import srbench.evaluation as E
    import srbench.infer as I

    def must_not_run(*args, **kwargs):
        raise AssertionError("did work before checking --out")

    monkeypatch.setattr(E, "open_source", must_not_run)
    monkeypatch.setattr(I, "resolve_generator", must_not_run)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    ds = _hr_set(shared_data, tmp_path / "ds", names=("bird",))
    for args in (["evaluate", "--model", "bicubic", "--dataset", ds, "--out", blocker / "out"],
                 ["infer", "rrdb23", ds, "--out", blocker / "out"]):
        res = _cli(*args)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
        assert res.output.strip() == f"error: cannot write to {blocker / 'out'}: {blocker} is a file, not a folder"
    assert blocker.read_text() == "a file, not a folder"
