"""srbench's import layers: no module imports from a level above its own, and no import loop but the named one.

Every ``import`` of an srbench module is parsed with ``ast`` -- module-level and function-local, ``import x``,
``from x import y`` and relative imports alike -- because a function-local import is an arrow all the same: it
only moves the failure from import time to call time. Each module belongs to one level (``LEVELS``, bottom
first); an arrow may point to the same level or below. The levels are drawn in docs/contributing.md.

Run ``python tests/test_layers.py`` to print the counts (modules per level, arrows, upward arrows, loops,
function-local imports); ``python tests/test_layers.py --root OTHER/srbench`` counts another checkout.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SRBENCH = Path(__file__).resolve().parent.parent / "srbench"

# Bottom first. A module is placed by its longest matching prefix; every srbench module must match one.
LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", (
        "srbench.errors", "srbench.paths", "srbench.text", "srbench.downloads", "srbench.weightfiles",
        "srbench.images", "srbench.matlab", "srbench.manifests", "srbench.jsonnum", "srbench.data", "srbench.version",
    )),
    ("metrics & data", (
        "srbench.metrics", "srbench.datasets", "srbench.matching", "srbench.weights", "srbench.fetch",
        "srbench.provenance",
    )),
    ("models", (
        "srbench.archs", "srbench.checkpoints", "srbench.infer", "srbench.sources",
    )),
    ("train & evaluation", (
        "srbench.train", "srbench.protocols", "srbench.evaluation", "srbench.workers", "srbench.store",
        "srbench.stats", "srbench.published_results", "srbench.report", "srbench.plots", "srbench.check",
        "srbench.work_split", "srbench.suite_settings", "srbench.options", "srbench.many",
        "srbench.conformance",
    )),
    ("ablation", ("srbench.ablate",)),
    ("interface", ("srbench.cli", "srbench.api", "srbench.__main__", "srbench")),
)

# The one loop srbench means to have, named by its two back arrows: the metric registry fills itself with the
# built-in metrics (and builds a ``pyiqa:<name>`` metric) only when a metric is first asked for, from inside a
# function, while those modules import the registry's ``Metric`` descriptor at import time. Loading them lazily
# keeps ``import srbench.metrics`` free of torch and pyiqa and lets an outside package register its metric
# before the table is filled. Every other loop is an error; both ends of these are on the metrics level.
ALLOWED_BACK_ARROWS: dict[tuple[str, str], str] = {
    ("srbench.metrics.registry", "srbench.metrics.builtin"): "the registry loads the built-in table on first use",
    ("srbench.metrics.registry", "srbench.metrics.pyiqa_adapter"): "the registry builds pyiqa:<name> on first use",
}


@dataclass(frozen=True)
class Arrow:
    """One import of an srbench module by another, where it stands and whether it is inside a function."""

    source: str
    target: str
    line: int
    local: bool


def module_names(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name (a package by its ``__init__``)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module that ``name`` (a module or a name inside one) comes from, None outside srbench."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = here if is_package else here.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(node: ast.AST, here: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        found = [_resolve(alias.name, modules) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, here, is_package)
        # ``from srbench.metrics import fid`` imports the module srbench.metrics.fid, not only the package.
        found = [_resolve(f"{base}.{alias.name}", modules) for alias in node.names]
    else:
        return []
    return [t for t in found if t is not None and t != here]


class _Walker(ast.NodeVisitor):
    def __init__(self, here: str, is_package: bool, modules: dict[str, Path]) -> None:
        self.here, self.is_package, self.modules = here, is_package, modules
        self.depth = 0
        self.arrows: list[Arrow] = []

    def _scope(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._add(node)

    def _add(self, node: ast.Import | ast.ImportFrom) -> None:
        for target in dict.fromkeys(_targets(node, self.here, self.is_package, self.modules)):
            self.arrows.append(Arrow(self.here, target, node.lineno, self.depth > 0))


def arrows(root: Path = SRBENCH) -> list[Arrow]:
    """Every import of one srbench module by another, in source order."""
    modules = module_names(root)
    found: list[Arrow] = []
    for name, path in modules.items():
        walker = _Walker(name, path.name == "__init__.py", modules)
        walker.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found.extend(walker.arrows)
    return found


def private_imports(root: Path = SRBENCH) -> list[str]:
    """``from srbench.x import _name`` anywhere in the package, where ``x`` is another module: a module's private
    names are its own (one that another module needs gets a public name in its home module)."""
    modules = module_names(root)
    found = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = _absolute(node, name, path.name == "__init__.py")
            if _resolve(base, modules) is None:
                continue
            found += [f"{name} line {node.lineno}: from {base} import {alias.name}" for alias in node.names
                      if alias.name.startswith("_") and not alias.name.startswith("__")
                      and f"{base}.{alias.name}" not in modules]
    return found


def level_of(module: str, extra: dict[str, str] | None = None) -> int:
    """The index in ``LEVELS`` of ``module``'s level; -1 when no prefix places it."""
    table = [(prefix, i) for i, (_, prefixes) in enumerate(LEVELS) for prefix in prefixes]
    table += [(prefix, [n for n, _ in LEVELS].index(level)) for prefix, level in (extra or {}).items()]
    best, index = -1, -1
    for prefix, i in table:
        inside = module.startswith(prefix + ".") and prefix != "srbench"  # the package's __init__ is only itself
        if (module == prefix or inside) and len(prefix) > best:
            best, index = len(prefix), i
    return index


