"""The training cache (srbench.train.cache) and what `srbench ablate` does with it: stages keyed by what determines
their weights, shared by suite entries with equal stage configurations, reused whatever --out is."""

from __future__ import annotations

import dataclasses
import json

import pytest

from srbench.train import cache as C
from srbench.train.config import data_fingerprints, resolve_config

DATA = {"train": "t" * 64, "val": None}


def _key(config, stage="psnr", init=None):
    return C.fingerprint(C.fingerprint_inputs(config, stage, data=DATA, init_sha256=init, device="cpu"))


def test_the_fingerprint_follows_what_changes_the_weights_and_nothing_else():
    base = resolve_config("srgan-nobn", "smoke")
    # The run's name, the log and checkpoint cadence and the data loader's workers change no weight.
    same = resolve_config({"variant": "srgan-nobn", "name": "other", "psnr": {"log_every": 3, "val_every": 7,
                                                                           "checkpoint_every": 5},
                           "data": {"workers": 2}}, "smoke")
    assert _key(same) == _key(base)
    # The psnr stage reads neither the gan section nor the gan-only losses: the ablation's psnr stages are shared.
    assert _key(resolve_config("srgan-nobn-preact-ragan", "smoke")) == _key(base)
    assert _key(resolve_config("srgan-nobn-preact-ragan", "smoke"), "gan", "i" * 64) != _key(base, "gan", "i" * 64)
    for changed in ({"seed": 1}, {"psnr": {"lr": 1e-4}}, {"data": {"batch_size": 3}}, {"loss": {"pixel": "l2"}},
                    {"generator_config": {"num_block": 4}}):
        assert _key(resolve_config({"variant": "srgan-nobn", **changed}, "smoke")) != _key(base), changed
    assert _key(resolve_config({"variant": "srgan-nobn", "gan": {"lr": 1e-5}}, "smoke")) == _key(base)
    # The gan stage: its own section, every loss, and the psnr stage's weights through their sha256.
    assert _key(base, "gan", "a" * 64) != _key(base, "gan", "b" * 64)
    assert _key(resolve_config({"variant": "srgan-nobn", "gan": {"lr": 1e-5}}, "smoke"), "gan", "a" * 64) \
        != _key(base, "gan", "a" * 64)
    assert _key(resolve_config({"variant": "srgan-nobn", "psnr": {"lr": 1e-5}}, "smoke"), "gan", "a" * 64) \
        == _key(base, "gan", "a" * 64)
    # The training data by content, and srbench's version.
    inputs = C.fingerprint_inputs(base, "psnr", data={"train": "u" * 64, "val": None}, init_sha256=None, device="cpu")
    assert C.fingerprint(inputs) != _key(base)
    assert inputs["srbench"] and inputs["torch"] and inputs["device"] == "cpu"


def test_a_half_written_or_altered_entry_is_never_reused(tmp_path):
    cache = C.TrainingCache(tmp_path)
    fp = "f" * 64
    entry = tmp_path / fp
    entry.mkdir()
    (entry / "g_final.safetensors").write_bytes(b"weights")
    (entry / "g_final.json").write_text("{}")
    assert cache.lookup(fp) is None  # no entry.json: not committed
    import hashlib

    record = {"fingerprint": fp, "g_final_sha256": hashlib.sha256(b"weights").hexdigest()}
    (entry / "entry.json").write_text(json.dumps(record))
    assert cache.lookup(fp) is not None
    (entry / "g_final.safetensors").write_bytes(b"other weights")
    assert cache.lookup(fp) is None
    (entry / "entry.json").write_text(json.dumps({**record, "fingerprint": "0" * 64}))
    assert cache.lookup(fp) is None


def test_paths_put_the_cache_beside_the_store(tmp_path, monkeypatch):
    from srbench import paths

    monkeypatch.delenv(paths.TRAINING_CACHE_ENV, raising=False)
    assert paths.training_cache_dir(store=tmp_path / "s.sqlite") == tmp_path / "training-cache"
    monkeypatch.setenv(paths.TRAINING_CACHE_ENV, str(tmp_path / "env"))
    assert paths.training_cache_dir(store=tmp_path / "s.sqlite") == tmp_path / "env"
    assert paths.training_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"


@pytest.fixture
def counted(monkeypatch):
    """Every Trainer.run call, as (run name, stage)."""
    import srbench.train as T

    calls: list[tuple[str, str]] = []
    original = T.Trainer.run

    def run(self, *args, **kwargs):
        calls.append((self.config.name, self.stage))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(T.Trainer, "run", run)
    monkeypatch.delenv("SRBENCH_TRAINING_CACHE", raising=False)
    monkeypatch.delenv("SRBENCH_DATA", raising=False)
    return calls


