"""Torch forms of the metrics that have one (PSNR, MSE, SSIM, LPIPS, FID's patch features), on any device.

The numpy functions (``srbench.metrics.fullref``, ``srbench.protocols``) stay the reference; these compute
the same numbers on tensors that are already on the device (a generator's output on the GPU), batched over
a leading dimension of images that share a size, so an SR image need not come back to the host for them.

Layouts: an image is ``N x C x H x W`` (C = 3, or 1 for grayscale), uint8 or float holding 0..255 values; a
plane (what ``PerImage.sr`` holds for plane "y") is ``N x H x W`` float64.

How close to the reference (tests: ``tests/metrics/test_torch_forms.py``):

- :func:`quantise_like_matlab`, :func:`quantise_unit`, the rounded Y plane (``pirm``), :func:`shave`: bitwise
  (elementwise IEEE operations in the reference's order and dtype).
- :func:`mse`, :func:`ssim` and the MSE behind :func:`psnr` are bitwise equal to ``fullref`` given the same
  planes, on the CPU and, since float64 add/mul/div are correctly rounded on CUDA and no operation is fused,
  on a GPU too: the separable Gaussian follows ``scipy.ndimage.correlate1d``'s symmetric-kernel order and
  every mean is numpy's pairwise summation (:func:`numpy_sum`), not torch's own reduction order.
  :func:`psnr` takes the log on the host from the MSE (N floats), so it is bitwise as well.
- The unrounded Y plane (``sr`` protocol) is ``((R c0 + G c1) + B c2) + 16`` elementwise; the reference
  ``srbench.matlab.rgb2y`` computes ``x @ YCBCR_MATRIX[0]`` through BLAS, whose kernel (chosen per CPU by
  OpenBLAS) fuses multiply-adds in its own order (on the development machine ``fma(B, c2, fma(R, c0, G c1))``).
  The two differ by at most one unit in the last place per pixel (<= 2**-45 * 255 ~ 5.7e-14), so PSNR-Y and
  SSIM-Y of the ``sr`` protocol agree to about 1e-13 relative (tests: 1e-12), not bitwise. An elementwise
  ``rgb2y`` in the reference would make them bitwise (and the reference itself portable across CPUs).
- :func:`lpips`: float32 network; the input conversion is bitwise, the value is within float32 convolution
  differences (batching, device): tests use 1e-5 absolute on the CPU.

Importing this module imports torch: only code that has a torch tensor imports it (``import srbench`` stays
free of torch).
"""

from __future__ import annotations

import copy
import functools
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from srbench import weights
from srbench.errors import BadInputError
from srbench.matlab import YCBCR_MATRIX
from srbench.metrics import fullref
from srbench.metrics.fullref import SSIM_WINDOW, gaussian_1d

_PW_BLOCK = 128  # numpy's PW_BLOCKSIZE: pairwise summation recurses down to blocks of at most 128
_PW_UNROLL = 8  # ... each summed with 8 accumulators


# -- quantisation ---------------------------------------------------------------------------------------------
def quantise_like_matlab(x: torch.Tensor) -> torch.Tensor:
    """``srbench.matlab.to_uint8`` on a tensor: saturating, halves away from zero, in ``x``'s own dtype.

    uint8 passes through. For a float ``x`` the reference computes ``clip(sign(x) floor(|x| + 0.5), 0, 255)``;
    every negative value ends at 0 there, so ``floor(clamp(x, 0, 255) + 0.5)`` gives the same bytes with
    the same rounding of ``x + 0.5`` (NaN: undefined in both, as numpy's cast of NaN to uint8 is).
    """
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        return x.clamp(0, 255).to(torch.uint8)
    return torch.floor(x.clamp(0.0, 255.0) + 0.5).to(torch.uint8)


def quantise_unit(x: torch.Tensor) -> torch.Tensor:
    """A generator's float output in 0..1 as ``srbench.infer.Runner.upscale`` quantises it (clamp, x255,
    + 0.5, floor, in float32): the same bytes as the PNG it would save, made on the device."""
    return x.float().clamp(0.0, 1.0).mul(255.0).add(0.5).floor().to(torch.uint8)


