"""The harness: suites, the results store (cache, concurrency), paper tables, the plane, drift checks."""

from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from srbench.ablate import load_suite, parse_suite
from srbench.errors import BadInputError
from srbench.evaluation import evaluate_model
from srbench.report import paper_table, tidy_from_store
from srbench.store import Store


def test_shipped_suites():
    esrgan = load_suite("esrgan")
    assert [v.name for v in esrgan.entries] == [
        "srgan", "srgan-nobn", "srgan-nobn-preact", "srgan-nobn-preact-ragan", "esrgan"]
    assert esrgan.interp_variant == "esrgan" and esrgan.alphas == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert esrgan.baselines == ("bicubic",)
    grid = load_suite("esrgan-grid")
    assert len(grid.entries) == 16 and len({v.name for v in grid.entries}) == 16
    from srbench.train.config import resolve_config

    for v in grid.entries:  # every grid cell resolves to a valid configuration
        resolve_config(v.training, "smoke")


def test_suite_errors_are_named():
    with pytest.raises(BadInputError, match=r"unknown key.*colour"):
        parse_suite({"name": "x", "colour": "red"}, "x.toml")
    with pytest.raises(BadInputError, match=r"variants\[0\]: unknown key"):
        parse_suite({"variants": [{"name": "a", "training": "srgan", "lr": 1}]}, "x.toml")
    with pytest.raises(BadInputError, match="not a variant of the suite"):
        parse_suite({"variants": [{"name": "a", "training": "srgan"}], "interpolation": {"variant": "b"}}, "x.toml")
    with pytest.raises(BadInputError, match="unknown suite"):
        load_suite("no-such-suite")


