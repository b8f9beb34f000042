"""Ma's score as it was at commit 53014ee (before issue 24), loaded from git for side-by-side timing.

Not part of the package: the old ``nrqm`` module (and the ``nss`` and ``matlab`` modules it imports) are read
with ``git show`` and executed as private modules, so the benchmark times the old and the new code in one
process on the same inputs. Needs the repository's history (a full clone).
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

OLD_COMMIT = "53014ee"
ROOT = Path(__file__).resolve().parent.parent
# Imported by the old nrqm.py, in dependency order: each is loaded under a private name and the later modules'
# imports of it are pointed there.
_MODULES = (("srbench.matlab", "srbench/matlab.py"), ("srbench.metrics.nss", "srbench/metrics/nss.py"),
            ("srbench.metrics.nrqm", "srbench/metrics/nrqm.py"))


def _source(path: str, commit: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def load_old_nrqm(commit: str = OLD_COMMIT) -> types.ModuleType:
    """The ``srbench.metrics.nrqm`` module of ``commit`` with its own ``nss`` and ``matlab``."""
    tag = f"_ma_{commit}_"
    loaded: dict[str, str] = {}
    module = None
    for name, path in _MODULES:
        private = tag + name.rsplit(".", 1)[1]
        if private in sys.modules:
            module = sys.modules[private]
        else:
            src = _source(path, commit)
            for original, replacement in loaded.items():
                src = src.replace(f"from {original} import", f"from {replacement} import")
            module = types.ModuleType(private)
            module.__file__ = f"{commit}:{path}"
            sys.modules[private] = module  # dataclasses look their module up while the class is made
            exec(compile(src, module.__file__, "exec"), module.__dict__)
        loaded[name] = private
    assert module is not None
    return module
