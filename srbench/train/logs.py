"""The training logs: ``log.csv`` (kept consistent with the weights across resumes) and TensorBoard."""

from __future__ import annotations

import csv
from pathlib import Path

from srbench.errors import OutputError
from srbench.images import atomic_write_text


class CsvLog:
    """The loss log: one row per logged iteration, appended. On resume, rows past the resumed iteration (written
    after the last checkpoint by the interrupted run) are dropped first, so the log matches the weights."""

    EXTRA = ("lr", "seconds", "val_l1")

    def __init__(self, path: Path, resumed_at: int) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file():
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.fields = list(reader.fieldnames) if reader.fieldnames is not None else None
                rows = [r for r in reader if _iteration(r) <= resumed_at]
            if self.fields:
                self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        import io

        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=self.fields or [])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def write(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(dict.fromkeys([*row, *self.EXTRA]))
            self._rewrite([])
        elif not set(row) <= set(self.fields):  # new columns (the first losses after the iteration-0 row)
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            self.fields = list(dict.fromkeys([*self.fields, *row]))
            self._rewrite(rows)
        try:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields, restval="", extrasaction="ignore").writerow(row)
        except OSError as exc:
            raise OutputError.from_os_error(self.path, exc) from None


def _iteration(row: dict) -> float:
    """A row's iteration; a row that names none (a line cut by a crash, an edit) is dropped with the rows past the
    resumed iteration: the log follows the weights, and a damaged line must not block the resume."""
    try:
        return int(row.get("iteration") or "")
    except ValueError:
        return float("inf")


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


class RunLog:
    """A stage folder's ``log.csv`` and TensorBoard scalars (``<stage>/<column>``), written by rank 0."""

    def __init__(self, folder: Path, stage: str, resumed_at: int, *, resume: bool) -> None:
        if not resume:
            (folder / "log.csv").unlink(missing_ok=True)  # left by a run that died before its first checkpoint
        self.stage = stage
        self.csv = CsvLog(folder / "log.csv", resumed_at)
        self.tb = _tensorboard(folder / "tb")

    def write(self, row: dict) -> None:
        self.csv.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "iteration":
                    self.tb.add_scalar(f"{self.stage}/{k}", v, row["iteration"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
