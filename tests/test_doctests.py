"""The docstring examples of the public API and of each metric function run as doctests (issue 22): every listed
object must have examples (so this cannot pass on docstrings that lost theirs) and every example must print what
it shows. They need no weights and no network: where a metric needs a weights file, its example shows the error
naming it, or the tests' stand-in."""

from __future__ import annotations

import doctest
import importlib

import pytest

# module -> the objects in it whose docstrings must carry examples ("" is the module's own docstring)
EXAMPLES = {
    "srbench.api": ["evaluate", "results", "metric", "MetricFunction", "Results"],
    "srbench.jsonnum": ["json_number", "to_json", "dumps", "read_number"],
    "srbench.text": ["aligned_table"],
    "srbench.conformance": [""],
    "srbench.metrics": ["ma", "lpips", "perceptual_index"],
    "srbench.metrics.registry": ["get_metric", "register"],
    "srbench.metrics.builtin": ["perceptual_index_from"],
    "srbench.metrics.fullref": ["mse", "psnr", "ssim"],
    "srbench.metrics.niqe": ["niqe", "niqe_conditioning"],
    "srbench.metrics.nrqm": ["ma"],
    "srbench.metrics.brisque": ["brisque", "brisque_conditioning"],
    "srbench.metrics.lpips_alex": ["lpips"],
    "srbench.metrics.spectrum": ["log_spectrum_distance", "spectrum_discrepancy"],
    "srbench.metrics.fid": ["frechet_distance", "patch_positions"],
}
FLAGS = doctest.ELLIPSIS


def _tests(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_docstring_examples_exist_and_print_what_they_show(name):
    tests = _tests(name)
    found = {t.name.removeprefix(name).removeprefix(".") for t in tests}
    assert set(EXAMPLES[name]) <= found, f"{name}: no examples in {sorted(set(EXAMPLES[name]) - found)}"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
    assert result.attempted >= len(EXAMPLES[name])
