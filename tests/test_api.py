"""The Python API (issue 15): ``import srbench`` stays light, ``srbench.evaluate`` gives the CLI's numbers as
pandas, results come back from a store, any metric is a function, and the quickstart notebook runs."""

from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import srbench
from srbench import paths
from srbench.cli import main
from srbench.errors import BadInputError


def test_import_srbench_imports_neither_torch_nor_pyiqa():
    code = ("import sys, srbench; print(sorted(m for m in ('torch', 'pyiqa', 'pandas', 'matplotlib') "
            "if m in sys.modules)); print(srbench.__all__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert set(ast.literal_eval(out[1])) >= {"evaluate", "results", "metric", "Results", "__version__"}


def test_the_api_names_are_documented_and_typed():
    python_doc = (paths.PROJECT_ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    for name in srbench.__all__:
        assert f"srbench.{name}" in python_doc or name == "__version__", name
    assert (paths.PROJECT_ROOT / "srbench" / "py.typed").is_file()
    assert srbench.evaluate.__annotations__["return"] in ("Results", srbench.Results)


def test_evaluate_gives_the_numbers_of_the_cli(tmp_path):
    res = srbench.evaluate("bicubic", ["skimage"], protocol="pirm", metrics=["rmse", "niqe"])
    assert isinstance(res, srbench.Results)
    summary = res.summary
    assert list(summary.columns[:6]) == ["model", "dataset", "protocol", "metric", "value", "n_images"]
    out = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage", "--protocol", "pirm",
                                    "--metrics", "rmse,niqe", "--json"])
    assert out.exit_code == 0, out.output
    (cli,) = json.loads(out.stdout)
    for metric in ("rmse", "niqe"):
        row = summary[summary["metric"] == metric].iloc[0]
        assert row["value"] == cli[metric] and row["n_images"] == cli["n_images"] == 5
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    niqe = summary[summary["metric"] == "niqe"].iloc[0]
    assert niqe["cond_low"] <= niqe["value"] <= niqe["cond_high"]
    per = res.per_image
    assert len(per) == 10 and set(per["metric"]) == {"rmse", "niqe"}
    assert per["model_key"].iloc[0] == "bicubic:matlab-imresize-uint8-symmetric"
    # The dataset RMSE is sqrt(mean per-image MSE), as the protocol defines it, not the mean of the rows here.
    assert summary[summary["metric"] == "rmse"]["value"].item() != pytest.approx(
        per[per["metric"] == "rmse"]["value"].mean(), abs=1e-9)


def test_results_from_a_store_table_repr_and_html(tmp_path):
    store = tmp_path / "s.sqlite"
    first = srbench.evaluate("bicubic", "skimage", store=store, metrics=["psnr_y", "ssim_y"])
    again = srbench.results(store)
    pd.testing.assert_frame_equal(first.summary.drop(columns=["version"]), again.summary.drop(columns=["version"]),
                                  check_dtype=False)
    table = again.table(fmt="latex")
    assert "\\textbf{" in table and "PSNR-Y" in table
    text = repr(again)
    assert text.startswith("srbench Results: 1 model(s) x 1 dataset(s)") and "| bicubic |" in text
    page = again._repr_html_()
    assert page.count("<table") == 1 and "<b>" in page and "Y of YCbCr" in page


def test_compare_and_add(tmp_path):
    a = srbench.evaluate("bicubic", "skimage", metrics=["psnr_y"])
    folder = tmp_path / "worse"
    from srbench.datasets import resolve
    from srbench.images import write_png
    from srbench.matlab import imresize

    for it in resolve("skimage").items:
        hr = it.read_hr()
        sr = imresize(imresize(hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4], 0.25), 4)
        write_png(folder / f"{it.name}.png", np.clip(sr.astype(int) + 9, 0, 255).astype(np.uint8))
    both = a + srbench.evaluate(folder, "skimage", metrics=["psnr_y"])
    table = both.compare("bicubic", "worse")
    (row,) = table.itertuples()
    assert row.metric == "psnr_y" and row.difference > 0 and row.wins == 5 and row.losses == 0
    with pytest.raises(BadInputError, match="unknown model 'nosuch'; these results hold bicubic, worse"):
        both.compare("bicubic", "nosuch")
    with pytest.raises(BadInputError, match="no results for dataset 'set5' in these results; it has skimage"):
        both.compare("bicubic", "worse", dataset="set5")
    assert both.compare("bicubic", "worse", dataset="SKImage").equals(table)  # a set's name without its case


