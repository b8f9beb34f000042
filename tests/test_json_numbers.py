"""One rule for numbers written as JSON (issue 22): infinity is the string "inf", NaN is null, whichever command
writes it. Each writer is run through the command line on one tiny project whose SR images are their HR images
(PSNR-Y infinite)."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from srbench import jsonnum
from srbench.cli import main
from srbench.images import write_png


def _strict(text: str):
    """JSON as the standard has it: the NaN and Infinity literals are refused."""
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _cli(*args) -> object:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("jsonnum")
    rng = np.random.default_rng(22)
    for i in range(3):
        hr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        write_png(root / "set" / f"img{i}.png", hr)
        write_png(root / "same" / f"img{i}.png", hr)  # SR = HR: PSNR-Y is infinite
    store = root / "s.sqlite"
    evaluated = _cli("evaluate", "--model", root / "same", "--dataset", root / "set", "--metrics", "psnr_y,ssim_y",
                     "--store", store, "--name", "same", "--json")
    _cli("evaluate", "--model", "bicubic", "--dataset", root / "set", "--metrics", "psnr_y,ssim_y",
         "--store", store, "--name", "bicubic")
    return root, store, evaluated.stdout


def test_evaluate_json_writes_infinity_as_the_string_inf(project):
    _, _, stdout = project
    (row,) = _strict(stdout)
    assert row["psnr_y"] == "inf" and row["ssim_y"] == 1.0


def test_compare_json_writes_infinity_as_evaluate_does(project):
    _, store, _ = project
    res = _cli("compare", "same", "bicubic", "--dataset", "set", "--store", store, "--metric", "psnr_y",
               "--resamples", "50", "--json")
    (row,) = _strict(res.stdout)
    assert row["value_a"] == row["difference"] == row["low"] == row["high"] == "inf"
    assert row["cond_low_a"] is None  # PSNR-Y has no conditioning range: NaN, written as null


def test_check_json_writes_infinity_as_evaluate_does(project):
    root, _, _ = project
    spec = root / "check.toml"
    spec.write_text(f'baseline = "b.json"\n\n[[entries]]\nmodel = "{(root / "same").as_posix()}"\nname = "same"\n'
                    f'datasets = ["{(root / "set").as_posix()}"]\nprotocols = ["sr"]\nmetrics = ["psnr_y"]\n')
    _cli("check", "--spec", spec, "--update")
    assert _strict((root / "b.json").read_text())["entries"][0]["value"] == "inf"
    (row,) = _strict(_cli("check", "--spec", spec, "--json").stdout)["rows"]
    assert (row["baseline"], row["value"]) == ("inf", "inf")


def test_export_writes_infinity_as_evaluate_does(project):
    root, store, _ = project
    out = root / "export.csv"
    _cli("export", "--store", store, "--out", out)
    lines = out.read_text().splitlines()
    head = lines[0].split(",")
    rows = [dict(zip(head, line.split(","), strict=True)) for line in lines[1:]]
    (psnr,) = [r for r in rows if r["model"] == "same" and r["metric"] == "psnr_y"]
    assert psnr["value"] == "inf"


def test_the_rule_and_its_reader_are_inverse():
    values = [math.inf, -math.inf, math.nan, 0.0, -2.5, 31.25]
    written = json.loads(jsonnum.dumps(values))
    assert written == ["inf", "-inf", None, 0.0, -2.5, 31.25]
    back = [jsonnum.read_number(v) for v in written]
    assert back[:2] == [math.inf, -math.inf] and math.isnan(back[2]) and back[3:] == values[3:]
    assert jsonnum.to_json({"a": (np.float64("inf"), np.int64(3), True)}) == {"a": ["inf", 3, True]}
    with pytest.raises(ValueError, match="'Infinity'"):
        jsonnum.read_number("Infinity")
    assert doctest.testmod(jsonnum).failed == 0
