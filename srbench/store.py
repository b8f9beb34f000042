"""The results store: SQLite, one row per (model, dataset, protocol, scale, image, metric, metric version).
Dataset-level metrics (FID) have one row per output for the whole set, under the image key ``DATASET_IMAGE``.

Values are cached by fingerprints: the model's (checkpoint sha256, or ``bicubic``, or a hash of an SR
folder), the dataset's (sha256 of its files), the protocol, the scale and the metric's implementation version.
A changed checkpoint or metric therefore recomputes only what it affects, and nothing is ever silently
recomputed differently. Every evaluation is also recorded as a run with its provenance.

Several processes may write at once: WAL journaling, a busy timeout, and short ``INSERT OR IGNORE``
transactions keep the file consistent and lose no row.

Commands that write results create a missing store; commands that only read it (results, table, pirm-plane,
export) open an existing one (``Store.open_existing``) and never create or modify a file. A path that is not a
results store (a folder, not SQLite, truncated, corrupt, another program's database) is one StoreError.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from srbench import paths
from srbench.errors import StoreError
from srbench.jsonnum import dumps as json_dumps

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
    dataset_key TEXT NOT NULL, scale INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (suite, model, dataset, scale)
);
"""

# A label names a model of a suite on a dataset at one scale, so one method's x2 and x4 results (two SR folders,
# two fingerprints) are both shown. Scale 0 is "every scale": the labels of stores written before labels had a
# scale, and of callers that give none. Such a store's labels table is rebuilt when a writer opens it; a reader
# (Store.open_existing) leaves the file as it is and reads the old table.
LABELS_WITH_SCALE = """
CREATE TABLE labels_scaled (
    model_key TEXT NOT NULL, suite TEXT NOT NULL, model TEXT NOT NULL, dataset TEXT NOT NULL,
    dataset_key TEXT NOT NULL, scale INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (suite, model, dataset, scale)
);
INSERT INTO labels_scaled (model_key, suite, model, dataset, dataset_key, scale)
    SELECT model_key, suite, model, dataset, dataset_key, 0 FROM labels;
DROP TABLE labels;
ALTER TABLE labels_scaled RENAME TO labels;
"""


# The image key of dataset-level values (``Metric.level == "dataset"``, e.g. FID): one row per output of the
# metric for the whole image set, in ``metric_values`` beside the per-image rows (same key otherwise, so caching,
# versions and concurrent writers work alike and stores written before it read unchanged). Image keys are file
# stems, which can never contain "/", so no real image can take it. Readers of per-image values skip it.
DATASET_IMAGE = "/dataset"


def default_path() -> Path:
    return paths.store_path()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# The columns of each table in every store srbench ever wrote.
_COLUMNS = {
    "runs": {"id", "suite", "model", "model_key", "dataset", "dataset_key", "protocol", "scale", "config"},
    "metric_values": {"model_key", "dataset_key", "protocol", "scale", "image", "metric", "metric_version", "value",
                      "run_id"},
    "labels": {"model_key", "suite", "model", "dataset", "dataset_key"},
}
SQLITE_MAGIC = b"SQLite format 3\x00"
TABLES = ("runs", "metric_values", "labels")
CREATE_HINT = "srbench ablate or srbench evaluate --store create one"


def _what_it_is(head: bytes) -> str:
    """A few words on what a file that is not an SQLite database holds, for the error message."""
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return "binary data"
    return "binary data" if b"\0" in head else "a text file"


