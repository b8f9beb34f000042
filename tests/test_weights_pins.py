"""Weights files behind metric values (issue 21, item 1): checked against their pins at run time, and part of the
stored values' identity and provenance, as a checkpoint's hash is for models.

No real weights can be downloaded here: the files are stand-ins (NRQM models of the real one's structure from
srbench.metrics.nrqm_synthetic; a random AlexNet feature state dict under torchvision's file name), and a file is
made "the pinned one" by pinning its hash (the ledger ``srbench fetch`` writes, or a patched ``downloads.DOWNLOADS``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

import srbench
from srbench import datasets as D
from srbench import downloads as DL
from srbench.cli import main
from srbench.errors import SrbenchError
from srbench.evaluation import evaluate_model
from srbench.images import read_image, write_png
from srbench.matlab import rgb2y
from srbench.metrics import nrqm as N
from srbench.metrics.nrqm_synthetic import write_model_around
from srbench.report import tidy_from_store
from srbench.sources import open_source
from srbench.store import Store

ALLOW = "SRBENCH_ALLOW_UNPINNED_WEIGHTS"
CROPS = {"baby": (200, 240), "bird": (200, 200)}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    for name, (h, w) in CROPS.items():
        write_png(root / f"{name}.png", read_image(shared_data / f"benchmark/Set5/HR/{name}.png")[:h, :w])
    return root


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory):
    """Two stand-in NRQM models (A and B: other trees, so other scores) of the real file's structure."""
    planes = [rgb2y(read_image(p)).astype(np.float64) for p in sorted(tiny.glob("*.png"))]
    folder = tmp_path_factory.mktemp("models")
    for name, seed in (("A", 1), ("B", 2)):
        write_model_around(folder / f"{name}.mat", planes, n_samples=120, n_trees=6, seed=seed, sample_seed=seed)
    return folder


@pytest.fixture
def weights(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(folder))
    monkeypatch.delenv(ALLOW, raising=False)
    return folder


def _install(models, which: str, weights) -> str:
    """Model ``which`` as the weights folder's NRQM_model.mat (a new file, as a user replacing it); its sha256."""
    dest = weights / N.NRQM_FILENAME
    tmp = weights / "incoming.mat"
    shutil.copyfile(models / f"{which}.mat", tmp)
    tmp.replace(dest)
    return _sha(dest)


def _pin_recorded(weights, sha: str) -> None:
    """The pin ``srbench fetch weights nrqm`` records at its first download (pyiqa publishes no hash)."""
    (weights / DL.LEDGER).write_text(json.dumps({N.NRQM_FILENAME: {"sha256": sha, "url": "x"}}))


def _ma(tiny, weights, store=None, **kwargs):
    (res,) = evaluate_model("bicubic", [str(tiny)], protocol="pirm", metrics=["ma", "pi"], weights_dir=str(weights),
                            workers=1, store=store, suite="s" if store is not None else None, **kwargs)
    return res


def _stored(path) -> list[tuple[str, str, float]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT metric, metric_version, value FROM metric_values WHERE metric IN ('ma', 'pi') "
                            "ORDER BY image, metric").fetchall()


# -- pins ---------------------------------------------------------------------------------------------------------
def test_a_file_that_is_not_the_recorded_pin_is_refused_in_one_line_naming_file_pin_hash_and_fix(
        tiny, models, weights, tmp_path):
    sha_a = _sha(models / "A.mat")
    sha_b = _install(models, "B", weights)
    _pin_recorded(weights, sha_a)
    store = tmp_path / "s.sqlite"
    res = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", str(tiny), "--protocol", "pirm",
                                    "--metrics", "ma", "--weights-dir", str(weights), "--store", str(store),
                                    "--workers", "1"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), res.stderr
    line = errors[0]
    for part in (str(weights / N.NRQM_FILENAME), sha_b, f"pinned {sha_a}", "srbench fetch weights nrqm", f"{ALLOW}=1"):
        assert part in line, (part, line)
    assert not store.exists() or _stored(store) == []  # refused before anything was computed


