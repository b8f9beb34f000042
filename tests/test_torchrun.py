"""``torchrun``: evaluation sharded over ranks (gloo on CPU) equals a one-process run bit for bit; rank 0 alone
writes the store and the outputs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from srbench.images import read_image, write_png
from srbench.matlab import rgb2y
from srbench.metrics import nrqm as N
from srbench.metrics.nrqm_synthetic import write_model_around

# Different sizes, so that ranks finish out of dataset order; one file is not an image.
CROPS = {"baby": (200, 240), "bird": (160, 160), "butterfly": (240, 200), "head": (176, 192), "woman": (224, 160)}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def folder(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ranks")
    for name, (h, w) in CROPS.items():
        write_png(root / f"{name}.png", read_image(shared_data / f"benchmark/Set5/HR/{name}.png")[:h, :w])
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


@pytest.fixture(scope="module")
def weights(folder, tmp_path_factory):
    """A stand-in NRQM model of the real one's structure, so Ma (and PI) run on every rank."""
    planes = [rgb2y(read_image(folder / f"{name}.png")).astype(np.float64) for name in ("bird", "head")]
    out = tmp_path_factory.mktemp("weights")
    write_model_around(out / N.NRQM_FILENAME, planes, n_samples=100, n_trees=4, seed=1)
    return out


def _evaluate(folder, weights, tmp, ranks: int, workers: int = 1) -> subprocess.CompletedProcess:
    launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
    cmd = [sys.executable, *launcher, "-m", "srbench", "evaluate", "--model", "bicubic", "--dataset", str(folder),
           "--protocol", "pirm", "--metrics", "rmse,niqe,ma,pi,brisque", "--weights-dir", str(weights),
           "--store", str(tmp / "store.db"), "--out", str(tmp / "out"), "--workers", str(workers), "--skip-bad",
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _stored(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT image, metric, metric_version, value FROM metric_values").fetchall())


@pytest.mark.slow
def test_two_ranks_equal_one_process_bit_for_bit(folder, weights, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    single = _evaluate(folder, weights, one, 1)
    sharded = _evaluate(folder, weights, two, 2)
    # rank 0 alone printed the result (one JSON list, not two)
    (a,), (b,) = json.loads(single.stdout), json.loads(sharded.stdout)
    for result in (a, b):
        assert result["n_images"] == 5 and result["n_skipped"] == 1 and "broken.png" in result["skipped"][0]["file"]
    keep = ("read_notes", "lr_source", "metric_versions", "dataset_sha256", "model_key", "cached_images")
    assert {k: a["provenance"][k] for k in keep} == {k: b["provenance"][k] for k in keep}
    a.pop("provenance"), b.pop("provenance")
    assert a == b  # summary, skipped, warnings: the same JSON text, floats to the last digit
    (csv_one,), (csv_two,) = sorted((one / "out").glob("*.csv")), sorted((two / "out").glob("*.csv"))
    assert csv_one.read_bytes() == csv_two.read_bytes()  # per-image values in dataset order, as repr'd floats
    stored = _stored(two / "store.db")
    assert stored == _stored(one / "store.db") and len({row[0] for row in stored}) == 5
    # a second sharded run finds every value in rank 0's store and computes nothing
    (again,) = json.loads(_evaluate(folder, weights, two, 2).stdout)
    assert again["provenance"]["cached_images"] == 5 and again["pi"] == b["pi"]


@pytest.mark.slow
def test_ranks_with_metric_workers_leave_when_done(folder, weights, tmp_path):
    # Each rank's metric workers were never told to stop: the launch printed its results, then hung for ever
    # (the default wherever the cores are at least twice the ranks).
    single = _evaluate(folder, weights, tmp_path / "one", 1)
    sharded = _evaluate(folder, weights, tmp_path / "two", 2, workers=2)
    (a,), (b,) = json.loads(single.stdout), json.loads(sharded.stdout)
    assert a["pi"] == b["pi"] and a["n_images"] == b["n_images"] == 5
    (csv_one,), (csv_two,) = sorted((tmp_path / "one/out").glob("*.csv")), sorted((tmp_path / "two/out").glob("*.csv"))
    assert csv_one.read_bytes() == csv_two.read_bytes()


def _ablate(tmp, out: str, ranks: int) -> subprocess.CompletedProcess:
    launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
    jobs = ["--jobs", "2"] if ranks == 1 else []  # one process: two trainings side by side, one thread each
    cmd = [sys.executable, *launcher, "-m", "srbench", "ablate", "--suite", str(tmp / "suite.toml"), "--device",
           "cpu", "--store", str(tmp / out / "store.db"), "--out", str(tmp / out / "report"), "--workers", "1",
           *jobs]
    env = {k: v for k, v in ENV.items() if k not in ("SRBENCH_DATA", "SRBENCH_TRAINING_CACHE")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_ablate_on_two_ranks_equals_one_process_and_resumes_from_the_cache(tmp_path, shared_suite):
    """Rank r trains every 2nd stage of each wave (psnr, then the gan stages from it) alone; evaluation is sharded;
    rank 0 writes the report. Weights, shared stages and every number equal a one-process run's."""
    (tmp_path / "suite.toml").write_text(shared_suite)  # a, b equal; c another seed; d another gan lr
    _ablate(tmp_path, "one", 1)
    sharded = _ablate(tmp_path, "two", 2)
    one, two = tmp_path / "one" / "report", tmp_path / "two" / "report"
    assert (one / "results.csv").read_bytes() == (two / "results.csv").read_bytes()
    rows_one = json.loads((one / "training.json").read_text())
    rows_two = json.loads((two / "training.json").read_text())
    assert [(r["stage"], r["entries"], r["fingerprint"]) for r in rows_one] == \
        [(r["stage"], r["entries"], r["fingerprint"]) for r in rows_two]
    assert [r["entries"] for r in rows_two] == [["a", "b", "d"], ["a", "b"], ["c"], ["c"], ["d"]]
    for entry in ("a", "c", "d"):
        for stage in ("psnr", "gan"):
            weights = f"runs/smoke/{entry}/{stage}/g_final.safetensors"
            assert (one / weights).read_bytes() == (two / weights).read_bytes(), weights
    # the two gan stages of the second wave were trained one per rank
    trainings = [line for line in sharded.stderr.splitlines() if line.startswith(("training ", "[rank 1] training "))]
    # wave 1: the two psnr stages, one per rank; wave 2: the three gan stages, every 2nd on rank 1
    assert sorted(t.split(" (")[0] for t in trainings) == [
        "[rank 1] training c / psnr", "[rank 1] training d / gan", "training a / gan", "training a / psnr",
        "training c / gan"]
    # interrupted or not, a re-run finds every stage in the shared training cache and every value in the store
    again = _ablate(tmp_path, "two", 2)
    assert not [line for line in again.stderr.splitlines() if line.startswith(("training ", "[rank 1] training "))]
    assert (two / "results.csv").read_bytes() == (one / "results.csv").read_bytes()
