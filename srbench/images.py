"""Reading and writing images, with one clear error per unusable file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import stat
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srbench.errors import BadInputError

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def is_image_candidate(path: Path) -> bool:
    """Named like an image and not a folder, whether or not it can be opened.

    Unlike :func:`is_image_file` this keeps dangling and looping symbolic links, so that a folder scan hands
    them to :func:`decode_image`, which says what is wrong with them, instead of dropping them silently.
    """
    if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
        return False
    return path.is_symlink() or path.is_file()


# --- reading -------------------------------------------------------------------------------------------------
#
# One reader for every command. MODES is the one table of what files may store and what srbench does with
# each; the reader dispatches on it and docs/inputs.md prints it (modes_markdown).

DEFAULT_MAX_PIXELS: int = 2**27
"""134,217,728 pixels: a 16K frame (15360x8640) fits, and so do 8K SR outputs (7680x4320, 33 MP)."""

_max_pixels: int = DEFAULT_MAX_PIXELS

# Pillow's decompression-bomb guard is a process-wide setting (Image.MAX_IMAGE_PIXELS, ~89 MP, an error above
# twice that) checked inside Image.open, where the reader cannot yet say which file and which limit. srbench
# applies its own limit instead: it reads width x height from the header (Image.open parses headers only) and
# refuses anything above the limit before a pixel buffer exists. So that Pillow's guard neither pre-empts that
# check with its own limit and message nor warns about files srbench refuses anyway, it is switched off while
# the header is parsed and set to srbench's limit while the one frame that passed is decoded (a backstop
# against a decoder that allocates more than the header said). The same lock forces Pillow's
# LOAD_TRUNCATED_IMAGES off (some libraries switch it on), so a truncated file is an error, never gray fill.
# The lock keeps concurrent reads from seeing each other's settings.
_PILLOW_LOCK = threading.RLock()

# Formats Pillow may try: the ones IMAGE_SUFFIXES names, plus GIF. Fewer parsers see untrusted bytes, and an
# icon or a PDF renamed .png is "not an image srbench reads", not half-supported.
_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM", "GIF")


def set_max_pixels(limit: int | None) -> None:
    """The process-wide size limit (width x height) of images read; None restores DEFAULT_MAX_PIXELS."""
    global _max_pixels
    if limit is None:
        _max_pixels = DEFAULT_MAX_PIXELS
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadInputError(f"--max-pixels must be a positive whole number, got {limit!r}")
    _max_pixels = limit


def get_max_pixels() -> int:
    return _max_pixels


@dataclass(frozen=True)
class ModeRule:
    """One row of MODES: how a file stores its samples, what the reader does with them."""

    stored_as: str  # in words, for the table
    handling: str  # what the reader does: "as stored", "to 0/255", "exact scaling", "palette", "alpha", ...
    effect: str  # what srbench does, for the table and the notes


MODES: dict[str, ModeRule] = {
    "8-bit": ModeRule("gray (L) or RGB, 8 bits per sample", "as stored", "used as stored"),
    "1-bit": ModeRule("gray, 1 bit (PNG, BMP, TIFF, PBM)", "to 0/255",
                      "0 and 1 become 0 and 255 (8-bit gray); noted"),
    "low-bit": ModeRule("gray with 2 to 7 bits (PNG 2- and 4-bit; PGM/PPM with maxval below 255)", "exact scaling",
                        "scaled to 8 bits as v * 255 / maxval when that is a whole number for every sample (always "
                        "so for PNG 2- and 4-bit); noted. Otherwise refused"),
    "high-bit": ModeRule("gray, gray+alpha, RGB or RGBA with 16 bits (PNG, TIFF; PGM/PPM with maxval above 255)",
                         "exact scaling",
                         "v // 257 when every sample is a multiple of 257, i.e. an 8-bit image saved in 16 bits; "
                         "noted. Otherwise refused: real 16-bit data has no exact 8-bit form and the metrics are "
                         "defined on 8-bit images, so convert it yourself"),
    "palette": ModeRule("palette (P), 1 to 8 bits (PNG, GIF, BMP, TIFF)", "palette",
                        "expanded to RGB through its 8-bit palette; a transparency entry makes an alpha channel"),
    "alpha": ModeRule("gray+alpha (LA), RGBA, palette with transparency", "alpha",
                      "alpha 255 everywhere: dropped exactly, noted. Otherwise `infer` keeps it (upscaled "
                      "separately) and `evaluate` refuses the image: flatten it first"),
    "premultiplied alpha": ModeRule("premultiplied alpha (TIFF associated alpha)", "alpha",
                                    "alpha 255 everywhere: dropped exactly, noted. Otherwise refused everywhere: "
                                    "undoing the premultiplication is not exact"),
    "CMYK": ModeRule("CMYK or YCCK (JPEG, TIFF)", "refuse",
                     "refused: there is no RGB without colour management (MATLAB's imread returns the four CMYK "
                     "channels too); convert it to RGB yourself"),
    "frames": ModeRule("several frames (animated GIF, PNG or WebP; multi-page TIFF)", "refuse",
                       "refused: which frame is the image is a guess; save the one you mean as a single image"),
    "MPO": ModeRule("JPEG with extra pictures (MPO, from cameras)", "first frame",
                    "the first, primary picture is used (what viewers and MATLAB's imread show); noted"),
    "EXIF orientation": ModeRule("an EXIF orientation tag other than 1 (JPEG, PNG, WebP; a TIFF's Orientation tag "
                                 "too)", "ignored",
                                 "ignored: pixels are used as stored, as MATLAB's imread does and as every published "
                                 "number was computed; noted"),
    "other": ModeRule("32-bit integer (I) or float (F), signed or 12-bit samples, LAB, HSV, stored YCbCr, RGBX, "
                      "16-bit BMP, mixed bit depths, anything else", "refuse",
                      "refused, naming the mode; convert it to 8-bit RGB or gray yourself"),
}


def modes_markdown() -> str:
    """MODES as a Markdown table, for docs/inputs.md ("Images")."""
    rows = ["| Stored as | What srbench does |", "|---|---|"]
    rows += [f"| {rule.stored_as} | {rule.effect} |" for rule in MODES.values()]
    return "\n".join(rows)


@dataclass(frozen=True)
class DecodedImage:
    """An image as srbench uses it, with how the file stored it and the conversions made on the way."""

    pixels: np.ndarray  # uint8, HxW or HxWx3; HxWx4 only when decode_image(allow_alpha=True)
    stored_as: str  # e.g. "RGB 8-bit", "RGB 16-bit", "palette", "gray 1-bit"
    notes: tuple[str, ...]  # full sentences naming the file


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """An 8-bit image as uint8, HxW (gray) or HxWx3 (RGB), by the rules of MODES (notes are dropped)."""
    return decode_image(path, max_pixels=max_pixels).pixels


def decode_image(path: str | os.PathLike, *, allow_alpha: bool = False,
                 max_pixels: int | None = None) -> DecodedImage:
    """Read one image by the rules of MODES; everything else is one BadInputError line naming the file.

    ``max_pixels`` (default: the process-wide limit, see set_max_pixels) bounds width x height and is checked
    on the header, before any pixel is decoded. With ``allow_alpha`` a non-opaque alpha channel is kept as a
    4th channel (gray+alpha becomes RGBA); without it such an image is refused.
    """
    path = Path(path)
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int)
                                   or max_pixels < 1):
        raise BadInputError(f"max_pixels must be a positive whole number, got {max_pixels!r}")
    limit = max_pixels if max_pixels is not None else _max_pixels
    _check_path(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with below; opening apart names an OSError's file
    except OSError as exc:
        raise BadInputError(_os_problem(path, exc)) from None
    with fh:
        raw = _decode_raw(path, fh, limit)
    return _finish(path, raw, allow_alpha)


def _one_line(text: object, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _os_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.EACCES:
        return f"{path}: cannot be read (permission denied); check its permissions"
    if exc.errno == errno.ELOOP:
        return f"{path}: symbolic link loop (it leads back to itself); fix or remove the link"
    if exc.errno == errno.EISDIR:
        return f"{path}: is a folder, not an image file; pass the images inside it"
    return f"{path}: cannot be read ({_one_line(exc.strerror or exc)}); check the file"


def _check_path(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise BadInputError(f"{path}: broken symbolic link to {target}; fix or remove the link") from None
        raise BadInputError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise BadInputError(f"{path}: no such file (part of the path is not a folder); check the path") from None
        raise BadInputError(_os_problem(path, exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise BadInputError(f"{path}: is a folder, not an image file; pass the images inside it")
    if not stat.S_ISREG(st.st_mode):
        raise BadInputError(f"{path}: is not a regular file (a device, pipe or socket); pass an image file")


@dataclass
class _Raw:
    """Samples as stored (before the 8-bit and alpha rules), with what the file said about them."""

    samples: np.ndarray  # HxW or HxWxC, integers in 0..maxval
    maxval: int
    kind: str  # "gray", "gray+alpha", "RGB", "RGBA"
    stored_as: str
    premultiplied: bool
    notes: list[str]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KINDS = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
# Pillow modes the reader knows, as (kind, bits per sample); any other mode is refused with its name.
_MODE_KINDS = {
    "1": ("gray", 1), "L": ("gray", 8), "LA": ("gray+alpha", 8), "La": ("gray+alpha", 8), "P": ("palette", 8),
    "PA": ("palette", 8), "RGB": ("RGB", 8), "RGBA": ("RGBA", 8), "RGBa": ("RGBA", 8), "CMYK": ("CMYK", 8),
    "I;16": ("gray", 16), "I;16B": ("gray", 16), "I;16L": ("gray", 16), "I;16N": ("gray", 16),
}
_MODE_WORDS = {
    "I": "32-bit integer", "F": "32-bit float", "LAB": "CIE L*a*b*", "HSV": "HSV", "YCbCr": "YCbCr as stored",
    "RGBX": "RGB with an unspecified 4th channel", "I;16S": "signed 16-bit", "I;16BS": "signed 16-bit",
    "I;16LS": "signed 16-bit", "CMYK": "CMYK",
}


def _describe_mode(mode: str) -> str:
    words = _MODE_WORDS.get(mode)
    return f"mode {mode} ({words})" if words else f"mode {mode}"


def _unidentified(path: Path, fh, head: bytes) -> BadInputError:
    """Why Pillow opened no image: a TIFF whose samples it has no mode for (float or 32-bit RGB) by those samples,
    anything else as unreadable."""
    layout = _tiff_layout(fh) if head[:4] in (b"II*\0", b"MM\0*") else None
    if layout is not None:  # samples Pillow has no mode for; any other unopenable TIFF is unreadable
        return _refuse(path, f"TIFF image of {layout}", "other")
    return BadInputError(f"{path}: not a readable image (corrupt, or not PNG, JPEG, BMP, TIFF, WebP, PPM/PGM or GIF); "
                         "convert it to PNG")


_TIFF_SAMPLE_FORMATS = {1: "unsigned integer", 2: "signed integer", 3: "float"}


def _tiff_layout(fh) -> str | None:
    """What a TIFF's first image stores, from its tags ("3 sample(s) of 32-bit float"), for naming the samples of a
    TIFF that Pillow cannot open at all; None where the tags cannot be read or the samples are 8- or 16-bit
    unsigned, which Pillow reads (such a file failed for another reason: damage, an unknown compression)."""
    from PIL import TiffImagePlugin

    try:
        fh.seek(0)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(fh.read(8))
        fh.seek(ifd.next)
        ifd.load(fh)
        bits, samples, sample_format = (ifd.get(tag, default) for tag, default in ((258, 1), (277, 1), (339, 1)))
        bits = bits if isinstance(bits, tuple) else (bits,)
        sample_format = sample_format[0] if isinstance(sample_format, tuple) else sample_format
        kind = _TIFF_SAMPLE_FORMATS.get(sample_format, f"sample format {sample_format}")
    except Exception:  # a damaged file: the reader's general message says so
        return None
    if sample_format in (1, None) and max(bits) <= 16:  # 8- and 16-bit unsigned: not why Pillow refused it
        return None
    depths = "/".join(str(b) for b in dict.fromkeys(bits))
    return f"{samples} sample(s) of {depths}-bit {kind}"


def _refuse(path: Path, what: str, key: str) -> BadInputError:
    """The refusal for a MODES row: what the file is, then the row's reason and what to do."""
    effect = MODES[key].effect.removeprefix("refused, naming the mode; ").removeprefix("refused: ")
    return BadInputError(f"{path}: {what}; {effect}")


