"""The two training stages, BasicSR's model classes: each owns its networks, optimisers, schedulers and EMA.

``PsnrStage`` trains the generator on the pixel loss; ``GanStage`` adds the discriminator, the perceptual (VGG19, LPIPS
or DISTS), adversarial (and optional LPIPS and frequency) losses and an EMA of the generator. ``step(lr, hr)`` runs one
iteration and returns its logged values; ``state_dict()``/``load_state_dict()`` hold everything exact resume needs
except the iteration number, which the caller keeps in ``iteration`` (the gradient-penalty noise depends on it).

Construction draws from torch's global generator in a fixed order (generator, its ``init`` checkpoint,
discriminator, perceptual networks, EMA), so a given seed builds bitwise the same networks.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast

import torch
from torch import nn

from srbench.archs import DISCRIMINATORS, GENERATORS, build_generator, same_generator
from srbench.checkpoints import generator_info, load_generator
from srbench.errors import BadInputError, SrbenchError, WeightsUnavailableError
from srbench.train import losses as L
from srbench.train.config import LossConfig, StageConfig, TrainConfig, check_gan_batch
from srbench.train.ddp import Dist, unwrap, wrap
from srbench.weightfiles import CheckpointError


class TrainingDiverged(SrbenchError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class NonFiniteLoss(TrainingDiverged):
    """A stage's loss ``name`` was ``value`` at iteration ``iteration``; the trainer words it for the user."""

    def __init__(self, iteration: int, name: str, value: float) -> None:
        super().__init__(f"iteration {iteration}: loss {name} is {value}")
        self.iteration, self.name, self.value = iteration, name, value


_Step = TypeVar("_Step", bound=Callable[..., dict[str, float]])


def flushing_denormals(step: _Step) -> _Step:
    """Run a training step with denormal floats flushed to zero (FTZ/DAZ; every intra-op thread follows the
    flag), then restore torch's default. On a CPU, tiny activations and gradients (deep layers of a randomly
    initialised VGG19, a discriminator early in training) otherwise fall into the denormal range, where each
    operation is tens of times slower: smoke GAN steps took 1 to 6 s instead of 0.2 s at random moments. The
    change to the numbers is below 1.2e-38 in magnitude and the same in every run (resume stays bitwise); it is
    part of srbench's training code, so of the training cache's fingerprint through the version. Without effect
    where unsupported (GPUs keep their own handling)."""

    @functools.wraps(step)
    def wrapped(*args, **kwargs):
        torch.set_flush_denormal(True)
        try:
            return step(*args, **kwargs)
        finally:
            torch.set_flush_denormal(False)

    return cast(_Step, wrapped)


def _adam(module: nn.Module, lr: float, sc: StageConfig) -> tuple[torch.optim.Optimizer,
                                                                 torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.Adam(module.parameters(), lr=lr, betas=sc.betas)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, list(sc.milestones), sc.gamma)


