"""Exceptions whose message is meant to be shown to the user as is, one line, naming what is wrong."""

from __future__ import annotations


class SrbenchError(Exception):
    """Base of all errors srbench reports to users (the CLI prints the message without a traceback)."""


class BadInputError(SrbenchError, ValueError):
    """An input file or argument is unusable: corrupt, wrong size, wrong kind of image, unknown name."""


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
        super().__init__(
            f"{what} needs {filename}, which is not on this machine (looked in: {looked}). "
            f"Get it from {origin} and put it in {folder} (or set SRBENCH_WEIGHTS to its folder)."
        )