def _pnm_header(data: bytes) -> tuple[bytes, int, int, int, int]:
    """(magic, width, height, maxval, offset of the raster) of a PBM/PGM/PPM file."""
    magic = data[:2]
    n_fields = 2 if magic in (b"P1", b"P4") else 3
    fields: list[int] = []
    i = 2
    while len(fields) < n_fields:
        while i < len(data) and (data[i] in b" \t\r\n\v\f" or data[i] == ord("#")):
            if data[i] == ord("#"):
                while i < len(data) and data[i] not in b"\r\n":
                    i += 1
            else:
                i += 1
        j = i
        while j < len(data) and 48 <= data[j] <= 57:
            j += 1
        if j == i:
            raise ValueError("malformed PNM header")
        fields.append(int(data[i:j]))
        i = j
    if i >= len(data) or data[i] not in b" \t\r\n\v\f":
        raise ValueError("malformed PNM header")
    return magic, fields[0], fields[1], (fields[2] if n_fields == 3 else 1), i + 1


def _pnm_samples(data: bytes) -> np.ndarray:
    """The samples of a PGM/PPM exactly as stored (Pillow rescales those whose maxval is not 255)."""
    magic, w, h, maxval, offset = _pnm_header(data)
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = w * h * channels
    if magic in (b"P5", b"P6"):
        dtype = np.dtype(">u2" if maxval > 255 else "u1")
        if len(data) - offset < count * dtype.itemsize:
            raise ValueError("the file ends before its last pixel")
        arr = np.frombuffer(data, dtype, count, offset).astype(np.uint32)
    else:
        tokens = data[offset:].split(maxsplit=count)
        if len(tokens) < count:
            raise ValueError("the file ends before its last pixel")
        arr = np.array([int(t) for t in tokens[:count]], dtype=np.uint32)
    if arr.size and int(arr.max()) > maxval:
        raise ValueError(f"a sample is above the maxval {maxval}")
    arr = arr.reshape(h, w, channels)
    return arr[..., 0] if channels == 1 else arr


