"""srbench: MATLAB-exact super-resolution metrics under named protocols.

From Python: ``srbench.evaluate(model, datasets, protocol="sr")`` returns :class:`srbench.Results` (pandas
``summary`` and ``per_image``, ``table()``, ``plane()``, ``compare()``); ``srbench.results(store)`` reads a results
store; ``srbench.evaluate_tree(tree)`` evaluates a tree of released results ``<method>/<dataset>/x<scale>/``;
``srbench.metric(name)`` is any registered metric as a function of images. They are loaded on first use
(``srbench.api``): ``import srbench`` imports neither torch, pyiqa, pandas nor matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from srbench.version import __version__

__all__ = ["MetricFunction", "Results", "__version__", "evaluate", "evaluate_tree", "metric", "results"]

if TYPE_CHECKING:
    from srbench.api import MetricFunction, Results, evaluate, evaluate_tree, metric, results

_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from srbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'srbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
