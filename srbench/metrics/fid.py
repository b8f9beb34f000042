"""FID between the SR set and the HR set of a dataset (a dataset-level metric), on patches.

Features: torch-fidelity's ``FeatureExtractorInceptionV3`` (the TensorFlow Inception of Heusel et al.'s
reference FID, 2015-12-05 graph, converted to PyTorch), its 2048-d pool features, with its own input
conventions: uint8 RGB, resized inside the network to 299x299 by its TensorFlow-1.x-compatible bilinear
resize, then scaled to (x - 128) / 128. The Fréchet distance is torch-fidelity's own
(``torch_fidelity.metric_fid.fid_statistics_to_metric``, adapted from the TTUR reference code).

Patches (FID/P of Mentzer et al., "High-Fidelity Generative Image Compression", NeurIPS 2020, as implemented in
facebookresearch/NeuralCompression ``neuralcompression/metrics/_update_patch_fid.py``): each image's plane is
cut into the grid of non-overlapping P x P patches from its top-left corner and, when the image is at least
1.5 P high and wide, a second grid shifted by P/2 in both directions; every patch is one sample, for SR and HR
alike (the same positions in both). Mentzer et al. use P = 256 on CLIC2020/Kodak (a few samples per image
would be too few here: SR test sets have images a few hundred pixels a side), so srbench uses **P = 64**
(srbench's choice, not taken from a paper): BSD100 at x4 under the sr protocol (480x320 after modcrop,
472x312 after the 4-pixel shave) gives 28 + 24 = 52 patches per image, about 5200 per set, more than the
2048 feature dimensions (the covariance needs more samples than dimensions to be full rank). Small sets stay
rank-deficient (Set5 at x4 gives 189 patches): their FID is defined but biased, and ``fid_n_patches`` says how
many samples it rests on. The plane is the protocol's RGB image (SR quantised to uint8, border shaved as
its other metrics); grayscale images are repeated to three channels.

Statistics stream: each image's patch features update running means and co-moment matrices (Chan et al.'s
pairwise update, float64) in dataset order, so memory is two 2048x2048 matrices per side whatever the set
size, and the value does not depend on thread timing.

Weights: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``
(https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth),
looked for in srbench's weights folder, then torch.hub's checkpoint cache. srbench never downloads it: while
the network is built, torch-fidelity's download function is replaced by one that loads that local file
(``weights_only``, refusing pickled code) or raises :class:`WeightsUnavailableError` naming it and the folder.

Testing hook: :func:`use_feature_extractor` replaces the network by any callable mapping uint8 patches
(N x P x P x 3) to features (N x D), e.g. a small seeded random convolution net.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srbench import paths
from srbench.errors import BadInputError
from srbench.metrics.registry import DatasetAccumulator, Metric, PerImage, per_image_unsupported

PATCH_SIZE = 64
INCEPTION_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILENAME}"
FEATURE_LAYER = "2048"
BATCH = 32

FeatureExtractor = Callable[[np.ndarray], np.ndarray]  # uint8 N x P x P x 3 -> float N x D


# -- patches ------------------------------------------------------------------------------------------------
def patch_positions(height: int, width: int, size: int = PATCH_SIZE) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the FID/P patches of an image: the non-overlapping grid from (0, 0), then,
    when the image is at least 1.5 ``size`` high and wide, the grid shifted by ``size // 2``.

    >>> patch_positions(128, 160)
    [(0, 0), (0, 64), (64, 0), (64, 64), (32, 32), (32, 96)]
    """
    if size < 1:
        raise BadInputError(f"patch size must be positive, got {size}")
    offsets = [0]
    if height >= 1.5 * size and width >= 1.5 * size:
        offsets.append(size // 2)
    return [(y, x) for off in offsets
            for y in range(off, height - size + 1, size) for x in range(off, width - size + 1, size)]


def extract_patches(img: np.ndarray, size: int = PATCH_SIZE) -> np.ndarray:
    """The FID/P patches of one image (HxW or HxWx3, 0..255) as uint8 N x size x size x 3."""
    from srbench.matlab import to_uint8

    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise BadInputError(f"FID expects HxW or HxWx3 images, got shape {arr.shape}")
    arr = arr if arr.dtype == np.uint8 else to_uint8(arr)
    corners = patch_positions(arr.shape[0], arr.shape[1], size)
    if not corners:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([arr[y:y + size, x:x + size] for y, x in corners])


# -- the Fréchet distance -----------------------------------------------------------------------------------
def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), by torch-fidelity's implementation (float64).

    >>> round(frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2)), 6)     # means 1 apart per axis
    2.0
    >>> round(frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), 4 * np.eye(2)), 6)  # (2 - 1)^2 per axis
    2.0
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    def stats(mu: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
        return {"mu": np.atleast_1d(np.asarray(mu, np.float64)), "sigma": np.atleast_2d(np.asarray(sigma, np.float64))}

    return float(fid_statistics_to_metric(stats(mu1, sigma1), stats(mu2, sigma2), verbose=False)[KEY_METRIC_FID])


@dataclass
class RunningMoments:
    """Mean and covariance of feature rows, updated a batch at a time (Chan et al.'s pairwise formula)."""

    n: int = 0
    mean: np.ndarray | None = None
    comoment: np.ndarray | None = None  # sum of outer products of deviations from the mean

    def update(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.float64)
        if rows.shape[0] == 0:
            return
        n_b = rows.shape[0]
        mean_b = rows.mean(axis=0)
        centred = rows - mean_b
        comoment_b = centred.T @ centred
        if self.mean is None or self.comoment is None:
            self.n, self.mean, self.comoment = n_b, mean_b, comoment_b
            return
        total = self.n + n_b
        delta = mean_b - self.mean
        self.comoment = self.comoment + comoment_b + np.outer(delta, delta) * (self.n * n_b / total)
        self.mean = self.mean + delta * (n_b / total)
        self.n = total

    @property
    def covariance(self) -> np.ndarray:
        assert self.comoment is not None and self.n > 1
        return self.comoment / (self.n - 1)  # as np.cov (ddof 1), which torch-fidelity uses


# -- the feature extractor ----------------------------------------------------------------------------------
_INJECTED: list[FeatureExtractor] = []
_BUILD_LOCK = threading.Lock()


@contextlib.contextmanager
def use_feature_extractor(extractor: FeatureExtractor) -> Iterator[FeatureExtractor]:
    """Inside the block FID uses ``extractor`` (uint8 N x P x P x 3 -> N x D) instead of Inception, and needs
    no weights file. For tests (a seeded random network) and experiments with other feature spaces; note that
    stored values are keyed by the metric version only, so use a separate store."""
    _INJECTED.append(extractor)
    try:
        yield extractor
    finally:
        _INJECTED.remove(extractor)


def inception_path(weights_dir: str | None = None) -> Path:
    """The Inception weights file, or a :class:`WeightsUnavailableError` naming it and where to put it."""
    return paths.require_weight(INCEPTION_FILENAME, "FID (torch-fidelity InceptionV3)", INCEPTION_URL,
                                [paths.torch_hub_dir() / "checkpoints"], weights_dir)


def _find_weights(weights_dir: str | None) -> Path:
    if _INJECTED:
        return paths.weights_dir(weights_dir)  # an injected extractor needs no file
    return inception_path(weights_dir)


@functools.cache
def inception_network(weights_file: str, stamp: tuple[int, ...] = ()) -> Any:
    """torch-fidelity's InceptionV3 with the local weights; its download call cannot reach the network. ``stamp``
    (``srbench.weights.stamp``) keys the cache, so a file replaced in place is read again."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    from srbench.weightfiles import read_weights

    def local_state_dict(url: str, *args: Any, **kwargs: Any) -> Any:
        if Path(url).name != INCEPTION_FILENAME:  # another release of torch-fidelity wants another file
            return read_weights(paths.require_weight(Path(url).name, "FID (torch-fidelity InceptionV3)", url,
                                                     [paths.torch_hub_dir() / "checkpoints"]))
        return read_weights(weights_file)  # weights_only: refuses pickled code

    with _BUILD_LOCK:
        saved = fe.load_state_dict_from_url
        fe.load_state_dict_from_url = local_state_dict
        try:
            net = fe.FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE_LAYER])
        finally:
            fe.load_state_dict_from_url = saved
    return net.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def inception_features(patches: np.ndarray, weights_dir: str | None = None) -> np.ndarray:
    """2048-d pool features of uint8 N x P x P x 3 patches (torch-fidelity's conventions, batches of 32)."""
    import torch

    from srbench.weights import stamp

    path = inception_path(weights_dir)
    net = inception_network(str(path), stamp(path))
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(patches), BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(patches[start:start + BATCH].transpose(0, 3, 1, 2)))
            (features,) = net(batch.to(device))
            out.append(features.double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2048))


