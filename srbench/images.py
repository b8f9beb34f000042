"""Reading and writing images, with one clear error per unusable file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from srbench.errors import BadInputError

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit image as uint8, HxW (grayscale) or HxWx3 (RGB; palette images are expanded).

    Alpha channels, 16-bit and other modes are refused rather than silently converted: each changes the
    numbers, and the user must decide how to flatten them.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                has_alpha = "transparency" in im.info
                im = im.convert("RGBA" if has_alpha else "RGB")
                mode = im.mode
            if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
                raise BadInputError(f"{path}: has an alpha channel ({mode}); flatten it to RGB first")
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                raise BadInputError(
                    f"{path}: {mode} image ({'16-bit' if mode.startswith('I;16') else 'non-8-bit'}); "
                    "srbench evaluates 8-bit images, convert it to 8-bit first"
                )
            if mode == "1":
                im = im.convert("L")
                mode = "L"
            if mode not in ("L", "RGB"):
                raise BadInputError(f"{path}: unsupported image mode {mode}; use 8-bit RGB or grayscale")
            arr = np.asarray(im, dtype=np.uint8)
    except BadInputError:
        raise
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise BadInputError(f"{path}: not a readable image (corrupt or unknown format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"{path}: corrupt or truncated image ({exc})") from None
    return np.ascontiguousarray(arr)


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
    """Write via a temporary file in the same folder, fsync, then rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


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
