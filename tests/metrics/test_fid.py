"""FID as a dataset-level metric: Fréchet distance, patches, streaming statistics, store, tables, weights.

The Inception weights are a download this machine does not have: the mechanics are tested with a small seeded
random convolution net injected through ``srbench.metrics.fid.use_feature_extractor`` (and once with
torch-fidelity's own InceptionV3 architecture holding random weights, loaded through srbench's weights path).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from PIL import Image

from srbench import metrics as M
from srbench.check import check_metrics, compare
from srbench.errors import BadInputError, SrbenchError, WeightsUnavailableError
from srbench.evaluation import evaluate_model, write_outputs
from srbench.metrics import fid as F
from srbench.metrics.registry import DatasetAccumulator, PerImage
from srbench.protocols import PROTOCOLS
from srbench.report import paper_table, tidy_from_store
from srbench.store import DATASET_IMAGE, Store


class RandomNet:
    """A seeded random conv net: uint8 N x P x P x 3 -> N x 12 features; counts the patches it sees."""

    def __init__(self, seed: int = 0) -> None:
        import torch

        gen = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(6, 3, 5, 5, generator=gen) / 8.0
        self.w2 = torch.randn(12, 6, 3, 3, generator=gen) / 5.0
        self.patches = 0

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as tf

        self.patches += len(patches)
        x = torch.from_numpy(np.ascontiguousarray(patches.transpose(0, 3, 1, 2))).double() / 255.0
        x = tf.relu(tf.conv2d(x, self.w1.double(), stride=2))
        x = tf.relu(tf.conv2d(x, self.w2.double(), stride=2))
        return x.mean(dim=(2, 3)).numpy()


@pytest.fixture
def net():
    with M.temporarily(F.FID), F.use_feature_extractor(RandomNet()) as extractor:
        yield extractor


def _folder(tmp_path, name: str, n: int, seed: int = 1):
    """A plain folder of ``n`` smooth-ish random 136x200 RGB images (a dataset of its own)."""
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, (17, 25, 3)).astype(np.uint8)
        Image.fromarray(small).resize((200, 136), Image.BICUBIC).save(folder / f"img{i}.png")
    return folder


# -- the Fréchet distance -----------------------------------------------------------------------------------
def test_frechet_distance_matches_the_closed_form_of_two_gaussians():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.5, 3.0, 5), rng.uniform(0.5, 3.0, 5)
    # Diagonal covariances: sum of (sqrt(a) - sqrt(b))^2 plus the squared mean distance.
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert F.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # Non-commuting: S1 = s^2 I, S2 = Q D Q^T, so Tr (S1 S2)^1/2 = s Tr S2^1/2 = s sum sqrt(d).
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    d, s = rng.uniform(0.2, 4.0, 5), 1.7
    s2 = q @ np.diag(d) @ q.T
    expected = float(np.sum((mu1 - mu2) ** 2) + 5 * s**2 + d.sum() - 2 * s * np.sqrt(d).sum())
    assert F.frechet_distance(mu1, s**2 * np.eye(5), mu2, s2) == pytest.approx(expected, rel=1e-9)
    # Symmetric, and zero for one Gaussian with itself.
    assert F.frechet_distance(mu2, s2, mu1, s**2 * np.eye(5)) == pytest.approx(expected, rel=1e-9)
    assert abs(F.frechet_distance(mu1, s2, mu1, s2)) < 1e-9


def test_running_moments_equal_numpy_mean_and_cov_whatever_the_batches():
    rng = np.random.default_rng(5)
    rows = rng.normal(3.0, 2.0, size=(103, 7))
    moments = F.RunningMoments()
    for start, stop in ((0, 1), (1, 40), (40, 40), (40, 97), (97, 103)):
        moments.update(rows[start:stop])
    assert moments.n == 103
    np.testing.assert_allclose(moments.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.covariance, np.cov(rows, rowvar=False), rtol=1e-10)


# -- patches ------------------------------------------------------------------------------------------------
def test_patch_positions_are_the_grid_and_the_half_shifted_grid():
    # 96 x 160: grid rows {0}, cols {0, 64}; at least 1.5 x 64 both ways, so the grid shifted by 32 too.
    assert F.patch_positions(96, 160, 64) == [(0, 0), (0, 64), (32, 32), (32, 96)]
    assert F.patch_positions(95, 160, 64) == [(0, 0), (0, 64)]  # under 1.5 P high: no shifted grid
    assert F.patch_positions(63, 500, 64) == []  # smaller than a patch: no sample
    assert len(F.patch_positions(312, 472)) == 28 + 24  # BSD100 at x4 after modcrop and the sr shave
    with pytest.raises(BadInputError):
        F.patch_positions(10, 10, 0)


def test_extract_patches_takes_those_pixels_and_makes_grey_rgb():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 160, 3)).astype(np.uint8)
    patches = F.extract_patches(img, 64)
    assert patches.shape == (4, 64, 64, 3) and patches.dtype == np.uint8
    np.testing.assert_array_equal(patches[3], img[32:96, 96:160])
    grey = F.extract_patches(img[..., 0].astype(np.float64), 64)
    np.testing.assert_array_equal(grey[1], np.repeat(img[0:64, 64:128, :1], 3, axis=2))
    assert F.extract_patches(img[:40], 64).shape == (0, 64, 64, 3)


# -- the accumulator ----------------------------------------------------------------------------------------
def _images(seed: int, n: int = 4):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96, 160, 3)).astype(np.uint8) for _ in range(n)]


def _fid_of(sr_set, hr_set) -> dict:
    acc = F.FID.accumulator
    state = acc.start()
    for sr, hr in zip(sr_set, hr_set, strict=True):
        acc.add(state, acc.prepared(PerImage(sr, hr, {})))
    return acc.finish(state)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric(net):
    a, b = _images(1), _images(2)
    same = _fid_of(a, a)
    assert abs(same["fid"]) < 1e-6 and same["fid_n_patches"] == 16
    ab, ba = _fid_of(a, b)["fid"], _fid_of(b, a)["fid"]
    assert ab > 1e-3 and ab == pytest.approx(ba, rel=1e-9)
    assert net.patches == 2 * 16 * 3  # three runs, SR and HR, 4 patches per image
    assert math.isnan(_fid_of([], [])["fid"])  # no sample: undefined, not zero


# -- the descriptor and the registry ------------------------------------------------------------------------
def test_fid_descriptor():
    fid = F.FID
    assert (fid.name, fid.higher_is_better, fid.needs_reference, fid.level) == ("fid", False, True, "dataset")
    assert fid.weights == "weights-inception-2015-12-05-6726825d.pth" and not fid.drift_check
    assert fid.outputs == ("fid", "fid_n_patches", "fid_n_images")
    assert "64x64" in fid.description and "shifted" in fid.description
    assert all("fid" not in proto.default_metrics for proto in PROTOCOLS.values())
    with pytest.raises(SrbenchError, match="dataset-level"):
        fid.run(PerImage(None, None, {}))


def test_dataset_level_descriptors_are_validated():
    acc = DatasetAccumulator(start=list, add=list.append, finish=len)
    card = {"label": "x", "digits": 2, "higher_is_better": True, "needs_reference": True, "version": "1",
            "description": "x"}
    with pytest.raises(BadInputError, match="needs an accumulator"):
        M.Metric(name="x", **card, compute=M.registry.per_image_unsupported, level="dataset")
    with pytest.raises(BadInputError, match="level must be"):
        M.Metric(name="x", **card, compute=M.registry.per_image_unsupported, level="set")
    with pytest.raises(BadInputError, match="no requires"):
        M.Metric(name="x", **card, compute=M.registry.per_image_unsupported, level="dataset",
                 accumulator=acc, requires=("psnr_y",))
    with M.temporarily(F.FID), pytest.raises(BadInputError, match="cannot require dataset-level"):
        M.register(M.Metric(name="y", **card, compute=lambda x: 0.0, requires=("fid",)))


# -- evaluate, store, tables --------------------------------------------------------------------------------
def test_fid_is_stored_once_read_back_and_shown_in_tables(net, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    (res,) = evaluate_model("bicubic", ["skimage"], metrics=["psnr_y", "fid"], store=store, suite="t", name="bicubic")
    fid = res.summary["fid"]
    assert isinstance(fid, float) and fid > 0 and res.metrics == ["psnr_y", "fid"]
    assert all("fid" not in row and "fid_n_patches" not in row for row in res.per_image)  # no per-image value
    assert {r["image"] for r in res.per_image} == {"astronaut", "chelsea", "coffee", "rocket", "motorcycle_left"}
    rows = [r for r in store.all_values() if r["image"] == DATASET_IMAGE]
    assert {r["metric"]: r["value"] for r in rows} == {"fid": fid, "fid_n_patches": net.patches / 2,
                                                       "fid_n_images": 5.0}
    assert {r["metric_version"] for r in rows} == {F.FID.version}
    assert all(r["metric"] not in F.FID.outputs for r in store.all_values() if r["image"] != DATASET_IMAGE)
    # Per-image CSV without it, summary JSON with it.
    csv_path, json_path = write_outputs(res, tmp_path / "out")
    assert "fid" not in csv_path.read_text().splitlines()[0]
    assert json.loads(json_path.read_text())["fid"] == pytest.approx(fid)
    # Tables read it back from the store, as stored, beside the re-aggregated per-image metrics.
    tidy = tidy_from_store(store.values("t"))
    row = tidy[tidy["metric"] == "fid"].iloc[0]
    assert row["value"] == fid and row["n_images"] == 5 and not row["higher_is_better"]
    assert set(tidy["metric"]) == {"psnr_y", "fid"}
    assert f"{fid:.2f}" in paper_table(tidy, ["psnr_y", "fid"])
    assert "skimage FID ↓" in paper_table(tidy, ["psnr_y", "fid"])
    # Everything cached: no SR image made, no feature computed, same value.
    seen = net.patches
    (again,) = evaluate_model("bicubic", ["skimage"], metrics=["psnr_y", "fid"], store=store, suite="t", name="bicubic")
    assert net.patches == seen and again.summary["fid"] == fid and again.provenance["cached_images"] == 5
    assert len([r for r in store.all_values() if r["image"] == DATASET_IMAGE]) == 3


def test_fid_added_later_reuses_the_stored_per_image_values(net, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    folder = _folder(tmp_path, "set", 3)
    (first,) = evaluate_model("bicubic", [str(folder)], metrics=["psnr_y"], store=store)
    assert net.patches == 0
    before = {(r["image"], r["metric"]): r["run_id"] for r in store.all_values()}
    (both,) = evaluate_model("bicubic", [str(folder)], metrics=["psnr_y", "fid"], store=store)
    assert net.patches == 2 * 3 * (6 + 2)  # every image fed to FID: a 2x3 grid + 1x2 shifted in 128x192
    assert both.summary["psnr_y"] == first.summary["psnr_y"]
    after = {(r["image"], r["metric"]): r["run_id"] for r in store.all_values() if r["image"] != DATASET_IMAGE}
    assert after == before  # psnr_y rows not rewritten


def test_a_changed_image_set_recomputes_fid(net, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    folder = _folder(tmp_path, "set", 4)
    (first,) = evaluate_model("bicubic", [str(folder)], metrics=["fid"], store=store)
    assert first.per_image == [{"image": f"img{i}"} for i in range(4)] and first.summary["fid"] > 0
    seen = net.patches
    (cached,) = evaluate_model("bicubic", [str(folder)], metrics=["fid"], store=store)
    assert net.patches == seen and cached.summary["fid"] == first.summary["fid"]
    (folder / "img3.png").unlink()
    (changed,) = evaluate_model("bicubic", [str(folder)], metrics=["fid"], store=store)
    assert net.patches == seen + 2 * 3 * 8 and changed.summary["fid"] != first.summary["fid"]
    values = {r["dataset_key"]: r["value"] for r in store.all_values() if r["metric"] == "fid_n_images"}
    assert sorted(values.values()) == [3.0, 4.0]  # one dataset value per image set


def test_fid_value_does_not_depend_on_the_thread_count(net, tmp_path):
    from srbench.datasets import resolve
    from srbench.evaluation import evaluate_dataset
    from srbench.options import EvalOptions
    from srbench.sources import open_source

    folder = _folder(tmp_path, "set", 5)
    values = {workers: evaluate_dataset(open_source("bicubic"), resolve(str(folder)),
                                        EvalOptions.build(metrics=["fid"], workers=workers)).summary["fid"]
              for workers in (1, 3)}
    assert values[1] == values[3]


def test_check_compares_a_dataset_level_value(net):
    assert all("fid" not in names for names in check_metrics().values())  # not in the drift check set
    baseline = {"entries": [{"model": "m", "dataset": "d", "protocol": "sr", "metric": "fid", "value": 10.0}]}
    (row,) = compare(baseline, [{"model": "m", "dataset": "d", "protocol": "sr", "metric": "fid", "value": 10.005}])
    assert row.status == "ok" and row.tolerance == F.FID.tolerance
    (row,) = compare(baseline, [{"model": "m", "dataset": "d", "protocol": "sr", "metric": "fid", "value": 10.5}])
    assert row.status == "DRIFT"


# -- weights ------------------------------------------------------------------------------------------------
def test_missing_inception_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    with M.temporarily(F.FID), pytest.raises(WeightsUnavailableError) as err:
        list(evaluate_model("bicubic", ["skimage"], metrics=["fid"]))
    text = str(err.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in text and str(tmp_path / "w") in text
    assert F.INCEPTION_URL in text and err.value.filename == F.INCEPTION_FILENAME
    with M.temporarily(F.FID):
        (res,) = evaluate_model("bicubic", ["skimage"], metrics=["psnr_y", "fid"], skip_unavailable=True)
    assert res.summary["fid"] is None and "weights-inception" in res.unavailable["fid"]


def test_torch_fidelity_inception_with_random_weights_loads_from_the_weights_folder(tmp_path, monkeypatch):
    """The real network path, no download: torch-fidelity's InceptionV3 architecture, random weights saved
    under the file name FID looks for; its download function is restored afterwards."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    folder = tmp_path / "w"
    folder.mkdir()
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(folder))
    torch.manual_seed(0)
    with monkeypatch.context() as patch:  # build it once with PyTorch's random initialisation
        patch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        random_net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(random_net.state_dict(), folder / F.INCEPTION_FILENAME)
    download = fe.load_state_dict_from_url
    patches = F.extract_patches(_images(4, 1)[0], 64)[:2]
    features = F.inception_features(patches)
    assert features.shape == (2, 2048) and np.isfinite(features).all() and fe.load_state_dict_from_url is download
    assert F.FID.find_weights(None) == folder / F.INCEPTION_FILENAME
    np.testing.assert_allclose(features, F.inception_features(patches), rtol=1e-6)  # cached network, same


def test_an_injected_extractor_needs_no_weights_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "none"))
    with F.use_feature_extractor(RandomNet()):
        assert F.FID.find_weights(None) == tmp_path / "none"
    with pytest.raises(WeightsUnavailableError):
        F.FID.find_weights(None)


def test_descriptor_replace_keeps_its_level():
    copy = dataclasses.replace(F.FID, version="other")
    assert copy.is_dataset_level and copy.accumulator is F.ACCUMULATOR
