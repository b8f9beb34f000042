"""The results store: SQLite, one row per (model, dataset, protocol, scale, image, metric, metric version).

Values are cached by fingerprints: the model's (checkpoint sha256, or ``bicubic``, or a hash of an SR
folder), the dataset's (sha256 of its files), the protocol, the scale and the metric's implementation version.
A changed checkpoint or metric therefore recomputes only what it affects, and nothing is ever silently
recomputed differently. Every evaluation is also recorded as a run with its provenance.

Several processes may write at once: WAL journaling, a busy timeout, and short ``INSERT OR IGNORE``
transactions keep the file consistent and lose no row.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from srbench import paths

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    suite TEXT, model TEXT NOT NULL, model_key TEXT NOT NULL, dataset TEXT NOT NULL, dataset_key TEXT NOT NULL,
    protocol TEXT NOT NULL, scale INTEGER NOT NULL, config TEXT, checkpoint_sha256 TEXT,
    srbench_version TEXT, torch_version TEXT, git_commit TEXT, device TEXT, seed INTEGER,
    started TEXT, finished TEXT
);
CREATE TABLE IF NOT EXISTS metric_values (
    model_key TEXT NOT NULL, dataset_key TEXT NOT NULL, protocol TEXT NOT NULL, scale INTEGER NOT NULL,
    image TEXT NOT NULL, metric TEXT NOT NULL, metric_version TEXT NOT NULL, value REAL,
    run_id INTEGER REFERENCES runs(id),
    PRIMARY KEY (model_key, dataset_key, protocol, scale, image, metric, metric_version)
);
CREATE TABLE IF NOT EXISTS labels (
    model_key TEXT NOT NULL, suite TEXT NOT NULL, model TEXT NOT NULL, dataset TEXT NOT NULL,
    dataset_key TEXT NOT NULL,
    PRIMARY KEY (suite, model, dataset)
);
"""


def default_path() -> Path:
    return Path(os.environ.get("SRBENCH_STORE", paths.PROJECT_ROOT / "reports" / "srbench.sqlite"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 60000")
        self._retry(lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
        self._retry(lambda: self._conn.executescript(SCHEMA))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _retry(fn, attempts: int = 50):
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or i == attempts - 1:
                    raise
                time.sleep(0.05 * (i + 1))

    @contextmanager
    def _transaction(self):
        self._retry(lambda: self._conn.execute("BEGIN IMMEDIATE"))
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._retry(lambda: self._conn.execute("COMMIT"))

    # -- runs --------------------------------------------------------------------------------------------
    def start_run(self, **fields) -> int:
        fields = {**fields, "started": _now()}
        if isinstance(fields.get("config"), dict):
            fields["config"] = json.dumps(fields["config"], sort_keys=True, default=str)
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self._transaction() as conn:
            return conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", list(fields.values())).lastrowid

    def finish_run(self, run_id: int) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET finished = ? WHERE id = ?", (_now(), run_id))

    # -- values ------------------------------------------------------------------------------------------
    def cached(self, model_key: str, dataset_key: str, protocol: str, scale: int,
               versions: dict[str, str]) -> dict[str, dict[str, float | None]]:
        """image -> {metric: value} for the given metric versions."""
        out: dict[str, dict[str, float | None]] = {}
        rows = self._retry(lambda: self._conn.execute(
            "SELECT image, metric, metric_version, value FROM metric_values "
            "WHERE model_key = ? AND dataset_key = ? AND protocol = ? AND scale = ?",
            (model_key, dataset_key, protocol, scale)).fetchall())
        for image, metric, version, value in rows:
            if versions.get(metric) == version:
                # SQLite stores NaN (an undefined metric, e.g. NIQE of a flat image) as NULL.
                out.setdefault(image, {})[metric] = math.nan if value is None else value
        return out

    def put(self, model_key: str, dataset_key: str, protocol: str, scale: int, image: str,
            values: dict[str, float], versions: dict[str, str], run_id: int | None) -> None:
        rows = [(model_key, dataset_key, protocol, scale, image, m, versions[m], v, run_id)
                for m, v in values.items()]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO metric_values (model_key, dataset_key, protocol, scale, image, metric, "
                "metric_version, value, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def label(self, suite: str, model: str, model_key: str, dataset: str, dataset_key: str) -> None:
        """Name ``model_key`` as ``model`` of ``suite`` (the newest fingerprint wins)."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?)",
                         (model_key, suite, model, dataset, dataset_key))

    # -- reading -----------------------------------------------------------------------------------------
    def runs(self) -> list[dict]:
        cur = self._retry(lambda: self._conn.execute("SELECT * FROM runs ORDER BY id"))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def values(self, suite: str | None = None) -> list[dict]:
        """Every stored value, with the suite's model names where labelled."""
        query = (
            "SELECT l.suite, l.model, l.dataset, v.protocol, v.scale, v.image, v.metric, v.metric_version, "
            "v.value, v.model_key, v.dataset_key FROM metric_values v JOIN labels l "
            "ON l.model_key = v.model_key AND l.dataset_key = v.dataset_key"
        )
        args: Sequence = ()
        if suite is not None:
            query += " WHERE l.suite = ?"
            args = (suite,)
        cur = self._retry(lambda: self._conn.execute(query, args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def all_values(self) -> list[dict]:
        cur = self._retry(lambda: self._conn.execute("SELECT * FROM metric_values"))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
