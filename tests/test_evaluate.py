"""Evaluation under both protocols: published figures, PIRM arithmetic, SR folders, bad input."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from srbench import metrics as M
from srbench.errors import BadInputError, WeightsUnavailableError
from srbench.evaluation import evaluate_model, write_outputs
from srbench.images import read_image, write_png
from srbench.matlab import imresize, rgb2y, shave

# ESRGAN paper, Table 2: bicubic x4, PSNR-Y / SSIM-Y.
PUBLISHED_BICUBIC_X4 = {
    "benchmark/Set5": (28.42, 0.8104),
    "selfexsr/Set14": (26.00, 0.7027),
    "selfexsr/BSD100": (25.96, 0.6675),
    "selfexsr/Urban100": (23.14, 0.6577),
}


@pytest.mark.parametrize("subset", [pytest.param(s, marks=pytest.mark.slow) if "Urban100" in s else s
                                    for s in sorted(PUBLISHED_BICUBIC_X4)])
def test_bicubic_reproduces_published_figures(shared_data, subset):
    (result,) = evaluate_model("bicubic", [str(shared_data / subset)], scale=4, protocol="sr")
    psnr_ref, ssim_ref = PUBLISHED_BICUBIC_X4[subset]
    assert not result.skipped
    assert abs(result.summary["psnr_y"] - psnr_ref) < 0.015
    assert abs(result.summary["ssim_y"] - ssim_ref) < 0.001


def test_sr_protocol_is_the_mean_of_per_image_values_on_unrounded_y(shared_data):
    (result,) = evaluate_model("bicubic", [str(shared_data / "benchmark/Set5")], scale=4)
    hr = read_image(shared_data / "benchmark/Set5/HR/bird.png")
    lr = read_image(shared_data / "benchmark/Set5/LR_bicubic/X4/birdx4.png")
    sr = imresize(lr, 4)
    y_sr = shave(rgb2y(sr.astype(np.float64)), 4)
    y_hr = shave(rgb2y(hr.astype(np.float64)), 4)
    bird = next(r for r in result.per_image if r["image"] == "bird")
    assert bird["psnr_y"] == M.psnr(y_sr, y_hr)
    assert bird["ssim_y"] == M.ssim(y_sr, y_hr)
    assert result.summary["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in result.per_image]), abs=1e-12)
    assert result.provenance["lr_source"] == {"file": 5}
    assert result.provenance["metric_versions"] == {"psnr_y": "1", "ssim_y": "wang2004-1"}


def _tiny_set(shared_data, root, size=200):
    root.mkdir()
    for name in ("bird", "butterfly"):
        hr = read_image(shared_data / f"benchmark/Set5/HR/{name}.png")[:size, :size]
        write_png(root / f"{name}.png", hr)
    return root


def test_pirm_rmse_is_sqrt_of_mean_mse_on_rounded_y(shared_data, tmp_path):
    ds = _tiny_set(shared_data, tmp_path / "tiny")
    (res,) = evaluate_model("bicubic", [str(ds)], protocol="pirm", metrics=["rmse", "niqe"])
    mses = []
    for name in ("bird", "butterfly"):
        hr = read_image(ds / f"{name}.png")
        sr = imresize(imresize(hr, 0.25), 4)
        y_sr, y_hr = shave(rgb2y(sr), 4), shave(rgb2y(hr), 4)
        assert y_sr.dtype == np.uint8
        mses.append(M.mse(y_sr, y_hr))
        row = next(r for r in res.per_image if r["image"] == name)
        assert row["mse"] == mses[-1]
        assert row["niqe"] == M.niqe(y_sr)
    assert res.summary["rmse"] == math.sqrt(np.mean(mses))
    assert res.summary["rmse"] != pytest.approx(np.mean(np.sqrt(mses)), abs=1e-9)


def test_pirm_without_nrqm_model_fails_or_reports_missing(shared_data, tmp_path):
    ds = _tiny_set(shared_data, tmp_path / "tiny")
    with pytest.raises(WeightsUnavailableError, match=r"NRQM_model\.mat"):
        list(evaluate_model("bicubic", [str(ds)], protocol="pirm"))
    (res,) = evaluate_model("bicubic", [str(ds)], protocol="pirm", skip_unavailable=True)
    assert res.summary["ma"] is None and res.summary["pi"] is None
    assert res.summary["niqe"] > 0 and res.summary["rmse"] > 0
    assert set(res.unavailable) == {"ma", "pi"}
    out = res.to_dict()
    assert out["ma"] is None and out["pi"] is None
    json.dumps(out, allow_nan=False)


def test_a_corrupt_nrqm_model_is_one_error_before_any_image(shared_data, tmp_path):
    # It was blamed on every image in turn, each skipped, and RMSE and NIQE lost with them.
    ds = _tiny_set(shared_data, tmp_path / "tiny")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "NRQM_model.mat").write_bytes(b"garbage")
    with pytest.raises(BadInputError, match=r"NRQM_model\.mat: not an NRQM model file"):
        list(evaluate_model("bicubic", [str(ds)], protocol="pirm", weights_dir=str(weights)))
    (res,) = evaluate_model("bicubic", [str(ds)], protocol="pirm", weights_dir=str(weights), skip_unavailable=True)
    assert not res.skipped and res.summary["niqe"] > 0 and res.summary["rmse"] > 0
    assert set(res.unavailable) == {"ma", "pi"} and "not an NRQM model file" in res.unavailable["ma"]


def _fake_nrqm_model(path):
    """A structurally valid NRQM model (one split per forest): tests the plumbing, not Ma's numbers."""
    from scipy.io import savemat

    forests = np.empty((1, 3), dtype=object)
    for i in range(3):
        forests[0, i] = {
            "ldau": np.array([[2], [0], [0]], np.int32), "rdau": np.array([[3], [0], [0]], np.int32),
            "unused1": np.zeros((3, 1)), "unused2": np.zeros((3, 1)),
            "threshold": np.array([[0.5 * (i + 1)], [0], [0]]),
            "pred": np.array([[0.0], [2.0 + i], [6.0 + i]]),
            "best_attri": np.array([[1], [1], [1]], np.int32),
        }
    savemat(path, {"model": {"linear": np.array([[0.5], [0.3], [0.3], [0.4]]), "rf": forests}})


