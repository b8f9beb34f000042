"""The habits of a maintained package: one version, declared dependencies, a license that matches."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import srbench

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Import name -> distribution name, where they differ.
DISTRIBUTION = {"PIL": "pillow", "skimage": "scikit-image", "cv2": "opencv-python-headless", "yaml": "pyyaml",
                "torch_fidelity": "torch-fidelity"}
# Imported only under contextlib.suppress(ImportError), to switch it off where it is installed.
OPTIONAL = {"huggingface_hub"}


def _names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        for stop in "<>=!~[; ":
            requirement = requirement.split(stop)[0]
        names.add(requirement.strip().lower())
    return names


def _declared() -> set[str]:
    """The core dependencies and the users' extras (not dev: a user never installs it)."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    return _names(PYPROJECT["project"]["dependencies"]).union(*(_names(v) for k, v in extras.items() if k != "dev"))


def _imported_top_level() -> set[str]:
    found = set()
    for path in (ROOT / "srbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"srbench", "__future__"}


def test_every_imported_package_is_declared():
    missing = sorted(DISTRIBUTION.get(m, m).lower() for m in _imported_top_level() - OPTIONAL
                     if DISTRIBUTION.get(m, m).lower() not in _declared())
    assert missing == [], f"imported by srbench but not in pyproject dependencies: {missing}"


def test_pyiqa_is_an_extra_that_dev_includes_and_no_core_dependency():
    """pyiqa's wheels are licensed PolyForm-Noncommercial-1.0.0: a plain install must not bring it (issue 25)."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "pyiqa" not in _names(PYPROJECT["project"]["dependencies"])
    assert extras["pyiqa"] == ["pyiqa"] and "pyiqa" in _names(extras["dev"])


def test_version_has_one_source():
    assert PYPROJECT["project"]["dynamic"] == ["version"] and "version" not in PYPROJECT["project"]
    assert metadata.version("srbench") == srbench.__version__


def test_license_file_matches_the_declared_license():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")
    assert (ROOT / "srbench" / "py.typed").is_file()


def test_changelog_lists_every_current_metric_version():
    from srbench.metrics.builtin import BUILTIN

    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    unreleased = changelog.split("## Unreleased", 1)[1].split("\n## ", 1)[0]
    for spec in BUILTIN:  # the metrics srbench ships (tests register others of their own)
        assert f"{spec.name} `{spec.version}`" in unreleased, f"CHANGELOG does not record {spec.name} {spec.version}"
