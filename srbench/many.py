"""Many results at once: several models, or a tree of released results laid out ``<method>/<dataset>/x<scale>/``
(as released test code writes them: ``RCAN/Set5/x4/baby_RCAN_x4.png``), evaluated in one call into the store,
each named by its method.

Each model, and each leaf of a tree, is one :func:`srbench.evaluation.evaluate_model` call (the same pairing of
released names, the same store, the same numbers as evaluating that folder alone). A model or leaf that cannot be
evaluated (an unknown dataset folder, a scale folder that is not ``x<int>``, an empty leaf, files that match no
image) is a :class:`Failure` naming its path: the others are still evaluated and stored, and the caller reports
the failures at the end. Nothing is guessed: a leaf is evaluated on the dataset and at the scale its folders name.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from srbench import datasets as D
from srbench.errors import SrbenchError
from srbench.evaluation import EvalResult, Progress, evaluate_model
from srbench.images import image_files
from srbench.options import EvalOptions
from srbench.store import Store

_SCALE_FOLDER = re.compile(r"^[xX]([1-9][0-9]*)$")


@dataclass(frozen=True)
class Failure:
    """A model or a tree's folder that gave no result, and why (one line)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ManyResults:
    """The results of every model or leaf that was evaluated, in order, and the failures of the others."""

    results: list[EvalResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def add(self, other: ManyResults) -> None:
        self.results += other.results
        self.failures += other.failures


@dataclass(frozen=True)
class Leaf:
    """One ``<method>/<dataset>/x<scale>/`` folder of a tree of released results."""

    method: str
    dataset: str  # srbench's name of the dataset (set5, ...)
    scale: int
    path: Path


def dataset_of_folder(folder_name: str) -> str | None:
    """srbench's dataset name for a tree's dataset folder (``Set5``, ``set5``, ``B100``, ``PIRM_val``...), matched
    case-insensitively with the names and the folder names of :data:`srbench.datasets.KNOWN_SETS`; None if none."""
    key = folder_name.lower()
    if key in D.available_names():
        return key
    for name, folders in D.KNOWN_SETS.items():
        if key in {Path(f).name.lower() for f in folders}:
            return name
    return None


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scale_leaves(method: str, dataset: str, ds_folder: Path, scales: Sequence[int] | None, leaves: list[Leaf],
                  failures: list[Failure]) -> None:
    """The leaves ``x<scale>/`` of one dataset folder into ``leaves``, its other folders into ``failures``."""
    scale_folders = _subfolders(ds_folder)
    if not scale_folders:
        failures.append(Failure(str(ds_folder), "no scale folder in it (x2, x3, x4, x8)"))
    for leaf in scale_folders:
        found = _SCALE_FOLDER.match(leaf.name)
        if found is None:
            failures.append(Failure(str(leaf), f"scale folder {leaf.name!r} is not x<scale> (x2, x3, x4, x8)"))
        elif scales and int(found.group(1)) not in scales:
            continue
        elif not image_files(leaf, recursive=True, follow_links=True):  # as FolderSource reads the leaf
            failures.append(Failure(str(leaf), "holds no images"))
        else:
            leaves.append(Leaf(method, dataset, int(found.group(1)), leaf))


def tree_leaves(tree: str | os.PathLike, scales: Sequence[int] | None = None) -> tuple[list[Leaf], list[Failure]]:
    """The leaves of a tree ``<method>/<dataset>/x<scale>/`` (only those of ``scales`` when given), and the folders
    that are no leaf: an unknown dataset name, a scale folder not named ``x<int>``, a leaf holding no image, a method
    or dataset folder with nothing under it. A tree that is not a folder, or holds no method folder, is an error."""
    from srbench.errors import BadInputError

    root = Path(tree).expanduser()
    if not root.is_dir():
        raise BadInputError(f"{tree}: the tree of released results is not a folder (it is laid out "
                            "<method>/<dataset>/x<scale>/)")
    methods = _subfolders(root)
    if not methods:
        raise BadInputError(f"{root}: no method folder in the tree (it is laid out <method>/<dataset>/x<scale>/)")
    leaves: list[Leaf] = []
    failures: list[Failure] = []
    for method in methods:
        dataset_folders = _subfolders(method)
        if not dataset_folders:
            failures.append(Failure(str(method), "no dataset folder in it (<method>/<dataset>/x<scale>/)"))
        for ds_folder in dataset_folders:
            dataset = dataset_of_folder(ds_folder.name)
            if dataset is None:
                failures.append(Failure(str(ds_folder), f"unknown dataset {ds_folder.name!r} (known: "
                                                         f"{', '.join(D.available_names())})"))
            else:
                _scale_leaves(method.name, dataset, ds_folder, scales, leaves, failures)
    return leaves, failures


def _evaluate_one(model: str, datasets: Sequence[str], options: EvalOptions, store: Store | None,
                  suite: str | None, name: str | None, progress: Progress | None, found: ManyResults,
                  on_result: Callable[[EvalResult], None] | None) -> None:
    """One model's results into ``found``; its error (a refused folder, no file named after an image...) is a
    failure naming ``model``, and results yielded before it are kept."""
    try:
        for result in evaluate_model(model, datasets, options, store=store, suite=suite, name=name,
                                     progress=progress):
            found.results.append(result)
            if on_result is not None:
                on_result(result)
    except (SrbenchError, OSError) as exc:
        found.failures.append(Failure(model, str(exc).removeprefix(f"{model}: ")))


def evaluate_many(models: Sequence[str], datasets: Sequence[str], options: EvalOptions, *,
                  names: Sequence[str | None] | None = None, store: Store | None = None, suite: str | None = None,
                  progress: Progress | None = None,
                  on_result: Callable[[EvalResult], None] | None = None) -> ManyResults:
    """Each of ``models`` on ``datasets`` as ``options`` say, named ``names`` (one per model; None or absent: the
    source's own name, a folder's name), each into ``store`` under ``suite``. A model that fails is a
    :class:`Failure`; the others are still evaluated. ``on_result`` sees each result as it finishes."""
    from srbench.errors import BadInputError

    names = list(names) if names else [None] * len(models)
    if len(names) != len(models):
        raise BadInputError(f"{len(names)} name(s) for {len(models)} model(s): give one --name per --model, in "
                            "order, or none")
    given = [n for n in names if n]
    twice = sorted({n for n in given if given.count(n) > 1})
    if twice:
        raise BadInputError(f"the name(s) {', '.join(twice)} are given to several models; each needs its own")
    refuse_shared_names(models, names, options.sr_pattern)
    found = ManyResults()
    for model, name in zip(models, names, strict=True):
        _evaluate_one(model, datasets, options, store, suite, name, progress, found, on_result)
    return found


def refuse_shared_names(models: Sequence[str], names: Sequence[str | None] | None,
                        sr_pattern: str | None = None) -> None:
    """Results are keyed by model name: two models that would go by one name (folders ``run1/x4`` and ``run2/x4``,
    two checkpoints of one variant) would be averaged together in tables, one replacing the other in a store."""
    from srbench.errors import BadInputError
    from srbench.sources import first_shared_name

    shared = first_shared_name(models, names, sr_pattern)
    if shared is not None:
        first, second, name = shared
        raise BadInputError(f"--model {first} and --model {second} would both be named {name!r}: results are keyed "
                            "by model name; give each a --name (one per --model, in order)")


def refuse_shared_leaves(leaves: Sequence[Leaf], models: Sequence[tuple[str, str, Sequence[str], int]] = ()) -> None:
    """Results are keyed by method, dataset and scale: two leaves of one method, set and scale (``Set5/`` and
    ``set5/``, ``B100/`` and ``BSD100/``), or a leaf and a ``--model`` of its name on its set at its scale
    (``models``: (model, its name, its datasets, the scale)), would be one result, the later replacing the earlier
    in a store and in --out. Refused before anything is evaluated."""
    from srbench.errors import BadInputError

    seen: dict[tuple[str, str, int], str] = {}
    for model, name, datasets, scale in models:
        for dataset in datasets:
            # as the result will be named: a named set by its name, a folder by its own name (own/Set5: Set5)
            stored = dataset.lower() if D.is_known_name(dataset) else Path(dataset).expanduser().name
            seen.setdefault((name, stored, scale), f"--model {model}")
    for leaf in leaves:
        key = (leaf.method, leaf.dataset, leaf.scale)
        if key in seen:
            fix = ("give that --model another --name" if seen[key].startswith("--model ")
                   else "keep one, or move the other under another method folder")
            raise BadInputError(f"{seen[key]} and {leaf.path} would both be {leaf.method}'s {leaf.dataset} "
                                f"x{leaf.scale} results (results are keyed by method, dataset and scale: one would "
                                f"replace the other in a store): {fix}")
        seen[key] = str(leaf.path)


def evaluate_tree(tree: str | os.PathLike, options: EvalOptions, *, scales: Sequence[int] | None = None,
                  store: Store | None = None, suite: str | None = None, progress: Progress | None = None,
                  on_result: Callable[[EvalResult], None] | None = None) -> ManyResults:
    """Every leaf ``<method>/<dataset>/x<scale>/`` of ``tree`` (only ``scales`` when given) evaluated on that dataset
    at that scale, named by its method, into ``store`` under ``suite``: one :func:`evaluate_model` of the leaf's
    folder each, its files paired with the images by name or by the affix they share (``options.sr_pattern``, if
    set, names them in every leaf). ``options.scale`` is replaced by each leaf's. Folders that are no leaf, and
    leaves that fail, are :class:`Failure` s; the other leaves are still evaluated."""
    leaves, failures = tree_leaves(tree, scales)
    refuse_shared_leaves(leaves)
    found = ManyResults(failures=list(failures))
    for leaf in leaves:
        _evaluate_one(str(leaf.path), [leaf.dataset], dataclasses.replace(options, scale=leaf.scale), store, suite,
                      leaf.method, progress, found, on_result)
    return found

