"""A plain ``pip install srbench`` needs no non-commercial package (issue 25, item 3).

The core requirements are read from the installed srbench distribution (CI installs it) and from pyproject.toml
(a checkout run without installing it); extras are left out. Every installed distribution they pull in, directly
or through another's requirements, is checked: its License, License-Expression and licence classifiers must not
declare a non-commercial licence (pyiqa's PolyForm-Noncommercial-1.0.0 is the one that was a dependency).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterable
from email.message import Message
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
NON_COMMERCIAL = re.compile(r"non[-_ ]?commercial|\bBY-NC\b|\bNC-(?:SA|ND)\b", re.IGNORECASE)


def non_commercial(meta: Message) -> str | None:
    """The licence declaration of a distribution's metadata that says non-commercial, or None.

    License-Expression (SPDX, metadata 2.4) and the ``License ::`` classifiers are read whole; License is free text,
    sometimes a licence's whole text (scipy's bundles the GPL's, whose "noncommercially" grants nothing): its first
    line, the declaration or the licence's title, is read."""
    licence = next((line for line in (meta.get("License") or "").splitlines() if line.strip()), "")
    fields = [("License", licence), ("License-Expression", meta.get("License-Expression") or "")]
    fields += [("Classifier", c) for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    for key, value in fields:
        found = NON_COMMERCIAL.search(value)
        if found:
            return f"{key}: {value.strip().splitlines()[0][:100]}"
    return None


def _core(requirements: Iterable[str]) -> list[Requirement]:
    """The requirements that apply without any extra (their markers evaluated here)."""
    out = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(req)
    return out


def core_requirements() -> list[Requirement]:
    """srbench's core requirements: the installed distribution's, where srbench is installed, and pyproject.toml's
    (both where both exist: a stale install must not hide a change)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = _core(project["dependencies"])
    with contextlib.suppress(metadata.PackageNotFoundError):
        found += _core(metadata.requires("srbench") or [])
    return found


def closure(requirements: Iterable[Requirement]) -> tuple[dict[str, metadata.Distribution], set[str]]:
    """Every installed distribution the requirements pull in (name -> distribution), and the names not installed
    here."""
    seen: dict[str, metadata.Distribution] = {}
    missing: set[str] = set()
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or name in missing:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.add(name)
            continue
        seen[name] = dist
        todo += _core(dist.requires or [])
    return seen, missing


def test_no_core_dependency_declares_a_non_commercial_licence():
    requirements = core_requirements()
    names = {canonicalize_name(r.name) for r in requirements}
    assert {"torch", "numpy", "lpips", "torch-fidelity"} <= names and "pyiqa" not in names
    installed, missing = closure(requirements)
    assert "pyiqa" not in installed, "a core dependency pulls in pyiqa"
    flagged = {name: why for name, dist in installed.items() if (why := non_commercial(dist.metadata))}
    assert flagged == {}
    if missing:  # only where srbench is not installed (pip installs them all with it)
        pytest.skip(f"not installed here, so their licences were not read: {', '.join(sorted(missing))}")


@pytest.mark.parametrize(("fields", "caught"), [
    ({"License-Expression": "PolyForm-Noncommercial-1.0.0"}, "License-Expression: PolyForm-Noncommercial-1.0.0"),
    ({"License": "CC-BY-NC-4.0"}, "License: CC-BY-NC-4.0"),
    ({"License": "Free for non-commercial use\nsee LICENSE"}, "License: Free for non-commercial use"),
    ({"Classifier": "License :: Free for non-commercial use"}, "Classifier: License :: Free for non-commercial use"),
    ({"License-Expression": "MIT"}, None),
    ({"License": "BSD-3-Clause", "Classifier": "License :: OSI Approved :: BSD License"}, None),
    ({"License-Expression": "CC-BY-SA-4.0"}, None),
])
def test_the_checker_catches_non_commercial_declarations(fields, caught):
    meta = Message()
    for key, value in fields.items():
        meta[key] = value
    assert non_commercial(meta) == caught


def test_pyiqas_own_metadata_is_caught_where_it_is_installed():
    """The licence that made pyiqa an extra: its wheels declare PolyForm-Noncommercial-1.0.0."""
    try:
        meta = metadata.metadata("pyiqa")
    except metadata.PackageNotFoundError:
        pytest.skip("pyiqa is not installed")
    assert non_commercial(meta) is not None


# Runs in a fresh interpreter where ``import pyiqa`` fails as if it were not installed.
NO_PYIQA = textwrap.dedent("""
    import importlib.abc, sys

    class NoPyiqa(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "pyiqa" or name.startswith("pyiqa."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoPyiqa())
    import json, srbench, srbench.cli
    from click.testing import CliRunner

    args = ["evaluate", "--model", "bicubic", "--dataset", "skimage", "--protocol", "pirm", *sys.argv[1:]]
    result = CliRunner().invoke(srbench.cli.main, args)
    print(json.dumps({"exit": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
                      "pyiqa": sorted(m for m in sys.modules if m.split(".")[0] == "pyiqa")}))
""")


def _without_pyiqa(weights: Path, *args: str) -> dict:
    import json
    import os

    # The test's NRQM model is not the published file, whose sha256 srbench pins.
    env = {**os.environ, "SRBENCH_WEIGHTS": str(weights), "SRBENCH_ALLOW_UNPINNED_WEIGHTS": "1"}
    done = subprocess.run([sys.executable, "-c", NO_PYIQA, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_evaluate_under_pirm_needs_no_pyiqa_and_lpips_vgg_says_which_extra_in_one_line(tmp_path):
    from test_evaluate import _fake_nrqm_model  # Ma (in pirm's default set) needs its model file

    _fake_nrqm_model(tmp_path / "NRQM_model.mat")
    plain = _without_pyiqa(tmp_path)
    assert plain["exit"] == 0 and plain["pyiqa"] == [], plain
    assert "skimage" in plain["stdout"] and "pi" in plain["stdout"].lower()
    lpips = _without_pyiqa(tmp_path, "--metrics", "lpips_vgg")
    assert lpips["exit"] == 1 and lpips["pyiqa"] == []
    assert lpips["stderr"].strip().splitlines() == [
        'error: lpips_vgg needs pyiqa, which is not installed: pip install "srbench[pyiqa]" adds it (pyiqa\'s '
        "licence: PolyForm-Noncommercial-1.0.0, non-commercial use only)"], lpips


def test_install_doc_tables_every_core_and_extra_dependency():
    """docs/install.md's licence tables name every requirement of pyproject.toml, core and extras alike."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {canonicalize_name(Requirement(r).name) for r in extra}
    doc = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    tabled = {canonicalize_name(name.strip()) for row in re.findall(r"^\| ([\w., -]+?) \|", doc, flags=re.MULTILINE)
              for name in row.split(",")}
    assert declared - tabled == set()
    assert "| pyiqa | **PolyForm-Noncommercial-1.0.0**" in doc