class PsnrStage:
    """The PSNR-oriented stage: the generator alone, on the pixel loss."""

    name = "psnr"

    def __init__(self, config: TrainConfig, device: torch.device, ranks: Dist | None = None, *,
                 init: str | None = None) -> None:
        ranks = ranks or Dist()
        self.config = config
        self.sc = config.stage(self.name)
        self.device = device
        self.world = ranks.world
        self.iteration = 0  # completed steps
        variant = GENERATORS[config.generator]
        self.arch = variant.arch
        self.gen_config = {**variant.config, **config.generator_config, "scale": config.data.scale}
        self.g = build_generator(self.arch, self.gen_config).to(device)
        self.init_source: str | None = None
        self.init_sha256 = ""  # the starting weights' file ("": none), kept with every training state
        if init is not None:
            self._load_init(init)
        self._build()
        if device.type == "cuda":
            self.g = self.g.to(memory_format=torch.channels_last)
        self.g = wrap(self.g, device, ranks.world)
        self._wrap()
        self.opt_g, self.sched_g = _adam(self.g, self.sc.lr, self.sc)
        self._optimisers()

    # -- hooks the GAN stage fills in (the order of construction is part of the seed's result) ---------------
    def _build(self) -> None:
        pass

    def _wrap(self) -> None:
        pass

    def _optimisers(self) -> None:
        pass

    def _load_init(self, init: str) -> None:
        try:
            loaded = load_generator(init, self.arch)
        except CheckpointError as exc:
            raise BadInputError(f"--init: {exc}") from None
        theirs = generator_info(loaded)["config"]
        if not same_generator(self.arch, theirs, self.gen_config):
            raise BadInputError(f"--init {init}: generator {theirs} differs from this run's {self.gen_config}")
        self.g.load_state_dict(loaded.state_dict())
        self.init_source = str(init)
        self.init_sha256 = generator_info(loaded)["sha256"] or ""

    # -- what the trainer reads ------------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        """The generator, outside DDP (what checkpoints and validation use)."""
        return unwrap(self.g)

    @property
    def ema(self) -> nn.Module | None:
        return None

    @property
    def lr(self) -> float:
        return self.opt_g.param_groups[0]["lr"]

    def networks(self) -> list[nn.Module]:
        """Every network with state, outside DDP (the ones whose buffers ranks must share)."""
        return [self.generator]

    def train(self) -> None:
        self.g.train()

    def state_dict(self) -> dict:
        return {"g": self.generator.state_dict(), "opt_g": self.opt_g.state_dict(),
                "sched_g": self.sched_g.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["g"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.sched_g.load_state_dict(state["sched_g"])

    # -- one iteration ---------------------------------------------------------------------------------------
    def _check(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        out = {}
        for name, value in values.items():
            v = float(value.detach())
            if not math.isfinite(v):
                raise NonFiniteLoss(self.iteration + 1, name, v)
            out[name] = v
        return out

    def _forward(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hr on the device, the generator's output for lr in float32); bfloat16 autocast on CUDA."""
        lr = lr.to(self.device, non_blocking=True)
        hr = hr.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            sr = self.g(lr)
        return hr, sr.float()

    @flushing_denormals
    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        hr, sr = self._forward(lr, hr)
        l_pix = L.pixel_loss(sr, hr, self.config.loss.pixel)
        logs = self._check({"l_pix": l_pix})
        self.opt_g.zero_grad(set_to_none=True)
        l_pix.backward()
        self.opt_g.step()
        self.sched_g.step()
        self.iteration += 1
        return logs


def _perceptual(loss: LossConfig, preset: str = "paper") -> nn.Module:
    """The perceptual term's network (frozen), as ``loss.perceptual_backbone`` names it. A missing weights file is
    an error that names it; with ``loss.vgg_weights = "random"`` no ImageNet file is read (logged), and under the
    smoke preset DISTS's learned alpha/beta, when absent, are uniform (logged), as its backbone is random."""
    weights = None if loss.vgg_weights == "random" else loss.vgg_weights
    with _preset_noted(preset):
        if loss.perceptual_backbone == "lpips":
            return L.LPIPSLoss(weights=weights)
        if loss.perceptual_backbone == "dists":
            return _dists(weights, preset)
        return L.PerceptualLoss({loss.perceptual_layer: 1.0}, weights=weights, criterion=loss.perceptual_criterion)


@contextlib.contextmanager
def _preset_noted(preset: str) -> Iterator[None]:
    try:
        yield
    except WeightsUnavailableError as exc:
        if preset != "smoke":
            exc.args = (f"{exc} (the {preset} preset trains with it: only the smoke preset trains the perceptual "
                        "term without the ImageNet files, on random backbones)",)
        raise


def pretrained_files(loss: LossConfig, preset: str = "paper") -> dict[str, Path]:
    """Every pretrained file the gan stage's losses read and that moves its weights, by role (``perceptual``,
    ``dists_alpha_beta``, ``lpips``); none for random backbones. A missing file is the error training would give."""
    from srbench.archs import VGGFeatures

    weights = None if loss.vgg_weights == "random" else loss.vgg_weights
    files = {}
    with _preset_noted(preset):
        if loss.perceptual_weight > 0:
            if loss.perceptual_backbone == "dists":
                try:
                    files["dists_alpha_beta"] = L.dists_weights_path()
                except WeightsUnavailableError:
                    if weights is not None or preset != "smoke":  # else uniform alpha/beta (_dists)
                        raise
            if weights is not None:
                files["perceptual"] = {"lpips": L.alexnet_file, "dists": L.vgg16_file}.get(
                    loss.perceptual_backbone, VGGFeatures.weights_path)(weights)
        if loss.lpips_weight > 0:
            files["lpips"] = L.alexnet_file("imagenet")
    return files


def pretrained_sha256(loss: LossConfig, preset: str = "paper") -> dict[str, str]:
    """The sha256 of each of :func:`pretrained_files`, by role: what the training cache and a resumed run key them
    by, since one path (or the weights folder's ``imagenet`` file) can hold another network. An unreadable file is
    a :class:`CheckpointError` naming it, as loading it would be."""
    from srbench.weights import sha256

    out = {}
    for role, path in pretrained_files(loss, preset).items():
        try:
            out[role] = sha256(path)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    return out


def _dists(weights: str | None, preset: str) -> nn.Module:
    """DISTS; a smoke run on a random VGG16 without the learned alpha/beta gets uniform ones (their values mean
    nothing on a random backbone anyway), logged like the random backbone."""
    if weights is None and preset == "smoke":
        try:
            L.dists_weights_path()
        except WeightsUnavailableError:
            L.log.warning("DISTSLoss: uniform alpha/beta (the dists-pytorch package's weights.pt is missing; "
                          "smoke preset)")
            ones = torch.ones(1, sum(L.DISTS_CHANNELS), 1, 1)
            return L.DISTSLoss(weights=None, alpha_beta=(ones, ones))
    return L.DISTSLoss(weights=weights)


class GanStage(PsnrStage):
    """The GAN stage: generator and discriminator steps on the same batch, then the generator's EMA."""

    name = "gan"

    def _build(self) -> None:
        loss = self.config.loss
        d = DISCRIMINATORS[self.sc.discriminator](num_feat=self.sc.d_num_feat, input_size=self.config.data.patch_size)
        check_gan_batch(self.config)
        self.d: nn.Module = d.to(self.device)
        self.percep = _perceptual(loss, self.config.preset).to(self.device)
        self.lpips = L.LPIPSLoss().to(self.device) if loss.lpips_weight > 0 else None
        self._ema = build_generator(self.arch, self.gen_config).to(self.device)
        self._ema.load_state_dict(self.g.state_dict())
        self._ema.requires_grad_(False)

    def _wrap(self) -> None:
        self.d = wrap(self.d, self.device, self.world)

    def _optimisers(self) -> None:
        self.opt_d, self.sched_d = _adam(self.d, self.sc.d_lr, self.sc)

    @property
    def ema(self) -> nn.Module:
        return self._ema

    def networks(self) -> list[nn.Module]:
        return [self.generator, unwrap(self.d), self._ema]

    def train(self) -> None:
        self.g.train()
        self.d.train()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "d": unwrap(self.d).state_dict(), "opt_d": self.opt_d.state_dict(),
                "sched_d": self.sched_d.state_dict(), "ema": self._ema.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        unwrap(self.d).load_state_dict(state["d"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_d.load_state_dict(state["sched_d"])
        self._ema.load_state_dict(state["ema"])

    @flushing_denormals
    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        self.d.requires_grad_(False)  # the generator step must not train D
        hr, sr = self._forward(lr, hr)
        logs = self._generator_step(sr, hr)
        logs.update(self._discriminator_step(sr, hr))
        self.sched_g.step()
        self.sched_d.step()
        self._update_ema()
        self.iteration += 1
        return logs

    def _generator_step(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        loss_cfg = self.config.loss
        terms = {
            "l_pix": loss_cfg.pixel_weight * L.pixel_loss(sr, hr, loss_cfg.pixel),
            "l_percep": loss_cfg.perceptual_weight * self.percep(sr, hr),
        }
        real_logits = self.d(hr).detach()
        fake_logits = self.d(sr)
        terms["l_g_adv"] = loss_cfg.adversarial_weight * L.generator_loss(loss_cfg.adversarial, real_logits,
                                                                          fake_logits)
        if self.lpips is not None:
            terms["l_lpips"] = loss_cfg.lpips_weight * self.lpips(sr, hr)
        if loss_cfg.frequency != "none":
            # Named by the term: a log's l_fft is the fft-l1 term, as before the frequency choice.
            name = {"fft-l1": "l_fft", "fft": "l_fft_norm", "spectral": "l_spectral"}[loss_cfg.frequency]
            terms[name] = loss_cfg.frequency_weight * L.frequency_loss(loss_cfg.frequency, sr, hr)
        l_g = sum(terms.values())
        logs = self._check({**terms, "l_g": l_g})
        self.opt_g.zero_grad(set_to_none=True)
        l_g.backward()
        self.opt_g.step()
        return logs

    def _discriminator_step(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        """D on the same batch; ``sr`` is detached, so this never reaches the generator."""
        loss_cfg = self.config.loss
        self.d.requires_grad_(True)
        real_logits = self.d(hr)
        fake_logits = self.d(sr.detach())
        l_d = L.discriminator_loss(loss_cfg.adversarial, real_logits, fake_logits)
        d_terms = {"l_d": l_d}
        if L.uses_gradient_penalty(loss_cfg.adversarial):
            seed = self.config.seed * 1_000_003 + self.iteration + 1
            gen = torch.Generator(device=self.device).manual_seed(seed)
            d_terms["l_d_gp"] = loss_cfg.gp_weight * L.gradient_penalty(self.d, hr, sr, gen)
        l_d_total = cast(torch.Tensor, sum(d_terms.values()))  # 0 + tensors: a tensor (typing only)
        logs = self._check({**d_terms, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()})
        self.opt_d.zero_grad(set_to_none=True)
        l_d_total.backward()
        self.opt_d.step()
        return logs

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.sc.ema_decay
        for p_ema, p in zip(self._ema.state_dict().values(), self.generator.state_dict().values(), strict=True):
            if p_ema.is_floating_point():
                p_ema.mul_(decay).add_(p.detach(), alpha=1 - decay)
            else:
                p_ema.copy_(p)


STAGES: dict[str, type[PsnrStage]] = {"psnr": PsnrStage, "gan": GanStage}