def _png_damage(fh) -> str | None:
    """What is wrong with a PNG's chunk structure, or None: every chunk's CRC must match and IEND must come.

    Pillow does not check the CRC of image data (IDAT), so a flipped bit there can decode to wrong pixels
    without a word; the CRCs are what PNG has to catch exactly that.
    """
    fh.seek(8)
    while True:
        header = fh.read(8)
        if len(header) < 8:
            return "the file ends before its IEND chunk"
        length, kind = int.from_bytes(header[:4], "big"), header[4:]
        crc = zlib.crc32(kind)
        left = length
        while left:
            block = fh.read(min(left, 1 << 20))
            if not block:
                return f"the file ends inside its {kind.decode('latin-1')!r} chunk"
            crc = zlib.crc32(block, crc)
            left -= len(block)
        stored = fh.read(4)
        if len(stored) < 4:
            return f"the file ends inside its {kind.decode('latin-1')!r} chunk"
        if int.from_bytes(stored, "big") != crc & 0xFFFFFFFF:
            return f"CRC mismatch in its {kind.decode('latin-1')!r} chunk"
        if kind == b"IEND":
            return None


def _exact_16bit(path: Path, fh, high_bytes: np.ndarray, stored_as: str) -> np.ndarray:
    """The 16-bit samples of a colour PNG or TIFF (Pillow keeps only their top byte).

    OpenCV decodes them; its result must agree with Pillow's top bytes, which guards channel order and any
    decoder difference.
    """
    try:
        import cv2
    except ImportError:
        raise BadInputError(f"{path}: {stored_as} image; reading 16-bit colour samples needs OpenCV "
                            "(pip install opencv-python-headless)") from None
    fh.seek(0)
    out = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    channels = high_bytes.shape[2]
    if out is not None and out.ndim == 3 and out.shape[2] in (3, 4):
        out = out[..., [2, 1, 0, 3][: out.shape[2]]]  # OpenCV's BGR(A) to RGB(A)
        if out.shape[2] == 4 and channels == 3:
            out = out[..., :3]  # a tRNS colour key, which srbench ignores as MATLAB's imread does
    if (out is None or out.dtype != np.uint16 or out.shape != high_bytes.shape
            or not np.array_equal(np.right_shift(out, 8).astype(np.uint8), high_bytes)):
        raise BadInputError(f"{path}: {stored_as} image whose 16-bit samples could not be read exactly; "
                            "save it again as 16-bit PNG, or convert it to 8-bit yourself")
    return out.astype(np.uint32)


