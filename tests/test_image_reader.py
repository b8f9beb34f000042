"""Issue 8, items 3, 4, 5 and 8: one image reader for every command, one table of modes and bit depths.

Every input is generated here. Each test fails on the code before the fix: there, 16-bit RGB was cut to its
top byte, CMYK went through `infer` as RGB + alpha, EXIF orientation went unmentioned, Pillow's own
decompression-bomb limit stopped evaluations, and broken links in an input folder were dropped silently.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from srbench.errors import BadInputError
from srbench.images import (
    DEFAULT_MAX_PIXELS,
    MODES,
    DecodedImage,
    decode_image,
    get_max_pixels,
    modes_markdown,
    read_image,
    set_max_pixels,
)

RNG = np.random.default_rng(8)
RGB = RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8)
GRAY = RNG.integers(0, 256, (6, 7)).astype(np.uint8)


@pytest.fixture(autouse=True)
def _default_limit():
    set_max_pixels(None)
    yield
    set_max_pixels(None)  # --max-pixels is process-wide: never leak a small limit into other tests


# -- a PNG writer for what Pillow cannot write (16-bit colour, 2-bit gray), exact by construction ------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(samples: np.ndarray, color_type: int, depth: int, *, size: tuple[int, int] | None = None,
              extra: bytes = b"") -> bytes:
    """A PNG holding ``samples`` exactly (HxW or HxWxC; 16-bit stored big-endian; depth < 8 packed)."""
    samples = np.asarray(samples)
    h, w = samples.shape[:2]
    rows = []
    for row in samples.reshape(h, w, -1):
        if depth == 16:
            raw = row.astype(">u2").tobytes()
        elif depth == 8:
            raw = row.astype(np.uint8).tobytes()
        else:
            per_byte = 8 // depth
            vals = np.concatenate([row.ravel(), np.zeros((-len(row.ravel())) % per_byte, int)]).reshape(-1, per_byte)
            shifts = 8 - depth * (np.arange(per_byte) + 1)
            raw = (vals << shifts).sum(axis=1).astype(np.uint8).tobytes()
        rows.append(b"\0" + raw)
    width, height = size or (w, h)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + _chunk(b"IEND", b""))


def _save(path: Path, what) -> Path:
    if isinstance(what, Image.Image):
        what.save(path)
    else:
        path.write_bytes(what)
    return path


def _refusal(path: Path, **kw) -> str:
    with pytest.raises(BadInputError) as info:
        decode_image(path, **kw)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "; " in message
    return message


# -- 8-bit, 1-bit, palette -------------------------------------------------------------------------------------


def test_8_bit_gray_and_rgb_are_used_as_stored(tmp_path):
    for name, arr, stored in (("gray.png", GRAY, "gray 8-bit"), ("rgb.png", RGB, "RGB 8-bit"),
                              ("rgb.bmp", RGB, "RGB 8-bit"), ("rgb.tif", RGB, "RGB 8-bit"),
                              ("gray.pgm", GRAY, "gray 8-bit"), ("rgb.webp", RGB, "RGB 8-bit")):
        path = tmp_path / name
        Image.fromarray(arr).save(path, **({"lossless": True} if name.endswith(".webp") else {}))
        decoded = decode_image(path)
        assert isinstance(decoded, DecodedImage)
        assert decoded.pixels.dtype == np.uint8 and decoded.stored_as == stored and decoded.notes == ()
        np.testing.assert_array_equal(decoded.pixels, arr)
        np.testing.assert_array_equal(read_image(path), arr)


def test_1_bit_becomes_0_and_255_with_a_note(tmp_path):
    path = _save(tmp_path / "bits.png", Image.fromarray(GRAY > 127))
    decoded = decode_image(path)
    np.testing.assert_array_equal(decoded.pixels, np.where(GRAY > 127, 255, 0))
    assert decoded.stored_as == "gray 1-bit"
    assert decoded.notes == (f"{path}: 1-bit image read as 8-bit gray (0 and 1 become 0 and 255).",)
    pbm = _save(tmp_path / "bits.pbm", b"P1 3 1\n0 1 0\n")
    np.testing.assert_array_equal(decode_image(pbm).pixels, [[255, 0, 255]])  # PBM: 1 is black


def test_2_bit_gray_png_is_scaled_exactly(tmp_path):
    levels = RNG.integers(0, 4, (5, 9))
    path = _save(tmp_path / "two.png", png_bytes(levels, 0, 2))
    decoded = decode_image(path)
    np.testing.assert_array_equal(decoded.pixels, levels * 85)
    assert decoded.notes == (f"{path}: 2-bit gray image scaled exactly to 8 bits (v * 85).",)


def test_palette_is_expanded_and_its_transparency_is_alpha(tmp_path):
    pal = Image.fromarray(RGB).convert("P")
    path = _save(tmp_path / "pal.png", pal)
    decoded = decode_image(path)
    np.testing.assert_array_equal(decoded.pixels, np.asarray(pal.convert("RGB")))
    # docs/inputs.md: every conversion the reader makes is noted (the palette's was not)
    assert decoded.notes == (f"{path}: palette image expanded to RGB through its 8-bit palette (nothing is lost).",)
    index = int(np.asarray(pal)[0, 0])
    clear = tmp_path / "clear.png"
    pal.save(clear, transparency=index)
    n_clear = int((np.asarray(pal) == index).sum())
    assert _refusal(clear) == (f"{clear}: has a non-opaque alpha channel ({n_clear} pixels are not opaque); "
                               "flatten it first")
    kept = decode_image(clear, allow_alpha=True)
    assert kept.stored_as == "palette with transparency" and kept.pixels.shape == (6, 7, 4)
    np.testing.assert_array_equal(kept.pixels[..., 3], np.where(np.asarray(pal) == index, 0, 255))
    np.testing.assert_array_equal(kept.pixels[..., :3], np.asarray(pal.convert("RGB")))


# -- alpha -----------------------------------------------------------------------------------------------------


def test_opaque_alpha_is_dropped_exactly_and_other_alpha_refused_or_kept(tmp_path):
    opaque = _save(tmp_path / "opaque.png", Image.fromarray(np.dstack([RGB, np.full((6, 7), 255, np.uint8)])))
    decoded = decode_image(opaque)
    np.testing.assert_array_equal(decoded.pixels, RGB)
    assert decoded.notes == (f"{opaque}: alpha channel is 255 everywhere and was dropped (nothing changes).",)

    alpha = np.full((6, 7), 255, np.uint8)
    alpha[2, 3] = 254
    soft = _save(tmp_path / "soft.png", Image.fromarray(np.dstack([RGB, alpha])))
    assert _refusal(soft) == f"{soft}: has a non-opaque alpha channel (1 pixels are not opaque); flatten it first"
    np.testing.assert_array_equal(decode_image(soft, allow_alpha=True).pixels, np.dstack([RGB, alpha]))

    la = _save(tmp_path / "la.png", Image.fromarray(np.dstack([GRAY, alpha]), "LA"))
    assert "has a non-opaque alpha channel" in _refusal(la)
    kept = decode_image(la, allow_alpha=True)
    np.testing.assert_array_equal(kept.pixels, np.dstack([GRAY, GRAY, GRAY, alpha]))
    assert kept.notes == (f"{la}: gray+alpha image read as RGBA (the gray copied into R, G and B).",)
    la_opaque = _save(tmp_path / "la_opaque.png", Image.fromarray(np.dstack([GRAY, GRAY * 0 + 255]), "LA"))
    np.testing.assert_array_equal(decode_image(la_opaque).pixels, GRAY)


# -- 16 bits: exact when an 8-bit image was saved in 16 bits, refused otherwise ---------------------------------


def test_16_bit_gray_is_exact_or_refused(tmp_path):
    exact = _save(tmp_path / "exact.png", Image.fromarray(GRAY.astype(np.uint16) * 257))
    decoded = decode_image(exact)
    np.testing.assert_array_equal(decoded.pixels, GRAY)
    assert decoded.stored_as == "gray 16-bit"
    assert decoded.notes == (f"{exact}: gray 16-bit image read as 8-bit exactly: every sample is a multiple of 257 "
                             "(an 8-bit image saved in 16 bits), so v // 257 loses nothing.",)
    deep = GRAY.astype(np.uint16) * 257
    deep[0, 0] += 1
    inexact = _save(tmp_path / "inexact.png", Image.fromarray(deep))
    assert _refusal(inexact) == (
        f"{inexact}: gray 16-bit image uses {np.unique(deep).size} distinct levels and 1 of its 42 samples are not "
        "multiples of 257, so it has no exact 8-bit form; convert it to 8-bit yourself (the metrics are defined "
        "on 8-bit images)")


def test_16_bit_rgb_png_is_no_longer_cut_to_its_top_byte(tmp_path):
    exact = _save(tmp_path / "exact.png", png_bytes(RGB.astype(np.uint16) * 257, 2, 16))
    decoded = decode_image(exact)
    np.testing.assert_array_equal(decoded.pixels, RGB)
    assert decoded.stored_as == "RGB 16-bit" and "v // 257 loses nothing" in decoded.notes[0]

    # Real 16-bit data: 0x80FF is 128.5 in 8-bit terms (rounds to 129); Pillow, the old reader, returns its top
    # byte 128 without a word. The new reader refuses it.
    deep = RGB.astype(np.uint16) * 256 + 255
    inexact = _save(tmp_path / "deep.png", png_bytes(deep, 2, 16))
    with Image.open(inexact) as im:
        old = np.asarray(im)
    np.testing.assert_array_equal(old, RGB)  # what the old reader scored
    assert not np.array_equal(old, np.round(deep / 257))
    assert _refusal(inexact).startswith(f"{inexact}: RGB 16-bit image uses {np.unique(deep).size} distinct levels "
                                        "and 126 of its 126 samples are not multiples of 257")


def test_16_bit_rgba_gray_alpha_tiff_and_ppm(tmp_path):
    alpha = np.full((6, 7), 65535, np.uint16)
    rgba = _save(tmp_path / "rgba.png", png_bytes(np.dstack([RGB.astype(np.uint16) * 257, alpha]), 6, 16))
    assert decode_image(rgba).notes[-1].endswith("alpha channel is 255 everywhere and was dropped (nothing changes).")
    np.testing.assert_array_equal(decode_image(rgba).pixels, RGB)
    alpha[1, 1] = 0
    la = _save(tmp_path / "la.png", png_bytes(np.dstack([GRAY.astype(np.uint16) * 257, alpha]), 4, 16))
    assert "has a non-opaque alpha channel (1 pixels" in _refusal(la)
    np.testing.assert_array_equal(decode_image(la, allow_alpha=True).pixels,
                                  np.dstack([GRAY, GRAY, GRAY, (alpha // 257).astype(np.uint8)]))

    tifffile = pytest.importorskip("tifffile")
    tif = tmp_path / "rgb16.tif"
    tifffile.imwrite(tif, RGB.astype(np.uint16) * 257, photometric="rgb")
    np.testing.assert_array_equal(decode_image(tif).pixels, RGB)
    tifffile.imwrite(tif, RGB.astype(np.uint16) * 257 + 1, photometric="rgb")
    assert "RGB 16-bit image uses" in _refusal(tif)

    ppm = _save(tmp_path / "rgb16.ppm", b"P6 7 6 65535\n" + (RGB.astype(np.uint16) * 257).astype(">u2").tobytes())
    np.testing.assert_array_equal(decode_image(ppm).pixels, RGB)
    pgm = _save(tmp_path / "gray15.pgm", b"P5\n# fifteen levels\n7 6 15\n" + (GRAY // 17).tobytes())
    np.testing.assert_array_equal(decode_image(pgm).pixels, GRAY // 17 * 17)
    assert decode_image(pgm).notes == (f"{pgm}: gray 4-bit (maxval 15) image scaled exactly to 8 bits "
                                       "(v * 255 / 15).",)
    odd = _save(tmp_path / "odd.pgm", b"P2 2 1 1000\n200 3\n")
    assert "(maxval 1000) image uses 2 distinct levels and 1 of its 2 samples are not multiples of 200" in _refusal(odd)


# -- CMYK, other modes, frames ---------------------------------------------------------------------------------


def _cmyk_jpeg(path: Path, ycck: bool = False) -> Path:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (16, 16, 4)).astype(np.uint8), "CMYK").save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    if ycck:  # the Adobe marker's transform byte: 0 = CMYK, 2 = YCCK
        data[data.index(b"Adobe") + 11] = 2
    path.write_bytes(bytes(data))
    return path


def test_cmyk_and_ycck_jpegs_are_refused(tmp_path):
    for name, ycck, kind in (("cmyk.jpg", False, "CMYK"), ("ycck.jpg", True, "YCCK")):
        path = _cmyk_jpeg(tmp_path / name, ycck)
        expected = (f"{path}: {kind} JPEG image; there is no RGB without colour management (MATLAB's imread returns "
                    "the four CMYK channels too); convert it to RGB yourself")
        assert _refusal(path) == expected
        assert _refusal(path, allow_alpha=True) == expected
        with pytest.raises(BadInputError, match=kind):
            read_image(path)
    tif = tmp_path / "cmyk.tif"
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "CMYK").save(tif)
    assert _refusal(tif).startswith(f"{tif}: CMYK TIFF image; there is no RGB")


def test_other_modes_and_several_frames_are_refused_by_name(tmp_path):
    cases = {
        "float.tif": (Image.fromarray(np.zeros((3, 4), np.float32)), "mode F (32-bit float) image"),
        "int.tif": (Image.fromarray(np.zeros((3, 4), np.int32)), "mode I (32-bit integer) image"),
        "lab.tif": (Image.fromarray(RGB).convert("LAB"), "mode LAB (CIE L*a*b*) image"),
    }
    for name, (im, what) in cases.items():
        path = _save(tmp_path / name, im)
        assert _refusal(path) == f"{path}: {what}; convert it to 8-bit RGB or gray yourself"
    gif = tmp_path / "anim.gif"
    Image.fromarray(RGB).save(gif, save_all=True, append_images=[Image.fromarray(RGB[::-1])])
    assert _refusal(gif) == (f"{gif}: GIF with 2 frames; which frame is the image is a guess; save the one you "
                             "mean as a single image")
    mpo = tmp_path / "camera.jpg"
    Image.fromarray(RGB).save(mpo, "MPO", save_all=True, append_images=[Image.fromarray(RGB[::-1])], quality=95)
    decoded = decode_image(mpo)
    assert decoded.notes == (f"{mpo}: holds 2 pictures (MPO); the first, primary one is used.",)
    with Image.open(mpo) as im:
        np.testing.assert_array_equal(decoded.pixels, np.asarray(im.convert("RGB")))


def _rgb_tiff(path: Path, bits: int, sample_format: int, compression: int = 1) -> Path:
    """A 2x2 uncompressed RGB TIFF of ``bits``-bit samples of TIFF SampleFormat ``sample_format`` (3: float), written
    tag by tag: Pillow has no mode for float or 32-bit RGB, so it can neither write nor open one."""
    width = height = 2
    data = bytes(width * height * 3 * bits // 8)
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, None), (259, 3, 1, compression), (262, 3, 1, 2),
               (273, 4, 1, None), (277, 3, 1, 3), (278, 3, 1, height), (279, 4, 1, len(data)), (339, 3, 3, None)]
    ifd_size = 2 + 12 * len(entries) + 4
    bits_at, format_at = 8 + ifd_size, 8 + ifd_size + 6
    data_at = format_at + 6
    out = bytearray(b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        value = {258: bits_at, 273: data_at, 339: format_at}.get(tag, value)
        out += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1
                                                        else struct.pack("<I", value))
    out += struct.pack("<I", 0) + struct.pack("<3H", *[bits] * 3) + struct.pack("<3H", *[sample_format] * 3) + data
    path.write_bytes(bytes(out))
    return path


@pytest.mark.parametrize(("bits", "sample_format", "what"),
                         [(32, 3, "32-bit float"), (32, 1, "32-bit unsigned integer")])
def test_a_tiff_pillow_cannot_open_is_refused_naming_its_samples(tmp_path, bits, sample_format, what):
    # A float RGB TIFF (what some SR code writes) was "not a readable image (corrupt, ...)", unlike a float gray one.
    path = _rgb_tiff(tmp_path / "sr.tif", bits, sample_format)
    assert _refusal(path) == f"{path}: TIFF image of 3 sample(s) of {what}; convert it to 8-bit RGB or gray yourself"
    # 8-bit samples Pillow reads, in a file it cannot open for another reason: not blamed on the samples.
    other = _rgb_tiff(tmp_path / "other.tif", 8, 1, compression=12345)
    assert _refusal(other).startswith(f"{other}: not a readable image")


# -- EXIF orientation: pixels as stored, noted -----------------------------------------------------------------


def test_exif_orientation_is_ignored_with_a_note(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    Image.fromarray(np.repeat(np.repeat(RGB, 8, 0), 8, 1)).save(path, exif=exif, quality=95)
    with Image.open(path) as im:
        stored = np.asarray(im.convert("RGB"))
    decoded = decode_image(path)
    assert decoded.pixels.shape == (48, 56, 3)  # not turned to 56x48
    np.testing.assert_array_equal(decoded.pixels, stored)
    assert decoded.notes == (f"{path}: EXIF orientation 6 ignored: pixels are used as stored, as MATLAB's imread "
                             "does.",)
    exif[0x0112] = 1
    plain = tmp_path / "plain.jpg"
    Image.fromarray(RGB).save(plain, exif=exif)
    assert decode_image(plain).notes == ()


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("compression", [None, "tiff_deflate"])
def test_a_tiffs_orientation_tag_is_ignored_too(tmp_path, orientation, compression):
    # Pillow turns a TIFF by its tag while loading it (and reports the turned size): a 180-degree turn scored a
    # released SR image at 11 dB instead of 28, with no note
    stored = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    path = tmp_path / f"o{orientation}.tif"
    Image.fromarray(stored).save(path, tiffinfo={0x0112: orientation}, compression=compression)
    decoded = decode_image(path)
    np.testing.assert_array_equal(decoded.pixels, stored)
    assert decoded.notes == (f"{path}: EXIF orientation {orientation} ignored: pixels are used as stored, as "
                             "MATLAB's imread does.",)


# -- size limit ------------------------------------------------------------------------------------------------


def test_size_limit_is_checked_on_the_header_and_configurable(tmp_path):
    path = _save(tmp_path / "big.png", Image.fromarray(np.zeros((30, 40), np.uint8)))
    expected = (f"{path}: 40x30 is 1200 pixels, above the limit of 1000 (a guard against decompression bombs); "
                "pass --max-pixels 1200 or more if the image is genuine")
    assert _refusal(path, max_pixels=1000) == expected
    set_max_pixels(1000)
    assert get_max_pixels() == 1000 and _refusal(path) == expected
    assert decode_image(path, max_pixels=1200).pixels.shape == (30, 40)
    set_max_pixels(None)
    assert get_max_pixels() == DEFAULT_MAX_PIXELS
    with pytest.raises(BadInputError, match="positive whole number"):
        set_max_pixels(0)
    # A header claiming 100000 x 100000 pixels with 1 pixel of data: refused by size, before any decoding.
    bomb = _save(tmp_path / "bomb.png", png_bytes(np.zeros((1, 1), np.uint8), 0, 8, size=(100000, 100000)))
    assert "100000x100000 is 10000000000 pixels, above the limit of 134217728" in _refusal(bomb)


def test_an_8k_output_passes_by_default(tmp_path):
    path = _save(tmp_path / "8k.png", Image.fromarray(np.zeros((4320, 7680), np.uint8)))
    assert DEFAULT_MAX_PIXELS >= 7680 * 4320
    assert decode_image(path).pixels.shape == (4320, 7680)


def test_pillows_own_limit_neither_preempts_nor_warns(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # as if Pillow's ~89 MP guard met a larger image
    path = _save(tmp_path / "square.png", Image.fromarray(np.tile(GRAY, (4, 4))))  # 24x28 = 672 > 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(decode_image(path).pixels, np.tile(GRAY, (4, 4)))
    assert "above the limit of 600" in _refusal(path, max_pixels=600)
    assert Image.MAX_IMAGE_PIXELS == 100  # Pillow's setting is restored for everyone else


# -- unreadable files ------------------------------------------------------------------------------------------


def test_unreadable_files_are_one_line_each(tmp_path):
    good = png_bytes(RGB, 2, 8)
    truncated = _save(tmp_path / "truncated.png", good[: len(good) // 2])
    assert _refusal(truncated) == (f"{truncated}: corrupt or truncated image (the file ends inside its 'IDAT' "
                                   "chunk); re-save it or remove it")
    crc = bytearray(good)
    crc[good.index(b"IEND") - 5] ^= 1  # the last byte of IDAT's CRC: Pillow decodes it, the file is damaged
    crc = _save(tmp_path / "crc.png", bytes(crc))
    with Image.open(crc) as im:
        np.testing.assert_array_equal(np.asarray(im), RGB)  # what the old reader accepted
    assert _refusal(crc) == (f"{crc}: corrupt or truncated image (CRC mismatch in its 'IDAT' chunk); re-save it or "
                             "remove it")
    noise = _save(tmp_path / "noise.png", np.random.default_rng(0).bytes(2000))
    not_readable = ("not a readable image (corrupt, or not PNG, JPEG, BMP, TIFF, WebP, PPM/PGM or GIF); "
                    "convert it to PNG")
    assert _refusal(noise) == f"{noise}: {not_readable}"
    empty = _save(tmp_path / "empty.png", b"")
    assert _refusal(empty) == f"{empty}: {not_readable}"
    missing = tmp_path / "missing.png"
    assert _refusal(missing) == f"{missing}: no such file; check the path"
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "gone.png")
    assert _refusal(dangling) == f"{dangling}: broken symbolic link to {tmp_path / 'gone.png'}; fix or remove the link"
    loop = tmp_path / "loop.png"
    loop.symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(loop)
    assert _refusal(loop) == f"{loop}: symbolic link loop (it leads back to itself); fix or remove the link"
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert _refusal(folder) == f"{folder}: is a folder, not an image file; pass the images inside it"


def test_modes_table_is_the_one_the_reader_applies():
    table = modes_markdown()
    assert table.count("\n") == len(MODES) + 1
    for rule in MODES.values():
        assert f"| {rule.stored_as} | {rule.effect} |" in table
    assert {"8-bit", "1-bit", "high-bit", "palette", "alpha", "CMYK", "frames", "EXIF orientation"} <= set(MODES)


# -- `srbench infer` uses the same reader ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_ckpt(tmp_path_factory):
    import torch

    from srbench.archs import get_generator
    from srbench.checkpoints import save_checkpoint

    torch.manual_seed(0)
    net = get_generator("rrdb23-smoke").build().eval()
    path = tmp_path_factory.mktemp("ckpt") / "net.safetensors"
    return save_checkpoint(net, path, arch="rrdbnet", config=dict(get_generator("rrdb23-smoke").config),
                           variant="rrdb23-smoke"), net


def _infer(ckpt, *args):
    from srbench.cli import main

    return CliRunner().invoke(main, ["infer", str(ckpt), *map(str, args), "--device", "cpu"])


def test_infer_refuses_cmyk_and_writes_nothing_for_it(smoke_ckpt, tmp_path):
    from srbench.infer import Runner

    ckpt, net = smoke_ckpt
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = RGB[:5, :6]
    Image.fromarray(good).save(inputs / "good.png")
    _cmyk_jpeg(inputs / "cmyk.jpg")
    _cmyk_jpeg(inputs / "ycck.jpg", ycck=True)
    out = tmp_path / "out"
    res = _infer(ckpt, inputs, "--out", out)
    assert res.exit_code == 1, res.output
    assert sorted(line for line in res.stderr.splitlines() if line.startswith("skipped: ")) == [
        f"skipped: {inputs / name}: {kind} JPEG image; there is no RGB without colour management (MATLAB's imread "
        "returns the four CMYK channels too); convert it to RGB yourself"
        for name, kind in (("cmyk.jpg", "CMYK"), ("ycck.jpg", "YCCK"))]
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # no transparent PNG for the CMYK files
    np.testing.assert_array_equal(read_image(out / "good.png"), Runner.create(net, device="cpu").upscale(good))
    assert "wrote 1 image(s)" in res.stdout


def test_infer_reports_broken_links_and_images_over_max_pixels(smoke_ckpt, tmp_path):
    ckpt, _ = smoke_ckpt
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(RGB[:5, :6]).save(inputs / "good.png")
    (inputs / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (inputs / "loop.png").symlink_to(inputs / "loop.png")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(inputs / "large.png")
    out = tmp_path / "out"
    res = _infer(ckpt, inputs, "--out", out, "--max-pixels", 1000)
    assert res.exit_code == 1, res.output
    assert sorted(line for line in res.stderr.splitlines() if line.startswith("skipped: ")) == [
        f"skipped: {inputs / 'dangling.png'}: broken symbolic link to {tmp_path / 'nowhere.png'}; fix or remove "
        "the link",
        f"skipped: {inputs / 'large.png'}: 40x30 is 1200 pixels, above the limit of 1000 (a guard against "
        "decompression bombs); pass --max-pixels 1200 or more if the image is genuine",
        f"skipped: {inputs / 'loop.png'}: symbolic link loop (it leads back to itself); fix or remove the link",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    res = _infer(ckpt, inputs / "large.png", "--out", out)  # the default limit takes it
    assert res.exit_code == 0 and (out / "large.png").is_file()


def test_infer_notes_exact_16_bit_and_default_limit(smoke_ckpt, tmp_path):
    ckpt, _ = smoke_ckpt
    src = _save(tmp_path / "deep.png", png_bytes(RGB[:4, :5].astype(np.uint16) * 257, 2, 16))
    res = _infer(ckpt, src, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert f"note: {src}: RGB 16-bit image read as 8-bit exactly" in res.stderr
    assert read_image(tmp_path / "out/deep.png").shape == (16, 20, 3)
    assert get_max_pixels() == DEFAULT_MAX_PIXELS  # infer without --max-pixels restores the default
    inexact = _save(tmp_path / "real16.png", png_bytes(RGB[:4, :5].astype(np.uint16) * 256 + 1, 2, 16))
    res = _infer(ckpt, inexact, "--out", tmp_path / "out2")
    assert res.exit_code == 1 and "RGB 16-bit image uses" in res.stderr
    assert not (tmp_path / "out2/real16.png").exists()


def test_infer_help_states_the_default_limit():
    from srbench.cli import main

    res = CliRunner().invoke(main, ["infer", "--help"])
    assert f"default: {DEFAULT_MAX_PIXELS}" in " ".join(res.output.split())


# -- fuzzing: any bytes give a valid image or one BadInputError, never another exception -------------------------


def _seed_files() -> list[bytes]:
    files = [png_bytes(RGB, 2, 8), png_bytes(GRAY, 0, 8), png_bytes(RGB.astype(np.uint16) * 257, 2, 16),
             png_bytes(np.dstack([GRAY, GRAY]).astype(np.uint16) * 257, 4, 16),
             png_bytes(RNG.integers(0, 4, (5, 9)), 0, 2)]
    for fmt, im in (("JPEG", Image.fromarray(RGB)), ("BMP", Image.fromarray(RGB)), ("TIFF", Image.fromarray(RGB)),
                    ("GIF", Image.fromarray(RGB).convert("P")), ("PPM", Image.fromarray(GRAY)),
                    ("PNG", Image.fromarray(RGB).convert("P")), ("WEBP", Image.fromarray(RGB))):
        buf = io.BytesIO()
        im.save(buf, fmt)
        files.append(buf.getvalue())
    return files


SEEDS = _seed_files()


def _check_decodes_or_refuses(path: Path) -> None:
    for allow_alpha in (False, True):
        try:
            decoded = decode_image(path, allow_alpha=allow_alpha, max_pixels=1 << 20)
        except BadInputError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message
            continue
        px = decoded.pixels
        assert px.dtype == np.uint8 and px.flags.c_contiguous
        assert px.ndim == 2 or (px.ndim == 3 and px.shape[2] in ((3, 4) if allow_alpha else (3,)))
        assert px.shape[0] >= 1 and px.shape[1] >= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM",
                                                               b"II*\x00", b"P6 ", b"GIF89a", b"RIFF"]))
def test_fuzz_random_bytes(tmp_path, data, prefix):
    path = tmp_path / "fuzz.png"
    path.write_bytes(prefix + data)
    _check_decodes_or_refuses(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(range(len(SEEDS))), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
                                                               max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzz_valid_files_with_flipped_bytes_or_truncated(tmp_path, seed, flips, cut):
    data = bytearray(SEEDS[seed])
    for where, xor in flips:
        data[where % len(data)] ^= xor
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / "fuzz.img"
    path.write_bytes(bytes(data))
    _check_decodes_or_refuses(path)


def test_seed_files_are_valid(tmp_path):
    for i, data in enumerate(SEEDS):
        path = tmp_path / f"seed{i}"
        path.write_bytes(data)
        assert decode_image(path, allow_alpha=True).pixels.dtype == np.uint8, i


def test_a_file_without_read_permission_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = _save(tmp_path / "locked.png", png_bytes(RGB, 2, 8))
    path.chmod(0)
    assert _refusal(path) == f"{path}: cannot be read (permission denied); check its permissions"
