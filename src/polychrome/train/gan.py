"""Training the cicgan family: classification losses, then a multi-scale PatchGAN critic.

:class:`GanTrainer` is the :class:`~polychrome.train.loop.Trainer` (data, schedule, EMA, validation,
TensorBoard, DDP, exact resume) with its own :meth:`train_step` and a second network:

1. Pre-training (steps < ``gan_start_step``): the generator alone, on
   ``cic_class_weight * class_loss`` (soft-encoded, rebalanced or focal, at the heads' half resolution)
   ``+ cic_ab_weight * smooth-L1(ab_net)`` ``+ cic_hist_weight * EMD(histograms)``
   ``+ cic_conf_weight * confidence_loss``.
2. Adversarial fine-tuning (from ``gan_start_step``): the same terms plus ``adv_weight * hinge G`` and
   ``fm_weight * feature matching`` from the 3-scale PatchGAN (models/patchgan.py), which gets its own
   AdamW and one hinge step per generator step on the same photos (fakes detached).
3. Distillation (in either phase, with ``teachers``): ``+ distill_class_weight * CE(bin logits, the teachers'
   mean bin probabilities)`` ``+ distill_ab_weight * smooth-L1(ab_net, the teachers' mean ab_net)``, the mean over
   the frozen teachers and, with ``teacher_flip``, each photo's mirror image (:meth:`GanTrainer.teacher_targets`).

The critic is built under a forked RNG with its own seed, so adding it leaves the generator's
random stream exactly as the plain trainer would draw it; its weights and optimiser travel in the
checkpoint (``disc``, ``disc_optimizer``) and a resumed run continues bit for bit.

Config: :class:`GanTrainConfig` adds its fields to TrainConfig; build it with :func:`make_gan_config`
(same files and overrides as ``make_config``). TrainConfig's ``loss`` and ``loss_*`` fields are not used here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from polychrome.color.lab import net_to_ab
from polychrome.color.palette import ABPalette, prior_palette
from polychrome.color.quantize import ab_histograms, soft_encode
from polychrome.losses import (
    class_loss,
    confidence_loss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    histogram_loss,
)
from polychrome.models.patchgan import MultiScalePatchGAN
from polychrome.train.config import ConfigError, TrainConfig, make_config
from polychrome.train.checkpoint import read_checkpoint, read_training_checkpoint
from polychrome.train.loop import Trainer, lab_batch, model_l_net

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GanTrainConfig(TrainConfig):
    trainer: str = "gan"  # this class belongs to the GAN trainer (a config file says trainer = "gan")
    model: str = "cicgan"  # a model returning CicganOutput with forward(L_net, return_all=True)
    out_dir: str = "runs/cicgan"  # checkpoints, resolved config, TensorBoard logs
    palette: str = ""  # ab palette file (polychrome palette build); "data": count the model's own bins' prior
    # over palette_photos training photos at start; "" = the model's own (sRGB grid, UNIFORM prior: rebalancing is a no-op)
    palette_photos: int = 2000  # palette = "data": seeded subset of the training photos counted (0 = all)
    rebalance: bool = True  # weight the class loss by the palette's rebalancing weights (Zhang et al.)
    focal_gamma: float = 0.0  # focal exponent of the class loss (0 = cross-entropy; the alternative to rebalancing)
    cic_class_weight: float = 1.0  # weight of the soft-encoded classification loss on ab_class
    cic_ab_weight: float = 10.0  # weight of smooth-L1 on the final ab (network units, beta = smooth_l1_beta)
    # Whether that smooth-L1 also trains the bin logits, through the annealed mean. True pulls the decoded
    # colour toward the average of the plausible ones (a regression loss); False leaves the logits to the
    # class loss alone (Zhang et al.): the smooth-L1 (and the adversarial terms, which read the same final ab)
    # then train the residual and the layers beneath it, not the 1x1 head's bin rows.
    cic_ab_through_bins: bool = True
    cic_hist_weight: float = 0.1  # weight of the histogram EMD (bins) of the global colour head, a and b summed
    cic_conf_weight: float = 0.1  # weight of the confidence map's BCE against exp(-|ab error| / 10)
    gan_start_step: int = 1000  # generator-only pre-training steps before the critic joins (0 = adversarial at once)
    adv_weight: float = 0.1  # weight of the generator's hinge term
    fm_weight: float = 1.0  # weight of PatchGAN feature matching (L1 over layers and scales)
    d_lr: float = 2e-4  # critic AdamW learning rate (constant)
    d_betas: tuple = (0.5, 0.999)  # critic AdamW betas (beta1 0.5, the usual GAN choice)
    d_base: int = 64  # critic base width
    d_scales: int = 3  # critic scales (each needs 24 * 2**(scale) px of image_size)
    # A leg that continues an earlier GAN run: start the critic from that run's critic (a training checkpoint .pt
    # with its ``disc``, or a .safetensors of the critic's weights, e.g. ``polychrome export --critic``), loaded
    # strictly, with a fresh critic optimiser; "" = a new random critic. Ignored by --resume (it has its own).
    init_critic: str = ""
    # Distillation: the model also learns the predictions of trained teachers (bundled names, export folders or
    # .safetensors of classification colourisers with the same bins), averaged over the teachers and, with
    # teacher_flip, over each photo and its mirror image (mirrored back): an ensemble and test-time flip averaging
    # taught to one network that costs one pass at inference. The teachers see the clean photo (no l_noise or
    # l_sharpen), decode at the model's own training temperature and are never trained.
    teachers: tuple = ()
    teacher_flip: bool = True
    distill_class_weight: float = 0.0  # cross-entropy of the bin logits against the teachers' mean bin probabilities
    distill_ab_weight: float = 0.0  # smooth-L1 of the final ab against the teachers' mean final ab (network units)
    # The class target's sharpness: the teachers' mean bin probabilities raised to this power and renormalised (> 1
    # sharper, keeping the chroma that averaging over mirror images flattens; 1 = the mean as it is). The ab target
    # stays the teachers' mean final ab: with distill_ab_weight=0 the sharpened class target alone sets the colour.
    teacher_sharpen: float = 1.0


def make_gan_config(file: str | Path | None = None, overrides: list[str] | dict | None = None) -> GanTrainConfig:
    """A :class:`GanTrainConfig` from defaults <- file <- overrides, checked like make_config plus its own fields."""
    cfg = make_config(file, overrides, cls=GanTrainConfig)
    for k in ("cic_class_weight", "cic_ab_weight", "cic_hist_weight", "cic_conf_weight", "adv_weight", "fm_weight",
              "focal_gamma", "distill_class_weight", "distill_ab_weight"):
        if not (math.isfinite(getattr(cfg, k)) and getattr(cfg, k) >= 0):
            raise ConfigError(f"{k}: must be a finite number >= 0, got {getattr(cfg, k)}")
    if cfg.palette_photos < 0:
        raise ConfigError(f"palette_photos: must be >= 0, got {cfg.palette_photos}")
    if cfg.gan_start_step < 0 or cfg.d_scales < 1 or cfg.d_base < 1:
        raise ConfigError("gan_start_step must be >= 0, d_scales and d_base >= 1")
    if not (math.isfinite(cfg.teacher_sharpen) and cfg.teacher_sharpen > 0):
        raise ConfigError(f"teacher_sharpen: must be a finite number > 0, got {cfg.teacher_sharpen}")
    distilling = cfg.distill_class_weight > 0 or cfg.distill_ab_weight > 0
    if not all(isinstance(t, str) and t for t in cfg.teachers):
        raise ConfigError(f"teachers: must be a list of model names or paths, got {list(cfg.teachers)!r}")
    if distilling != bool(cfg.teachers):
        raise ConfigError("teachers and distill_class_weight / distill_ab_weight go together: give teachers and a "
                          "distillation weight above 0, or neither")
    if cfg.teacher_sharpen != 1 and not cfg.distill_class_weight:
        raise ConfigError("teacher_sharpen: sharpens the class target only, so it needs distill_class_weight > 0")
    if cfg.teachers and cfg.teacher_flip and cfg.image_size % 2:
        raise ConfigError(f"teacher_flip: needs an even image_size (the heads' half-resolution grid mirrored onto "
                          f"itself), got {cfg.image_size}")
    need = 24 * 2 ** (cfg.d_scales - 1)
    if cfg.image_size < need:
        raise ConfigError(f"image_size: a {cfg.d_scales}-scale critic needs at least {need} px, got {cfg.image_size}")
    return cfg


def gan_checkpoint(path: str | Path) -> dict:
    """A GAN run's training checkpoint (:func:`read_checkpoint`); ValueError naming the file when it is not readable
    or holds no critic weights."""
    ck = read_checkpoint(path, needs=())
    if not isinstance(ck, dict) or "disc" not in ck:
        raise ValueError(f"{path}: no critic weights (not a GAN run's checkpoint)")
    return ck


def read_critic_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The critic's weights in a GAN training checkpoint (``disc``) or a .safetensors file; ConfigError naming
    the file when it cannot be read or holds no critic."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"init_critic: {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ConfigError(f"init_critic: {path}: not a readable .safetensors file ({str(e)[:160]})") from None
    try:
        return gan_checkpoint(path)["disc"]
    except ValueError as e:
        raise ConfigError(f"init_critic: {e}") from None


def load_init_critic(disc: torch.nn.Module, spec: str) -> None:
    """Copy the critic weights of ``spec`` (see :func:`read_critic_state`) into ``disc``, strictly, in its dtype."""
    state = read_critic_state(spec)
    own = disc.state_dict()
    state = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in state.items()}
    try:
        disc.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ConfigError(f"init_critic: {spec} does not fit this critic (d_base, d_scales: {first})") from None


def export_critic(ckpt_path: str | Path, out: str | Path, half: bool = False) -> Path:
    """Write the critic of a GAN training checkpoint as ``out`` (.safetensors, fp16 if ``half``), the file a later
    leg's ``init_critic`` reads. ValueError naming the checkpoint when it holds no critic."""
    from safetensors.torch import save_file

    ck = gan_checkpoint(ckpt_path)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in ck["disc"].items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"what": "polychrome GAN critic (MultiScalePatchGAN)", "source": Path(ckpt_path).name,
                                         "step": str(ck.get("step", ""))})
    return out


