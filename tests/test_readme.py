"""The README stays short and true: its commands run (here, or in .ci/run), its printed table is what srbench
prints, its commands table is the CLI's, its Python block runs, its links lead somewhere, and the details it
moved to docs/ are still stated there as the code does them."""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from srbench.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
FIRST = "srbench evaluate --model bicubic --dataset skimage"


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", _text(), flags=re.DOTALL | re.MULTILINE)


def _commands() -> list[str]:
    """Each command of the README's shell blocks (``a && b`` is two), without its comment."""
    return [part.strip() for block in _blocks("sh") for line in block.splitlines() if line.split(" #")[0].strip()
            for part in line.split(" #")[0].split("&&")]


def _section(title: str) -> str:
    return _text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _fresh_env() -> dict[str, str]:
    """A new user's environment: none of srbench's settings; the srbench these tests import."""
    import srbench

    env = {k: v for k, v in os.environ.items() if not k.startswith("SRBENCH_")}
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(srbench.__file__).parent.parent),
                                                               env.get("PYTHONPATH")]))}


def test_the_readme_is_at_most_120_lines():
    assert len(_text().splitlines()) <= 120


def test_every_local_link_of_the_readme_and_of_docs_exists():
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if path and not re.match(r"[a-z]+://", path):
                assert (page.parent / path).exists(), f"{page.name} links to {target}, which does not exist"


def _ci_commands() -> list[list[str]]:
    """.ci/run's command lines as words, pip's quiet flag left out."""
    lines = [line.strip() for line in CI.read_text(encoding="utf-8").splitlines()]
    return [[w for w in shlex.split(line) if w != "-q"] for line in lines if line and not line.startswith("#")]


def _run_by_ci(command: str) -> bool:
    words = shlex.split(command)
    return any(line[i: i + len(words)] == words for line in _ci_commands() for i in range(len(line)))


def test_every_readme_command_is_run_by_this_file_or_by_ci():
    commands = _commands()
    assert FIRST in commands and "srbench ablate --suite esrgan" in commands
    for command in commands:
        if command == FIRST:
            continue  # run below, its output compared with the README's
        if command.startswith("git clone ") or command == "cd srbench":
            continue  # .ci/run runs in such a clone
        assert _run_by_ci(command), f"README command not run by a test or by .ci/run: {command}"


def test_the_first_result_prints_the_readme_table_digit_for_digit(tmp_path):
    (printed,) = re.findall(rf"```sh\n{re.escape(FIRST)}\n```\n\n```text\n(.*?)```", _text(), flags=re.DOTALL)
    done = subprocess.run([sys.executable, "-m", "srbench", *shlex.split(FIRST)[1:]], cwd=tmp_path,
                          env=_fresh_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # The terminal shows the table (stdout), then the note (stderr).
    assert done.stdout + done.stderr == printed
    assert not list(tmp_path.iterdir())  # a first evaluation writes nothing where it runs


def test_the_commands_table_is_the_cli_and_every_command_has_help():
    listed = re.findall(r"`srbench ([a-z-]+)`", _section("Commands"))
    assert sorted(listed) == sorted(main.commands), "the README's commands table differs from `srbench --help`"
    runner = CliRunner()
    for name in listed:
        done = runner.invoke(main, [name, "--help"])
        assert done.exit_code == 0 and done.output.startswith("Usage: "), name
    for command in _commands():
        if command.startswith("srbench "):
            assert shlex.split(command)[1] in main.commands, command


def test_the_python_block_runs_and_gives_the_readme_numbers(tmp_path, monkeypatch):
    import srbench

    (block,) = _blocks("python")
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("SRBENCH_")]:
        monkeypatch.delenv(name)
    # The store the block reads is the main job's; one bicubic evaluation labelled like it stands in here.
    stored = CliRunner().invoke(main, [*shlex.split(FIRST)[1:], "--store", "srbench-reports/srbench.sqlite",
                                       "--suite", "esrgan"])
    assert stored.exit_code == 0, stored.output
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    summary = scope["res"].summary.set_index("metric")["value"]
    assert f"{summary['psnr_y']:.2f}" == "28.19" and f"{summary['ssim_y']:.4f}" == "0.8035"  # the README's table
    assert isinstance(scope["store"], srbench.Results)
    stored_psnr = scope["store"].summary.set_index("metric")["value"]["psnr_y"]
    assert stored_psnr == summary["psnr_y"]
    hr = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    assert math.isinf(scope["psnr"](hr, hr))  # PSNR of an image with itself
    for name in ("Results", "MetricFunction", "evaluate", "results", "metric"):
        assert f"srbench.{name}" in _text()


