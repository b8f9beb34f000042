"""The suite format and the shipped suites (the ``*.toml`` files beside this module): a suite names its datasets,
its baselines, its variants (``[[variants]]``: a name, a label and a training recipe, generator, TOML file or
inline table) and an optional network interpolation (``[interpolation]``: a variant and its alphas). A new shipped
suite is one new TOML file in this folder; :func:`parse_suite` checks every key.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from srbench.errors import BadInputError
from srbench.suite_settings import SuiteSettings, parse_settings
from srbench.text import shown

SUITE_KEYS = {"name", "description", "datasets", "baselines", "variants", "interpolation", "source", "training_data",
              "report", "presets"}
VARIANT_KEYS = {"name", "label", "training"}
INTERP_KEYS = {"variant", "alphas"}
SUITE_PROTOCOLS = ("sr", "pirm")  # every suite model is evaluated under both


def shipped_suites() -> dict[str, str]:
    """name -> file of every suite shipped beside this module (a new suite is one new file)."""
    files = [entry.name for entry in resources.files(__package__).iterdir() if entry.name.endswith(".toml")]
    return {name[: -len(".toml")]: name for name in sorted(files, key=lambda n: n[: -len(".toml")])}


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    label: str
    training: Any  # a training recipe (srbench.train.config.RECIPES), a generator name, a TOML file or an inline table


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    datasets: tuple[str, ...]
    baselines: tuple[str, ...]
    entries: tuple[SuiteEntry, ...]  # the [[variants]] tables of the suite file
    interp_variant: str | None = None
    alphas: tuple[float, ...] = ()
    source: str = ""  # where the suite's recipe comes from (a paper, a thesis)
    training_data: str = ""  # what the source trained on (smoke runs train on scikit-image's images instead)
    settings: SuiteSettings = field(default_factory=SuiteSettings)  # [report] and [presets] (srbench.suite_settings)
    origin: str = ""  # what errors name: the suite file's path, or "suite 'name'" for a shipped one

    @property
    def where(self) -> str:
        return self.origin or f"suite {self.name}"


def _presets() -> tuple[str, ...]:
    from srbench.train.config import PRESETS

    return PRESETS


def _reject_unknown(table: dict, known: set[str], where: str) -> None:
    unknown = sorted(shown(k, 40) for k in set(table) - known)
    if unknown:
        raise BadInputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _names(data: dict, key: str, where: str, default: list[str]) -> tuple[str, ...]:
    """``key`` as a list of unique non-empty strings (a bare string would iterate into its letters)."""
    value = data.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise BadInputError(f"{where}: {key} = {shown(value)}: expected a list of names, e.g. {key} = [\"a\", \"b\"]")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise BadInputError(f"{where}: {key} repeats {', '.join(map(repr, repeated))}")
    return tuple(value)


def _text(table: dict, key: str, where: str, default: str | None = None, *, name: bool = False) -> str:
    from srbench.train.config import SAFE_NAME, SAFE_NAME_TEXT

    value = table.get(key, default)
    if not isinstance(value, str) or (name and not SAFE_NAME.fullmatch(value)):
        allowed = SAFE_NAME_TEXT if name else "a string"
        raise BadInputError(f"{where}: {key} = {shown(value)}; allowed: {allowed}")
    return value


def _beside(training: str, base: Path | None, where: str) -> str:
    """A training path of a suite file (``where``: its key), relative to the file's folder (as a path in a file is
    read), not to wherever the command runs; recipe and generator names, and absolute paths, as they are."""
    from srbench.paths import is_file, user_path

    path = user_path(training, where)
    if base is None or path.is_absolute():
        return training
    if not (training.endswith(".toml") or "/" in training or os.sep in training):
        if not is_file(base / path):
            return training  # a name (or an unknown one, which the recipe loader names)
        from srbench.archs import GENERATORS
        from srbench.train.config import RECIPES

        if training in RECIPES or training in GENERATORS:
            return training  # a file that happens to carry a recipe's name does not replace the recipe
    beside = base / path
    if not is_file(beside) and is_file(path):  # read from the working folder before srbench said otherwise
        raise BadInputError(f"{where} = {shown(training)}: a path in a suite file is relative to the suite's "
                            f"folder, and {beside} does not exist ({path.resolve()}, relative to the working folder, "
                            "does): write it relative to the suite file, or absolute")
    return str(beside)


def _parse_variants(data: dict, origin: str, base: Path | None = None) -> tuple[SuiteEntry, ...]:
    tables = data.get("variants", [])
    if not isinstance(tables, list) or not all(isinstance(v, dict) for v in tables):
        raise BadInputError(f"{origin}: variants = {shown(tables)}: expected an array of tables ([[variants]] entries)")
    variants = []
    for i, v in enumerate(tables):
        where = f"{origin}: variants[{i}]"
        _reject_unknown(v, VARIANT_KEYS, where)
        if "name" not in v or "training" not in v:
            raise BadInputError(f"{where} needs a name and a training entry")
        vname = _text(v, "name", where, name=True)
        training = v["training"]
        if not isinstance(training, (str, dict)) or (isinstance(training, dict)
                                                     and not isinstance(training.get("variant", ""), str)):
            raise BadInputError(f"{where}: training = {shown(training)}: expected a training variant name, a .toml "
                                "path or a table (whose 'variant' is a name)")
        if isinstance(training, str):
            training = _beside(training, base, f"{where}: training")
        elif "variant" in training:
            training = {**training, "variant": _beside(training["variant"], base, f"{where}: training.variant")}
        variants.append(SuiteEntry(vname, _text(v, "label", where, vname), training))
    names = [v.name for v in variants]
    repeated = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if repeated:
        where = ", ".join(f"{n!r} (entries {', '.join(str(i + 1) for i, m in enumerate(names) if m == n)})"
                          for n in repeated)
        raise BadInputError(f"{origin}: variant names repeat: {where}; each [[variants]] entry needs its own name")
    return tuple(variants)


def _parse_interpolation(data: dict, origin: str, names: list[str]) -> tuple[str | None, tuple[float, ...]]:
    interp = data.get("interpolation", {})
    if not isinstance(interp, dict):
        raise BadInputError(f"{origin}: interpolation = {shown(interp)}: expected a table with variant and alphas")
    _reject_unknown(interp, INTERP_KEYS, f"{origin}: interpolation")
    if interp and interp.get("variant") not in names:
        raise BadInputError(f"{origin}: interpolation.variant {shown(interp.get('variant'))} is not a variant of "
                            "the suite")
    alphas = interp.get("alphas", [])
    if not isinstance(alphas, list) or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and 0.0 <= a <= 1.0 for a in alphas):
        raise BadInputError(f"{origin}: interpolation.alphas = {shown(alphas)}; allowed: a list of numbers in [0, 1]")
    alphas = [float(a) for a in alphas]
    if len(set(alphas)) != len(alphas):
        raise BadInputError(f"{origin}: interpolation.alphas repeats a value: {alphas}")
    return interp.get("variant"), tuple(alphas)


def parse_suite(data: dict, origin: str, base: str | Path | None = None) -> Suite:
    """A suite from its TOML table; every key's type is checked, errors are one line naming ``origin`` and the
    key. ``base``: the suite file's folder, which relative training TOML paths are read from (None: the working
    folder)."""
    if not isinstance(data, dict):
        raise BadInputError(f"{origin}: a suite is a TOML table, got {type(data).__name__}")
    _reject_unknown(data, SUITE_KEYS, origin)
    datasets = _names(data, "datasets", origin, ["skimage"])
    if not datasets:
        raise BadInputError(f"{origin}: datasets is empty; name at least one dataset")
    baselines = _names(data, "baselines", origin, [])
    unknown_baselines = [b for b in baselines if b != "bicubic"]
    if unknown_baselines:
        raise BadInputError(f"{origin}: unknown baseline(s) {unknown_baselines}; known: bicubic")
    variants = _parse_variants(data, origin, None if base is None else Path(base))
    interp_variant, alphas = _parse_interpolation(data, origin, [v.name for v in variants])
    return Suite(
        name=_text(data, "name", origin, Path(origin).stem, name=True),
        description=_text(data, "description", origin, ""), datasets=datasets, baselines=baselines,
        entries=variants, interp_variant=interp_variant, alphas=alphas, source=_text(data, "source", origin, ""),
        training_data=_text(data, "training_data", origin, ""), settings=parse_settings(data, origin, _presets()),
        origin=origin,
    )


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (``srbench suites list``) or a suite TOML file."""
    from srbench.paths import is_file, user_path
    from srbench.text import read_toml

    shipped = shipped_suites()
    if name_or_path in shipped:
        text = resources.files(__package__).joinpath(shipped[name_or_path]).read_text(encoding="utf-8")
        origin = f"suite {shown(name_or_path)}"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadInputError(f"{origin}: invalid TOML ({exc})") from None
        return parse_suite(data, origin)
    path = user_path(name_or_path, "--suite")
    if not is_file(path):
        raise BadInputError(f"unknown suite {shown(name_or_path)}; shipped: {', '.join(shipped)} (or a .toml path)")
    return parse_suite(read_toml(path, "suite file"), str(path), path.parent)


