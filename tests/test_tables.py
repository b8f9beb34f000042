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