def upward(found: list[Arrow], extra: dict[str, str] | None = None) -> list[Arrow]:
    """The arrows from a module to one on a higher level."""
    return [a for a in found if level_of(a.target, extra) > level_of(a.source, extra)]


class _Tarjan:
    """Tarjan's strongly connected components of a graph given as node -> successors."""

    def __init__(self, graph: dict[str, set[str]]) -> None:
        self.graph = graph
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.components: list[frozenset[str]] = []

    def connect(self, node: str) -> None:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        for nxt in sorted(self.graph[node]):
            if nxt not in self.index:
                self.connect(nxt)
                self.low[node] = min(self.low[node], self.low[nxt])
            elif nxt in self.on_stack:
                self.low[node] = min(self.low[node], self.index[nxt])
        if self.low[node] == self.index[node]:
            self._pop_component(node)

    def _pop_component(self, root: str) -> None:
        component = set()
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            component.add(member)
            if member == root:
                break
        if len(component) > 1:
            self.components.append(frozenset(component))


def loops(found: list[Arrow]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module, i.e. the import loops."""
    graph: dict[str, set[str]] = {}
    for a in found:
        graph.setdefault(a.source, set()).add(a.target)
        graph.setdefault(a.target, set())
    tarjan = _Tarjan(graph)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in tarjan.index:
            tarjan.connect(node)
    return tarjan.components


def counts(root: Path = SRBENCH, extra: dict[str, str] | None = None) -> str:
    """The summary printed by ``python tests/test_layers.py``: one line per fact."""
    found = arrows(root)
    modules = module_names(root)
    per_level = Counter(level_of(m, extra) for m in modules)
    names = [n for n, _ in LEVELS]
    lines = [f"modules: {len(modules)}"]
    lines += [f"  level {names[i] if i >= 0 else 'UNPLACED'}: {per_level[i]}" for i in sorted(per_level)]
    unique = {(a.source, a.target) for a in found}
    up = upward(found, extra)
    lines.append(f"import arrows (module pairs): {len(unique)}; import statements: {len(found)}")
    lines.append(f"function-local imports of srbench modules: {sum(a.local for a in found)}")
    lines.append(f"upward arrows (module pairs): {len({(a.source, a.target) for a in up})}")
    lines += [f"  {a.source} -> {a.target} (line {a.line})" for a in up]
    private = private_imports(root)
    lines.append(f"imports of another module's private names: {len(private)}")
    lines += [f"  {p}" for p in private]
    cycles = loops(found)
    lines.append(f"import loops (strongly connected components): {len(cycles)}, of "
                 f"{' + '.join(str(len(c)) for c in cycles) or 0} modules")
    lines += [f"  {sorted(c)}" for c in cycles]
    rest = loops(without_allowed(found))
    lines.append(f"import loops without the registry's named lazy arrows: {len(rest)}, of "
                 f"{' + '.join(str(len(c)) for c in rest) or 0} modules")
    lines += [f"  {sorted(c)}" for c in rest]
    return "\n".join(lines)


def test_every_module_has_a_level() -> None:
    unplaced = [m for m in module_names(SRBENCH) if level_of(m) < 0]
    assert unplaced == []


def test_no_import_points_up_a_level() -> None:
    names = [n for n, _ in LEVELS]
    shown = [f"{a.source} ({names[level_of(a.source)]}) imports {a.target} ({names[level_of(a.target)]}) "
             f"at line {a.line}" for a in upward(arrows())]
    assert shown == []


def _training(module: str) -> bool:
    return module == "srbench.train" or module.startswith("srbench.train.")


def test_training_and_evaluation_share_a_level_but_not_imports() -> None:
    # Two rooms on one level: a trainer needs no evaluation code and an evaluation no training code (the suite
    # runner, a level up, joins them).
    room = dict(LEVELS)["train & evaluation"]
    evaluation = {m for m in room if not _training(m)}
    crossing = [(a.source, a.target) for a in arrows()
                if (_training(a.source) and a.target in evaluation) or (a.source in evaluation and _training(a.target))]
    assert crossing == []


def without_allowed(found: list[Arrow]) -> list[Arrow]:
    """The arrows but the named back arrows of the registry's lazy loop."""
    return [a for a in found if (a.source, a.target) not in ALLOWED_BACK_ARROWS]


def test_no_import_loop_but_the_named_one() -> None:
    assert [sorted(c) for c in loops(without_allowed(arrows()))] == []


def test_the_allowed_back_arrows_exist_and_are_lazy() -> None:
    # An exception that no longer matches the code must go, and it is allowed only as a function-local import.
    found = {(a.source, a.target): a.local for a in arrows() if (a.source, a.target) in ALLOWED_BACK_ARROWS}
    assert found == dict.fromkeys(ALLOWED_BACK_ARROWS, True)


def test_no_module_imports_another_ones_private_names() -> None:
    assert private_imports() == []


def test_the_parser_sees_local_relative_and_plain_imports(tmp_path: Path) -> None:
    # A made-up package whose only arrows are the three forms the real one uses, one of them in a function.
    pkg = tmp_path / "srbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "cli.py").write_text("import srbench.errors\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\n\ndef f():\n    from ..errors import X\n")
    (pkg / "sub" / "b.py").write_text("from srbench.sub import a\n")
    found = {(a.source, a.target, a.local) for a in arrows(pkg)}
    assert found == {("srbench.cli", "srbench.errors", False), ("srbench.sub.a", "srbench.sub.b", False),
                     ("srbench.sub.a", "srbench.errors", True), ("srbench.sub.b", "srbench.sub.a", False)}
    assert loops(arrows(pkg)) == [frozenset({"srbench.sub.a", "srbench.sub.b"})]


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "srbench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("")
    (pkg / "errors.py").write_text("def hint():\n    from srbench.cli import main\n")
    assert [(a.source, a.target) for a in upward(arrows(pkg))] == [("srbench.errors", "srbench.cli")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SRBENCH, help="the srbench package folder to count")
    parser.add_argument("--place", action="append", default=[], metavar="MODULE=LEVEL",
                        help="place a module that LEVELS does not name (e.g. an older layout's)")
    args = parser.parse_args()
    print(counts(args.root.resolve(), dict(p.split("=", 1) for p in args.place)))
