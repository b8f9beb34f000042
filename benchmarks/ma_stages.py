"""Ma's features by stage, 53014ee against now, one thread, CPU time of the thread (docs/ma-profile.md).

``python benchmarks/ma_stages.py 480x320 4`` (size, repetitions) from the repository root: each stage of both
implementations timed around the modules' own functions, interleaved, minimum over the repetitions. A third
argument names another baseline commit (``... 480x320 4 a036c84``: the second round's code).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ma_old import OLD_COMMIT, load_old_nrqm

from srbench.images import read_image
from srbench.matlab import rgb2y
from srbench.metrics import nrqm

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
IMAGES = {"480x320": ("selfexsr/BSD100/image_SRF_4/img_004_SRF_4_HR.png", (slice(0, 320), slice(0, 480))),
          "1024x768": ("selfexsr/Urban100/image_SRF_4/img_002_SRF_4_HR.png", (slice(0, 768), slice(0, 1024)))}


def _ssim(module, highpass, bands, normalised, cache) -> None:
    conv = module.MATLAB
    if hasattr(module, "_cs_means"):
        at = [module._at_size(bands, i, highpass.shape, cache) for i in range(len(bands))]
        module._cs_means([*at, highpass], [(len(bands), i) for i in range(len(bands))], conv)
        module._cs_means(normalised[:6], [(i, j) for i in range(6) for j in range(i + 1, 6)], conv)
        return
    hp = module._Moments.of(highpass)
    for i in range(len(bands)):
        module._ssim_cs(module._Moments.of(module._at_size(bands, i, highpass.shape, cache)), hp, conv)
    fine = [module._Moments.of(b) for b in normalised[:6]]
    for i in range(6):
        for j in range(i + 1, 6):
            module._ssim_cs(fine[i], fine[j], conv)


def stages(module, plane: np.ndarray) -> dict[str, float]:
    conv = module.MATLAB
    times = {}
    clock = time.thread_time()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.thread_time()
        times[name] = now - clock
        clock = now

    highpass, scales = module.steerable_pyramid(plane)
    bands = [b for s in scales for b in s]
    lap("pyramid")
    cache: dict[int, np.ndarray] = {}
    for i in range(6, 12):
        module._doubled(bands, i, cache)
    lap("parents")
    normalised = module._divisive_normalisation(bands, conv, cache)
    lap("divisive normalisation")
    if hasattr(module, "_deviation_sums"):
        sums = [module._deviation_sums(band) for band in normalised]
        for band_sums in sums:
            module._shape_from_sums(*band_sums, conv)
        for i in range(6):
            module._shape_from_sums(*module._pooled(sums[i], sums[i + 6]), conv)
    else:
        for band in normalised:
            module.gen_gauss_shape(band.ravel(), conv)
        for i in range(6):
            module.gen_gauss_shape(np.concatenate([normalised[i].ravel(), normalised[i + 6].ravel()]), conv)
    lap("shapes")
    _ssim(module, highpass, bands, normalised, cache)
    lap("ssim")
    module.dct_features(plane, conv)
    lap("dct")
    module.svd_features(plane, conv)
    lap("svd")
    return times


def main(size: str = "480x320", repetitions: int = 4, baseline: str = OLD_COMMIT) -> None:
    import cv2
    import threadpoolctl

    rel, crop = IMAGES[size]
    img = read_image(DATA / rel)
    plane = np.ascontiguousarray((rgb2y(img) if img.ndim == 3 else img.astype(np.float64))[crop])
    cv2.setNumThreads(1)
    best: dict[str, dict[str, float]] = {baseline: {}, "now": {}}
    with threadpoolctl.threadpool_limits(1):
        for _ in range(repetitions):
            for tag, module in ((baseline, load_old_nrqm(baseline)), ("now", nrqm)):
                for name, seconds in stages(module, plane).items():
                    best[tag][name] = min(best[tag].get(name, np.inf), seconds)
    for tag, times in best.items():
        cells = ", ".join(f"{name} {ms * 1e3:.1f}" for name, ms in times.items())
        print(f"{size} {tag}: {cells}; sum {sum(times.values()) * 1e3:.0f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "480x320", int(sys.argv[2]) if len(sys.argv) > 2 else 4,
         sys.argv[3] if len(sys.argv) > 3 else OLD_COMMIT)
