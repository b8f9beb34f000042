"""Issue 8: a generated zoo of bad inputs walked through `evaluate`, `infer` and `datasets verify`.

For every bad file beside good images, each command must: exit 1, print exactly one line naming the file
(two for a name clash, one per file), never a traceback, and give the good images exactly the values (or
output bytes) they get without the bad file.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from srbench.cli import main

RNG = np.random.default_rng(88)
GOOD = ("bird", "butterfly")
SIZE = 64  # small crops: every case runs through a network too


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png16(samples: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG with exactly these samples (Pillow cannot write 16-bit colour)."""
    h, w = samples.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in samples.reshape(h, w, -1))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def _image_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb(h=SIZE, w=SIZE) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3)).astype(np.uint8)


def _gif_two_frames() -> bytes:
    frames = [Image.fromarray(_rgb()).convert("P") for _ in range(2)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _write(content: bytes | Callable[[Path], None]):
    def make(folder: Path, name: str) -> list[Path]:
        path = folder / name
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
        return [path]
    return make


def _broken_link(folder: Path, name: str) -> list[Path]:
    (folder / name).symlink_to(folder / "no-such-target.png")
    return [folder / name]


def _looping_link(folder: Path, name: str) -> list[Path]:
    (folder / name).symlink_to(folder / name)
    return [folder / name]


def _stem_clash(folder: Path, name: str) -> list[Path]:
    stem = Path(name).stem
    Image.fromarray(_rgb()).save(folder / f"{stem}.png")
    Image.fromarray(_rgb()).save(folder / f"{stem}.bmp")
    return [folder / f"{stem}.png", folder / f"{stem}.bmp"]


_seed_png = _image_bytes(Image.fromarray(_rgb()), "PNG")
_rgba = np.dstack([_rgb(), RNG.integers(0, 255, (SIZE, SIZE)).astype(np.uint8)])
_la = np.dstack([_rgb()[..., 0], np.full((SIZE, SIZE), 7, np.uint8)])
_cmyk = Image.fromarray(RNG.integers(0, 256, (SIZE, SIZE, 4)).astype(np.uint8), "CMYK")
_deep_gray = RNG.integers(0, 65536, (SIZE, SIZE)).astype(np.uint16)
_deep_rgb = RNG.integers(0, 65536, (SIZE, SIZE, 3)).astype(np.uint16)

# name -> (maker, commands for which it is bad input, a phrase its one line must contain)
ZOO: dict[str, tuple[Callable, set[str], str]] = {
    "truncated.png": (_write(_seed_png[: len(_seed_png) // 2]), {"evaluate", "infer", "verify"}, "truncated"),
    "random.png": (_write(RNG.integers(0, 256, 300).astype(np.uint8).tobytes()), {"evaluate", "infer", "verify"},
                   "random.png"),
    "empty.png": (_write(b""), {"evaluate", "infer", "verify"}, "empty.png"),
    "cmyk.jpg": (_write(_image_bytes(_cmyk, "JPEG")), {"evaluate", "infer", "verify"}, "CMYK"),
    "deep_gray.png": (_write(_image_bytes(Image.fromarray(_deep_gray), "PNG")), {"evaluate", "infer", "verify"},
                      "16-bit"),
    "deep_rgb.png": (_write(_png16(_deep_rgb, 2)), {"evaluate", "infer", "verify"}, "16-bit"),
    "rgba.png": (_write(_image_bytes(Image.fromarray(_rgba, "RGBA"), "PNG")), {"evaluate", "verify"}, "alpha"),
    "la.png": (_write(_image_bytes(Image.fromarray(_la, "LA"), "PNG")), {"evaluate", "verify"}, "alpha"),
    "float.tif": (_write(_image_bytes(Image.fromarray(RNG.random((SIZE, SIZE)).astype(np.float32), "F"), "TIFF")),
                  {"evaluate", "infer", "verify"}, "float.tif"),
    "frames.gif": (_write(_gif_two_frames()), {"evaluate", "infer", "verify"}, "frame"),
    "gone.png": (_broken_link, {"evaluate", "infer", "verify"}, "broken symbolic link"),
    "loop.png": (_looping_link, {"evaluate", "infer", "verify"}, "loop.png"),
    "tiny.png": (_write(_image_bytes(Image.fromarray(_rgb(2, 2)), "PNG")), {"evaluate"}, "smaller than the scale"),
    "huge.png": (_write(_image_bytes(Image.fromarray(_rgb(SIZE * 2, SIZE * 2)), "PNG")),
                 {"evaluate", "infer"}, "--max-pixels"),
    "clash.png": (_stem_clash, {"evaluate", "infer"}, "clash"),
}
MAX_PIXELS = SIZE * SIZE * 2  # the good images pass, huge.png does not


def _good_folder(shared_data, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in GOOD:
        crop = np.asarray(Image.open(shared_data / f"benchmark/Set5/HR/{name}.png"))[:SIZE, :SIZE]
        Image.fromarray(crop).save(folder / f"{name}.png")
    return folder


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _lines_naming(text: str, files: list[Path]) -> list[str]:
    return [ln for ln in text.splitlines() if any(f.name in ln for f in files)]


def _assert_one_line_each(res, files: list[Path], phrase: str) -> None:
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = _lines_naming(res.stderr, files)
    assert len(lines) == len(files), res.stderr
    assert all(phrase in ln for ln in lines), lines


@pytest.fixture(scope="module")
def baseline_evaluate(shared_data, tmp_path_factory):
    folder = _good_folder(shared_data, tmp_path_factory.mktemp("good") / "ds")
    out = tmp_path_factory.mktemp("out")
    res = _cli("evaluate", "--model", "bicubic", "--dataset", folder, "--out", out, "--max-pixels", MAX_PIXELS)
    assert res.exit_code == 0, res.output
    return (out / "bicubic__ds__sr_x4.csv").read_text()


@pytest.mark.parametrize("case", sorted(n for n, (_, bad, _) in ZOO.items() if "evaluate" in bad))
def test_evaluate_skips_each_bad_file_in_one_line_and_keeps_the_good_values(shared_data, tmp_path, case,
                                                                           baseline_evaluate):
    maker, _, phrase = ZOO[case]
    folder = _good_folder(shared_data, tmp_path / "ds")
    bad = maker(folder, case)
    out = tmp_path / "out"
    res = _cli("evaluate", "--model", "bicubic", "--dataset", folder, "--out", out, "--json",
               "--max-pixels", MAX_PIXELS)
    _assert_one_line_each(res, bad, phrase)
    assert all(ln.startswith("skipped: ") for ln in _lines_naming(res.stderr, bad))
    (row,) = json.loads(res.stdout)
    assert row["n_images"] == len(GOOD) and row["n_skipped"] == len(bad)
    assert (out / "bicubic__ds__sr_x4.csv").read_text() == baseline_evaluate


@pytest.fixture(scope="module")
def smoke_ckpt(tmp_path_factory):
    import torch

    from srbench.archs import get_generator
    from srbench.checkpoints import save_checkpoint

    torch.manual_seed(0)
    variant = get_generator("rrdb23-smoke")
    return save_checkpoint(variant.build().eval(), tmp_path_factory.mktemp("ckpt") / "net.safetensors",
                           arch=variant.arch, config=dict(variant.config), variant=variant.name)


@pytest.fixture(scope="module")
def baseline_infer(shared_data, tmp_path_factory, smoke_ckpt):
    folder = _good_folder(shared_data, tmp_path_factory.mktemp("good") / "in")
    out = tmp_path_factory.mktemp("out")
    res = _cli("infer", smoke_ckpt, folder, "--out", out, "--device", "cpu", "--max-pixels", MAX_PIXELS)
    assert res.exit_code == 0, res.output
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("case", sorted(n for n, (_, bad, _) in ZOO.items() if "infer" in bad))
def test_infer_skips_each_bad_file_in_one_line_and_keeps_the_good_outputs(shared_data, tmp_path, case,
                                                                         smoke_ckpt, baseline_infer):
    maker, _, phrase = ZOO[case]
    folder = _good_folder(shared_data, tmp_path / "in")
    bad = maker(folder, case)
    out = tmp_path / "out"
    res = _cli("infer", smoke_ckpt, folder, "--out", out, "--device", "cpu", "--max-pixels", MAX_PIXELS)
    if case == "clash.png":
        # Both would be written as clash.png: refused before any work, in one line naming both.
        assert res.exit_code == 1 and "Traceback" not in res.output
        (line,) = _lines_naming(res.stderr, bad)
        assert line.startswith("error: ") and all(f.name in line for f in bad)
        assert not out.exists() or not any(out.iterdir())
        return
    _assert_one_line_each(res, bad, phrase)
    written = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    assert written == baseline_infer


@pytest.mark.parametrize("case", sorted(n for n, (_, bad, _) in ZOO.items() if "verify" in bad))
def test_datasets_verify_names_each_bad_file_once_and_the_rest_identical(shared_data, tmp_path, case):
    maker, _, _ = ZOO[case]
    folder = tmp_path / "Set5"
    shutil.copytree(shared_data / "benchmark/Set5", folder)
    bad = maker(folder / "HR", case)
    res = _cli("datasets", "verify", folder)
    assert res.exit_code == 1 and "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    (line,) = _lines_naming(res.stdout, bad)
    assert line.split()[0] == "unreadable", line
    assert "25 identical" in res.stdout.splitlines()[0]


SIDECARS = {"empty-object": "{}", "array": "[]", "null-config": '{"arch": "rrdbnet", "config": null}',
            "string-config": '{"arch": "rrdbnet", "config": "x4"}', "unknown-arch": '{"arch": "swinir", "config": {}}',
            "not-json": "{arch: rrdbnet", "number": "5"}


@pytest.mark.parametrize("shape", sorted(SIDECARS))
def test_a_checkpoint_sidecar_of_the_wrong_shape_is_one_line_in_evaluate_and_infer(shared_data, tmp_path, shape,
                                                                                   smoke_ckpt):
    ckpt = tmp_path / "net.safetensors"
    shutil.copy(smoke_ckpt, ckpt)
    sidecar = tmp_path / "net.json"
    sidecar.write_text(SIDECARS[shape])
    folder = _good_folder(shared_data, tmp_path / "in")
    for args in (["evaluate", "--model", ckpt, "--dataset", folder, "--device", "cpu"],
                 ["infer", ckpt, folder, "--out", tmp_path / "out", "--device", "cpu"]):
        res = _cli(*args)
        assert res.exit_code == 1 and "Traceback" not in res.output and isinstance(res.exception, SystemExit)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {sidecar}"), res.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
