"""Published results, shipped with srbench, to show beside its own numbers.

The numbers live in ``srbench/data/published/values.csv`` (one row per method x dataset x metric x protocol, with
the source and where in it), the collections and the published-only metrics in ``collections.toml``. A value is
*comparable* when its metric is an srbench metric and its protocol is one srbench computes that metric under:
then it may sit in srbench's column (marked as published). Any other value (another PSNR or SSIM
implementation, RGB channels) has a metric of its own and is only ever shown in its own column, beside the
srbench metric it resembles. Loading checks every row: a known collection, a source, a number, a known metric.
"""

from __future__ import annotations

import csv
import functools
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from srbench.errors import BadInputError

FIELDS = ("collection", "method", "dataset", "scale", "protocol", "metric", "value", "source", "note")


@dataclass(frozen=True)
class Collection:
    name: str
    citation: str
    url: str
    description: str


@dataclass(frozen=True)
class PublishedMetric:
    """A metric only published numbers have: shown in its own column, never in an srbench metric's."""

    name: str
    label: str
    like: str  # the srbench metric it resembles (its column goes next to that one); "" for none
    digits: int
    higher_is_better: bool
    description: str

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


@dataclass(frozen=True)
class PublishedValue:
    collection: str
    method: str
    dataset: str
    scale: int
    protocol: str
    metric: str
    value: float
    source: str  # where in the collection's source: a table, a figure, a file
    note: str = ""
    decimals: int | None = None  # as many as the source printed (None: not known)

    @property
    def comparable(self) -> bool:
        """Computed as srbench computes this metric under this protocol (else it has a metric of its own)."""
        return self.metric not in published_metrics()


def _read_text(name: str) -> str:
    return resources.files("srbench.data").joinpath("published", name).read_text(encoding="utf-8")


@functools.cache
def collections() -> dict[str, Collection]:
    data = tomllib.loads(_read_text("collections.toml"))
    return {name: Collection(name, c["citation"], c["url"], c["description"])
            for name, c in data["collections"].items()}


@functools.cache
def published_metrics() -> dict[str, PublishedMetric]:
    from srbench.metrics import get_metric

    data = tomllib.loads(_read_text("collections.toml"))
    for name, m in data.get("metrics", {}).items():
        # "" for a published figure with no srbench counterpart (training cost): a column only when asked for.
        if m["like"]:
            try:
                get_metric(m["like"])
            except BadInputError:
                raise BadInputError(f"srbench/data/published/collections.toml: metric {name!r} is like "
                                    f"{m['like']!r}, which is not an srbench metric") from None
    # The label carries ‡ wherever it is shown: a column of numbers computed otherwise than srbench's.
    return {name: PublishedMetric(name, f"{m['label']} ‡", m["like"], int(m["digits"]), bool(m["higher_is_better"]),
                                  m["description"]) for name, m in data.get("metrics", {}).items()}


def _check(row: dict, line: int) -> PublishedValue:
    from srbench.metrics import get_metric

    where = f"srbench/data/published/values.csv line {line}"
    if row["collection"] not in collections():
        raise BadInputError(f"{where}: unknown collection {row['collection']!r}")
    if not row["source"].strip() or not row["method"].strip() or not row["dataset"].strip():
        raise BadInputError(f"{where}: every number needs its method, dataset and source")
    try:
        value = float(row["value"])
        scale = int(row["scale"])
    except ValueError:
        raise BadInputError(f"{where}: value {row['value']!r} or scale {row['scale']!r} is not a number") from None
    if not math.isfinite(value):
        raise BadInputError(f"{where}: value {row['value']!r} is not a finite number")
    if row["metric"] not in published_metrics():
        if row["metric"].startswith("pyiqa:"):
            raise BadInputError(f"{where}: {row['metric']}: published numbers use srbench's metrics or their own")
        try:
            metric = get_metric(row["metric"])
        except BadInputError:
            raise BadInputError(f"{where}: unknown metric {row['metric']!r}") from None
        if not metric.in_protocol(row["protocol"]):
            raise BadInputError(f"{where}: srbench's {row['metric']} is not computed under protocol "
                                f"{row['protocol']!r}; a number from another protocol needs a metric of its own")
    text = row["value"].strip()
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text.lower() else 0
    return PublishedValue(row["collection"], row["method"], row["dataset"], scale, row["protocol"], row["metric"],
                          value, row["source"], row["note"], decimals)


@functools.cache
def values() -> tuple[PublishedValue, ...]:
    """Every published value, checked."""
    reader = csv.DictReader(_read_text("values.csv").splitlines())
    if tuple(reader.fieldnames or ()) != FIELDS:
        raise BadInputError(f"srbench/data/published/values.csv: columns {reader.fieldnames}, expected {FIELDS}")
    return tuple(_check(row, i) for i, row in enumerate(reader, start=2))


def select(names: str | Sequence[str]) -> list[PublishedValue]:
    """The values of the named collections ("a,b" or a list); an unknown name is one error listing the known."""
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not wanted and (isinstance(names, str) or names):  # a name that is only blanks, not an empty list
        raise BadInputError(f"no published collection named (got {names!r}); known: {', '.join(collections())} "
                            "(srbench published list)")
    unknown = [n for n in wanted if n not in collections()]
    if unknown:
        raise BadInputError(f"unknown published collection(s) {', '.join(unknown)}; known: "
                            f"{', '.join(collections())} (srbench published list)")
    return [v for v in values() if v.collection in wanted]


def shown_value(value: PublishedValue) -> str:
    """The number with its metric's digits, or the source's where it printed more (PI 7.3699 is not 7.370; one
    column may hold 0.00034 and 1000000: no common format)."""
    from srbench.metrics import get_metric

    own = published_metrics().get(value.metric)
    digits = own.digits if own is not None else get_metric(value.metric).digits
    return f"{value.value:.{max(digits, value.decimals or 0)}f}"


def row_name(value: PublishedValue) -> str:
    """The table row of a published method: its name and collection, with a dagger."""
    return f"{value.method} [{value.collection}]†"
