"""pytest-benchmark: ``nox -s bench`` or ``pytest benchmarks --benchmark-only``.

Inputs are a 512x384 crop of scikit-image's ``coffee`` photograph. pyiqa is the baseline where it has the
same operation (its MATLAB-imresize port, SSIM and NIQE), fed the same pixels in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from srbench.evaluation import evaluate_model
from srbench.images import read_image
from srbench.matlab import imresize, rgb2gray, rgb2y
from srbench.metrics import niqe, ssim
from srbench.metrics.niqe import pristine_model


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    import skimage.data

    return read_image(f"{skimage.data.data_dir}/coffee.png")[:384, :512]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _tensor(torch, img):
    x = torch.from_numpy(np.asarray(img, dtype=np.float64))
    return x.permute(2, 0, 1)[None] if x.ndim == 3 else x[None, None]


@pytest.mark.benchmark(group="imresize")
def test_imresize_srbench(benchmark, photo):
    out = benchmark(imresize, photo, 0.25)
    assert out.shape == (96, 128, 3)


@pytest.mark.benchmark(group="imresize")
def test_imresize_baseline_pyiqa(benchmark, photo, torch):
    from pyiqa.matlab_utils import imresize as pyiqa_imresize

    x = _tensor(torch, photo)
    out = benchmark(pyiqa_imresize, x, 0.25)
    assert tuple(out.shape[-2:]) == (96, 128)


@pytest.mark.benchmark(group="ssim")
def test_ssim_srbench(benchmark, photo):
    y = rgb2y(photo.astype(np.float64))
    y2 = imresize(imresize(y, 0.25), 4)
    value = benchmark(ssim, y, y2)
    assert 0 < value < 1


@pytest.mark.benchmark(group="ssim")
def test_ssim_baseline_pyiqa(benchmark, photo, torch):
    from pyiqa.archs.ssim_arch import ssim as pyiqa_ssim

    y = rgb2y(photo.astype(np.float64))
    y2 = imresize(imresize(y, 0.25), 4)
    value = benchmark(pyiqa_ssim, _tensor(torch, y), _tensor(torch, y2), data_range=255.0)
    # The same quantity (pyiqa builds its window in float32), so the timings compare.
    assert abs(float(value) - ssim(y, y2)) < 1e-4


@pytest.mark.benchmark(group="niqe")
def test_niqe_srbench(benchmark, photo):
    gray = rgb2gray(photo)
    value = benchmark(niqe, gray)
    assert value > 0


@pytest.mark.benchmark(group="niqe")
def test_niqe_baseline_pyiqa(benchmark, photo, torch):
    from pyiqa.archs.niqe_arch import niqe as pyiqa_niqe

    mu, cov = pristine_model()
    gray = rgb2gray(photo)
    mu_t = torch.from_numpy(mu.copy())[None]
    cov_t = torch.from_numpy(cov.copy())[None]
    value = benchmark(pyiqa_niqe, _tensor(torch, gray), mu_t, cov_t)
    assert abs(float(value) - niqe(gray)) < 0.5  # same metric; pyiqa's port differs slightly


@pytest.mark.benchmark(group="bsd100-bicubic-sr", min_rounds=1, max_time=1.0, warmup=False)
def test_bsd100_bicubic_sr_srbench(benchmark, shared_data):
    def run():
        (result,) = evaluate_model("bicubic", [str(shared_data / "selfexsr/BSD100")], scale=4, protocol="sr")
        return result

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result.n_images == 100 and abs(result.summary["psnr_y"] - 25.96) < 0.015


# ---- generator inference (model-zoo issue) ------------------------------------------------------------


@pytest.fixture(scope="module")
def rrdb23(torch):
    from srbench.archs import get_generator

    torch.manual_seed(0)
    return get_generator("rrdb23").build().eval()


@pytest.fixture(scope="module")
def lr128(tmp_path_factory, photo):
    from srbench.images import write_png

    path = tmp_path_factory.mktemp("lr") / "lr128.png"
    write_png(path, photo[:128, :128])
    return path


@pytest.mark.benchmark(group="infer-rrdb23-128")
def test_infer_end_to_end_srbench(benchmark, rrdb23, lr128, tmp_path):
    from srbench.infer import Runner, infer_files

    runner = Runner.create(rrdb23, device="cpu")
    written, _, errors = benchmark.pedantic(infer_files, args=(runner, [lr128], tmp_path), rounds=3, iterations=1,
                                            warmup_rounds=1)
    assert not errors and written[0].is_file()


@pytest.mark.benchmark(group="infer-rrdb23-128")
def test_infer_bare_forward_baseline(benchmark, rrdb23, photo, torch):
    x = torch.from_numpy(photo[:128, :128].transpose(2, 0, 1).copy()).float().div(255)[None]

    def forward():
        with torch.no_grad():
            return rrdb23(x)

    out = benchmark.pedantic(forward, rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (1, 3, 512, 512)


_PEAK_SCRIPT = """
import resource, sys, time, numpy as np, torch
from srbench.archs import get_generator
from srbench.infer import Runner
torch.manual_seed(0)
tile = None if sys.argv[1] == "none" else int(sys.argv[1])
runner = Runner.create(get_generator("rrdb23-smoke").build(), device="cpu", tile=tile)
img = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3)).astype(np.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
runner.upscale(img)
print(time.perf_counter() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.benchmark(group="infer-1024-tiled-vs-untiled")
@pytest.mark.parametrize("tile", ["none", "256"], ids=["untiled-baseline", "tiled256"])
def test_tiled_vs_untiled_1024_peak_memory(benchmark, tile):
    """rrdb23-smoke on a 1024x1024 LR (4096x4096 out): time and peak RSS growth, each in a fresh process."""
    import subprocess
    import sys

    def run():
        out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, tile], capture_output=True, text=True, check=True)
        return [float(v) for v in out.stdout.split()]

    seconds, peak_mib = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({"peak_rss_growth_mib": round(peak_mib), "inference_seconds": round(seconds, 2)})
    print(f"\n1024x1024 LR, tile={tile}: {seconds:.1f}s, peak RSS +{peak_mib:.0f} MiB")