def extractor_injected() -> bool:
    """Whether a :func:`use_feature_extractor` block is active (FID then needs no Inception and no weights)."""
    return bool(_INJECTED)


def features(patches: np.ndarray, weights_dir: str | None) -> np.ndarray:
    """FID's features of uint8 N x P x P x 3 patches: the injected extractor's, else Inception's."""
    if _INJECTED:
        return np.asarray(_INJECTED[-1](patches), np.float64) if len(patches) else np.zeros((0, 0))
    return inception_features(patches, weights_dir)


# -- the accumulator ----------------------------------------------------------------------------------------
@dataclass
class FidState:
    sr: RunningMoments = field(default_factory=RunningMoments)
    hr: RunningMoments = field(default_factory=RunningMoments)


def _prepare(x: PerImage, size: int = PATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One image's SR and HR patch features (worker thread)."""
    sr, hr = extract_patches(x.sr_plane(), size), extract_patches(x.hr_plane(), size)
    return features(sr, x.weights_dir), features(hr, x.weights_dir)


def _add(state: FidState, features: tuple[np.ndarray, np.ndarray]) -> None:
    state.sr.update(features[0])
    state.hr.update(features[1])


def _finish(state: FidState) -> dict[str, float]:
    n = state.sr.n
    if n < 2 or state.hr.n < 2:  # no covariance from fewer than two samples
        return {"fid": float("nan"), "fid_n_patches": float(n)}
    assert state.sr.mean is not None and state.hr.mean is not None
    value = frechet_distance(state.sr.mean, state.sr.covariance, state.hr.mean, state.hr.covariance)
    return {"fid": value, "fid_n_patches": float(n)}


ACCUMULATOR = DatasetAccumulator(start=FidState, add=_add, finish=_finish, prepare=_prepare)

FID = Metric(
    name="fid", label="FID", digits=2, higher_is_better=False, needs_reference=True,
    version="tfid-inception2015-p64-1",
    description=f"FID between the SR and HR sets (torch-fidelity InceptionV3 2048-d pool features, its TF-compatible "
    f"bilinear resize to 299) on {PATCH_SIZE}x{PATCH_SIZE} patches: the non-overlapping grid plus the grid shifted by "
    f"{PATCH_SIZE // 2} when the image is at least {PATCH_SIZE * 3 // 2} px high and wide (FID/P of Mentzer et al. "
    f"2020), on the protocol's RGB; one value per dataset; fid_n_patches samples per side (fewer than 2048 "
    f"make the covariance rank-deficient)",
    compute=per_image_unsupported, plane="rgb", protocols=("sr", "pirm"), extra_outputs=("fid_n_patches",),
    weights=INCEPTION_FILENAME, find_weights=_find_weights, tolerance=1e-2, level="dataset", accumulator=ACCUMULATOR,
    aggregation=f"Fréchet distance of SR and HR {PATCH_SIZE}x{PATCH_SIZE}-patch feature statistics over the set",
    undefined_when=f"a set without one {PATCH_SIZE}x{PATCH_SIZE} patch (every image under {PATCH_SIZE} px a side after "
                   "the shave)",
)

__all__ = ["FID", "INCEPTION_FILENAME", "INCEPTION_URL", "PATCH_SIZE", "RunningMoments", "extract_patches",
           "extractor_injected", "features", "frechet_distance", "inception_features", "inception_network",
           "inception_path", "patch_positions", "use_feature_extractor"]
