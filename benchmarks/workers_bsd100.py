"""Whole ``srbench evaluate`` commands on BSD100, bicubic x4, with ``--workers 1`` and ``--workers 2`` (issue 24).

    python benchmarks/workers_bsd100.py [--rounds N] [--data-root DIR]

Three cases: ``sr`` (PSNR-Y, SSIM-Y), ``pirm --metrics rmse,niqe``, and ``pirm --metrics rmse,niqe,ma,pi`` with a
stand-in NRQM model (the real one's structure: 3 forests of 2000 trees) written to a temporary weights folder.
Each command is a fresh process (start-up and imports included) writing into a fresh temporary store; the two
worker counts alternate within each round (1, 2, then 2, 1, ...) so drifting load on a shared machine hits both.
Prints each run's seconds, each case's median and the ratio ``workers 1 / workers 2``, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CASES = {
    "sr": ["--protocol", "sr"],
    "pirm-rmse-niqe": ["--protocol", "pirm", "--metrics", "rmse,niqe"],
    "pirm-ma-pi": ["--protocol", "pirm", "--metrics", "rmse,niqe,ma,pi"],
}


def _stand_in_nrqm(data_root: Path, folder: Path) -> None:
    """A stand-in NRQM model around 4 BSD100 HR images (see srbench.metrics.nrqm_synthetic)."""
    sys.path.insert(0, str(ROOT))
    from srbench.images import read_image
    from srbench.matlab import rgb2y
    from srbench.metrics import nrqm as N
    from srbench.metrics.nrqm_synthetic import write_model_around

    hr = sorted((data_root / "selfexsr" / "BSD100").rglob("*_HR.png"))[:4]
    planes = [rgb2y(read_image(p)).astype("float64") for p in hr]
    write_model_around(folder / N.NRQM_FILENAME, planes, n_trees=2000)


def _run(case: str, workers: int, data_root: Path, weights: Path, scratch: Path) -> float:
    store = Path(tempfile.mkdtemp(dir=scratch)) / "store.sqlite"
    command = [sys.executable, "-m", "srbench", "evaluate", "--model", "bicubic", "--dataset", "bsd100",
               "--scale", "4", "--data-root", str(data_root), "--weights-dir", str(weights), "--store", str(store),
               "--workers", str(workers), *CASES[case]]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("SRBENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    args = parser.parse_args()
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory(prefix="srbench-workers-") as tmp:
        scratch = Path(tmp)
        weights = scratch / "weights"
        weights.mkdir()
        if "pirm-ma-pi" in cases:
            _stand_in_nrqm(args.data_root, weights)
        print(f"load average before: {os.getloadavg()[0]:.2f}, usable cores: {len(os.sched_getaffinity(0))}")
        for case in cases:
            times: dict[int, list[float]] = {1: [], 2: []}
            for r in range(args.rounds):
                for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
                    seconds = _run(case, workers, args.data_root, weights, scratch)
                    times[workers].append(seconds)
                    print(f"{case:15s} --workers {workers}: {seconds:6.2f} s (load {os.getloadavg()[0]:.2f})",
                          flush=True)
            one, two = statistics.median(times[1]), statistics.median(times[2])
            print(f"{case:15s} median --workers 1 {one:.2f} s, --workers 2 {two:.2f} s: {one / two:.2f}x", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