def test_store_caches_per_image_and_recomputes_only_new_metrics(shared_data, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    ds = str(shared_data / "benchmark/Set5")
    (first,) = evaluate_model("bicubic", [ds], store=store, suite="t")
    assert first.provenance["cached_images"] == 0
    calls = {"n": 0}
    import dataclasses

    import srbench.metrics as M

    real = M.get_metric("ssim_y")

    def counting(image):
        calls["n"] += 1
        return real.compute(image)

    with M.temporarily(dataclasses.replace(real, compute=counting)):
        (again,) = evaluate_model("bicubic", [ds], store=store, suite="t")
    assert again.provenance["cached_images"] == 5 and calls["n"] == 0
    assert again.summary == first.summary
    # A new metric version is a different number: recomputed, the old one kept.
    with M.temporarily(dataclasses.replace(real, compute=counting, version="wang2004-2")):
        (bumped,) = evaluate_model("bicubic", [ds], store=store, suite="t")
    assert calls["n"] == 5 and bumped.provenance["cached_images"] == 0
    versions = {r["metric_version"] for r in store.all_values() if r["metric"] == "ssim_y"}
    assert versions == {"wang2004-1", "wang2004-2"}
    runs = store.runs()  # every evaluation is a run, the one served from the store too (it reused those values)
    assert len(runs) == 3 and runs[0]["dataset_key"] == first.provenance["dataset_sha256"]
    assert runs[0]["srbench_version"] and runs[0]["finished"]


def _writer(path: str, worker: int, n: int) -> None:
    store = Store(path)
    for i in range(n):
        store.put(f"model{worker}", "ds", "sr", 4, f"img{i}", {"psnr_y": float(i)}, {"psnr_y": "1"}, None)
    store.close()


def test_concurrent_writers_lose_no_rows(tmp_path):
    path = str(tmp_path / "s.sqlite")
    Store(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 60)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = Store(path).all_values()
    assert len(rows) == 4 * 60
    assert {r["model_key"] for r in rows} == {f"model{w}" for w in range(4)}


def _tidy():
    rows = []
    for model, psnr, pi in (("bicubic", 25.0, 6.5), ("srgan-gan", 26.0, 2.5), ("esrgan-gan", 26.5, None)):
        rows.append({"model": model, "dataset": "set5", "protocol": "sr", "scale": 4, "metric": "psnr_y",
                     "value": psnr, "n_images": 5, "higher_is_better": True, "version": "1"})
        if pi is not None:
            rows.append({"model": model, "dataset": "set5", "protocol": "pirm", "scale": 4, "metric": "pi",
                         "value": pi, "n_images": 5, "higher_is_better": False, "version": "x"})
    return pd.DataFrame(rows)


def test_paper_table_marks_best_second_and_missing():
    md = paper_table(_tidy(), ["psnr_y", "pi"], "markdown")
    assert "| set5 PSNR-Y ↑ | set5 PI ↓ |" in md
    assert "| esrgan-gan | **26.50** | – |" in md  # missing PI shown as missing, never as zero
    assert "| srgan-gan | <u>26.00</u> | **2.500** |" in md
    assert "| bicubic | 25.00 | <u>6.500</u> |" in md
    assert "sr protocol" in md and "pirm protocol" in md
    tex = paper_table(_tidy(), ["psnr_y", "pi"], "latex")
    assert "\\textbf{26.50}" in tex and "\\underline{26.00}" in tex and "$\\downarrow$" in tex
    assert "esrgan-gan & \\textbf{26.50} & -- \\\\" in tex.replace("esrgan\\_gan", "esrgan-gan")
    assert "\\caption{" in tex


def test_pirm_plane_draws_and_finds_region_winners(tmp_path):
    from srbench.plots import pirm_plane, plane_points, region_winners

    rows = []
    for model, rmse, niqe in (("bicubic", 11.0, 7.0), ("a", 12.0, 4.0), ("b", 12.3, 3.0), ("c", 15.0, 2.0),
                              ("esrgan-interp-alpha0.0", 11.2, 5.0), ("esrgan-interp-alpha1.0", 15.5, 2.5)):
        for metric, value in (("rmse", rmse), ("niqe", niqe)):
            rows.append({"model": model, "dataset": "d", "protocol": "pirm", "scale": 4, "metric": metric,
                         "value": value, "n_images": 1, "higher_is_better": False, "version": "1"})
    tidy = pd.DataFrame(rows)
    points, y = plane_points(tidy, "d")
    assert y == "niqe"  # PI unavailable: NIQE is drawn instead, and said so
    assert region_winners(points) == {"R1": "esrgan-interp-alpha0.0", "R2": "b", "R3": "c"}
    path = pirm_plane(tidy, tmp_path / "plane.png", dataset="d")
    from srbench.plots import draw_plane

    # PIRM ranks a region by PI: on a NIQE axis no "best in region" is drawn (another ranking than the challenge's);
    # with PI, the stars are PI's winners
    labels = [h.get_label() for h in draw_plane(tidy, dataset="d").axes[0].get_legend_handles_labels()[0]]
    assert "best in region" not in labels
    # the legend drawn holds every labelled entry (one added after it, as the published points were, was missing)
    legend = draw_plane(tidy, dataset="d").axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == labels
    with_pi = tidy.assign(metric=tidy["metric"].replace("niqe", "pi"))
    stars = [c for c in draw_plane(with_pi, dataset="d").axes[0].collections if c.get_label() == "best in region"]
    assert len(stars) == 1
    from PIL import Image

    with Image.open(path) as im:
        assert im.size[0] > 600 and im.size[1] > 400


def test_the_plane_marks_means_over_other_images_and_names_no_region_best_among_them():
    """A review: a model evaluated on 4 of 5 images (--skip-bad) was the table's unranked 5.908¶ but the plane's
    "best in R2"; one over other image names likewise."""
    from srbench.plots import draw_plane, plane_others, plane_points, region_winners

    rows = []
    for model, rmse, pi, names in (("a", 12.0, 4.0, "s5"), ("b", 12.3, 3.5, "s5"), ("partial", 12.5, 3.0, "s4"),
                                   ("edited", 12.4, 2.5, "other5"), ("c", 15.0, 2.0, "s5")):
        for metric, value in (("rmse", rmse), ("pi", pi)):
            rows.append({"model": model, "dataset": "d", "protocol": "pirm", "scale": 4, "metric": metric,
                         "value": value, "n_images": 4 if model == "partial" else 5, "higher_is_better": False,
                         "version": "1", "image_set": names})
    tidy = pd.DataFrame(rows)
    points, y = plane_points(tidy, "d")
    others = plane_others(tidy, "d", points, y)
    assert sorted(others) == ["edited", "partial"]
    assert region_winners(points, others) == {"R2": "b", "R3": "c"}
    assert region_winners(points)["R2"] == "edited"  # what was drawn as the region's best
    ax = draw_plane(tidy, dataset="d").axes[0]
    labels = {t.get_text() for t in ax.texts if t.get_gid() == "label"}
    assert {"partial¶", "edited¶", "a", "b"} <= labels
    assert any(t.get_text().startswith("¶ a mean over other images") for t in ax.get_legend().get_texts())


def test_the_plane_s_y_axis_holds_its_error_bars():
    """A review: --ci's NIQE interval [7.562, 9.328] of a point at 8.4 was cut at the axis' 8.65."""
    from types import SimpleNamespace

    from srbench.plots import draw_plane

    tidy = _plane_tidy([("a", 12.0, 8.4), ("b", 13.0, 8.0)])
    intervals = {("a", "d", "niqe"): SimpleNamespace(low=7.562, high=9.328, confidence=0.95),
                 ("a", "d", "rmse"): SimpleNamespace(low=11.8, high=12.2, confidence=0.95)}
    low, high = draw_plane(tidy, dataset="d", intervals=intervals).axes[0].get_ylim()
    assert low < 7.562 and high > 9.328


def _plane_tidy(points) -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "dataset": "d", "protocol": "pirm", "scale": 4, "metric": metric,
                          "value": value, "n_images": 1, "higher_is_better": False, "version": "1"}
                         for model, rmse, niqe in points for metric, value in (("rmse", rmse), ("niqe", niqe))])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plane_labels_never_overlap_and_the_legend_is_beside_the_data(seed):
    """A crowded plane (the smoke job's shape: an interpolation chain in a corner, identical models, a tight
    cluster of long names): identical points share one label, no two labels' drawn boxes intersect, and the legend
    lies outside the axes."""
    import matplotlib.pyplot as plt
    import numpy as np

    from srbench.plots import draw_plane, overlapping_labels

    rng = np.random.default_rng(seed)
    points = [("bicubic", 10.6, 7.6), ("esrgan-psnr", 11.0, 8.0), ("esrgan-gan", 15.0, 7.4)]
    points += [(f"esrgan-interp-alpha{a!r}", 11.0 + 4 * a, 8.0 - 0.6 * a) for a in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    points[-1] = ("esrgan-interp-alpha1.0", 15.0, 7.4)  # equal to esrgan-gan
    points[3] = ("esrgan-interp-alpha0.0", 11.0, 8.0)  # equal to esrgan-psnr
    points += [(f"variant-{i}-with-a-long-name-{stage}", 20 + rng.uniform(0, 1.5), 8.5 + rng.uniform(0, 0.6))
               for i in range(4) for stage in ("psnr", "gan")]
    points += [(f"same-{i}", 22.0, 12.0) for i in range(3)]
    fig = draw_plane(_plane_tidy(points), dataset="d")
    try:
        ax = fig.axes[0]
        texts = [t for t in ax.texts if t.get_gid() == "label"]
        labels = sorted(t.get_text() for t in texts)
        assert "esrgan-psnr = α=0" in labels and "esrgan-gan = α=1" in labels and "same-0 = same-1 = same-2" in labels
        assert len(texts) == len(points) - 2 - 2  # two pairs and one triple share labels
        assert overlapping_labels(texts) == []
        renderer = fig.canvas.get_renderer()
        assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    finally:
        plt.close(fig)


def test_model_names_on_the_plane_are_drawn_as_written(tmp_path):
    # matplotlib reads $...$ as math: 'cost $5 vs $6' was drawn 'cost 5vs6', and '$\\foo$' a traceback, no file
    import matplotlib.pyplot as plt

    from srbench.plots import draw_plane, pirm_plane

    tidy = _plane_tidy([("cost $5 vs $6", 10.0, 7.0), ("x4 $\\foo$ run", 12.0, 6.0)]).assign(dataset="my $set")
    fig = draw_plane(tidy, dataset="my $set")
    try:
        ax = fig.axes[0]
        fig.canvas.draw()
        assert sorted(t.get_text() for t in ax.texts if t.get_gid() == "label") == ["cost $5 vs $6", "x4 $\\foo$ run"]
        assert all(not t._parse_math for t in ax.texts if t.get_gid() == "label")
    finally:
        plt.close(fig)
    assert pirm_plane(tidy, tmp_path / "plane.png", dataset="my $set").is_file()


@pytest.mark.slow
def test_drift_check_catches_an_injected_metric_change(tmp_path):
    import dataclasses

    import srbench.metrics as M
    from srbench import check

    entries, _ = check.compute_reference(None, ("skimage",), tmp_path)
    baseline = check.write_baseline(tmp_path / "b.json", entries)
    rows = check.compare(check.load_baseline(baseline), check.compute_reference(None, ("skimage",), tmp_path)[0])
    assert rows and all(r.status == "ok" for r in rows)
    real = M.get_metric("psnr_y")
    with M.temporarily(dataclasses.replace(real, compute=lambda image: real.compute(image) + 0.01)):
        now = check.compute_reference(None, ("skimage",), tmp_path)[0]
    drifted = check.compare(check.load_baseline(baseline), now)
    moved = {(r.model, r.metric) for r in drifted if r.status == "DRIFT"}
    assert moved == {("bicubic", "psnr_y"), ("rrdb23-smoke", "psnr_y")}


def test_committed_baseline_has_reference_numbers():
    from srbench.check import DEFAULT_BASELINE

    data = json.loads(DEFAULT_BASELINE.read_text())
    bicubic = {(e["dataset"], e["metric"]): e["value"] for e in data["entries"] if e["model"] == "bicubic"}
    assert abs(bicubic[("set5", "psnr_y")] - 28.42) < 0.015  # the published figure anchors the baseline
    assert abs(bicubic[("set5", "ssim_y")] - 0.8104) < 0.001
    assert not np.isnan(bicubic[("skimage", "niqe")])


def test_tidy_from_store_reaggregates_with_the_protocol_rules(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for image, mse in (("a", 100.0), ("b", 400.0)):
        store.put("k", "d", "pirm", 4, image, {"mse": mse, "rmse": mse**0.5}, {"mse": "1", "rmse": "1"}, None)
    store.label("suite", "m", "k", "dset", "d")
    tidy = tidy_from_store(store.values("suite"))
    rmse = tidy[tidy["metric"] == "rmse"]["value"].item()
    assert rmse == pytest.approx(250.0**0.5)  # sqrt(mean MSE), not mean RMSE (15)


def test_stored_nan_stays_a_nan_not_a_missing_metric(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    from srbench.protocols import PROTOCOLS

    versions = PROTOCOLS["pirm"].output_versions(["niqe"])
    for image, niqe in (("a", 3.0), ("b", float("nan"))):
        store.put("k", "d", "pirm", 4, image, {"niqe": niqe, "niqe_spread": 0.0, "niqe_low": niqe, "niqe_high": niqe,
                                              "niqe_med": niqe}, versions, None)
    store.label("suite", "m", "k", "dset", "d")
    tidy = tidy_from_store(store.values("suite"))
    row = tidy[tidy["metric"] == "niqe"]
    assert len(row) == 1 and np.isnan(row["value"].item())


def test_cached_evaluation_keeps_the_same_provenance(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    (fresh,) = evaluate_model("bicubic", ["skimage"], store=store)
    (cached,) = evaluate_model("bicubic", ["skimage"], store=store)
    assert cached.provenance["cached_images"] == 5
    assert cached.provenance["lr_source"] == fresh.provenance["lr_source"] == {"imresize": 5}
    assert cached.warnings == fresh.warnings and any("modcrop" in w for w in cached.warnings)
