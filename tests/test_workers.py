"""Metrics in worker processes (``evaluate --workers N``): the same values, bit for bit, in the same order."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner

from srbench import metrics as M
from srbench import workers as W
from srbench.cli import main
from srbench.errors import BadInputError
from srbench.evaluation import evaluate_model
from srbench.images import read_image, write_png
from srbench.matlab import imresize, rgb2y
from srbench.metrics import nrqm as N
from srbench.metrics.nrqm_synthetic import write_model_around
from srbench.store import Store

# Crops of different sizes, so that workers finish out of dataset order.
CROPS = {"baby": (200, 240), "bird": (160, 160), "butterfly": (240, 200), "head": (176, 192), "woman": (224, 160)}


@pytest.fixture(scope="module")
def tiny(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    for name, (h, w) in CROPS.items():
        write_png(root / f"{name}.png", read_image(shared_data / f"benchmark/Set5/HR/{name}.png")[:h, :w])
    return root


@pytest.fixture(scope="module")
def nrqm_weights(tiny, tmp_path_factory):
    """A stand-in NRQM model (few trees) of the real one's structure: Ma's plumbing, not its numbers."""
    planes = [rgb2y(read_image(p)).astype(np.float64) for p in sorted(tiny.glob("*.png"))[:3]]
    folder = tmp_path_factory.mktemp("weights")
    write_model_around(folder / N.NRQM_FILENAME, planes, n_samples=200, n_trees=8, seed=1)
    return folder


def _run(model, ds, workers, **kwargs):
    (res,) = evaluate_model(model, [str(ds)], workers=workers, **kwargs)
    return res


def _bits(value):
    """A float by its bits (NaN included), anything else as is."""
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_bits(v) for v in value)
    return float(value).hex() if isinstance(value, float | np.floating) else value


def _same(a, b, *, columns=True):
    assert [r["image"] for r in a.per_image] == [r["image"] for r in b.per_image]
    if columns:  # same columns, same order (values read back from a store come in the store's order)
        assert [list(r) for r in a.per_image] == [list(r) for r in b.per_image]
    assert [_bits(r) for r in a.per_image] == [_bits(r) for r in b.per_image]  # bit for bit
    assert _bits(a.summary) == _bits(b.summary) and list(a.summary) == list(b.summary)
    assert a.skipped == b.skipped and a.warnings == b.warnings


def test_default_is_the_usable_cores():
    assert W.resolve_workers(None) == len(os.sched_getaffinity(0)) == W.usable_cores()
    assert W.resolve_workers(3) == 3
    for meaningless in (0, -1, 1.5, True):  # refused, not rounded up to one worker (issue 21)
        with pytest.raises(BadInputError, match="positive whole number"):
            W.resolve_workers(meaningless)


def test_sr_protocol_is_bitwise_equal_and_in_dataset_order(tiny):
    one = _run("bicubic", tiny, 1)
    two = _run("bicubic", tiny, 2)
    assert W.POOL._executor is not None  # the workers did compute
    assert [r["image"] for r in two.per_image] == sorted(CROPS)
    _same(one, two)


def test_a_generators_values_are_bitwise_equal_with_one_or_two_workers(tiny, tmp_path):
    # The network's output was a permuted (HxWxC view of CxHxW) array: measured as is in the parent and as a
    # contiguous copy in a worker, SSIM-Y differed in the last bit (--workers 1 vs 2, torchrun vs one process).
    import torch

    from srbench.archs import GENERATORS, build_generator
    from srbench.checkpoints import save_checkpoint
    from srbench.matlab import rgb2ycbcr

    spec = GENERATORS["rrdb23-smoke"]
    config = {**spec.config, "scale": 4}
    torch.manual_seed(0)
    ckpt = tmp_path / "g.safetensors"
    save_checkpoint(build_generator(spec.arch, config), ckpt, arch=spec.arch, config=config, variant="rrdb23-smoke",
                    stage="psnr")
    _same(_run(str(ckpt), tiny, 1), _run(str(ckpt), tiny, 2))
    # and the conversions themselves follow no memory layout
    rgb = np.random.default_rng(0).integers(0, 256, (3, 64, 80), dtype=np.uint8).transpose(1, 2, 0)
    for convert in (rgb2y, rgb2ycbcr):
        assert np.array_equal(convert(rgb.astype(np.float64)), convert(np.ascontiguousarray(rgb).astype(np.float64)))


@pytest.mark.parametrize("with_store", [False, True])
def test_pirm_protocol_is_bitwise_equal_with_and_without_a_store(tiny, nrqm_weights, tmp_path, with_store):
    metrics = ["rmse", "niqe", "ma", "pi", "brisque"]
    results, stored = [], []
    for workers in (1, 2):
        store = Store(tmp_path / f"store{workers}.sqlite") if with_store else None
        try:
            results.append(_run("bicubic", tiny, workers, protocol="pirm", metrics=metrics,
                                weights_dir=str(nrqm_weights), store=store, suite="t" if store else None))
            if store is not None:
                stored.append([(v["image"], v["metric"], v["metric_version"], v["value"]) for v in store.all_values()])
                again = _run("bicubic", tiny, workers, protocol="pirm", metrics=metrics,
                             weights_dir=str(nrqm_weights), store=store)
                assert again.provenance["cached_images"] == len(CROPS)
                _same(results[-1], again)  # columns too: in the protocol's order, stored or not
        finally:
            if store is not None:
                store.close()
    _same(*results)
    assert all(np.isfinite(r["ma"]) and np.isfinite(r["brisque"]) for r in results[1].per_image)
    # The smaller crops are too small for NIQE's two blocks: NaN, which stays NaN the same way.
    assert {bool(np.isfinite(r["niqe"])) for r in results[1].per_image} == {True, False}
    if with_store:
        assert [_bits(r) for r in stored[0]] == [_bits(r) for r in stored[1]] and len(stored[0]) == len(CROPS) * 11


def test_runtime_registered_metrics_run_in_the_parent(tiny):
    calls: list[int] = []

    def counting(x):
        calls.append(os.getpid())
        return float(np.mean(x.sr_plane()))

    mean_y = M.Metric(name="mean_y", label="mean Y", digits=2, higher_is_better=True, needs_reference=False,
                      version="t1", description="mean of Y", compute=counting, protocols=("pirm",))
    # Derived from a metric computed in a worker: reads its value after it arrived.
    half_niqe = M.Metric(name="half_niqe", label="NIQE/2", digits=3, higher_is_better=False, needs_reference=False,
                         version="t1", description="half NIQE",
                         compute=lambda x: x.values["niqe"] / 2, plane="none", protocols=("pirm",), requires=("niqe",))
    real = M.get_metric("rmse")
    shifted = dataclasses.replace(real, compute=lambda x: {"mse": 1.0, "rmse": 1.0}, version="t")
    with M.temporarily(mean_y), M.temporarily(half_niqe), M.temporarily(shifted):
        assert W.split_metrics(__import__("srbench.protocols").protocols.get_protocol("pirm"),
                               ["rmse", "niqe", "mean_y", "half_niqe"]) == (["niqe"], ["rmse", "mean_y", "half_niqe"])
        one = _run("bicubic", tiny, 1, protocol="pirm", metrics=["rmse", "niqe", "mean_y", "half_niqe"])
        two = _run("bicubic", tiny, 2, protocol="pirm", metrics=["rmse", "niqe", "mean_y", "half_niqe"])
    _same(one, two)
    assert set(calls) == {os.getpid()} and len(calls) == 2 * len(CROPS)
    assert all(r["rmse"] == 1.0 and _bits(r["half_niqe"]) == _bits(r["niqe"] / 2) for r in two.per_image)


def test_bad_images_in_the_middle_are_skipped_identically(tiny, tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    for name in CROPS:
        (ds / f"{name}.png").write_bytes((tiny / f"{name}.png").read_bytes())
    (ds / "bz_truncated.png").write_bytes((tiny / "baby.png").read_bytes()[:300])  # fails to read, in the parent
    sr = tmp_path / "sr"
    for name in CROPS:
        hr = read_image(tiny / f"{name}.png")
        out = imresize(imresize(hr, 0.25), 4)
        write_png(sr / f"{name}.png", out[:-8] if name == "bird" else out)  # wrong size: found in the worker
    one = _run(str(sr), ds, 1, protocol="pirm", metrics=["rmse", "niqe"])
    two = _run(str(sr), ds, 2, protocol="pirm", metrics=["rmse", "niqe"])
    _same(one, two)
    assert [r["image"] for r in two.per_image] == ["baby", "butterfly", "head", "woman"]
    assert {s["image"] for s in two.skipped} == {"bird", "bz_truncated"}
    assert any("SR is" in s["error"] and "bird.png" in s["error"] for s in two.skipped)
    # where each image's LR came from counts the images read, whoever read them (a bad file counted as '' in 2)
    for model, evaluated in ((str(sr), len(CROPS) - 1), ("bicubic", len(CROPS))):
        one, two = (_run(model, ds, n, protocol="pirm", metrics=["rmse", "niqe"]) for n in (1, 2))
        assert one.provenance["lr_source"] == two.provenance["lr_source"] == {"imresize": evaluated}


def test_an_error_in_a_worker_keeps_its_traceback():
    pool = W.POOL.get(2)
    with pytest.raises(BadInputError, match="unknown protocol"):
        pool.submit(W.compute, "nope", None, None, 4, [], {}, {}).result()
    with pytest.raises(TypeError, match="sign") as err:  # numpy's, on strings
        pool.submit(W.compute, "sr", "not an image", "nor this", 4, ["psnr_y"], {}, {}).result()
    assert not isinstance(err.value, BadInputError)
    assert "Traceback" in str(err.value.__cause__) and "per_image" in str(err.value.__cause__)


def test_opencv_runs_on_one_thread_in_a_worker():
    """N workers on N cores: OpenCV (Ma's filters), imported in a worker only when a metric needs it, uses one
    thread there as BLAS does (the machine's cores would otherwise be oversubscribed N-fold)."""
    pytest.importorskip("cv2")
    pool = W.POOL.get(2)
    assert pool.submit(eval, "__import__('cv2').getNumThreads()").result() == 1


def test_a_killed_worker_is_one_clear_error_and_the_next_run_recovers(tiny):
    one = _run("bicubic", tiny, 1, protocol="pirm", metrics=["rmse", "niqe"])

    def kill(label, i, total):
        if i == 2:
            for process in list(W.POOL._executor._processes.values()):
                os.kill(process.pid, signal.SIGKILL)

    with pytest.raises(W.WorkerCrashedError, match=r"worker process ended abruptly .*\.png"):
        list(evaluate_model("bicubic", [str(tiny)], protocol="pirm", metrics=["rmse", "niqe"], workers=2,
                            progress=kill))
    _same(one, _run("bicubic", tiny, 2, protocol="pirm", metrics=["rmse", "niqe"]))


def test_cli_workers_option(tiny):
    runs = [CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", str(tiny), "--json",
                                      "--workers", str(n)]) for n in (1, 2)]
    assert all(r.exit_code == 0 for r in runs), runs[0].output + runs[1].output
    assert json.loads(runs[0].stdout) == json.loads(runs[1].stdout)
    bad = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", str(tiny), "--workers", "0"])
    assert bad.exit_code != 0 and "--workers" in bad.output