# -- protocol planes ------------------------------------------------------------------------------------------
def as_images(img: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """A host image (HxW or HxWx3, as srbench reads it) or a tensor as an ``N x C x H x W`` tensor on ``device``
    (one copy of the uint8 bytes; a tensor already in that layout is only moved)."""
    if isinstance(img, torch.Tensor):
        t = img
    else:
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3):
            raise BadInputError(f"expected a grayscale or RGB image, got shape {arr.shape}")
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise BadInputError(f"expected N x C x H x W images with C = 1 or 3, got shape {tuple(t.shape)}")
    return t if device is None else t.to(device)


def to_host(images: torch.Tensor) -> list[np.ndarray]:
    """``N x C x H x W`` back to host images as srbench holds them (HxW for C = 1, HxWx3)."""
    arr = images.cpu().numpy()
    return [a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0)) for a in arr]


def y_plane(images: torch.Tensor, *, rounded: bool) -> torch.Tensor:
    """The protocol's luma plane, ``N x H x W`` float64, from ``N x C x H x W`` images holding uint8 values.

    ``rounded`` (``pirm``): ``rgb2y`` on uint8, bitwise. Otherwise (``sr``): Y from double input, within one
    ulp of ``rgb2y`` (see the module docstring). A single-channel image is its own plane.
    """
    images = as_images(images)
    if images.shape[1] == 1:
        return images[:, 0].to(torch.float64)
    x = images.to(torch.float64)
    if rounded:
        c = YCBCR_MATRIX[0] / 255.0
        y = x[:, 0] * float(c[0]) + x[:, 1] * float(c[1]) + x[:, 2] * float(c[2]) + 16.0
        return quantise_like_matlab(y).to(torch.float64)
    x = x / 255.0
    c = YCBCR_MATRIX[0]
    return x[:, 0] * float(c[0]) + x[:, 1] * float(c[1]) + x[:, 2] * float(c[2]) + 16.0


def shave(x: torch.Tensor, border: int) -> torch.Tensor:
    """``srbench.matlab.shave`` on the last two dimensions (a view)."""
    if border <= 0:
        return x
    h, w = x.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        from srbench.matlab import too_small_to_shave

        raise too_small_to_shave(int(h), int(w), border)
    return x[..., border:-border, border:-border]


class TorchPlanes:
    """The planes of a batch of SR/HR pairs, as ``srbench.protocols.Planes`` makes them for one pair: plane
    "y" is ``N x H x W`` float64, "rgb" the ``N x C x H x W`` uint8 images, both shaved; made once, when asked.

    ``sr`` may be a generator's raw float output in 0..1 (``unit=True``: quantised as ``Runner.upscale``
    does), a float in 0..255 (quantised as ``protocols.quantize``) or uint8.
    """

    def __init__(self, sr: torch.Tensor, hr: torch.Tensor, border: int, rounded: bool, *, unit: bool = False) -> None:
        sr = as_images(sr)
        sr = quantise_unit(sr) if unit and sr.is_floating_point() else quantise_like_matlab(sr)
        hr = as_images(hr, sr.device)
        hr = quantise_like_matlab(hr)
        if sr.shape != hr.shape:
            raise BadInputError(f"SR is {tuple(sr.shape)} but HR is {tuple(hr.shape)} (N x C x H x W)")
        self._images = {"sr": sr, "hr": hr}
        self._border = border
        self._rounded = rounded
        self._cache: dict[tuple[str, str], torch.Tensor | None] = {}

    def image(self, which: str) -> torch.Tensor:
        """The whole quantised ``N x C x H x W`` uint8 image ("sr" or "hr"), not shaved."""
        return self._images[which]

    def get(self, plane: str, which: str) -> torch.Tensor | None:
        key = (plane, which)
        if key not in self._cache:
            img = self._images[which]
            if plane == "y":
                self._cache[key] = shave(y_plane(img, rounded=self._rounded), self._border)
            elif plane == "rgb":
                self._cache[key] = shave(img, self._border)
            else:
                self._cache[key] = None
        return self._cache[key]