def _tiff_tuple(im, tag: int, default: tuple) -> tuple:
    value = im.tag_v2.get(tag, default)
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _tiff_depth(path: Path, im, kind: str) -> int:
    bits, sample_format = _tiff_tuple(im, 258, (1,)), _tiff_tuple(im, 339, (1,))
    if len(set(bits)) != 1:
        raise _refuse(path, f"TIFF with mixed bit depths {bits}", "other")
    if set(sample_format) != {1}:
        raise _refuse(path, f"TIFF with signed or floating-point samples (SampleFormat {sample_format})", "other")
    if kind == "gray" and bits[0] == 16 and im.tag_v2.get(262) == 0:
        raise _refuse(path, "16-bit white-is-zero TIFF image", "other")
    return bits[0]


def _check_bmp(path: Path, head: bytes) -> None:
    header_size = int.from_bytes(head[14:18], "little")
    bpp = int.from_bytes(head[28:30] if header_size >= 40 else head[24:26], "little")
    if bpp == 16:
        raise _refuse(path, "16-bit BMP (5 or 6 bits per colour)", "other")


def _kind_and_depth(path: Path, im, head: bytes) -> tuple[str, int, int | None]:
    """(kind, bits per sample, PNM maxval) from the file's own header, not from Pillow's mode."""
    fmt, mode = im.format, im.mode
    if fmt == "PNG":
        if head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR" or head[25] not in _PNG_KINDS:
            raise ValueError("malformed PNG header")
        return _PNG_KINDS[head[25]], head[24], None
    if fmt == "PPM":
        if head[:2] in (b"Pf", b"PF"):
            raise _refuse(path, "32-bit float PFM image", "other")
        magic, _, _, maxval, _ = _pnm_header(head)
        return ("RGB" if magic in (b"P3", b"P6") else "gray"), (8 if maxval == 255 else maxval.bit_length()), maxval
    if mode not in _MODE_KINDS:
        raise _refuse(path, f"{_describe_mode(mode)} image", "other")
    kind, depth = _MODE_KINDS[mode]
    if fmt == "TIFF":
        depth = _tiff_depth(path, im, kind)
    elif fmt == "BMP" and head[:2] == b"BM":
        _check_bmp(path, head)
    if kind == "CMYK" and fmt == "JPEG" and im.info.get("adobe_transform") == 2:
        kind = "YCCK"
    return kind, depth, None


