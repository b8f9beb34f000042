"""The evaluation's inputs resolved once (issue 22): :class:`srbench.options.EvalOptions` checks each value with
one line before any work, and a model string is classified in one place (:func:`srbench.infer.classify_generator`)."""

from __future__ import annotations

import numpy as np
import pytest

from srbench import infer as I
from srbench.errors import BadInputError
from srbench.images import write_png
from srbench.options import EvalOptions
from srbench.protocols import PROTOCOLS


def test_options_resolve_the_protocol_and_its_metrics_once():
    options = EvalOptions.build(protocol="pirm", metrics=["pi"], scale=2, data_root="~/d", weights_dir=None)
    assert options.protocol is PROTOCOLS["pirm"]
    assert options.metrics == ("niqe", "ma", "pi")  # PI brings what it is made of, in the protocol's order
    assert (options.scale, options.data_root, options.weights_dir) == (2, "~/d", None)
    assert EvalOptions.build().metrics == tuple(PROTOCOLS["sr"].default_metrics)
    sr = options.under("sr", ["psnr_y"])
    assert (sr.protocol.name, sr.metrics, sr.scale) == ("sr", ("psnr_y",), 2)  # the rest unchanged
    with pytest.raises(AttributeError):
        options.scale = 4  # type: ignore[misc]  # frozen: handed down, never changed on the way


@pytest.mark.parametrize(("settings", "words"), [
    ({"device": "gpu"}, "unknown device 'gpu': use auto, cpu, cuda"),
    ({"workers": 0}, "workers must be a positive whole number"),
    ({"scale": 0}, "scale must be a positive integer, got 0"),
    ({"protocol": "nope"}, "unknown protocol 'nope'"),
    ({"metrics": ["psnr_rgb"]}, "unknown metric 'psnr_rgb' for protocol 'sr'"),
])
def test_a_bad_option_is_one_line_before_any_work(settings, words):
    with pytest.raises(BadInputError, match=words.replace("(", r"\(")):
        EvalOptions.build(**settings)


def test_a_model_string_is_classified_once(tmp_path, monkeypatch):
    import torch

    from srbench.archs import get_generator
    from srbench.checkpoints import save_checkpoint
    from srbench.sources import FolderSource, GeneratorSource, open_source

    torch.manual_seed(0)
    spec = get_generator("rrdb23-smoke")
    ckpt = save_checkpoint(spec.build(), tmp_path / "g.safetensors", arch="rrdbnet",
                           config={**spec.config, "scale": 4}, variant="rrdb23-smoke")
    assert I.classify_generator(str(ckpt)) == I.GeneratorRef(str(ckpt), "file")
    assert I.classify_generator("rrdb23") == I.GeneratorRef("rrdb23", "variant")
    assert I.classify_generator(str(tmp_path)) is None  # a folder (of SR images) names no generator
    seen: list[str] = []
    classify = I.classify_generator
    monkeypatch.setattr(I, "classify_generator", lambda text, **kw: seen.append(text) or classify(text, **kw))
    source = open_source(str(ckpt), device="cpu")
    assert isinstance(source, GeneratorSource) and source.name == "rrdb23-smoke"
    assert seen == [str(ckpt)]
    folder = tmp_path / "sr"
    write_png(folder / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert isinstance(open_source(str(folder)), FolderSource) and seen == [str(ckpt), str(folder)]
    with pytest.raises(BadInputError, match="is neither a checkpoint file, a variant"):
        I.resolve_generator(str(tmp_path))