def test_the_results_page_states_the_one_json_rule_the_code_applies():
    """The rule the README used to state, now in docs/results.md, is what srbench writes."""
    from srbench.jsonnum import json_number
    from srbench.report import format_value

    rule = " ".join((ROOT / "docs" / "results.md").read_text(encoding="utf-8").split())
    assert json_number(math.inf) == "inf" and 'JSON has it as the string `"inf"`' in rule
    assert json_number(-math.inf) == "-inf" and '(`"-inf"` for minus infinity)' in rule
    assert json_number(math.nan) is None and "`null` in JSON" in rule
    assert format_value(math.inf, 2, "csv") == "inf" and "CSV as `inf`" in rule
    assert format_value(math.inf, 2, "markdown") == "∞" and "Markdown tables as `∞`" in rule
    assert format_value(math.inf, 2, "latex") == "$\\infty$" and "LaTeX as `$\\infty$`" in rule


def _tree() -> dict[str, str]:
    """The README's tree of what the main job writes: path (folders end in /) -> its description."""
    # Its root is the installed default, srbench-reports/ (SRBENCH_REPORTS's folder; a checkout's reports/): "reports/".
    (tree,) = [block for block in _blocks("text") if block.startswith("srbench-reports/ ")]
    entries, parents = {}, ["reports/"]
    for line in tree.splitlines()[1:]:
        depth = (len(line) - len(line.lstrip("│ ├└─"))) // 4
        name, _, about = line.lstrip("│ ├└─").partition("  ")
        del parents[depth:]
        for each in name.split(", "):
            entries["".join(parents) + each] = about.strip()
        parents.append(name)
    return entries


@pytest.mark.slow
def test_the_main_job_writes_the_readme_tree(tmp_path, monkeypatch):
    """An esrgan-named suite of one variant, trained for two iterations per stage, with an interpolation: the
    report holds exactly the files the README's tree lists, beside the store and the training cache."""
    for name in [k for k in os.environ if k.startswith("SRBENCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SRBENCH_REPORTS", str(tmp_path / "reports"))
    tiny = "iters = 2, milestones = [1], val_every = 2, checkpoint_every = 2"
    (tmp_path / "suite.toml").write_text(
        f'name = "esrgan"\nbaselines = ["bicubic"]\n[[variants]]\nname = "esrgan"\n'
        f'training = {{ variant = "srgan-nobn", psnr = {{ {tiny} }}, gan = {{ {tiny} }} }}\n'
        '[interpolation]\nvariant = "esrgan"\nalphas = [0.0, 0.2]\n')
    done = CliRunner().invoke(main, ["ablate", "--suite", str(tmp_path / "suite.toml"), "--device", "cpu",
                                     "--jobs", "1"])
    assert done.exit_code == 0, done.output
    tree = _tree()
    reports = tmp_path / "reports"
    assert {p for p in tree if p.count("/") == 1 or (p.count("/") == 2 and p.endswith("/"))} == {
        "reports/srbench.sqlite", "reports/training-cache/", "reports/esrgan/"}
    assert (reports / "srbench.sqlite").is_file() and any((reports / "training-cache").iterdir())
    report = reports / "esrgan"
    listed = {p.removeprefix("reports/esrgan/").split("/")[0] for p in tree if p.startswith("reports/esrgan/")
              and p != "reports/esrgan/"}
    written = {p.name for p in report.iterdir() if not p.name.startswith(".")}
    assert written == listed, "the main job's report differs from the README's tree"
    (interp,) = [about for p, about in tree.items() if p.startswith("reports/esrgan/interp/")]
    example = interp.split()[0]  # the file of the interpolated variant at the second alpha
    assert (report / "interp" / "smoke" / example).is_file(), example
    (runs,) = [about for p, about in tree.items() if p.startswith("reports/esrgan/runs/")]
    for stage in ("psnr", "gan"):
        assert f"{stage}/" in runs
        for file in runs.split(": ", 1)[1].split(", "):
            assert (report / "runs" / "smoke" / "esrgan" / stage / file).is_file(), (stage, file)