def _classify(path: Path, im, head: bytes) -> tuple[str, str, int, int | None]:
    """(MODES key, kind, bits per sample, PNM maxval)."""
    kind, depth, maxval = _kind_and_depth(path, im, head)
    fmt = im.format
    if kind in ("CMYK", "YCCK"):
        raise _refuse(path, f"{kind} {fmt} image", "CMYK")
    if kind == "palette":
        key = "palette"
    elif depth == 1 and im.mode == "1":
        key = "1-bit"
    elif depth == 8:
        key = "8-bit"
    elif maxval is not None:
        key = "low-bit" if maxval < 255 else "high-bit"
    elif (fmt == "PNG" and depth in (2, 4) and kind == "gray") or (fmt in ("PNG", "TIFF") and depth == 16):
        key = "low-bit" if depth < 8 else "high-bit"
    else:
        raise _refuse(path, f"{kind} {depth}-bit {fmt} image ({_describe_mode(im.mode)})", "other")
    return key, kind, depth, maxval


def _decode_raw(path: Path, fh, limit: int) -> _Raw:
    from PIL import Image, ImageFile, UnidentifiedImageError

    head = fh.read(65536)  # enough for a PNM header with comments; PNG, BMP and JPEG need far less
    fh.seek(0)
    # Pillow reports damaged metadata with warnings: they are collected and judged below, not printed.
    with _PILLOW_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        try:
            try:
                im = Image.open(fh, formats=_FORMATS)
            except UnidentifiedImageError:
                raise _unidentified(path, fh, head) from None
            with im:
                w, h = im.size
                if w < 1 or h < 1:
                    raise BadInputError(f"{path}: empty image ({w}x{h}); remove it")
                if w * h > limit:
                    raise BadInputError(
                        f"{path}: {w}x{h} is {w * h} pixels, above the limit of {limit} (a guard against "
                        f"decompression bombs); pass --max-pixels {w * h} or more if the image is genuine")
                Image.MAX_IMAGE_PIXELS = limit
                raw = _decode_samples(path, im, head, fh)
        except BadInputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadInputError(f"{path}: decoding needs more than the limit of {limit} pixels, more than its "
                                "header declares (corrupt or a decompression bomb); remove it") from None
        except Exception as exc:  # decoders raise many types on untrusted bytes: each one is bad input
            raise BadInputError(f"{path}: corrupt or truncated image ({_one_line(exc) or type(exc).__name__}); "
                                "re-save it or remove it") from None
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved
    for caught_warning in caught:  # not ``w``: that name holds the image width above
        if not (issubclass(caught_warning.category, UserWarning) and "PIL" in Path(caught_warning.filename).parts):
            warnings.warn_explicit(caught_warning.message, caught_warning.category, caught_warning.filename,
                                   caught_warning.lineno)  # not ours to judge
            continue
        message = _one_line(caught_warning.message).rstrip(".")
        if message.startswith(("Truncated File Read", "Tag data larger than file")):
            # A TIFF directory entry pointing past the end: Pillow drops the tag (bit depth, strip offsets...)
            # and would decode by defaults, so the file is refused rather than guessed.
            raise BadInputError(f"{path}: corrupt or truncated image ({message}); re-save it or remove it")
        raw.notes.append(f"{path}: Pillow warned while reading it: {message}.")
    return raw


