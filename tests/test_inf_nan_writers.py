"""Issue 21: infinity and NaN through every writer and back (JSON, per-image CSV, the store, export, tables).

An SR folder identical to its HR images gives PSNR-Y = inf and RMSE = 0; images of 128x128 px hold one
96x96 NIQE block per axis, too few for NIQE's covariance, so NIQE is undefined (NaN). Each writer must keep
them apart: infinity as "inf" in JSON (JSON has no infinity) and as inf in CSV, NaN as null or an empty cell,
and reading any of them back must give float infinity and NaN again, never 0, a string or an error.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from srbench.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("infnan")
    hr, sr = root / "hr", root / "sr"
    hr.mkdir()
    rng = np.random.default_rng(21)
    Image.fromarray(rng.integers(0, 256, (128, 128, 3)).astype(np.uint8)).save(hr / "noise.png")
    Image.fromarray(np.full((128, 128, 3), 128, np.uint8)).save(hr / "flat.png")
    shutil.copytree(hr, sr)
    store = root / "store.db"

    def invoke(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    def evaluate(protocol: str, metrics: str) -> list[dict]:
        return json.loads(invoke("evaluate", "--model", str(sr), "--dataset", str(hr), "--protocol", protocol,
                                 "--metrics", metrics, "--json", "--out", str(root / "out"), "--store", str(store)))

    first = evaluate("sr", "psnr_y,ssim_y") + evaluate("pirm", "rmse,niqe")
    again = evaluate("sr", "psnr_y,ssim_y") + evaluate("pirm", "rmse,niqe")
    return {"root": root, "store": store, "invoke": invoke, "first": first, "again": again}


def _float(value) -> float:
    """A number as srbench's JSON rule writes it, read back."""
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return float(value)
    assert isinstance(value, int | float), value  # "inf"/"-inf" are the only strings a number may be
    return float(value)


def test_evaluate_json_writes_infinity_as_the_string_and_undefined_as_null(run):
    sr, pirm = run["first"]
    assert sr["psnr_y"] == "inf" and sr["ssim_y"] == 1.0
    assert pirm["rmse"] == 0.0 and pirm["niqe"] is None
    assert _float(sr["psnr_y"]) == math.inf and math.isnan(_float(pirm["niqe"]))


def test_values_read_back_from_the_store_are_the_same_infinity_and_nan(run):
    for first, again in zip(run["first"], run["again"], strict=True):
        assert again["provenance"]["cached_images"] == 2  # answered from the store, not recomputed
        for key in ("psnr_y", "ssim_y", "rmse", "niqe"):
            if key in first:
                assert again[key] == first[key], key


def test_per_image_csv_and_json_files_read_back_as_infinity_and_nan(run):
    out = run["root"] / "out"
    sr_csv = pd.read_csv(next(out.glob("*__sr_x4.csv"))).set_index("image")
    pirm_csv = pd.read_csv(next(out.glob("*__pirm_x4.csv"))).set_index("image")
    assert np.isposinf(sr_csv.loc[["noise", "flat"], "psnr_y"]).all()
    assert (pirm_csv["rmse"] == 0.0).all() and pirm_csv["niqe"].isna().all()
    written = json.loads(next(out.glob("*__sr_x4.json")).read_text())
    assert "Infinity" not in next(out.glob("*__sr_x4.json")).read_text()  # what json.dumps would write: not JSON
    assert written["psnr_y"] == "inf"


def test_export_csv_reads_back_as_infinity_and_nan(run):
    target = run["root"] / "export.csv"
    run["invoke"]("export", "--store", str(run["store"]), "--out", str(target))
    rows = pd.read_csv(target).set_index("metric")["value"]
    assert rows["psnr_y"] == math.inf and rows["rmse"] == 0.0 and math.isnan(rows["niqe"])


def test_tables_show_infinity_and_undefined_apart(run):
    args = ("table", "--suite", "evaluate", "--store", str(run["store"]), "--metrics", "psnr_y,niqe,rmse")
    csv = pd.read_csv(pd.io.common.StringIO(run["invoke"](*args, "--format", "csv")))
    assert np.isposinf(csv.filter(like="psnr_y").iloc[0, 0]) and csv.filter(like="niqe").isna().all(axis=None)
    markdown = run["invoke"](*args, "--format", "markdown")
    row = next(line for line in markdown.splitlines() if line.startswith("| sr "))
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
    assert cells[1:] == ["∞", "–", "0.00"]


def test_the_python_api_reads_the_store_back_as_infinity_and_nan(run):
    import srbench

    table = srbench.results(run["store"]).summary.set_index("metric")["value"]
    assert table["psnr_y"] == math.inf and table["rmse"] == 0.0 and math.isnan(table["niqe"])

