"""The one rule for numbers in srbench's JSON (README, "Undefined and infinite values"): infinity is the string
"inf" or "-inf" (PSNR of an SR identical to its HR), NaN (undefined) is null. JSON itself has neither, so every
writer (``evaluate --json`` and its result files, ``compare --json``, ``check --json`` and baselines, the store's
JSON columns) goes through :func:`dumps` or :func:`json_number`, and every reader through :func:`read_number`.

A bottom-level module: it imports nothing of srbench.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any


def json_number(value: float | None) -> float | str | None:
    """A value as JSON has it: NaN (undefined) is null, infinity is the string "inf" or "-inf".

    >>> json_number(float("inf")), json_number(float("-inf")), json_number(float("nan")), json_number(2.5)
    ('inf', '-inf', None, 2.5)
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def to_json(obj: Any) -> Any:
    """``obj`` with every float in it (nested in dicts, lists and tuples; NumPy floats too) written by the rule.

    >>> to_json({"a": [float("inf"), 1.0], "b": float("nan"), "c": "x"})
    {'a': ['inf', 1.0], 'b': None, 'c': 'x'}
    """
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):  # bool and int stay as they are
        return json_number(float(obj))
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``obj`` with its numbers written by the rule; a NaN or infinity that escaped it (none
    can) would raise rather than be written as a literal no JSON reader accepts.

    >>> dumps({"psnr_y": float("inf"), "niqe": float("nan"), "ssim_y": 0.5})
    '{"psnr_y": "inf", "niqe": null, "ssim_y": 0.5}'
    """
    return json.dumps(to_json(obj), allow_nan=False, **kwargs)


def read_number(value: Any) -> float:
    """A number as the rule writes it, back: "inf"/"-inf" -> infinity, null -> NaN, a number -> float.

    Anything else raises ValueError naming it (the caller says where it was).

    >>> read_number("inf"), read_number("-inf"), read_number(None), read_number(3)
    (inf, -inf, nan, 3.0)
    """
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, \"inf\", \"-inf\" or null, got {value!r}")
    return float(value)