def test_metric_by_name_is_the_value_evaluate_stores():
    from srbench.datasets import resolve
    from srbench.matlab import imresize

    res = srbench.evaluate("bicubic", "skimage", protocol="pirm", metrics=["rmse", "niqe"])
    it = resolve("skimage").items[0]
    hr = it.read_hr()
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    sr = imresize(imresize(hr, 0.25), 4)
    per = res.per_image.set_index(["image", "metric"])["value"]
    assert srbench.metric("rmse", protocol="pirm")(sr, hr) == per[(it.name, "rmse")]
    assert srbench.metric("niqe")(sr) == per[(it.name, "niqe")]
    with pytest.raises(BadInputError, match="call it as f\\(sr, hr\\)"):
        srbench.metric("psnr_y")(sr)
    assert math.isfinite(srbench.metric("niqe").outputs(sr)["niqe_high"])


@pytest.mark.slow
def test_the_quickstart_notebook_runs_top_to_bottom(tmp_path):
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(paths.PROJECT_ROOT / "docs" / "quickstart.py")
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [c.get("outputs", []) for c in notebook.cells if c.cell_type == "code"]
    assert not [o for cell in outputs for o in cell if o.get("output_type") == "error"]
    texts = ["".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) for cell in outputs
             for o in cell]
    htmls = [o.get("data", {}).get("text/html", "") for cell in outputs for o in cell]
    assert any("<table" in h and "rrdb23-smoke" in h for h in htmls)  # the Results, rendered
    assert any("\\begin{tabular}" in t for t in texts)  # the LaTeX table
    assert any("image/png" in o.get("data", {}) for cell in outputs for o in cell)  # the plane
    assert float(texts[-1]) > 0  # NIQE of an image, by name


def _tiny_store(path, psnr: list[float], key: str = "k"):
    from srbench.protocols import PROTOCOLS
    from srbench.store import Store

    versions = PROTOCOLS["sr"].output_versions(["psnr_y"])
    with Store(path) as store:
        for i, value in enumerate(psnr):
            store.put(key, "d5", "sr", 4, f"img{i}", {"psnr_y": value}, versions, None)
        store.label("t", "m", key, "set5", "d5")
    return srbench.results(path)


def test_adding_overlapping_results_keeps_identical_rows_once_and_names_a_conflict(tmp_path):
    """Issue 21, item 9: res + res (a re-run notebook cell) made repr, _repr_html_ and table() fail with
    'cannot reindex on an axis with duplicate labels'."""
    res = _tiny_store(tmp_path / "a.sqlite", [30.0, 31.0, 32.0])
    both = res + res
    assert len(both.summary) == 1 and both.summary["value"].item() == pytest.approx(31.0)
    assert "| m | **31.00** |" in repr(both) and both._repr_html_().count("<tr>") == 2
    assert both.table() == res.table() and len(both.per_image) == 3
    other = _tiny_store(tmp_path / "b.sqlite", [30.0, 31.0, 33.0])  # the same name and key, other values
    with pytest.raises(BadInputError, match=r"m on set5 \(sr, x4\) is in both with different psnr_y"):
        res + other
    renamed = _tiny_store(tmp_path / "c.sqlite", [30.0, 31.0, 32.0], key="another-model")
    with pytest.raises(BadInputError, match="different model_key"):
        res + renamed


