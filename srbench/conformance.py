"""The conformance tester every metric passes, built-in or registered from outside: :func:`check_metric`.

It computes the metric the way its protocol does (``Protocol.per_image``, or its accumulator for a dataset-level
metric) on a small sample made from one pristine RGB image -- the image itself, the image with Gaussian noise,
a crop too small for most metrics, a constant gray image -- and checks five properties:

``version``      the descriptor names a non-empty implementation version, and a derived metric's stored version
                 includes those of the metrics it reads.
``direction``    the better image scores better in the declared direction: for a full-reference metric the HR
                 image itself against the noisy one (compared with the HR), for a no-reference metric the pristine
                 image against the noisy one. Both values must be numbers, not NaN.
``nan_inf``      the value for an SR identical to its HR is the descriptor's ``identical`` where it declares one
                 (PSNR inf, SSIM 1); ordinary images give finite numbers; the too-small and constant images give a
                 number, NaN only where the descriptor says when the metric is undefined (``undefined_when``),
                 infinity only as its declared ``identical`` value, or a one-line refusal
                 (:class:`~srbench.errors.BadInputError`) -- never another exception.
``determinism``  every value and refusal is the same, bit for bit, on a second run and in a fresh process with 1
                 and with 2 threads (``OMP_NUM_THREADS``, threadpoolctl's BLAS/OpenMP limits, torch's intra-op
                 threads), as in this one.
``store``        every value written through :class:`srbench.store.Store` reads back identical (infinity and NaN
                 included) under its version and not under another one, and through srbench's JSON number rule
                 (:mod:`srbench.jsonnum`).

A property a metric cannot meet by its nature is an exception the caller names with its reason
(``exceptions={"direction": "..."}``): it is reported as skipped with that reason, never silently passed.

>>> from srbench.conformance import check_metric
>>> report = check_metric("psnr_y", processes=False)   # processes=False: no fresh processes (quick)
>>> report.passed
True
>>> print(report)                                       # doctest: +ELLIPSIS
metric 'psnr_y': conforms
  version      ok    1
  direction    ok    higher is better: HR vs HR inf, noisy vs HR 2...
  nan_inf      ok    ...
  determinism  ok    5 cases bit for bit equal on a second run (no fresh process: processes=False)
  store        ok    ...

A metric registered from outside is checked the same way, as a descriptor or by its registered name; a failing
property raises :class:`ConformanceError` (an AssertionError) naming the metric and each property it fails.
Run ``python -m srbench.conformance NAME ...`` for metrics a fresh process knows (built-ins, entry points).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srbench import jsonnum
from srbench.errors import BadInputError
from srbench.metrics import Metric, PerImage, get_metric, temporarily
from srbench.protocols import Planes, Protocol, get_protocol
from srbench.store import DATASET_IMAGE, Store

CHECKS = ("version", "direction", "nan_inf", "determinism", "store")
NOISE_SIGMA = 25.0  # the degraded image: Gaussian noise of this standard deviation (seeded), rounded to uint8
NOISE_SEED = 0
SMALL_SIDE = 16  # the too-small image: this many pixels a side after the protocol's border
CONSTANT_LEVEL = 128
THREADS = (1, 2)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")
CHILD_TIMEOUT_S = 600

Context = Callable[[], AbstractContextManager[Any]]


class ConformanceError(AssertionError):
    """A metric fails one or more conformance properties (the message names the metric and each of them)."""


@dataclass(frozen=True)
class Finding:
    """One property of one metric: ``status`` is "ok", "FAIL" or "skip", ``detail`` says what was seen."""

    check: str
    status: str
    detail: str


@dataclass(frozen=True)
class ConformanceReport:
    """What :func:`check_metric` found, one :class:`Finding` per property, in the order of :data:`CHECKS`."""

    metric: str
    findings: tuple[Finding, ...]

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "FAIL"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def finding(self, check: str) -> Finding:
        return next(f for f in self.findings if f.check == check)

    def __str__(self) -> str:
        head = "conforms" if self.passed else "FAILS " + ", ".join(f.check for f in self.failures)
        return "\n".join([f"metric {self.metric!r}: {head}",
                          *(f"  {f.check:<12} {f.status:<5} {f.detail}" for f in self.findings)])

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise ConformanceError(str(self))


# -- the sample -------------------------------------------------------------------------------------------------
def default_image() -> np.ndarray:
    """A 200x200 crop of scikit-image's astronaut (shipped with scikit-image: no data, no network)."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[30:230, 150:350])