def test_a_file_not_the_pinned_prefix_of_the_table_is_refused(tiny, models, weights, monkeypatch):
    """The pin table itself (downloads.DOWNLOADS) patched so that model A is "the pinned one", by a prefix as the file
    names of torchvision carry."""
    sha_a = _sha(models / "A.mat")
    monkeypatch.setitem(DL.DOWNLOADS, "nrqm", dataclasses.replace(DL.DOWNLOADS["nrqm"], sha256=sha_a[:8]))
    _install(models, "B", weights)
    with pytest.raises(SrbenchError, match=f"is not the pinned {sha_a[:8]}: "):
        _ma(tiny, weights)
    _install(models, "A", weights)
    res = _ma(tiny, weights)
    assert res.provenance["weights"]["ma"] == [{"file": str(weights / N.NRQM_FILENAME), "sha256": sha_a,
                                                "pin": sha_a[:8], "pinned": True}]
    assert math.isfinite(res.summary["ma"])


def test_opt_in_computes_and_records_the_unpinned_files_hash(tiny, models, weights, tmp_path, monkeypatch):
    _pin_recorded(weights, _sha(models / "A.mat"))
    sha_b = _install(models, "B", weights)
    monkeypatch.setenv(ALLOW, "1")
    store = tmp_path / "s.sqlite"
    with Store(store) as s:
        res = _ma(tiny, weights, store=s)
        runs = s.runs()
    assert res.provenance["weights"]["ma"] == [{"file": str(weights / N.NRQM_FILENAME), "sha256": sha_b,
                                                "pin": _sha(models / "A.mat"), "pinned": False}]
    assert math.isfinite(res.summary["ma"])
    assert json.loads(runs[0]["config"])["weights"]["ma"][0]["sha256"] == sha_b  # the store's provenance too
    # Every stored Ma and PI value names the file it was made with.
    assert {v for _, v, _ in _stored(store)} == {f"native-1@{sha_b}", f"pirm2018-1+live-2+native-1@{sha_b}"}


def test_the_api_metric_function_checks_the_pin_too(tiny, models, weights):
    _pin_recorded(weights, _sha(models / "A.mat"))
    _install(models, "B", weights)
    img = read_image(tiny / "baby.png")
    with pytest.raises(SrbenchError, match="srbench fetch weights nrqm"):
        srbench.metric("ma")(img)
    _install(models, "A", weights)
    assert math.isfinite(srbench.metric("ma")(img))


# -- the store's key --------------------------------------------------------------------------------------------
def test_a_replaced_weights_file_is_recomputed_not_answered_from_the_store(tiny, models, weights, tmp_path):
    store = tmp_path / "s.sqlite"
    sha_a = _install(models, "A", weights)
    with Store(store) as s:
        first = _ma(tiny, weights, store=s)
    sha_b = _install(models, "B", weights)
    fresh_b = _ma(tiny, weights)  # no store: model B's own numbers
    assert fresh_b.summary["ma"] != first.summary["ma"]  # the two files give different values
    with Store(store) as s:
        second = _ma(tiny, weights, store=s)
        rows = s.values("s")
    assert second.provenance["cached_images"] == 0
    assert second.summary["ma"] == fresh_b.summary["ma"] and second.summary["pi"] == fresh_b.summary["pi"]
    assert second.provenance["weights"]["ma"][0]["sha256"] == sha_b
    # Tables read the newest run's values, never model A's nor a mixture; each row says which file made it.
    tidy = tidy_from_store(rows).set_index("metric")
    assert tidy.loc["ma", "value"] == pytest.approx(fresh_b.summary["ma"], abs=1e-12)
    assert {r["weights"] for r in rows if r["metric"] == "ma"} == {f"@{sha_b}"}
    # Model A's values stay stored: the same file again reuses them.
    _install(models, "A", weights)
    with Store(store) as s:
        again = _ma(tiny, weights, store=s)
    assert again.provenance["cached_images"] == len(CROPS) and again.summary["ma"] == first.summary["ma"]
    assert {v for _, v, _ in _stored(store)} >= {f"native-1@{sha_a}", f"native-1@{sha_b}"}
    # ... and tables show them again: the run that reused them is the newest (they showed model B's, A -> B -> A)
    with Store(store) as s:
        rows = s.values("s")
    assert {r["weights"] for r in rows if r["metric"] == "ma"} == {f"@{sha_a}"}
    assert tidy_from_store(rows).set_index("metric").loc["ma", "value"] == pytest.approx(first.summary["ma"],
                                                                                          abs=1e-12)


