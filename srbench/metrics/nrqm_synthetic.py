"""Stand-in NRQM model files with the structure of the real ``NRQM_model.mat``, for tests and benchmarks.

The real model cannot be downloaded on every machine. These files have its exact MATLAB layout, so every
loader and every tree walk can be checked against pyiqa's, and timed, without it:

- ``model.linear``: 4x1 robust-fit weights (bias, then one per forest);
- ``model.rf``: a 1x3 cell of randomforest-matlab ``regRF_train`` structs whose first seven fields are
  ``lDau``, ``rDau``, ``nodestatus`` (-1 terminal, -3 split), ``nrnodes``, ``upper`` (threshold), ``avnode``
  (node prediction), ``mbest`` (1-based split feature); node arrays are (nrnodes, ntree).

The release trains each forest with 2000 trees on 1440 images (``train_RF_regression.m``); randomforest-matlab
allocates 2 * floor(1440 / max(1, nodesize - 4)) + 1 = 2881 node slots per tree (nodesize 5), of which a tree
grown to leaves of 5 samples uses a few hundred; the rest stay zero. The trees here are grown the same way
(random feature, split at the median of the samples reaching the node, stop at 5 samples) on samples the
caller gives, so thresholds fall where real features do and walks take both branches.

A score from such a model is not Ma's score: nothing outside tests and benchmarks may load one.
"""

from __future__ import annotations

import os

import numpy as np

NODE_TERMINAL = -1
NODE_SPLIT = -3
LEAF_SIZE = 5


def _grow_tree(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, nrnodes: int) -> dict[str, np.ndarray]:
    left = np.zeros(nrnodes, dtype=np.int32)
    right = np.zeros(nrnodes, dtype=np.int32)
    status = np.zeros(nrnodes, dtype=np.int32)
    upper = np.zeros(nrnodes)
    avnode = np.zeros(nrnodes)
    mbest = np.zeros(nrnodes, dtype=np.int32)
    stack = [(0, np.arange(x.shape[0]))]
    used = 1
    while stack:
        node, rows = stack.pop()
        avnode[node] = y[rows].mean()
        status[node] = NODE_TERMINAL
        if rows.size <= LEAF_SIZE or used + 2 > nrnodes:
            continue
        feature = int(rng.integers(x.shape[1]))
        values = x[rows, feature]
        threshold = float(np.median(values))
        go_left = values <= threshold
        if go_left.all() or not go_left.any():
            continue
        status[node], mbest[node], upper[node] = NODE_SPLIT, feature + 1, threshold
        left[node], right[node] = used + 1, used + 2  # 1-based, as MATLAB stores them
        stack += [(used, rows[go_left]), (used + 1, rows[~go_left])]
        used += 2
    return {"lDau": left, "rDau": right, "nodestatus": status, "upper": upper, "avnode": avnode, "mbest": mbest}


def synthetic_forest(samples: np.ndarray, targets: np.ndarray, *, n_trees: int, seed: int) -> dict:
    """A bagged forest of ``n_trees`` trees grown on bootstrap resamples of ``samples`` -> ``targets``."""
    rng = np.random.default_rng(seed)
    n = samples.shape[0]
    nrnodes = 2 * (n // max(1, LEAF_SIZE - 4)) + 1
    trees = []
    for _ in range(n_trees):
        pick = rng.integers(n, size=n)
        trees.append(_grow_tree(samples[pick], targets[pick], rng, nrnodes))
    forest = {k: np.stack([t[k] for t in trees], axis=1) for k in trees[0]}
    return {"lDau": forest["lDau"], "rDau": forest["rDau"], "nodestatus": forest["nodestatus"],
            "nrnodes": np.array([[nrnodes]], dtype=np.int32), "upper": forest["upper"], "avnode": forest["avnode"],
            "mbest": forest["mbest"], "ndtree": np.array([[n_trees]], dtype=np.int32)}


def write_synthetic_model(path: str | os.PathLike, groups: tuple[np.ndarray, np.ndarray, np.ndarray], *,
                          n_trees: int = 300, seed: int = 0) -> None:
    """Write a model file for three feature groups, each an (n_samples, n_features) array of samples.

    Targets are a fixed smooth function of the samples plus noise, in Ma's 0..10 range.
    """
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    n = groups[0].shape[0]
    mixed = sum(np.tanh((g - g.mean(axis=0)) / (g.std(axis=0) + 1e-12)) @ rng.normal(size=g.shape[1]) for g in groups)
    targets = 5 + 2 * np.tanh(np.asarray(mixed) / np.sqrt(sum(g.shape[1] for g in groups))) + rng.normal(0, 0.3, n)
    forests = [synthetic_forest(g, targets, n_trees=n_trees, seed=seed + 1 + i) for i, g in enumerate(groups)]
    cell = np.empty((1, 3), dtype=object)
    for i, forest in enumerate(forests):
        cell[0, i] = forest
    linear = np.array([[0.6], [0.35], [0.3], [0.33]])
    savemat(os.fspath(path), {"model": {"rf": cell, "linear": linear}}, do_compression=True)


def write_model_around(path: str | os.PathLike, planes, *, n_samples: int = 1440, n_trees: int = 300,
                       seed: int = 0, sample_seed: int = 0, convention=None) -> None:
    """A stand-in model grown on ``n_samples`` samples drawn around the features of ``planes`` (grey planes of
    real images, float64): each sample is one plane's features, every value jittered by 5%, so thresholds split
    where real features fall. ``convention``: the feature computation's (default: srbench's, the MATLAB one)."""
    from srbench.metrics import nrqm as N

    conv = N.MATLAB if convention is None else convention
    rng = np.random.default_rng(sample_seed)
    feats = [(N.dct_features(p, conv), N.gsm_features(p, conv), N.svd_features(p, conv)) for p in planes]
    groups = []
    for g in range(3):
        base = np.stack([f[g] for f in feats])
        pick = rng.integers(len(feats), size=n_samples)
        groups.append(base[pick] * (1 + 0.05 * rng.normal(size=(n_samples, base.shape[1]))))
    write_synthetic_model(path, (groups[0], groups[1], groups[2]), n_trees=n_trees, seed=seed)
