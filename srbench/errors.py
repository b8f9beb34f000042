"""Exceptions whose message is meant to be shown to the user as is, one line, naming what is wrong."""

from __future__ import annotations

from srbench.downloads import DOWNLOADS


class SrbenchError(Exception):
    """Base of all errors srbench reports to users (the CLI prints the message without a traceback)."""


class StoppedByUser(SrbenchError):
    """Work stopped by a Ctrl-C, with what was kept (a training's saved state): exit status 130, as an interrupt."""


class BadInputError(SrbenchError, ValueError):
    """An input file or argument is unusable: corrupt, wrong size, wrong kind of image, unknown name."""


class MissingExtraError(BadInputError):
    """A metric needs an optional package (one of srbench's extras) that is not installed."""


class DatasetNotFoundError(SrbenchError):
    """A named dataset is not under any data root."""


class WeightsUnavailableError(SrbenchError):
    """A metric or network needs a downloaded file that is not on this machine."""

    def __init__(self, what: str, filename: str, folder: str, searched: list[str], origin: str) -> None:
        self.what = what
        self.filename = filename
        self.folder = folder
        self.searched = searched
        looked = ", ".join(searched)
        fetchable = next((d.name for d in DOWNLOADS.values() if d.filename == filename), None)
        how = f"Run srbench fetch weights {fetchable}, or get it" if fetchable else "Get it"
        super().__init__(
            f"{what} needs {filename}, which is not on this machine (looked in: {looked}). "
            f"{how} from {origin} and put it in {folder} (or set SRBENCH_WEIGHTS to its folder)."
        )


class OutputError(SrbenchError):
    """An output file or folder cannot be written (read-only, full disk, a file where a folder should be...)."""

    @classmethod
    def from_os_error(cls, path, exc: OSError, verb: str = "write") -> OutputError:
        """'cannot <verb> <path>: <the OS's reason>', naming the file that stands where a folder should be."""
        from pathlib import Path

        reason = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            # mkdir only says "File exists" or "Not a directory": name the culprit, the nearest existing ancestor.
            for parent in Path(path).parents:
                if parent.exists() or parent.is_symlink():
                    if parent.is_file():
                        reason = f"{parent} is a file, not a folder"
                    elif not parent.is_dir():
                        reason = f"{parent} is not a folder"
                    break
        return cls(f"cannot {verb} {path}: {reason}")


class StoreError(SrbenchError):
    """The results store is missing, not an SQLite database, truncated, corrupt or unusable."""


class RunInUseError(SrbenchError):
    """Another process is training into the same run folder."""
