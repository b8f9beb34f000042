"""``srbench fetch`` against a local HTTP server (http.server in a thread) serving fixture files: resume after a
cut connection, a wrong hash refused, an archive unpacked into srbench's layout, the offline error."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from click.testing import CliRunner

from srbench import fetch as F
from srbench.cli import main


class _Server:
    """Files by path; ``cut`` (path -> bytes) ends the next response for that path after so many bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                asked = self.headers.get("Range")
                server.ranges.append(asked)
                start = int(asked.removeprefix("bytes=").split("-")[0]) if asked else 0
                self.send_response(206 if asked else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                limit = server.cut.pop(self.path, None)
                self.wfile.write(body[start:] if limit is None else body[start:start + limit])
                if limit is not None:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the connection breaks mid-file

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()


def _pin(monkeypatch, name, **changes) -> F.Download:
    download = dataclasses.replace(F.DOWNLOADS[name], **changes)
    monkeypatch.setitem(F.DOWNLOADS, name, download)
    return download


def test_weights_resume_after_a_cut_connection(server, monkeypatch, tmp_path):
    body = np.random.default_rng(0).bytes(3 * F.CHUNK + 123)
    server.files["/vgg.pth"] = body
    server.cut["/vgg.pth"] = F.CHUNK + 7
    _pin(monkeypatch, "vgg19", url=server.url + "/vgg.pth", sha256=hashlib.sha256(body).hexdigest()[:8])
    broke = rf"{F.CHUNK + 7} of {len(body)} bytes.*run the same command again to resume"
    with pytest.raises(F.FetchError, match=broke):
        F.fetch_weights("vgg19", weights_dir=tmp_path, log=lambda m: None, progress=False)
    assert not (tmp_path / "vgg19-dcbb9e9d.pth").exists()  # a partial file is never used
    assert (tmp_path / ".vgg19-dcbb9e9d.pth.part").stat().st_size == F.CHUNK + 7
    path = F.fetch_weights("vgg19", weights_dir=tmp_path, log=lambda m: None, progress=False)
    assert server.ranges == [None, f"bytes={F.CHUNK + 7}-"]  # the second request resumed
    assert path.read_bytes() == body and not (tmp_path / ".vgg19-dcbb9e9d.pth.part").exists()
    F.fetch_weights("vgg19", weights_dir=tmp_path, log=lambda m: None, progress=False)  # there: nothing fetched
    assert len(server.ranges) == 2


def test_a_wrong_hash_is_refused_and_nothing_installed(server, monkeypatch, tmp_path):
    server.files["/alex.pth"] = b"not the weights"
    _pin(monkeypatch, "alexnet", url=server.url + "/alex.pth")  # pinned prefix 7be5be79: this file is not it
    with pytest.raises(F.FetchError, match=r"sha256 .* is not the pinned 7be5be79: refused and deleted"):
        F.fetch_weights("alexnet", weights_dir=tmp_path, log=lambda m: None, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_without_a_published_hash_the_first_download_is_recorded_and_then_required(server, monkeypatch, tmp_path):
    server.files["/NRQM_model.mat"] = b"model v1"
    _pin(monkeypatch, "nrqm", url=server.url + "/NRQM_model.mat")
    said: list[str] = []
    F.fetch_weights("nrqm", weights_dir=tmp_path, log=said.append, progress=False)
    digest = hashlib.sha256(b"model v1").hexdigest()
    assert any(f"recorded sha256 {digest}" in line for line in said)
    assert json.loads((tmp_path / F.LEDGER).read_text())["NRQM_model.mat"]["sha256"] == digest
    (tmp_path / "NRQM_model.mat").unlink()
    server.files["/NRQM_model.mat"] = b"model v2"  # the file changed upstream
    with pytest.raises(F.FetchError, match="is not the pinned"):
        F.fetch_weights("nrqm", weights_dir=tmp_path, log=lambda m: None, progress=False)


def test_a_dataset_archive_is_unpacked_into_srbenchs_layout(server, monkeypatch, tmp_path, shared_data):
    from srbench import datasets as D

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # the set inside an extra top folder, as archives often are
        for name in ("baby", "bird"):
            z.write(shared_data / f"benchmark/Set5/HR/{name}.png", f"testsets/Set5/HR/{name}.png")
    server.files["/Set5.zip"] = buf.getvalue()
    download = F.Download("set5", "datasets", server.url + "/Set5.zip", "Set5.zip", "test", folder="Set5")
    monkeypatch.setitem(F.DOWNLOADS, "set5", download)
    said: list[str] = []
    target = F.fetch_dataset("set5", data_root=tmp_path, log=said.append, progress=False)
    assert target == tmp_path / "Set5" and sorted(p.name for p in (target / "HR").iterdir()) == ["baby.png",
                                                                                                 "bird.png"]
    ds = D.resolve("set5", str(tmp_path))
    assert [it.name for it in ds.items] == ["baby", "bird"]
    assert any("set5" in line.lower() and "copy" in line for line in said)  # verified against the manifests
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".unpack-")]


def test_an_archive_escaping_its_folder_is_refused(server, monkeypatch, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../evil.png", b"x")
    server.files["/bad.zip"] = buf.getvalue()
    monkeypatch.setitem(F.DOWNLOADS, "bad", F.Download("bad", "datasets", server.url + "/bad.zip", "bad.zip", "test",
                                                      folder="Bad"))
    with pytest.raises(F.FetchError, match="outside the folder: refused"):
        F.fetch_dataset("bad", data_root=tmp_path / "root", log=lambda m: None, progress=False)
    assert not (tmp_path / "evil.png").exists()


def test_offline_is_one_line_saying_what_to_download_and_where(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _pin(monkeypatch, "nrqm", url=f"http://127.0.0.1:{port}/NRQM_model.mat")
    result = CliRunner().invoke(main, ["fetch", "weights", "nrqm", "--weights-dir", str(tmp_path)])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert f"http://127.0.0.1:{port}/NRQM_model.mat" in line and f"put it at {tmp_path / 'NRQM_model.mat'}" in line


def test_fetch_lists_what_it_knows_and_refuses_unknown_names(tmp_path):
    listing = CliRunner().invoke(main, ["fetch", "weights"])
    assert listing.exit_code == 0
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in listing.output
    unknown = CliRunner().invoke(main, ["fetch", "weights", "resnet", "--weights-dir", str(tmp_path)])
    assert unknown.exit_code == 1 and "unknown weights 'resnet'; srbench fetch weights knows: nrqm" in unknown.output
