"""``srbench check --spec``: metric-drift checks of users' own models and datasets (issue 14).

A spec with a generator checkpoint, a folder of SR images and bicubic on two small datasets; its baseline
written, then (a) a rerun with no change: exit 0, every value read from the store; (b) one SR image changed:
exit 1, exactly the affected values fail in the JUnit file and the report names the image; (c) a dataset copy
with different files: the report says the dataset fingerprint changed; (d) a metric's version bumped: the report
says which metric's implementation changed."""

from __future__ import annotations

import dataclasses
import json
import shutil
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from srbench import check as C
from srbench.cli import main
from srbench.images import read_image, write_png
from srbench.matlab import imresize, modcrop
from srbench.provenance import FINGERPRINT_PACKAGES

SPEC = """
baseline = "baselines/mine.json"

[tolerances]
psnr_y = 0.002

[[entries]]
model = "models/small.safetensors"
name = "small"
datasets = ["data/set_a", "data/set_b"]
protocols = ["sr", "pirm"]
metrics = ["psnr_y", "ssim_y", "rmse"]

[[entries]]
model = "sr/set_a"
name = "outside"
datasets = ["data/set_a"]
protocols = ["sr", "pirm"]
metrics = ["psnr_y", "ssim_y", "rmse"]

[[entries]]
model = "bicubic"
datasets = ["data/set_a", "data/set_b"]
protocols = ["sr", "pirm"]
metrics = ["psnr_y", "ssim_y", "rmse"]
"""


def _crops(path, n: int) -> list[np.ndarray]:
    img = read_image(path)
    return [modcrop(img[i * 40 : i * 40 + 64, i * 30 : i * 30 + 80], 4) for i in range(n)]


