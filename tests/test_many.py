"""Many results at once (issue 25, item 2): several --model, and a tree of released results
``<method>/<dataset>/x<scale>/``, evaluated in one command into the store, named by method, with the scale in
their identity, for ``srbench table`` (a Scale column, --scale) and ``pirm-plane`` (x4)."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import srbench
from srbench.cli import main
from srbench.errors import BadInputError
from srbench.images import read_image, write_png
from srbench.matlab import imresize
from srbench.store import Store

SET5 = ("baby", "bird", "butterfly", "head", "woman")
METRICS = "psnr_y,ssim_y"


def _leaf(shared_data: Path, folder: Path, stem: str, scale: int, shift: int = 0) -> Path:
    """Set5's MATLAB bicubic upsamplings of its MATLAB-made LR at ``scale`` (``shift`` added: other pixels), named as
    released code names them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SET5:
        lr = read_image(shared_data / f"benchmark/Set5/LR_bicubic/X{scale}/{name}x{scale}.png")
        sr = np.clip(imresize(lr, scale).astype(np.int16) + shift, 0, 255).astype(np.uint8)
        write_png(folder / f"{stem.format(name=name, scale=scale)}.png", sr)
    return folder


@pytest.fixture
def tree(shared_data, tmp_path) -> Path:
    root = tmp_path / "released"
    _leaf(shared_data, root / "RCAN/Set5/x4", "{name}_RCAN_x{scale}", 4)
    _leaf(shared_data, root / "RCAN/Set5/x2", "{name}_RCAN_x{scale}", 2)
    _leaf(shared_data, root / "EDSR/set5/x2", "{name}_x{scale}_SR", 2, shift=3)
    return root


def _invoke(args: list[str]):
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output
    return result


