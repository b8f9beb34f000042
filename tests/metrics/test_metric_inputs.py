"""Metrics' inputs and evaluation edge cases (issue 21, items 4, 8, 13, 14, 16, 18): what ``srbench.metric``
takes, images too small for a protocol, BRISQUE of flat planes, FID's patch count, the API's comma form and
options, and the messages of pyiqa names, a weights setting naming a file, pirm-plane and torchrun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import srbench
from srbench import evaluation as E
from srbench import metrics as M
from srbench import work_split as Dist
from srbench.cli import main
from srbench.errors import BadInputError

RNG = np.random.default_rng(21)
HR = RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)
SR = np.clip(HR.astype(np.int64) + RNG.integers(-6, 7, HR.shape), 0, 255).astype(np.uint8)


def _save(folder: Path, name: str, img: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder / f"{name}.png")
    return folder / f"{name}.png"


# -- item 4: what a metric function takes ---------------------------------------------------------------------
def test_a_float_image_needs_its_range_and_then_gives_exactly_its_uint8_value():
    psnr = srbench.metric("psnr_y")
    reference = psnr(SR, HR)
    assert 30 < reference < 60
    with pytest.raises(BadInputError, match=r"psnr_y.*float64.*value_range"):
        psnr(SR / 255, HR / 255)  # was 63.66 dB where the uint8 images give 43.07
    assert psnr(SR / 255, HR / 255, value_range=(0, 1)) == reference
    assert psnr(SR.astype(np.float32), HR, value_range=(0, 255)) == reference  # the range applies to non-uint8 only
    with pytest.raises(BadInputError, match=r"psnr_y.*uint16.*value_range"):
        psnr(SR.astype(np.uint16), HR.astype(np.uint16))  # was -41.5 dB
    wide = (SR.astype(np.uint16) * 257, HR.astype(np.uint16) * 257)
    assert psnr(*wide, value_range=(0, 65535)) == reference
    assert srbench.metric("psnr_y", value_range=(0, 65535))(*wide) == reference  # the function's default range


def test_niqe_of_floats_needs_their_range():
    plane = RNG.integers(0, 256, (200, 210), dtype=np.uint8)
    niqe = srbench.metric("niqe")
    with pytest.raises(BadInputError, match=r"'niqe'.*value_range"):
        niqe(plane / 255.0)  # was 439
    assert niqe(plane / 255.0, value_range=(0, 1)) == niqe(plane)


def _one_pixel(value: float) -> np.ndarray:
    out = SR / 255
    out[3, 5, 1] = value
    return out


# Each is refused for every metric (the range, when given, is (0, 1)).
WRONG = {
    "float in [0, 1] without a range": (lambda: SR / 255, None, "value_range"),
    "float in 0..255 without a range": (lambda: SR.astype(np.float64), None, "value_range"),
    "uint16 without a range": (lambda: SR.astype(np.uint16), None, "value_range"),
    "int64 without a range": (lambda: SR.astype(np.int64), None, "value_range"),
    "bool": (lambda: SR > 128, None, "dtype bool"),
    "complex": (lambda: SR.astype(np.complex128), (0, 1), "dtype complex128"),
    "above the range": (lambda: SR / 255 * 1.5, (0, 1), "outside value_range"),
    "below the range": (lambda: SR / 255 - 0.5, (0, 1), "outside value_range"),
    "NaN pixel": (lambda: _one_pixel(np.nan), (0, 1), "NaN pixels"),
    "infinite pixel": (lambda: _one_pixel(np.inf), (0, 1), "infinite pixels"),
    "four channels": (lambda: np.dstack([SR, SR[..., :1]]), None, "shape"),
    "one channel of three dimensions": (lambda: SR[..., :1], None, "shape"),
    "one dimension": (lambda: SR[0, :, 0], None, "shape"),
    "four dimensions": (lambda: SR[None], None, "shape"),
    "empty": (lambda: SR[:0], None, "shape"),
    "a range that is one number": (lambda: SR / 255, 1.0, "value_range must be"),
    "a reversed range": (lambda: SR / 255, (1, 0), "value_range must be"),
    "a range with NaN": (lambda: SR / 255, (0, math.nan), "value_range must be"),
}


def _every_metric() -> list[str]:
    return sorted(M.all_metrics())


@pytest.mark.parametrize("case", sorted(WRONG))
@pytest.mark.parametrize("name", _every_metric())
def test_every_metric_refuses_each_wrong_image_in_one_line_naming_it(name, case):
    make, value_range, problem = WRONG[case]
    f = srbench.metric(name)
    spec = M.get_metric(name)
    hr = HR if spec.needs_reference else None
    with pytest.raises(BadInputError) as found:
        f(make(), hr, value_range=value_range)
    message = str(found.value)
    assert name in message and "\n" not in message
    if not spec.is_dataset_level:  # a dataset-level metric is refused before it looks at images
        assert problem in message
    if spec.needs_reference:  # the same image as the reference
        with pytest.raises(BadInputError, match=problem if not spec.is_dataset_level else name):
            f(SR, make(), value_range=value_range)


def test_the_metric_function_documents_the_rule_with_an_example():
    doc = srbench.MetricFunction.__doc__ or ""
    assert "value_range=(0, 1)" in doc and "uint8" in doc and ">>>" in doc


# -- item 8: images too small for the protocol's border -----------------------------------------------------
@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    _save(folder, "good", RNG.integers(0, 256, (64, 72, 3), dtype=np.uint8))
    _save(folder, "thin", RNG.integers(0, 256, (8, 256, 3), dtype=np.uint8))
    _save(folder, "tiny", RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    return folder


@pytest.mark.parametrize(("protocol", "metrics", "workers"), [("pirm", "rmse", "1"), ("sr", "psnr_y", "1"),
                                                               ("pirm", "rmse,brisque", "2")])
def test_an_image_too_small_for_the_protocol_is_a_skipped_line_and_the_rest_is_evaluated(small_folder, tmp_path,
                                                                                       protocol, metrics, workers):
    args = ["evaluate", "--model", "bicubic", "--dataset", str(small_folder), "--protocol", protocol, "--metrics",
            metrics, "--workers", workers, "--json"]
    out = CliRunner().invoke(main, [*args, "--skip-bad"])
    assert out.exit_code == 0, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)
    (result,) = json.loads(out.stdout)
    assert result["n_images"] == 1 and result["n_skipped"] == 2
    skipped = [line for line in out.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 2
    assert any("thin.png" in s and "8x256 image is too small" in s for s in skipped)
    assert any("tiny.png" in s and "4x4 image is too small" in s for s in skipped)
    # the good image's values are those of a set holding it alone
    alone = tmp_path / "alone"
    _save(alone, "good", np.asarray(Image.open(small_folder / "good.png")))
    (single,) = srbench.evaluate("bicubic", alone, protocol=protocol, metrics=metrics, workers=1).per_image[
        ["metric", "value"]].pipe(lambda f: [dict(zip(f["metric"], f["value"], strict=True))])
    for name, value in single.items():
        assert result[name] == value
    refused = CliRunner().invoke(main, args)  # without --skip-bad: the documented exit status
    assert refused.exit_code == 1 and "2 image(s) skipped as bad input" in refused.stderr
    assert "Traceback" not in refused.output


def test_scale_1_on_a_one_pixel_wide_image_is_skipped(tmp_path):
    folder = tmp_path / "lines"
    _save(folder, "line", RNG.integers(0, 256, (256, 1, 3), dtype=np.uint8))
    _save(folder, "square", RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    (res,) = E.evaluate_model("bicubic", [str(folder)], scale=1, workers=1)
    assert [r["image"] for r in res.per_image] == ["square"]
    assert res.per_image[0]["psnr_y"] == math.inf  # bicubic at scale 1 is the HR image itself
    (bad,) = res.skipped
    assert bad["image"] == "line" and "256x1 image is too small" in bad["error"]


def test_the_api_refuses_an_image_too_small_for_the_border_and_gives_nan_where_niqe_is_undefined():
    with pytest.raises(BadInputError, match=r"metric\('niqe', protocol='pirm'\): a 8x8 image is too small"):
        srbench.metric("niqe")(np.full((8, 8), 100, np.uint8))
    # After the 4 px border a 20x20 image has no two 96x96 blocks: NIQE is undefined (NaN), as in evaluate.
    assert math.isnan(srbench.metric("niqe")(RNG.integers(0, 256, (20, 20), dtype=np.uint8)))


# -- item 13: BRISQUE of a constant image -------------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 1, 128, 255])
def test_brisque_of_a_constant_image_is_undefined_at_every_level(level):
    from srbench.metrics.brisque import brisque, brisque_conditioning

    assert math.isnan(brisque(np.full((40, 40), float(level))))  # was 114.72 at 1 and 107.72 at 128
    cond = brisque_conditioning(np.full((40, 40, 3), level, np.uint8))
    assert math.isnan(cond.value) and math.isnan(cond.spread)
    assert math.isnan(srbench.metric("brisque")(np.full((40, 40, 3), level, np.uint8)))


def test_brisque_of_a_flat_image_is_noted_and_its_version_bumped(tmp_path):
    folder = tmp_path / "flat"
    _save(folder, "flat", np.full((48, 48, 3), 128, np.uint8))
    _save(folder, "busy", RNG.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    (res,) = E.evaluate_model("bicubic", [str(folder)], metrics=["brisque"], workers=1)
    values = {r["image"]: r["brisque"] for r in res.per_image}
    assert math.isnan(values["flat"]) and math.isfinite(values["busy"])
    assert any(w.startswith("flat: brisque undefined (NaN)") and "BRISQUE" in w for w in res.warnings)
    assert M.get_metric("brisque").version == "live-2"
    assert "brisque `live-2`" in (Path(__file__).resolve().parents[2] / "CHANGELOG.md").read_text()


# -- item 14: FID's patch count -----------------------------------------------------------------------------
def test_fid_shows_its_patch_count_and_warns_below_the_feature_dimension(tmp_path):
    from test_fid import RandomNet

    from srbench.metrics import fid as F

    folder = tmp_path / "few"
    for i in range(2):
        _save(folder, f"img{i}", RNG.integers(0, 256, (136, 200, 3), dtype=np.uint8))
    with M.temporarily(F.FID), F.use_feature_extractor(RandomNet()) as net:
        (res,) = E.evaluate_model("bicubic", [str(folder)], metrics=["fid"], workers=1)
    patches = net.patches / 2  # SR and HR
    assert 0 < patches < 2048
    assert res.to_dict()["fid_n_patches"] == patches
    (note,) = [w for w in res.warnings if "fid_n_patches" in w]
    assert f"FID from {patches:.0f} patches" in note and "2048" in note and "rank-deficient" in note
    assert not E._fid_warnings({"fid": 1.0, "fid_n_patches": 4096.0})


# -- item 16: the CLI's comma form in the API ---------------------------------------------------------------
def test_the_api_takes_metrics_models_and_datasets_in_the_clis_comma_form(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _save(a, "one", HR)
    _save(b, "two", SR)
    res = srbench.evaluate("bicubic", f"{a},{b}", metrics="psnr_y, ssim_y", workers=1)
    listed = srbench.evaluate("bicubic", [a, b], metrics=["psnr_y", "ssim_y"], workers=1)
    assert set(res.summary["metric"]) == {"psnr_y", "ssim_y"} and set(res.summary["dataset"]) == {"a", "b"}
    assert list(res.summary["value"]) == list(listed.summary["value"])
    assert res.table(metrics="psnr_y,ssim_y") == listed.table(metrics=["psnr_y", "ssim_y"])


# -- item 18 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("workers", 0, "positive whole number"), ("workers", -2, "positive whole number"),
    ("workers", 1.5, "positive whole number"), ("workers", True, "positive whole number"),
    ("device", "gpu", "use auto, cpu, cuda"), ("device", "tpu", "use auto, cpu, cuda"),
    ("device", "cuda:0", "use auto, cpu, cuda"),
])
def test_the_api_refuses_workers_and_devices_it_cannot_use(tmp_path, option, value, allowed):
    _save(tmp_path / "d", "one", HR)
    with pytest.raises(BadInputError, match=allowed) as found:
        srbench.evaluate("bicubic", tmp_path / "d", metrics="psnr_y", **{option: value})
    assert repr(value) in str(found.value)


def test_pyiqa_metric_names_say_pyiqa_has_no_such_metric(small_folder):
    pytest.importorskip("pyiqa")
    out = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", str(small_folder),
                                    "--metrics", "pyiqa:nope"])
    assert out.exit_code == 1
    assert "pyiqa has no metric 'nope'" in out.stderr and "for protocol" not in out.stderr


def test_srbench_weights_naming_a_file_says_it_must_be_a_folder(tmp_path, monkeypatch, small_folder):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(afile))
    for args in (["fetch", "weights", "alexnet"],
                 ["evaluate", "--model", "bicubic", "--dataset", str(small_folder), "--metrics", "lpips"]):
        out = CliRunner().invoke(main, args)
        assert out.exit_code == 1
        assert out.stderr.strip() == f"error: SRBENCH_WEIGHTS must be a folder, but {afile} is a file"


def _pirm_plane(store: Path, suite: str, dataset: str) -> tuple[int, str]:
    out = CliRunner().invoke(main, ["pirm-plane", "--suite", suite, "--dataset", dataset, "--store", str(store),
                                    "--out", str(store.parent / "plane.png")])
    return out.exit_code, out.stderr


def test_pirm_plane_gives_the_real_reason_it_has_nothing_to_draw(tmp_path):
    folder = tmp_path / "little"
    _save(folder, "a", RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    _save(folder, "b", RNG.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    store = tmp_path / "s.sqlite"
    srbench.evaluate("bicubic", folder, metrics="psnr_y", store=store, workers=1)  # suite evaluate, sr only
    code, err = _pirm_plane(store, "evaluate", "little")
    assert code == 1 and "ablate first" not in err
    assert "no pirm-protocol results for dataset 'little' (there are: little (sr))" in err
    # pirm results whose NIQE is undefined on every image (too small for two 96x96 blocks)
    srbench.evaluate("bicubic", folder, protocol="pirm", metrics="rmse,niqe", store=store, workers=1)
    code, err = _pirm_plane(store, "evaluate", "little")
    assert code == 1 and "ablate first" not in err
    assert "no model has both an RMSE and a NIQE on 'little': every value is undefined" in err
    code, err = _pirm_plane(store, "nothing-here", "little")
    assert code == 1 and "no results for suite 'nothing-here'" in err


def test_a_torchrun_rank_that_cannot_open_its_inputs_is_one_line_on_every_rank(monkeypatch):
    reasons = {0: None, 1: "'set5' is neither a known dataset nor a folder"}
    for rank in (0, 1):
        gathered: list = []
        monkeypatch.setattr(Dist, "ranks", lambda rank=rank: Dist.Ranks(rank, 2))

        def all_gather(obj, where, rank=rank, gathered=gathered):
            gathered.append(obj)  # this rank's own report goes into the collective
            return [obj if r == rank else reasons[r] for r in (0, 1)]

        monkeypatch.setattr(Dist, "all_gather", all_gather)

        def prepare(rank=rank):
            if reasons[rank]:
                raise BadInputError(reasons[rank])
            return "opened"

        with pytest.raises(BadInputError) as found:
            E.on_every_rank(prepare)
        assert str(found.value) == f"torchrun rank 1 of 2: {reasons[1]}"
        assert gathered == [reasons[rank]]
    monkeypatch.setattr(Dist, "all_gather", lambda obj, where: [None, None])
    assert E.on_every_rank(lambda: "opened") == "opened"


@pytest.mark.slow
def test_two_ranks_one_lacking_the_dataset_say_so_without_a_gloo_traceback(tmp_path):
    folder = tmp_path / "here"
    _save(folder, "one", HR)
    script = tmp_path / "rank_data.py"
    script.write_text(
        "import os, sys\n"
        "from srbench.cli import main\n"
        "folder = sys.argv[1] if os.environ['RANK'] == '0' else sys.argv[1] + '-not-on-this-node'\n"
        "sys.argv = ['srbench', 'evaluate', '--model', 'bicubic', '--dataset', folder, '--metrics', 'psnr_y',\n"
        "            '--workers', '1']\n"
        "main()\n")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(folder)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 2  # one line from each rank
    expected = f"error: torchrun rank 1 of 2: '{folder}-not-on-this-node' is neither a known dataset"
    assert all(line.startswith(expected) and line.endswith("nor a folder") for line in ours)
    assert "gloo" not in proc.stderr.lower() and "srbench/evaluation.py" not in proc.stderr
