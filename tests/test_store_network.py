"""SQLite over a network file system corrupts under concurrent writers: the store refuses such a path."""

from __future__ import annotations

import pytest

from srbench import store as S
from srbench.errors import StoreError


def test_mount_table_decides_the_file_system(tmp_path):
    table = tmp_path / "mounts"
    table.write_text("proc /proc proc rw 0 0\n/dev/vda / ext4 rw 0 0\n"
                     f"server:/export {tmp_path}/shared\\040dir nfs4 rw 0 0\n"
                     f"//host/share {tmp_path}/win cifs rw 0 0\n", encoding="utf-8")
    (tmp_path / "shared dir").mkdir()
    assert S.network_filesystem(tmp_path / "shared dir" / "srbench.sqlite", str(table)) == "nfs4"
    assert S.network_filesystem(tmp_path / "win" / "a" / "b.sqlite", str(table)) == "cifs"  # not created yet
    assert S.network_filesystem(tmp_path / "local.sqlite", str(table)) is None
    assert S.network_filesystem(tmp_path / "shared dirx" / "s.sqlite", str(table)) is None  # a prefix is not a mount
    assert S.network_filesystem(tmp_path / "x.sqlite", str(tmp_path / "no-such-table")) is None


def test_a_store_on_nfs_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_mounts", lambda table="/proc/mounts": [(str(tmp_path / "nfs"), "nfs"), ("/", "ext4")])
    target = tmp_path / "nfs" / "srbench.sqlite"
    with pytest.raises(StoreError, match=r"network file system \(nfs\).*local disk"):
        S.Store(target)
    assert not target.exists() and not target.parent.exists()
    S.Store(tmp_path / "local.sqlite").close()  # a local path is unaffected