# -- numpy's summation order ----------------------------------------------------------------------------------
def _pairwise_leaves(n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """numpy's pairwise summation tree for ``n`` elements: its leaf blocks (offset, size) in order, and its
    internal nodes (height, left id, right id). Leaf ``k`` has id ``k``, internal node ``j`` id ``leaves + j``."""
    leaves: list[tuple[int, int]] = []
    nodes: list[tuple[int, tuple[bool, int], tuple[bool, int]]] = []

    def build(offset: int, size: int) -> tuple[bool, int, int]:  # (is a leaf, index in its list, height)
        if size <= _PW_BLOCK:
            leaves.append((offset, size))
            return True, len(leaves) - 1, 0
        half = size // 2
        half -= half % _PW_UNROLL
        left = build(offset, half)
        right = build(offset + half, size - half)
        height = max(left[2], right[2]) + 1
        nodes.append((height, left[:2], right[:2]))
        return False, len(nodes) - 1, height

    build(0, n)

    def node_id(ref: tuple[bool, int]) -> int:
        return ref[1] if ref[0] else len(leaves) + ref[1]

    return leaves, [(height, node_id(left), node_id(right)) for height, left, right in nodes]


@functools.lru_cache(maxsize=64)
def _pairwise_plan(n: int) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """Index arrays that sum ``n`` elements in numpy's order with a fixed number of vector operations:
    ``rows`` (leaves x 16 x 8) and ``rest`` (leaves x 7) index the flattened input, ``n`` being a zero pad;
    then, level by level, (ids, left ids, right ids) of the internal nodes; and the root's id."""
    leaves, nodes = _pairwise_leaves(n)
    per_row = _PW_BLOCK // _PW_UNROLL
    rows = np.full((len(leaves), per_row, _PW_UNROLL), n, np.int64)
    rest = np.full((len(leaves), _PW_UNROLL - 1), n, np.int64)
    for k, (offset, size) in enumerate(leaves):
        if size < _PW_UNROLL:  # numpy: res = 0., then each element in turn
            rest[k, :size] = np.arange(offset, offset + size)
            continue
        unrolled = size - size % _PW_UNROLL
        rows[k, : unrolled // _PW_UNROLL] = np.arange(offset, offset + unrolled).reshape(-1, _PW_UNROLL)
        rest[k, : size - unrolled] = np.arange(offset + unrolled, offset + size)
    ids = np.arange(len(leaves), len(leaves) + len(nodes))
    levels = []
    by_height = np.array([h for h, _, _ in nodes], np.int64)
    lefts = np.array([left for _, left, _ in nodes], np.int64)
    rights = np.array([right for _, _, right in nodes], np.int64)
    for h in range(1, int(by_height.max(initial=0)) + 1):
        at = by_height == h
        levels.append((ids[at], lefts[at], rights[at]))
    return rows, rest, levels, len(leaves) + len(nodes) - 1


def numpy_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of each ``x[i]`` (all dimensions after the first, flattened) in numpy's order: ``np.sum`` of a
    contiguous float64 array, bit for bit (pairwise summation over blocks of 128, each block with 8
    accumulators). Adding a padded zero leaves a partial sum unchanged, so every leaf is summed as a full
    16 x 8 block by the same 16 + 7 + 7 vector additions, and the tree one vector addition per level."""
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    if n == 0:
        return flat.new_zeros(flat.shape[0])
    rows, rest, levels, root = _pairwise_plan(n)
    dev = flat.device
    padded = torch.cat([flat, flat.new_zeros(flat.shape[0], 1)], dim=1)
    block = padded[:, torch.from_numpy(rows).to(dev)]  # N x leaves x 16 x 8
    acc = block[:, :, 0]
    for i in range(1, block.shape[2]):
        acc = acc + block[:, :, i]
    leaf = ((acc[..., 0] + acc[..., 1]) + (acc[..., 2] + acc[..., 3])) + (
        (acc[..., 4] + acc[..., 5]) + (acc[..., 6] + acc[..., 7]))
    tail = padded[:, torch.from_numpy(rest).to(dev)]  # N x leaves x 7
    for i in range(tail.shape[2]):
        leaf = leaf + tail[:, :, i]
    values = flat.new_zeros(flat.shape[0], root + 1)
    values[:, : leaf.shape[1]] = leaf
    for ids, left, right in levels:
        at, lo, hi = (torch.from_numpy(a).to(dev) for a in (ids, left, right))
        values[:, at] = values[:, lo] + values[:, hi]
    return values[:, root]


def numpy_mean(x: torch.Tensor) -> torch.Tensor:
    """``np.mean`` of each ``x[i]``: :func:`numpy_sum` divided by the count, as numpy divides."""
    count = math.prod(x.shape[1:])
    return numpy_sum(x) / float(count)


# -- full-reference metrics -------------------------------------------------------------------------------------
def _batch_pair(a: torch.Tensor, b: torch.Tensor, fn: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    if a.shape != b.shape:
        raise BadInputError(f"{fn}: images differ in size, {tuple(a.shape)} vs {tuple(b.shape)}")
    single = a.ndim == 2
    if single:
        a, b = a[None], b[None]
    if a.ndim != 3:
        raise BadInputError(f"{fn}: expected N x H x W planes (or one H x W plane), got shape {tuple(a.shape)}")
    return a.to(torch.float64), b.to(torch.float64), single


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image MSE of ``N x H x W`` planes (``N`` values; one value for ``H x W``), float64, on their device;
    bitwise equal to ``fullref.mse``."""
    a, b, single = _batch_pair(a, b, "mse")
    diff = a - b
    out = numpy_mean(diff * diff)
    return out[0] if single else out


def psnr_from_mse(err: torch.Tensor | Sequence[float], data_range: float = 255.0) -> list[float]:
    """``fullref.psnr`` from MSE values (on the host: N floats leave the device, never a plane)."""
    values = err.tolist() if isinstance(err, torch.Tensor) else list(err)
    if isinstance(values, float):
        values = [values]
    return [math.inf if e == 0 else float(10.0 * np.log10(data_range * data_range / e)) for e in values]


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 255.0) -> list[float]:
    """Per-image PSNR of ``N x H x W`` planes, as Python floats, bitwise equal to ``fullref.psnr``."""
    return psnr_from_mse(mse(a, b), data_range)


def _correlate_valid(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``scipy.ndimage.correlate1d`` with the 11-tap Gaussian along ``dim``, kept where the window fits
    ('valid'), in scipy's order for a symmetric kernel: centre tap first, then ``(x[-k] + x[+k]) * w[k]`` from
    the outermost pair inwards."""
    g = gaussian_1d().tolist()  # Python floats: the float64 taps, exactly
    m = SSIM_WINDOW // 2
    length = x.shape[dim] - 2 * m

    def tap(k: int) -> torch.Tensor:
        return x.narrow(dim, m + k, length)

    out = tap(0) * g[m]
    for k in range(m, 0, -1):
        out = out + (tap(-k) + tap(k)) * g[m - k]
    return out


def _filter_valid(x: torch.Tensor) -> torch.Tensor:
    return _correlate_valid(_correlate_valid(x, -2), -1)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (Wang et al., as ``fullref.ssim``) of ``N x H x W`` planes, float64, on their device;
    bitwise equal to ``fullref.ssim`` of each plane."""
    a, b, single = _batch_pair(a, b, "ssim")
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise BadInputError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(a.shape[-2:])}")
    out = numpy_mean(fullref.ssim_map(a, b, _filter_valid))
    return out[0] if single else out


# -- LPIPS ----------------------------------------------------------------------------------------------------
_MODELS_LOCK = threading.Lock()
_DEVICE_MODELS: dict[tuple[str, tuple[int, ...], str], Any] = {}


def lpips_input(images: torch.Tensor) -> torch.Tensor:
    """``lpips_alex.to_tensor`` on device: ``N x C x H x W`` (0..255) -> float32 in -1..1, three channels."""
    images = as_images(images)
    x = images.to(torch.float64)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x / 127.5 - 1.0).float()


