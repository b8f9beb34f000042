"""The one place that decides where data, weights and caches live.

Precedence everywhere: an explicit argument (CLI option), then the environment variable, then the
default. The defaults depend on where srbench runs from (docs/install.md has the table):

- a source checkout (its pyproject.toml names srbench; ``pip install -e`` is one too): the checkout's
  ``datasets/``, ``models/`` and ``reports/``;
- an installed package (a wheel in site-packages, where nothing may be written): data and models in the user's
  cache (``$XDG_CACHE_HOME/srbench``, else ``~/.cache/srbench``), reports and the results store in
  ``srbench-reports/`` in the working directory, the one default resolved against it.

Files srbench reads at run time (dataset manifests, the drift baseline, suites) are package data
(``srbench/data``, ``srbench/ablate/suites``), the same in both.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path

DATA_ENV = "SRBENCH_DATA"
WEIGHTS_ENV = "SRBENCH_WEIGHTS"
CACHE_ENV = "SRBENCH_CACHE"
MODELS_ENV = "SRBENCH_MODELS"
STORE_ENV = "SRBENCH_STORE"
REPORTS_ENV = "SRBENCH_REPORTS"
TRAINING_CACHE_ENV = "SRBENCH_TRAINING_CACHE"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A source checkout's datasets/ folder is its default data root (its images are git-ignored).
DATASETS_DIR = PROJECT_ROOT / "datasets"
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
# The known copies of each dataset (srbench.manifests), read in a checkout and an installed package alike.
MANIFESTS_DIR = PACKAGE_DATA / "manifests"
INSTALLED_REPORTS = "srbench-reports"  # the installed package's reports folder, in the working directory


@functools.cache
def _names_srbench(pyproject: Path) -> bool:
    try:
        return tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name") == "srbench"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def in_checkout(root: Path | None = None) -> bool:
    """Whether srbench runs from a source checkout (``root``, default :data:`PROJECT_ROOT`, has a pyproject.toml
    naming srbench), not from an installed package, whose parent folder is site-packages."""
    return _names_srbench((root or PROJECT_ROOT) / "pyproject.toml")


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))


def manifests_dir() -> Path:
    """Where ``srbench datasets manifest`` records a copy: srbench's own manifests in a checkout (committed with
    it), else ``manifests/`` in the user's srbench cache (never site-packages)."""
    return MANIFESTS_DIR if in_checkout() else _user_cache() / "srbench" / "manifests"


def default_data_root() -> Path:
    """The checkout's ``datasets/``, else ``datasets/`` in the user's srbench cache."""
    return DATASETS_DIR if in_checkout() else _user_cache() / "srbench" / "datasets"


def data_roots(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for named datasets, in order."""
    if explicit is not None:
        return [Path(explicit).expanduser()]
    env = os.environ.get(DATA_ENV)
    roots = [Path(p).expanduser() for p in (env or "").split(os.pathsep) if p]
    return roots or [default_data_root()]  # a variable of separators only names no folder: as if unset


def weights_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where srbench looks first for downloaded weights (NRQM model, VGG19, LPIPS backbones); a file named
    there is refused, naming the setting that named it."""
    if explicit is not None:
        return _folder(Path(explicit).expanduser(), "the weights folder")
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return _folder(Path(env).expanduser(), WEIGHTS_ENV)
    return _user_cache() / "srbench" / "weights"


def _folder(path: Path, setting: str) -> Path:
    # Otherwise the first mkdir or lookup below it fails with the OS's bare "File exists" / "Not a directory".
    if path.exists() and not path.is_dir():
        from srbench.errors import BadInputError

        raise BadInputError(f"{setting} must be a folder, but {path} is a file")
    return path


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return _user_cache() / "srbench"


def downloads_dir() -> Path:
    """Where ``srbench fetch`` keeps dataset archives (and a cut download's ``.part``) before unpacking them under
    the data root: ``downloads/`` in the cache folder, so that neither the data root nor a checkout holds them."""
    return cache_dir() / "downloads"


def _explicit_env_default(explicit: str | os.PathLike | None, env: str, default: Path) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser()
    value = os.environ.get(env)
    return Path(value).expanduser() if value else default


def models_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where ``<variant>.safetensors`` checkpoints named by variant are looked for: the checkout's ``models/``, else
    ``models/`` in the user's srbench cache."""
    default = PROJECT_ROOT / "models" if in_checkout() else _user_cache() / "srbench" / "models"
    return _explicit_env_default(explicit, MODELS_ENV, default)


def reports_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The default parent of suite reports and training runs (``--out`` overrides it per command): the checkout's
    ``reports/``, else ``srbench-reports/`` in the working directory (outputs belong with the user's work)."""
    default = PROJECT_ROOT / "reports" if in_checkout() else Path.cwd() / INSTALLED_REPORTS
    return _explicit_env_default(explicit, REPORTS_ENV, default)


def store_path(explicit: str | os.PathLike | None = None) -> Path:
    """The results store: ``--store``, else ``$SRBENCH_STORE``, else ``srbench.sqlite`` in the reports folder."""
    return _explicit_env_default(explicit, STORE_ENV, reports_dir() / "srbench.sqlite")


def training_cache_dir(explicit: str | os.PathLike | None = None, store: str | os.PathLike | None = None) -> Path:
    """Trained stages by fingerprint (``srbench.train.cache``): ``--training-cache``, else
    ``$SRBENCH_TRAINING_CACHE``, else ``training-cache/`` beside the results store (``store``, else the default
    store). Not beside the report: where a report goes never decides whether a stage is trained again."""
    if explicit is not None:
        return Path(explicit).expanduser()
    value = os.environ.get(TRAINING_CACHE_ENV)
    if value:
        return Path(value).expanduser()
    return store_path(store).parent / "training-cache"


def torch_hub_dir() -> Path:
    """torch.hub's folder (``$TORCH_HOME/hub``), computed without importing torch."""
    torch_home = os.environ.get("TORCH_HOME")
    base = Path(torch_home).expanduser() if torch_home else _user_cache() / "torch"
    return base / "hub"


def require_weight(
    filename: str, what: str, origin: str, extra_dirs: Sequence[Path] = (), explicit: str | os.PathLike | None = None
) -> Path:
    """The first existing ``filename`` in the weights dir, then ``extra_dirs`` (other tools' caches).

    Raises :class:`WeightsUnavailableError` naming the file, where it looked and where to put it.
    """
    from srbench.errors import WeightsUnavailableError

    searched = [weights_dir(explicit), *extra_dirs]
    for folder in searched:
        candidate = folder / filename
        if candidate.is_file():
            return candidate
    raise WeightsUnavailableError(what, filename, str(searched[0]), [str(p) for p in searched], origin)


def is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name no file can have (too long for the file system, or with a NUL in it)
    instead of an OSError or ValueError: a typed name then gets the caller's one-line error."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for a name no folder can have (see :func:`is_file`)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def user_path(text: str | os.PathLike, what: str) -> Path:
    """``Path(text).expanduser()``, with an unknown ``~user`` as a one-line error instead of a RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        from srbench.errors import BadInputError
        from srbench.text import shown

        raise BadInputError(f"{what}: cannot expand {shown(str(text))}: no such user's home folder") from None
