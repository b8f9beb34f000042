"""Bootstrap intervals and paired comparisons (srbench.stats), and the commands that show them."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from srbench.errors import BadInputError
from srbench.stats import ImageSet, bootstrap_ci, paired_comparison, select_image_set


def _rows(values, key: str = "psnr_y") -> dict[str, dict[str, float]]:
    return {f"img{i:03d}": {key: float(v)} for i, v in enumerate(values)}


# ---------------------------------------------------------------------------------------------------------
# Intervals


def test_percentile_interval_covers_the_true_mean_as_often_as_theory_says():
    """1000 seeded samples of n = 50 normal values: the fraction of 95 % intervals containing the true mean must
    be consistent with the percentile bootstrap's known coverage for a normal mean, which is below 95 %: the
    interval is about mean ± z s sqrt((n - 1)/n) / sqrt(n), so it covers with P(|t_{n-1}| <= z sqrt((n-1)/n))
    = 0.942 at n = 50. Consistent means a two-sided exact binomial test at alpha = 0.001 does not reject it: a
    correct implementation fails for 1 data seed in 1000, and with 1000 repetitions the accepted band is about
    ±0.024, so an interval of the wrong width (90 % or 99 % coverage) is rejected, as the second line checks.
    (400 repetitions would leave a band of ±0.038, too wide to tell 90 % from 94 %.)"""
    from scipy.stats import binomtest
    from scipy.stats import t as student_t

    n, repetitions, true_mean = 50, 1000, 3.0
    z = 1.959963984540054
    expected = 2 * student_t.cdf(z * math.sqrt((n - 1) / n), n - 1) - 1
    data = np.random.default_rng(2024).normal(true_mean, 2.0, size=(repetitions, n))
    hits = 0
    for rep, sample in enumerate(data):
        ci = bootstrap_ci(_rows(sample), "psnr_y", n_resamples=1000, seed=rep)
        hits += ci.low <= true_mean <= ci.high
    assert binomtest(hits, repetitions, expected).pvalue > 1e-3, (hits, expected)
    assert binomtest(hits, repetitions, 0.90).pvalue < 1e-3 and binomtest(hits, repetitions, 0.99).pvalue < 1e-3


def test_same_seed_same_interval_and_another_seed_another():
    rows = _rows(np.random.default_rng(1).normal(30, 2, 40))
    first, again = bootstrap_ci(rows, "psnr_y", seed=7), bootstrap_ci(rows, "psnr_y", seed=7)
    assert first == again
    other = bootstrap_ci(rows, "psnr_y", seed=8)
    assert other.value == first.value and (other.low, other.high) != (first.low, first.high)
    assert bootstrap_ci(list(rows.values()), "psnr_y", seed=7) == first  # a list of rows in the same order


def test_rmse_interval_is_of_sqrt_mean_mse_not_of_mean_rmse():
    mse = np.random.default_rng(3).uniform(20, 400, 60)
    rows = {f"i{k:03d}": {"mse": float(m), "rmse": float(np.sqrt(m))} for k, m in enumerate(mse)}
    ci = bootstrap_ci(rows, "rmse", n_resamples=1000, seed=5)
    assert ci.value == pytest.approx(math.sqrt(mse.mean()))
    # The same resamples, by hand: the generator draws one index matrix (one block at this size).
    idx = np.random.default_rng([5, 0]).integers(0, 60, size=(1000, 60))
    by_hand = np.percentile(np.sqrt(mse[idx].mean(axis=1)), [2.5, 97.5])
    assert (ci.low, ci.high) == pytest.approx(tuple(by_hand), rel=1e-12)
    of_mean_rmse = np.percentile(np.sqrt(mse)[idx].mean(axis=1), [2.5, 97.5])
    assert abs(ci.high - of_mean_rmse[1]) > 0.1  # a different (wrong) number


def test_pi_interval_is_made_from_mean_ma_and_mean_niqe():
    rng = np.random.default_rng(4)
    ma, niqe = rng.uniform(2, 9, 30), rng.uniform(2, 9, 30)
    rows = {f"i{k:03d}": {"ma": float(a), "niqe": float(q), "niqe_spread": 0.0, "niqe_low": float(q),
                          "niqe_high": float(q), "niqe_med": float(q), "pi": ((10 - a) + q) / 2}
            for k, (a, q) in enumerate(zip(ma, niqe, strict=True))}
    ci = bootstrap_ci(rows, "pi", n_resamples=500, seed=0)
    idx = np.random.default_rng([0, 0]).integers(0, 30, size=(500, 30))
    by_hand = np.percentile(((10 - ma[idx].mean(axis=1)) + niqe[idx].mean(axis=1)) / 2, [2.5, 97.5])
    assert (ci.low, ci.high) == pytest.approx(tuple(by_hand), rel=1e-12)


def test_a_nan_makes_the_value_and_interval_nan_and_missing_outputs_are_named():
    ci = bootstrap_ci(_rows([4.0, math.nan, 5.0], "niqe"), "niqe", n_resamples=50)
    assert math.isnan(ci.value) and math.isnan(ci.low) and math.isnan(ci.high)
    with pytest.raises(BadInputError, match="'mse'"):
        bootstrap_ci(_rows([10.0, 12.0], "rmse"), "rmse")


# ---------------------------------------------------------------------------------------------------------
# Paired comparison


def test_a_model_against_itself_differs_by_zero_with_p_one():
    rows = _rows(np.random.default_rng(5).normal(30, 2, 25))
    result = paired_comparison(rows, rows, "psnr_y", n_resamples=2000)
    assert result.difference == 0.0 and (result.low, result.high) == (0.0, 0.0)
    assert result.p_value == 1.0 and result.wilcoxon_p == 1.0
    assert (result.wins, result.ties, result.losses) == (0, 25, 0) and result.n_images == 25


def test_a_constant_shift_is_the_difference_with_a_zero_width_interval():
    base = np.random.default_rng(6).normal(30, 2, 40)
    result = paired_comparison(_rows(base + 0.25), _rows(base), "psnr_y", n_resamples=2000)
    assert result.difference == pytest.approx(0.25, abs=1e-12)
    assert result.low == pytest.approx(0.25, abs=1e-12) and result.high == pytest.approx(0.25, abs=1e-12)
    assert (result.wins, result.ties, result.losses) == (40, 0, 0) and result.p_value < 1e-3


def test_small_sets_get_the_exact_sign_flip_test():
    base = np.arange(5.0) + 20
    result = paired_comparison(_rows(base + 1), _rows(base), "psnr_y")
    # Only the two patterns flipping every image or none reach |A - B| = 1: p = 2/32, as Wilcoxon's exact test.
    assert result.p_value == pytest.approx(2 / 32) and "exact, all 32" in result.test
    assert result.wilcoxon_p == pytest.approx(2 / 32)


def test_wins_ties_and_losses_follow_the_metrics_direction_and_tolerance():
    a = _rows([4.0, 5.0, 6.0, 7.0], "niqe")
    b = _rows([5.0, 5.0004, 5.0, 7.002], "niqe")  # NIQE: lower is better, 3 digits: tie within 0.0005
    result = paired_comparison(a, b, "niqe", n_resamples=200)
    assert (result.wins, result.ties, result.losses) == (2, 1, 1) and result.tie_tolerance == 0.0005
    result = paired_comparison(a, b, "niqe", n_resamples=200, tie_tolerance=0.0)
    assert (result.wins, result.ties, result.losses) == (3, 0, 1)
    psnr = paired_comparison(_rows([31.0, 30.0]), _rows([30.0, 31.0]), "psnr_y", n_resamples=200)
    assert (psnr.wins, psnr.ties, psnr.losses) == (1, 0, 1)  # higher is better: image 0 is A's


def test_different_image_sets_protocols_and_scales_are_refused():
    a, b = _rows([1.0, 2.0, 3.0]), _rows([1.0, 2.0])
    b["extra"] = {"psnr_y": 4.0}
    with pytest.raises(BadInputError, match=r"image sets differ.*only A has img002.*only B has extra"):
        paired_comparison(a, b, "psnr_y")
    x4 = ImageSet("m", "set5", "sr", 4, _rows([1.0, 2.0]))
    with pytest.raises(BadInputError, match="different scale"):
        paired_comparison(x4, ImageSet("n", "set5", "sr", 2, _rows([1.0, 2.0])), "psnr_y")
    with pytest.raises(BadInputError, match="different protocol"):
        paired_comparison(x4, ImageSet("n", "set5", "pirm", 4, _rows([1.0, 2.0])), "psnr_y")


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
# PSNR is +inf where an SR image equals its HR: infinite values must give possible p-values and ties too.
with_infinity = st.one_of(finite, finite, st.just(math.inf))


def _mirrored(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == pytest.approx(-y, abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(with_infinity, with_infinity), min_size=1, max_size=30),
       seed=st.integers(0, 2**32 - 1), n_permutations=st.sampled_from([200, 4096]))
def test_p_values_are_possible_and_swapping_the_models_mirrors_the_comparison(pairs, seed, n_permutations):
    """The acceptance property of issue 21: p is never below the smallest value its test can give, 2^-(n-1) for
    the exact test over n pairs (the observed pattern and its mirror image always count), 1/(B + 1) for B random
    sign patterns, nor above 1; swapping A and B negates the difference and the interval, mirrors wins and
    losses and keeps p; the counts add up to the images; no NumPy warning."""
    import warnings

    a, b = _rows([p[0] for p in pairs]), _rows([p[1] for p in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ab = paired_comparison(a, b, "psnr_y", n_resamples=200, n_permutations=n_permutations, seed=seed)
        ba = paired_comparison(b, a, "psnr_y", n_resamples=200, n_permutations=n_permutations, seed=seed)
    n = len(pairs)
    exact = 2**n <= n_permutations
    assert ("exact" in ab.test) == exact
    if math.isinf(ab.value_a) and ab.value_a == ab.value_b:  # both infinite: no difference, no test (a note)
        assert math.isnan(ab.difference) and math.isnan(ab.p_value) and "both dataset values are infinite" in ab.note
    else:
        assert (2.0 ** -(n - 1) if exact else 1.0 / (n_permutations + 1)) <= ab.p_value <= 1.0
        if exact:
            assert (ab.p_value * 2**n).is_integer()
    assert ba.p_value == ab.p_value or (math.isnan(ba.p_value) and math.isnan(ab.p_value))
    assert _mirrored(ba.difference, ab.difference)
    assert _mirrored(ba.low, ab.high) and _mirrored(ba.high, ab.low)
    assert (ba.wins, ba.ties, ba.losses) == (ab.losses, ab.ties, ab.wins)
    assert ab.wins + ab.ties + ab.losses == ab.n_images == n and ab.undefined == 0
    assert ab.ties >= sum(x == y == math.inf for x, y in pairs)  # infinite on both sides is a tie
    assert not ab.low > ab.high  # False with NaN (one image, or an undefined difference)


def test_a_model_identical_to_hr_against_bicubic_gets_the_smallest_possible_p():
    """Issue 21, item 2: SR = HR on five images is PSNR inf on each; the exact sign-flip test over 2^5 patterns
    cannot go below 2/32 (the observed pattern and its mirror), where it printed p = 0.0 with RuntimeWarnings."""
    import warnings

    bicubic = _rows([28.42, 26.1, 30.2, 27.7, 25.96])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_comparison(_rows([math.inf] * 5), bicubic, "psnr_y", n_resamples=500)
        one = paired_comparison(_rows([math.inf, 31.0, 27.0, 28.0, 26.0]), bicubic, "psnr_y", n_resamples=500)
    assert result.p_value == 2 / 32 and result.wilcoxon_p == pytest.approx(2 / 32)
    assert result.difference == math.inf and (result.low, result.high) == (math.inf, math.inf)
    assert (result.wins, result.ties, result.losses) == (5, 0, 0) and "A's dataset value is infinite" in result.note
    # One infinite image decides every pattern's difference: only patterns keeping it on one side... all do: p = 1.
    assert one.difference == math.inf and one.p_value == 1.0
    # Resamples without that image ((4/5)^5 of them) give a finite difference: the lower bound is finite.
    assert math.isfinite(one.low) and one.high == math.inf


def test_an_image_infinite_on_both_sides_is_a_tie_and_two_infinite_values_have_no_difference():
    import warnings

    a, b = _rows([math.inf, 30.0, 31.0, 32.0, 33.0]), _rows([math.inf, 28.0, 29.0, 30.0, 31.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_comparison(a, b, "psnr_y", n_resamples=500)
    assert (result.wins, result.ties, result.losses) == (4, 1, 0)
    assert math.isnan(result.difference) and math.isnan(result.low) and math.isnan(result.high)
    assert math.isnan(result.p_value) and "both dataset values are infinite" in result.note
    assert result.wilcoxon_p == pytest.approx(2 / 16)  # the four finite pairs, all won: exact two-sided 2/2^4


def test_undefined_images_are_counted_so_that_the_counts_add_up():
    result = paired_comparison(_rows([4.0, math.nan, 5.0], "niqe"), _rows([5.0, 5.0, 5.0], "niqe"), "niqe",
                               n_resamples=100)
    assert (result.wins, result.ties, result.losses, result.undefined) == (1, 1, 0, 1)
    assert math.isnan(result.difference) and "1 image(s) have an undefined value" in result.note


def test_one_image_has_no_interval_but_a_note():
    """Issue 21, item 18: a one-image dataset gave a zero-width interval with no note."""
    ci = bootstrap_ci(_rows([31.5]), "psnr_y", n_resamples=100)
    assert ci.value == 31.5 and math.isnan(ci.low) and math.isnan(ci.high) and "one image" in ci.note
    result = paired_comparison(_rows([31.5]), _rows([30.0]), "psnr_y", n_resamples=100)
    assert math.isnan(result.low) and math.isnan(result.high) and "one image" in result.note
    assert result.p_value == 1.0  # 2 sign patterns, both as extreme: 2^-(1-1)


def test_an_interval_with_infinite_resamples_has_an_infinite_bound():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ci = bootstrap_ci(_rows([math.inf, 30.0, 31.0, 29.0, 28.0]), "psnr_y", n_resamples=1000)
    assert ci.value == math.inf and math.isfinite(ci.low) and ci.high == math.inf


# ---------------------------------------------------------------------------------------------------------
# Commands


def _store(path, models=(("bicubic", 0.0), ("esrgan", 0.8)), suite="demo", n_images=12, images=None):
    """A store of per-image values of both protocols for ``models`` (name, quality shift) on set14."""
    from srbench.protocols import PROTOCOLS
    from srbench.store import Store

    rng = np.random.default_rng(0)
    base = rng.normal(28, 2, n_images)
    sr_v = PROTOCOLS["sr"].output_versions(["psnr_y", "ssim_y"])
    pirm_v = PROTOCOLS["pirm"].output_versions(["rmse", "niqe", "ma", "pi"])
    with Store(path) as store:
        for model, shift in models:
            key = f"key-{suite}-{model}"
            for i in range(n_images if images is None else images):
                psnr = float(base[i] + shift + rng.normal(0, 0.3))
                store.put(key, "d14", "sr", 4, f"img{i:02d}", {"psnr_y": psnr, "ssim_y": 0.7 + psnr / 1000}, sr_v,
                          None)
                mse = 255.0**2 / 10 ** (psnr / 10)
                ma, niqe = 4 + 3 * shift + rng.normal(0, 0.5), 6 - 2 * shift + rng.normal(0, 0.5)
                store.put(key, "d14", "pirm", 4, f"img{i:02d}", {
                    "mse": mse, "rmse": math.sqrt(mse), "niqe": niqe, "niqe_spread": 0.1, "niqe_low": niqe - 0.05,
                    "niqe_high": niqe + 0.05, "niqe_med": niqe, "ma": ma, "pi": ((10 - ma) + niqe) / 2}, pirm_v, None)
            store.label(suite, model, key, "set14", "d14")
    return path


def test_compare_prints_difference_interval_wins_and_p(tmp_path):
    from srbench.cli import main

    store = _store(tmp_path / "s.sqlite")
    res = CliRunner().invoke(main, ["compare", "esrgan", "bicubic", "--dataset", "set14", "--store", str(store),
                                    "--resamples", "2000"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "esrgan vs bicubic on set14 (sr protocol, x4, 12 images paired by name)"
    assert lines[1].split() == ["metric", "esrgan", "bicubic", "A", "-", "B", "95%", "interval", "wins/ties/losses",
                                "p", "p", "Wilcoxon"]
    assert lines[2].startswith("PSNR-Y ↑") and lines[3].startswith("SSIM-Y ↑") and "sign-flip" in res.stdout
    res = CliRunner().invoke(main, ["compare", "esrgan", "bicubic", "--dataset", "set14", "--store", str(store),
                                    "--protocol", "pirm", "--metric", "rmse,pi", "--json", "--resamples", "500"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["metric"] for r in rows] == ["rmse", "pi"]
    for r in rows:
        assert r["difference"] < 0 and r["low"] <= r["difference"] <= r["high"] and r["n_images"] == 12
        assert r["wins"] + r["ties"] + r["losses"] == 12 and 0 < r["p_value"] <= 1 and r["seed"] == 0


def test_compare_refusals_are_one_line(tmp_path):
    from srbench.cli import main

    store = str(_store(tmp_path / "s.sqlite"))
    base = ["compare", "esrgan", "bicubic", "--store", store]
    cases = [
        (["compare", "esrgan", "srgan", "--dataset", "set14", "--store", store],
         "unknown model 'srgan'; known: bicubic, esrgan"),
        ([*base, "--dataset", "set5"], "has no results on dataset 'set5'; it has: set14"),
        ([*base, "--dataset", "set14", "--metric", "rmse"], "unknown metric 'rmse' for protocol 'sr'"),
        ([*base, "--dataset", "set14", "--scale", "2"], "has no x2 results; it is stored at x4"),
        (["compare", "a", "b", "--dataset", "set14", "--store", str(tmp_path / "none.sqlite")], "no results store"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1 and message in res.stderr and "Traceback" not in res.output, (args, res.output)
        assert len(res.stderr.strip().splitlines()) == 1


def test_compare_refuses_different_image_sets_and_ambiguous_names(tmp_path):
    from srbench.cli import main

    store = _store(tmp_path / "s.sqlite")
    _store(store, models=(("partial", 0.5),), images=10)
    res = CliRunner().invoke(main, ["compare", "esrgan", "partial", "--dataset", "set14", "--store", str(store)])
    assert res.exit_code == 1 and "image sets differ (only esrgan has img10, img11)" in res.stderr
    _store(store, models=(("esrgan", 0.3),), suite="other")  # the same name, other results, in another suite
    args = ["compare", "esrgan", "bicubic", "--dataset", "set14", "--store", str(store), "--resamples", "200"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "pass --suite" in res.stderr
    assert CliRunner().invoke(main, [*args, "--suite", "demo"]).exit_code == 0


def test_table_ci_shows_intervals_and_plain_table_is_unchanged(tmp_path):
    from srbench.cli import main
    from srbench.report import html_table, paper_table, tidy_from_store
    from srbench.stats import table_intervals
    from srbench.store import Store

    store = _store(tmp_path / "s.sqlite")
    args = ["table", "--suite", "demo", "--store", str(store), "--metrics", "psnr_y,rmse,pi"]
    plain = CliRunner().invoke(main, args)
    with Store.open_existing(store) as s:
        rows = s.values("demo")
    assert plain.exit_code == 0 and plain.stdout == paper_table(tidy_from_store(rows), ["psnr_y", "rmse", "pi"]) + "\n"
    assert "[" not in plain.stdout and "Brackets" not in plain.stdout
    intervals = table_intervals(rows, ["psnr_y", "rmse", "pi"])
    rmse = intervals[("esrgan", "set14", "rmse")]
    for fmt in ("markdown", "latex", "csv"):
        res = CliRunner().invoke(main, [*args, "--ci", "--format", fmt])
        assert res.exit_code == 0, res.output
        if fmt == "csv":
            assert "set14/rmse,set14/rmse_low,set14/rmse_high" in res.stdout
        else:
            assert f"[{rmse.low:.2f}, {rmse.high:.2f}]" in res.stdout
            assert ("95\\% interval" if fmt == "latex" else "95% interval") in res.stdout
    markdown = CliRunner().invoke(main, [*args, "--ci"]).stdout
    assert f"**{intervals[('esrgan', 'set14', 'pi')].value:.3f}** [" in markdown  # emphasis on the value only
    page = html_table(tidy_from_store(rows), ["rmse"], ["bicubic", "esrgan"], intervals=intervals)
    assert f"<b>{rmse.value:.2f}</b> [{rmse.low:.2f}, {rmse.high:.2f}]</td>" in page


def test_pirm_plane_draws_error_bars(tmp_path):
    from srbench.cli import main
    from srbench.plots import error_bars, plane_points
    from srbench.report import tidy_from_store
    from srbench.stats import table_intervals
    from srbench.store import Store

    store = _store(tmp_path / "s.sqlite")
    out = tmp_path / "plane.png"
    res = CliRunner().invoke(main, ["pirm-plane", "--suite", "demo", "--dataset", "set14", "--store", str(store),
                                    "--out", str(out), "--ci"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes().startswith(b"\x89PNG")
    with Store.open_existing(store) as s:
        rows = s.values("demo")
    points, y_metric = plane_points(tidy_from_store(rows), "set14")
    intervals = table_intervals(rows, ["rmse", "pi"], datasets=["set14"], protocols=["pirm"])
    xerr, yerr = error_bars(points, y_metric, "set14", intervals)
    for i, model in enumerate(points["model"]):
        pi = intervals[(model, "set14", "pi")]
        assert yerr[0][i] == pytest.approx(pi.value - pi.low) and yerr[1][i] == pytest.approx(pi.high - pi.value)
        assert xerr[0][i] > 0 and xerr[1][i] > 0


def test_pirm_plane_names_the_models_it_cannot_draw_and_ranks_regions_by_pi_only(tmp_path):
    from srbench.cli import main
    from srbench.protocols import PROTOCOLS
    from srbench.store import Store

    store = _store(tmp_path / "s.sqlite")
    pirm_v = PROTOCOLS["pirm"].output_versions(["rmse", "niqe", "ma", "pi"])
    with Store(store) as s:  # a flat output: NIQE, Ma and PI undefined (stored NULL)
        for i in range(12):
            s.put("key-flat", "d14", "pirm", 4, f"img{i:02d}", {
                "mse": 900.0, "rmse": 30.0, "niqe": None, "niqe_spread": None, "niqe_low": None, "niqe_high": None,
                "niqe_med": None, "ma": None, "pi": None}, pirm_v, None)
        s.label("demo", "flat", "key-flat", "set14", "d14")
    args = ["pirm-plane", "--suite", "demo", "--dataset", "set14", "--store", str(store)]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "plane.png")])
    assert res.exit_code == 0, res.output
    assert "not drawn (no RMSE, or its PI undefined on set14): flat" in res.stderr
    assert "best in" in res.stdout
    conn = sqlite3.connect(store)  # the same without Ma: NIQE on the y axis, and no region named won by NIQE
    conn.execute("DELETE FROM metric_values WHERE metric IN ('ma', 'pi')")
    conn.commit()
    conn.close()
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "plane2.png")])
    assert res.exit_code == 0, res.output
    assert "NIQE is on the y axis" in res.stderr and "best in" not in res.stdout


def test_select_image_set_names_what_is_known():
    rows = [{"model": "m", "dataset": "set5", "protocol": "sr", "scale": s, "image": "a", "metric": "psnr_y",
             "metric_version": "1", "value": 30.0} for s in (2, 4)]
    with pytest.raises(BadInputError, match=r"scale.*x2, x4"):
        select_image_set(rows, "m", "set5", "sr")
    assert select_image_set(rows, "m", "set5", "sr", 4).values == {"a": {"psnr_y": 30.0}}
    with pytest.raises(BadInputError, match="no pirm-protocol results"):
        select_image_set(rows, "m", "set5", "pirm")


def test_compare_of_a_model_identical_to_hr_prints_a_possible_p_and_writes_inf_as_json_does(tmp_path):
    """Issue 21, item 2, through the command: p = 0.0625 (not 0.0), 5/0/0 under a 5 images header, no NumPy
    warning, a note; --json writes infinity as "inf" (srbench.jsonnum.json_number), not null."""
    from srbench.cli import main
    from srbench.protocols import PROTOCOLS
    from srbench.store import Store

    versions = PROTOCOLS["sr"].output_versions(["psnr_y", "ssim_y"])
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        for model, psnr in (("perfect", [math.inf] * 5), ("bicubic", [28.4, 26.1, 30.2, 27.7, 25.9])):
            for i, value in enumerate(psnr):
                store.put(f"k-{model}", "d5", "sr", 4, f"img{i}", {"psnr_y": value, "ssim_y": 0.9}, versions, None)
            store.label("t", model, f"k-{model}", "set5", "d5")
    args = ["compare", "perfect", "bicubic", "--dataset", "set5", "--store", str(path), "--metric", "psnr_y"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "RuntimeWarning" not in res.output, res.output
    line = res.stdout.splitlines()[2].split()
    assert "5 images" in res.stdout.splitlines()[0]
    assert line[2:6] == ["inf", "27.66", "+inf", "[+inf,"] and line[7:9] == ["5/0/0", "0.0625"]
    assert "note: PSNR-Y: A's dataset value is infinite" not in res.stdout  # the note names the model
    assert "note: PSNR-Y: perfect's dataset value is infinite" in res.stdout
    (row,) = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert row["value_a"] == row["difference"] == row["low"] == row["high"] == "inf" and row["p_value"] == 0.0625
    assert row["cond_low_a"] is None  # NaN stays null