def test_evaluate_refuses_empty_input_and_a_run_where_everything_was_skipped(tmp_path):
    """Issue 21, item 18: evaluate([]) and an all-skipped run returned empty Results silently."""
    from srbench.datasets import resolve

    with pytest.raises(BadInputError, match="no model given"):
        srbench.evaluate([], "skimage")
    with pytest.raises(BadInputError, match="no dataset given"):
        srbench.evaluate("bicubic", [])
    for it in resolve("skimage").items:
        (tmp_path / f"{it.name}.png").write_bytes(b"not a png")
    with pytest.raises(BadInputError, match=r"nothing was evaluated: every image of .* on skimage was skipped "
                                            r"\(first: .*not a readable image"):
        srbench.evaluate(tmp_path, "skimage", metrics=["psnr_y"])


def test_one_image_has_no_summary_interval_and_says_so(tmp_path):
    """Issue 21, item 18: a one-image dataset had a zero-width interval and no note."""
    res = _tiny_store(tmp_path / "one.sqlite", [30.5])
    row = res.summary.iloc[0]
    assert row["value"] == 30.5 and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert any("one image: ci_low/ci_high are NaN" in w for w in res.warnings) and "one image" in repr(res)
    assert "No brackets for m on set5: one image" in res.table(ci=True)


def _bicubic_folder(folder, names=None):
    """scikit-image's photos made x4 bicubic, saved as an SR folder (bicubic's own values, image by image)."""
    from srbench.datasets import load_pair, resolve
    from srbench.images import write_png
    from srbench.matlab import imresize

    folder.mkdir(parents=True)
    for it in resolve("skimage").items:
        if names is None or it.name in names:
            write_png(folder / f"{it.name}.png", imresize(load_pair(it, 4).lr, 4))
    return folder


def test_two_models_of_one_name_or_an_input_given_twice_are_refused(tmp_path):
    # Two folders named x4 (two runs) were summarised as two rows of one key, one of them lost in tables and stores.
    a, b = _bicubic_folder(tmp_path / "run1/x4"), _bicubic_folder(tmp_path / "run2/x4")
    with pytest.raises(BadInputError, match=r"would both be named 'x4'"):
        srbench.evaluate([a, b], "skimage", metrics="psnr_y", workers=1)
    with pytest.raises(BadInputError, match="'bicubic' is given twice"):
        srbench.evaluate(["bicubic", "bicubic"], "skimage", metrics="psnr_y", workers=1)
    with pytest.raises(BadInputError, match=r"dataset\(s\) 'skimage' given twice"):
        srbench.evaluate("bicubic", ["skimage", "skimage"], metrics="psnr_y", workers=1)


