"""Pairing SR files made elsewhere with the HR images of a dataset, by name, never by guess.

An SR file belongs to an HR image when its stem, after stripping at most one of the suffixes below, equals
one of the image's names (the dataset's item name, the HR file's stem, without its ``_HR`` tag if it has one). Only
these suffixes are stripped: a prefix match would pair ``a`` with ``a_2.png`` when ``a.png`` is missing.
A suffix, or a naming read off the folder (below), that names a scale must name the evaluated scale
(``baby_x2.png`` is no x4 result).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from srbench.errors import BadInputError
from srbench.images import IMAGE_SUFFIXES

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


def hr_names(item_name: str, hr_stem: str, scale: int) -> set[str]:
    """The names an image goes by at ``scale``: the dataset's item name and its HR file's stem, the stem without its
    ``_HR`` tag where it has one. The tagged stem itself is no SR file's name: ``img_001_SRF_4_HR.png`` beside a
    SelfExSR release's outputs is the ground truth, and taking it for the SR image scored HR against itself. A stem
    naming another scale is no name at ``scale``: ``img_001_SRF_4_SR.png`` is an x4 result, not an x2 one."""
    stem = hr_stem[:-3] if hr_stem.endswith("_HR") and len(hr_stem) > 3 else hr_stem
    named = scales_named(stem)
    return {item_name} if named and scale not in named else {item_name, stem}


def scales_named(text: str) -> set[int]:
    """The scales ``text`` names (``x4``, ``X4``, ``4x``, ``SRF_4``, each a whole token between ``_``, ``-``,
    ``.``, spaces or the text's ends)."""
    tokens = _tokens(text)
    named = {int(m.group(1) or m.group(2)) for t in tokens for m in [_SCALE_TOKEN.fullmatch(t)] if m}
    named |= {int(b) for a, b in itertools.pairwise(tokens) if a.upper() == "SRF" and b.isdigit()}
    return named


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


# ---------------------------------------------------------------------------------------------------------
# Released outputs as their authors name them: one affix shared by the whole folder.
#
# Released SR results rarely carry the bare image name: ``baby_RCAN_x4.png``, ``SR_baby.png``,
# ``baboon_SRGAN-VGG54.png``. Rather than growing the suffix list forever, the folder's own naming is read
# off: the one (prefix, suffix) pair whose removal maps every image of the dataset to exactly one file. Two
# such pairs (a folder holding several methods' outputs) or none are never guessed between.

_PATTERN_FIELDS = re.compile(r"\{([^{}]*)\}")
_TOKEN_SEPARATORS = re.compile(r"[_\-.\s]+")
_SCALE_TOKEN = re.compile(r"[xX](\d+)|(\d+)[xX]")
_DATA_TAGS = frozenset({"HR", "LR", "GT"})


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN_SEPARATORS.split(text) if t]


@dataclass(frozen=True)
class Affix:
    """What surrounds the image name in an SR file's stem: ``prefix + name + suffix``."""

    prefix: str
    suffix: str

    def stem(self, name: str) -> str:
        return f"{self.prefix}{name}{self.suffix}"

    def scales(self) -> set[int]:
        """The scales the affix names (``x4``, ``X4``, ``4x``, ``SRF_4``, each a whole token between ``_``, ``-``,
        ``.``, spaces or the affix's ends): ``{name}_x2_SR`` holds x2 results, whatever the evaluation asks."""
        return scales_named(f"{self.prefix} {self.suffix}")

    def is_bounded(self) -> bool:
        """Whether the name meets the affix at a separator (``_``, ``-``, ``.``, space) or a scale token
        (``babyx4``): ``{name}7`` would read image 5 into the file of image 57."""
        after = self.suffix[:1]
        before = self.prefix[-1:]
        suffix_ok = not after or not after.isalnum() or bool(re.match(r"[xX]\d+(?!\d)", self.suffix))
        return suffix_ok and (not before or not before.isalnum())

    def names_data_files(self) -> bool:
        """Whether the affix ends in a tag of the dataset's own files (``_HR``, ``_LR``, ``_GT``):
        ``{name}_SRF_4_HR`` picks the HR images a SelfExSR release ships beside its methods' outputs, never an SR
        result, whether or not they are the very files the dataset is read from."""
        tokens = _tokens(self.suffix)
        return bool(tokens) and tokens[-1].upper() in _DATA_TAGS

    def pattern(self, scale: int) -> str:
        """As ``--sr-pattern`` writes it, the scale shown as ``{scale}`` where it follows an x or ``SRF_``."""
        def general(text: str) -> str:
            return re.sub(rf"(?:(?<=[xX])|(?<=SRF_)){scale}(?!\d)", "{scale}", text)

        return f"{general(self.prefix)}{{name}}{general(self.suffix)}"


