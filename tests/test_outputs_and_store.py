"""Issue 8, items 11-13 and run extension: failing writes, a bad or missing results store, two trainers in one
run folder, and extending a finished training run.

Each test fails on the code before the fix (raw OSError / sqlite3 tracebacks, a store created by a read-only
command, training before the store was checked, no lock, a refused extension).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from srbench.cli import main
from srbench.errors import OutputError, RunInUseError, StoreError
from srbench.images import atomic_write_bytes, atomic_write_text, ensure_writable_dir, write_png
from srbench.store import Store

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _cli(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _one_error_line(res, *parts: str) -> str:
    """The run failed with exactly one 'error: ...' line containing every part, and no traceback."""
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.output
    for part in parts:
        assert part in errors[0], (part, errors[0])
    return errors[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _make_read_only(folder: Path, monkeypatch) -> str:
    """Make ``folder`` refuse new files; returns the OS reason the error must carry.

    chmod does not stop root (CI containers often run as root): there, file creation under ``folder`` fails the
    way it does on a read-only mount, at the os.open that creates the temporary file.
    """
    if not IS_ROOT:
        folder.chmod(0o555)
        return os.strerror(errno.EACCES)
    real_open = os.open
    prefix = str(folder) + os.sep

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(prefix) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    return os.strerror(errno.EROFS)


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "old.txt").write_text("kept\n")
    reason = _make_read_only(folder, monkeypatch)
    yield folder, reason
    folder.chmod(0o755)


def _full_disk(monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)


# -- item 11: failing writes are one OutputError naming the path and the OS's reason ------------------------


def test_full_disk_is_one_error_and_leaves_no_partial_or_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "result.csv"
    atomic_write_text(target, "old, complete\n")
    _full_disk(monkeypatch)
    with pytest.raises(OutputError) as info:
        atomic_write_text(target, "new\n" * 1000)
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert target.read_text() == "old, complete\n"  # the previous file is intact, not half overwritten
    assert _leftovers(target.parent) == []
    with pytest.raises(OutputError, match="No space left on device"):
        write_png(tmp_path / "out" / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.csv"]


def test_read_only_folder_is_one_error_naming_file_and_reason(read_only_dir):
    folder, reason = read_only_dir
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(folder / "new.png", b"data")
    assert str(info.value) == f"cannot write {folder / 'new.png'}: {reason}"
    with pytest.raises(OutputError) as info:
        ensure_writable_dir(folder)
    assert str(info.value) == f"cannot write to {folder}: {reason}"
    assert sorted(p.name for p in folder.iterdir()) == ["old.txt"]


def test_a_file_where_a_folder_should_be_is_named(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("I am a file")
    with pytest.raises(OutputError) as info:
        atomic_write_text(blocker / "a" / "b.csv", "x")
    assert str(info.value) == f"cannot write {blocker / 'a' / 'b.csv'}: {blocker} is a file, not a folder"
    with pytest.raises(OutputError) as info:
        ensure_writable_dir(blocker)
    assert str(info.value) == f"cannot write to {blocker}: it is a file, not a folder"
    with pytest.raises(OutputError, match=f"{blocker} is a file, not a folder"):
        ensure_writable_dir(blocker / "sub")
    assert blocker.read_text() == "I am a file"


def test_ensure_writable_dir_creates_the_folder_and_leaves_nothing(tmp_path):
    folder = ensure_writable_dir(tmp_path / "a" / "b")
    assert folder == tmp_path / "a" / "b" and folder.is_dir() and list(folder.iterdir()) == []


def _checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    from srbench.archs import GENERATORS, build_generator
    from srbench.checkpoints import save_checkpoint

    spec = GENERATORS["rrdb23-smoke"]
    config = {**spec.config, "scale": 4}
    torch.manual_seed(0)
    paths = []
    for stage in ("psnr", "gan"):
        paths.append(save_checkpoint(build_generator(spec.arch, config), tmp_path / f"{stage}.safetensors",
                                     arch=spec.arch, config=config, variant="rrdb23-smoke", stage=stage))
    return paths[0], paths[1]


def test_interp_into_an_unwritable_folder_fails_first_in_one_line(tmp_path, read_only_dir, monkeypatch):
    folder, reason = read_only_dir
    monkeypatch.undo()  # write the checkpoints normally, then make the folder read-only again
    psnr, gan = _checkpoints(tmp_path)
    _make_read_only(folder, monkeypatch)
    import srbench.checkpoints as C

    def must_not_load(*args, **kwargs):
        raise AssertionError("loaded the networks before checking --out")

    monkeypatch.setattr(C, "interpolate", must_not_load)
    res = _cli("interp", psnr, gan, "--alpha", "0,1", "--out", folder / "interp")
    _one_error_line(res, f"cannot write to {folder / 'interp'}: {reason}")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    res = _cli("interp", psnr, gan, "--alpha", "0,1", "--out", blocker / "interp")
    _one_error_line(res, f"{blocker} is a file, not a folder")


def test_train_into_an_unwritable_folder_fails_before_building_anything(tmp_path, monkeypatch):
    import srbench.train as T

    def must_not_build(*args, **kwargs):
        raise AssertionError("built the trainer before checking --out")

    monkeypatch.setattr(T.Trainer, "__init__", must_not_build)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    res = _cli("train", "--variant", "rrdb23-smoke", "--stage", "psnr", "--preset", "smoke", "--out", blocker / "run")
    _one_error_line(res, f"cannot write to {blocker / 'run'}: {blocker} is a file, not a folder")


def test_training_on_a_full_disk_stops_with_one_error_keeping_the_last_checkpoint(tmp_path, monkeypatch):
    from srbench.train import Trainer
    from srbench.train.config import resolve_config

    cfg = resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", "psnr.iters=6", "psnr.checkpoint_every=3",
                                                   "psnr.val_every=100", "psnr.log_every=1"])

    def disk_fills_at_5(iteration, logs):
        if iteration == 5:
            _full_disk(monkeypatch)

    with pytest.raises(OutputError) as info:
        Trainer(cfg, "psnr", tmp_path, progress=False).run(on_iteration=disk_fills_at_5)
    assert str(info.value) == f"cannot write {tmp_path / 'psnr' / 'state.pt'}: No space left on device"
    monkeypatch.undo()
    assert torch.load(tmp_path / "psnr/state.pt", weights_only=True)["iteration"] == 3
    assert [n for n in _leftovers(tmp_path / "psnr") if n != ".srbench.lock"] == []
    assert not (tmp_path / "psnr/g_final.safetensors").exists()


def test_a_raw_os_error_in_any_command_is_still_one_line():
    from srbench.cli import _Group

    @click.group(cls=_Group)
    def group():
        pass

    @group.command()
    def boom():
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/file.txt")

    res = CliRunner().invoke(group, ["boom"])
    assert res.exit_code == 1 and res.stderr == "error: /somewhere/file.txt: Permission denied\n"


def test_pirm_plane_write_failures_and_unknown_formats(tmp_path, monkeypatch):
    from srbench.errors import BadInputError
    from srbench.plots import pirm_plane

    rows = [{"model": m, "dataset": "d", "protocol": "pirm", "scale": 4, "metric": k, "value": v, "n_images": 1,
             "higher_is_better": False, "version": "1"}
            for m, rmse, niqe in (("a", 11.0, 5.0), ("b", 13.0, 3.0)) for k, v in (("rmse", rmse), ("niqe", niqe))]
    tidy = pd.DataFrame(rows)
    out = tmp_path / "plots"
    assert pirm_plane(tidy, out / "p.svg", dataset="d").read_text().startswith("<?xml")
    with pytest.raises(BadInputError, match=r"p\.xyz: cannot draw a \.xyz file; use one of .*png"):
        pirm_plane(tidy, out / "p.xyz", dataset="d")
    _full_disk(monkeypatch)
    with pytest.raises(OutputError, match=f"cannot write {out / 'p.png'}: No space left on device"):
        pirm_plane(tidy, out / "p.png", dataset="d")
    assert sorted(p.name for p in out.iterdir()) == ["p.svg"]


# -- item 11: a results store that is not one ------------------------------------------------------------------


def _filled_store(path: Path) -> Path:
    with Store(path) as store:
        for i in range(300):
            store.put("k", "d", "pirm", 4, f"img{i:03d}", {"rmse": 10.0 + i % 7, "niqe": 3.0},
                      {"rmse": "1", "niqe": "1"}, None)
        store.label("mini", "m", "k", "set", "d")
    return path


def _bad_stores(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = _filled_store(tmp_path / "good.sqlite").read_bytes()
    assert len(good) > 20_000
    cases = {
        "random bytes": (os.urandom(8192), "is not an SQLite database (binary data)"),
        "text": ("model,psnr\nbicubic,28.4\n" * 50, "is not an SQLite database (a text file)"),
        "truncated half": (good[: len(good) // 2], "is truncated or corrupt ("),
        "truncated header": (good[:60], "is truncated (60 bytes, shorter than an SQLite header)"),
        "zeroed pages": (good[:4096] + bytes(len(good) - 4096), "is truncated or corrupt ("),
    }
    out = {}
    for i, (name, (content, message)) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.sqlite"
        (path.write_text if isinstance(content, str) else path.write_bytes)(content)
        out[name] = (path, message)
    folder = tmp_path / "folder.sqlite"
    folder.mkdir()
    out["a folder"] = (folder, "is a folder; --store takes an SQLite file")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE photos (name TEXT)")
    conn.close()
    out["another program's database"] = (other, "is an SQLite database of something else (tables: photos)")
    tracking = tmp_path / "mlflow.db"  # a table of srbench's name: it got srbench's tables and WAL journaling added
    with sqlite3.connect(tracking) as conn:
        conn.execute("CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, name TEXT, status TEXT)")
        conn.execute("CREATE TABLE metrics (key TEXT, value REAL, run_uuid TEXT)")
    conn.close()
    out["a database with a table 'runs'"] = (tracking, "is an SQLite database of something else (its table(s) runs "
                                                       "lack srbench's columns)")
    return out


def test_bad_store_files_are_one_store_error_naming_the_file(tmp_path):
    for name, (path, message) in _bad_stores(tmp_path).items():
        before = path.read_bytes() if path.is_file() else None
        for create in (True, False):
            with pytest.raises(StoreError) as info:
                Store(path, create=create)
            assert str(info.value).startswith(f"results store {path} {message}"), (name, str(info.value))
        assert (path.read_bytes() if path.is_file() else None) == before, name  # never "repaired" into a store
        res = _cli("results", "--store", path)
        if path.is_dir():  # click itself refuses a folder for --store
            assert res.exit_code == 2 and "is a directory" in res.stderr and "Traceback" not in res.output
        else:
            _one_error_line(res, str(path), message)


def test_a_store_in_a_folder_that_cannot_be_written_is_read(tmp_path):
    # WAL needs its -shm file beside the store: 'results' on a store in a read-only folder said 'attempt to write a
    # readonly database'
    import shutil

    path = _filled_store(tmp_path / "ro" / "s.sqlite")
    folder = path.parent
    as_user: list[str] = []
    if IS_ROOT:  # root writes into any folder: drop that power for the reader
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a read-only folder cannot be made")
        as_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    read = [*as_user, sys.executable, "-c",
            f"from srbench.store import Store; print(len(Store.open_existing({str(path)!r}).values('mini')))"]
    folder.chmod(0o555)
    try:
        done = subprocess.run(read, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["600"]  # 300 images x rmse, niqe
        assert sorted(p.name for p in folder.iterdir()) == ["s.sqlite"]  # nothing created beside it
        # a write-ahead log holding commits not in the store yet would be missed: refused, saying so
        folder.chmod(0o755)
        (folder / "s.sqlite-wal").write_bytes(b"\0" * 64)
        folder.chmod(0o555)
        done = subprocess.run(read, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and "write-ahead log s.sqlite-wal holds results not yet in it" in done.stderr
    finally:
        folder.chmod(0o755)


def test_labelled_values_of_old_metric_versions_are_named_not_no_results(tmp_path, shared_data):
    # A store whose values all predate a metric's current version said 'no labelled results' (results) and
    # 'run srbench ablate first' (table): they are there, under versions this srbench does not read
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        for image in ("a", "b"):
            store.put("k", "d", "sr", 4, image, {"psnr_y": 30.0, "ssim_y": 0.9}, {"psnr_y": "0", "ssim_y": "0"}, None)
        store.label("evaluate", "m", "k", "set", "d", 4)
    words = "4 labelled value(s) are of metric versions this srbench does not compute: psnr_y 0, ssim_y 0"
    listed = _cli("results", "--store", path)
    assert listed.exit_code == 0 and f"no labelled results ({words}" in listed.output
    table = _cli("table", "--store", path, "--suite", "evaluate")
    assert table.exit_code == 1 and words in table.output


def test_pyiqa_values_and_small_metrics_are_shown_as_stored(tmp_path, monkeypatch):
    # pyiqa's metrics are registered on first use: a process that only reads the store (results, table, export,
    # compare) left their stored values out ('–', 'has no pyiqa:ms_ssim'); the spectrum's 0.00756 was shown 0.0076
    pytest.importorskip("pyiqa")
    from srbench.metrics import get_metric
    from srbench.metrics import registry as R

    version = get_metric("pyiqa:ms_ssim").version
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        for model, base in (("a_1", 0.95), ("b", 0.96)):
            for i, image in enumerate(("x", "y")):
                store.put(model, "d", "sr", 4, image, {"pyiqa:ms_ssim": base + i / 1000, "spectrum_discrepancy":
                          0.00756 + 2 * i / 10**5}, {"pyiqa:ms_ssim": version, "spectrum_discrepancy":
                          get_metric("spectrum_discrepancy").version}, None)
            store.label("evaluate", model, model, "set", "d", 4)
    monkeypatch.delitem(R._ensure_loaded(), "pyiqa:ms_ssim")  # as in a fresh process
    listed = _cli("results", "--store", path)
    assert listed.exit_code == 0, listed.output
    assert listed.output.split("\n")[-3].split() == ["a_1", "set", "0.9505", "0.00757"]
    latex = _cli("table", "--store", path, "--suite", "evaluate", "--metrics", "pyiqa:ms_ssim", "--format", "latex")
    assert latex.exit_code == 0, latex.output
    assert "set MS\\_SSIM $\\uparrow$" in latex.output  # a bare _ in a LaTeX header does not compile
    assert "a\\_1 & \\underline{0.9505}" in latex.output and "b & \\textbf{0.9605}" in latex.output


def test_a_store_that_cannot_be_created_is_named(tmp_path):
    blocker = tmp_path / "reports"
    blocker.write_text("")
    with pytest.raises(StoreError) as info:
        Store(blocker / "s.sqlite")
    assert str(info.value) == f"cannot create results store {blocker / 's.sqlite'}: {blocker} is a file, not a folder"


def test_unreadable_store_is_named(tmp_path, monkeypatch):
    path = _filled_store(tmp_path / "s.sqlite")
    if IS_ROOT:
        import builtins

        import srbench.store as S

        def denied(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
            return builtins.open(file, *args, **kwargs)

        monkeypatch.setattr(S, "open", denied, raising=False)
    else:
        path.chmod(0)
    try:
        with pytest.raises(StoreError) as info:
            Store.open_existing(path)
        assert str(info.value) == f"cannot read results store {path}: Permission denied"
    finally:
        path.chmod(0o644)


def test_an_empty_file_is_a_new_store_for_writers_only(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match=r"is not an SQLite database \(an empty file\)"):
        Store.open_existing(path)
    assert path.read_bytes() == b""
    with Store(path) as store:
        assert store.runs() == []
    assert Store.open_existing(path).all_values() == []


def test_store_paths_with_uri_characters_work(tmp_path):
    path = tmp_path / "a b%20?c#d" / "s.sqlite"
    _filled_store(path)
    with Store.open_existing(path) as store:
        assert len(store.all_values()) == 600


# -- item 12: read-only commands never create a store ----------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["results"], ["table", "--suite", "mini"], ["pirm-plane", "--suite", "mini", "--dataset", "set"],
    ["export", "--format", "csv"],
])
def test_read_only_commands_never_create_a_store(tmp_path, command):
    missing = tmp_path / "typo" / "new.sqlite"
    args = [*command, "--store", missing]
    if command[0] in ("export", "pirm-plane"):
        args += ["--out", tmp_path / "outs" / ("x.csv" if command[0] == "export" else "x.png")]
    res = _cli(*args)
    _one_error_line(res, f"no results store at {missing} (srbench ablate or srbench evaluate --store create one)")
    assert not (tmp_path / "typo").exists() and not (tmp_path / "outs").exists()
    # The default store (SRBENCH_STORE) is not created either.
    default = tmp_path / "default" / "srbench.sqlite"
    res = _cli(*[a for a in args if a not in ("--store", missing)], env={"SRBENCH_STORE": str(default)})
    _one_error_line(res, f"no results store at {default}")
    assert not default.parent.exists()


def test_read_only_commands_read_an_existing_store_without_changing_it(tmp_path):
    path = _filled_store(tmp_path / "s.sqlite")
    before = path.read_bytes()
    res = _cli("results", "--store", path)
    assert res.exit_code == 0, res.output
    assert f"{path}: 0 runs, 600 per-image values" in res.stdout
    res = _cli("export", "--store", path, "--per-image", "--out", tmp_path / "e" / "all.csv")
    assert res.exit_code == 0, res.output
    exported = pd.read_csv(tmp_path / "e" / "all.csv")
    assert len(exported) == 600 and set(exported["metric"]) == {"rmse", "niqe"}
    res = _cli("export", "--store", path, "--per-image", "--format", "parquet", "--out", tmp_path / "e" / "all.parquet")
    assert res.exit_code == 0, res.output
    parquet = pd.read_parquet(tmp_path / "e" / "all.parquet")
    assert list(parquet.columns) == list(exported.columns) and len(parquet) == len(exported)
    assert path.read_bytes() == before


def test_export_into_an_unwritable_folder_fails_in_one_line(tmp_path, read_only_dir):
    folder, reason = read_only_dir
    path = _filled_store(tmp_path / "s.sqlite")
    for fmt in ("csv", "parquet"):
        res = _cli("export", "--store", path, "--format", fmt, "--out", folder / f"all.{fmt}")
        _one_error_line(res, f"cannot write to {folder}: {reason}")
    assert sorted(p.name for p in folder.iterdir()) == ["old.txt"]


def test_check_update_checks_the_baseline_folder_before_computing(tmp_path, monkeypatch):
    import srbench.check as C

    def must_not_compute(*args, **kwargs):
        raise AssertionError("computed the reference values before checking where they go")

    monkeypatch.setattr(C, "run_spec", must_not_compute)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    res = _cli("check", "--update", "--baseline", blocker / "b.json")
    assert res.exit_code == 2  # srbench check: could not run
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: cannot write to {blocker}: it is a file, not a folder"]


# -- item 11: ablate checks the store and every output location before training --------------------------------


SUITE = """
name = "tiny"
[[variants]]
name = "one"
training = "esrgan"
"""


@pytest.fixture
def no_training(monkeypatch):
    import srbench.train as T

    def must_not_train(self, *args, **kwargs):
        raise AssertionError("training started before the store and outputs were checked")

    monkeypatch.setattr(T.Trainer, "run", must_not_train)


def test_ablate_with_a_bad_store_fails_before_training(tmp_path, no_training):
    (tmp_path / "tiny.toml").write_text(SUITE)
    bad = tmp_path / "notes.sqlite"
    bad.write_text("my notes, not a database\n")
    res = _cli("ablate", "--suite", tmp_path / "tiny.toml", "--store", bad, "--out", tmp_path / "report",
               "--device", "cpu")
    _one_error_line(res, f"results store {bad} is not an SQLite database (a text file)")
    assert not any(line.startswith("training") for line in res.stderr.splitlines())
    assert bad.read_text() == "my notes, not a database\n"


def test_ablate_with_unwritable_outputs_fails_before_training(tmp_path, no_training):
    (tmp_path / "tiny.toml").write_text(SUITE)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    common = ["ablate", "--suite", tmp_path / "tiny.toml", "--store", tmp_path / "s.sqlite", "--device", "cpu"]
    res = _cli(*common, "--out", blocker / "report")
    _one_error_line(res, f"cannot write to {blocker / 'report'}: {blocker} is a file, not a folder")
    report = tmp_path / "report"
    report.mkdir()
    (report / "runs").write_text("")  # the runs folder is blocked, the report folder is fine
    res = _cli(*common, "--out", report)
    _one_error_line(res, f"cannot write to {report / 'runs' / 'smoke'}: {report / 'runs'} is a file, not a folder")
    assert not (tmp_path / "s.sqlite").exists()  # nothing was started: not even the store


# -- item 13: one trainer per run folder -------------------------------------------------------------------------


HOLDER = textwrap.dedent("""
    import sys, time
    from srbench.train import lock_run_folder
    with lock_run_folder(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def _start_holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _tiny_train_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "srbench", "train", "--variant", "rrdb23-smoke", "--stage", "psnr", "--preset",
            "smoke", "--iters", "2", "--device", "cpu", "--out", str(out), "--set", "data.batch_size=2", *extra]


