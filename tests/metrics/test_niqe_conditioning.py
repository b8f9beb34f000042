"""NIQE's conditioning range (issue 13): MATLAB's printed values lie inside it, the fast per-pattern engine
equals the slow pixel-by-pixel path, and the deterministic score did not move.

MATLAB values: the LIVE release's ``computequality`` on TID2013 I08, I19, I03 (pyiqa's calibration set, images in
its wheel's ``ResultsCalibra/dist_dir``; values from pyiqa's ``ResultsCalibra/calibration_summary.csv``) and on
the release's own example image3."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from srbench.images import read_image

N = importlib.import_module("srbench.metrics.niqe")
PYIQA_CALIBRATION = Path(importlib.import_module("pyiqa").__file__).resolve().parents[1] / "ResultsCalibra" / "dist_dir"
MATLAB = {"I08": 3.1840, "I19": 8.6352, "I03": 15.7536, "image3": 8.0362}
# srbench's deterministic value on these images: it must not move (the drift baseline's NIQE depends on it).
SRBENCH = {"I08": 3.2121, "I19": 9.0877, "I03": 15.7440, "image3": 7.9838}


def _image(name: str, shared_data: Path) -> np.ndarray:
    if name == "image3":
        return read_image(shared_data / "niqe/live_examples/image3.bmp")
    path = PYIQA_CALIBRATION / f"{name}.bmp"
    if not path.is_file():
        pytest.skip(f"pyiqa's calibration image {path} is not installed")
    return read_image(path)


@pytest.mark.parametrize("name", list(MATLAB))
def test_matlab_value_lies_inside_the_conditioning_range(name, shared_data):
    cond = N.niqe_conditioning(_image(name, shared_data))
    assert cond.low <= MATLAB[name] <= cond.high
    assert cond.low <= cond.value <= cond.high and cond.low <= cond.median <= cond.high
    assert cond.ill_conditioned and cond.draws == N.CONDITIONING_DRAWS and cond.levels > 0
    assert cond.value == pytest.approx(SRBENCH[name], abs=1e-4)  # the score itself is unchanged


def test_the_uniform_resolutions_alone_do_not_bracket_matlab(shared_data):
    """Why the per-level sampling: all-zero, all-positive and all-negative signs miss MATLAB's value on I08 and
    I19 (MATLAB resolves different gray levels differently)."""
    missed = []
    for name in ("I08", "I19"):
        plane = N.prepare_plane(_image(name, shared_data))
        uniform = [N._mvg_distance(N.niqe_features(plane, s)) for s in (-1.0, 0.0, 1.0)]
        if not min(uniform) <= MATLAB[name] <= max(uniform):
            missed.append(name)
    assert missed == ["I08", "I19"]


@pytest.mark.parametrize("name", ["I08", "image3"])
def test_fast_engine_equals_the_pixel_by_pixel_path(name, shared_data):
    plane = N.prepare_plane(_image(name, shared_data))
    model = N._SignModel(plane)
    rng = np.random.default_rng(7)
    patterns = np.concatenate([np.full((3, model.n_levels), [[-1], [0], [1]]),
                               rng.integers(-1, 2, (4, model.n_levels))]).astype(np.float64)
    fast = model.scores(patterns)
    slow = np.array([N.niqe_for_signs(plane, p) for p in patterns])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    # The uniform patterns are the earlier conditioning's three resolutions, bit for bit in the slow path.
    assert slow[:3].tolist() == [N._mvg_distance(N.niqe_features(plane, s)) for s in (-1.0, 0.0, 1.0)]


def test_an_image_without_flat_areas_has_a_zero_range(shared_data):
    img = read_image(shared_data / "niqe/live_examples/image1.bmp")
    cond = N.niqe_conditioning(img)
    assert cond.flat_fraction == 0 and cond.low == cond.high == cond.median == cond.value == N.niqe(img)
    assert not cond.ill_conditioned


def test_the_range_is_deterministic_and_all_zero_areas_are_exact_zeros(shared_data):
    img = _image("I03", shared_data)
    assert N.niqe_conditioning(img) == N.niqe_conditioning(img)
    # A black frame: its all-zero neighbourhoods give an exact 0 in any summation order, so they are no level.
    framed = np.zeros((320, 320), dtype=np.uint8)
    framed[32:-32, 32:-32] = np.random.default_rng(0).integers(20, 230, (256, 256), dtype=np.uint8)
    cond = N.niqe_conditioning(framed)
    assert cond.flat_fraction > 0.1 and cond.levels == 0 and cond.spread == 0.0


def _store_pair(tmp_path, niqe_b: float):
    """Two models' stored NIQE on two images: A at 5.00 and 5.02 with ranges of +-0.05, B at ``niqe_b`` +
    (0, 0.02) with ranges of +-0.01 (as NIQE's outputs, under its current version)."""
    from srbench.protocols import PROTOCOLS
    from srbench.store import Store

    store = Store(tmp_path / "s.sqlite")
    proto = PROTOCOLS["pirm"]
    versions = proto.output_versions(["niqe"])
    for key, base, half in (("a", 5.0, 0.05), ("b", niqe_b, 0.01)):
        for i, image in enumerate(("x", "y")):
            value = base + 0.02 * i
            store.put(key, "d", "pirm", 4, image,
                      {"niqe": value, "niqe_spread": 2 * half, "niqe_low": value - half, "niqe_high": value + half,
                       "niqe_med": value}, versions, None)
        store.label("suite", key.upper(), key, "set", "d")
    return store


def test_table_marks_values_whose_conditioning_ranges_overlap(tmp_path):
    from srbench.report import html_table, paper_table, tidy_from_store

    close = tidy_from_store(_store_pair(tmp_path / "close", 5.04).values("suite"))
    a = close[(close["model"] == "A") & (close["metric"] == "niqe")].iloc[0]
    assert (a["value"], a["cond_low"], a["cond_high"]) == pytest.approx((5.01, 4.96, 5.06))
    text = paper_table(close, ["niqe"], "markdown")
    # A 5.010 is best, B 5.050 second: 0.04 apart, inside A's range: both marked, and the caption says why.
    assert "| A | **5.010**§ |" in text and "| B | <u>5.050</u>§ |" in text
    assert "§ NIQE: this value's conditioning range" in text
    assert "\\S" in paper_table(close, ["niqe"], "latex")
    page = html_table(close, ["niqe"], ["A", "B"])
    assert "<b>5.010</b>§" in page and '<p class="note">§ NIQE: this value' in page
    far = tidy_from_store(_store_pair(tmp_path / "far", 5.20).values("suite"))
    text = paper_table(far, ["niqe"], "markdown")
    assert "§" not in text and "| A | **5.010** |" in text


def test_compare_notes_a_difference_within_the_conditioning_ranges(tmp_path):
    from click.testing import CliRunner

    from srbench.cli import main

    _store_pair(tmp_path, 5.04)
    args = ["compare", "A", "B", "--dataset", "set", "--suite", "suite", "--metric", "niqe", "--protocol", "pirm",
            "--store", str(tmp_path / "s.sqlite")]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "note: NIQE: A [4.960, 5.060] and B [5.040, 5.060] overlap" in out.output
    assert "the difference -0.040 is not a ranking" in out.output
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert '"within_conditioning": true' in as_json.output


def test_evaluation_stores_each_images_range_and_says_what_was_measured(tmp_path, shared_data):
    """LIVE image3 as HR: bicubic keeps its flat sky flat. The range is stored beside the value (and cached), the
    table rows carry the dataset's range, and the warning states the measured range."""
    from srbench.evaluation import evaluate_model
    from srbench.images import write_png
    from srbench.report import tidy_from_store
    from srbench.store import Store

    folder = tmp_path / "set"
    write_png(folder / "image3.png", read_image(shared_data / "niqe/live_examples/image3.bmp"))
    store = Store(tmp_path / "s.sqlite")
    (res,) = evaluate_model("bicubic", [str(folder)], protocol="pirm", metrics=["niqe", "niqe_median"], store=store,
                            suite="s", name="bicubic")
    (row,) = res.per_image
    assert row["niqe_low"] <= row["niqe"] <= row["niqe_high"] and row["niqe_high"] - row["niqe_low"] > 1e-3
    assert res.summary["niqe_median"] == row["niqe_med"]
    (warning,) = [w for w in res.warnings if "ill-conditioned" in w]
    assert (f"it ranges over [{row['niqe_low']:.4f}, {row['niqe_high']:.4f}] (median {row['niqe_med']:.4f})"
            in warning and f"{N.CONDITIONING_DRAWS} random per-gray-level sign patterns" in warning)
    tidy = tidy_from_store(store.values("s"))
    niqe = tidy[tidy["metric"] == "niqe"].iloc[0]
    assert (niqe["cond_low"], niqe["cond_high"]) == (row["niqe_low"], row["niqe_high"])
    (again,) = evaluate_model("bicubic", [str(folder)], protocol="pirm", metrics=["niqe", "niqe_median"], store=store)
    assert again.provenance["cached_images"] == 1 and again.per_image == res.per_image


def test_the_plane_draws_the_conditioning_ranges_that_matter(tmp_path):
    """On the plane's NIQE axis, a point whose range is wider than the threshold gets a bar over that range, one
    whose range is narrower gets none."""
    import pandas as pd

    from srbench.plots import draw_plane

    rows = []
    for model, rmse, niqe, half in (("A", 12.0, 5.00, 0.05), ("B", 14.0, 5.03, 0.0002)):
        rows += [{"model": model, "dataset": "d", "protocol": "pirm", "metric": "rmse", "value": rmse,
                  "cond_low": float("nan"), "cond_high": float("nan")},
                 {"model": model, "dataset": "d", "protocol": "pirm", "metric": "niqe", "value": niqe,
                  "cond_low": niqe - half, "cond_high": niqe + half}]
    fig = draw_plane(pd.DataFrame(rows), dataset="d")
    (ax,) = fig.axes
    (bars,) = [c for c in ax.collections if c.get_gid() == "conditioning"]
    (segment,) = bars.get_segments()
    assert segment.tolist() == [[12.0, 4.95], [12.0, 5.05]]
    assert any("conditioning range" in t.get_text() for t in ax.get_legend().get_texts())


def test_batched_distances_equal_the_per_draw_formula(monkeypatch):
    """:func:`_mvg_distances` (batched covariances, one Cholesky factor per draw, forward substitution) gives
    each draw's :func:`_mvg_distance` (nancov, MATLAB's pinv) to rounding, draws with a NaN feature included;
    and with a pristine covariance that is not positive definite it falls back to pinv for every draw."""
    rng = np.random.default_rng(3)
    feats = rng.normal(1.0, 0.3, (40, 15, 36)) * rng.uniform(0.5, 4.0, 36)
    feats[7, 2, 5] = np.nan  # a block whose fit failed: that draw takes the per-draw path
    want = np.array([N._mvg_distance(f) for f in feats])
    np.testing.assert_allclose(N._mvg_distances(feats), want, rtol=1e-12, atol=0)

    mu_p, cov_p = N.pristine_model()
    w, v = np.linalg.eigh(cov_p)
    w[:3] = -w[-1]  # a degenerate model: negative eigenvalues, so M = (cov_p + cov_d) / 2 has no Cholesky factor
    degenerate = (v * w) @ v.T
    monkeypatch.setattr(N, "pristine_model", lambda: (mu_p, degenerate))
    got = N._mvg_distances(feats)
    want = np.array([N._mvg_distance(f) for f in feats])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