def _lpips_model(backbone: str, device: torch.device, stamp: tuple[int, ...] = ()) -> Any:
    from srbench.metrics.lpips_alex import lpips_network

    key = (backbone, stamp, str(device))
    with _MODELS_LOCK:
        if key not in _DEVICE_MODELS:
            cpu = lpips_network(backbone, stamp)
            _DEVICE_MODELS[key] = cpu if device.type == "cpu" else copy.deepcopy(cpu).to(device)
        return _DEVICE_MODELS[key]


def lpips(sr: torch.Tensor, hr: torch.Tensor, *, weights_dir: str | None = None) -> list[float]:
    """Per-image LPIPS v0.1 (AlexNet) of ``N x C x H x W`` images on their device (no host copy of them)."""
    from srbench.metrics.lpips_alex import alexnet_path

    if sr.shape != hr.shape:
        raise BadInputError(f"lpips: images differ in size, {tuple(sr.shape)} vs {tuple(hr.shape)}")
    path = alexnet_path(weights_dir)
    model = _lpips_model(str(path), sr.device, weights.stamp(path))
    with torch.no_grad():
        return model(lpips_input(sr), lpips_input(hr)).reshape(-1).double().tolist()


# -- FID: the patches and features of its accumulator's prepare ----------------------------------------------------
def fid_patches(images: torch.Tensor, size: int | None = None) -> list[torch.Tensor]:
    """``fid.extract_patches`` of each image of an ``N x C x H x W`` batch, on its device: uint8
    ``patches x 3 x size x size`` (channel-first, as the Inception network takes them)."""
    from srbench.metrics.fid import PATCH_SIZE, patch_positions

    size = PATCH_SIZE if size is None else size
    images = quantise_like_matlab(as_images(images))
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    corners = patch_positions(images.shape[2], images.shape[3], size)
    if not corners:
        return [images.new_zeros((0, 3, size, size)) for _ in range(images.shape[0])]
    return [torch.stack([img[:, y:y + size, x:x + size] for y, x in corners]) for img in images]