def noisy(image: np.ndarray, sigma: float = NOISE_SIGMA, seed: int = NOISE_SEED) -> np.ndarray:
    """``image`` plus seeded Gaussian noise, rounded and clipped to uint8."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(image + rng.normal(0.0, sigma, image.shape)), 0, 255).astype(np.uint8)


def sample(image: np.ndarray, border: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The cases as (SR, HR) pairs; a no-reference metric reads only the SR image."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise BadInputError(f"the conformance image must be an HxWx3 uint8 RGB image, got {img.dtype} {img.shape}")
    side = 2 * border + SMALL_SIDE
    small = img[:side, :side]
    flat = np.full_like(img, CONSTANT_LEVEL)
    return {"identical": (img, img), "noisy": (noisy(img), img), "too-small": (noisy(small), small),
            "constant": (flat, flat), "constant-vs-image": (flat, img)}


ORDINARY = ("identical", "noisy")  # cases on which every metric must give a finite number (or its identical)
IDENTICAL = ("identical", "constant")


# -- computing ----------------------------------------------------------------------------------------------------
def _protocol_of(metric: Metric, protocol: str | None) -> Protocol:
    return get_protocol(protocol or (metric.protocols[0] if metric.protocols else "sr"))


def _border(proto: Protocol, scale: int) -> int:
    return scale if proto.border is None else proto.border


def _dataset_value(metric: Metric, proto: Protocol, pair: tuple[np.ndarray, np.ndarray], scale: int,
                   weights_dir: str | None) -> dict[str, float]:
    accumulator = metric.accumulator
    assert accumulator is not None
    sr, hr = pair
    planes = Planes(sr, hr, _border(proto, scale), proto.rounded_luma)
    state = accumulator.start()
    accumulator.add(state, accumulator.prepared(metric_image(planes, metric, weights_dir)))
    found = accumulator.finish(state)
    values = dict(found) if isinstance(found, Mapping) else {metric.name: found}
    return {**values, metric.n_images_output: 1.0}


def metric_image(planes: Planes, metric: Metric, weights_dir: str | None) -> PerImage:
    """What the metric's hooks see of one (SR, HR) pair, as the protocol prepares it."""
    return PerImage(planes.get(metric.plane, "sr"), planes.get(metric.plane, "hr") if metric.needs_reference else None,
                    {}, weights_dir)


def outcome(metric: Metric, proto: Protocol, pair: tuple[np.ndarray, np.ndarray], scale: int,
            weights_dir: str | None) -> dict[str, Any]:
    """``{"values": {...}}`` (the metric's outputs), ``{"refused": message}`` or ``{"error": "Type: message"}``."""
    sr, hr = pair
    try:
        if metric.is_dataset_level:
            values = _dataset_value(metric, proto, pair, scale, weights_dir)
        else:
            names = proto.resolve_metrics([metric.name])
            values = proto.per_image(sr, hr if metric.needs_reference else sr, scale, names,
                                     {"weights_dir": weights_dir})
    except BadInputError as exc:
        return {"refused": str(exc)}
    except Exception as exc:  # any other failure is what the nan_inf property reports
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"values": {k: v for k, v in values.items() if k in metric.outputs}}


def outcomes(metric: Metric, proto: Protocol, cases: Mapping[str, tuple[np.ndarray, np.ndarray]], scale: int,
             weights_dir: str | None) -> dict[str, dict[str, Any]]:
    return {case: outcome(metric, proto, pair, scale, weights_dir) for case, pair in cases.items()}


