"""Manifests of known dataset copies, and telling which copy a folder is.

Several versions of each benchmark set circulate (grayscale conversions, crops to a multiple of the scale,
re-encodings), and each gives different numbers. A manifest (``srbench/data/manifests/<name>.json``, package
data; an installed srbench records new copies in the user's cache, :func:`srbench.paths.manifests_dir`) records,
for every known copy, each file's sha256, its decoded-pixel hash, and hashes of the usual derived versions (grayscale
by MATLAB ``rgb2gray``, PIL ``convert('L')`` or the Y channel; top-left crops to multiples of 2, 3, 4 and 8),
so ``srbench datasets verify`` can say not only *that* a file differs but *how*.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srbench import paths
from srbench.errors import BadInputError
from srbench.images import (
    atomic_write_text,
    content_sha256,
    file_sha256,
    image_files,
    is_image_file,
    pixel_sha256,
    read_image,
)
from srbench.matlab import modcrop, rgb2gray, rgb2y

VARIANT_HASH_CHARS = 16
CROP_SCALES = (2, 3, 4, 8)
GRAY_CONVERSIONS = {
    "rgb2gray": lambda img: rgb2gray(img),
    # PIL's 'L' conversion: ITU-R 601-2 luma with integer arithmetic (what ``Image.convert('L')`` writes).
    "pil-L": lambda img: _pil_gray(img),
    "y": lambda img: rgb2y(img),
}


def _pil_gray(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).convert("L"))


def _short(img: np.ndarray) -> str:
    return pixel_sha256(img)[:VARIANT_HASH_CHARS]


def derived_hashes(img: np.ndarray) -> dict[str, str]:
    """Short pixel hashes of the derived versions of an HR image that circulate in the wild."""
    bases = {"": img}
    if img.ndim == 3:
        for name, fn in GRAY_CONVERSIONS.items():
            bases[f"gray:{name}"] = fn(img)
    out = {}
    for base_name, base in bases.items():
        if base_name:
            out[base_name] = _short(base)
        for s in CROP_SCALES:
            cropped = modcrop(base, s)
            if cropped.shape != base.shape:
                out[f"{base_name}+modcrop{s}".lstrip("+")] = _short(cropped)
    return out


def describe_file(path: Path, with_variants: bool) -> dict:
    img = read_image(path)
    entry: dict[str, Any] = {"sha256": file_sha256(path), "shape": list(img.shape), "pixels": pixel_sha256(img)}
    if with_variants:
        entry["variants"] = derived_hashes(img)
    return entry


def _is_lr(rel: str) -> bool:
    return "LR_bicubic/" in rel or rel.endswith("_LR" + Path(rel).suffix)


def scan_copy(folder: str | Path) -> dict[str, dict]:
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if is_image_file(p))
    if not files:
        raise BadInputError(f"{folder}: no image files to record")
    return {p.relative_to(folder).as_posix(): describe_file(p, not _is_lr(p.relative_to(folder).as_posix()))
            for p in files}


def manifest_path(name: str, manifest_dir: Path | None = None) -> Path:
    """Where ``add_copy`` records a copy of ``name``."""
    return (manifest_dir or paths.manifests_dir()) / f"{name}.json"


def _read_folder(folder: Path) -> dict[str, dict]:
    out = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            try:
                out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise BadInputError(f"{path}: not a valid manifest ({exc})") from None
    return out


def load_manifests(manifest_dir: Path | None = None) -> dict[str, dict]:
    """Name -> manifest: those of ``manifest_dir``, else srbench's own, each replaced by the user's where an
    installed package recorded more copies of it (``add_copy`` starts the user's from srbench's)."""
    if manifest_dir is not None:
        return _read_folder(manifest_dir)
    out = _read_folder(paths.MANIFESTS_DIR)
    if paths.manifests_dir() != paths.MANIFESTS_DIR:
        out.update(_read_folder(paths.manifests_dir()))
    return out


def add_copy(folder: str | Path, name: str, copy_id: str, source: str, manifest_dir: Path | None = None) -> Path:
    """Record (or re-record) ``folder`` as copy ``copy_id`` of dataset ``name``."""
    path = manifest_path(name, manifest_dir)
    known = paths.MANIFESTS_DIR / f"{name}.json"
    start = path if path.exists() else known if manifest_dir is None and known.exists() else None
    manifest: dict[str, Any] = (json.loads(start.read_text(encoding="utf-8")) if start is not None
                                else {"name": name, "copies": []})
    manifest["copies"] = [c for c in manifest["copies"] if c["id"] != copy_id]
    manifest["copies"].append({"id": copy_id, "source": source, "files": scan_copy(folder)})
    manifest["copies"].sort(key=lambda c: c["id"])
    atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


@dataclass
class FileFinding:
    file: str  # relative to the verified folder ("" for a missing file)
    known: str  # the known copy's relative path ("" for an extra file)
    status: str  # identical, re-encoded, derived, renamed, duplicate, different, missing, extra, unreadable
    detail: str = ""


@dataclass
class VerifyReport:
    folder: str
    dataset: str | None
    copy: str | None
    source: str | None
    findings: list[FileFinding] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(f.status for f in self.findings))

    @property
    def identical(self) -> bool:
        return self.copy is not None and all(f.status == "identical" for f in self.findings)

    def to_dict(self) -> dict:
        return {
            "folder": self.folder, "dataset": self.dataset, "copy": self.copy, "source": self.source,
            "identical": self.identical, "counts": self.counts,
            "files": [f.__dict__ for f in self.findings],
        }

    def describe(self) -> str:
        if self.copy is None:
            return f"{self.folder}: matches no known copy of any dataset (no file or pixel hash in common)"
        head = f"{self.folder}: {self.dataset} / copy '{self.copy}' ({self.source})"
        if self.identical:
            return f"{head}: identical, {len(self.findings)} files"
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        lines = [f"{head}: differs ({counts})"]
        for f in self.findings:
            if f.status != "identical":
                label = f.file or f.known
                lines.append(f"  {f.status:10s} {label}" + (f" <- {f.known}" if f.file and f.known else "")
                             + (f": {f.detail}" if f.detail else ""))
        return "\n".join(lines)


def _describe_derivation(variant: str) -> str:
    parts = []
    for part in variant.split("+"):
        if part.startswith("gray:"):
            parts.append(f"grayscale conversion ({part[5:]})")
        elif part.startswith("modcrop"):
            parts.append(f"cropped to a multiple of {part[7:]}")
    return " and ".join(parts)


Candidate = tuple[str, str, str, str, str]  # (status, dataset, copy id, known rel, detail)


@dataclass
class _KnownHashes:
    """Every known file by its sha256, and by the short pixel hash of itself and its derived versions."""

    by_sha: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    by_pixels: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, manifests: dict[str, dict]) -> _KnownHashes:
        known = cls()
        for ds_name, manifest in manifests.items():
            for copy in manifest["copies"]:
                for rel, entry in copy["files"].items():
                    known.by_sha.setdefault(entry["sha256"], []).append((ds_name, copy["id"], rel))
                    derived = {"": entry["pixels"][:VARIANT_HASH_CHARS], **entry.get("variants", {})}
                    for variant, h in derived.items():
                        known.by_pixels.setdefault(h, []).append((ds_name, copy["id"], rel, variant))
        return known

    def candidates(self, path: Path) -> list[Candidate]:
        """What a file may be; raises BadInputError for a file that is not a readable image."""
        sha = content_sha256(path)
        if sha in self.by_sha:
            return [("identical", ds, cp, known, "") for ds, cp, known in self.by_sha[sha]]
        hits = self.by_pixels.get(_short(read_image(path)), [])
        return [("re-encoded" if not v else "derived", ds, cp, known,
                 "same pixels, different file bytes" if not v else _describe_derivation(v))
                for ds, cp, known, v in hits]


def verify_folder(folder: str | Path, manifest_dir: Path | None = None) -> VerifyReport:
    """Which known copy ``folder`` is, file by file: identical, re-encoded, derived (how), different."""
    folder = Path(folder)
    manifests = load_manifests(manifest_dir)
    files = image_files(folder, recursive=True)  # broken links included: reported as unreadable
    if not files:
        raise BadInputError(f"{folder}: no image files to verify")
    known = _KnownHashes.of(manifests)
    unreadable: dict[str, str] = {}  # folder rel -> error
    pending: dict[str, list[Candidate]] = {}
    for path in files:
        rel = path.relative_to(folder).as_posix()
        try:
            pending[rel] = known.candidates(path)
        except BadInputError as exc:
            pending[rel], unreadable[rel] = [], str(exc)
    votes = Counter((ds, cp) for candidates in pending.values() for _, ds, cp, _, _ in candidates)
    if not votes:
        return VerifyReport(str(folder), None, None, None, [FileFinding(rel, "", "unknown") for rel in pending])
    (ds_name, copy_id), _ = votes.most_common(1)[0]
    copy = next(c for c in manifests[ds_name]["copies"] if c["id"] == copy_id)
    findings = _one_file_per_known([
        _finding(folder, rel, [c for c in candidates if c[1] == ds_name and c[2] == copy_id],
                 unreadable.get(rel), copy["files"]) for rel, candidates in pending.items()])
    seen_known = {f.known for f in findings}
    findings += [FileFinding("", k, "missing") for k in copy["files"] if k not in seen_known]
    return VerifyReport(str(folder), ds_name, copy_id, copy["source"], findings)


def _finding(folder: Path, rel: str, mine: list[Candidate], unreadable: str | None,
             known_files: dict[str, dict]) -> FileFinding:
    """What one file of the folder is, against the copy the folder was found to be."""
    if mine:
        # Images are paired by name, so a known image under another name (two swapped, one renamed) gives other
        # numbers however identical its bytes: the name must be the known file's (its format may differ).
        named = [c for c in mine if _image_key(c[3]) == _image_key(rel)]
        status, _, _, known, detail = (named or mine)[0]
        if not named:  # the line shows the known name it holds; the detail keeps how its bytes differ, if they do
            status = "renamed"
        return FileFinding(rel, known, status, detail)
    if unreadable is not None:
        return FileFinding(rel, rel if rel in known_files else "", "unreadable", unreadable)
    if (same := _same_name(rel, known_files)) is not None:
        return FileFinding(rel, same, "different", _size_note(folder / rel, known_files[same]))
    return FileFinding(rel, "", "extra", "not in this copy")


_NAME_TAG = re.compile(r"(?:_?[xX](\d+)|_LR|_HR)$")
_SCALE_FOLDER = re.compile(r"^[xX](\d+)$")


def _image_key(rel: str) -> tuple[str, int | None]:
    """The image a file stands for as the dataset reader pairs them: its stem without an LR or HR tag (``babyx4``,
    ``baby_x4``, ``baby_LR``, ``img_001_SRF_4_HR``), and its scale (from that tag, else from an ``X4`` folder)."""
    path = Path(rel)
    found = _NAME_TAG.search(path.stem)
    name = path.stem[: found.start()] if found and found.start() else path.stem
    scale = int(found.group(1)) if found and found.start() and found.group(1) else None
    if scale is None:
        scale = next((int(m.group(1)) for part in path.parts[:-1] if (m := _SCALE_FOLDER.match(part))), None)
    return name, scale


def _one_file_per_known(findings: list[FileFinding]) -> list[FileFinding]:
    """A known file found twice (``baby.png`` and a copy ``baby (1).png``) counts once: the file of its name, else
    the first; the others are duplicates (one image scored twice)."""
    claims: dict[str, list[FileFinding]] = {}
    for f in findings:
        if f.known and f.status not in ("different", "unreadable"):
            claims.setdefault(f.known, []).append(f)
    out = []
    for f in findings:
        holders = claims.get(f.known, [])
        keeper = next((h for h in holders if h.status != "renamed"), holders[0] if holders else None)
        if keeper is None or f is keeper:
            out.append(f)
        else:
            out.append(FileFinding(f.file, "", "duplicate", f"a second copy of {f.known} (as {keeper.file})"))
    return out


def _same_name(rel: str, known_files: dict[str, dict]) -> str | None:
    """The known file a differing file stands for: same relative path, else the one HR file of that stem."""
    if rel in known_files:
        return rel
    stem = Path(rel).stem
    same = [k for k in known_files if Path(k).stem == stem and not _is_lr(k)]
    return same[0] if len(same) == 1 else None


def _size_note(path: Path, entry: dict) -> str:
    try:
        shape = list(read_image(path).shape)
    except BadInputError as exc:
        return str(exc)
    if shape != entry["shape"]:
        return f"shape {shape} vs known {entry['shape']}"
    return "same size, different pixels"