def resolve_suite_configs(suite: Suite, preset: str, *, train_data: str | None = None,
                          data_root: str | None = None) -> dict:
    """Every variant's training configuration under ``preset`` (name -> TrainConfig), resolved as ``ablate``
    resolves them, so that a bad one is found before the first variant trains; errors name the variant.
    ``train_data`` (a named set or folder) and ``data_root`` (where named sets are), when given, replace every
    variant's ``data.train`` and ``data.data_root``."""
    from srbench.train.config import resolve_config

    data = {k: v for k, v in (("train", train_data), ("data_root", data_root)) if v is not None}
    shared = suite.settings.presets.get(preset, {})
    configs = {}

    def overrides(name: str, with_preset: bool) -> dict:
        out = {**(copy.deepcopy(shared) if with_preset else {}), "name": name}
        if data:
            out["data"] = {**out.get("data", {}), **data}
        return out

    for variant in suite.entries:
        try:
            configs[variant.name] = resolve_config(variant.training, preset, overrides=overrides(variant.name, True))
        except BadInputError as exc:
            where, problem = f"variant {variant.name}", exc
            if shared:  # the suite's [presets.<preset>] table, given to every variant, may be what is wrong
                try:
                    resolve_config(variant.training, preset, overrides=overrides(variant.name, False))
                    where = f"[presets.{preset}] (given to every variant; here to {variant.name})"
                except BadInputError as own:
                    problem = own  # the variant's own error (the table may have another: said once this is fixed)
            raise BadInputError(f"{suite.where}: {where}: {problem}") from None
    return configs