def test_equal_stages_train_once_and_the_report_says_who_shares_them(tmp_path, counted, shared_suite, monkeypatch):
    from srbench.ablate import ablate
    from srbench.ablate import run as R

    shown: list[list[str]] = []
    original = R.visual_comparison

    def visual_comparison(sources, *args, **kwargs):
        shown.append(list(sources))
        return original(sources, *args, **kwargs)

    monkeypatch.setattr(R, "visual_comparison", visual_comparison)
    (tmp_path / "shared.toml").write_text(shared_suite)
    common = {"store_path": str(tmp_path / "s.sqlite"), "device": "cpu", "jobs": 1, "log": lambda msg: None}
    report = ablate(str(tmp_path / "shared.toml"), out=str(tmp_path / "one"), **common)
    assert not report.failures
    # a and b are equal: one psnr, one gan; c (another seed) trains both; d (another gan lr) shares a's psnr.
    assert sorted(counted) == [("a", "gan"), ("a", "psnr"), ("c", "gan"), ("c", "psnr"), ("d", "gan")]
    # d's gan stage is trained before c's (it waits on a's psnr stage, c on its own); the crops are in suite order
    assert counted.index(("d", "gan")) < counted.index(("c", "gan"))
    assert shown == [["a-gan", "b-gan", "c-gan", "d-gan"]]  # in suite order, whatever order they were evaluated in
    rows = json.loads((tmp_path / "one" / "training.json").read_text())
    entries = {(row["stage"], tuple(row["entries"])) for row in rows}
    assert entries == {("psnr", ("a", "b", "d")), ("gan", ("a", "b")), ("psnr", ("c",)), ("gan", ("c",)),
                       ("gan", ("d",))}
    table = (tmp_path / "one" / "table.md").read_text()
    # the smoke run says what its numbers are: the suite's own iterations, and the command for the real thing
    assert table.startswith("> Smoke preset: small versions of the networks, trained for 2 PSNR-stage and 2 "
                            "GAN-stage iterations on batches of ")
    assert " px on a side) cut from 4 images scikit-image ships" in table.splitlines()[0]
    assert "srbench ablate --suite shared --data-root DIR" in table.splitlines()[0]
    assert 'class="notice"' in (tmp_path / "one" / "index.html").read_text()
    assert "psnr stage" in table and "trained once for a, b, d" in table and "trained once for a, b:" in table
    assert "<h3>Trainings</h3>" in (tmp_path / "one" / "index.html").read_text()
    # Shared entries evaluate the same weights: one checkpoint, one sha256, identical numbers.
    runs = tmp_path / "one" / "runs" / "smoke"
    a_gan, b_gan = (runs / v / "gan" / "g_final.safetensors" for v in ("a", "b"))
    assert a_gan.read_bytes() == b_gan.read_bytes()
    sidecar = json.loads((runs / "b" / "gan" / "g_final.json").read_text())
    assert sidecar["extra"]["train_config"]["name"] == "b"  # each entry's own configuration is recorded
    assert sidecar["extra"]["training_cache"]["shared_with"] == ["a"]
    cache_dir = tmp_path / "training-cache"  # beside the store
    entry = json.loads((cache_dir / sidecar["extra"]["training_cache"]["fingerprint"] / "entry.json").read_text())
    assert entry["config"]["name"] == "a" and entry["inputs"]["stage"] == "gan"
    assert not list((cache_dir / ".partial").iterdir())
    assert not (cache_dir / entry["fingerprint"] / "state.pt").exists()

    # A re-run into another --out trains nothing and uses the same weights.
    counted.clear()
    again = ablate(str(tmp_path / "shared.toml"), out=str(tmp_path / "two"), **common)
    assert counted == [] and not again.failures
    assert (tmp_path / "two" / "runs/smoke/b/gan/g_final.safetensors").read_bytes() == b_gan.read_bytes()
    assert json.loads((tmp_path / "two" / "training.json").read_text()) == rows


def test_the_cached_stage_is_what_a_plain_training_gives(tmp_path, tiny_stages):
    """A cache entry holds the weights `srbench train` writes for that configuration (bitwise, on CPU)."""
    from srbench.train import Trainer

    config = resolve_config({"variant": "srgan-nobn", **tiny_stages}, "smoke")
    plain = Trainer(config, "psnr", tmp_path / "plain", device="cpu", progress=False).run().final
    cache = C.TrainingCache(tmp_path / "cache")
    key = C.stage_key(config, "psnr", data=data_fingerprints(config), init=None, device="cpu")
    cached = cache.get_or_train(config, "psnr", key, init=None, device="cpu", progress=False, log=lambda m: None)
    assert cached.trained and cached.final.read_bytes() == plain.read_bytes()
    renamed = dataclasses.replace(config, name="renamed")
    again = cache.get_or_train(renamed, "psnr", C.stage_key(renamed, "psnr", data=data_fingerprints(renamed),
                                                            init=None, device="cpu"),
                               init=None, device="cpu", progress=False, log=lambda m: None)
    assert not again.trained and again.folder == cached.folder