@pytest.mark.slow
def test_ma_and_pi_use_a_local_nrqm_model_on_the_protocol_plane(shared_data, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from pyiqa.archs.nrqm_arch import NRQM

    weights = tmp_path / "weights"
    weights.mkdir()
    _fake_nrqm_model(weights / "NRQM_model.mat")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights))
    ds = _tiny_set(shared_data, tmp_path / "tiny")
    (res,) = evaluate_model("bicubic", [str(ds)], protocol="pirm")
    reference = NRQM(test_y_channel=False, pretrained_model_path=str(weights / "NRQM_model.mat"))
    for row in res.per_image:
        hr = read_image(ds / f"{row['image']}.png")
        y = shave(rgb2y(imresize(imresize(hr, 0.25), 4)), 4).astype(np.float64)
        assert row["ma"] == pytest.approx(float(reference(torch.from_numpy(y)[None, None])), abs=1e-12)
        assert row["pi"] == pytest.approx(((10 - row["ma"]) + row["niqe"]) / 2, abs=1e-12)
    mean_ma = np.mean([r["ma"] for r in res.per_image])
    mean_niqe = np.mean([r["niqe"] for r in res.per_image])
    assert res.summary["pi"] == pytest.approx(((10 - mean_ma) + mean_niqe) / 2, abs=1e-12)


def test_sr_folder_is_matched_by_name_and_equals_the_model_it_came_from(shared_data, tmp_path):
    sr_dir = tmp_path / "my_sr"
    for i, name in enumerate(("baby", "bird", "butterfly", "head", "woman")):
        lr = read_image(shared_data / f"benchmark/Set5/LR_bicubic/X4/{name}x4.png")
        stem = name if i % 2 else f"{name}_x4_SR"  # both naming habits
        write_png(sr_dir / f"{stem}.png", imresize(lr, 4))
    (from_folder,) = evaluate_model(str(sr_dir), [str(shared_data / "benchmark/Set5")])
    (bicubic,) = evaluate_model("bicubic", [str(shared_data / "benchmark/Set5")])
    assert from_folder.model == "my_sr"
    assert from_folder.summary == bicubic.summary


def test_bad_images_are_reported_and_the_rest_evaluated(shared_data, tmp_path):
    ds = _tiny_set(shared_data, tmp_path / "tiny")
    good = read_image(ds / "bird.png")
    (ds / "truncated.png").write_bytes((ds / "butterfly.png").read_bytes()[:300])
    Image.fromarray(np.dstack([good, np.full(good.shape[:2], 254, np.uint8)])).save(ds / "rgba.png")
    Image.fromarray(good[..., 0].astype(np.uint16) * 257 + 1).save(ds / "deep.png")  # no exact 8-bit form
    (res,) = evaluate_model("bicubic", [str(ds)])
    assert sorted(r["image"] for r in res.per_image) == ["bird", "butterfly"]
    errors = {s["image"]: s["error"] for s in res.skipped}
    assert "truncated.png: corrupt or truncated" in errors["truncated"]
    assert "rgba.png: has a non-opaque alpha channel" in errors["rgba"]
    assert "deep.png" in errors["deep"] and "16-bit" in errors["deep"]


def test_sr_of_the_wrong_size_is_named(shared_data, tmp_path):
    ds = _tiny_set(shared_data, tmp_path / "tiny")
    sr_dir = tmp_path / "sr"
    write_png(sr_dir / "bird.png", np.zeros((120, 200, 3), np.uint8))
    write_png(sr_dir / "butterfly.png", read_image(ds / "butterfly.png"))
    (res,) = evaluate_model(str(sr_dir), [str(ds)])
    assert [r["image"] for r in res.per_image] == ["butterfly"]
    assert res.per_image[0]["psnr_y"] == math.inf
    (bad,) = res.skipped
    assert "bird.png: SR is 120x200" in bad["error"] and "HR is 200x200" in bad["error"]