def test_values_stored_before_weights_were_in_the_key_are_recomputed(tiny, models, weights, tmp_path):
    """A store written by an srbench that keyed Ma by its implementation version alone: that value is not returned
    (nothing says which file made it), the file's own is computed."""
    store = tmp_path / "s.sqlite"
    _install(models, "A", weights)
    fresh = _ma(tiny, weights)
    with Store(store) as s:
        source = open_source("bicubic")
        dataset_key = D.resolve(str(tiny)).fingerprint()
        for image in CROPS:
            s.put(source.key, dataset_key, "pirm", 4, image, {"ma": 1.25, "pi": 2.5},
                  {"ma": "native-1", "pi": "pirm2018-1+live-2+native-1"}, None)
        res = _ma(tiny, weights, store=s)
    assert res.provenance["cached_images"] == 0
    assert res.summary["ma"] == fresh.summary["ma"] != 1.25


def test_a_file_is_hashed_once_per_version_of_it(models, tmp_path, monkeypatch):
    from srbench import images
    from srbench import weights as Wt

    calls = []
    real = images.file_sha256
    monkeypatch.setattr(images, "file_sha256", lambda p: calls.append(p) or real(p))
    path = tmp_path / N.NRQM_FILENAME
    shutil.copyfile(models / "A.mat", path)
    assert Wt.sha256(path) == Wt.sha256(path) == _sha(path) and len(calls) == 1
    shutil.copyfile(models / "B.mat", tmp_path / "new.mat")
    (tmp_path / "new.mat").replace(path)
    assert Wt.sha256(path) == _sha(models / "B.mat") and len(calls) == 2


# -- LPIPS's AlexNet, by torchvision's pin ------------------------------------------------------------------------
ALEX_FEATURES = {0: (3, 64, 11), 3: (64, 192, 5), 6: (192, 384, 3), 8: (384, 256, 3), 10: (256, 256, 3)}