def _single(shared_data: Path, folder: Path, scale: int) -> dict:
    res = _invoke(["evaluate", "--model", str(folder), "--dataset", "set5", "--scale", str(scale), "--data-root",
                   str(shared_data), "--metrics", METRICS, "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    return row


def test_a_tree_is_each_leaf_evaluated_alone_stored_by_method_and_scale(shared_data, tree, tmp_path):
    store = str(tmp_path / "s.sqlite")
    res = _invoke(["evaluate", "--tree", str(tree), "--data-root", str(shared_data), "--metrics", METRICS,
                   "--store", store, "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    rows = {(r["model"], r["dataset"], r["scale"]): r for r in json.loads(res.stdout)}
    assert set(rows) == {("EDSR", "set5", 2), ("RCAN", "set5", 2), ("RCAN", "set5", 4)}
    for (method, _, scale), row in rows.items():
        folder = tree / method / ("set5" if method == "EDSR" else "Set5") / f"x{scale}"
        alone = _single(shared_data, folder, scale)
        assert (row["psnr_y"], row["ssim_y"], row["n_images"]) == (alone["psnr_y"], alone["ssim_y"], 5)
    assert rows[("EDSR", "set5", 2)]["psnr_y"] != rows[("RCAN", "set5", 2)]["psnr_y"]  # other pixels

    # The store holds RCAN at both scales under one name: x2 did not replace x4.
    with Store.open_existing(store) as opened:
        held = {(r["model"], r["scale"]) for r in opened.values("evaluate")}
    assert held == {("EDSR", 2), ("RCAN", 2), ("RCAN", 4)}

    table = _invoke(["table", "--suite", "evaluate", "--store", store, "--metrics", METRICS])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].startswith("| Model | Scale | set5 PSNR-Y")
    body = [line.split(" | ")[:2] for line in lines[2:5]]
    assert sorted(body) == [["| EDSR", "x2"], ["| RCAN", "x2"], ["| RCAN", "x4"]]
    rcan4 = next(line for line in lines if line.startswith("| RCAN | x4 |"))
    assert f"{rows[('RCAN', 'set5', 4)]['psnr_y']:.2f}" in rcan4

    only4 = _invoke(["table", "--suite", "evaluate", "--store", store, "--metrics", METRICS, "--scale", "4"])
    assert only4.exit_code == 0, only4.output
    assert only4.stdout.startswith("| Model | set5 PSNR-Y") and "Scale" not in only4.stdout
    assert "| RCAN |" in only4.stdout and "EDSR" not in only4.stdout

    csv = _invoke(["table", "--suite", "evaluate", "--store", store, "--metrics", METRICS, "--format", "csv"])
    assert csv.stdout.splitlines()[0] == "model,scale,set5/psnr_y,set5/ssim_y"

    ci = _invoke(["table", "--suite", "evaluate", "--store", store, "--metrics", "psnr_y", "--ci"])
    assert ci.exit_code == 0, ci.output
    assert all(" [" in line for line in ci.stdout.splitlines()[2:5]) and "Brackets: 95% interval" in ci.stdout

    none = _invoke(["table", "--suite", "evaluate", "--store", store, "--scale", "3"])
    assert none.exit_code == 1 and "no results at x3" in none.output and "x2, x4" in none.output


def test_the_python_api_gives_the_clis_values(shared_data, tree, tmp_path):
    res = srbench.evaluate_tree(tree, metrics=METRICS, data_root=shared_data, store=tmp_path / "s.sqlite",
                                workers=1)
    summary = res.summary.set_index(["model", "scale", "metric"])["value"]
    assert sorted({(m, s) for m, s, _ in summary.index}) == [("EDSR", 2), ("RCAN", 2), ("RCAN", 4)]
    alone = _single(shared_data, tree / "RCAN/Set5/x2", 2)
    assert summary[("RCAN", 2, "psnr_y")] == alone["psnr_y"]
    assert summary[("RCAN", 2, "ssim_y")] == alone["ssim_y"]
    stored = srbench.results(tmp_path / "s.sqlite", suite="evaluate").summary
    assert len(stored[stored["model"] == "RCAN"].drop_duplicates(["scale"])) == 2
    only2 = srbench.evaluate_tree(tree, metrics="psnr_y", data_root=shared_data, scales=2, workers=1)
    assert set(only2.summary["scale"]) == {2}
    # The CLI's comma form, as metrics= takes it ("2" was list("2") once: no leaf, "no leaf was evaluated")
    as_text = srbench.evaluate_tree(tree, metrics="psnr_y", data_root=shared_data, scales="2", workers=1)
    pd.testing.assert_frame_equal(as_text.summary, only2.summary)
    with pytest.raises(BadInputError, match="scales are positive whole numbers"):
        srbench.evaluate_tree(tree, metrics="psnr_y", data_root=shared_data, scales="x2", workers=1)


def test_bad_folders_are_one_line_each_and_the_rest_is_stored(shared_data, tmp_path):
    root = tmp_path / "released"
    _leaf(shared_data, root / "RCAN/Set5/x4", "{name}_RCAN_x{scale}", 4)
    _leaf(shared_data, root / "RCAN/Set99/x4", "{name}_RCAN_x{scale}", 4)  # unknown dataset
    _leaf(shared_data, root / "RCAN/Set5/four", "{name}_RCAN_x4", 4)  # not x<scale>
    (root / "EDSR/Set5/x2").mkdir(parents=True)  # empty leaf
    nothing = root / "SRGAN/Set5/x4"
    nothing.mkdir(parents=True)
    for i in range(3):  # images named after no image of Set5
        write_png(nothing / f"frame{i}.png", np.zeros((8, 8, 3), np.uint8))
    store = str(tmp_path / "s.sqlite")
    res = _invoke(["evaluate", "--tree", str(root), "--data-root", str(shared_data), "--metrics", METRICS,
                   "--store", store, "--workers", "1"])
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert any(f"{root / 'RCAN/Set99'}: unknown dataset 'Set99'" in line for line in errors)
    assert any(f"{root / 'RCAN/Set5/four'}: scale folder 'four' is not x<scale>" in line for line in errors)
    assert any(f"{root / 'EDSR/Set5/x2'}: holds no images" in line for line in errors)
    assert any(f"{nothing}: no file is named after an image of set5" in line for line in errors)
    assert errors[-1] == "error: 4 not evaluated (listed above); the 1 other result(s) were evaluated and stored"
    assert "RCAN" in res.stdout
    table = _invoke(["table", "--suite", "evaluate", "--store", store, "--metrics", METRICS])
    assert "| RCAN |" in table.stdout and "SRGAN" not in table.stdout
    with pytest.warns(UserWarning, match="not evaluated: ") as caught:
        found = srbench.evaluate_tree(root, metrics="psnr_y", data_root=shared_data, workers=1)
    assert sum("not evaluated: " in str(w.message) for w in caught) == 4
    assert sum(w.startswith("not evaluated: ") for w in found.warnings) == 4
    with pytest.raises(srbench.errors.BadInputError, match="no leaf was evaluated"):
        srbench.evaluate_tree(root / "EDSR", metrics="psnr_y", data_root=shared_data)


def test_several_models_in_one_command_each_named(shared_data, tmp_path):
    a = _leaf(shared_data, tmp_path / "a", "{name}_RCAN_x{scale}", 4)
    b = _leaf(shared_data, tmp_path / "b", "{name}_x{scale}_SR", 4, shift=3)
    store = str(tmp_path / "s.sqlite")
    base = ["evaluate", "--dataset", "set5", "--data-root", str(shared_data), "--metrics", METRICS, "--workers", "1"]
    res = _invoke([*base, "--model", str(a), "--model", str(b), "--model", "bicubic", "--name", "RCAN",
                   "--name", "Blur", "--name", "Bicubic", "--store", store, "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["model"]: r for r in json.loads(res.stdout)}
    assert list(rows) == ["RCAN", "Blur", "Bicubic"]
    assert rows["RCAN"]["psnr_y"] == rows["Bicubic"]["psnr_y"] == _single(shared_data, a, 4)["psnr_y"]
    assert rows["Blur"]["psnr_y"] == _single(shared_data, b, 4)["psnr_y"]
    default = _invoke([*base, "--model", str(a), "--model", str(tmp_path / "missing"), "--store", store])
    assert default.exit_code == 1
    assert f"error: {tmp_path / 'missing'}: " in default.stderr and "a" in default.stdout.split()  # named "a"
    names = _invoke([*base, "--model", str(a), "--model", str(b), "--name", "one"])
    assert names.exit_code == 2 and "1 --name for 2 --model" in names.output


def test_the_plane_draws_the_x4_results_and_says_so(shared_data, tree, tmp_path):
    store = str(tmp_path / "s.sqlite")
    res = _invoke(["evaluate", "--tree", str(tree), "--data-root", str(shared_data), "--protocol", "pirm",
                   "--metrics", "rmse,niqe", "--store", store, "--workers", "1"])
    assert res.exit_code == 0, res.output
    plane = _invoke(["pirm-plane", "--suite", "evaluate", "--dataset", "set5", "--store", store, "--out",
                     str(tmp_path / "plane.png")])
    assert plane.exit_code == 0, plane.output
    assert "results at x2 are not drawn" in plane.stderr and (tmp_path / "plane.png").is_file()
    only2 = str(tmp_path / "x2.sqlite")
    _invoke(["evaluate", "--tree", str(tree), "--scale", "2", "--data-root", str(shared_data), "--protocol", "pirm",
             "--metrics", "rmse", "--store", only2, "--workers", "1"])
    refused = _invoke(["pirm-plane", "--suite", "evaluate", "--dataset", "set5", "--store", only2, "--out",
                       str(tmp_path / "p2.png")])
    assert refused.exit_code == 1 and "no results at x4" in refused.output and "holds x2" in refused.output


def test_a_store_whose_labels_have_no_scale_is_read_then_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the tables as srbench wrote them before labels had a scale
        conn.executescript("""
            CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, suite TEXT, model TEXT NOT NULL,
                model_key TEXT NOT NULL, dataset TEXT NOT NULL, dataset_key TEXT NOT NULL, protocol TEXT NOT NULL,
                scale INTEGER NOT NULL, config TEXT, checkpoint_sha256 TEXT, srbench_version TEXT,
                torch_version TEXT, git_commit TEXT, device TEXT, seed INTEGER, started TEXT, finished TEXT);
            CREATE TABLE metric_values (model_key TEXT NOT NULL, dataset_key TEXT NOT NULL, protocol TEXT NOT NULL,
                scale INTEGER NOT NULL, image TEXT NOT NULL, metric TEXT NOT NULL, metric_version TEXT NOT NULL,
                value REAL, run_id INTEGER REFERENCES runs(id),
                PRIMARY KEY (model_key, dataset_key, protocol, scale, image, metric, metric_version));
            CREATE TABLE labels (model_key TEXT NOT NULL, suite TEXT NOT NULL, model TEXT NOT NULL,
                dataset TEXT NOT NULL, dataset_key TEXT NOT NULL, PRIMARY KEY (suite, model, dataset));
            INSERT INTO metric_values VALUES ('k', 'd', 'sr', 2, 'img', 'psnr_y', '1', 30.0, NULL);
            INSERT INTO metric_values VALUES ('k', 'd', 'sr', 4, 'img', 'psnr_y', '1', 25.0, NULL);
            INSERT INTO labels VALUES ('k', 't', 'm', 'set5', 'd');
        """)
    before = path.read_bytes()
    with Store.open_existing(path) as store:  # a reader leaves the file alone
        assert sorted(r["scale"] for r in store.values("t")) == [2, 4]
    assert path.read_bytes() == before
    with Store(path) as store:  # a writer upgrades it: the old label stands for every scale
        assert sorted(r["scale"] for r in store.values("t")) == [2, 4]
        store.put("k4", "d", "sr", 4, "img", {"psnr_y": 28.0}, {"psnr_y": "1"}, None)
        store.label("t", "m", "k4", "set5", "d", 4)  # a new x4 result replaces the old label, as before
        assert sorted((r["scale"], r["value"]) for r in store.values("t")) == [(4, 28.0)]
        store.label("t", "m", "k", "set5", "d", 2)
        assert sorted((r["scale"], r["value"]) for r in store.values("t")) == [(2, 30.0), (4, 28.0)]


def test_two_leaves_or_a_leaf_and_a_model_of_one_result_are_refused_before_evaluating(shared_data, tree, tmp_path):
    # A review: RCAN/Set5/x4 beside RCAN/set5/x4 (or B100/ beside BSD100/) gave two rows "RCAN set5 x4", the store
    # keeping the later; a --model named RCAN on set5 at x4 beside the tree's leaf the same
    _leaf(shared_data, tree / "RCAN/set5/x4", "{name}_RCAN_x{scale}", 4, shift=2)
    store = tmp_path / "s.sqlite"
    common = ["--data-root", str(shared_data), "--metrics", METRICS, "--store", str(store), "--workers", "1"]
    res = _invoke(["evaluate", "--tree", str(tree), *common])
    assert res.exit_code == 1
    assert "RCAN/Set5/x4 and " in res.output and "RCAN/set5/x4 would both be RCAN's set5 x4 results" in res.output
    assert not store.exists()  # nothing evaluated, no store made
    (tree / "RCAN/set5/x4").rename(tmp_path / "x4")
    res = _invoke(["evaluate", "--tree", str(tree), "--model", str(tmp_path / "x4"), "--name", "RCAN", "--dataset",
                   "set5", *common])
    assert res.exit_code == 1 and f"--model {tmp_path / 'x4'} and " in res.output
    assert "RCAN/Set5/x4 would both be RCAN's set5 x4 results" in res.output
    assert not store.exists()
    from srbench.many import refuse_shared_leaves, tree_leaves

    with pytest.raises(BadInputError, match=r"would both be RCAN's set5 x4 results"):
        refuse_shared_leaves(tree_leaves(tree)[0], [("m", "RCAN", ["Set5"], 4)])
    # a folder of one's own called Set5 is stored as Set5, not as the named set: no clash
    refuse_shared_leaves(tree_leaves(tree)[0], [("m", "RCAN", [str(tmp_path / "own/Set5")], 4)])


def test_a_file_name_that_is_not_utf8_is_read_as_its_bytes(shared_data, tmp_path):
    # A review: a stray image named in Latin-1 (from a zip archive) made evaluate a UnicodeEncodeError traceback
    import os
    import shutil

    _leaf(shared_data, tmp_path / "plain", "{name}", 4)
    folder = _leaf(shared_data, tmp_path / "odd", "{name}", 4)
    shutil.copy(folder / "baby.png", os.fsencode(folder) + b"/baby_copie_\xe9.png")
    row = _single(shared_data, folder, 4)
    assert row["n_images"] == 5 and math.isclose(row["psnr_y"], _single(shared_data, tmp_path / "plain", 4)["psnr_y"])


def test_a_label_moved_to_another_model_in_a_later_command_is_said(shared_data, tmp_path):
    # A review: A/x4 then B/x4 into one store: the second replaced the label x4 without a word
    store = str(tmp_path / "s.sqlite")
    for folder, shift in (("A", 0), ("B", 2)):
        _leaf(shared_data, tmp_path / folder / "x4", "{name}", 4, shift=shift)
    outputs = [_invoke(["evaluate", "--model", str(tmp_path / f / "x4"), "--dataset", "set5", "--data-root",
                        str(shared_data), "--metrics", METRICS, "--store", store, "--workers", "1"])
               for f in ("A", "B", "B")]
    assert all(r.exit_code == 0 for r in outputs), [r.output for r in outputs]
    assert "named another model's results" not in outputs[0].output
    assert "the store's label 'x4' of suite 'evaluate' on set5 (x4) named another model's results (other files, " \
           "or another checkpoint, under this name); it names these now" in outputs[1].output
    assert "named another model's results" not in outputs[2].output  # the same model again: nothing moved


def test_a_folder_whose_path_is_not_utf8_is_one_line(shared_data, tmp_path):
    # its name went into the store as text: a UnicodeEncodeError traceback
    import os

    folder = os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9sultats")
    _leaf(shared_data, Path(folder), "{name}", 4)
    res = _invoke(["evaluate", "--model", folder, "--dataset", "set5", "--data-root", str(shared_data),
                   "--metrics", METRICS, "--store", str(tmp_path / "s.sqlite"), "--workers", "1"])
    assert res.exit_code == 1
    assert "r\ufffdsultats: the folder's path is not UTF-8 text" in res.output
