"""docs/ci.md: its GitHub Actions and GitLab CI files parse, cache the weights folder and the store, upload the
JUnit file, and their srbench commands (with the one-time ``--update`` of its bash block) run against a small
spec in a throwaway repository, as the CI would run them there."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from srbench import paths
from srbench.images import read_image, write_png
from srbench.matlab import modcrop

DOC = paths.PROJECT_ROOT / "docs" / "ci.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def _srbench_lines(commands: list[str]) -> list[list[str]]:
    out = []
    for command in commands:
        for line in command.replace("\\\n", " ").splitlines():
            if line.strip().startswith("srbench "):
                out.append(shlex.split(line.strip()))
    return out


def _workflows() -> tuple[dict, dict]:
    github, gitlab = (yaml.safe_load(text) for text in _blocks("yaml"))
    return github, gitlab


def test_the_ci_files_cache_the_weights_and_store_and_upload_the_junit_file():
    github, gitlab = _workflows()
    (job,) = github["jobs"].values()
    steps = job["steps"]
    cached = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache@")]
    assert cached and cached[0]["with"]["path"] == ".srbench"
    assert job["env"]["SRBENCH_WEIGHTS"].startswith(".srbench/")
    (check,) = _srbench_lines([s["run"] for s in steps if "run" in s])
    junit = check[check.index("--junit") + 1]
    store = check[check.index("--store") + 1]
    assert store.startswith(".srbench/")
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and junit.startswith(upload["with"]["path"])
    (gl,) = gitlab.values()
    assert ".srbench/" in gl["cache"]["paths"] and gl["variables"]["SRBENCH_WEIGHTS"].startswith(".srbench/")
    (gl_check,) = _srbench_lines(gl["script"])
    assert gl["artifacts"]["reports"]["junit"] == gl_check[gl_check.index("--junit") + 1]
    assert gl["artifacts"]["when"] == "always"


def test_the_ci_files_install_srbench_from_its_repository_not_pypis_namesake():
    # PyPI's "srbench" is another project (a self-rewarding benchmark): `pip install srbench` installs its code.
    github, gitlab = _workflows()
    (job,) = github["jobs"].values()
    (gl,) = gitlab.values()
    installs = [s["run"] for s in job["steps"] if "pip install" in s.get("run", "")] + [
        line for line in gl["script"] if "pip install" in line]
    assert installs == ['pip install "$SRBENCH_PIP"'] * 2
    for env in (job["env"], gl["variables"]):
        assert env["SRBENCH_PIP"].startswith("srbench @ git+")


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_the_documented_commands_run_against_a_small_spec(ci, tmp_path, shared_data):
    github, gitlab = _workflows()
    if ci == "github":
        (job,) = github["jobs"].values()
        env, commands = job["env"], [s["run"] for s in job["steps"] if "run" in s]
    else:
        (job,) = gitlab.values()
        env, commands = job["variables"], job["script"]
    repo = tmp_path / "repo"
    hr = read_image(shared_data / "benchmark/Set5/HR/bird.png")
    for i in range(2):
        write_png(repo / "data" / "my_set" / f"bird{i}.png", modcrop(hr[i * 40 : i * 40 + 64, :72], 4))
    (repo / "srbench-check.toml").write_text(
        'baseline = "baselines/srbench.json"\n\n[[entries]]\nmodel = "bicubic"\ndatasets = ["data/my_set"]\n'
        'metrics = ["psnr_y", "ssim_y", "rmse"]\n')
    run_env = {**os.environ, **{k: str(v) for k, v in env.items()}}
    run_env.pop("SRBENCH_STORE", None)

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "srbench", *argv[1:]], cwd=repo, env=run_env,
                              capture_output=True, text=True, timeout=300)

    (update,) = [c for c in _srbench_lines(_blocks("bash")) if "--update" in c]
    assert run(update).returncode == 0
    (check,) = _srbench_lines(commands)
    # srbench creates no folder for its reports: the documented job makes it first.
    report_dir = str(Path(check[check.index("--junit") + 1]).parent)
    assert any(f"mkdir -p {report_dir}" in line for c in commands for line in c.splitlines())
    (repo / report_dir).mkdir()
    for _attempt in range(2):  # the second run reads every value from the store the first one left
        done = run(check)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "3 of 3 read from the store" in done.stdout
    junit = ET.parse(repo / check[check.index("--junit") + 1]).getroot()
    assert junit.get("tests") == "3" and junit.get("failures") == "0"
    assert (repo / check[check.index("--markdown") + 1]).read_text().startswith("### ✅ srbench check: ok")
    assert (repo / ".srbench" / "store.sqlite").is_file()