def _frame_notes(path: Path, im) -> list[str]:
    frames = getattr(im, "n_frames", 1)
    if frames == 1:
        return []
    if im.format != "MPO":
        raise _refuse(path, f"{im.format} with {frames} frames", "frames")
    return [f"{path}: holds {frames} pictures (MPO); the first, primary one is used."]


def _orientation_notes(path: Path, im) -> list[str]:
    try:
        orientation = im.getexif().get(0x0112)
    except Exception:  # unreadable EXIF changes nothing: the orientation is ignored anyway
        orientation = None
    if orientation is None or orientation == 1:
        return []
    return [f"{path}: EXIF orientation {orientation} ignored: pixels are used as stored, as MATLAB's imread does."]


def _keep_stored_orientation(im) -> None:
    """Pixels as stored, as MATLAB's imread reads them: Pillow turns a TIFF by its Orientation tag while loading
    it, and reports the turned size from the start (a 180-degree turn scored an SR image at 11 dB instead of 28).
    The tag is taken out before loading and the stored size put back (Pillow keeps it as ``_tile_size``); the
    header check after decoding catches a Pillow that turns it some other way."""
    exif = im.getexif()
    if exif.get(0x0112, 1) == 1:
        return
    del exif[0x0112]
    if 0x0112 in im.tag_v2:
        del im.tag_v2[0x0112]
    stored = getattr(im, "_tile_size", None)
    if stored is not None:
        im._size = tuple(stored)


@dataclass
class _Layout:
    """What the header says, updated by the decoder where decoding tells more (palette transparency)."""

    kind: str
    depth: int
    maxval: int | None
    stored_as: str