def test_an_error_that_cannot_be_pickled_arrives_as_its_message():
    from srbench.errors import SrbenchError, WeightsUnavailableError

    exc = WeightsUnavailableError("Ma", "NRQM_model.mat", "/w", ["/w"], "the authors")
    sent = W._sendable(exc)
    assert type(sent) is SrbenchError and str(sent) == str(exc)
    plain = BadInputError("bad")
    assert W._sendable(plain) is plain


@pytest.mark.parametrize("case", ["sr", "pirm", "folder"])
def test_workers_read_and_make_the_images_the_parent_only_orders(tiny, tmp_path, monkeypatch, case):
    """With workers, a bicubic or folder source's images are read, made and measured in the workers (issue 24):
    the parent decodes no image file, and the values are those of ``--workers 1`` bit for bit."""
    from srbench import datasets as D
    from srbench import sources as S

    model = "bicubic"
    if case == "folder":
        model = str(tmp_path / "sr")
        for name in CROPS:
            write_png(tmp_path / "sr" / f"{name}_x4.png", imresize(imresize(read_image(tiny / f"{name}.png"), 0.25), 4))
    settings = {"protocol": "pirm", "metrics": ["rmse", "niqe"]} if case == "pirm" else {}
    one = _run(model, tiny, 1, **settings)
    reads: list[str] = []

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return original(path, *args, **kwargs)

    original = D.decode_image
    monkeypatch.setattr(D, "decode_image", counted)
    monkeypatch.setattr(S, "decode_image", counted)
    _run(model, tiny, 1, **settings)
    assert len(reads) == len(CROPS) * (2 if case == "folder" else 1)  # the patch sees the parent's reads
    reads.clear()
    two = _run(model, tiny, 2, **settings)
    assert reads == []  # a spawned worker does not see the patch: had the parent read a file, it would show
    _same(one, two)
    assert two.provenance["lr_source"] == one.provenance["lr_source"] == {"imresize": len(CROPS)}


