"""``srbench fetch``: the one way weights and data get downloaded, explicitly, never as a side effect.

Every download is pinned in :data:`DOWNLOADS` (official URLs from the projects' own code or documentation) with
its sha256, or the hash prefix its file name carries (torchvision's ``vgg19-dcbb9e9d.pth``: the first 8 hex
digits of the sha256), or none where the project publishes none: then the sha256 of the first download is
recorded in ``fetched.json`` beside it, printed, and every later download must match it.

A download goes to ``.<name>.part`` beside its destination and resumes from there (an HTTP range request) after
a cut connection; it becomes the file by one rename, only after its hash was checked, so a partial or wrong file
is never used. Dataset archives are downloaded into the cache's ``downloads/`` folder (:func:`srbench.paths.
downloads_dir`, never the data root or the checkout); an archive already there is checked against its pinned hash
like a fresh one, whoever put it there. It is unpacked into a temporary folder beside the data root and its set
moved into the layout srbench reads (``<data root>/<folder>``, the data root being the first one srbench searches)
with a record of its files' sha256 (``.srbench-fetched.json``), then checked like ``srbench datasets verify``.

A file or set already in place is verified before it is called there: against its hash (or the fetch record),
else against the known copies' manifests, else by reading it (a weights file no project publishes a hash of).
A failed fetch leaves nothing it did not find: no folder it created, no archive it downloaded; only a cut
download's ``.part``, which the next run resumes from, or a hash-checked archive the disk refused to unpack, and the
message says so. A data root that cannot be written to is refused before anything is downloaded. Offline, a fetch
fails in one line saying that nothing was installed, what to download and where to put it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import http.client
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from srbench import paths
from srbench.downloads import DOWNLOADS, LEDGER, Download, ledger
from srbench.errors import BadInputError, SrbenchError
from srbench.images import file_sha256, image_files

CHUNK = 1 << 20
RECORD = ".srbench-fetched.json"  # in a fetched set's folder: its files' sha256 as unpacked, to verify it later


class FetchError(SrbenchError):
    """A download failed (offline, refused, cut, or not the file it should be)."""


class _WriteError(FetchError):
    """The local disk refused a write (full, read-only, no permission): the download itself was not at fault."""


# errno values that blame the local disk, not the network or the archive
_LOCAL_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _local_write_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _LOCAL_WRITE_ERRNOS


def _hash_ok(digest: str, expected: str | None) -> bool:
    return expected is None or digest.startswith(expected.lower())


class _Digests:
    """sha256 and md5 of one stream (md5 only because some projects publish nothing else)."""

    def __init__(self) -> None:
        self.sha256, self.md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)

    def update(self, block: bytes) -> None:
        self.sha256.update(block)
        self.md5.update(block)

    @classmethod
    def of(cls, path: Path) -> _Digests:
        digests = cls()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digests.update(block)
        return digests


def _destination(download: Download, root: Path) -> Path:
    return root / download.filename


def _offline(download: Download, dest: Path, why: object, manual: str | None, kept: str) -> FetchError:
    return FetchError(f"cannot download {download.name} from {download.url} ({why}): nothing was installed; "
                      + (manual or f"download it yourself and put it at {dest}") + kept)


def _folder(path: Path, what: str) -> Path:
    """``path``, refused in one line when something other than a folder is there."""
    if path.exists() and not path.is_dir():
        raise FetchError(f"{path}: not a folder (where {what} go)")
    return path


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"{path}: cannot create the folder ({exc.strerror or exc}); nothing was installed") from None


@contextlib.contextmanager
def _leaving_no_trace(folder: Path) -> Iterator[None]:
    """The folders up to ``folder`` that the block creates are removed again when it fails (deepest first; one
    still holding a file, such as a resumable ``.part``, stays with its parents)."""
    created = []
    missing = folder
    while not missing.exists() and not missing.is_symlink() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    try:
        yield
    except BaseException:
        for made in created:
            try:
                made.rmdir()
            except FileNotFoundError:  # the block failed before making this one; its parents may still be there
                continue
            except OSError:
                break
        raise


def download_file(download: Download, dest: Path, *, progress: Callable[[int, int | None], None] | None = None,
                  expected: str | None = None, timeout: float = 60.0, check: Callable[[Path], object] | None = None,
                  manual: str | None = None) -> str:
    """``download.url`` to ``dest`` through ``.<name>.part`` (resumed if there), checked against ``expected`` (a
    sha256 or its prefix) and the pinned md5, and by ``check`` (raising FetchError) where nothing is pinned;
    returns the sha256. A wrong file is deleted and refused. ``manual`` says how to install by hand when offline."""
    if download.url is None:
        raise FetchError(_manual(download, dest))
    _make_folder(dest.parent)
    part = dest.parent / f".{dest.name}.part"
    have = part.stat().st_size if part.is_file() else 0
    total: int | None = None
    request = urllib.request.Request(download.url, headers={"Range": f"bytes={have}-"} if have else {})
    digest = _Digests()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:  # the server ignores ranges: start again
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            _stream(response, part, have, digest, progress, total)
    except _WriteError:
        raise
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole
            return _finish(download, part, dest, _Digests.of(part), expected, check)
        raise FetchError(f"{download.url}: the server answered {exc.code} {exc.reason}; nothing was installed"
                         + _kept(part)) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as exc:
        # HTTPException: a chunked response cut mid-chunk (IncompleteRead), a garbled status line
        if _drop_empty(part) > have:
            raise FetchError(f"{download.url}: the connection broke after {part.stat().st_size} of "
                             f"{total if total is not None else 'an unknown number of'} bytes "
                             f"({exc}); nothing was installed{_kept(part)}") from None
        raise _offline(download, dest, getattr(exc, "reason", exc), manual, _kept(part)) from None
    if total is not None and _drop_empty(part) != total:
        raise FetchError(f"{download.url}: got {part.stat().st_size if part.is_file() else 0} of {total} bytes; "
                         f"nothing was installed{_kept(part)}")
    return _finish(download, part, dest, digest, expected, check)


def _drop_empty(part: Path) -> int:
    """The size of ``part``, deleted when empty (nothing to resume from)."""
    size = part.stat().st_size if part.is_file() else 0
    if size == 0:
        part.unlink(missing_ok=True)
    return size


def _kept(part: Path) -> str:
    return (f"; the partial download {part} is kept: run the same command again to resume from it"
            if part.is_file() else "")


def _stream(response, part: Path, have: int, digest: _Digests, progress: Callable[[int, int | None], None] | None,
            total: int | None) -> None:
    """The response appended to the ``have`` bytes of ``part`` (hashed first), synced to disk."""
    if have:
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
    try:
        with open(part, "ab" if have else "wb") as out:
            done = have
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        if not _local_write_error(exc):
            raise
        raise _WriteError(f"{part}: cannot write the download ({exc.strerror or exc}); nothing was installed"
                          + (f"; the {_drop_empty(part)} bytes already there are kept: free space (or fix the "
                             "folder's permissions) and run the same command again to resume from them"
                             if part.is_file() else "")) from None


def _mismatch(download: Download, digests: _Digests, expected: str | None) -> str | None:
    """How a file's hashes differ from the pinned ones (``expected``: a sha256 or its prefix), or None."""
    sha256, md5 = digests.sha256.hexdigest(), digests.md5.hexdigest()
    if not _hash_ok(sha256, expected):
        return f"sha256 {sha256} is not the pinned {expected}"
    if not _hash_ok(md5, download.md5):
        return f"md5 {md5} is not the pinned {download.md5}"
    return None


