"""srbench's LPIPS against the lpips package itself, given the same AlexNet backbone through lpips' own loading.

Random backbone weights (ImageNet's cannot be downloaded here): the comparison is of the mechanics, which is
what srbench adds: reading the backbone file, and scaling 0..255 images (metric, x / 127.5 - 1) and 0..1 tensors
(training loss, 2x - 1) to the [-1, 1] that LPIPS expects.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
lpips_pkg = pytest.importorskip("lpips")


@pytest.fixture
def backbone(tmp_path, monkeypatch):
    torch.manual_seed(1)
    state = torchvision.models.alexnet().state_dict()
    torch.save(state, tmp_path / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    return state


def _reference(state, monkeypatch):
    """lpips.LPIPS building its AlexNet the way it always does, with torchvision handing it these weights."""
    import lpips.pretrained_networks as pn

    build = pn.tv.alexnet

    def alexnet(*args, **kwargs):
        net = build()
        net.load_state_dict(state)
        return net

    monkeypatch.setattr(pn.tv, "alexnet", alexnet)
    return lpips_pkg.LPIPS(net="alex", version="0.1", verbose=False).eval()


def test_metric_equals_the_lpips_package_on_uint8_images(backbone, monkeypatch):
    from srbench import metrics as M

    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 61, a.shape), 0, 255).astype(np.uint8)
    ref = _reference(backbone, monkeypatch)
    with torch.no_grad():
        expected = ref(lpips_pkg.im2tensor(a), lpips_pkg.im2tensor(b)).item()  # im2tensor: x / 127.5 - 1
    assert expected > 0
    assert M.lpips(a, b) == pytest.approx(expected, rel=1e-6)


def test_training_loss_scales_0_1_tensors_as_the_metric_scales_0_255_images(backbone, monkeypatch):
    from srbench import metrics as M
    from srbench.train.losses import LPIPSLoss

    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    b = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    as_tensor = [torch.from_numpy(x.transpose(2, 0, 1).astype(np.float32) / 255.0)[None] for x in (a, b)]
    with torch.no_grad():
        loss = LPIPSLoss()(*as_tensor).item()
    assert loss == pytest.approx(M.lpips(a, b), rel=1e-5)
    ref = _reference(backbone, monkeypatch)
    with torch.no_grad():
        expected = ref(*[t * 2 - 1 for t in as_tensor]).item()
    assert loss == pytest.approx(expected, rel=1e-5)