def fid_features(patches: torch.Tensor, weights_dir: str | None = None) -> np.ndarray:
    """``fid.features`` of channel-first uint8 patches on any device: the same batches of 32 through the same
    network, features (2048 floats a patch) returned to the host; an injected extractor gets host patches."""
    from srbench.metrics import fid

    if fid.extractor_injected():
        return fid.features(patches.permute(0, 2, 3, 1).cpu().numpy(), weights_dir)
    path = fid.inception_path(weights_dir)
    net = fid.inception_network(str(path), weights.stamp(path))
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, patches.shape[0], fid.BATCH):
            (features,) = net(patches[start:start + fid.BATCH].contiguous().to(device))
            out.append(features.double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2048))


def fid_prepare(sr: torch.Tensor, hr: torch.Tensor,
                weights_dir: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """What FID's ``prepare`` gives for each image of a batch of its planes (``rgb``, on the device): the SR
    and HR patch features, ready for its ``add`` in dataset order."""
    return [(fid_features(s, weights_dir), fid_features(h, weights_dir))
            for s, h in zip(fid_patches(sr), fid_patches(hr), strict=True)]


# -- a protocol's metrics on a batch --------------------------------------------------------------------------
def per_image(proto: Any, planes: TorchPlanes, names: Sequence[str], weights_dir: str | None = None,
              ) -> list[dict[str, float]]:
    """Per-image values of the metrics ``names`` that have a torch form (``Metric.torch_compute``), for a
    batch of planes of the protocol ``proto`` (a ``srbench.protocols.Protocol``); others are left out (the
    caller runs them on host planes). One dict per image, in batch order."""
    from srbench.metrics.registry import TorchBatch

    n = planes.get("rgb", "sr")
    assert n is not None
    rows: list[dict[str, float]] = [{} for _ in range(n.shape[0])]
    for name in names:
        m = proto.metric(name)
        if m.torch_compute is None:
            continue
        batch = TorchBatch(planes.get(m.plane, "sr"), planes.get(m.plane, "hr") if m.needs_reference else None,
                           weights_dir)
        for row, value in zip(rows, m.run_torch(batch), strict=True):
            row.update(value)
    return rows
