"""Paper tables: every format renders the one table model (values, best and second by direction)."""

from __future__ import annotations

import math
import re

import pandas as pd

from srbench.report import html_table, paper_table, table_model

MODELS = ["bicubic", "a", "b"]


def _tidy() -> pd.DataFrame:
    values = {"psnr_y": [28.4, math.inf, 30.1], "niqe": [5.0, 4.2, float("nan")]}
    return pd.DataFrame([{"model": m, "dataset": "set5", "metric": k, "value": v}
                         for k, vs in values.items() for m, v in zip(MODELS, vs, strict=True)])


def test_best_and_second_follow_each_metrics_direction():
    table = table_model(_tidy(), ["psnr_y", "niqe"], MODELS)
    assert table.ranks[("a", "set5", "psnr_y")] == 1 and table.ranks[("b", "set5", "psnr_y")] == 2
    assert table.ranks[("a", "set5", "niqe")] == 1 and table.ranks[("bicubic", "set5", "niqe")] == 2  # lower wins
    assert ("b", "set5", "niqe") not in table.values  # NaN is not available, never a number


def test_values_printed_equal_share_their_mark():
    # 28.4249 and 28.4201 both print 28.42: one was bold and the other underlined, a difference the table hides
    tidy = pd.DataFrame([{"model": m, "dataset": "set5", "metric": "psnr_y", "value": v}
                         for m, v in (("a", 28.4249), ("b", 28.4201), ("c", 28.4149), ("d", 27.0))])
    table = table_model(tidy, ["psnr_y"])
    assert [table.ranks.get((m, "set5", "psnr_y")) for m in "abcd"] == [1, 1, 2, None]


def test_markdown_latex_and_html_show_the_same_cells():
    tidy = _tidy()
    markdown = paper_table(tidy, ["psnr_y", "niqe"], "markdown", models=MODELS)
    latex = paper_table(tidy, ["psnr_y", "niqe"], "latex", models=MODELS)
    page = html_table(tidy, ["psnr_y", "niqe"], MODELS)
    assert "| a | **∞** | **4.200** |" in markdown and "| b | <u>30.10</u> | – |" in markdown
    assert "a & \\textbf{$\\infty$} & \\textbf{4.200} \\\\" in latex and "b & \\underline{30.10} & -- \\\\" in latex
    rows = re.findall(r"<tr>(.*?)</tr>", page)[1:]
    assert rows[1] == "<td>a</td><td><b>∞</b></td><td><b>4.200</b></td>"
    assert rows[2] == "<td>b</td><td><u>30.10</u></td><td>–</td>"


def test_interpolation_weights_are_read_from_every_label_alpha_label_writes():
    from srbench.checkpoints import alpha_label
    from srbench.plots import _alpha_of

    for alpha in (0.0, 0.2, 0.85, 1.0, 1e-05, 0.30000000000000004):
        assert _alpha_of(f"esrgan-interp-{alpha_label(alpha)}") == alpha
    assert _alpha_of("esrgan-gan") is None and _alpha_of("x-interp-alpha") is None


def test_table_without_metrics_is_one_line(tmp_path):
    from click.testing import CliRunner

    from srbench.cli import main
    from srbench.store import Store

    with Store(tmp_path / "s.sqlite") as store:
        store.put("k", "d", "sr", 4, "img", {"psnr_y": 30.0}, {"psnr_y": "1"}, None)
        store.label("t", "m", "k", "set5", "d")
    res = CliRunner().invoke(main, ["table", "--suite", "t", "--store", str(tmp_path / "s.sqlite"), "--metrics", ""])
    assert res.exit_code == 2 and "name at least one metric" in res.output and "Traceback" not in res.output


def test_an_empty_table_is_refused_not_malformed():
    """Issue 21, item 18: no models or no columns rendered '| Model |  |' and a broken separator."""
    import pytest

    from srbench.errors import BadInputError
    from srbench.report import TIDY_COLUMNS

    for fmt in ("markdown", "latex", "csv"):
        with pytest.raises(BadInputError, match="no results to tabulate"):
            paper_table(pd.DataFrame(columns=TIDY_COLUMNS), ["psnr_y"], fmt)


def _skip_bad_store(path):
    """Five images: 'full' and 'worse' on all five, 'partial' (as if --skip-bad skipped two) on three, and
    'renamed' on five other image names."""
    from srbench.protocols import PROTOCOLS
    from srbench.store import Store

    versions = PROTOCOLS["sr"].output_versions(["psnr_y"])
    models = {"full": ([30.0] * 5, "img"), "partial": ([29.5] * 3, "img"), "worse": ([28.0] * 5, "img"),
              "renamed": ([31.0] * 5, "other")}
    with Store(path) as store:
        for model, (values, prefix) in models.items():
            for i, value in enumerate(values):
                store.put(f"k-{model}", "d5", "sr", 4, f"{prefix}{i}", {"psnr_y": value}, versions, None)
            store.label("evaluate", model, f"k-{model}", "set5", "d5")
    return path


