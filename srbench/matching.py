"""Pairing SR files made elsewhere with the HR images of a dataset, by name, never by guess.

An SR file belongs to an HR image when its stem, after stripping at most one of the suffixes below, equals
one of the image's names (the dataset's item name, the HR file's stem, that stem without ``_HR``). Only
these suffixes are stripped: a prefix match would pair ``a`` with ``a_2.png`` when ``a.png`` is missing.
A suffix that names a scale must name the evaluated scale (``baby_x2.png`` is no x4 result).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

# The naming habits of SR code in the wild; ``{s}`` is the evaluated scale. Longest first, so that
# ``_x4_SR`` is stripped whole rather than as ``_SR``.
SR_SUFFIXES: tuple[str, ...] = (
    "_SRF_{s}_SR",  # SelfExSR-style names with an SR tag
    "_x{s}_SR",  # EDSR, RCAN: baby_x4_SR.png
    "x{s}_SR",
    "_SRF_{s}",  # SelfExSR result folders: img_001_SRF_4.png
    "_ESRGAN",  # ESRGAN-style result suffixes
    "_x{s}",  # babyx4 / baby_x4: the LR naming of the EDSR layout, reused for outputs
    "x{s}",
    "_rlt",  # ESRGAN's test.py
    "_out",
    "_SR",
    "_sr",
)


def suffixes(scale: int) -> tuple[str, ...]:
    """The suffixes stripped at ``scale``, longest first."""
    return tuple(sorted({s.format(s=scale) for s in SR_SUFFIXES}, key=len, reverse=True))


def candidate_names(stem: str, scale: int) -> set[str]:
    """The image names an SR file stem may stand for: itself, and itself minus one known suffix."""
    names = {stem}
    for suffix in suffixes(scale):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            names.add(stem[: -len(suffix)])
    return names


def hr_names(item_name: str, hr_stem: str) -> set[str]:
    names = {item_name, hr_stem}
    if hr_stem.endswith("_HR") and len(hr_stem) > 3:
        names.add(hr_stem[:-3])
    return names


class SRIndex:
    """SR files indexed by the image names they may stand for, at one scale."""

    def __init__(self, files: Iterable[Path], scale: int) -> None:
        self.scale = scale
        self.by_name: dict[str, list[Path]] = {}
        for path in files:
            for name in candidate_names(path.stem, scale):
                self.by_name.setdefault(name, []).append(path)

    def matches(self, names: Iterable[str]) -> list[Path]:
        """Every file standing for any of ``names`` (several: ambiguous; none: missing)."""
        found = {p for n in names for p in self.by_name.get(n, ())}
        return sorted(found)


def describe_ambiguity(image: str, files: Sequence[Path]) -> str:
    return (f"several SR files match image {image!r}: {', '.join(str(p) for p in files)}; keep one "
            f"(srbench never guesses which)")