def test_an_interrupted_stage_resumes_under_another_name_or_settings_it_never_reads(tmp_path, tiny_stages,
                                                                                      monkeypatch):
    """The partial run of a fingerprint is resumed by any configuration with that fingerprint: a renamed entry, or
    one whose gan-only or cadence settings differ, once made the cache throw the interrupted psnr stage away."""
    from srbench.errors import SrbenchError
    from srbench.train import Trainer

    config = resolve_config({"variant": "srgan-nobn", **tiny_stages}, "smoke")
    plain = Trainer(config, "psnr", tmp_path / "plain", device="cpu", progress=False).run().final
    cache = C.TrainingCache(tmp_path / "cache")
    key = C.stage_key(config, "psnr", data=data_fingerprints(config), init=None, device="cpu")
    steps: list[int] = []
    original = Trainer.step

    def step(self, lr, hr):
        logs = original(self, lr, hr)
        steps.append(self.iteration)
        if steps == [1]:
            raise KeyboardInterrupt  # as a Ctrl-C at the end of the first step
        return logs

    monkeypatch.setattr(Trainer, "step", step)
    with pytest.raises(SrbenchError, match="interrupted at iteration 1"):
        cache.get_or_train(config, "psnr", key, init=None, device="cpu", progress=False, log=lambda m: None)
    other = resolve_config({"variant": "srgan-nobn", "name": "renamed", "psnr": {**tiny_stages["psnr"],
                                                                                "val_every": 1},
                            "gan": {**tiny_stages["gan"], "lr": 1e-5}, "loss": {"perceptual_weight": 0.5}}, "smoke")
    other_key = C.stage_key(other, "psnr", data=data_fingerprints(other), init=None, device="cpu")
    assert other_key.fingerprint == key.fingerprint and cache.resumable(other_key, "psnr")
    lines: list[str] = []
    done = cache.get_or_train(other, "psnr", other_key, init=None, device="cpu", progress=False, log=lines.append)
    assert steps == [1, 2] and "resuming" in lines[0]  # iteration 2 alone, after the first run's state
    assert done.final.read_bytes() == plain.read_bytes()
    # Another seed is another fingerprint: its own partial folder, never this one's.
    assert not cache.resumable(C.stage_key(dataclasses.replace(config, seed=9), "psnr", data=data_fingerprints(config),
                                           init=None, device="cpu"), "psnr")


@pytest.mark.slow
def test_side_by_side_trainings_share_stages_like_a_sequential_run(tmp_path, counted, shared_suite, monkeypatch):
    """jobs=2 trains in worker processes (one thread each, part of the fingerprint): the same sharing, and a
    re-run with the same jobs into another --out trains nothing."""
    from srbench.ablate import ablate
    from srbench.ablate import run as R

    shown: list[list[str]] = []
    original = R.visual_comparison
    monkeypatch.setattr(R, "visual_comparison", lambda sources, *a, **k: shown.append(list(sources))
                        or original(sources, *a, **k))
    (tmp_path / "shared.toml").write_text(shared_suite)
    common = {"device": "cpu", "log": lambda msg: None, "store_path": str(tmp_path / "s.sqlite"), "jobs": 2}
    two = ablate(str(tmp_path / "shared.toml"), out=str(tmp_path / "two"), **common)
    assert shown == [["a-gan", "b-gan", "c-gan", "d-gan"]]  # the crops in suite order, as trainings ended or not
    assert not two.failures and counted == []  # trained in the workers, not here
    rows = json.loads((tmp_path / "two" / "training.json").read_text())
    assert [row["entries"] for row in rows if row["stage"] == "psnr"] == [["a", "b", "d"], ["c"]]
    entries = [json.loads((tmp_path / "training-cache" / row["fingerprint"] / "entry.json").read_text())
               for row in rows]
    assert {e["inputs"]["threads"] for e in entries} == {1}
    runs = tmp_path / "two" / "runs" / "smoke"
    assert (runs / "a/gan/g_final.safetensors").read_bytes() == (runs / "b/gan/g_final.safetensors").read_bytes()
    again = ablate(str(tmp_path / "shared.toml"), out=str(tmp_path / "again"), **common)
    assert not again.failures and json.loads((tmp_path / "again" / "training.json").read_text()) == rows


def test_placing_a_cache_file_again_leaves_no_temporary_link(tmp_path):
    # rename() of a hard link onto the same inode does nothing: each re-run left a .<name>.<pid>.tmp behind
    source = tmp_path / "entry" / "g_final.safetensors"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    run = tmp_path / "run"
    run.mkdir()
    (run / "g_final.safetensors").write_bytes(b"older weights")
    for _ in range(3):
        C._link_or_copy(source, run / "g_final.safetensors")
    assert [p.name for p in run.iterdir()] == ["g_final.safetensors"]
    assert (run / "g_final.safetensors").read_bytes() == b"weights"