def test_means_over_other_images_are_marked_and_not_ranked(tmp_path):
    """Issue 21, item 3: a model evaluated on 3 of 5 images (--skip-bad) was ranked second among 5-image means,
    unmarked; the same count over other image names is not the same set either."""
    from click.testing import CliRunner

    from srbench.cli import main

    store = str(_skip_bad_store(tmp_path / "s.sqlite"))
    args = ["table", "--suite", "evaluate", "--store", store, "--metrics", "psnr_y"]
    markdown = CliRunner().invoke(main, args)
    assert markdown.exit_code == 0, markdown.output
    assert "| full | **30.00** |" in markdown.stdout and "| worse | <u>28.00</u> |" in markdown.stdout
    assert "| partial | 29.50¶ |" in markdown.stdout and "| renamed | 31.00¶ |" in markdown.stdout
    assert "¶ A mean over other images than the rest of its column (partial on set5 (3 images), renamed on set5 " \
           "(5 images)" in markdown.stdout
    latex = CliRunner().invoke(main, [*args, "--format", "latex"]).stdout
    assert "partial & 29.50\\P \\\\" in latex and "full & \\textbf{30.00} \\\\" in latex
    from srbench.report import html_table, tidy_from_store
    from srbench.store import Store

    with Store.open_existing(store) as s:
        tidy = tidy_from_store(s.values("evaluate"))
    page = html_table(tidy, ["psnr_y"], ["full", "partial", "worse", "renamed"])
    assert "<td>partial</td><td>29.50¶</td>" in page and "<td>full</td><td><b>30.00</b></td>" in page
    assert "¶ A mean over other images" in page


# ---------------------------------------------------------------------------------------------------------------
# Reading a store where one name or one metric stands for several results.

def _cli(*args: str):
    from click.testing import CliRunner

    from srbench.cli import main

    return CliRunner().invoke(main, list(args))


def _two_protocols_two_suites(path):
    """Suite a: model m on set5, spectrum under both protocols (each crops its own border: other values);
    suite b: another model (key) under the same name m."""
    from srbench.store import Store

    spectrum = {"spectrum": "1", "spectrum_hf": "1"}
    with Store(path) as store:
        for image, (in_sr, in_pirm) in {"i1": (1.0, 2.0), "i2": (3.0, 4.0)}.items():
            store.put("ka", "d", "sr", 4, image, {"psnr_y": 30.0, "spectrum": in_sr, "spectrum_hf": 0.0},
                      {"psnr_y": "1", **spectrum}, None)
            store.put("ka", "d", "pirm", 4, image, {"rmse": 10.0, "mse": 100.0, "spectrum": in_pirm,
                                                    "spectrum_hf": 0.0}, {"rmse": "1", "mse": "1", **spectrum}, None)
            store.put("kb", "d", "sr", 4, image, {"psnr_y": 20.0}, {"psnr_y": "1"}, None)
        store.label("a", "m", "ka", "set5", "d")
        store.label("b", "m", "kb", "set5", "d")


def test_results_and_export_keep_suites_and_protocols_apart(tmp_path):
    # One name in two suites was averaged image by image into one row; one metric under two protocols was one
    # cell holding either value.
    path = str(tmp_path / "s.sqlite")
    _two_protocols_two_suites(path)
    res = _cli("results", "--store", path)
    assert res.exit_code == 0, res.output
    lines = [ln.split() for ln in res.output.splitlines()[3:]]
    assert lines == [["a", "m", "set5", "pirm", "–", "10.0000", "3.0000"],
                     ["sr", "30.0000", "–", "2.0000"],
                     ["b", "m", "set5", "sr", "20.0000", "–", "–"]]
    res = _cli("export", "--store", path, "--out", str(tmp_path / "x.csv"))
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(tmp_path / "x.csv")
    got = {(r.suite, r.protocol, r.metric): r.value for r in frame.itertuples()}
    assert got == {("a", "sr", "psnr_y"): 30.0, ("a", "sr", "spectrum"): 2.0, ("a", "pirm", "rmse"): 10.0,
                   ("a", "pirm", "spectrum"): 3.0, ("b", "sr", "psnr_y"): 20.0}