def _finish(download: Download, part: Path, dest: Path, digests: _Digests, expected: str | None,
            check: Callable[[Path], object] | None = None) -> str:
    wrong = _mismatch(download, digests, expected)
    if wrong is None and check is not None and expected is None and download.md5 is None:
        try:
            check(part)
        except FetchError as exc:
            wrong = f"not a {download.filename} ({exc})"
    if wrong:
        part.unlink(missing_ok=True)
        raise FetchError(f"{download.url}: {wrong}: refused and deleted (a changed or corrupted file; nothing was "
                         "installed)")
    os.replace(part, dest)
    return digests.sha256.hexdigest()


def _recorded(root: Path, download: Download) -> str | None:
    entry = ledger(root).get(download.filename)
    sha256 = entry.get("sha256") if isinstance(entry, dict) else None
    return sha256 if isinstance(sha256, str) else None


def _record(root: Path, download: Download, sha256: str) -> None:
    from srbench.images import atomic_write_text

    table = ledger(root)
    table[download.filename] = {"sha256": sha256, "url": download.url}
    atomic_write_text(root / LEDGER, json.dumps(table, indent=2, sort_keys=True) + "\n")


def _remember(download: Download, root: Path, sha256: str, expected: str | None, log: Callable[[str], None]) -> None:
    """A file no project publishes a hash of has the sha256 of its first (installed) download recorded in
    ``root``'s ledger, and every later download must match it."""
    if download.sha256 is None and expected is None:
        _record(root, download, sha256)
        published = f"md5 {download.md5} checked; " if download.md5 else "no published hash; "
        log(f"{download.name}: {published}recorded sha256 {sha256} in {root / LEDGER}")