def load_teacher(spec: str, student: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """A teacher for distillation (see GanTrainConfig.teachers): the model ``spec`` names, frozen, in eval mode.
    ConfigError naming it when it cannot be loaded or is not a classification colouriser with the student's bins."""
    from polychrome.hub import ModelLoadError, load_model

    try:
        teacher = load_model(spec, device)
    except ModelLoadError as e:
        raise ConfigError(f"teachers: {e}") from None
    bins = getattr(getattr(teacher, "palette", None), "bins", None)
    own = student.palette.bins
    if bins is None or bins.shape != own.shape or not torch.allclose(bins.to(own), own):
        raise ConfigError(f"teachers: {spec} is not a classification colouriser with this model's "
                          f"{own.shape[0]} ab bins")
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    return teacher.eval().requires_grad_(False)


class GanTrainer(Trainer):
    """Trainer for cicgan models (see the module docstring). Same interface: ``fit()``, ``validate()``, ``close()``."""

    cfg: GanTrainConfig

    def __init__(self, cfg: GanTrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False):
        if not isinstance(cfg, GanTrainConfig):
            raise ConfigError("GanTrainer needs a GanTrainConfig (train.gan.make_gan_config)")
        self._disc_checkpoint: dict | None = None
        super().__init__(cfg, resume=resume, progress=progress, overwrite=overwrite)
        try:
            self._build_critic(cfg, resume)
        except BaseException:
            self.close()  # the base trainer already opened its TensorBoard writer (and process group)
            raise

    def _build_critic(self, cfg: GanTrainConfig, resume: bool) -> None:
        if not hasattr(self.model, "palette"):
            raise ConfigError(f"model {cfg.model!r} is not a classification colouriser (it has no ab palette)")
        if cfg.palette and not resume:  # a resumed model already holds its palette in its buffers
            try:
                palette = self._data_palette() if cfg.palette == "data" else ABPalette.load(cfg.palette)
                self.model.palette.set_(palette)
                self.ema.module.palette.set_(palette)
            except (OSError, ValueError) as e:
                raise ConfigError(f"palette: {e}") from None
        # Its own seed and a forked RNG: the generator's random stream stays what the plain trainer draws.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 104_729)
            disc = MultiScalePatchGAN(3, cfg.d_base, cfg.d_scales).to(self.device)
        self.disc = disc
        self.ddp_disc = DistributedDataParallel(disc) if self.dist.world > 1 else disc
        self.d_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.d_lr, betas=tuple(cfg.d_betas), weight_decay=0.0)
        if self._disc_checkpoint is not None:
            self.disc.load_state_dict(self._disc_checkpoint["disc"], strict=True)
            self.d_opt.load_state_dict(self._disc_checkpoint["disc_optimizer"])
            self._disc_checkpoint = None
        elif cfg.init_critic:
            load_init_critic(disc, cfg.init_critic)
            log.info("critic: started from %s", cfg.init_critic)
        self.teachers = [load_teacher(t, self.model, self.device, cfg.channels_last) for t in cfg.teachers]
        if self.teachers:
            log.info("distillation: %d teacher(s)%s", len(self.teachers), ", flip-averaged" if cfg.teacher_flip else "")

    def _data_palette(self) -> ABPalette:
        """The model's own bins with the prior and rebalancing weights of (a seeded subset of) the training
        photos; also written to OUT_DIR/palette.safetensors (rank 0) to be inspected or reused as a file."""
        cfg = self.cfg
        paths = list(self.train_set.paths)  # the training split only: validation photos stay unseen
        if 0 < cfg.palette_photos < len(paths):
            paths = sorted(random.Random(cfg.seed).sample(sorted(paths), cfg.palette_photos))
        palette = prior_palette(self.model.palette.bins.cpu(), paths)
        if self.dist.rank == 0:
            palette.save(self.out / "palette.safetensors", {"method": "data", "photos": str(len(paths))})
        log.info("palette: prior of %d bins counted over %d training photos", palette.num_bins, len(paths))
        return palette

    # ----------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        return {**super().state(), "disc": self.disc.state_dict(), "disc_optimizer": self.d_opt.state_dict()}

    def _resume(self) -> None:
        # Called from Trainer.__init__, before the critic exists: keep its part for __init__ to load.
        super()._resume()
        ck = read_training_checkpoint(self.out / "last.pt")
        if "disc" not in ck:
            raise ValueError(f"{self.out / 'last.pt'}: not a GAN checkpoint (no critic weights)")
        self._disc_checkpoint = {"disc": ck["disc"], "disc_optimizer": ck["disc_optimizer"]}

    # ----------------------------------------------------------------- training
    @property
    def adversarial(self) -> bool:
        """Whether the critic takes part in the current step."""
        return self.step >= self.cfg.gan_start_step

    def generator_losses(self, out, ab_true_net: torch.Tensor) -> dict[str, torch.Tensor]:
        """The non-adversarial terms (unweighted) for a CicganOutput against the true ab (network units)."""
        cfg = self.cfg
        palette = self.model.palette
        ab_true = net_to_ab(ab_true_net.float())  # (B, 2, H, W) CIE
        ab_half = F.interpolate(ab_true, size=out.ab.shape[-2:], mode="area")  # the heads' resolution
        with torch.no_grad():
            soft = soft_encode(ab_half, palette.bins)
            hist_a, hist_b = ab_histograms(ab_true)
        return {
            "class": class_loss(out.ab_class, soft, palette.weights if cfg.rebalance else None, cfg.focal_gamma),
            "ab": F.smooth_l1_loss(out.ab_net.float(), ab_true_net.float(), beta=cfg.smooth_l1_beta),
            "hist": histogram_loss(out.hist_a, hist_a) + histogram_loss(out.hist_b, hist_b),
            "conf": confidence_loss(out.confidence, out.ab.detach(), ab_half),
        }

    @torch.no_grad()
    def teacher_targets(self, L_net: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teachers' mean prediction for L_net (B, 1, H, W): bin probabilities (B, Q, ceil(H/2), ceil(W/2)) and
        final ab (B, 2, H, W, network units), each teacher once and, with ``teacher_flip``, on the mirror image too
        (mirrored back), decoded at the model's own temperature; the probabilities sharpened by ``teacher_sharpen``."""
        flips = (False, True) if self.cfg.teacher_flip else (False,)
        probs = ab = None
        for teacher in self.teachers:
            for flip in flips:
                x = L_net.flip(-1) if flip else L_net
                with self._autocast():
                    out = teacher(self._to_input(x), return_all=True, temperature=self.model.temperature,
                                  decode_mode=self.model.decode_mode)
                p, a = torch.softmax(out.ab_class.float(), 1), out.ab_net.float()
                if flip:
                    p, a = p.flip(-1), a.flip(-1)
                probs, ab = (p, a) if probs is None else (probs + p, ab + a)
        n = len(self.teachers) * len(flips)
        probs = probs / n
        if self.cfg.teacher_sharpen != 1:
            probs = probs.clamp_min(1e-12).pow(self.cfg.teacher_sharpen)
            probs = probs / probs.sum(1, keepdim=True)
        return probs, ab / n

    def train_step(self, micro_batches: list[torch.Tensor]) -> float:
        """One generator step (and, once adversarial, one critic step) over ``grad_accum`` micro-batches."""
        cfg = self.cfg
        n = len(micro_batches)
        adversarial = self.adversarial
        weights = {"class": cfg.cic_class_weight, "ab": cfg.cic_ab_weight, "hist": cfg.cic_hist_weight,
                   "conf": cfg.cic_conf_weight, "adv": cfg.adv_weight, "fm": cfg.fm_weight,
                   "distill_class": cfg.distill_class_weight, "distill_ab": cfg.distill_ab_weight}
        self.ddp.train()
        self.disc.train()
        self.disc.requires_grad_(False)  # the generator's step must not touch (or pay for) critic gradients
        total, terms_sum, pairs = 0.0, {}, []
        for i, rgb in enumerate(micro_batches):
            L, L_net, ab_true = lab_batch(rgb.to(self.device, non_blocking=True))
            taught = self.teacher_targets(L_net) if self.teachers else None  # from the clean photo
            if cfg.l_noise or cfg.l_sharpen:
                L_net = model_l_net(L, cfg, self.step, i, self.dist.rank)
            last = i == n - 1
            sync = contextlib.nullcontext() if (last or self.dist.world == 1) else self.ddp.no_sync()
            with sync:
                with self._autocast():
                    out = self.ddp(self._to_input(L_net), return_all=True, detach_bins=not cfg.cic_ab_through_bins)
                terms = self.generator_losses(out, ab_true)
                if taught is not None:
                    terms["distill_class"] = class_loss(out.ab_class.float(), taught[0])
                    terms["distill_ab"] = F.smooth_l1_loss(out.ab_net.float(), taught[1], beta=cfg.smooth_l1_beta)
                if adversarial:
                    real = torch.cat([L_net, ab_true], 1)
                    fake = torch.cat([L_net, out.ab_net.float()], 1)
                    with self._autocast():
                        f_logits, f_feats = self.disc(fake, return_features=True)
                        with torch.no_grad():
                            _, r_feats = self.disc(real, return_features=True)
                    terms["adv"] = hinge_g_loss(f_logits)
                    terms["fm"] = feature_matching_loss(r_feats, f_feats)
                    pairs.append((real, fake.detach()))
                loss = sum(weights[k] * v for k, v in terms.items()) / n
                self.scaler.scale(loss).backward()
            total += loss.item()
            for k, v in terms.items():
                terms_sum[k] = terms_sum.get(k, 0.0) + v.item() / n
        self.optimizer_step()
        if adversarial:
            terms_sum["d"] = self._critic_step(pairs)
        self.last_terms = terms_sum
        self.step += 1
        return total

    def _critic_step(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """One hinge step of the critic on (real, detached fake) micro-batches. Returns its mean loss."""
        self.disc.requires_grad_(True)
        total = 0.0
        for i, (real, fake) in enumerate(pairs):
            last = i == len(pairs) - 1
            sync = contextlib.nullcontext() if (last or self.dist.world == 1) else self.ddp_disc.no_sync()
            with sync:
                with self._autocast():
                    r_logits = self.ddp_disc(real)
                    f_logits = self.ddp_disc(fake)
                loss = hinge_d_loss(r_logits, f_logits) / len(pairs)
                loss.backward()
            total += loss.item()
        self.d_opt.step()
        self.d_opt.zero_grad(set_to_none=True)
        return total


def train_gan(cfg: GanTrainConfig, resume: bool = False, progress: bool = True, stop_at_step: int | None = None,
              overwrite: bool = False) -> dict:
    """Run a cicgan training job to completion (or to ``stop_at_step``); returns the final summary."""
    trainer = GanTrainer(cfg, resume=resume, progress=progress, overwrite=overwrite)
    try:
        return trainer.fit(stop_at_step=stop_at_step)
    finally:
        trainer.close()


__all__ = ["GanTrainConfig", "GanTrainer", "make_gan_config", "train_gan"]