def test_a_mean_over_some_images_only_warns(tmp_path):
    # The CLI exits 1 without --skip-bad; the API returned the mean over 4 of 5 images with no warning.
    folder = _bicubic_folder(tmp_path / "sr")
    (folder / "chelsea.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match=r"1 of 5 images skipped as bad input \(first: chelsea: .*over the other 4"):
        res = srbench.evaluate(folder, "skimage", metrics="psnr_y", workers=1)
    assert res.summary.iloc[0]["n_images"] == 4


def test_table_ci_of_several_scales_brackets_each_scale(tmp_path):
    x2 = srbench.evaluate("bicubic", "skimage", metrics="psnr_y", scale=2, workers=1)
    x4 = srbench.evaluate("bicubic", "skimage", metrics="psnr_y", scale=4, workers=1)
    table = (x2 + x4).table(ci=True)
    rows = [line for line in table.splitlines() if line.startswith("| bicubic")]
    assert len(rows) == 2 and all(re.search(r"\*\*\d+\.\d+\*\* \[\d+\.\d+, \d+\.\d+\]", r) for r in rows), table
    assert "95% interval" in table


@pytest.mark.parametrize("scale", [0, -2, 2.5, True, "4"])
def test_metric_refuses_a_scale_that_is_no_positive_whole_number(scale):
    with pytest.raises(BadInputError, match=r"scale must be a positive whole number.*got"):
        srbench.metric("psnr_y", scale=scale)


def test_metric_refuses_a_value_range_given_as_text():
    with pytest.raises(BadInputError, match="value_range must be"):
        srbench.metric("psnr_y", value_range="01")


def _two_image_set(tmp_path, shared_data, small: int) -> tuple:
    """HR ``big`` (300x300) and ``small`` (``small`` px) crops of baby, and their SR: HR plus mild noise."""
    from PIL import Image

    hr = np.asarray(Image.open(shared_data / "benchmark/Set5/HR/baby.png"))
    rng = np.random.default_rng(1)
    (tmp_path / "d/HR").mkdir(parents=True)
    (tmp_path / "m").mkdir()
    for name, side in (("big", 300), ("small", small)):
        crop = hr[:side, :side]
        Image.fromarray(crop).save(tmp_path / f"d/HR/{name}.png")
        noisy = np.clip(crop.astype(int) + rng.integers(-3, 4, crop.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(tmp_path / f"m/{name}.png")
    return tmp_path / "m", tmp_path / "d"


def test_an_undefined_dataset_value_is_a_nan_row_and_keeps_the_defined_images(tmp_path, shared_data):
    # small: 112x112 after the shave, under two 96x96 NIQE blocks: its NIQE, and so the dataset's, is undefined.
    model, data = _two_image_set(tmp_path, shared_data, 120)
    res = srbench.evaluate(str(model), str(data), protocol="pirm", metrics="rmse,niqe", workers=1)
    niqe = res.summary[res.summary["metric"] == "niqe"]
    assert len(niqe) == 1 and math.isnan(niqe["value"].item())
    per = res.per_image[res.per_image["metric"] == "niqe"].set_index("image")["value"]
    assert math.isnan(per["small"]) and 3.0 < per["big"] < 5.0
    assert per["big"] == srbench.metric("niqe")(np.asarray(__import__("PIL.Image").Image.open(model / "big.png")))
    store = tmp_path / "s.sqlite"
    out = CliRunner().invoke(main, ["evaluate", "--model", str(model), "--dataset", str(data), "--protocol", "pirm",
                                    "--metrics", "rmse,niqe", "--workers", "1", "--store", str(store)])
    assert out.exit_code == 0, out.output
    assert re.search(r"\s–\s*$", out.stdout.splitlines()[-1])  # the one rule: undefined is '–' in tables
    listing = CliRunner().invoke(main, ["results", "--store", str(store)])
    assert listing.exit_code == 0 and "niqe" in listing.output.splitlines()[1]  # a column of '–', not dropped
    stored = srbench.results(store, suite="evaluate")
    assert math.isnan(stored.summary[stored.summary["metric"] == "niqe"]["value"].item())


def test_ssim_of_an_image_under_its_window_is_undefined_and_its_psnr_kept(tmp_path, shared_data):
    # small: 16x16, 8x8 after the x4 shave: under SSIM's 11x11 window; its PSNR-Y is defined all the same.
    model, data = _two_image_set(tmp_path, shared_data, 16)
    both = srbench.evaluate(str(model), str(data), workers=1)
    psnr_only = srbench.evaluate(str(model), str(data), metrics="psnr_y", workers=1)
    per = both.per_image.set_index(["image", "metric"])["value"]
    assert math.isnan(per["small", "ssim_y"]) and 0.9 < per["big", "ssim_y"] < 1.0
    assert per["small", "psnr_y"] == psnr_only.per_image.set_index("image")["value"]["small"]
    assert both.summary.set_index("metric")["n_images"]["psnr_y"] == 2
    assert math.isnan(both.summary.set_index("metric")["value"]["ssim_y"])
    (note,) = [w for w in both.warnings if "undefined (NaN)" in w]
    assert "SSIM needs an image of at least 11x11 pixels" in note and "NIQE" not in note  # its own reason


def test_metric_compares_a_pair_as_an_evaluation_does(tmp_path, shared_data):
    # Set14's comic is 361x250 (rows x columns): an evaluation crops HR (and a full-size SR) to 360x248 first;
    # bridge is gray, and a PyTorch release saves its result as RGB with three equal channels. srbench.metric on
    # the same arrays gave 20.628 dB for comic where the evaluation gave 20.644, and refused bridge.
    from PIL import Image

    (tmp_path / "d/HR").mkdir(parents=True)
    (tmp_path / "m").mkdir()
    rng = np.random.default_rng(3)
    arrays = {}
    for name in ("comic", "bridge"):
        hr = np.asarray(Image.open(shared_data / f"benchmark/Set14/HR/{name}.png"))
        Image.fromarray(hr).save(tmp_path / f"d/HR/{name}.png")
        sr = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
        if sr.ndim == 2:
            sr = np.dstack([sr] * 3)
        Image.fromarray(sr).save(tmp_path / f"m/{name}.png")
        arrays[name] = sr, hr
    assert arrays["comic"][1].shape[:2] == (361, 250) and arrays["bridge"][1].ndim == 2
    res = srbench.evaluate(str(tmp_path / "m"), str(tmp_path / "d"), metrics="psnr_y,ssim_y", workers=1)
    per = res.per_image.set_index(["image", "metric"])["value"]
    for name, (sr, hr) in arrays.items():
        for metric in ("psnr_y", "ssim_y"):
            assert srbench.metric(metric)(sr, hr) == per[(name, metric)], (name, metric)
    sr, hr = arrays["comic"]
    assert srbench.metric("psnr_y")(sr[:360, :248], hr) == per[("comic", "psnr_y")]  # an SR cropped already
    with pytest.raises(BadInputError, match=r"SR is 361x248 .*HR is 360x248 \(cropped from 361x250\)"):
        srbench.metric("psnr_y")(sr[:, :248], hr)


def test_metric_values_do_not_depend_on_the_arrays_memory_layout(shared_data):
    # A torch tensor made an array (CHW, transposed to HWC) is a view in another order: the spectrum's grey
    # conversion gave other last bits than the same pixels read from a file.
    from PIL import Image

    hr = np.asarray(Image.open(shared_data / "benchmark/Set5/HR/butterfly.png"))
    rng = np.random.default_rng(0)
    sr = np.clip(hr.astype(int) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)
    view = np.ascontiguousarray(sr.transpose(2, 0, 1)).transpose(1, 2, 0)
    assert not view.flags.c_contiguous and np.array_equal(view, sr)
    for name in ("spectrum_discrepancy", "psnr_y"):
        f = srbench.metric(name)
        assert f(view, hr) == f(sr, hr) == f(np.asfortranarray(sr), hr), name


@pytest.mark.parametrize("call", [
    lambda: srbench.metric(None), lambda: srbench.metric(3), lambda: srbench.metric(["psnr_y"]),
    lambda: srbench.evaluate(None, "skimage"), lambda: srbench.evaluate("bicubic", "skimage", metrics=("psnr_y", 3)),
    lambda: srbench.MetricFunction("psnr_y", "sr", -1),
], ids=["none", "int", "list", "no-model", "metric-3", "scale-1"])
def test_bad_names_and_scales_are_one_srbench_error(call):
    with pytest.raises(BadInputError, match=r"is named by a str|is a str or path|positive whole number"):
        call()


def test_table_datasets_as_the_cli_takes_them(tmp_path):
    res = srbench.evaluate("bicubic", "skimage", metrics="psnr_y", workers=1)
    value = f"{res.summary['value'].item():.2f}"
    for datasets in ("skimage", "SKImage", ["SKIMAGE"]):
        (row,) = [line for line in res.table(datasets=datasets).splitlines() if line.startswith("| bicubic")]
        assert row == f"| bicubic | **{value}** |", datasets  # once a column of dashes each
    with pytest.raises(BadInputError, match="no results for dataset 'set14' in these results; it has skimage"):
        res.table(datasets="set14")
    with pytest.raises(BadInputError, match="unknown table format 'xml'"):
        res.table(fmt="xml")
