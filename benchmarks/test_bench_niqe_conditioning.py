"""NIQE's conditioning range against plain NIQE, same run: the first 20 BSD100 bicubic x4 outputs, as the pirm
protocol hands them to NIQE (rounded Y, shave 4). Group ``niqe-conditioning-bsd100``: ``srbench`` is
``niqe_conditioning`` (value, 3 uniform and 999 random per-level sign patterns), ``baseline`` is ``niqe``; the
target (conftest) keeps the range affordable for a 100-image set."""

from __future__ import annotations

import importlib

import pytest

from srbench.images import read_image
from srbench.matlab import imresize, rgb2y, shave

N = importlib.import_module("srbench.metrics.niqe")
N_IMAGES = 20


@pytest.fixture(scope="module")
def planes(shared_data):
    folder = shared_data / "selfexsr" / "BSD100" / "image_SRF_4"
    out = []
    for i in range(1, N_IMAGES + 1):
        sr = imresize(read_image(folder / f"img_{i:03d}_SRF_4_LR.png"), 4)
        out.append(shave(rgb2y(sr), 4))
    return out


def test_plain_niqe_baseline(benchmark, planes):
    benchmark.group = "niqe-conditioning-bsd100"
    values = benchmark.pedantic(lambda: [N.niqe(p) for p in planes], rounds=3, iterations=1)
    assert len(values) == N_IMAGES


def test_niqe_conditioning_srbench(benchmark, planes):
    benchmark.group = "niqe-conditioning-bsd100"
    conds = benchmark.pedantic(lambda: [N.niqe_conditioning(p) for p in planes], rounds=3, iterations=1)
    ill = sum(c.ill_conditioned for c in conds)
    benchmark.extra_info["ill_conditioned"] = ill
    print(f"\n{ill} of {N_IMAGES} ill-conditioned; largest range {max(c.spread for c in conds):.4f}")
    assert all(c.low <= c.value <= c.high for c in conds)
