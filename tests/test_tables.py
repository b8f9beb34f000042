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
