"""One trainer per run folder: an flock on ``<run>/.srbench.lock`` that names its holder."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from srbench.errors import OutputError, RunInUseError

LOCK_NAME = ".srbench.lock"


def _command_line() -> str:
    import shlex
    import sys

    if not sys.argv or not sys.argv[0]:
        return "?"
    program = Path(sys.argv[0])
    name = program.parent.name if program.name == "__main__.py" else program.name  # python -m srbench
    return shlex.join([name, *sys.argv[1:]])


def _lock_holder(fd: int) -> dict | None:
    """What the lock file says about its holder; None while the holder has not written it yet."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        info = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def open_lock_file(path: Path) -> int:
    """A descriptor of the lock file ``path`` (created with its folder), for ``flock``; OutputError if not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputError.from_os_error(path, exc) from None


@contextmanager
def lock_run_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the run folder ``folder`` (created if needed) for the ``with`` block.

    An flock on ``folder/.srbench.lock``, which also records the holder (pid, host, start time, command). The
    kernel drops the lock when its process ends, however it ends (kill -9 included), so a lock is never stale.
    A second process gets RunInUseError at once, naming the holder, and touches nothing in the folder.
    """
    import fcntl
    import socket
    from datetime import datetime

    folder = Path(folder).expanduser()
    path = folder / LOCK_NAME
    fd = open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = None
            for _ in range(20):  # the holder writes its details just after taking the lock
                holder = _lock_holder(fd)
                if holder is not None:
                    break
                time.sleep(0.05)
            if holder is None:
                who = "another process (it recorded no details)"
            else:
                command = str(holder.get("command", "?"))
                command = command if len(command) <= 160 else command[:157] + "..."
                who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')} "
                       f"({command})")
            raise RunInUseError(f"{folder} is in use by {who}; wait for it or use another --out") from None
        except OSError as exc:
            raise OutputError(f"cannot lock {path}: {exc.strerror or exc}") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": _command_line()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as exc:
            raise OutputError.from_os_error(path, exc) from None
        try:
            yield folder
        finally:
            with suppress(OSError):
                os.ftruncate(fd, 0)  # no stale details for the next holder's first instant
    finally:
        os.close(fd)  # releases the flock