def parse_pattern(pattern: str, scale: int) -> Affix:
    """``--sr-pattern``: ``{name}`` once, ``{scale}`` anywhere, nothing else in braces, no extension needed."""
    fields = _PATTERN_FIELDS.findall(pattern)
    unknown = sorted({f for f in fields if f not in ("name", "scale")})
    if unknown or fields.count("name") != 1 or pattern.count("{") != len(fields):
        raise BadInputError(
            f"--sr-pattern {pattern!r}: write the SR file's name with {{name}} once where the image's name is "
            f"and {{scale}} where the scale is, e.g. '{{name}}_RCAN_x{{scale}}'"
            + (f" (unknown field(s): {', '.join(unknown)})" if unknown else ""))
    stem = pattern
    for ext in IMAGE_SUFFIXES:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    prefix, suffix = stem.split("{name}")
    return Affix(prefix.replace("{scale}", str(scale)), suffix.replace("{scale}", str(scale)))


def files_by_stem(files: Iterable[Path]) -> dict[str, list[Path]]:
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def pair_by_affix(affix: Affix, by_stem: dict[str, list[Path]],
                  images: Sequence[tuple[str, set[str]]]) -> dict[str, list[Path]]:
    """Each image (its name, the names it goes by) with the files whose stem is the affixed name."""
    return {image: sorted({p for n in names for p in by_stem.get(affix.stem(n), ())}) for image, names in images}


def _candidates(stems: Iterable[str], names: set[str]) -> set[Affix]:
    found = set()
    for stem in stems:
        for name in names:
            start = stem.find(name)
            while start >= 0:
                found.add(Affix(stem[:start], stem[start + len(name):]))
                start = stem.find(name, start + 1)
    return found


def infer_affixes(by_stem: dict[str, list[Path]], images: Sequence[tuple[str, set[str]]]) -> list[Affix]:
    """Every pairing by one affix (other than none) of each image with exactly one file, no file used twice.

    Affixes that pick the very same file for every image are one pairing, not a choice between two: an image
    goes by several names (``img_001`` and ``img_001_SRF_4``), so ``img_001_SRF_4_MyNet.png`` reads as
    ``{name}_SRF_4_MyNet`` and as ``{name}_MyNet``. The most specific of them (the longest affix) stands for it.
    """
    all_names = {n for _, names in images for n in names}
    by_pairing: dict[tuple[tuple[Path, ...], ...], Affix] = {}
    for affix in _candidates(by_stem, all_names):
        if not (affix.prefix or affix.suffix) or affix.names_data_files():
            continue
        paired = pair_by_affix(affix, by_stem, images)
        files = [p for found in paired.values() for p in found]
        if all(len(found) == 1 for found in paired.values()) and len(set(files)) == len(files):
            key = tuple(tuple(found) for found in paired.values())
            known = by_pairing.get(key)
            if known is None or _specificity(affix) > _specificity(known):
                by_pairing[key] = affix
    return sorted(by_pairing.values(), key=lambda a: (a.prefix, a.suffix))


def _specificity(affix: Affix) -> tuple[int, str, str]:
    return len(affix.prefix) + len(affix.suffix), affix.prefix, affix.suffix


def best_affix(by_stem: dict[str, list[Path]], images: Sequence[tuple[str, set[str]]], scale: int, *,
               bounded: bool = False) -> Affix | None:
    """The affix pairing the most images with one file each, among those naming no other scale than ``scale``
    and no tag of the dataset's own files, and with ``bounded`` meeting the name at a separator (ties: the larger
    pattern, as text)."""
    all_names = {n for _, names in images for n in names}
    best: tuple[int, str, Affix] | None = None
    for affix in _candidates(by_stem, all_names):
        if (not (affix.prefix or affix.suffix) or affix.scales() - {scale} or affix.names_data_files()
                or (bounded and not affix.is_bounded())):
            continue
        n = sum(1 for found in pair_by_affix(affix, by_stem, images).values() if len(found) == 1)
        if best is None or (n, affix.pattern(scale)) > best[:2]:
            best = (n, affix.pattern(scale), affix)
    return None if best is None else best[2]


def suggest_pattern(by_stem: dict[str, list[Path]], images: Sequence[tuple[str, set[str]]], scale: int) -> str | None:
    """The pattern of :func:`best_affix` (a hint for a folder where no affix pairs every image), meeting the name at
    a separator: ``wo{name}_MyNet_x4`` pairs Set14's ``man`` with Set5's ``woman`` output, by accident."""
    affix = best_affix(by_stem, images, scale, bounded=True)
    return None if affix is None else affix.pattern(scale)
