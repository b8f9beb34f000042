"""Text helpers for one-line messages and the TOML files users write (bottom level: imports only errors)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from srbench.errors import BadInputError


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = 200) -> str:
    """``text`` with its runs of white space (new lines included) as one space, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def read_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file's table, or one BadInputError naming the file: missing, unreadable, not UTF-8, invalid."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: {what} is not UTF-8 text (byte offset {exc.start}); TOML files are "
                            "UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{path}: invalid TOML ({exc})") from None
    except RecursionError:
        raise BadInputError(f"{path}: invalid TOML (nested too deeply)") from None