def _translate_errors(method):
    """Turn SQLite errors inside a store operation into one StoreError naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    return wrapper


# File systems on which SQLite's POSIX locks are unreliable (sqlite.org/faq.html#q5, "SQLite Over a Network").
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs",
                                 "lustre", "gpfs", "beegfs", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse",
                                 "fuse.glusterfs", "fuse.cephfs"})


def _mounts(table: str = "/proc/mounts") -> list[tuple[str, str]]:
    """(mount point, file-system type) of every mount, longest mount point first; empty where unknown."""
    try:
        with open(table, encoding="utf-8") as fh:
            rows = [line.split()[1:3] for line in fh if len(line.split()) >= 3]
    except OSError:
        return []  # not Linux: no detection, nothing refused
    decoded = [(point.replace("\\040", " "), fs) for point, fs in rows]
    return sorted(decoded, key=lambda row: len(row[0]), reverse=True)


def network_filesystem(path: str | os.PathLike, table: str = "/proc/mounts") -> str | None:
    """The network file-system type ``path`` lives on (``nfs4``, ``cifs``, ...), or None."""
    resolved = str(Path(path).expanduser().resolve())  # links resolved; a store not created yet keeps its path
    for point, fs in _mounts(table):
        if resolved == point or resolved.startswith(point.rstrip("/") + "/"):
            return fs if fs in NETWORK_FILESYSTEMS else None
    return None


def _newest_weights(rows: list[dict], used: Callable[[], dict[tuple, int]]) -> list[dict]:
    """``rows`` with each metric version split into implementation and weights (``srbench.weights.TAG``), keeping
    per (model, dataset, protocol, scale, metric, implementation) only the values made with the weights of the
    newest run that computed or reused them (``used()``: stored version's key -> its newest run): values of a
    replaced weights file stay stored (a run with it again reuses them, and then shows them again) but are not
    mixed with, or shown instead of, the other file's."""
    from srbench.weights import split_version

    tagged = {r["metric_version"] for r in rows if split_version(r["metric_version"])[1]}
    last = used() if tagged else {}
    newest: dict[tuple, tuple[int, str]] = {}
    for r in rows:
        stored = r["metric_version"]
        r["metric_version"], r["weights"] = split_version(stored)
        run = r.pop("run_id")
        recency = max(-1 if run is None else run,
                      last.get((r["model_key"], r["dataset_key"], r["protocol"], r["scale"], r["metric"], stored), -1))
        key = (r["model_key"], r["dataset_key"], r["protocol"], r["scale"], r["metric"], r["metric_version"])
        if key not in newest or recency > newest[key][0]:
            newest[key] = (recency, r["weights"])
    return [r for r in rows if newest[(r["model_key"], r["dataset_key"], r["protocol"], r["scale"], r["metric"],
                                       r["metric_version"])][1] == r["weights"]]


class Store:
    """The results store at ``path`` (default: $SRBENCH_STORE, else reports/srbench.sqlite).

    With ``create=True`` (commands that write results) a missing store is created; with ``create=False``
    (commands that only read: results, table, pirm-plane, export) a missing one is a StoreError and nothing is
    created or modified. Either way a path that is a folder, not an SQLite database, truncated, corrupt or not
    an srbench store is refused at once with one StoreError naming the file and what it is.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self._conn: sqlite3.Connection | None = None
        self._check_file(create)
        try:
            self._connect(create)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open_existing(cls, path: str | os.PathLike | None = None) -> Store:
        """The store at ``path``, which must exist; see :class:`Store`."""
        return cls(path, create=False)

    def _check_file(self, create: bool) -> None:
        path = self.path
        fs = network_filesystem(path)
        if fs is not None:
            raise StoreError(f"results store {path} is on a network file system ({fs}): SQLite's locking is not "
                             "reliable there and concurrent writers can corrupt it; keep the store on a local disk "
                             "(under torchrun, rank 0's) and copy it afterwards")
        if path.is_dir():
            raise StoreError(f"results store {path} is a folder; --store takes an SQLite file")
        if not path.exists():
            self._create(create)
            return
        if not path.is_file():  # a device or a pipe (reading a pipe would wait forever)
            raise StoreError(f"results store {path} is not a regular file; --store takes an SQLite file")
        try:
            with open(path, "rb") as fh:
                head = fh.read(100)
        except OSError as exc:
            raise StoreError(f"cannot read results store {path}: {exc.strerror or exc}") from None
        if not head and create:
            return  # an empty file is a valid empty database to SQLite: it becomes the store
        if not head.startswith(SQLITE_MAGIC):
            raise StoreError(f"results store {path} is not an SQLite database ({_what_it_is(head)}); "
                             f"is --store the right file?")
        if len(head) < 100:
            raise StoreError(f"results store {path} is truncated ({len(head)} bytes, shorter than an SQLite "
                             f"header); restore it from a backup or use another --store")

    def _create(self, create: bool) -> None:
        path = self.path
        if path.is_symlink():
            raise StoreError(f"results store {path} is a broken symbolic link")
        if not create:
            raise StoreError(f"no results store at {path} ({CREATE_HINT})")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created here rather than by SQLite, whose "unable to open database file" omits the reason.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
        except OSError as exc:
            from srbench.errors import OutputError

            raise StoreError(str(OutputError.from_os_error(path, exc, verb="create results store"))) from None

    def _connect(self, create: bool) -> None:
        # mode=rw never creates the file, even if it vanished since the check above.
        uri = f"{self.path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
        if not create and not os.access(self.path.resolve().parent, os.W_OK):
            uri = self._read_only_uri()
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout = 60000")
            # With the write-ahead log, NORMAL syncs at checkpoints instead of at every commit: a commit (one per
            # image) stays atomic and survives the process being killed; only a power cut may lose the last
            # ones. FULL cost about 1 ms of fsync per image in the one process that writes.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            tables = {r[0] for r in self._retry(lambda: self._open_conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall())}
            ours = set(TABLES) & tables
            if tables - {"sqlite_sequence"} and not ours:
                raise StoreError(f"results store {self.path} is an SQLite database of something else (tables: "
                                 f"{', '.join(sorted(tables))}), not an srbench results store")
            foreign = [t for t in sorted(ours) if not self._has_our_columns(t)]
            if foreign:  # MLflow's tracking database has a table 'runs', for one: nothing may be written to it
                raise StoreError(f"results store {self.path} is an SQLite database of something else (its table(s) "
                                 f"{', '.join(foreign)} lack srbench's columns), not an srbench results store")
            if not create and ours != set(TABLES):
                raise StoreError(f"results store {self.path} is not a complete srbench results store (missing "
                                 f"table(s): {', '.join(t for t in TABLES if t not in ours)})")
            if ours:
                self._integrity_check()
            if create:
                self._retry(lambda: self._open_conn.execute("PRAGMA journal_mode = WAL"))
                self._retry(lambda: self._conn.executescript(SCHEMA))
                if not self._labels_have_scale():
                    self._retry(self._add_label_scale)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _read_only_uri(self) -> str:
        """A store in a folder this process cannot write to, opened to read: SQLite's write-ahead log needs its
        -shm file beside the store, so it is read as an immutable file, which it is to this process ('attempt to
        write a readonly database' before); unless a -wal file holds commits not yet in it, which that would miss."""
        wal = self.path.resolve().with_name(self.path.resolve().name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise StoreError(f"results store {self.path} is in a folder this process cannot write to, and its "
                             f"write-ahead log {wal.name} holds results not yet in it: read it where it can be "
                             f"written (copy the store with its -wal file)")
        return f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"

    def _has_our_columns(self, table: str) -> bool:
        """Whether ``table`` has the columns srbench's stores have always had (labels gained ``scale`` later)."""
        columns = {c[1] for c in self._retry(lambda: self._open_conn.execute(
            f"PRAGMA table_info({table})").fetchall())}
        return _COLUMNS[table] <= columns

    def _labels_have_scale(self) -> bool:
        columns = self._retry(lambda: self._open_conn.execute("PRAGMA table_info(labels)").fetchall())
        return any(c[1] == "scale" for c in columns)

    def _add_label_scale(self) -> None:
        """Rebuild an older store's labels table with a scale (0: every scale, as those labels meant)."""
        with self._transaction() as conn:
            if not any(c[1] == "scale" for c in conn.execute("PRAGMA table_info(labels)").fetchall()):
                for statement in LABELS_WITH_SCALE.split(";"):
                    if statement.strip():
                        conn.execute(statement)

    @property
    def _open_conn(self) -> sqlite3.Connection:
        """The connection, typed for the callbacks of _retry (mypy cannot carry narrowing into a lambda): the
        methods run on an open store; a closed one still fails at the call, as before."""
        return cast(sqlite3.Connection, self._conn)

    def _integrity_check(self) -> None:
        # A truncated or damaged file often opens fine and fails only on the first query that reaches a lost
        # page; quick_check reads every page once (a fraction of a second for a million values).
        try:
            rows = self._retry(lambda: self._open_conn.execute("PRAGMA quick_check(3)").fetchall())
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
                raise
            rows = [(str(exc),)]
        problems = [r[0] for r in rows if r[0] != "ok"]
        if problems:
            raise StoreError(f"results store {self.path} is truncated or corrupt (integrity check failed: "
                             f"{'; '.join(problems)[:200]}); restore it from a backup or use another --store")

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreError(f"results store {self.path} stayed locked by another process ({text}); try again")
        if "not a database" in text:
            return StoreError(f"results store {self.path} is not an SQLite database (encrypted or damaged)")
        if "malformed" in text or "corrupt" in text:
            return StoreError(f"results store {self.path} is truncated or corrupt ({text}); restore it from a "
                              f"backup or use another --store")
        return StoreError(f"results store {self.path}: {text}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
                if ("locked" not in str(exc) and "busy" not in str(exc)) or i == attempts - 1:
                    raise
                time.sleep(0.05 * (i + 1))

    @contextmanager
    def _transaction(self):
        self._retry(lambda: self._open_conn.execute("BEGIN IMMEDIATE"))
        try:
            yield self._conn
        except BaseException:
            # The failed statement may already have ended the transaction; its error is the one to report.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise
        else:
            self._retry(lambda: self._open_conn.execute("COMMIT"))

    # -- runs --------------------------------------------------------------------------------------------
    @_translate_errors
    def start_run(self, **fields) -> int:
        fields = {**fields, "started": _now()}
        if isinstance(fields.get("config"), dict):
            fields["config"] = json_dumps(fields["config"], sort_keys=True, default=str)
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self._transaction() as conn:
            return conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", list(fields.values())).lastrowid

    @_translate_errors
    def finish_run(self, run_id: int) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET finished = ? WHERE id = ?", (_now(), run_id))

    # -- values ------------------------------------------------------------------------------------------
    @_translate_errors
    def cached(self, model_key: str, dataset_key: str, protocol: str, scale: int, versions: dict[str, str],
               made_in: Mapping[str, str] | None = None) -> dict[str, dict[str, float | None]]:
        """image -> {metric: value} for the given metric versions (dataset-level values under
        :data:`DATASET_IMAGE`); with ``made_in`` (:func:`srbench.provenance.environment`), only the values whose
        run recorded that environment."""
        out: dict[str, dict[str, float | None]] = {}
        rows = self._retry(lambda: self._open_conn.execute(
            "SELECT image, metric, metric_version, value, run_id FROM metric_values "
            "WHERE model_key = ? AND dataset_key = ? AND protocol = ? AND scale = ?",
            (model_key, dataset_key, protocol, scale)).fetchall())
        runs = None if made_in is None else self._runs_made_in({r[4] for r in rows}, made_in)
        for image, metric, version, value, run in rows:
            if versions.get(metric) == version and (runs is None or run in runs):
                # SQLite stores NaN (an undefined metric, e.g. NIQE of a flat image) as NULL.
                out.setdefault(image, {})[metric] = math.nan if value is None else value
        return out

    def _runs_made_in(self, run_ids: set[int | None], made_in: Mapping[str, str]) -> set[int]:
        """Those of ``run_ids`` whose run recorded the environment ``made_in`` (runs recorded before runs kept
        their environment have none: not reused)."""
        ids = sorted(r for r in run_ids if r is not None)
        found: set[int] = set()
        for start in range(0, len(ids), 500):  # under SQLite's limit of bound parameters
            part = ids[start:start + 500]
            for run_id, config in self._retry(lambda part=part: self._open_conn.execute(
                    f"SELECT id, config FROM runs WHERE id IN ({', '.join('?' for _ in part)})", part).fetchall()):
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    if json.loads(config).get("environment") == dict(made_in):
                        found.add(run_id)
        return found

    @_translate_errors
    def put(self, model_key: str, dataset_key: str, protocol: str, scale: int, image: str,
            values: dict[str, float], versions: dict[str, str], run_id: int | None, *,
            replace: bool = False) -> None:
        """Store ``values``; a value already stored under the same key is kept, or with ``replace`` (a value
        computed again because the stored one was made in another environment) replaced."""
        rows = [(model_key, dataset_key, protocol, scale, image, m, versions[m], v, run_id)
                for m, v in values.items()]
        with self._transaction() as conn:
            conn.executemany(
                f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO metric_values (model_key, dataset_key, "
                "protocol, scale, image, metric, metric_version, value, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows)

    @_translate_errors
    def label(self, suite: str, model: str, model_key: str, dataset: str, dataset_key: str,
              scale: int | None = None) -> None:
        """Name ``model_key`` as ``model`` of ``suite`` on ``dataset``, at ``scale`` (None: at every scale its
        values hold). The newest fingerprint wins: a label at one scale replaces the one at that scale and one at
        every scale, a label at every scale replaces them all, so the same method at x2 and x4 (two fingerprints)
        keeps both."""
        scale = scale or 0
        with self._transaction() as conn:
            conn.execute("DELETE FROM labels WHERE suite = ? AND model = ? AND dataset = ? AND (scale = ? OR scale = 0 "
                         "OR ? = 0)", (suite, model, dataset, scale, scale))
            conn.execute("INSERT INTO labels (model_key, suite, model, dataset, dataset_key, scale) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (model_key, suite, model, dataset, dataset_key, scale))

    @_translate_errors
    def labelled_dataset(self, suite: str, model: str, dataset: str, scale: int | None = None) -> str | None:
        """The dataset key the label of ``model`` in ``suite`` on ``dataset`` names at ``scale`` (or at every
        scale), None where there is none."""
        found = self.labelled(suite, model, dataset, scale)
        return None if found is None else found[1]

    @_translate_errors
    def labelled(self, suite: str, model: str, dataset: str, scale: int | None = None) -> tuple[str, str] | None:
        """(model key, dataset key) the label of ``model`` in ``suite`` on ``dataset`` names at ``scale`` (or at
        every scale), None where there is none."""
        query = "SELECT model_key, dataset_key FROM labels WHERE suite = ? AND model = ? AND dataset = ?"
        args: tuple = (suite, model, dataset)
        if self._labels_have_scale():
            query += " AND (scale = ? OR scale = 0) ORDER BY scale DESC"
            args += (scale or 0,)
        row = self._retry(lambda: self._open_conn.execute(query, args).fetchone())
        return None if row is None else (row[0], row[1])

    # -- reading -----------------------------------------------------------------------------------------
    @_translate_errors
    def runs(self) -> list[dict]:
        cur = self._retry(lambda: self._open_conn.execute("SELECT * FROM runs ORDER BY id"))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @_translate_errors
    def values(self, suite: str | None = None) -> list[dict]:
        """Every stored value, with the suite's model names where labelled: ``metric_version`` is the
        implementation's, ``weights`` the sha256 tags of the weights files it was computed with. Of a metric
        computed with several weights files (one replaced), only the newest run's values are given."""
        query = (
            "SELECT l.suite, l.model, l.dataset, v.protocol, v.scale, v.image, v.metric, v.metric_version, "
            "v.value, v.model_key, v.dataset_key, v.run_id FROM metric_values v JOIN labels l "
            "ON l.model_key = v.model_key AND l.dataset_key = v.dataset_key"
        )
        if self._labels_have_scale():  # a store written before labels had a scale, opened to read, has none
            query += " AND (l.scale = 0 OR l.scale = v.scale)"
        args: Sequence = ()
        if suite is not None:
            query += " WHERE l.suite = ?"
            args = (suite,)
        cur = self._retry(lambda: self._open_conn.execute(query, args))
        names = [d[0] for d in cur.description]
        return _newest_weights([dict(zip(names, row, strict=True)) for row in cur.fetchall()], self._versions_used)

    def _versions_used(self) -> dict[tuple, int]:
        """(model key, dataset key, protocol, scale, metric, stored version) -> the newest run that computed or
        reused values of that version (runs recorded before runs kept their versions name none: the values'
        own runs count for them)."""
        used: dict[tuple, int] = {}
        rows = self._retry(lambda: self._open_conn.execute(
            "SELECT id, model_key, dataset_key, protocol, scale, config FROM runs").fetchall())
        for run_id, model_key, dataset_key, protocol, scale, config in rows:
            try:
                versions = json.loads(config).get("versions") or {}
            except (ValueError, TypeError, AttributeError):
                continue
            for metric, version in versions.items():
                key = (model_key, dataset_key, protocol, scale, metric, version)
                used[key] = max(used.get(key, -1), run_id)
        return used

    @_translate_errors
    def all_values(self) -> list[dict]:
        cur = self._retry(lambda: self._open_conn.execute("SELECT * FROM metric_values"))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