def _alexnet_state(seed: int) -> dict:
    """A valid AlexNet feature state dict (torchvision's key names and shapes), randomly initialised."""
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for index, (cin, cout, k) in ALEX_FEATURES.items():
        state[f"features.{index}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(cout)
    return state


def _first_layer_distance(x) -> float:
    """A stand-in for LPIPS's network (the lpips package is not installed here) that depends on the backbone
    file as LPIPS does: the mean squared difference of the first AlexNet layer's responses."""
    import torch

    from srbench.metrics.lpips_alex import alexnet_path
    from srbench.weightfiles import read_weights

    state = read_weights(alexnet_path(x.weights_dir))
    w, b = state["features.0.weight"], state["features.0.bias"]

    def features(img):
        t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        return torch.nn.functional.conv2d(t, w, b, stride=4, padding=2)

    return float(((features(x.sr_plane()) - features(x.hr_plane())) ** 2).mean())


@pytest.fixture
def lpips_stand_in():
    from srbench.metrics import get_metric, temporarily

    with temporarily(dataclasses.replace(get_metric("lpips"), compute=_first_layer_distance, torch_compute=None)):
        yield


def _save_alexnet(weights, seed: int) -> str:
    import torch

    path = weights / "alexnet-owt-7be5be79.pth"
    torch.save(_alexnet_state(seed), weights / "incoming.pth")
    (weights / "incoming.pth").replace(path)
    return _sha(path)


def _lpips(tiny, weights, store=None):
    (res,) = evaluate_model("bicubic", [str(tiny)], metrics=["lpips"], weights_dir=str(weights), workers=1, store=store)
    return res


def test_an_alexnet_that_is_not_torchvisions_is_refused_then_opt_in_keys_the_store_by_it(
        tiny, weights, lpips_stand_in, tmp_path, monkeypatch):
    sha_1 = _save_alexnet(weights, 1)
    assert not sha_1.startswith("7be5be79")  # a random network is not torchvision's file
    with pytest.raises(SrbenchError) as err:
        _lpips(tiny, weights)
    assert str(err.value) == (
        f"{weights / 'alexnet-owt-7be5be79.pth'}: sha256 {sha_1} is not the pinned 7be5be79: not the weights "
        "srbench's numbers are made with; replace it with `srbench fetch weights alexnet` (after moving this file "
        f"away), or set {ALLOW}=1 to use it anyway (its sha256 is then recorded with every value)")
    monkeypatch.setenv(ALLOW, "1")
    store = tmp_path / "s.sqlite"
    with Store(store) as s:
        first = _lpips(tiny, weights, store=s)
        sha_2 = _save_alexnet(weights, 2)
        second = _lpips(tiny, weights, store=s)
    fresh = _lpips(tiny, weights)
    assert first.provenance["weights"]["lpips"][0] == {"file": str(weights / "alexnet-owt-7be5be79.pth"),
                                                       "sha256": sha_1, "pin": "7be5be79", "pinned": False}
    assert second.provenance["weights"]["lpips"][0]["sha256"] == sha_2
    assert second.provenance["cached_images"] == 0
    assert second.summary["lpips"] == fresh.summary["lpips"] != first.summary["lpips"]


def test_the_issue_case_real_lpips_with_another_alexnet_state_dict(tiny, weights, tmp_path, monkeypatch):
    """LPIPS itself (the lpips package, where installed) with valid AlexNet state dicts that are not
    torchvision's: refused; with the opt-in, each file gives its own stored value."""
    pytest.importorskip("lpips")
    sha_1 = _save_alexnet(weights, 1)
    with pytest.raises(SrbenchError, match=f"sha256 {sha_1} is not the pinned 7be5be79"):
        _lpips(tiny, weights)
    monkeypatch.setenv(ALLOW, "1")
    with Store(tmp_path / "s.sqlite") as s:
        first = _lpips(tiny, weights, store=s)
        _save_alexnet(weights, 2)
        second = _lpips(tiny, weights, store=s)
    fresh = _lpips(tiny, weights)
    assert second.provenance["cached_images"] == 0
    assert second.summary["lpips"] == fresh.summary["lpips"] != first.summary["lpips"]


def test_the_cli_flag_and_the_api_parameter_are_the_same_opt_in_for_their_run_only(tiny, models, weights):
    import os

    _pin_recorded(weights, _sha(models / "A.mat"))
    sha_b = _install(models, "B", weights)
    args = ["evaluate", "--model", "bicubic", "--dataset", str(tiny), "--protocol", "pirm", "--metrics", "ma",
            "--weights-dir", str(weights), "--workers", "1", "--json"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "srbench fetch weights nrqm" in refused.stderr
    allowed = CliRunner().invoke(main, [*args, "--allow-unpinned-weights"])
    assert allowed.exit_code == 0, allowed.output
    (row,) = json.loads(allowed.stdout)
    assert row["provenance"]["weights"]["ma"][0]["sha256"] == sha_b and math.isfinite(row["ma"])
    assert ALLOW not in os.environ  # the flag held for that command only
    res = srbench.evaluate("bicubic", str(tiny), protocol="pirm", metrics=["ma"], weights_dir=weights, workers=1,
                           allow_unpinned_weights=True)
    assert res.summary.set_index("metric").loc["ma", "value"] == pytest.approx(row["ma"], abs=1e-12)
    assert ALLOW not in os.environ
    with pytest.raises(SrbenchError, match="srbench fetch weights nrqm"):
        srbench.evaluate("bicubic", str(tiny), protocol="pirm", metrics=["ma"], weights_dir=weights, workers=1)
