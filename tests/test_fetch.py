"""``srbench fetch`` against a local HTTP server (http.server in a thread) serving fixture files: resume after a
cut connection, a wrong hash refused, an archive unpacked into srbench's layout, the offline error."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from click.testing import CliRunner

from srbench import downloads as DL
from srbench import fetch as F
from srbench import paths
from srbench.cli import main


class _Server:
    """Files by path; ``cut`` (path -> bytes) ends the next response for that path after so many bytes; ``chunked``
    paths are sent in the chunked transfer encoding, their first half as one whole chunk, then the cut."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.chunked: set[str] = set()
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
                if self.path in server.chunked:
                    self._chunked(body)
                    return
                start = int(asked.removeprefix("bytes=").split("-")[0]) if asked else 0
                self.send_response(206 if asked else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                limit = server.cut.pop(self.path, None)
                self.wfile.write(body[start:] if limit is None else body[start:start + limit])
                if limit is not None:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the connection breaks mid-file

            def _chunked(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                half = len(body) // 2
                self.wfile.write(b"%x\r\n%s\r\n%x\r\n" % (half, body[:half], len(body) - half))
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # the second chunk never comes

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()


def _pin(monkeypatch, name, **changes) -> DL.Download:
    download = dataclasses.replace(DL.DOWNLOADS[name], **changes)
    monkeypatch.setitem(DL.DOWNLOADS, name, download)
    return download


@pytest.fixture(autouse=True)
def _no_progress_bar(monkeypatch):
    """tqdm's bar shares the CLI's output, without a newline before the next line: no bar, so lines are lines."""
    monkeypatch.setattr(F._bar, "__enter__", lambda self: None)


def _said(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


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


def _nrqm_model(linear: float) -> bytes:
    """A structurally valid NRQM model file (one split per forest; ``linear`` tells two apart)."""
    from scipy.io import savemat

    forests = np.empty((1, 3), dtype=object)
    for i in range(3):
        forests[0, i] = {
            "ldau": np.array([[2], [0], [0]], np.int32), "rdau": np.array([[3], [0], [0]], np.int32),
            "unused1": np.zeros((3, 1)), "unused2": np.zeros((3, 1)), "threshold": np.array([[0.5], [0], [0]]),
            "pred": np.array([[0.0], [2.0], [6.0]]), "best_attri": np.array([[1], [1], [1]], np.int32),
        }
    buf = io.BytesIO()
    savemat(buf, {"model": {"linear": np.array([[linear], [0.3], [0.3], [0.4]]), "rf": forests}})
    return buf.getvalue()


def test_without_a_published_hash_the_first_download_is_recorded_and_then_required(server, monkeypatch, tmp_path):
    v1 = _nrqm_model(0.5)
    server.files["/NRQM_model.mat"] = v1
    _pin(monkeypatch, "nrqm", url=server.url + "/NRQM_model.mat")
    said: list[str] = []
    F.fetch_weights("nrqm", weights_dir=tmp_path, log=said.append, progress=False)
    digest = hashlib.sha256(v1).hexdigest()
    assert any(f"recorded sha256 {digest}" in line for line in said)
    assert json.loads((tmp_path / DL.LEDGER).read_text())["NRQM_model.mat"]["sha256"] == digest
    (tmp_path / "NRQM_model.mat").unlink()
    server.files["/NRQM_model.mat"] = _nrqm_model(0.25)  # the file changed upstream
    with pytest.raises(F.FetchError, match="is not the pinned"):
        F.fetch_weights("nrqm", weights_dir=tmp_path, log=lambda m: None, progress=False)


def test_a_first_download_without_a_published_hash_is_read_before_it_is_recorded(server, monkeypatch, tmp_path):
    """An HTML error page (what a proxy answers) must not become the reference every later download is held to."""
    server.files["/NRQM_model.mat"] = b"<html>Service unavailable</html>"
    _pin(monkeypatch, "nrqm", url=server.url + "/NRQM_model.mat")
    result = CliRunner().invoke(main, ["fetch", "weights", "nrqm", "--weights-dir", str(tmp_path / "w")])
    assert result.exit_code == 1
    (line,) = _said(result)
    assert line.startswith("error: ")
    assert "not an NRQM model file" in line and "refused and deleted" in line and "nothing was installed" in line
    assert list(tmp_path.iterdir()) == []  # no file, no ledger, not even the folder


def test_a_dataset_archive_is_unpacked_into_srbenchs_layout(server, monkeypatch, tmp_path, shared_data):
    from srbench import datasets as D

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # the set inside an extra top folder, as archives often are
        for name in ("baby", "bird"):
            z.write(shared_data / f"benchmark/Set5/HR/{name}.png", f"testsets/Set5/HR/{name}.png")
    server.files["/Set5.zip"] = buf.getvalue()
    download = DL.Download("set5", "datasets", server.url + "/Set5.zip", "Set5.zip", "test", folder="Set5")
    monkeypatch.setitem(DL.DOWNLOADS, "set5", download)
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
    monkeypatch.setitem(DL.DOWNLOADS, "bad", DL.Download("bad", "datasets", server.url + "/bad.zip", "bad.zip", "test",
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


def _benchmark_tar(shared_data) -> bytes:
    """The EDSR benchmark archive's shape: benchmark/<Set>/HR and LR_bicubic/X4 for two sets in one tar."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("baby", "bird"):
            tar.add(shared_data / f"benchmark/Set5/HR/{name}.png", f"benchmark/Set5/HR/{name}.png")
            tar.add(shared_data / f"benchmark/Set5/LR_bicubic/X4/{name}x4.png",
                    f"benchmark/Set5/LR_bicubic/X4/{name}x4.png")
        tar.add(shared_data / "benchmark/Set14/HR/baboon.png", "benchmark/Set14/HR/baboon.png")
    return buf.getvalue()


def test_sets_sharing_one_archive_download_it_once_and_land_where_named_datasets_are_found(server, monkeypatch,
                                                                                          tmp_path, shared_data):
    from srbench import datasets as D

    body = _benchmark_tar(shared_data)
    server.files["/benchmark.tar"] = body
    md5 = hashlib.md5(body).hexdigest()
    for name in ("set5", "set14"):
        _pin(monkeypatch, name, url=server.url + "/benchmark.tar", md5=md5)
    quiet = dict(data_root=tmp_path, log=lambda m: None, progress=False)
    assert F.fetch_dataset("set5", **quiet) == tmp_path / "benchmark/Set5"
    assert F.fetch_dataset("set14", **quiet) == tmp_path / "benchmark/Set14"
    assert server.ranges == [None]  # one download for both
    ds = D.resolve("set5", str(tmp_path))
    assert ds.layout == "benchmark" and [it.name for it in ds.items] == ["baby", "bird"]
    assert [it.name for it in D.resolve("set14", str(tmp_path)).items] == ["baboon"]
    # The data root holds the sets only (no leftover unpack folder, no archive); the archive waits in the cache's
    # downloads folder with its sha256 (only an md5 is published) recorded at first download.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmark"]
    downloads = paths.downloads_dir()
    assert sorted(p.name for p in downloads.iterdir()) == ["benchmark.tar", DL.LEDGER]
    assert (json.loads((downloads / DL.LEDGER).read_text())["benchmark.tar"]["sha256"]
            == hashlib.sha256(body).hexdigest())


def test_a_wrong_md5_is_refused_like_a_wrong_sha256(server, monkeypatch, tmp_path, shared_data):
    server.files["/benchmark.tar"] = _benchmark_tar(shared_data)
    _pin(monkeypatch, "set5", url=server.url + "/benchmark.tar")  # the pinned md5 is the real archive's
    with pytest.raises(F.FetchError, match=f"md5 .* is not the pinned {DL.DOWNLOADS['set5'].md5}: refused"):
        F.fetch_dataset("set5", data_root=tmp_path / "data", log=lambda m: None, progress=False)
    assert list(tmp_path.iterdir()) == [] and not paths.downloads_dir().exists()  # nothing left, no empty folder


def test_a_published_checkpoint_is_fetched_then_used_by_name(server, monkeypatch, tmp_path):
    """The file lands in the weights folder under its published name, and ``--model esrgan-official`` loads it
    with the published layout (here a BasicSR-named smoke RRDB standing in for the 67 MB release)."""
    import torch

    from srbench.archs import get_generator
    from srbench.sources import open_source

    generator = get_generator("rrdb23-smoke").build()
    buf = io.BytesIO()
    torch.save({"params_ema": generator.state_dict()}, buf)  # BasicSR's container
    body = buf.getvalue()
    server.files["/esrgan.pth"] = body
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    _pin(monkeypatch, "esrgan-official", url=server.url + "/esrgan.pth", variant="rrdb23-smoke",
         sha256=hashlib.sha256(body).hexdigest()[:8])
    with pytest.raises(F.FetchError, match="run `srbench fetch weights esrgan-official`"):
        open_source("esrgan-official")
    path = F.fetch_weights("esrgan-official", log=lambda m: None, progress=False)
    assert path == tmp_path / DL.DOWNLOADS["esrgan-official"].filename
    source = open_source("esrgan-official")
    assert source.name == "esrgan-official" and source.info["sha256"] == hashlib.sha256(body).hexdigest()
    lr = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with torch.no_grad():
        want = generator.eval()(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)
    got = source.runner.upscale(lr)
    assert got.shape == (32, 32, 3)
    assert np.array_equal(got, (want[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy())


def test_a_checkpoint_without_a_direct_download_says_where_to_get_it_and_what_to_fetch_instead(tmp_path):
    result = CliRunner().invoke(main, ["fetch", "weights", "rrdb-psnr", "--weights-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert ("has no direct download (xinntao/ESRGAN models/README.md: Google Drive or Baidu links only): download it "
            f"there and put it at {tmp_path / 'RRDB_PSNR_x4.pth'}; `srbench fetch weights rrdb-psnr-mmagic`"
            in result.output)
    assert list(tmp_path.iterdir()) == []


def _unreachable() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_an_offline_dataset_fetch_is_one_line_naming_where_the_set_goes_and_leaves_nothing(monkeypatch, tmp_path):
    """No data root given: the set goes to the default one, paths' DATASETS_DIR (here a stand-in for the checkout's
    datasets/), which must hold nothing after the failure; nor the working folder, nor the downloads folder."""
    checkout = tmp_path / "checkout" / "datasets"
    checkout.mkdir(parents=True)
    (checkout / "set5.json").write_text("{}")
    monkeypatch.setattr(paths, "DATASETS_DIR", checkout)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    url = _unreachable() + "/benchmark.tar"
    _pin(monkeypatch, "set5", url=url)
    result = CliRunner().invoke(main, ["fetch", "datasets", "set5"])
    assert result.exit_code == 1
    (line,) = _said(result)
    assert line.startswith(f"error: cannot download set5 from {url} (") and "nothing was installed" in line
    assert (f"put it at {paths.downloads_dir() / 'benchmark.tar'}" in line
            and f"into {checkout / 'benchmark/Set5'}, where srbench looks for set5" in line)
    assert ".downloads" not in line
    assert [p.name for p in checkout.iterdir()] == ["set5.json"] and list(work.iterdir()) == []
    assert not paths.downloads_dir().exists()


def test_a_failed_weights_fetch_removes_the_folders_it_made(monkeypatch, tmp_path):
    url = _unreachable() + "/vgg.pth"
    _pin(monkeypatch, "vgg19", url=url)
    result = CliRunner().invoke(main, ["fetch", "weights", "vgg19", "--weights-dir", str(tmp_path / "new" / "w")])
    assert result.exit_code == 1
    (line,) = _said(result)
    assert "nothing was installed" in line and f"put it at {tmp_path / 'new/w/vgg19-dcbb9e9d.pth'}" in line
    assert list(tmp_path.iterdir()) == []


def test_a_connection_cut_before_any_byte_leaves_no_empty_part(server, monkeypatch, tmp_path):
    server.files["/vgg.pth"] = b"x" * 1000
    server.cut["/vgg.pth"] = 0
    _pin(monkeypatch, "vgg19", url=server.url + "/vgg.pth", sha256=hashlib.sha256(b"x" * 1000).hexdigest()[:8])
    with pytest.raises(F.FetchError, match="nothing was installed") as caught:
        F.fetch_weights("vgg19", weights_dir=tmp_path / "w", log=lambda m: None, progress=False)
    assert "resume" not in str(caught.value)  # nothing to resume from
    assert list(tmp_path.iterdir()) == []


def test_a_cut_download_says_which_part_file_it_keeps_to_resume_from(server, monkeypatch, tmp_path):
    body = np.random.default_rng(2).bytes(2 * F.CHUNK)
    server.files["/vgg.pth"], server.cut["/vgg.pth"] = body, F.CHUNK
    _pin(monkeypatch, "vgg19", url=server.url + "/vgg.pth", sha256=hashlib.sha256(body).hexdigest()[:8])
    with pytest.raises(F.FetchError) as caught:
        F.fetch_weights("vgg19", weights_dir=tmp_path, log=lambda m: None, progress=False)
    part = tmp_path / ".vgg19-dcbb9e9d.pth.part"
    assert f"the partial download {part} is kept: run the same command again to resume" in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == [part.name]


def _one_image_set5() -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("benchmark/Set5/HR/baby.png")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"fake"))
    return buf.getvalue()


def test_an_archive_already_in_the_downloads_folder_is_checked_against_its_pinned_hash(server, monkeypatch,
                                                                                      tmp_path):
    fake = _one_image_set5()
    archive = paths.downloads_dir() / "benchmark.tar"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(fake)
    _pin(monkeypatch, "set5", url=server.url + "/benchmark.tar")  # served by nobody: it must not be needed
    result = CliRunner().invoke(main, ["fetch", "datasets", "set5", "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 1
    (line,) = _said(result)
    assert line == (f"error: {archive}: md5 {hashlib.md5(fake).hexdigest()} is not the pinned "
                    f"{DL.DOWNLOADS['set5'].md5}: nothing was installed (a changed or corrupted archive: delete it and "
                    "fetch again)")
    assert list(tmp_path.iterdir()) == [] and archive.read_bytes() == fake  # not ours to delete


@pytest.mark.parametrize("name", ["nrqm", "alexnet"])
def test_a_bad_weights_file_already_there_is_reported_not_accepted(name, tmp_path):
    """nrqm has no published hash and nothing recorded: the file is read as a model; alexnet's is pinned."""
    dest = tmp_path / DL.DOWNLOADS[name].filename
    dest.write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["fetch", "weights", name, "--weights-dir", str(tmp_path)])
    assert result.exit_code == 1
    (line,) = _said(result)
    assert line.startswith("error: ") and str(dest) in line and "not accepted" in line
    if name == "alexnet":
        assert f"sha256 {hashlib.sha256(b'garbage').hexdigest()} is not the pinned 7be5be79" in line
    else:
        assert "not an NRQM model file" in line
    assert dest.read_bytes() == b"garbage"


def test_weights_already_there_are_accepted_by_their_recorded_hash_or_by_reading_them(tmp_path):
    dest = tmp_path / "NRQM_model.mat"
    dest.write_bytes(_nrqm_model(0.5))
    said: list[str] = []
    F.fetch_weights("nrqm", weights_dir=tmp_path, log=said.append, progress=False)
    assert said == [f"nrqm: {dest} is there (read as an NRQM model; no published hash to check)"]
    (tmp_path / DL.LEDGER).write_text(json.dumps({"NRQM_model.mat": {"sha256": "0" * 64}}))
    with pytest.raises(F.FetchError, match=rf"sha256 {hashlib.sha256(dest.read_bytes()).hexdigest()} is not the "
                                           rf"pinned 0{{64}}"):
        F.fetch_weights("nrqm", weights_dir=tmp_path, log=lambda m: None, progress=False)


def test_an_installed_set_is_verified_before_it_is_called_there(server, monkeypatch, tmp_path, shared_data):
    server.files["/benchmark.tar"] = body = _benchmark_tar(shared_data)
    _pin(monkeypatch, "set5", url=server.url + "/benchmark.tar", md5=hashlib.md5(body).hexdigest())
    set5 = tmp_path / "benchmark/Set5"
    args = ["fetch", "datasets", "set5", "--data-root", str(tmp_path)]
    assert CliRunner().invoke(main, args).exit_code == 0
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and f"set5: {set5} is there (verified: the 4 files unpacked from benchmark.tar)" in \
        _said(again)
    (set5 / "HR/bird.png").unlink()
    (set5 / "HR/baby.png").write_bytes((shared_data / "benchmark/Set5/HR/head.png").read_bytes())
    broken = CliRunner().invoke(main, args)
    assert broken.exit_code == 1
    (line,) = _said(broken)
    assert line == (f"error: {set5} is there but is not what srbench fetch installed from benchmark.tar (1 missing "
                    "(HR/bird.png); 1 changed (HR/baby.png)): move it away and fetch again")


def test_a_set_put_there_by_hand_is_there_only_when_it_is_a_known_copy(server, tmp_path, shared_data):
    import shutil

    set5 = tmp_path / "benchmark/Set5"
    shutil.copytree(shared_data / "benchmark/Set5", set5)
    args = ["fetch", "datasets", "set5", "--data-root", str(tmp_path)]
    fine = CliRunner().invoke(main, args)
    assert fine.exit_code == 0
    assert _said(fine) == [f"set5: {set5} is there (verified: identical to the known copy 'benchmark' of set5, 25 "
                           "files)"]
    (set5 / "LR_bicubic/X4/birdx4.png").unlink()
    broken = CliRunner().invoke(main, args)
    assert broken.exit_code == 1
    (line,) = _said(broken)
    assert line.startswith(f"error: {set5} is there but was not installed by srbench fetch and is not a known copy "
                           "of set5 (against set5 copy 'benchmark': 24 identical, 1 missing;")


def test_a_fetch_into_the_default_data_root_leaves_its_manifests_readable(server, monkeypatch, tmp_path,
                                                                          shared_data):
    """A data root holding manifests (as a checkout's datasets/ did before they became package data): a fetch must
    not add a JSON file there, and ``srbench datasets verify`` still knows the fetched copy."""
    import shutil

    checkout = tmp_path / "datasets"
    checkout.mkdir()
    for manifest in paths.MANIFESTS_DIR.glob("*.json"):
        shutil.copy(manifest, checkout)
    monkeypatch.setattr(paths, "DATASETS_DIR", checkout)
    server.files["/benchmark.tar"] = body = _benchmark_tar(shared_data)
    _pin(monkeypatch, "set5", url=server.url + "/benchmark.tar", md5=hashlib.md5(body).hexdigest())
    result = CliRunner().invoke(main, ["fetch", "datasets", "set5"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in checkout.iterdir()) == ["benchmark", "bsd100.json", "set14.json", "set5.json",
                                                          "urban100.json"]
    verify = CliRunner().invoke(main, ["datasets", "verify", str(checkout / "benchmark/Set5")])
    assert verify.output.startswith(f"{checkout / 'benchmark/Set5'}: set5 / copy 'benchmark'")


def test_a_weights_folder_that_is_a_file_is_one_line(monkeypatch, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(afile))
    result = CliRunner().invoke(main, ["fetch", "weights", "vgg19"])
    assert result.exit_code == 1
    assert _said(result) == [f"error: SRBENCH_WEIGHTS must be a folder, but {afile} is a file"]


def test_a_chunked_download_cut_midway_is_one_line_not_a_traceback(server, monkeypatch, tmp_path):
    body = b"y" * 1000
    server.files["/vgg.pth"] = body
    server.chunked.add("/vgg.pth")
    _pin(monkeypatch, "vgg19", url=server.url + "/vgg.pth", sha256=hashlib.sha256(body).hexdigest()[:8])
    result = CliRunner().invoke(main, ["fetch", "weights", "vgg19", "--weights-dir", str(tmp_path / "w")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    (line,) = _said(result)
    assert line.startswith(f"error: cannot download vgg19 from {server.url}/vgg.pth (IncompleteRead(")
    assert "nothing was installed" in line and list(tmp_path.iterdir()) == []


def test_an_archive_whose_set_holds_no_images_installs_nothing(server, monkeypatch, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("Set5/HR/readme.txt", b"images removed")
    server.files["/Set5.zip"] = buf.getvalue()
    monkeypatch.setitem(DL.DOWNLOADS, "set5", DL.Download("set5", "datasets", server.url + "/Set5.zip", "Set5.zip",
                                                        "test", folder="Set5"))
    result = CliRunner().invoke(main, ["fetch", "datasets", "set5", "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert _said(result) == [f"error: {paths.downloads_dir() / 'Set5.zip'}: its folder 'Set5' holds no image files; "
                             "nothing was installed"]
    assert list(tmp_path.iterdir()) == [] and not paths.downloads_dir().exists()


def test_an_installed_set_that_another_copy_hides_says_which_one_srbench_reads(server, monkeypatch, tmp_path,
                                                                              shared_data):
    server.files["/benchmark.tar"] = body = _benchmark_tar(shared_data)
    _pin(monkeypatch, "set5", url=server.url + "/benchmark.tar", md5=hashlib.md5(body).hexdigest())
    args = ["fetch", "datasets", "set5", "--data-root", str(tmp_path)]
    first = CliRunner().invoke(main, args)
    assert _said(first)[-1] == f"set5: installed {tmp_path / 'benchmark/Set5'}, where srbench looks for set5"
    import shutil

    shutil.rmtree(tmp_path / "benchmark")
    shutil.copytree(shared_data / "benchmark/Set5/HR", tmp_path / "Set5/HR")  # found before benchmark/Set5
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0
    assert _said(second)[-1] == (f"set5: installed {tmp_path / 'benchmark/Set5'}; note: srbench reads set5 from "
                                 f"{tmp_path / 'Set5'}, found first: move that away to use this one")


def test_offline_with_a_part_from_an_earlier_cut_says_it_is_kept(monkeypatch, tmp_path):
    part = tmp_path / ".vgg19-dcbb9e9d.pth.part"
    part.write_bytes(b"z" * 100)
    _pin(monkeypatch, "vgg19", url=_unreachable() + "/vgg.pth")
    with pytest.raises(F.FetchError) as caught:
        F.fetch_weights("vgg19", weights_dir=tmp_path, log=lambda m: None, progress=False)
    assert str(caught.value).endswith(f"put it at {tmp_path / 'vgg19-dcbb9e9d.pth'}; the partial download {part} is "
                                      "kept: run the same command again to resume from it")
    assert part.read_bytes() == b"z" * 100


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _serve_set5(server, monkeypatch, body: bytes) -> None:
    server.files["/benchmark.tar"] = body
    _pin(monkeypatch, "set5", url=server.url + "/benchmark.tar", md5=hashlib.md5(body).hexdigest())


def test_a_tar_member_escaping_its_folder_is_one_line_and_the_data_root_made_for_it_is_removed(server, monkeypatch,
                                                                                              tmp_path, shared_data):
    png = (shared_data / "benchmark/Set5/HR/baby.png").read_bytes()
    _serve_set5(server, monkeypatch, _tar({"benchmark/Set5/HR/baby.png": png, "../evil.txt": b"x"}))
    result = CliRunner().invoke(main, ["fetch", "datasets", "set5", "--data-root", str(tmp_path / "new" / "root")])
    assert result.exit_code == 1
    (line,) = _said(result)
    assert "'../evil.txt'" in line and "refused; nothing was installed" in line
    assert list(tmp_path.iterdir()) == []  # nothing outside, and the folders the fetch made are gone


def test_an_archive_without_the_set_leaves_no_data_root_folder(server, monkeypatch, tmp_path, shared_data):
    _serve_set5(server, monkeypatch, _tar({"other/baby.png": (shared_data / "benchmark/Set5/HR/baby.png")
                                           .read_bytes()}))
    with pytest.raises(F.FetchError, match="holds no folder 'benchmark/Set5'; nothing was installed"):
        F.fetch_dataset("set5", data_root=tmp_path / "d" / "x", log=lambda m: None, progress=False)
    assert list(tmp_path.iterdir()) == []  # d/x was made for the unpacking: removed although d/x/benchmark never was


def test_a_data_root_that_cannot_be_written_is_refused_before_anything_is_downloaded(server, monkeypatch, tmp_path,
                                                                                     shared_data):
    from srbench import images
    from srbench.errors import OutputError

    def refused(folder):
        raise OutputError(f"cannot write to {folder}: Read-only file system")

    monkeypatch.setattr(images, "ensure_writable_dir", refused)
    _serve_set5(server, monkeypatch, _benchmark_tar(shared_data))
    with pytest.raises(F.FetchError, match="Read-only file system; nothing was downloaded or installed"):
        F.fetch_dataset("set5", data_root=tmp_path / "ro", log=lambda m: None, progress=False)
    assert server.ranges == [] and list(tmp_path.iterdir()) == []


def test_a_full_disk_while_unpacking_keeps_the_checked_archive_and_blames_the_disk(server, monkeypatch, tmp_path,
                                                                                   shared_data):
    import errno

    def full(archive, into):
        raise OSError(errno.ENOSPC, "No space left on device")

    _serve_set5(server, monkeypatch, _benchmark_tar(shared_data))
    untar = F._untar
    monkeypatch.setattr(F, "_untar", full)
    with pytest.raises(F.FetchError) as caught:
        F.fetch_dataset("set5", data_root=tmp_path / "d", log=lambda m: None, progress=False)
    said = str(caught.value)
    assert "No space left on device" in said and "the archive, whose hashes were checked, is kept" in said
    assert "delete it" not in said
    assert (paths.downloads_dir() / "benchmark.tar").is_file() and not (tmp_path / "d").exists()
    monkeypatch.setattr(F, "_untar", untar)  # space again: the kept archive is unpacked without a second download
    assert F.fetch_dataset("set5", data_root=tmp_path / "d", log=lambda m: None, progress=False).is_dir()
    assert server.ranges == [None]


def test_a_full_disk_while_downloading_is_not_called_a_broken_connection(server, monkeypatch, tmp_path):
    import errno

    body = b"x" * 5000
    server.files["/vgg.pth"] = body
    _pin(monkeypatch, "vgg19", url=server.url + "/vgg.pth", sha256=hashlib.sha256(body).hexdigest()[:8])

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(F.os, "fsync", full)
    with pytest.raises(F.FetchError) as caught:
        F.fetch_weights("vgg19", weights_dir=tmp_path, log=lambda m: None, progress=False)
    said = str(caught.value)
    assert "cannot write the download (No space left on device)" in said and "connection" not in said
    assert "free space" in said and not (tmp_path / "vgg19-dcbb9e9d.pth").exists()


def test_without_tarfiles_data_filter_links_and_escaping_members_are_refused(monkeypatch, tmp_path, shared_data):
    # Python 3.11.0-3.11.3 (Debian 12's 3.11.2) have no tarfile.data_filter: srbench's own checks stand in.
    import tarfile

    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    png = (shared_data / "benchmark/Set5/HR/baby.png").read_bytes()
    good = tmp_path / "good.tar"
    good.write_bytes(_tar({"benchmark/Set5/HR/baby.png": png}))
    F._untar(good, tmp_path / "out")
    assert (tmp_path / "out/benchmark/Set5/HR/baby.png").read_bytes() == png
    for name, body in [("escape.tar", _tar({"../evil.txt": b"x"})),
                       ("link.tar", _tar({}, links={"benchmark/Set5/HR/bird.png": "/etc/passwd"}))]:
        (tmp_path / name).write_bytes(body)
        with pytest.raises(F._UnsafeMember):
            F._untar(tmp_path / name, tmp_path / "out2")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out2").exists()


def test_a_data_variable_of_separators_only_is_as_if_unset(monkeypatch):
    monkeypatch.setenv(paths.DATA_ENV, os.pathsep)
    assert paths.data_roots() == [paths.default_data_root()]
