"""LPIPS v0.1 (AlexNet) through the ``lpips`` package.

The linear calibration layers ship inside ``lpips``; the AlexNet backbone is torchvision's ImageNet
download. srbench never downloads it: it looks in the weights folder and torch.hub's cache.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from srbench import paths
from srbench.errors import BadInputError

ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"
ALEXNET_ORIGIN = "torchvision's AlexNet ImageNet weights (torchvision.models.AlexNet_Weights.IMAGENET1K_V1)"
# AlexNet's second max-pool needs a 3x3 input: on a smaller image its last three layers have no output (the
# network raised "Output size is too small"). The registry's hook gives NaN below it, as NIQE's does.
MIN_SIDE = 31


def too_small(shape: tuple[int, ...]) -> bool:
    """Whether an image (H x W, H x W x 3, or a batch's N x C x H x W) is under :data:`MIN_SIDE` on a side."""
    return min(shape[-2:] if len(shape) == 4 else shape[:2]) < MIN_SIDE


def alexnet_path(explicit: str | os.PathLike | None = None) -> Path:
    """Where the AlexNet backbone is, or a :class:`WeightsUnavailableError` saying where to put it."""
    return paths.require_weight(ALEXNET_FILENAME, "LPIPS (AlexNet backbone)", ALEXNET_ORIGIN,
                                [paths.torch_hub_dir() / "checkpoints"], explicit)


@functools.cache
def lpips_network(backbone: str, stamp: tuple[int, ...] = ()) -> Any:
    """LPIPS with the AlexNet ``backbone``; ``stamp`` (``srbench.weights.stamp``) keys the cache, so a file replaced
    in place is read again."""
    import warnings

    import lpips as lpips_pkg
    import torch

    # pnet_rand avoids torchvision's download; the ImageNet backbone is then loaded from the local file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision's deprecated `pretrained`
        model = lpips_pkg.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    from srbench.weightfiles import CheckpointError, read_weights

    state = read_weights(backbone)  # refuses pickled code and says what a non-checkpoint is
    for block in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        for index, layer in block.named_children():
            if hasattr(layer, "weight"):
                for name, param in (("weight", layer.weight), ("bias", layer.bias)):
                    key = f"features.{index}.{name}"
                    value = state.get(key) if isinstance(state, dict) else None
                    if not isinstance(value, torch.Tensor) or value.shape != param.shape:
                        found = "missing" if value is None else f"{getattr(value, 'shape', type(value).__name__)}"
                        raise CheckpointError(f"{backbone}: not torchvision's AlexNet ({key} is {found}, "
                                              f"expected {tuple(param.shape)})")
                    param.data.copy_(value)
    return model.eval()


def to_tensor(img: np.ndarray) -> Any:
    """An H x W (x 3) image in 0..255 as LPIPS takes it: a 1 x 3 x H x W float32 tensor in -1..1."""
    import torch

    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] != 3:
        raise BadInputError(f"lpips expects HxW or HxWx3 images, got shape {x.shape}")
    return torch.from_numpy(x / 127.5 - 1.0).permute(2, 0, 1)[None].float()


def lpips(a: np.ndarray, b: np.ndarray, *, weights_dir: str | os.PathLike | None = None) -> float:
    """LPIPS distance of two images in 0..255 (lower is more similar); needs torchvision's AlexNet weights:

    >>> import tempfile
    >>> img = np.zeros((48, 48, 3))
    >>> lpips(img, img, weights_dir=tempfile.mkdtemp())              # doctest: +ELLIPSIS
    Traceback (most recent call last):
    srbench.errors.WeightsUnavailableError: ...alexnet-owt-7be5be79.pth...
    >>> lpips(img[:16, :16], img[:16, :16])                          # AlexNet's pooling needs 31x31
    Traceback (most recent call last):
    srbench.errors.BadInputError: lpips: AlexNet needs an image of at least 31x31 pixels; got 16x16
    """
    import torch

    if np.shape(a) != np.shape(b):
        raise BadInputError(f"lpips: images differ in size, {np.shape(a)} vs {np.shape(b)}")
    if too_small(np.shape(a)):
        h, w = np.shape(a)[:2]
        raise BadInputError(f"lpips: AlexNet needs an image of at least {MIN_SIDE}x{MIN_SIDE} pixels; got {h}x{w}")
    from srbench.weights import stamp

    path = alexnet_path(weights_dir)
    model = lpips_network(str(path), stamp(path))
    with torch.no_grad():
        return float(model(to_tensor(a), to_tensor(b)).item())