def _read_samples(path: Path, im, fh, handling: str, layout: _Layout, notes: list[str]) -> np.ndarray:
    """The samples by the rule ``handling`` of MODES; sets ``layout.maxval`` to their range."""
    if handling == "palette":
        layout.kind = "RGBA" if ("transparency" in im.info or im.mode == "PA") else "RGB"
        if layout.kind == "RGBA":
            layout.stored_as = "palette with transparency"
        layout.maxval = 255
        notes.append(f"{path}: palette image expanded to {layout.kind} through its 8-bit palette (nothing is lost).")
        return np.asarray(im.convert(layout.kind))
    if handling == "to 0/255":
        notes.append(f"{path}: 1-bit image read as 8-bit gray (0 and 1 become 0 and 255).")
        layout.maxval = 255
        return np.asarray(im.convert("L"))
    if handling == "as stored":
        layout.maxval = 255
        return np.asarray(im)
    if handling != "exact scaling":
        raise AssertionError(f"MODES has no decoder for {handling!r}")
    return _exact_samples(path, im, fh, layout, notes)


def _exact_samples(path: Path, im, fh, layout: _Layout, notes: list[str]) -> np.ndarray:
    if layout.maxval is not None:  # PGM/PPM whose maxval is not 255: Pillow would rescale them, rounding
        fh.seek(0)
        layout.stored_as = f"{layout.kind} {layout.depth}-bit (maxval {layout.maxval})"
        return _pnm_samples(fh.read())
    if layout.depth < 8:  # PNG 2- and 4-bit gray: Pillow's bit replication is exactly v * 255 / (2**depth - 1)
        layout.maxval = 255
        notes.append(f"{path}: {layout.depth}-bit gray image scaled exactly to 8 bits "
                     f"(v * {255 // (2**layout.depth - 1)}).")
        return np.asarray(im)
    layout.maxval = 65535
    if layout.kind == "gray":  # Pillow keeps 16-bit gray (I;16) exactly
        return np.asarray(im).astype(np.uint32)
    high = np.asarray(im)  # gray+alpha 16-bit PNG comes as RGBA from Pillow, gray in R, G and B
    samples = _exact_16bit(path, fh, high, layout.stored_as)
    return samples[..., [0, 3]] if layout.kind == "gray+alpha" else samples


def _decode_samples(path: Path, im, head: bytes, fh) -> _Raw:
    notes = _frame_notes(path, im)
    key, kind, depth, maxval = _classify(path, im, head)
    if im.format == "PNG":
        damage = _png_damage(fh)
        if damage:
            raise BadInputError(f"{path}: corrupt or truncated image ({damage}); re-save it or remove it")
        fh.seek(0)
    layout = _Layout(kind, depth, maxval, "palette" if key == "palette" else f"{kind} {depth}-bit")
    premultiplied = im.mode in ("La", "RGBa")
    orientation = _orientation_notes(path, im)  # before loading: Pillow's TIFF loader applies the tag, then drops it
    if im.format == "TIFF":
        _keep_stored_orientation(im)
    im.load()
    samples = _read_samples(path, im, fh, MODES[key].handling, layout, notes)
    if samples.ndim not in (2, 3) or samples.shape[:2] != (im.size[1], im.size[0]):
        raise ValueError(f"decoded shape {samples.shape} does not match the header's {im.size[0]}x{im.size[1]}")
    notes += orientation
    assert layout.maxval is not None  # _read_samples sets it for every handling
    return _Raw(samples, layout.maxval, layout.kind, layout.stored_as, premultiplied, notes)


