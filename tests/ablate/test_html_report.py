"""The suite's HTML report renders in a real browser with all its images."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import torch

from srbench.ablate import AblationReport, load_suite, visual_comparison
from srbench.archs import get_generator
from srbench.checkpoints import save_checkpoint
from srbench.evaluation import evaluate_model
from srbench.report import write_suite_report
from srbench.sources import open_source


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium for this test")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


@pytest.mark.slow
def test_html_report_renders_with_its_images(tmp_path):
    torch.manual_seed(0)
    net = get_generator("rrdb23-smoke").build()
    ckpt = save_checkpoint(net, tmp_path / "esrgan-gan.safetensors", arch="rrdbnet",
                           config={**get_generator("rrdb23-smoke").config, "scale": 4}, variant="rrdb23-smoke")
    report = AblationReport(load_suite("esrgan"), "smoke", ["skimage"], out_dir=tmp_path / "report")
    report.models = {"bicubic": "bicubic", "esrgan-gan": ckpt}
    for name, source in report.models.items():
        for protocol in ("sr", "pirm"):
            (result,) = evaluate_model(str(source), ["skimage"], protocol=protocol, skip_unavailable=True, device="cpu")
            result.model = name
            report.results.append(result)
    visual = visual_comparison({n: open_source(str(s), device="cpu") for n, s in report.models.items()}, "skimage",
                               None)
    written = write_suite_report(report, visual)
    page = tmp_path / "report/index.html"
    assert page in written and (tmp_path / "report/table.md").is_file() and (tmp_path / "report/table.tex").is_file()
    assert (tmp_path / "report/pirm_plane_skimage.png").is_file()
    text = page.read_text()
    assert "esrgan-gan" in text and "PSNR-Y" in text and "NIQE (PI unavailable" in text
    browser = _chromium()
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    dom = proc.stdout
    expected = re.search(r'data-images-expected="(\d+)"', dom)
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    assert expected and loaded, proc.stderr[-2000:]
    # 3 images x (HR, bicubic, esrgan-gan) crops and the plane, all decoded by the browser
    assert int(expected.group(1)) == 3 * 3 + 1
    assert loaded.group(1) == expected.group(1)


def test_visual_comparison_numbers_are_the_protocols_on_the_crop(shared_data):
    """The crop captions are PSNR-Y (sr protocol) and NIQE (pirm protocol) of exactly the pixels shown."""
    from srbench import metrics as M
    from srbench.ablate import CROP_H, CROP_W
    from srbench.matlab import rgb2y

    visual = visual_comparison({"bicubic": open_source("bicubic")}, str(shared_data / "benchmark/Set5"), None,
                               n_images=1)
    assert visual.nr_label.startswith("NIQE") and len(visual.rows) == 1
    image, (hr, bicubic) = visual.rows[0]
    assert image == "baby" and hr.model == "HR" and bicubic.model == "bicubic"
    assert hr.pixels.shape == bicubic.pixels.shape == (CROP_H, CROP_W, 3)
    assert hr.psnr_y == float("inf")
    y = rgb2y(bicubic.pixels.astype(float))
    assert bicubic.psnr_y == M.psnr(y, rgb2y(hr.pixels.astype(float)))
    assert bicubic.no_reference == M.niqe(rgb2y(bicubic.pixels))


def test_crops_are_cached_by_what_determines_them(shared_data, monkeypatch):
    """A re-run (into any --out) shows the same crops without running the model again; another model (another
    key) is not served the first one's crops."""
    from srbench.sources import BicubicSource

    calls: list[str] = []
    real = BicubicSource.predict

    def counted(self, pair, item, scale):
        calls.append(item.name)
        return real(self, pair, item, scale)

    monkeypatch.setattr(BicubicSource, "predict", counted)
    where = str(shared_data / "benchmark/Set5")
    first = visual_comparison({"bicubic": open_source("bicubic")}, where, None, n_images=2)
    assert calls == ["baby", "bird"]
    again = visual_comparison({"bicubic": open_source("bicubic")}, where, None, n_images=2)
    assert calls == ["baby", "bird"]  # nothing predicted again
    assert [[(c.model, c.pixels.tobytes(), c.psnr_y, c.no_reference) for c in crops] for _, crops in again.rows] == \
        [[(c.model, c.pixels.tobytes(), c.psnr_y, c.no_reference) for c in crops] for _, crops in first.rows]
    other = open_source("bicubic")
    monkeypatch.setattr(type(other), "key", "bicubic:another-key")
    visual_comparison({"bicubic": other}, where, None, n_images=1)
    assert calls == ["baby", "bird", "baby"]


def test_only_the_smoke_preset_carries_the_notice():
    from types import SimpleNamespace

    from srbench.report import preset_notice

    suite = SimpleNamespace(name="esrgan")
    smoke = SimpleNamespace(preset="smoke", suite=suite, iterations={"a": (400, 300), "b": (400, 200)})
    assert "trained for 400 PSNR-stage and 200-300 GAN-stage iterations on 4 images" in preset_notice(smoke)
    smoke.batches = {"a": (32, 4), "b": (64, 4)}
    assert ("trained for 400 PSNR-stage and 200-300 GAN-stage iterations on batches of 4 HR patches (32-64 px on "
            "a side) cut from 4 images scikit-image ships") in preset_notice(smoke)
    assert preset_notice(SimpleNamespace(preset="paper", suite=suite, iterations={})) is None
    # checkpoints given with --checkpoints were trained by no one here: no smoke notice over their numbers
    given = SimpleNamespace(source="checkpoints")
    smoke.training = [given, given]
    assert preset_notice(smoke) is None
    smoke.training = [given, SimpleNamespace(source="trained")]
    assert "except the 1 stage(s) given with --checkpoints" in preset_notice(smoke)
    smoke.training_sets = {"a": "skimage-train", "b": "skimage-train"}
    assert "cut from 4 images scikit-image ships, with" in preset_notice(smoke)
    smoke.training_sets = {"a": "/data/DIV2K_train_HR", "b": "/data/DIV2K_train_HR"}  # ablate --train-data
    assert "cut from /data/DIV2K_train_HR, with" in preset_notice(smoke)


def test_the_smoke_notice_names_the_networks_the_suites_losses_stand_on():
    from types import SimpleNamespace

    from srbench.ablate.suites import load_suite, resolve_suite_configs
    from srbench.report import preset_notice

    def notice(suite_name: str) -> str:
        suite = load_suite(suite_name)
        networks = {name: c.loss.pretrained_networks()
                    for name, c in resolve_suite_configs(suite, "smoke").items()}
        return preset_notice(SimpleNamespace(preset="smoke", suite=suite, iterations={}, networks=networks))

    assert "with a randomly initialised VGG19 for the perceptual loss" in notice("esrgan")
    assert "it needs VGG19's ImageNet weights" in notice("esrgan")
    # the loss study trains LPIPS (AlexNet) and DISTS (VGG16) entries beside VGG19 ones
    said = notice("loss-perceptual")
    assert "randomly initialised VGG19, AlexNet (LPIPS) and VGG16 (DISTS) for the perceptual losses" in said
    assert "it needs VGG19, AlexNet (LPIPS) and VGG16 (DISTS)'s ImageNet weights" in said
