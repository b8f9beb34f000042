"""`srbench ablate` end to end with given checkpoints: report, store, CLI views, failures, cached re-run."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from srbench.archs import GENERATORS, build_generator
from srbench.checkpoints import save_checkpoint
from srbench.cli import main

# Every test shares one ablation run of a small suite (about 30 s on 2 cores).
pytestmark = pytest.mark.slow

SUITE = """
name = "mini"
description = "two variants and an interpolation, for tests"
baselines = ["bicubic"]
[[variants]]
name = "plain"
training = "srgan-nobn"
[[variants]]
name = "dense"
training = "esrgan"
[[variants]]
name = "broken"
training = "esrgan"
[interpolation]
variant = "dense"
alphas = [0.0, 0.5, 1.0]
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    (root / "mini.toml").write_text(SUITE)
    torch.manual_seed(0)
    for name, generator in (("plain", "srresnet16-smoke"), ("dense", "rrdb23-smoke"), ("broken", "rrdb23-smoke")):
        spec = GENERATORS[generator]
        config = {**spec.config, "scale": 4}
        for stage in ("psnr", "gan"):
            save_checkpoint(build_generator(spec.arch, config), root / "ckpt" / name / stage / "g_final.safetensors",
                            arch=spec.arch, config=config, variant=generator, stage=stage)
    gan = root / "ckpt/broken/gan/g_final.safetensors"
    gan.write_bytes(gan.read_bytes()[:2000])  # a checkpoint that fails to load
    args = ["ablate", "--suite", str(root / "mini.toml"), "--checkpoints", str(root / "ckpt"),
            "--store", str(root / "s.sqlite"), "--out", str(root / "report"), "--device", "cpu"]
    first = CliRunner().invoke(main, args)
    return root, args, first


def test_ablate_reports_every_model_and_lists_failures(setup):
    root, _, res = setup
    assert res.exit_code == 1  # one variant's checkpoint is broken: reported, the rest still ran
    assert "broken-gan" in res.stderr and "corrupt or truncated" in res.stderr
    tidy = pd.read_csv(root / "report/results.csv")
    models = set(tidy["model"])
    assert {"bicubic", "plain-psnr", "plain-gan", "dense-psnr", "dense-gan", "broken-psnr",
            "dense-interp-alpha0.0", "dense-interp-alpha0.5", "dense-interp-alpha1.0"} <= models
    assert "broken-gan" not in models
    for name in ("table.md", "table.tex", "index.html", "pirm_plane_skimage.png", "failures.txt"):
        assert (root / "report" / name).is_file(), name
    # interpolation endpoints are the endpoint models themselves
    psnr = tidy[tidy["metric"] == "psnr_y"].set_index("model")["value"]
    assert psnr["dense-interp-alpha0.0"] == psnr["dense-psnr"] and psnr["dense-interp-alpha1.0"] == psnr["dense-gan"]
    bicubic = tidy[(tidy["model"] == "bicubic") & (tidy["metric"] == "psnr_y")]["value"].item()
    assert bicubic == pytest.approx(28.190998, abs=1e-5)  # the embedded set's committed drift baseline value


def test_rerun_reads_everything_from_the_store_and_writes_deleted_report_files_again(setup):
    root, args, _ = setup
    report = root / "report"

    def rows(name: str) -> list[str]:  # captions aside: they name this test's weights folder, another each test
        return [line for line in (report / name).read_text().splitlines() if not line.startswith("\\caption")]

    before = {name: rows(name) for name in ("results.csv", "table.tex")}
    for name in ("results.csv", "table.tex", "pirm_plane_skimage.png"):  # were not written again (exit 0)
        (report / name).unlink()
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1
    evaluated = [line for line in res.stderr.splitlines() if line.startswith("evaluated")]
    assert evaluated and all("5 from the store" in line for line in evaluated)
    assert not any(line.startswith("training") for line in res.stderr.splitlines())
    assert {name: rows(name) for name in before} == before
    assert (report / "pirm_plane_skimage.png").is_file()


def test_a_column_without_any_value_says_why_in_every_table(setup):
    # no Ma weights here: PI is a column of '–', and each table says why beside it
    root, _, _ = setup
    why = "Not available: PI: "
    assert any(line.startswith(f"- {why}") and "NRQM_model.mat" in line
               for line in (root / "report/table.md").read_text().splitlines())
    tex = (root / "report/table.tex").read_text()
    assert next(line for line in tex.splitlines() if line.startswith("\\caption{") and why in line)
    assert why in (root / "report/index.html").read_text()


def test_table_results_export_and_plane_from_the_store(setup, tmp_path):
    root, _, _ = setup
    store = ["--store", str(root / "s.sqlite")]
    res = CliRunner().invoke(main, ["table", "--suite", "mini", "--metrics", "psnr_y,niqe,pi", *store])
    assert res.exit_code == 0, res.output
    assert "| Model | skimage PSNR-Y ↑ | skimage NIQE ↓ | skimage PI ↓ |" in res.stdout
    assert "| bicubic | **28.19** |" in res.stdout
    res = CliRunner().invoke(main, ["table", "--suite", "mini", "--format", "latex", *store])
    assert "\\begin{tabular}" in res.stdout
    res = CliRunner().invoke(main, ["results", "--suite", "mini", *store])
    assert res.exit_code == 0 and "dense-gan" in res.stdout
    res = CliRunner().invoke(main, ["export", "--format", "csv", "--out", str(tmp_path / "all.csv"), *store])
    assert res.exit_code == 0
    exported = pd.read_csv(tmp_path / "all.csv")
    assert {"model", "dataset", "protocol", "metric", "value"} <= set(exported.columns)
    res = CliRunner().invoke(main, ["pirm-plane", "--suite", "mini", "--dataset", "skimage", "--out",
                                    str(tmp_path / "plane.svg"), *store])
    assert res.exit_code == 0, res.output
    assert "NIQE is on the y axis" in res.stderr and (tmp_path / "plane.svg").read_text().startswith("<?xml")
    runs = CliRunner().invoke(main, ["table", "--suite", "nothing-here", *store])
    assert runs.exit_code != 0 and "no results for suite 'nothing-here'" in runs.output


def test_store_rows_carry_provenance(setup):
    import hashlib
    import sqlite3
    from importlib import metadata

    import srbench
    from srbench import datasets as D

    root, _, _ = setup
    conn = sqlite3.connect(root / "s.sqlite")
    rows = conn.execute("SELECT model, checkpoint_sha256, dataset_key, srbench_version, torch_version, config "
                        "FROM runs WHERE model IN ('plain-psnr', 'dense-gan')").fetchall()
    assert sorted({r[0] for r in rows}) == ["dense-gan", "plain-psnr"]
    skimage_key = D.resolve("skimage").fingerprint()
    for model, sha, dataset_key, version, torch_version, config in rows:
        variant, stage = model.split("-")
        ckpt = root / "ckpt" / variant / stage / "g_final.safetensors"
        # The recorded digest is the file that was evaluated, the dataset key the set's own fingerprint.
        assert sha == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        assert dataset_key == skimage_key
        assert version == srbench.__version__ and torch_version == metadata.version("torch")
        recorded = json.loads(config)["model"]
        assert recorded["kind"] == "generator" and recorded["sha256"] == sha
        assert recorded["variant"] == ("srresnet16-smoke" if variant == "plain" else "rrdb23-smoke")