# -- the properties -----------------------------------------------------------------------------------------------
def _is_number(value: object) -> bool:
    return isinstance(value, float | int | np.floating | np.integer) and not isinstance(value, bool | np.bool_)


def _shown(found: Mapping[str, Any], name: str) -> str:
    if "values" in found:
        return repr(float(found["values"].get(name, math.nan)))
    return f"refused ({found['refused']})" if "refused" in found else f"error ({found['error']})"


def check_version(metric: Metric, proto: Protocol) -> Finding:
    version = metric.version
    if not isinstance(version, str) or not version.strip():
        return Finding("version", "FAIL", f"no implementation version (version={version!r}): stored values could "
                                          "not be told from another implementation's")
    stored = proto.versions([metric.name])[metric.name]
    missing = [r for r in metric.requires if get_metric(r).version not in stored]
    if missing:
        return Finding("version", "FAIL", f"stored version {stored!r} lacks the versions of {', '.join(missing)}")
    return Finding("version", "ok", stored)


def check_direction(metric: Metric, found: Mapping[str, Mapping[str, Any]]) -> Finding:
    better, worse = found["identical"], found["noisy"]
    what = "HR vs HR" if metric.needs_reference else "pristine"
    a, b = (f.get("values", {}).get(metric.name) for f in (better, worse))
    seen = f"{what} {_shown(better, metric.name)}, noisy{' vs HR' if metric.needs_reference else ''} " \
           f"{_shown(worse, metric.name)}"
    if not (_is_number(a) and _is_number(b)) or math.isnan(float(a)) or math.isnan(float(b)):
        return Finding("direction", "FAIL", f"no value to compare: {seen}")
    ordered = float(a) > float(b) if metric.higher_is_better else float(a) < float(b)
    status = "ok" if ordered else "FAIL"
    verdict = "" if ordered else " (the worse image scores as well or better)"
    return Finding("direction", status, f"{metric.direction} is better: {seen}{verdict}")


def _value_problem(metric: Metric, case: str, found: Mapping[str, Any]) -> str | None:
    """What is wrong with one case's outcome, or None."""
    if "error" in found:
        return f"{case}: raised {found['error']} (a metric gives a number, NaN, or a BadInputError)"
    if "refused" in found:
        return f"{case}: refused ({found['refused']})" if case in ORDINARY else None
    values = found["values"]
    bad = [k for k, v in values.items() if not _is_number(v)]
    if bad or metric.name not in values:
        return f"{case}: outputs {', '.join(bad) or metric.name} are not numbers ({values!r})"
    value = float(values[metric.name])
    identical = metric.identical if metric.needs_reference and case in IDENTICAL else None
    if math.isnan(value):
        if case in ORDINARY:
            return f"{case}: NaN for an ordinary image"
        return None if metric.undefined_when else f"{case}: NaN, but the descriptor does not say when it is " \
                                                   "undefined (undefined_when)"
    if identical is not None and value != identical:
        return f"{case}: {value!r}, but the descriptor declares {identical!r} for identical images"
    if math.isinf(value) and value != identical:
        return f"{case}: {value!r} (infinity is only a declared identical value)"
    return None


def check_nan_inf(metric: Metric, found: Mapping[str, Mapping[str, Any]]) -> Finding:
    problems = [p for case, f in found.items() if (p := _value_problem(metric, case, f)) is not None]
    if problems:
        return Finding("nan_inf", "FAIL", "; ".join(problems))
    return Finding("nan_inf", "ok", ", ".join(f"{case} {_shown(f, metric.name)}" for case, f in found.items()))


def same_value(a: object, b: object) -> bool:
    """Bit for bit (NaN equal to NaN, -0.0 not equal to 0.0)."""
    if not (_is_number(a) and _is_number(b)):
        return False
    x, y = float(a), float(b)  # type: ignore[arg-type]
    return (math.isnan(x) and math.isnan(y)) or x.hex() == y.hex()


