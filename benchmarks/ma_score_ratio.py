"""Ma's whole score (features and the three forests) now against commit 53014ee, one thread, same run.

``python benchmarks/ma_score_ratio.py [repetitions]`` from the repository root, with ../shared/data beside the
checkout: both implementations score the 480x320 and 1024x768 planes of test_bench_ma.py with the same
stand-in model file (the real one's structure: 3 forests of 2000 trees), interleaved, minimum thread CPU time;
the scores must agree to 1e-9 relative. test_bench_ma_speed.py times the features alone (as the issue's
profile does); this adds the forests' walk and the model's (cached) load, what a user's call costs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ma_old import load_old_nrqm
from ma_stages import DATA, IMAGES

from srbench.images import read_image
from srbench.matlab import rgb2y
from srbench.metrics import nrqm
from srbench.metrics.nrqm_synthetic import write_model_around


def main(repetitions: int = 4) -> None:
    import cv2
    import threadpoolctl

    planes = {}
    for size, (rel, crop) in IMAGES.items():
        img = read_image(DATA / rel)
        planes[size] = np.ascontiguousarray((rgb2y(img) if img.ndim == 3 else img.astype(np.float64))[crop])
    old = load_old_nrqm()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as folder, threadpoolctl.threadpool_limits(1):
        write_model_around(Path(folder) / nrqm.NRQM_FILENAME, planes.values(), n_trees=2000)
        os.environ["SRBENCH_WEIGHTS"] = folder
        for size, plane in planes.items():
            best = {"53014ee": np.inf, "now": np.inf}
            scores = {}
            for _ in range(repetitions):
                for tag, module in (("53014ee", old), ("now", nrqm)):
                    start = time.thread_time()
                    scores[tag] = module.ma(plane)
                    best[tag] = min(best[tag], time.thread_time() - start)
            rel = abs(scores["now"] - scores["53014ee"]) / abs(scores["53014ee"])
            assert rel < 1e-9, (size, scores)
            print(f"ma score {size}, one thread: 53014ee {best['53014ee'] * 1e3:.0f} ms, now {best['now'] * 1e3:.0f} "
                  f"ms CPU (min of {repetitions}, interleaved): {best['53014ee'] / best['now']:.2f}x; scores "
                  f"{scores['now']:.6f} and {scores['53014ee']:.6f} (relative difference {rel:.1e})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