_WATCH_NUMPY_LOAD = """
import os, sys
from srbench.cli import main
seen = []
class WatchNumpy:  # records the variable at the moment numpy, and with it OpenBLAS, first loads
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not seen:
            seen.append(os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset"))
sys.meta_path.insert(0, WatchNumpy())
try:
    main(["metrics"])
except SystemExit:
    pass
print("when numpy loaded:", seen[0] if seen else "numpy never loaded")
"""


@pytest.mark.parametrize("user_value", [None, "25"])
def test_the_command_shortens_openblas_spin_before_numpy_loads(user_value):
    """The ``srbench`` command (W.short_blas_spin) sets OpenBLAS's idle spin before numpy loads it, the only time
    OpenBLAS reads it, and keeps a value the user set."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if user_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = user_value
    done = subprocess.run([sys.executable, "-c", _WATCH_NUMPY_LOAD], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"when numpy loaded: {user_value or '20'}"


def test_workers_leave_when_their_parent_is_killed(tmp_path):
    # SIGKILL (or the OOM killer) runs no clean-up in the parent: its idle workers were left running for ever
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text("import os, time\nfrom srbench import workers as W\npool = W.POOL.get(2)\n"
                      "print(*sorted({pool.submit(os.getpid).result() for _ in range(8)}), flush=True)\n"
                      "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert workers and parent.pid not in workers
    finally:
        parent.kill()
        parent.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)


_TRAINING_POOL = '''
import multiprocessing, os, signal, time
from concurrent.futures import ProcessPoolExecutor
from srbench.train import interrupts as W

def task():
    with W.training_task():
        return "ran"

def interrupted_task():
    with W.training_task():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        return "not interrupted"

def outcome(future):
    try:
        return future.result()
    except KeyboardInterrupt:
        return "KeyboardInterrupt"

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=W.init_training_worker) as pool:
        pid = pool.submit(os.getpid).result()
        print(outcome(pool.submit(task)), outcome(pool.submit(interrupted_task)), flush=True)
        os.kill(pid, signal.SIGINT)  # as the terminal's Ctrl-C reaches an idle training process
        time.sleep(1)
        print(outcome(pool.submit(task)), pool.submit(os.getpid).result() == pid, flush=True)
'''


def test_a_ctrl_c_reaching_an_idle_training_process_is_no_traceback(tmp_path):
    # Ctrl-C reaches every process of the job; a side-by-side ablate's training process that was starting (importing
    # torch) or idle died with a KeyboardInterrupt traceback: it is remembered, and a task taken after it stops at once
    import subprocess
    import sys

    script = tmp_path / "pool.py"
    script.write_text(_TRAINING_POOL)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ran", "KeyboardInterrupt", "KeyboardInterrupt", "True"]
    assert "Traceback" not in done.stderr