def same_outcome(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if "values" not in a or "values" not in b:
        return dict(a) == dict(b)
    return a["values"].keys() == b["values"].keys() and all(same_value(v, b["values"][k])
                                                             for k, v in a["values"].items())


def _differences(here: Mapping[str, Mapping[str, Any]], there: Mapping[str, Mapping[str, Any]], name: str,
                 where: str) -> list[str]:
    return [f"{case}: {_shown(f, name)} here, {_shown(there.get(case, {'error': 'missing'}), name)} {where}"
            for case, f in here.items() if not same_outcome(f, there.get(case, {}))]


def check_store(metric: Metric, proto: Protocol, found: Mapping[str, Mapping[str, Any]], scale: int) -> Finding:
    rows = {case: dict(f["values"]) for case, f in found.items() if "values" in f}
    rows.update({f"special{value}": {metric.name: value} for value in (math.inf, -math.inf, math.nan)})
    if metric.is_dataset_level:  # one row per image set, under the reserved key
        rows = {DATASET_IMAGE: rows.pop("identical", {metric.name: 0.0}), **rows}
    versions = proto.output_versions([metric.name])
    try:
        with tempfile.TemporaryDirectory(prefix="srbench-conformance-") as folder, \
                Store(Path(folder) / "conformance.sqlite") as store:
            for image, values in rows.items():
                store.put("conformance-model", "conformance-data", proto.name, scale, image, values, versions, None)
            back = store.cached("conformance-model", "conformance-data", proto.name, scale, versions)
            other = store.cached("conformance-model", "conformance-data", proto.name, scale,
                                 {k: f"{v}~other" for k, v in versions.items()})
    except Exception as exc:  # a value the store cannot hold (a numpy float32, a string...)
        return Finding("store", "FAIL", f"writing or reading the values failed: {type(exc).__name__}: {exc}")
    problems = [f"{image}: {k} wrote {v!r}, read {back.get(image, {}).get(k, 'nothing')!r}"
                for image, values in rows.items() for k, v in values.items()
                if not same_value(v, back.get(image, {}).get(k))]
    if other:
        problems.append("values were read back under another version of the metric")
    problems += [f"{image}: {k} {v!r} reads back from JSON as {jsonnum.read_number(json.loads(jsonnum.dumps(v)))!r}"
                 for image, values in rows.items() for k, v in values.items()
                 if not same_value(v, jsonnum.read_number(json.loads(jsonnum.dumps(v))))]
    if problems:
        return Finding("store", "FAIL", "; ".join(problems))
    count = sum(len(v) for v in rows.values())
    return Finding("store", "ok", f"{count} values (inf, -inf and NaN included) read back identical, keyed by "
                                  f"version {versions[metric.name]!r}; JSON rule likewise")


# -- fresh processes ------------------------------------------------------------------------------------------------
def _portable(metric: Metric, proto: Protocol) -> list[Metric | str]:
    """The metric and what it requires, each as its descriptor when it pickles, else by name (a fresh process's
    registry has the built-ins and entry points)."""
    out: list[Metric | str] = []
    for name in proto.resolve_metrics([metric.name]) if not metric.is_dataset_level else [metric.name]:
        spec = metric if name == metric.name else get_metric(name)
        try:
            pickle.dumps(spec)
            out.append(spec)
        except Exception:
            out.append(name)
    return out


def _child_env(threads: int) -> dict[str, str]:
    path = [os.path.abspath(p or os.curdir) for p in sys.path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}
    env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env


def in_a_fresh_process(metric: Metric, proto: Protocol, cases: Mapping[str, tuple[np.ndarray, np.ndarray]],
                       scale: int, weights_dir: str | None, context: Context | None,
                       threads: Sequence[int] = THREADS) -> dict[str, Any]:
    """The outcomes of every case computed in a fresh process at each thread count in turn (it starts with
    ``OMP_NUM_THREADS`` and the like at the first; then threadpoolctl's limits and torch's intra-op threads are
    set to each): ``{"outcomes": {threads: ...}}``, or ``{"error": why the process gave none}``. One process
    for all thread counts: a fresh torch or pyiqa import costs seconds."""
    payload = {"metrics": _portable(metric, proto), "name": metric.name, "version": metric.version,
               "protocol": proto.name, "cases": dict(cases), "scale": scale, "weights_dir": weights_dir,
               "context": context, "threads": list(threads)}
    try:
        data = pickle.dumps(payload)
    except Exception as exc:
        return {"error": f"the context cannot be sent to a fresh process ({type(exc).__name__}: {exc})"}
    env = _child_env(threads[0])
    try:
        proc = subprocess.run([sys.executable, "-m", "srbench.conformance", "--child"], input=data,
                              capture_output=True, env=env, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer in {CHILD_TIMEOUT_S} s"}
    if proc.returncode != 0:
        last = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return {"error": f"exit status {proc.returncode}: {last[0]}"}
    return pickle.loads(proc.stdout)


def check_determinism(metric: Metric, proto: Protocol, cases: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      found: Mapping[str, Mapping[str, Any]], scale: int, weights_dir: str | None,
                      context: Context | None, threads: Sequence[int]) -> Finding:
    again = outcomes_within(metric, proto, cases, scale, weights_dir, context)
    problems = _differences(found, again, metric.name, "on a second run in this process")
    if not threads:
        return Finding("determinism", "FAIL", "; ".join(problems)) if problems else \
            Finding("determinism", "ok", f"{len(found)} cases bit for bit equal on a second run (no fresh process: "
                                         "processes=False)")
    child = in_a_fresh_process(metric, proto, cases, scale, weights_dir, context, threads)
    if "error" in child:
        problems.append(f"the fresh process gave no values: {child['error']}")
    for n, there in child.get("outcomes", {}).items():
        problems += _differences(found, there, metric.name, f"in a fresh process with {n} thread(s)")
    if problems:
        return Finding("determinism", "FAIL", "; ".join(problems))
    return Finding("determinism", "ok", f"{len(found)} cases bit for bit equal here, again, and in a fresh process "
                                        f"with {' and '.join(map(str, threads))} thread(s)")


@contextlib.contextmanager
def _entered(context: Context | None) -> Iterator[None]:
    if context is None:
        yield
    else:
        with context():
            yield


def outcomes_within(metric: Metric, proto: Protocol, cases: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    scale: int, weights_dir: str | None, context: Context | None) -> dict[str, dict[str, Any]]:
    with _entered(context):
        return outcomes(metric, proto, cases, scale, weights_dir)


def child_main() -> None:
    """A fresh process of the determinism check: the payload (pickled) on stdin, the outcomes on stdout."""
    payload = pickle.loads(sys.stdin.buffer.read())
    answer = os.fdopen(os.dup(1), "wb")  # the answer's channel; whatever the metric prints goes to stderr
    sys.stdout.flush()
    os.dup2(2, 1)
    with contextlib.ExitStack() as stack:
        for spec in payload["metrics"]:
            if isinstance(spec, Metric):
                stack.enter_context(temporarily(spec))
        metric = get_metric(payload["name"])
        if metric.version != payload["version"]:
            raise SystemExit(f"a fresh process has metric {metric.name!r} version {metric.version!r}, not "
                             f"{payload['version']!r}: the descriptor did not pickle; register it through an entry "
                             "point or define its functions at module level")
        stack.enter_context(_entered(payload["context"]))
        found = {n: _at_threads(n, metric, payload) for n in payload["threads"]}
    with answer:
        answer.write(pickle.dumps({"outcomes": found}))


def _at_threads(n: int, metric: Metric, payload: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(n):
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)
        return outcomes(metric, get_protocol(payload["protocol"]), payload["cases"], payload["scale"],
                        payload["weights_dir"])


# -- the tester -----------------------------------------------------------------------------------------------------
def check_metric(metric: str | Metric, *, image: np.ndarray | None = None, protocol: str | None = None,
                 scale: int = 4, weights_dir: str | os.PathLike | None = None, context: Context | None = None,
                 exceptions: Mapping[str, str] | None = None, processes: bool = True,
                 threads: Sequence[int] = THREADS, raise_on_failure: bool = True) -> ConformanceReport:
    """Check ``metric`` (a registered name or a :class:`~srbench.metrics.Metric` descriptor, registered or not)
    for the properties in :data:`CHECKS`; see the module's description.

    ``image``: the pristine HxWx3 uint8 image the sample is made from (default :func:`default_image`; at least
    200x200 for NIQE's two blocks). ``protocol``: the protocol it is computed under (default its first).
    ``weights_dir``: where its weights files are (a stand-in's folder in tests). ``context``: a zero-argument
    callable giving a context manager entered around every computation, here and in the fresh processes (so
    picklable: a module-level function, or a ``functools.partial`` of one), e.g. one injecting a random network
    where the real weights are absent. ``exceptions``: property -> why this metric cannot meet it (reported as
    skipped with the reason). ``processes=False`` leaves out the fresh process of ``determinism`` (its second run
    in this process stays).

    Returns the :class:`ConformanceReport`; with ``raise_on_failure`` (the default) a failing property raises
    :class:`ConformanceError` with the report as its message instead.
    """
    spec = metric if isinstance(metric, Metric) else get_metric(metric)
    unknown = sorted(set(exceptions or {}) - set(CHECKS))
    if unknown:
        raise BadInputError(f"check_metric: no property {', '.join(unknown)}; properties: {', '.join(CHECKS)}")
    with contextlib.ExitStack() as stack:
        if not isinstance(metric, Metric) or get_metric_or_none(spec.name) is not spec:
            stack.enter_context(temporarily(spec))
        report = _report(spec, image, protocol, scale, None if weights_dir is None else os.fspath(weights_dir),
                         context, dict(exceptions or {}), threads if processes else ())
    if raise_on_failure:
        report.raise_if_failed()
    return report


def get_metric_or_none(name: str) -> Metric | None:
    try:
        return get_metric(name)
    except BadInputError:
        return None


def _report(metric: Metric, image: np.ndarray | None, protocol: str | None, scale: int, weights_dir: str | None,
            context: Context | None, exceptions: dict[str, str], threads: Sequence[int]) -> ConformanceReport:
    proto = _protocol_of(metric, protocol)
    proto.metric(metric.name)  # a metric outside the protocol is refused here, with the protocol's metrics
    cases = sample(default_image() if image is None else image, _border(proto, scale))
    found = outcomes_within(metric, proto, cases, scale, weights_dir, context)
    run: dict[str, Callable[[], Finding]] = {
        "version": lambda: check_version(metric, proto),
        "direction": lambda: check_direction(metric, found),
        "nan_inf": lambda: check_nan_inf(metric, found),
        "determinism": lambda: check_determinism(metric, proto, cases, found, scale, weights_dir, context, threads),
        "store": lambda: check_store(metric, proto, found, scale),
    }
    findings = [Finding(check, "skip", f"exception: {exceptions[check]}") if check in exceptions else run[check]()
                for check in CHECKS]
    return ConformanceReport(metric.name, tuple(findings))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srbench.conformance",
                                     description="check registered metrics for srbench's conformance properties")
    parser.add_argument("names", nargs="*", help="registered metric names (default: every registered metric)")
    parser.add_argument("--weights-dir", default=None, help="where the metrics' weights files are")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main()
        return 0
    from srbench.metrics import all_metrics

    failed = 0
    for name in args.names or list(all_metrics()):
        report = check_metric(name, weights_dir=args.weights_dir, raise_on_failure=False)
        print(report)
        failed += not report.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