def test_a_table_shows_a_metric_of_two_protocols_under_its_first(tmp_path):
    path = str(tmp_path / "s.sqlite")
    _two_protocols_two_suites(path)
    res = _cli("table", "--suite", "a", "--store", path, "--metrics", "psnr_y,spectrum", "--format", "csv")
    assert res.exit_code == 0, res.output  # was: ValueError: cannot reindex on an axis with duplicate labels
    assert res.output.splitlines()[1] == "m,30.0,2.0"  # the sr protocol's mean, sr being spectrum's first
    from srbench.report import tidy_from_store
    from srbench.store import Store

    with Store.open_existing(path) as store:
        tidy = tidy_from_store(store.values("a"))
    from srbench.stats import table_intervals

    with Store.open_existing(path) as store:  # the interval beside a value is that value's protocol's
        assert table_intervals(store.values("a"), ["spectrum"], n_resamples=50)[("m", "set5", "spectrum")].value == 2.0
    only_pirm = tidy[~((tidy["protocol"] == "sr") & (tidy["metric"] == "spectrum"))]
    table = table_model(only_pirm, ["spectrum"])  # a column all under pirm: ranked, the caption says so
    assert table.values[("m", "set5", "spectrum")] == 3.0 and table.ranks[("m", "set5", "spectrum")] == 1
    assert "Spectrum on set5 under the pirm protocol." in table.caption
    # A second model with only the pirm value beside m's sr one: shown, named, never ranked against it.
    other = only_pirm[only_pirm["metric"] == "spectrum"].assign(model="n", value=0.5)
    table = table_model(pd.concat([tidy, other]), ["spectrum"])
    assert table.values[("m", "set5", "spectrum")] == 2.0 and table.values[("n", "set5", "spectrum")] == 0.5
    assert ("n", "set5", "spectrum") not in table.ranks and table.ranks[("m", "set5", "spectrum")] == 1
    assert "Spectrum of n on set5 under the pirm protocol, the only one stored (not ranked" in table.caption


def test_table_datasets_are_matched_as_stored_and_unknown_ones_refused(tmp_path):
    path = str(tmp_path / "s.sqlite")
    _two_protocols_two_suites(path)
    res = _cli("table", "--suite", "a", "--store", path, "--metrics", "psnr_y", "--datasets", "Set5")
    assert res.exit_code == 0 and "| m | **30.00** |" in res.output  # evaluate --dataset Set5 stores set5
    res = _cli("table", "--suite", "a", "--store", path, "--metrics", "psnr_y", "--datasets", "set5,nosuch")
    assert res.exit_code == 2 and "no results for dataset 'nosuch' in suite 'a'; it has set5" in res.output
    res = _cli("published", "show", "esrgan-paper", "--dataset", "nosuch")
    assert res.exit_code == 2 and "has no numbers on 'nosuch'; it has set5" in res.output


def test_names_are_text_in_latex_and_markdown():
    tidy = pd.DataFrame([{"model": name, "dataset": "set5", "metric": "psnr_y", "value": v}
                         for name, v in (("my_model&50%#", 30.0), ("a|b", 29.0), ("x^~\\{y}$", 28.0))])
    latex = paper_table(tidy, ["psnr_y"], "latex")
    assert "my\\_model\\&50\\%\\# & \\textbf{30.00}" in latex
    assert "x\\textasciicircum{}\\textasciitilde{}\\textbackslash{}\\{y\\}\\$ & 28.00" in latex
    caption = next(ln for ln in latex.splitlines() if ln.startswith("\\caption"))
    assert "%" not in caption.replace("\\%", "")  # a bare % would comment out the rest of the caption
    markdown = paper_table(tidy, ["psnr_y"], "markdown")
    assert "| a\\|b | <u>29.00</u> |" in markdown


def test_compare_and_the_plane_match_dataset_names_as_tables_do(tmp_path):
    """A review: `table --datasets Set5` matched set5, `compare --dataset Set5` and `pirm-plane --dataset SET5`
    did not; two stored names differing in case only are ambiguous, said so."""
    from srbench.protocols import PROTOCOLS
    from srbench.store import Store

    versions = PROTOCOLS["pirm"].output_versions(["rmse", "niqe"])
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        for model, base in (("a", 10.0), ("b", 12.0)):
            for i, image in enumerate(("i1", "i2", "i3")):
                values = {"rmse": base + i, "mse": (base + i) ** 2, "niqe": 5.0 + i}
                store.put(f"k-{model}", "d5", "pirm", 4, image, {k: values.get(k, 0.0) for k in versions},
                          versions, None)
            store.label("evaluate", model, f"k-{model}", "set5", "d5")
    compare = _cli("compare", "a", "b", "--dataset", "Set5", "--protocol", "pirm", "--metric", "rmse",
                   "--store", str(path))
    assert compare.exit_code == 0, compare.output
    assert "a vs b on set5" in compare.output
    plane = _cli("pirm-plane", "--suite", "evaluate", "--dataset", "SET5", "--store", str(path), "--out",
                 str(tmp_path / "p.png"))
    assert plane.exit_code == 0, plane.output
    with Store(path) as store:
        store.label("evaluate", "a", "k-a", "Set5", "d5")
    table = _cli("table", "--suite", "evaluate", "--store", str(path), "--metrics", "rmse", "--datasets", "SET5")
    assert table.exit_code != 0
    assert "dataset 'SET5' in " in table.output and "is ambiguous: it names " in table.output


def test_a_caption_of_metrics_under_no_protocol_starts_with_a_sentence():
    from srbench.report import paper_table

    tidy = pd.DataFrame([{"model": "m", "dataset": "set5", "protocol": "sr", "scale": 4, "metric": "psnr_y",
                          "value": 30.0, "n_images": 5, "higher_is_better": True, "version": "1"}])
    assert paper_table(tidy, ["pyiqa:musiq"], "markdown").splitlines()[-1] == \
        "*Best in bold, second underlined; – = not available.*"