# ---- training iterations (training issue) --------------------------------------------------------------

TRAIN_CASES = {
    # name: (variant, preset, extra settings); full-size runs use the paper's 128 px patch at batch 2 on CPU.
    "smoke-srgan": ("srgan", "smoke", []),
    "smoke-esrgan": ("esrgan", "smoke", []),
    # (the step is timed on samples cut here; the paper preset refuses the evaluation photos as its training set)
    "full-srgan": ("srgan", "paper", ["data.batch_size=2", "loss.vgg_weights=\"random\"",
                                      "data.train=\"skimage-train\""]),
    "full-esrgan": ("esrgan", "paper", ["data.batch_size=2", "loss.vgg_weights=\"random\"",
                                        "data.train=\"skimage-train\""]),
}


@pytest.mark.parametrize("stage", ["psnr", "gan"])
@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_training_iteration(benchmark, tmp_path, case, stage, torch):
    from srbench.archs import GENERATORS, build_generator
    from srbench.checkpoints import save_checkpoint
    from srbench.train import PatchDataset, Trainer, load_hr_images
    from srbench.train.config import resolve_config

    variant, preset, sets = TRAIN_CASES[case]
    cfg = resolve_config(variant, preset, sets)
    init = None
    if stage == "gan":
        spec = GENERATORS[cfg.generator]
        gen_config = {**spec.config, "scale": 4}
        init = save_checkpoint(build_generator(spec.arch, gen_config), tmp_path / "init.safetensors",
                               arch=spec.arch, config=gen_config)
    trainer = Trainer(cfg, stage, tmp_path / "run", init=init and str(init), device="cpu", progress=False)
    ds = PatchDataset(load_hr_images("skimage", None), 4, cfg.data.patch_size, seed=0)
    samples = [ds[i] for i in range(cfg.data.batch_size)]
    lr = torch.stack([s[0] for s in samples])
    hr = torch.stack([s[1] for s in samples])
    benchmark.group = f"train-{stage}-{case}"
    logs = benchmark.pedantic(trainer.step, args=(lr, hr), rounds=3 if case.startswith("smoke") else 1,
                              iterations=1, warmup_rounds=1)
    benchmark.extra_info["batch_size"] = cfg.data.batch_size
    benchmark.extra_info["patch_size"] = cfg.data.patch_size
    assert all(v == v for v in logs.values())  # finite numbers came out


# ---- the harness (harness issue) -----------------------------------------------------------------------


@pytest.mark.benchmark(group="evaluate-set14-both-protocols")
def test_evaluate_set14_sr_and_pirm(benchmark, shared_data, tmp_path):
    """bicubic on Set14 under sr and pirm (rmse, niqe; Ma needs weights that are not here), no cache."""

    def run():
        out = []
        for protocol, metrics in (("sr", None), ("pirm", ["rmse", "niqe"])):
            (r,) = evaluate_model("bicubic", [str(shared_data / "selfexsr/Set14")], protocol=protocol, metrics=metrics)
            out.append(r)
        return out

    sr, pirm = benchmark.pedantic(run, rounds=2, iterations=1)
    assert sr.n_images == 14 and pirm.n_images == 14


@pytest.fixture(scope="module")
def smoke_checkpoints(tmp_path_factory, torch):
    """Stand-in checkpoints for every variant and stage of the esrgan suite (smoke sizes, random weights), so
    the benchmark measures the harness, not training."""
    from srbench.ablate import load_suite
    from srbench.archs import GENERATORS, build_generator
    from srbench.checkpoints import save_checkpoint
    from srbench.train.config import resolve_config

    root = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    for variant in load_suite("esrgan").entries:
        cfg = resolve_config(variant.training, "smoke")
        spec = GENERATORS[cfg.generator]
        config = {**spec.config, "scale": 4}
        for stage in ("psnr", "gan"):
            save_checkpoint(build_generator(spec.arch, config), root / variant.name / stage / "g_final.safetensors",
                            arch=spec.arch, config=config, variant=cfg.generator, stage=stage)
    return root


@pytest.mark.benchmark(group="ablate-smoke-cached-rerun")
def test_ablate_cached_rerun(benchmark, smoke_checkpoints, tmp_path):
    from srbench.ablate import ablate

    kwargs = dict(checkpoints=str(smoke_checkpoints), store_path=str(tmp_path / "s.sqlite"), out=str(tmp_path / "r"),
                  device="cpu", log=lambda _: None)
    first = ablate("esrgan", **kwargs)  # fills the store
    report = benchmark.pedantic(ablate, args=("esrgan",), kwargs=kwargs, rounds=2, iterations=1)
    assert len(report.results) == len(first.results) > 0
    assert all(r.provenance["cached_images"] == r.n_images for r in report.results)
