"""Text helpers for one-line messages and the TOML files users write (bottom level: imports only errors)."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
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


def format_value(value: float, digits: int, fmt: str = "text") -> str:
    """A metric value for a table: fixed digits; infinity (PSNR of an SR identical to its HR) spelled out
    as such in every format (``inf`` in text and CSV, ``∞`` in Markdown and HTML, ``$\\infty$`` in LaTeX)."""
    if math.isinf(value):
        sign = "-" if value < 0 else ""
        return sign + {"markdown": "∞", "html": "∞", "latex": "$\\infty$"}.get(fmt, "inf")
    return f"{value:.{digits}f}"


def aligned_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns of text right-aligned under their headers, two spaces apart: the terminal's table of a command
    that prints a few rows (pandas' own formatter costs a third of a second of import for it).

    >>> print(aligned_table(["model", "psnr_y"], [["bicubic", "25.96"], ["esrgan", "23.1"]]))
      model  psnr_y
    bicubic   25.96
     esrgan    23.1
    """
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in [header, *rows])