def test_an_sr_size_of_another_scale_or_of_an_lr_image_says_so(shared_data, tmp_path):
    # An x3 model's outputs evaluated at x4 are a few pixels off (the HR cropped to a multiple of 3): the sizes
    # alone left the user to work out why; an LR file given as the SR image likewise
    ds = _tiny_set(shared_data, tmp_path / "tiny", size=202)  # 202x202: cropped to 200x200 at x4, 201x201 at x3
    sr_dir = tmp_path / "sr"
    write_png(sr_dir / "bird.png", np.zeros((201, 201, 3), np.uint8))
    write_png(sr_dir / "butterfly.png", np.zeros((50, 50, 3), np.uint8))
    (res,) = evaluate_model(str(sr_dir), [str(ds)], scale=4)
    errors = {s["image"]: s["error"] for s in res.skipped}
    assert "SR is 201x201" in errors["bird"] and "HR is 200x200 (cropped from 202x202)" in errors["bird"]
    assert errors["bird"].endswith("the HR's size cropped to a multiple of 3, as x3 results are (--scale 3?)")
    assert errors["butterfly"].endswith("the size of its x4 LR image (an input, not an SR result?)")
    write_png(sr_dir / "bird.png", np.zeros((200, 200), np.uint8))  # the size fits: no hint about sizes
    (res,) = evaluate_model(str(sr_dir), [str(ds)], scale=4)
    errors = {s["image"]: s["error"] for s in res.skipped}
    assert errors["bird"].endswith("SR is 200x200 grayscale, HR is 200x200 (cropped from 202x202) 3 channels")


def test_a_label_moved_to_another_folder_of_the_same_name_says_so(shared_data, tmp_path):
    # a/imgs then b/imgs in separate runs under one --name: the second's label replaced the first's silently
    from srbench.store import Store

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _tiny_set(shared_data, tmp_path / "a" / "imgs")
    second = _tiny_set(shared_data, tmp_path / "b" / "imgs", 160)
    with Store(tmp_path / "s.sqlite") as store:
        (one,) = evaluate_model("bicubic", [str(first)], store=store, suite="evaluate", name="bic")
        (again,) = evaluate_model("bicubic", [str(first)], store=store, suite="evaluate", name="bic")
        (two,) = evaluate_model("bicubic", [str(second)], store=store, suite="evaluate", name="bic")
    assert not any("label" in w for w in one.warnings + again.warnings)
    (moved,) = [w for w in two.warnings if "label" in w]
    assert moved.startswith("the store's label 'bic' of suite 'evaluate' on imgs (x4) named results on other images")


def test_unknown_metric_and_protocol_fail_before_work(shared_data):
    with pytest.raises(BadInputError, match="unknown metric 'psnr_rgb'"):
        list(evaluate_model("bicubic", ["skimage"], metrics=["psnr_rgb"]))
    with pytest.raises(BadInputError, match="unknown protocol"):
        list(evaluate_model("bicubic", ["skimage"], protocol="nope"))


def test_outputs_are_written_as_csv_and_json(tmp_path):
    (res,) = evaluate_model("bicubic", ["skimage"])
    csv_path, json_path = write_outputs(res, tmp_path)
    import pandas as pd

    frame = pd.read_csv(csv_path)
    assert list(frame["image"]) == [r["image"] for r in res.per_image]
    np.testing.assert_allclose(frame["psnr_y"], [r["psnr_y"] for r in res.per_image], rtol=1e-12)
    data = json.loads(json_path.read_text())
    assert data["psnr_y"] == res.summary["psnr_y"] and data["n_images"] == 5
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_grayscale_hr_is_compared_on_its_single_channel(shared_data, tmp_path):
    root = tmp_path / "gray"
    root.mkdir()
    shutil.copy(shared_data / "benchmark/Set14/HR/bridge.png", root / "bridge.png")
    (res,) = evaluate_model("bicubic", [str(root)])
    hr = read_image(root / "bridge.png")
    sr = imresize(imresize(hr, 0.25), 4)
    assert res.per_image[0]["psnr_y"] == M.psnr(shave(sr.astype(float), 4), shave(hr.astype(float), 4))


def test_sr_file_matching_prefers_the_image_own_name(tmp_path):
    from pathlib import Path

    from srbench.datasets import Item
    from srbench.sources import FolderSource

    for stem in ("baby_SR", "baby_2_SR", "img_0011_SR", "img_001x4"):
        write_png(tmp_path / f"{stem}.png", np.zeros((4, 4, 3), np.uint8))
    model = FolderSource(tmp_path)
    assert model.match(Item("baby", Path("/hr/baby.png"))).stem == "baby_SR"
    assert model.match(Item("baby_2", Path("/hr/baby_2.png"))).stem == "baby_2_SR"
    assert model.match(Item("img_001", Path("/hr/img_001_SRF_4_HR.png"))).stem == "img_001x4"
    with pytest.raises(BadInputError, match="no SR image for it"):
        model.match(Item("bird", Path("/hr/bird.png")))