@pytest.fixture
def project(tmp_path, shared_data):
    """A user's repository: a checkpoint, two small datasets of HR crops, SR images made elsewhere for one."""
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    shutil.copy(C.small_model_checkpoint(tmp_path), root / "models" / "small.safetensors")
    sets = {"set_a": _crops(shared_data / "benchmark/Set5/HR/baby.png", 3),
            "set_b": _crops(shared_data / "benchmark/Set14/HR/lenna.png", 2)}
    for name, images in sets.items():
        for i, hr in enumerate(images):
            write_png(root / "data" / name / f"img{i}.png", hr)
    for i, hr in enumerate(sets["set_a"]):  # "another method": bicubic, then a little sharpening
        sr = imresize(imresize(hr, 0.25), 4).astype(np.int16)
        write_png(root / "sr" / "set_a" / f"img{i}.png", np.clip(sr + (sr - sr.mean()) // 16, 0, 255).astype(np.uint8))
    (root / "check.toml").write_text(SPEC)
    return root


def _check(project, *args: str):
    return CliRunner().invoke(main, ["check", "--spec", str(project / "check.toml"), "--store",
                                     str(project / "store.sqlite"), *args])


def _failing_cases(junit_path) -> set[tuple[str, str]]:
    suite = ET.parse(junit_path).getroot()
    return {(case.get("classname"), case.get("name")) for case in suite.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None}


def test_a_users_spec_catches_what_moved_and_says_why(project):
    wrote = _check(project, "--update")
    assert wrote.exit_code == 0, wrote.output
    baseline = json.loads((project / "baselines" / "mine.json").read_text())
    assert baseline["format_version"] == C.BASELINE_FORMAT_VERSION and baseline["tolerances"]["psnr_y"] == 0.002
    # 3 metrics x (small on 2 sets + outside on 1 + bicubic on 2) = 15 values, each with what produced it.
    assert len(baseline["entries"]) == 15
    first = baseline["entries"][0]
    assert set(first["fingerprints"]) >= {"model", "dataset", "metric", "device", "srbench", "torch", "numpy"}
    assert first["fingerprints"]["model"].startswith("generator:") and len(first["per_image"]) == 3

    # (a) nothing changed: exit 0, and every value came from the store.
    junit = project / "drift.xml"
    same = _check(project, "--json", "--junit", str(junit), "--markdown", str(project / "drift.md"))
    assert same.exit_code == 0, same.output
    report = json.loads(same.stdout)
    assert report["status"] == "ok" and len(report["rows"]) == 15
    assert all(r["status"] == "ok" and r["cached"] and not r["changed"] for r in report["rows"])
    assert _failing_cases(junit) == set() and len(list(ET.parse(junit).getroot().iter("testcase"))) == 15
    assert (project / "drift.md").read_text().startswith("### ✅ srbench check: ok, no drift (15 values")

    # (b) one SR image of the outside method changed: exactly its values on set_a fail, naming the image.
    sr = read_image(project / "sr/set_a/img1.png")
    write_png(project / "sr/set_a/img1.png", np.clip(sr.astype(np.int16) + 6, 0, 255).astype(np.uint8))
    moved = _check(project, "--junit", str(junit), "--markdown", str(project / "drift.md"))
    assert moved.exit_code == 1, moved.output
    set_a = "data/set_a"  # as the spec writes it: the baseline is the same in every checkout
    assert _failing_cases(junit) == {(f"outside.{set_a}.sr", "psnr_y"), (f"outside.{set_a}.sr", "ssim_y"),
                                     (f"outside.{set_a}.pirm", "rmse")}
    failure = next(c.find("failure") for c in ET.parse(junit).getroot().iter("testcase")
                   if c.get("name") == "psnr_y" and c.get("classname").startswith("outside"))
    message = failure.get("message")
    assert "baseline" in message and "now" in message and "diff" in message and "tolerance 0.002" in message
    assert "model fingerprint" in message and "img1 (" in message  # the image that moved, by name
    assert "img0 (" not in message  # unchanged images are not blamed
    assert "img1:" in (project / "drift.md").read_text()
    shutil.copy(project / "check.toml", project / "keep.toml")
    write_png(project / "sr/set_a/img1.png", sr)  # put it back: the store still has the old values

    # (c) another copy of set_b (a different image in it): the dataset fingerprint changed.
    write_png(project / "data/set_b/img1.png", _crops(project / "data/set_a/img0.png", 1)[0])
    swapped = _check(project, "--json")
    assert swapped.exit_code == 1
    rows = json.loads(swapped.stdout)["rows"]
    drifted = [r for r in rows if r["status"] == "DRIFT"]
    assert drifted and all(r["dataset"] == "data/set_b" for r in drifted)
    assert all(any(c.startswith("dataset fingerprint") for c in r["changed"]) for r in drifted)
    assert not any(c.startswith("model fingerprint") for r in drifted for c in r["changed"])


def test_a_metric_version_bump_is_named(project, monkeypatch):
    import srbench.metrics as M

    assert _check(project, "--update").exit_code == 0
    real = M.get_metric("ssim_y")
    with M.temporarily(dataclasses.replace(real, version="wang2004-2")):
        bumped = _check(project, "--json")
    assert bumped.exit_code == 0, bumped.output  # same numbers: a note, not a failure
    rows = json.loads(bumped.stdout)["rows"]
    noted = {(r["model"], r["metric"]) for r in rows if r["changed"]}
    assert {m for _, m in noted} == {"ssim_y"}
    (change,) = next(r["changed"] for r in rows if r["metric"] == "ssim_y")
    assert change == "metric implementation version wang2004-1 -> wang2004-2"
    assert all(not r["cached"] for r in rows if r["metric"] == "ssim_y")  # a new version is recomputed


def test_a_stored_value_is_not_reused_under_another_torch(project, monkeypatch):
    # The store is cached between CI runs and torch is not pinned: values read back after an upgrade were reported
    # 'unchanged within tolerance' under the new torch without being computed again
    from srbench import provenance

    assert _check(project, "--update").exit_code == 0
    real = provenance.versions
    monkeypatch.setattr(provenance, "versions", lambda: {**real(), "torch": "9.9.9"})
    upgraded = _check(project, "--json")
    assert upgraded.exit_code == 0, upgraded.output  # the same code computes the same numbers
    rows = json.loads(upgraded.stdout)["rows"]
    assert len(rows) == 15 and not any(r["cached"] for r in rows)
    assert all(any(c.startswith("torch version") for c in r["changed"]) for r in rows)
    again = json.loads(_check(project, "--json").stdout)["rows"]  # computed under 9.9.9 now: reused under it
    assert all(r["cached"] for r in again)


def test_an_entry_that_cannot_run_is_exit_2_unless_optional(project, monkeypatch):
    assert _check(project, "--update").exit_code == 0
    (project / "models" / "small.safetensors").unlink()
    gone = _check(project)
    assert gone.exit_code == 2
    assert "not checked (REQUIRED): small on" in gone.output
    spec = (project / "check.toml").read_text().replace('name = "small"', 'name = "small"\noptional = true')
    (project / "check.toml").write_text(spec)
    optional = _check(project, "--json")
    assert optional.exit_code == 0, optional.output
    rows = json.loads(optional.stdout)["rows"]
    assert {r["status"] for r in rows if r["model"] == "small"} == {"not-run"}
    # optional is for weights or data that may be absent: a store that cannot be written (read-only, full, locked
    # by another job) made the entry 'not run' and the check pass
    from srbench.errors import StoreError
    from srbench.store import Store

    def refuse(self, *args, **kwargs):
        raise StoreError(f"results store {self.path}: attempt to write a readonly database")

    shutil.copy(C.small_model_checkpoint(project), project / "models" / "small.safetensors")
    (project / "store.sqlite").unlink()
    monkeypatch.setattr(Store, "put", refuse)
    unwritable = _check(project)
    assert unwritable.exit_code == 2 and "not checked (optional)" not in unwritable.output
    assert "error: results store" in unwritable.output and "readonly database" in unwritable.output


@pytest.mark.parametrize(("edit", "words"), [
    (lambda s: s.replace("[tolerances]", "colour = 1\n[tolerances]"), "unknown key 'colour'"),
    (lambda s: s.replace('name = "small"', 'name = "small"\nweights = "x"'), "entries[0]: unknown key 'weights'"),
    (lambda s: s.replace('protocols = ["sr", "pirm"]\nmetrics = ["psnr_y", "ssim_y", "rmse"]\n\n[[entries]]\n'
                         'model = "bicubic"',
                         'protocols = ["sr"]\nmetrics = ["niqe"]\n\n[[entries]]\nmodel = "bicubic"'),
     "entries[1].metrics: 'niqe' belongs to none of the protocols sr"),
    (lambda s: s.replace('baseline = "baselines/mine.json"', ""), "'baseline' (the baseline JSON's path) is required"),
])
def test_a_bad_spec_is_one_error_naming_the_file_and_key(project, edit, words):
    (project / "check.toml").write_text(edit(SPEC))
    res = _check(project)
    assert res.exit_code == 2
    (line,) = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert str(project / "check.toml") in line and words in line


def test_without_a_baseline_the_check_cannot_run(project):
    res = _check(project)
    assert res.exit_code == 2 and "no baseline; create one with srbench check --update" in res.output


def test_the_baseline_holds_for_another_checkout_of_the_same_repository(project, tmp_path):
    """Keys are the spec's own words (data/set_a, the model as written), never this machine's absolute paths."""
    assert _check(project, "--update").exit_code == 0
    baseline = (project / "baselines" / "mine.json").read_text()
    assert str(project) not in baseline
    elsewhere = tmp_path / "clone"
    shutil.copytree(project, elsewhere, ignore=shutil.ignore_patterns("store.sqlite"))
    res = _check(elsewhere, "--json")
    assert res.exit_code == 0, res.output
    assert all(r["status"] == "ok" and not r["changed"] for r in json.loads(res.stdout)["rows"])


def test_pyiqa_is_no_fingerprint_of_values_it_does_not_compute():
    # The light install has no pyiqa: a baseline made with it must not flag every value computed without it.
    then = {"metric": "1", "srbench": "0.1.0", "pyiqa": "0.1.16"}
    assert C._changes(then, {"metric": "1", "srbench": "0.1.0"}) == []
    assert "pyiqa" not in FINGERPRINT_PACKAGES
    # where pyiqa computes the value its version is the metric's own, which is compared
    assert C._changes({"metric": "pyiqa-0.1.16"}, {"metric": "pyiqa-0.1.17"}) == [
        "metric implementation version pyiqa-0.1.16 -> pyiqa-0.1.17"]