def _structure(download: Download, path: Path) -> str:
    """What a weights file no hash pins was read as; a FetchError naming the file when it is not that."""
    try:
        if download.filename.endswith(".mat"):
            from srbench.metrics.nrqm import load_model

            load_model.__wrapped__(str(path))  # not the cached reader: this file, as it is now
            return "read as an NRQM model; no published hash to check"
        from srbench.weightfiles import check_weights_file

        check_weights_file(path)
        return "read as a checkpoint; no published hash to check"
    except SrbenchError as exc:
        raise FetchError(str(exc)) from None


def _check_present(download: Download, dest: Path, expected: str | None) -> str:
    """How a weights file already in place was verified (its hash, else reading it); a FetchError if it is bad."""
    if expected is None and download.md5 is None:
        try:
            return _structure(download, dest)
        except FetchError as exc:
            raise FetchError(f"{download.name}: {exc}: not accepted; move it away and fetch again") from None
    wrong = _mismatch(download, _Digests.of(dest), expected) if dest.is_file() else "not a file"
    if wrong:
        raise FetchError(f"{dest}: {wrong} (a changed or corrupted file): not accepted; move it away and fetch again")
    return "sha256 checked" if expected else "md5 checked"


def fetch_weights(name: str, *, weights_dir: str | os.PathLike | None = None,
                  log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """One weights file into the weights folder (already there and verified: left as it is)."""
    download = _known(name, "weights")
    root = _folder(paths.weights_dir(weights_dir), "weights")
    dest = _destination(download, root)
    expected = download.sha256 or _recorded(root, download)
    if dest.exists() or dest.is_symlink():
        log(f"{name}: {dest} is there ({_check_present(download, dest, expected)})")
        return dest
    with _leaving_no_trace(root):
        sha256 = _download_pinned(download, dest, expected, progress,
                                  check=functools.partial(_structure, download))
    _remember(download, root, sha256, expected, log)
    log(f"{name}: {dest} (sha256 {sha256})")
    return dest


def weights_file(name: str, *, weights_dir: str | os.PathLike | None = None) -> Path:
    """Where a named weights file is once fetched; a clear error naming the command (or the manual download) if it
    is not there yet."""
    download = _known(name, "weights")
    dest = _destination(download, paths.weights_dir(weights_dir))
    if dest.is_file():
        return dest
    if download.url is None:
        raise FetchError(_manual(download, dest))
    raise FetchError(f"{name} is not downloaded: run `srbench fetch weights {name}` (it goes to {dest})")


def _manual(download: Download, dest: Path) -> str:
    return (f"{download.name} ({download.filename}) has no direct download ({download.source}): download it there and "
            f"put it at {dest}" + (f"; `srbench fetch weights {download.alternative[0]}` downloads "
                                   f"{download.alternative[1]}" if download.alternative else ""))


def fetch_dataset(name: str, *, data_root: str | os.PathLike | None = None, log: Callable[[str], None] = print,
                  progress: bool = True) -> Path:
    """One dataset archive, downloaded into the downloads folder, unpacked into its layout under the data root, then
    verified (a set already there: verified before it is called there)."""
    download = _known(name, "datasets")
    assert download.folder is not None
    root = _folder(_data_root(data_root), "datasets")
    target = root / download.folder
    if target.exists() or target.is_symlink():
        log(f"{name}: {target} is there ({_check_installed(name, target)})")
        return target
    downloads = _folder(paths.downloads_dir(), "downloaded archives")
    archive = downloads / download.filename
    expected = download.sha256 or _recorded(downloads, download)
    fresh = not archive.is_file()
    manual = (f"download {download.filename} yourself and put it at {archive}, then run the same command again: it "
              f"checks the archive's pinned hash and unpacks its {download.folder} into {target}, where srbench looks "
              f"for {name}")
    with _leaving_no_trace(downloads), _leaving_no_trace(target.parent):
        try:
            _writable_or_refused(root)  # before the download: an archive fetched to be thrown away costs minutes
            sha256 = _archive(download, archive, expected, progress, manual)
            _unpack(archive, download.folder, root, sha256)
        except BaseException as exc:
            # downloaded by this run and not installed: not left behind, unless the data root refused it (the
            # archive passed its hashes: the next run, with space, unpacks it without downloading it again)
            if fresh and not isinstance(exc, _WriteError):
                archive.unlink(missing_ok=True)
            raise
    _remember(download, downloads, sha256, expected, log)
    _verify(target, log)
    log(f"{name}: installed {target}{_where_read(name, target, data_root)}")
    return target


def _archive(download: Download, archive: Path, expected: str | None, progress: bool, manual: str) -> str:
    """The archive's sha256: downloaded, or the one already there once its hashes are the pinned ones (whoever put
    it there: a fake or truncated archive is never unpacked)."""
    if not archive.is_file():
        return _download_pinned(download, archive, expected, progress, manual=manual)
    digests = _Digests.of(archive)
    wrong = _mismatch(download, digests, expected)
    if wrong:
        raise FetchError(f"{archive}: {wrong}: nothing was installed (a changed or corrupted archive: delete it and "
                         "fetch again)")
    return digests.sha256.hexdigest()


def _where_read(name: str, target: Path, data_root: str | os.PathLike | None) -> str:
    """Where srbench reads the set from, when that is not the folder just installed (another copy found first)."""
    from srbench import datasets as D

    try:
        found = Path(D.resolve(name, data_root).location)
    except SrbenchError as exc:
        return f"; note: srbench cannot read it as {name} ({exc})"
    if found.resolve() == target.resolve():
        return f", where srbench looks for {name}"
    return f"; note: srbench reads {name} from {found}, found first: move that away to use this one"


def _check_installed(name: str, target: Path) -> str:
    """How a set already in place was verified: against the record its fetch left, else against the known copies'
    manifests; a FetchError (one line) for an incomplete or modified set."""
    if not target.is_dir():
        raise FetchError(f"{target}: is there but is not a folder: move it away and fetch again")
    record = _read_record(target)
    if record is not None:
        return _check_against_record(target, record)
    from srbench.manifests import verify_folder

    try:
        report = verify_folder(target)
    except SrbenchError as exc:
        raise FetchError(f"{target} is there but cannot be verified ({exc}): move it away and fetch again") from None
    if report.identical and report.dataset == name:
        return f"verified: identical to the known copy '{report.copy}' of {name}, {len(report.findings)} files"
    what = ("it matches no known copy" if report.copy is None else
            f"against {report.dataset} copy '{report.copy}': " + ", ".join(f"{n} {s}" for s, n in
                                                                         sorted(report.counts.items())))
    raise FetchError(f"{target} is there but was not installed by srbench fetch and is not a known copy of {name} "
                     f"({what}; `srbench datasets verify {target}` lists the files): move it away and fetch again")


def _read_record(target: Path) -> dict | None:
    path = target / RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FetchError(f"{path}: unreadable record of the fetched files ({exc}): move {target} away and fetch "
                         "again") from None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        raise FetchError(f"{path}: not a record of fetched files (no 'files' table): move {target} away and fetch "
                         "again")
    return record


def _check_against_record(target: Path, record: dict) -> str:
    want: dict = record["files"]
    have = {p.relative_to(target).as_posix(): p for p in target.rglob("*") if p.is_file()}
    have.pop(RECORD, None)
    problems = {"missing": sorted(set(want) - set(have)), "extra": sorted(set(have) - set(want)),
                "changed": sorted(rel for rel in set(want) & set(have) if file_sha256(have[rel]) != want[rel])}
    found = [f"{len(rels)} {kind} ({', '.join(rels[:3])}{', ...' if len(rels) > 3 else ''})"
             for kind, rels in problems.items() if rels]
    if found:
        raise FetchError(f"{target} is there but is not what srbench fetch installed from {record.get('archive')} "
                         f"({'; '.join(found)}): move it away and fetch again")
    return f"verified: the {len(want)} files unpacked from {record.get('archive')}"


def _download_pinned(download: Download, dest: Path, expected: str | None, progress: bool,
                     check: Callable[[Path], object] | None = None, manual: str | None = None) -> str:
    """:func:`download_file` with a progress bar."""
    with _bar(progress, download.filename) as bar:
        return download_file(download, dest, progress=bar, expected=expected, check=check, manual=manual)


def _data_root(explicit: str | os.PathLike | None) -> Path:
    """The first folder srbench searches for named datasets (srbench.paths.data_roots): where a fetched set goes."""
    return paths.data_roots(explicit)[0]


def _writable_or_refused(root: Path) -> None:
    """``root`` is made and written to, or a FetchError names it."""
    from srbench.images import ensure_writable_dir

    try:
        ensure_writable_dir(root)
    except SrbenchError as exc:
        raise FetchError(f"{exc}; nothing was downloaded or installed") from None


def _unpack(archive: Path, folder: str, root: Path, sha256: str) -> None:
    """The archive's ``folder`` (a path such as ``benchmark/Set5``, wherever it sits inside) moved to ``root/folder``
    by one rename, with the record of its files."""
    _make_folder(root)
    want = Path(folder).parts
    with tempfile.TemporaryDirectory(dir=root, prefix=".unpack-") as tmp:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:
                    _check_members(archive, z.namelist())
                    z.extractall(tmp)
            else:
                _untar(archive, Path(tmp))
        except _UNSAFE_MEMBER as exc:
            raise FetchError(f"{archive}: {exc}: refused; nothing was installed") from None
        except OSError as exc:
            if _local_write_error(exc):
                raise _WriteError(f"{root}: cannot unpack {archive} there ({exc.strerror or exc}); nothing was "
                                  f"installed; the archive, whose hashes were checked, is kept: free space (or fix "
                                  "the folder's permissions) and run the same command again") from None
            raise FetchError(f"{archive}: cannot unpack ({exc}); nothing was installed: delete it and fetch "
                             "again") from None
        except (ValueError, shutil.ReadError, zipfile.BadZipFile, tarfile.TarError) as exc:
            raise FetchError(f"{archive}: cannot unpack ({exc}); nothing was installed: delete it and fetch "
                             "again") from None
        found = sorted((p for p in Path(tmp).rglob(want[-1]) if p.is_dir() and p.parts[-len(want):] == want),
                       key=lambda p: len(p.parts))
        if not found:
            raise FetchError(f"{archive}: holds no folder {folder!r}; nothing was installed")
        if not image_files(found[0], recursive=True):
            raise FetchError(f"{archive}: its folder {folder!r} holds no image files; nothing was installed")
        files = {p.relative_to(found[0]).as_posix(): file_sha256(p) for p in sorted(found[0].rglob("*"))
                 if p.is_file()}
        (found[0] / RECORD).write_text(json.dumps({"archive": archive.name, "sha256": sha256, "files": files},
                                                  indent=1, sort_keys=True) + "\n")
        _make_folder((root / folder).parent)
        os.replace(found[0], root / folder)


class _UnsafeMember(Exception):
    """A tar member that would be written outside the folder or is not a plain file, folder or inner link."""


# tarfile's 'data' filter (Python 3.11.4+) raises FilterError subclasses; older 3.11 releases have no filter
_UNSAFE_MEMBER: tuple[type[BaseException], ...] = (_UnsafeMember,) + (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ())


def _untar(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
            return
        # Python 3.11.0-3.11.3: the 'data' filter's rules, as far as benchmark archives need them: plain files and
        # folders only, every one inside the folder
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()):
                raise _UnsafeMember(f"member {member.name!r} is a link or special file (this Python, "
                                    f"{sys.version.split()[0]}, has no tarfile data filter to check it)")
            if member.name.startswith(("/", "\\")) or ".." in Path(member.name).parts:
                raise _UnsafeMember(f"member {member.name!r} would be written outside the folder")
        tar.extractall(into)


def _check_members(archive: Path, names: list[str]) -> None:
    for name in names:
        if name.startswith(("/", "\\")) or ".." in Path(name).parts:
            raise FetchError(f"{archive}: member {name!r} would be written outside the folder: refused")


def _verify(target: Path, log: Callable[[str], None]) -> None:
    from srbench.manifests import verify_folder

    log(verify_folder(target).describe())


def _known(name: str, kind: str) -> Download:
    known = [d for d in DOWNLOADS.values() if d.kind == kind]
    found = DOWNLOADS.get(name)
    if found is None or found.kind != kind:
        raise BadInputError(f"unknown {kind} {name!r}; srbench fetch {kind} knows: {', '.join(d.name for d in known)}")
    return found


class _bar:
    """A tqdm progress bar as a ``progress(done, total)`` callback (nothing when ``enabled`` is false)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled, self.label = enabled, label
        self.bar: Any = None

    def __enter__(self) -> Callable[[int, int | None], None] | None:
        if not self.enabled:
            return None

        def update(done: int, total: int | None) -> None:
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(total=total, initial=0, unit="B", unit_scale=True, desc=self.label)
            self.bar.update(done - self.bar.n)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
