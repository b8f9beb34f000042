"""A suite's own settings besides its entries: where it comes from (``source``, ``training_data``), what its report
leads with (``[report]``) and what it changes under a preset (``[presets.<preset>]``).

``[report] metrics = [...]`` names the metrics of the suite's first table, in the study's order (the loss study:
NIQE, FID, LPIPS, PSNR, SSIM, BRISQUE, spectrum discrepancy); each is computed under the first suite protocol
that defines it, beside the protocols' own metrics. ``[report] spectrum_table = true`` adds the per-dataset
spectrum-discrepancy table (models x datasets). ``[presets.smoke]`` (or ``short``, ``paper``) is a training
table applied on top of every entry under that preset, after the entry's own (the WGAN-GP recipe's 384 px HR
patches apply to the presets that train for real; smoke runs keep the smoke preset's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from srbench.errors import BadInputError

REPORT_KEYS = {"metrics", "spectrum_table"}
SPECTRUM_DISCREPANCY = "spectrum_discrepancy"
# The loss study's metric (the azimuthally integrated, normalised 1-D power spectrum's discrepancy): a suite may
# name it before this srbench registers it; its columns then say it was not computed.
PENDING_METRICS = (SPECTRUM_DISCREPANCY,)


@dataclass(frozen=True)
class SuiteSettings:
    metrics: tuple[str, ...] = ()  # the first table's metrics, in order; empty: the suite's usual tables only
    spectrum_table: bool = False
    presets: dict[str, dict] = field(default_factory=dict)  # preset -> training overrides of every entry


def known_metrics() -> tuple[str, ...]:
    """Every metric a suite's report may name: the registered ones, then the pending ones."""
    from srbench.metrics import all_metrics

    return (*all_metrics(), *(m for m in PENDING_METRICS if m not in all_metrics()))


def parse_settings(data: dict, origin: str, known_presets: tuple[str, ...]) -> SuiteSettings:
    """The ``[report]`` and ``[presets]`` tables of a suite file (``known_presets``: the training presets, which
    this evaluation-side module takes from its caller rather than importing training); one-line errors naming
    ``origin`` and the key."""
    from srbench.text import shown

    table = data.get("report", {})
    if not isinstance(table, dict):
        raise BadInputError(f"{origin}: report = {shown(table)}: expected a table (metrics, spectrum_table)")
    unknown = sorted(shown(k, 40) for k in set(table) - REPORT_KEYS)
    if unknown:
        raise BadInputError(f"{origin}: report: unknown key(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(REPORT_KEYS))}")
    metrics = table.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise BadInputError(f"{origin}: report.metrics = {shown(metrics)}: expected a list of metric names")
    known = known_metrics()
    bad = [m for m in metrics if m not in known]
    if bad:
        raise BadInputError(f"{origin}: report.metrics: unknown metric(s) {', '.join(map(repr, bad))}; known: "
                            f"{', '.join(known)}")
    repeated = sorted({m for m in metrics if metrics.count(m) > 1})
    if repeated:
        raise BadInputError(f"{origin}: report.metrics repeats {', '.join(map(repr, repeated))}")
    spectrum_table = table.get("spectrum_table", False)
    if not isinstance(spectrum_table, bool):
        raise BadInputError(f"{origin}: report.spectrum_table = {shown(spectrum_table)}; allowed: true or false")
    return SuiteSettings(tuple(metrics), spectrum_table, _parse_presets(data, origin, known_presets))


def _parse_presets(data: dict, origin: str, known_presets: tuple[str, ...]) -> dict[str, dict]:
    from srbench.text import shown

    presets = data.get("presets", {})
    if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
        raise BadInputError(f"{origin}: presets = {shown(presets)}: expected tables [presets.<preset>] of "
                            "training settings")
    unknown = [p for p in presets if p not in known_presets]
    if unknown:
        raise BadInputError(f"{origin}: presets: unknown preset(s) {', '.join(map(repr, unknown))}; known: "
                            f"{', '.join(known_presets)}")
    return dict(presets)


def protocol_metrics(report_metrics: tuple[str, ...], protocols: tuple[str, ...]) -> dict[str, list[str] | None]:
    """protocol -> the metrics to compute under it: its own default ones plus the report's metrics it is the first
    of ``protocols`` to define (one protocol each: a metric of both would otherwise be two columns); None (the
    protocol's defaults) for a suite without report metrics. Pending metrics are computed nowhere."""
    from srbench.protocols import get_protocol

    if not report_metrics:
        return {p: None for p in protocols}
    out: dict[str, list[str] | None] = {}
    taken: set[str] = set()
    for name in protocols:
        proto = get_protocol(name)
        own = {m.name for m in proto.metrics}
        extra = [m for m in report_metrics if m in own and m not in taken]
        taken.update(extra)
        out[name] = list(dict.fromkeys([*proto.default_metrics, *extra]))
    return out


def missing_reasons(report_metrics: tuple[str, ...], results: list[Any]) -> dict[str, str]:
    """metric -> why the report has no value of it: unregistered, or the evaluation's reason (a missing weights
    file); metrics with values on some model are left out."""
    from srbench.metrics import all_metrics

    reasons: dict[str, str] = {}
    present = {m for r in results for m, v in r.summary.items() if v is not None and not math.isnan(v)}
    for r in results:
        for metric, why in r.unavailable.items():
            reasons.setdefault(metric, why)
    out = {}
    for m in report_metrics:
        if m in present:
            continue
        if m not in all_metrics():
            out[m] = f"not computed: this srbench has no metric {m!r}"
        else:
            out[m] = reasons.get(m, "not computed (see the failures)")
    return out
