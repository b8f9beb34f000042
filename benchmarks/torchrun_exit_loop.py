"""Repeat a 2-rank sharded ``srbench evaluate`` under torchrun and count failed launches.

    python benchmarks/torchrun_exit_loop.py [N] [--data-root DIR]

The launch ``tests/test_torchrun.py`` makes (Set5 crops, a broken file, a stand-in NRQM model). Before
``srbench.work_split.leave_launch`` a rank aborted now and then in the interpreter's C++ shutdown ("terminate
called without an active exception") after every result was written: 10 of 51 launches under load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from srbench.images import read_image, write_png
from srbench.matlab import rgb2y
from srbench.metrics import nrqm
from srbench.metrics.nrqm_synthetic import write_model_around

CROPS = {"baby": (200, 240), "bird": (160, 160), "butterfly": (240, 200), "head": (176, 192), "woman": (224, 160)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=20)
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    folder, weights = root / "images", root / "weights"
    folder.mkdir()
    weights.mkdir()
    for name, (h, w) in CROPS.items():
        hr = read_image(Path(args.data_root) / f"benchmark/Set5/HR/{name}.png")
        write_png(folder / f"{name}.png", hr[:h, :w])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    planes = [rgb2y(read_image(folder / f"{n}.png")).astype(np.float64) for n in ("bird", "head")]
    write_model_around(weights / nrqm.NRQM_FILENAME, planes, n_samples=100, n_trees=4, seed=1)
    failed = 0
    for i in range(args.n):
        run = root / f"run{i}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "srbench", "evaluate", "--model", "bicubic", "--dataset", str(folder), "--protocol", "pirm",
               "--metrics", "rmse,niqe,ma,pi,brisque", "--weights-dir", str(weights), "--store",
               str(run / "store.db"), "--out", str(run / "out"), "--workers", "1", "--skip-bad", "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode:
            failed += 1
            print(f"launch {i} failed:", proc.stderr.splitlines()[:1], flush=True)
    print(f"{failed} of {args.n} launches failed")


if __name__ == "__main__":
    main()
