"""Whole ``srbench evaluate`` commands on BSD100, bicubic x4, with ``--workers 1`` and ``--workers 2`` (issue 24).

    python benchmarks/workers_bsd100.py [--rounds N] [--data-root DIR] [--cases sr,...] [--against CHECKOUT]

Three cases: ``sr`` (PSNR-Y, SSIM-Y), ``pirm --metrics rmse,niqe``, and ``pirm --metrics rmse,niqe,ma,pi`` with a
stand-in NRQM model (the real one's structure: 3 forests of 2000 trees) written to a temporary weights folder.
Each command is a fresh process (start-up and imports included) writing into a fresh temporary store. Three runs
alternate within each round (their order turns from round to round, so drifting load on a shared machine hits
all): ``--workers 1`` and ``--workers 2`` on every usable core, and ``--workers 1`` confined to one core (its CPU
affinity), the command as a one-core machine runs it. ``--workers 1`` on two cores is not a one-core run: the
next image is read and made in one thread while another computes the metrics of the last.

For each run: wall seconds, the parent's CPU seconds (user + system) and its share of the wall time (the serial
part: start-up, planning, ordering, the store, the table), and the workers' CPU seconds. Then per case the medians
and the ratios ``workers 1 / workers 2`` and ``one core / workers 2``, and the load average.

``--against CHECKOUT`` (another srbench checkout, e.g. ``git worktree add ../base <commit>``) runs every command
from that checkout too, alternating with this one within each round (which goes first turns from round to round),
and reports both: a before/after measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


# Runs the command in this interpreter and prints the process's own CPU time and its reaped children's (the
# workers, which the pool joins before the process ends) as one line on stderr at exit.
_MEASURED = """
import atexit, json, resource, runpy, sys
def _report():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print("RUSAGE " + json.dumps({"parent": own.ru_utime + own.ru_stime, "workers": kids.ru_utime + kids.ru_stime}),
          file=sys.stderr, flush=True)
atexit.register(_report)
sys.argv = ["srbench", *sys.argv[1:]]
runpy.run_module("srbench", run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class Run:
    seconds: float  # wall, whole process
    parent_cpu: float
    workers_cpu: float

    @property
    def parent_share(self) -> float:
        return self.parent_cpu / self.seconds


def _run(case: str, workers: int, data_root: Path, weights: Path, scratch: Path, one_core: bool = False,
         tree: Path = ROOT) -> Run:
    store = Path(tempfile.mkdtemp(dir=scratch)) / "store.sqlite"
    command = [sys.executable, "-c", _MEASURED, "evaluate", "--model", "bicubic", "--dataset", "bsd100",
               "--scale", "4", "--data-root", str(data_root), "--weights-dir", str(weights), "--store", str(store),
               "--workers", str(workers), *CASES[case]]
    core = min(os.sched_getaffinity(0))
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True,  # -c: the tree's srbench comes first
                          preexec_fn=(lambda: os.sched_setaffinity(0, {core})) if one_core else None)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("RUSAGE ")][-1]
    cpu = json.loads(line[len("RUSAGE "):])
    return Run(seconds, cpu["parent"], cpu["workers"])


VARIANTS = {"workers 1": (1, False), "workers 2": (2, False), "one core": (1, True)}  # (--workers, one core)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("SRBENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--against", type=Path, help="another srbench checkout, run alternately with this one")
    args = parser.parse_args()
    cases = args.cases.split(",")
    trees = {"": ROOT} if args.against is None else {"this": ROOT, "against": args.against.resolve()}
    if args.against is not None and not (args.against / "srbench" / "__init__.py").is_file():
        raise SystemExit(f"--against {args.against}: not an srbench checkout (no srbench/__init__.py)")
    with tempfile.TemporaryDirectory(prefix="srbench-workers-") as tmp:
        scratch = Path(tmp)
        weights = scratch / "weights"
        weights.mkdir()
        if "pirm-ma-pi" in cases:
            _stand_in_nrqm(args.data_root, weights)
        print(f"load average before: {os.getloadavg()[0]:.2f}, usable cores: {len(os.sched_getaffinity(0))}")
        for case in cases:
            runs: dict[tuple[str, str], list[Run]] = {(t, name): [] for t in trees for name in VARIANTS}
            for r in range(args.rounds):
                order = list(VARIANTS)[r % 3:] + list(VARIANTS)[:r % 3]
                for tree in list(trees)[r % 2:] + list(trees)[:r % 2]:
                    for name in order:
                        workers, one_core = VARIANTS[name]
                        run = _run(case, workers, args.data_root, weights, scratch, one_core, trees[tree])
                        runs[(tree, name)].append(run)
                        print(f"{case:15s} {tree:7s} {name:9s}: {run.seconds:6.2f} s, parent {run.parent_cpu:5.2f} s "
                              f"CPU ({run.parent_share:4.0%} of the wall time), workers {run.workers_cpu:6.2f} s CPU "
                              f"(load {os.getloadavg()[0]:.2f})", flush=True)
            for tree in trees:
                median = {name: statistics.median(x.seconds for x in runs[(tree, name)]) for name in VARIANTS}
                share = statistics.median(x.parent_share for x in runs[(tree, "workers 2")])
                one, two = median["workers 1"], median["workers 2"]
                print(f"{case:15s} {tree:7s} median: --workers 1 {one:.2f} s, --workers 2 {two:.2f} s "
                      f"(parent {share:.0%} of it), one core {median['one core']:.2f} s; workers 1 / workers 2 "
                      f"{one / two:.2f}x, one core / workers 2 {median['one core'] / two:.2f}x", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
