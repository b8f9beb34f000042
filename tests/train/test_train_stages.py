"""The parts of srbench.train on their own: stages, the sampler, the deferred Ctrl-C, the resumable log."""

from __future__ import annotations

import copy
import os
import signal
import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from srbench.train import (  # noqa: E402
    GanStage,
    IterationSampler,
    NonFiniteLoss,
    PatchDataset,
    PsnrStage,
    RunLog,
    Trainer,
    TrainingDiverged,
    deferred_sigint,
    training_data,
)
from srbench.train import losses as L  # noqa: E402
from srbench.train.config import resolve_config  # noqa: E402

CPU = torch.device("cpu")


def _cfg(*sets: str):
    return resolve_config("rrdb23-smoke", "smoke", ["data.batch_size=2", *sets])


def _batches(cfg, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(7)
    images = [(f"img{i}", rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)) for i in range(2)]
    ds = PatchDataset(images, cfg.data.scale, cfg.data.patch_size, seed=3)
    b = cfg.data.batch_size
    return [tuple(torch.stack(t) for t in zip(*[ds[it * b + j] for j in range(b)], strict=True)) for it in range(n)]


def _tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a nested state dict, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else ()
    out = {}
    for key, value in items:
        out.update(_tensors(value, f"{prefix}/{key}"))
    return out


def _equal(a: dict, b: dict) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_gan_stage_state_dict_resumes_bitwise():
    """Everything the GAN stage's next steps depend on (G, D, both optimisers and schedulers, the EMA, and the
    iteration that seeds the gradient penalty) goes through state_dict()/load_state_dict()."""
    cfg = _cfg('loss.adversarial="ragp"', "gan.milestones=[3]")  # a lr step in the resumed part too
    batches = _batches(cfg, 4)
    torch.manual_seed(0)
    a = GanStage(cfg, CPU)
    for lr, hr in batches[:2]:
        a.step(lr, hr)
    saved, at = copy.deepcopy(a.state_dict()), a.iteration
    logs_a = [a.step(lr, hr) for lr, hr in batches[2:]]

    torch.manual_seed(0)  # the seed, not the state, fixes the frozen (here random) perceptual network
    b = GanStage(cfg, CPU)
    assert not _equal(b.state_dict(), saved)  # two steps behind, so the load has something to do
    b.load_state_dict(saved)
    b.iteration = at
    logs_b = [b.step(lr, hr) for lr, hr in batches[2:]]
    assert at == 2 and a.iteration == b.iteration == 4
    assert logs_b == logs_a and "l_d_gp" in logs_a[0]
    assert _equal(b.state_dict(), a.state_dict())
    assert a.lr == b.lr == pytest.approx(cfg.gan.lr * cfg.gan.gamma)


def test_trainer_run_is_the_stage_stepped_by_hand(tmp_path):
    """The trainer adds files and logging, never a draw from the random generators or a change of order."""
    cfg = _cfg("psnr.iters=3", "psnr.val_every=2", "psnr.log_every=1")
    result = Trainer(cfg, "psnr", tmp_path, progress=False).run()

    torch.manual_seed(cfg.seed)
    stage = PsnrStage(cfg, CPU)
    loader, _ = training_data(cfg, cfg.psnr.iters, 0)
    logs = [stage.step(lr, hr) for lr, hr in loader]
    state = torch.load(tmp_path / "psnr/state.pt", weights_only=True)
    assert result.iterations == stage.iteration == state["iteration"] == 3
    assert _equal({k: state[k] for k in ("g", "opt_g", "sched_g")}, stage.state_dict())
    logged = (tmp_path / "psnr/log.csv").read_text().splitlines()
    header = logged[0].split(",")
    assert [float(r.split(",")[header.index("l_pix")]) for r in logged[2:]] == [x["l_pix"] for x in logs]


def test_a_non_finite_loss_stops_the_stage_before_the_update(monkeypatch):
    cfg = _cfg()
    batches = _batches(cfg, 2)
    torch.manual_seed(0)
    stage = PsnrStage(cfg, CPU)
    stage.step(*batches[0])
    before = copy.deepcopy(stage.state_dict())
    monkeypatch.setattr(L, "pixel_loss", lambda sr, hr, kind="l1": (sr - hr).abs().mean() * float("inf"))
    with pytest.raises(NonFiniteLoss) as info:
        stage.step(*batches[1])
    assert isinstance(info.value, TrainingDiverged)  # one-line error even where no trainer words it
    assert (info.value.iteration, info.value.name, info.value.value) == (2, "l_pix", float("inf"))
    assert stage.iteration == 1 and _equal(stage.state_dict(), before)


def test_the_sampler_gives_ranks_disjoint_slices_and_a_resume_the_same_tail():
    full = [list(IterationSampler(1, 5, 3, rank, 2)) for rank in (0, 1)]
    assert sorted(full[0] + full[1]) == list(range(24))
    assert full[0][:3] == [0, 1, 2] and full[1][:3] == [3, 4, 5]  # iteration 1: rank 0 then rank 1
    assert list(IterationSampler(3, 5, 3, 1, 2)) == full[1][6:]  # resuming after iteration 2
    assert len(IterationSampler(3, 5, 3, 1, 2)) == 6


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(200):  # the handler runs between bytecodes of the main thread
        time.sleep(0.005)


def test_deferred_sigint_defers_the_first_ctrl_c_and_not_the_second():
    previous = signal.getsignal(signal.SIGINT)
    with deferred_sigint() as sigint:
        sigint.raise_if_pressed()  # nothing pressed yet
        _ctrl_c()  # no KeyboardInterrupt here: deferred
        assert sigint.pressed == 1
        with pytest.raises(KeyboardInterrupt):
            sigint.raise_if_pressed()
        with pytest.raises(KeyboardInterrupt):
            _ctrl_c()
        assert sigint.pressed == 2
    assert signal.getsignal(signal.SIGINT) is previous


def test_deferred_sigint_leaves_the_handler_alone_outside_the_main_thread():
    seen = []

    def worker():
        with deferred_sigint() as sigint:
            seen.append((signal.getsignal(signal.SIGINT), sigint.pressed))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [(signal.getsignal(signal.SIGINT), 0)]


def test_run_log_drops_rows_past_the_resumed_iteration_and_starts_afresh_otherwise(tmp_path):
    log = RunLog(tmp_path, "psnr", 0, resume=False)
    for it in range(6):
        log.write({"iteration": it, "l_pix": it / 10})
    log.close()
    RunLog(tmp_path, "psnr", 3, resume=True).close()
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["iteration", "l_pix"] and [r.split(",")[0] for r in rows[1:]] == list("0123")
    RunLog(tmp_path, "psnr", 0, resume=False).close()
    assert not (tmp_path / "log.csv").exists()