def test_a_second_trainer_fails_at_once_naming_the_holder(tmp_path):
    import socket

    from srbench.train import lock_run_folder

    run = tmp_path / "run"
    (run / "psnr").mkdir(parents=True)
    (run / "psnr/config.json").write_text("the holder's config\n")
    (run / "psnr/log.csv").write_text("iteration,l_pix\n1,0.5\n")
    holder = _start_holder(run)
    try:
        proc = subprocess.run(_tiny_train_cmd(run), capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 1, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {run} is in use by pid {holder.pid} on {socket.gethostname()} since "), last
        assert last.endswith(f"(-c {run}); wait for it or use another --out"), last
        assert "Traceback" not in proc.stderr
        assert (run / "psnr/config.json").read_text() == "the holder's config\n"
        assert (run / "psnr/log.csv").read_text() == "iteration,l_pix\n1,0.5\n"
        assert sorted(p.name for p in (run / "psnr").iterdir()) == ["config.json", "log.csv"]
        with pytest.raises(RunInUseError, match=f"pid {holder.pid}"), lock_run_folder(run):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    # kill -9 released it: the kernel drops an flock with its process.
    with lock_run_folder(run) as locked:
        assert locked == run
        info = json.loads((run / ".srbench.lock").read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()


def test_trainer_holds_the_lock_for_the_whole_run_and_releases_it(tmp_path):
    from srbench.train import Trainer, lock_run_folder
    from srbench.train.config import resolve_config

    cfg = resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", "psnr.iters=3", "psnr.val_every=100"])
    seen = []

    def try_lock(iteration, logs):
        try:
            with lock_run_folder(tmp_path):
                seen.append("free")
        except RunInUseError as exc:
            seen.append(str(exc))

    result = Trainer(cfg, "psnr", tmp_path, progress=False).run(on_iteration=try_lock)
    assert result.iterations == 3 and len(seen) == 3
    assert all(s.startswith(f"{tmp_path} is in use by pid {os.getpid()} on ") for s in seen), seen
    with lock_run_folder(tmp_path):  # released after a normal finish
        pass
    assert (tmp_path / ".srbench.lock").read_text() == ""  # no stale holder details
    with lock_run_folder(tmp_path), pytest.raises(RunInUseError, match="wait for it or use another --out"):
        Trainer(cfg, "psnr", tmp_path, progress=False).run(resume=True)


# -- a finished run can be extended: --resume --iters N ----------------------------------------------------------


def _train_cli(out: Path, iters: int | None, *extra: str):
    # milestones=[5]: the learning rate halves between the two lengths, so the schedule must carry over too.
    return _cli("train", "--variant", "rrdb23-smoke", "--stage", "psnr", "--preset", "smoke", "--device", "cpu",
                "--out", out, *(["--iters", iters] if iters else []), "--set", "data.batch_size=2",
                "--set", "psnr.milestones=[5]", "--set", "psnr.val_every=100", *extra)


def test_resume_with_more_iters_extends_a_finished_run_bitwise(tmp_path):
    res = _train_cli(tmp_path / "once", 6)
    assert res.exit_code == 0, res.output
    res = _train_cli(tmp_path / "twice", 4)
    assert res.exit_code == 0 and "4 iterations" in res.stdout, res.output
    res = _train_cli(tmp_path / "twice", 6, "--resume")
    assert res.exit_code == 0, res.output
    assert "6 iterations" in res.stdout
    once = load_file(tmp_path / "once/psnr/g_final.safetensors")
    twice = load_file(tmp_path / "twice/psnr/g_final.safetensors")
    assert once.keys() == twice.keys()
    for key in once:
        assert torch.equal(once[key], twice[key]), key
    a = torch.load(tmp_path / "once/psnr/state.pt", weights_only=True)
    b = torch.load(tmp_path / "twice/psnr/state.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 6 and a["config"] == b["config"]
    assert a["sched_g"]["_last_lr"] == b["sched_g"]["_last_lr"] == [2.5e-4]
    assert json.loads((tmp_path / "twice/psnr/g_final.json").read_text())["iteration"] == 6
    assert json.loads((tmp_path / "twice/psnr/config.json").read_text())["psnr"]["iters"] == 6


def test_resume_cannot_shorten_a_run_or_change_anything_but_iters(tmp_path):
    assert _train_cli(tmp_path, 4).exit_code == 0
    state = (tmp_path / "psnr/state.pt").read_bytes()
    res = _train_cli(tmp_path, 3, "--resume")
    _one_error_line(res, f"--iters 3: {tmp_path / 'psnr/state.pt'} is already at iteration 4 and a run cannot be "
                         f"shortened; use --iters 4 or more")
    res = _train_cli(tmp_path, 8, "--resume", "--set", "psnr.lr=1e-3", "--seed", "3")
    line = _one_error_line(res, "written with another configuration (psnr.lr: 0.0005 there, 0.001 now; "
                                "seed: 0 there, 3 now); resume with the same options (only psnr.iters may change")
    assert "psnr.iters:" not in line
    assert (tmp_path / "psnr/state.pt").read_bytes() == state


def test_resume_without_iters_keeps_the_runs_own_length(tmp_path):
    """Not the preset's 400: an interrupted --iters 4 run resumed without --iters must not become 100x longer."""
    assert _train_cli(tmp_path, 4).exit_code == 0
    before = load_file(tmp_path / "psnr/g_final.safetensors")
    for iters in (4, None):
        res = _train_cli(tmp_path, iters, "--resume")
        assert res.exit_code == 0 and "psnr: 4 iterations" in res.stdout, res.output
    after = load_file(tmp_path / "psnr/g_final.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_lock_is_free_again_soon_after_a_killed_trainer(tmp_path):
    """A real trainer killed with -9 mid-run leaves no lock behind: the next --resume proceeds."""
    out = tmp_path / "run"
    cmd = _tiny_train_cmd(out, "--set", "psnr.checkpoint_every=2",
                          "--set", "psnr.val_every=100000")
    cmd[cmd.index("--iters") + 1] = "100000"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (out / "psnr/state.pt").is_file():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    from srbench.train import lock_run_folder

    with lock_run_folder(out):
        pass


def test_the_recorded_commit_says_when_the_packages_code_differs_from_it(tmp_path, monkeypatch):
    from srbench import provenance

    checkout = tmp_path / "checkout"
    (checkout / "srbench").mkdir(parents=True)
    (checkout / "srbench" / "provenance.py").write_text("# the package\n")
    (checkout / "README.md").write_text("readme\n")
    git = ["git", "-C", str(checkout), "-c", "user.email=t@t", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "c"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    monkeypatch.setattr(provenance, "__file__", str(checkout / "srbench" / "provenance.py"))

    def commit() -> str | None:
        provenance.git_commit.cache_clear()  # asked once per process otherwise
        return provenance.git_commit()

    try:
        assert commit() == head
        (checkout / "README.md").write_text("edited\n")  # outside the package: the numbers' code is the commit's
        assert commit() == head
        (checkout / "srbench" / "provenance.py").write_text("# edited\n")
        assert commit() == head + "-dirty"
    finally:
        monkeypatch.undo()
        provenance.git_commit.cache_clear()
