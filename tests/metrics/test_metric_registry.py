"""A metric added from outside the package, with one ``register`` call, shows up everywhere; pyiqa adapter."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from srbench import metrics as M
from srbench.cli import main
from srbench.errors import BadInputError, WeightsUnavailableError
from srbench.evaluation import evaluate_model
from srbench.matlab import rgb2y, shave
from srbench.metrics import registry
from srbench.store import Store

CALLS = {"n": 0}


def _mae(image: M.PerImage) -> float:
    CALLS["n"] += 1
    return float(np.mean(np.abs(image.sr - image.hr)))


# A lower-is-better toy: mean absolute error of the protocol's Y plane, with a tolerance no built-in has.
MAE = M.Metric(name="mae_y", label="MAE-Y", digits=3, higher_is_better=False, needs_reference=True,
               version="toy-1", description="mean absolute error of Y", compute=_mae, protocols=("sr",),
               tolerance=0.125, drift_check=True)


@pytest.fixture
def mae():
    M.register(MAE)
    try:
        yield MAE
    finally:
        M.unregister("mae_y")


def _skimage_pairs():
    from srbench.datasets import resolve

    ds = resolve("skimage", None)
    return {item.name: ds.load_pair(item, 4) for item in ds.items}


def _expected_mae(sr: np.ndarray, hr: np.ndarray) -> float:
    """What the sr protocol feeds it: unrounded Y of both, border = scale shaved."""
    return float(np.mean(np.abs(shave(rgb2y(sr.astype(np.float64)), 4) - shave(rgb2y(hr.astype(np.float64)), 4))))


def _noisy_folder(tmp_path, sigma: float):
    """A folder of SR images named as the skimage HR files: HR plus Gaussian noise (a worse 'model')."""
    folder = tmp_path / f"noisy{sigma:g}"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name, pair in _skimage_pairs().items():
        noisy = np.clip(np.rint(pair.hr + rng.normal(0, sigma, pair.hr.shape)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{name}.png")
    return folder


def _toy(name: str, **fields) -> M.Metric:
    return M.Metric(name=name, label="x", digits=2, higher_is_better=True, needs_reference=True, version="1",
                    description="x", compute=_mae, **fields)


def test_register_refuses_a_taken_name_and_unknown_requirements(mae):
    with pytest.raises(BadInputError, match="already registered"):
        M.register(_toy("psnr_y"))
    with pytest.raises(BadInputError, match="requires unregistered metric"):
        M.register(_toy("derived", requires=("nope",)))
    with pytest.raises(BadInputError, match="plane must be one of"):
        _toy("bad", plane="lab")
    assert list(M.all_metrics())[-1] == "mae_y"  # after the built-ins: the protocols' column order is kept


def test_registered_metric_in_evaluate_and_json(mae):
    (res,) = evaluate_model("bicubic", ["skimage"], metrics=["psnr_y", "mae_y"])
    assert res.metrics == ["psnr_y", "mae_y"]
    per_image = {r["image"]: r["mae_y"] for r in res.per_image}
    assert set(per_image) == set(_skimage_pairs())
    assert res.summary["mae_y"] == pytest.approx(np.mean(list(per_image.values())), abs=1e-12)
    assert res.provenance["metric_versions"]["mae_y"] == "toy-1"
    out = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage",
                                    "--metrics", "psnr_y,mae_y", "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)
    assert row["mae_y"] == pytest.approx(res.summary["mae_y"], abs=1e-12) and row["mae_y"] > 1.0
    table = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage",
                                      "--metrics", "mae_y"])
    assert f"{res.summary['mae_y']:.3f}" in table.stdout  # its own 3 digits in the text table


def test_registered_metric_values_are_what_the_sr_protocol_feeds_it(mae, tmp_path):
    folder = _noisy_folder(tmp_path, 20)
    (res,) = evaluate_model(str(folder), ["skimage"], metrics=["mae_y"])
    pairs = _skimage_pairs()
    for row in res.per_image:
        with Image.open(folder / f"{row['image']}.png") as im:
            sr = np.asarray(im)
        assert row["mae_y"] == pytest.approx(_expected_mae(sr, pairs[row["image"]].hr), abs=1e-12)


def test_registered_metric_in_store_and_table(mae, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    worse = _noisy_folder(tmp_path, 30)
    better = _noisy_folder(tmp_path, 3)
    results = {}
    for name, model in (("bicubic", "bicubic"), ("noisy30", str(worse)), ("noisy3", str(better))):
        (results[name],) = evaluate_model(model, ["skimage"], metrics=["psnr_y", "mae_y"], store=store, suite="toy",
                                          name=name)
    stored = {(r["metric"], r["metric_version"]) for r in store.all_values()}
    assert ("mae_y", "toy-1") in stored
    CALLS["n"] = 0
    (again,) = evaluate_model("bicubic", ["skimage"], metrics=["mae_y"], store=store, suite="toy")
    assert again.provenance["cached_images"] == 5 and CALLS["n"] == 0
    assert again.summary["mae_y"] == results["bicubic"].summary["mae_y"]
    order = sorted(results, key=lambda n: results[n].summary["mae_y"])
    assert order[0] == "noisy3" and order[-1] == "noisy30"  # lower MAE is better: noisy3 must be bold
    out = CliRunner().invoke(main, ["table", "--suite", "toy", "--metrics", "psnr_y,mae_y",
                                    "--store", str(tmp_path / "s.sqlite")])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert "skimage MAE-Y ↓" in lines[0] and "skimage PSNR-Y ↑" in lines[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in lines[2:5]}
    best, second = results[order[0]].summary["mae_y"], results[order[1]].summary["mae_y"]
    assert rows[order[0]][1] == f"**{best:.3f}**"
    assert rows[order[1]][1] == f"<u>{second:.3f}</u>"
    assert rows[order[2]][1] == f"{results[order[2]].summary['mae_y']:.3f}"
    # PSNR (higher is better) ranks the same models the other way round on this data: noisy3 best again.
    assert rows["noisy3"][0].startswith("**")
    latex = CliRunner().invoke(main, ["table", "--suite", "toy", "--metrics", "mae_y", "--format", "latex",
                                      "--store", str(tmp_path / "s.sqlite")])
    assert "MAE-Y $\\downarrow$" in latex.stdout and f"\\textbf{{{best:.3f}}}" in latex.stdout


def test_registered_metric_in_drift_check_with_its_tolerance(mae, tmp_path):
    from srbench import check

    entries, _ = check.compute_reference(None, ("skimage",), tmp_path)
    toy = [e for e in entries if e["metric"] == "mae_y"]
    assert {(e["model"], e["protocol"]) for e in toy} == {("bicubic", "sr"), ("rrdb23-smoke", "sr")}
    builtin_only = check.write_baseline(tmp_path / "old.json", [e for e in entries if e["metric"] != "mae_y"])
    rows = check.compare(check.load_baseline(builtin_only), entries)
    new = [r for r in rows if r.metric == "mae_y"]
    assert [r.status for r in new] == ["new", "new"] and all(r.tolerance == 0.125 for r in new)
    with_toy = check.load_baseline(check.write_baseline(tmp_path / "b.json", entries))
    assert with_toy["tolerances"]["mae_y"] == 0.125
    for shift, status in ((0.1, "ok"), (0.2, "DRIFT")):
        moved = [{**e, "value": e["value"] + shift} if e["metric"] == "mae_y" else e for e in entries]
        got = {r.status for r in check.compare(with_toy, moved) if r.metric == "mae_y"}
        assert got == {status}
    assert {r.status for r in check.compare(with_toy, entries) if r.metric != "mae_y"} == {"ok"}
    out = CliRunner().invoke(main, ["check", "--baseline", str(builtin_only), "--data-root", str(tmp_path)])
    assert out.exit_code == 0, out.output
    toy_lines = [line for line in out.stdout.splitlines() if " mae_y " in line]
    assert len(toy_lines) == 2 and all(line.startswith("new") and line.endswith("1e-01") for line in toy_lines)
    assert "no drift" in out.stdout


def test_srbench_metrics_lists_a_registered_metric(mae):
    out = CliRunner().invoke(main, ["metrics"])
    line = next(line for line in out.stdout.splitlines() if line.startswith("mae_y"))
    assert "lower  is better" in line and "full-reference" in line and "vtoy-1" in line
    sr = next(line for line in out.stdout.splitlines() if line.startswith("protocol sr:"))
    assert sr.endswith(", mae_y (default psnr_y, ssim_y)")  # the sr protocol lists it, last, and not by default


def test_entry_point_plugins_load_lazily_on_first_use(tmp_path, monkeypatch):
    (tmp_path / "toyplug.py").write_text(textwrap.dedent("""
        from srbench.metrics import Metric

        def _gain(image):
            return float(image.sr.mean() / max(image.hr.mean(), 1e-9))

        METRIC = Metric(name="toy_gain", label="Gain", digits=3, higher_is_better=True, needs_reference=True,
                        version="gain-1", description="mean(SR) / mean(HR)", compute=_gain)
    """))
    dist = tmp_path / "toyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[srbench.metrics]\ntoy_gain = toyplug:METRIC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", registry._Registry())  # as in a fresh process
    monkeypatch.delitem(sys.modules, "toyplug", raising=False)
    assert "toyplug" not in sys.modules  # nothing is loaded before the registry is used
    assert M.get_metric("toy_gain").version == "gain-1"
    assert "toyplug" in sys.modules and list(M.all_metrics())[:2] == ["psnr_y", "ssim_y"]
    (res,) = evaluate_model("bicubic", ["skimage"], protocol="pirm", metrics=["toy_gain"])
    assert 0.9 < res.summary["toy_gain"] < 1.1  # protocols=None: any protocol reports it


def test_importing_srbench_metrics_does_not_fill_the_registry():
    import subprocess

    code = ("import srbench.metrics as M; from srbench.metrics import registry as r; print(r._REGISTRY.loaded); "
            "M.get_metric('psnr_y'); print(r._REGISTRY.loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


# ---------------------------------------------------------------------------------------------------------
# pyiqa adapter


def test_pyiqa_metric_by_name_takes_direction_and_reference_from_pyiqa(offline):
    assert M.get_metric("pyiqa:psnr").higher_is_better and M.get_metric("pyiqa:psnr").needs_reference
    assert not M.get_metric("pyiqa:brisque").higher_is_better  # pyiqa: lower_better
    assert not M.get_metric("pyiqa:niqe").needs_reference  # pyiqa: NR
    with pytest.raises(BadInputError, match="pyiqa has no metric 'nope'"):
        M.get_metric("pyiqa:nope")


def test_pyiqa_metric_without_weights_is_computed_on_the_protocol_rgb(offline, tmp_path):
    import pyiqa

    folder = _noisy_folder(tmp_path, 20)
    (res,) = evaluate_model(str(folder), ["skimage"], metrics=["psnr_y", "pyiqa:psnr"])
    assert res.provenance["metric_versions"]["pyiqa:psnr"] == f"pyiqa-{pyiqa.__version__}"
    pairs = _skimage_pairs()
    for row in res.per_image:
        with Image.open(folder / f"{row['image']}.png") as im:
            sr = np.asarray(im)
        rgb = M.psnr(shave(sr, 4), shave(pairs[row["image"]].hr, 4))  # pyiqa's psnr is on RGB (float32)
        assert row["pyiqa:psnr"] == pytest.approx(rgb, abs=2e-3)
        assert not math.isclose(row["pyiqa:psnr"], row["psnr_y"], abs_tol=0.05)  # not the Y plane
    out = CliRunner().invoke(main, ["evaluate", "--model", str(folder), "--dataset", "skimage",
                                    "--metrics", "pyiqa:ssim", "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)  # pyiqa's own prints must not corrupt the JSON
    assert 0.3 < row["pyiqa:ssim"] < 1.0


def test_pyiqa_metric_needing_weights_is_reported_missing_without_downloading(offline):
    import os

    with pytest.raises(WeightsUnavailableError) as info:
        list(evaluate_model("bicubic", ["skimage"], metrics=["pyiqa:brisque"]))  # a generator: run it
    err = info.value
    assert err.filename == "brisque_svm_weights.pth" and err.folder == os.environ["SRBENCH_WEIGHTS"]
    assert str(offline) in err.searched
    assert not (offline / "brisque_svm_weights.pth").exists()
    (res,) = evaluate_model("bicubic", ["skimage"], metrics=["psnr_y", "pyiqa:brisque"], skip_unavailable=True)
    assert "brisque_svm_weights.pth" in res.unavailable["pyiqa:brisque"] and res.summary["psnr_y"] > 20
    out = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage",
                                    "--metrics", "pyiqa:brisque"])
    assert out.exit_code == 1
    assert "brisque_svm_weights.pth" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_niqe_facts_other_modules_use_are_fields_of_its_descriptor():
    # Issue 22: evaluation, plots and the API read NIQE's ill-conditioning threshold and its smallest image from
    # the descriptor, where they were a constant imported across modules and a sentence written in evaluation.
    niqe = M.get_metric("niqe")
    assert niqe.ill_conditioned_spread == 1e-3 and M.get_metric("brisque").ill_conditioned_spread == 1e-3
    assert niqe.undefined_when == "NIQE needs two 96x96 blocks after the shave"
    assert M.get_metric("psnr_y").ill_conditioned_spread is None


def test_a_descriptor_is_written_with_keywords():
    with pytest.raises(TypeError):
        M.Metric("x", "x", 2, True, True, "1", "x", _mae)  # positional fields: refused, a descriptor is a card
