"""Defaults of an installed package (no checkout around srbench): user folders, never site-packages (issue 25,
item 4); a checkout keeps its own datasets/, models/ and reports/."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from srbench import paths
from srbench.manifests import add_copy, load_manifests

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("SRBENCH_DATA", "SRBENCH_MODELS", "SRBENCH_REPORTS", "SRBENCH_STORE", "SRBENCH_TRAINING_CACHE",
            "SRBENCH_WEIGHTS", "SRBENCH_CACHE")


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """srbench as a wheel puts it: its parent folder (site-packages) has no pyproject.toml; XDG_CACHE_HOME and
    the working folder are the test's."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.setattr(paths, "PROJECT_ROOT", site)
    monkeypatch.setattr(paths, "DATASETS_DIR", site / "datasets")
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_installed_defaults_are_the_users_folders(installed):
    cache, work = installed / "xdg" / "srbench", installed / "work"
    assert not paths.in_checkout()
    assert paths.data_roots() == [cache / "datasets"]
    assert paths.models_dir() == cache / "models"
    assert paths.manifests_dir() == cache / "manifests"
    assert paths.reports_dir() == work / "srbench-reports"
    assert paths.store_path() == work / "srbench-reports" / "srbench.sqlite"
    assert paths.training_cache_dir() == work / "srbench-reports" / "training-cache"
    assert paths.weights_dir() == cache / "weights" and paths.downloads_dir() == cache / "downloads"


def test_a_pyproject_of_another_project_is_not_a_checkout(installed):
    (installed / "site-packages" / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    assert not paths.in_checkout()
    assert paths.data_roots() == [installed / "xdg" / "srbench" / "datasets"]


def test_a_checkout_keeps_its_own_folders(installed, monkeypatch):
    checkout = installed / "checkout"
    checkout.mkdir()
    (checkout / "pyproject.toml").write_text('[project]\nname = "srbench"\n')
    monkeypatch.setattr(paths, "PROJECT_ROOT", checkout)
    monkeypatch.setattr(paths, "DATASETS_DIR", checkout / "datasets")
    assert paths.in_checkout()
    assert paths.data_roots() == [checkout / "datasets"]
    assert paths.models_dir() == checkout / "models"
    assert paths.reports_dir() == checkout / "reports"
    assert paths.manifests_dir() == paths.MANIFESTS_DIR
    assert paths.in_checkout(ROOT)  # this test's own checkout


def test_settings_still_win_over_the_installed_defaults(installed, monkeypatch):
    monkeypatch.setenv("SRBENCH_REPORTS", str(installed / "r"))
    monkeypatch.setenv("SRBENCH_DATA", str(installed / "d"))
    assert paths.reports_dir() == installed / "r" and paths.data_roots() == [installed / "d"]
    assert paths.reports_dir(installed / "x") == installed / "x"


def test_installed_manifests_are_read_from_the_package_and_recorded_in_the_user_cache(installed, tmp_path):
    known = json.loads((paths.MANIFESTS_DIR / "set5.json").read_text())
    assert load_manifests()["set5"] == known
    copy = tmp_path / "copy"
    copy.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8), (10, 20, 30)).save(copy / "a.png")
    before = {p.name: p.read_bytes() for p in paths.MANIFESTS_DIR.iterdir()}
    written = add_copy(copy, "set5", "mine", "a test")
    assert written == installed / "xdg" / "srbench" / "manifests" / "set5.json"
    assert {p.name: p.read_bytes() for p in paths.MANIFESTS_DIR.iterdir()} == before  # the package untouched
    ids = [c["id"] for c in load_manifests()["set5"]["copies"]]
    assert ids == sorted([c["id"] for c in known["copies"]] + ["mine"])  # srbench's copies kept, the user's added


def test_installed_check_update_refuses_to_write_the_packaged_baseline(installed):
    from srbench.check import DEFAULT_BASELINE
    from srbench.cli import main

    before = DEFAULT_BASELINE.read_bytes()
    result = CliRunner().invoke(main, ["check", "--update"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: cannot update {DEFAULT_BASELINE}: it is srbench's own, inside the installed package; write yours "
        "with --baseline FILE (or a --spec naming its baseline); nothing was written"]
    assert DEFAULT_BASELINE.read_bytes() == before


def test_every_file_srbench_reads_at_run_time_is_package_data():
    """Manifests, the drift baseline, suites, published tables: each under srbench/data or srbench/ablate/suites must be
    matched by [tool.setuptools.package-data], or an installed srbench lacks it."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["srbench"]
    package = ROOT / "srbench"
    files = [p.relative_to(package).as_posix() for folder in ("data", "ablate/suites")
             for p in (package / folder).rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert {"data/manifests/set5.json", "data/baselines/default.json", "ablate/suites/esrgan.toml"} <= set(files)
    unmatched = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert unmatched == []