def _finish(path: Path, raw: _Raw, allow_alpha: bool) -> DecodedImage:
    """The 8-bit rule, then the alpha rule, of MODES."""
    arr, notes = raw.samples, list(raw.notes)
    if raw.maxval != 255:
        wide = arr.astype(np.uint64) * 255
        inexact = wide % raw.maxval != 0
        if inexact.any():
            step = raw.maxval // math.gcd(raw.maxval, 255)
            raise BadInputError(
                f"{path}: {raw.stored_as} image uses {np.unique(arr).size} distinct levels and {int(inexact.sum())} "
                f"of its {arr.size} samples are not multiples of {step}, so it has no exact 8-bit form; convert it "
                "to 8-bit yourself (the metrics are defined on 8-bit images)")
        arr = (wide // raw.maxval).astype(np.uint8)
        if raw.maxval == 65535:
            notes.append(f"{path}: {raw.stored_as} image read as 8-bit exactly: every sample is a multiple of 257 "
                         "(an 8-bit image saved in 16 bits), so v // 257 loses nothing.")
        else:
            notes.append(f"{path}: {raw.stored_as} image scaled exactly to 8 bits (v * 255 / {raw.maxval}).")
    arr = np.asarray(arr, dtype=np.uint8)
    if raw.kind in ("gray+alpha", "RGBA"):
        color, alpha = arr[..., :-1], arr[..., -1]
        if (alpha == 255).all():
            arr = color[..., 0] if raw.kind == "gray+alpha" else color
            notes.append(f"{path}: alpha channel is 255 everywhere and was dropped (nothing changes).")
        elif raw.premultiplied:
            raise BadInputError(f"{path}: has a non-opaque premultiplied alpha channel; flatten it first")
        elif not allow_alpha:
            raise BadInputError(f"{path}: has a non-opaque alpha channel ({int((alpha != 255).sum())} pixels are "
                                "not opaque); flatten it first")
        elif raw.kind == "gray+alpha":
            arr = np.dstack([color[..., 0]] * 3 + [alpha])
            notes.append(f"{path}: gray+alpha image read as RGBA (the gray copied into R, G and B).")
    return DecodedImage(np.ascontiguousarray(arr), raw.stored_as, tuple(notes))


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 image as PNG atomically (a crash never leaves a half-written file)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, dtype=np.uint8)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _umask_mode() -> int:
    # mkstemp creates 0600; results are meant to be read by others like any file the user writes.
    current = os.umask(0)
    os.umask(current)
    return 0o666 & ~current


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, then rename: readers never see a partial file.

    Any failure (read-only folder, full disk, a file where a folder should be) is one OutputError naming the
    path and the OS's reason, and leaves neither the temporary file nor a partial ``path`` behind.
    """
    from srbench.errors import OutputError

    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            # Already gone, or the folder refuses even that: the first error is the one to report.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError.from_os_error(path, exc) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove it is writable by creating and removing a small file, so that a
    command fails in its first second, not after hours of work; an OutputError names the folder otherwise."""
    from srbench.errors import OutputError

    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write to {folder}: it is a file, not a folder")
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".srbench-write-test.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\0")  # one byte: an empty file can still be created on a full disk
    except OSError as exc:
        raise OutputError.from_os_error(folder, exc, verb="write to") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return folder


def image_files(folder: Path, *, recursive: bool = False, follow_links: bool = False) -> list[Path]:
    """The image files of a folder, sorted; broken or looping symbolic links included (see
    :func:`is_image_candidate`): the reader reports them, a listing never drops them silently. With
    ``follow_links`` a recursive listing enters symbolic links to folders too (each real folder once, so a link
    loop ends), as a results tree assembled from links (``results/Set5 -> ../runs/42/Set5``) needs."""
    if recursive and follow_links:
        found: Iterable[Path] = _walk_through_links(folder)
    else:
        found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if is_image_candidate(p))


def _walk_through_links(folder: Path) -> Iterator[Path]:
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        # Real folders before links to them, each in name order: a file reached both ways is listed by its real
        # path, the same on every file system (the paths are part of a folder source's identity).
        dirs.sort(key=lambda name: (os.path.islink(os.path.join(root, name)), name))
        yield from (Path(root) / name for name in files)


def content_sha256(path: Path) -> str:
    """sha256 of a file's bytes, or why it cannot be read (a broken link, a folder): fingerprints stay
    computable, and the bad file is reported when it is read as an image."""
    try:
        return file_sha256(path)
    except OSError as exc:
        return f"unreadable:{exc.strerror or type(exc).__name__}"


def describe_channels(img: np.ndarray) -> str:
    """'grayscale' or 'N channels', for error messages."""
    return "grayscale" if img.ndim == 2 else f"{img.shape[2]} channels"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pixel_sha256(img: np.ndarray) -> str:
    """Hash of decoded pixels (shape, dtype, values): equal for lossless re-encodings of one image."""
    img = np.ascontiguousarray(img)
    h = hashlib.sha256(f"{img.shape}|{img.dtype.str}|".encode())
    h.update(img.tobytes())
    return h.hexdigest()
