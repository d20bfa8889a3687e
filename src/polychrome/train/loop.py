"""The training loop: single process, or one process per device under ``torchrun`` (DDP).

Checkpoints hold the model, its EMA, optimiser, LR schedule, grad scaler, config, epoch, step,
best validation PSNR and RNG states. Augmentation is a function of (seed, epoch, index) and the
data order of (seed, epoch), so a run resumed from ``last.pt`` continues exactly as if it had
never stopped. Only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from kornia.filters import gaussian_blur2d
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from polychrome.color.hints import (
    hint_fidelity,
    off_truth_probe,
    random_hint_counts,
    recolor_hints,
    sample_hint_corners,
    sample_hints,
    summarize_fidelity,
)
from polychrome.color.lab import ab_to_net, l_to_net, net_to_ab, rgb_to_lab
from polychrome.data import ColorPhotoFolder
from polychrome.eval.metrics import mean_chroma, psnr_per_image
from polychrome.io import find_images, parts, write_json_atomic
from polychrome.losses import ColorizationLoss, Lite0Features, ab_loss, load_vgg16_features
from polychrome.models import create_model
from polychrome.models.backbones.efficientnet import PretrainedWeightsUnavailable
from polychrome.models.card import ModelCard
from polychrome.pipeline.core import gray_rgb, render
from polychrome.train.checkpoint import read_training_checkpoint, rng_state, save_atomic, set_rng_state
from polychrome.train.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)

#: The clock of the wall-clock budget (``max_minutes``), the run's duration and its images/s: monotonic, so a
#: change of the system time cannot end a run; a module attribute, so tests can drive it.
clock = time.monotonic


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, NCCL on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if cfg.device == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(cfg.device)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """None = fp32. "auto": bf16 on CPU (with channels_last; see the README for the speed-up), bf16 or fp16 on CUDA."""
    if cfg.precision == "fp32":
        return None
    if cfg.precision == "bf16":
        return torch.bfloat16
    if cfg.precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def split_train_val(cfg: TrainConfig) -> tuple[list[Path] | str, list[Path] | str]:
    """Training and validation sources: ``val_data`` when given, else a seeded hold-out of ``data``."""
    if not cfg.data:
        raise ConfigError("data: give the folder (or .txt list) of training photos")
    if cfg.val_data:
        return repeat_sources(cfg.data, cfg.data_repeat), cfg.val_data
    paths = find_images(cfg.data)
    random.Random(cfg.seed).shuffle(paths)
    n_val = max(1, int(round(len(paths) * cfg.val_fraction)))
    return repeat_sources(cfg.data, cfg.data_repeat, sorted(paths[n_val:])), sorted(paths[:n_val])


def repeat_sources(data: str, repeat: dict, paths: list[Path] | None = None) -> list[Path] | str:
    """The training photos with those under each sub-folder ``F`` of ``data`` listed ``repeat[F]`` times
    (``data`` itself when nothing is repeated). ``paths``: the photos to draw from (default: all of ``data``).
    Raises ConfigError when ``data`` is not a folder or a named sub-folder holds none of the photos."""
    if not repeat:
        return data if paths is None else paths
    root = Path(data)
    if not root.is_dir():
        raise ConfigError(f"data_repeat: names sub-folders of data, and {data} is not a folder")
    paths = find_images(root) if paths is None else paths
    folders = [p.relative_to(root).parts[0] if p.is_relative_to(root) else None for p in paths]
    for folder in set(repeat) - set(folders):
        raise ConfigError(f"data_repeat: {root / folder} holds none of the training photos")
    return [p for p, f in zip(paths, folders) for _ in range(repeat.get(f, 1))]


def lr_factor(step: int, warmup: int, total: int, min_ratio: float, time_progress: float | None = None) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_ratio`` at ``total``.

    ``time_progress`` (elapsed / budget of a run with ``max_minutes``) drives the cosine when it is further on
    than the steps are, so the LR has annealed by whichever limit, time or steps, comes first."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if time_progress is not None:
        progress = max(progress, min(1.0, time_progress))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def epoch_indices(n: int, seed: int, epoch: int, dist_info: DistInfo, batch_size: int) -> list[int]:
    """This rank's sample order for ``epoch``: a seeded permutation, sharded, trimmed to whole batches."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()
    per_rank = n // dist_info.world
    mine = perm[dist_info.rank :: dist_info.world][:per_rank]
    return mine[: (len(mine) // batch_size) * batch_size]


def ema_multi_avg_fn(decay: float):
    """EMA update for ``AveragedModel`` with a warm-up: the decay used after n updates is
    min(decay, (1 + n) / (10 + n)), so short runs are not dominated by the random initial weights."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], num_averaged) -> None:
        n = int(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1.0 - d)
        for e, p in zip(ema_params, params):
            if not e.is_floating_point():
                e.copy_(p)  # integer buffers (BatchNorm's num_batches_tracked) are copied

    return update


def build_criterion(cfg: TrainConfig) -> ColorizationLoss | None:
    """The composite loss of ``cfg`` (None for the plain "l1"/"smooth_l1" ab losses).

    Built under a forked RNG: constructing the feature network initialises weights randomly before
    loading them, and that must not shift the seeded stream the rest of the run draws from."""
    if cfg.loss != "composite":
        return None
    with torch.random.fork_rng(devices=[]):
        feature_net = None
        if cfg.loss_perceptual_weight and cfg.perceptual_net == "vgg16":
            feature_net = load_vgg16_features(cfg.perceptual_weights)
        elif cfg.loss_perceptual_weight:
            feature_net = Lite0Features()
        return ColorizationLoss(
            rgb_weight=cfg.loss_rgb_weight,
            perceptual_weight=cfg.loss_perceptual_weight,
            ab_weight=cfg.loss_ab_weight,
            diversity_weight=cfg.loss_diversity_weight,
            ab_beta=cfg.smooth_l1_beta,
            feature_net=feature_net,
        )


def param_groups(model: nn.Module, lr: float, scale: dict[str, float]) -> list[dict]:
    """AdamW parameter groups: one per ``scale`` prefix (its parameters at ``lr * multiplier``) and one for
    the rest at ``lr``. ConfigError when a prefix names no parameter (a typo would otherwise do nothing)."""
    groups: dict[str, list] = {prefix: [] for prefix in scale}
    rest = []
    for name, p in model.named_parameters():
        prefix = next((k for k in scale if name == k or name.startswith(k + ".")), None)
        (groups[prefix] if prefix is not None else rest).append(p)
    empty = [k for k, v in groups.items() if not v]
    if empty:
        raise ConfigError(f"lr_scale: no parameter of the model is named {empty[0]!r} or starts with {empty[0] + '.'!r}")
    return [{"params": rest, "lr": lr}] + [{"params": v, "lr": lr * float(scale[k])} for k, v in groups.items()]


def hint_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """The CPU generator for one micro-batch's random hints: a function of (seed, step, micro-batch, rank),
    so a resumed run draws the same hints and every DDP rank draws its own."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_009 + micro) * 1_013 + rank)


def noisy_l_net(L: torch.Tensor, l_noise: float, seed: int, step: int, micro: int, rank: int) -> torch.Tensor:
    """The model's input for L (B, 1, H, W) in [0, 100] under the ``l_noise`` augmentation: each photo's L plus
    Gaussian noise of a std drawn in [0, l_noise], clamped to [0, 100], as network units. The draws are a
    function of (seed, step, micro-batch, rank), like the hints (a resumed run draws the same)."""
    if l_noise <= 0:
        return l_to_net(L)
    gen = hint_generator(seed + 7_919, step, micro, rank)
    sigma = torch.rand(len(L), 1, 1, 1, generator=gen) * l_noise
    noise = torch.randn(L.shape, generator=gen) * sigma
    return l_to_net((L + noise.to(L.device, L.dtype)).clamp(0, 100))


def sharpened_l(L: torch.Tensor, l_sharpen: float, seed: int, step: int, micro: int, rank: int) -> torch.Tensor:
    """L (B, 1, H, W) in [0, 100] under the ``l_sharpen`` augmentation: each photo through an unsharp mask,
    L + a (L - G_s * L) clamped to [0, 100], with its amount a drawn in [0, l_sharpen] and the Gaussian's s in
    [0.5, 1.5] px (kornia's ``gaussian_blur2d``, a 7 x 7 kernel, reflected borders). The draws are a function
    of (seed, step, micro-batch, rank), like the grain's."""
    if l_sharpen <= 0:
        return L
    gen = hint_generator(seed + 15_013, step, micro, rank)
    amount = torch.rand(len(L), 1, 1, 1, generator=gen) * l_sharpen
    s = 0.5 + torch.rand(len(L), 1, generator=gen)
    x = L.float()
    blurred = gaussian_blur2d(x, (7, 7), s.expand(-1, 2).to(L.device), border_type="reflect")
    return (x + amount.to(L.device) * (x - blurred)).clamp(0, 100).to(L.dtype)


def model_l_net(L: torch.Tensor, cfg: TrainConfig, step: int, micro: int, rank: int) -> torch.Tensor:
    """The model's L input (network units) for a training micro-batch's L in [0, 100]: sharpened
    (``l_sharpen``), then grained (``l_noise``), each only when its key is set."""
    if cfg.l_sharpen:
        L = sharpened_l(L, cfg.l_sharpen, cfg.seed, step, micro, rank)
    if cfg.l_noise:
        return noisy_l_net(L, cfg.l_noise, cfg.seed, step, micro, rank)
    return l_to_net(L)


def lab_batch(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB batch (B, 3, H, W) in [0, 1] -> (L real (B,1,H,W), L_net, ab_net (B,2,H,W))."""
    lab = rgb_to_lab(rgb)
    L = lab[:, :1]
    return L, l_to_net(L), ab_to_net(lab[:, 1:])


#: The files that make an out_dir a training run a new run must not silently replace.
RUN_FILES = ("last.pt", "best.pt")


def refuse_to_overwrite(out: Path) -> None:
    """FileExistsError when ``out`` already holds a run's checkpoints (a new run would replace them)."""
    held = [n for n in RUN_FILES if (out / n).exists()]
    if held:
        raise FileExistsError(
            f"{out}: already holds a training run ({', '.join(held)}); --resume continues it, "
            "--overwrite starts it over, or set out_dir=... to start another"
        )


def remove_stale_parts(out: Path) -> list[Path]:
    """Delete checkpoint temp files (``.last.pt.*.part``) a killed run left in ``out``; returns them. The
    main process owns ``out``, so any one not being written now is stale."""
    return parts.remove_stale_parts(out, lambda name: name in RUN_FILES, started=time.time())


def load_init_weights(model: torch.nn.Module, spec: str) -> None:
    """Copy the weights of a trained model file (``init_weights``) into ``model``, strictly.

    Raises ConfigError naming the file when it cannot be read or does not fit the architecture."""
    from polychrome.hub import ModelLoadError, load_model

    try:
        source = load_model(spec)
    except ModelLoadError as e:
        raise ConfigError(f"init_weights: {e}") from None
    try:
        model.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ConfigError(f"init_weights: {spec} does not fit {type(model).__name__} ({first})") from None


class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs :meth:`fit`."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False):
        self.cfg, self.progress = cfg, progress
        if not resume and not overwrite:
            refuse_to_overwrite(Path(cfg.out_dir))
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        device_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
        self.dist = setup_distributed(device_kind)
        self.device = pick_device(cfg, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
        self.amp_dtype = autocast_dtype(cfg, self.device)
        self.out = Path(cfg.out_dir)
        if self.dist.main:
            remove_stale_parts(self.out)

        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)

        train_src, val_src = split_train_val(cfg)
        limit = cfg.limit_train_images or None
        self.train_set = ColorPhotoFolder(train_src, cfg.image_size, train=True, seed=cfg.seed, limit=limit)
        self.val_set = ColorPhotoFolder(val_src, cfg.image_size, train=False, seed=cfg.seed, limit=cfg.val_max_images)
        # An epoch must hold at least one optimiser step, or fit() would loop over empty epochs forever.
        if len(self.train_set) // self.dist.world // cfg.batch_size < cfg.grad_accum:
            raise ValueError(
                f"{cfg.data}: {len(self.train_set)} usable colour photos, fewer than one optimiser step "
                f"({cfg.batch_size} x {cfg.grad_accum} micro-batches x {self.dist.world} processes)"
            )
        if len(self.val_set) == 0:
            raise ValueError(f"{cfg.val_data or cfg.data}: no usable colour photos to validate on")
        self.batches_per_epoch = len(self.train_set) // self.dist.world // cfg.batch_size
        self.steps_per_epoch = max(1, self.batches_per_epoch // cfg.grad_accum)
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch

        try:
            model = create_model(cfg.model, **cfg.model_kwargs).to(self.device)
            criterion = build_criterion(cfg)
        except PretrainedWeightsUnavailable as e:  # asked for ImageNet weights that are not installed
            raise ConfigError(str(e)) from None
        if cfg.init_weights and not resume:
            load_init_weights(model, cfg.init_weights)
        self.criterion = criterion.to(self.device) if criterion is not None else None
        self.last_terms: dict[str, float] = {}  # the composite loss's terms at the last step (for logging)
        # Hint models (color/hints.py) take random true-colour hints beside L in training and validation.
        self.card = ModelCard.for_model(model, working_size=cfg.infer_size)  # travels in every checkpoint
        self.uses_hints = self.card.takes_hints
        if cfg.grad_checkpointing:
            if not hasattr(model, "set_grad_checkpointing"):
                raise ConfigError(f"grad_checkpointing: model {cfg.model!r} does not support gradient checkpointing")
            model.set_grad_checkpointing(True)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = AveragedModel(model, multi_avg_fn=ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.ddp = DistributedDataParallel(model) if self.dist.world > 1 else model
        self.opt = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.lr_scale), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))
        # The wall-clock budget (max_minutes): seconds trained by earlier sessions of this run (resume), when this
        # session's fit() started, and what rank 0's clock said at the last optimiser step (every rank the same).
        self.elapsed_before, self._fit_start = 0.0, None
        self.time_progress, self.out_of_time = 0.0, False
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.step, self.epoch, self.best_psnr = 0, 0, -math.inf
        if resume:
            self._resume()
        self.writer = None
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps({"model": cfg.model, **cfg.to_dict()}, indent=2))
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"))

    # ----------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        return {
            "model_name": self.cfg.model,
            "model_kwargs": dict(self.cfg.model_kwargs),
            "card": self.card.to_json(),
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_val_psnr": self.best_psnr,
            "elapsed_seconds": self.elapsed_seconds(),
            "rng": rng_state(),
        }

    def save(self, name: str) -> None:
        if self.dist.main:
            save_atomic(self.state(), self.out / name)

    def _resume(self) -> None:
        path = self.out / "last.pt"
        if not path.exists():
            raise FileNotFoundError(f"{path}: nothing to resume from")
        ck = read_training_checkpoint(path)
        if ck["model_name"] != self.cfg.model:
            raise ValueError(f"{path}: checkpoint is a {ck['model_name']}, config asks for {self.cfg.model}")
        try:
            self.model.load_state_dict(ck["model"], strict=True)
            self.ema.load_state_dict(ck["ema"], strict=True)
            self.opt.load_state_dict(ck["optimizer"])
            self.sched.load_state_dict(ck["scheduler"])
            self.scaler.load_state_dict(ck["scaler"])
            self.epoch, self.step, self.best_psnr = int(ck["epoch"]), int(ck["step"]), float(ck["best_val_psnr"])
            self.elapsed_before = float(ck.get("elapsed_seconds", 0.0))  # absent from checkpoints before max_minutes
            set_rng_state(ck["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise ValueError(f"{path}: does not fit this run's {self.cfg.model} ({first})") from None
        log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.step)

    # ----------------------------------------------------------------- the wall-clock budget
    def _lr_factor(self, step: int) -> float:
        cfg = self.cfg
        progress = self.time_progress if cfg.max_minutes > 0 else None
        return lr_factor(step, cfg.warmup_steps, self.total_steps, cfg.lr_min_ratio, progress)

    def elapsed_seconds(self) -> float:
        """Seconds of training in this run so far: earlier sessions' (a resumed run) and this fit()'s."""
        return self.elapsed_before + (clock() - self._fit_start if self._fit_start is not None else 0.0)

    def _check_clock(self) -> None:
        """Read the clock against ``max_minutes``: set ``time_progress`` (for the LR of the next step) and
        ``out_of_time``. Under DDP every rank takes rank 0's reading, so all ranks use the same LR and stop at
        the same step."""
        elapsed = self.elapsed_seconds()
        if self.dist.world > 1:
            t = torch.tensor([elapsed], dtype=torch.float64, device=self.device)
            dist.broadcast(t, src=0)
            elapsed = t.item()
        budget = self.cfg.max_minutes * 60.0
        self.time_progress = min(1.0, elapsed / budget)
        self.out_of_time = elapsed >= budget

    # ----------------------------------------------------------------- training
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def _hints(self, ab_net: torch.Tensor, counts: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Hints sampled from the true ab (network units; the mean is linear, so units do not matter)."""
        hint_ab, hint_mask = sample_hints(ab_net, counts, self.cfg.hint_patch, gen)
        return self._to_input(hint_ab), self._to_input(hint_mask)

    def _recolored_hints(
        self, L: torch.Tensor, ab_net: torch.Tensor, counts: torch.Tensor, gen: torch.Generator
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Hints at the places :meth:`_hints` would pick, some of them off-truth (``hint_recolor_*``), and the
        target they imply (recoloured over each off-truth hint's region), both in network units."""
        cfg = self.cfg
        B, _, H, W = ab_net.shape
        starts = sample_hint_corners(B, (H, W), counts, cfg.hint_patch, gen)
        hint_ab, hint_mask, target = recolor_hints(
            L, net_to_ab(ab_net), starts, cfg.hint_patch, gen,
            cfg.hint_recolor_fraction, cfg.hint_recolor_max, cfg.hint_region_radius, cfg.hint_region_l_tol,
        )  # fmt: skip
        return (self._to_input(ab_to_net(hint_ab)), self._to_input(hint_mask)), ab_to_net(target)

    def _predict(self, net: nn.Module, L_net: torch.Tensor, hints: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
        """``net``'s ab prediction (network units) under autocast, with hints for hint models."""
        with self._autocast():
            return net(self._to_input(L_net), *hints)

    def train_step(self, micro_batches: list[torch.Tensor]) -> float:
        """One optimiser step over ``grad_accum`` micro-batches of RGB. Returns the mean loss."""
        cfg = self.cfg
        self.ddp.train()
        total = 0.0
        terms_sum: dict[str, float] = {}
        for i, rgb in enumerate(micro_batches):
            L, L_net, ab_true = lab_batch(rgb.to(self.device, non_blocking=True))
            if cfg.l_noise or cfg.l_sharpen:
                L_net = model_l_net(L, cfg, self.step, i, self.dist.rank)
            last = i == len(micro_batches) - 1
            # Gradients are all-reduced once per optimiser step, not per micro-batch.
            sync = contextlib.nullcontext() if (last or self.dist.world == 1) else self.ddp.no_sync()
            hints, weight = (), None
            if self.uses_hints:
                gen = hint_generator(cfg.seed, self.step, i, self.dist.rank)
                counts = random_hint_counts(len(L_net), cfg.hint_min, cfg.hint_max, gen, cfg.hint_sampling)
                if cfg.hint_recolor_fraction > 0:
                    truth = ab_true
                    hints, ab_true = self._recolored_hints(L, ab_true, counts, gen)
                    if cfg.hint_region_weight != 1:  # the recoloured pixels weigh more (mean weight 1)
                        weight = 1 + (cfg.hint_region_weight - 1) * (ab_true != truth).any(1, keepdim=True).float()
                        weight = weight / weight.mean()
                else:
                    hints = self._hints(ab_true, counts, gen)
            with sync:
                pred = self._predict(self.ddp, L_net, hints)
                if self.criterion is None:
                    loss = ab_loss(pred.float(), ab_true, cfg.loss, cfg.smooth_l1_beta, weight=weight)
                else:
                    loss, terms = self.criterion(pred.float(), ab_true, L)
                    for k, v in terms.items():
                        terms_sum[k] = terms_sum.get(k, 0.0) + v.item() / len(micro_batches)
                loss = loss / len(micro_batches)
                self.scaler.scale(loss).backward()
            total += loss.item()
        self.last_terms = terms_sum
        self.optimizer_step()
        self.step += 1
        return total

    def optimizer_step(self) -> None:
        """After the backward passes of one step: clip, step the optimiser (through the grad scaler), clear the
        gradients, advance the LR schedule and update the EMA. Shared with the GAN trainer's generator."""
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        if self.cfg.max_minutes > 0:
            self._check_clock()  # before the schedule steps: the next step's LR follows the time
        self.sched.step()
        self.ema.update_parameters(self.model)

    def _loader(self, indices: list[int]) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            sampler=indices,
            num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
        )

    def fit(self, stop_at_step: int | None = None) -> dict:
        """Train until ``total_steps``, the ``max_minutes`` budget (a normal end: validated, last.pt saved) or
        ``stop_at_step`` (to simulate an interruption). Returns a summary, with the images trained on and the
        images/s of this session (validation and checkpoints included: what the hardware gave)."""
        cfg = self.cfg
        timed = cfg.max_minutes > 0
        if self.dist.main:
            log.info(
                "training %s on %d photos (%d skipped grey, %d unreadable), validating on %d; "
                "%d steps of %d x %d x %d%s",
                cfg.model, len(self.train_set), self.train_set.skipped_gray, len(self.train_set.skipped_unreadable),
                len(self.val_set), self.total_steps, cfg.batch_size, cfg.grad_accum, self.dist.world,
                f" or {cfg.max_minutes:g} minutes, whichever comes first" if timed else "",
            )
        end = min(self.total_steps, stop_at_step or self.total_steps)
        per_step = cfg.batch_size * cfg.grad_accum * self.dist.world  # images an optimiser step trains on
        first_step = self.step
        self._fit_start = clock()
        t0, last_loss, summary = self._fit_start, float("nan"), {}
        mark = (t0, self.step)  # the last images/s reading: (time, step)
        if timed:
            self._check_clock()  # a resumed run whose budget is spent trains no further
        # A time budget alone has no step count to fill a bar with.
        bar_total = None if timed and not cfg.max_steps else self.total_steps
        bar = _progress_bar(self.progress and self.dist.main, bar_total, self.step)
        try:
            while self.step < end and not self.out_of_time:
                self.train_set.set_epoch(self.epoch)
                indices = epoch_indices(len(self.train_set), cfg.seed, self.epoch, self.dist, cfg.batch_size)
                # Mid-epoch resume: skip the micro-batches this epoch already consumed.
                done = (self.step - self.epoch * self.steps_per_epoch) * cfg.grad_accum
                indices = indices[done * cfg.batch_size : self.steps_per_epoch * cfg.grad_accum * cfg.batch_size]
                pending: list[torch.Tensor] = []
                for rgb in self._loader(indices):
                    pending.append(rgb)
                    if len(pending) < cfg.grad_accum:
                        continue
                    last_loss = self.train_step(pending)
                    pending = []
                    bar.advance(last_loss, self.sched.get_last_lr()[0])
                    if self.writer and self.step % cfg.log_every_steps == 0:
                        mark = self._log_train(last_loss, mark, per_step)
                    if cfg.ckpt_every_steps and self.step % cfg.ckpt_every_steps == 0:
                        self.save("last.pt")
                    if self.step >= end or self.out_of_time:
                        break
                epoch_done = self.step >= (self.epoch + 1) * self.steps_per_epoch
                if not epoch_done and self.step < self.total_steps and not self.out_of_time:
                    break  # interrupted mid-epoch: last.pt records where
                # A run that ends mid-epoch (max_steps, max_minutes) still validates, but stays in that epoch, so
                # resuming it with a larger max_steps continues with the epoch's remaining batches.
                if epoch_done:
                    self.epoch += 1
                ends = self.step >= end or self.out_of_time or not epoch_done
                if not ends and self.epoch % cfg.val_every_epochs:
                    continue  # validation and last.pt at every val_every_epochs-th epoch end, and where the run ends
                summary = self.validate()
                if self.dist.main:
                    # A hint model is judged by what it does with hints; the others by automatic colour.
                    score = summary.get("psnr_hints", summary["psnr"])
                    if score > self.best_psnr:
                        self.best_psnr = score
                        self.save("best.pt")
                    with_hints = (
                        f", with {cfg.val_hints} hints {summary['psnr_hints']:.2f} dB" if "psnr_hints" in summary else ""
                    )
                    if "fidelity_de00_median" in summary:
                        with_hints += (
                            f"; an off-truth hint: CIEDE2000 {summary['fidelity_de00_median']:.1f}, chroma "
                            f"{summary['fidelity_chroma_median']:.0%}, leak {summary['fidelity_leak']:.2f}"
                        )
                    log.info(
                        "epoch %d step %d: loss %.4f, val PSNR %.2f dB%s (grey %.2f), chroma %.1f (true %.1f)",
                        self.epoch, self.step, last_loss, summary["psnr"], with_hints, summary["psnr_grey"],
                        summary["chroma_pred"], summary["chroma_true"],
                    )
                self.save("last.pt")
        except KeyboardInterrupt:
            self.save("last.pt")
            raise
        finally:
            bar.close()
        if self.writer and self.step > first_step and self.step % cfg.log_every_steps:
            self._log_train(last_loss, mark, per_step)  # where the run ended, between two regular readings
        self.save("last.pt")
        if self.writer:
            self.writer.flush()
        seconds = clock() - t0
        images = (self.step - first_step) * per_step
        rate = images / seconds if seconds > 0 else float("nan")
        if self.dist.main:
            why = "the time budget" if self.out_of_time else f"step {self.step}" if self.step >= end else "a stop"
            log.info("stopped at %s: %d steps, %d images in %.1f s, %.1f images/s (validation and checkpoints "
                     "included)", why, self.step - first_step, images, seconds, rate)
        result = {"step": self.step, "epoch": self.epoch, "seconds": seconds, "images": images, "images_per_s": rate,
                  "loss": last_loss, **summary}
        if self.dist.main:  # what this session did, for scripts (scripts/gpu_summary.py): strict JSON, NaN as null
            finite = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}
            write_json_atomic(finite, self.out / "summary.json")
        return result

    def _log_train(self, loss: float, mark: tuple[float, int], per_step: int) -> tuple[float, int]:
        """TensorBoard's train/ scalars at this step: the loss, its terms, the LR and the images/s since ``mark``
        (the time and step of the last reading); returns this reading's mark."""
        now = clock()
        if now > mark[0] and self.step > mark[1]:
            self.writer.add_scalar("train/images_per_s", (self.step - mark[1]) * per_step / (now - mark[0]), self.step)
        self.writer.add_scalar("train/loss", loss, self.step)
        self.writer.add_scalar("train/lr", self.sched.get_last_lr()[0], self.step)
        for k, v in self.last_terms.items():  # the composite loss's unweighted terms
            self.writer.add_scalar(f"train/loss_{k}", v, self.step)
        return now, self.step

    # ----------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> dict:
        """EMA model on the validation photos: PSNR (RGB), the grey baseline, mean chroma. Rank 0 computes.

        Hint models are scored without hints (``psnr``) and with ``val_hints`` true-colour hints drawn
        with a fixed seed per batch (``psnr_hints``), so every validation sees the same hints; and by one
        seeded hint per photo of a colour far from the truth (``fidelity_*``, color/hints.py
        :func:`hint_fidelity`): median CIEDE2000 requested vs obtained, median share of its chroma obtained,
        mean hue error, and ``fidelity_leak``, the mean ab change outside the hint's region over that inside."""
        result = {"psnr": float("nan"), "psnr_grey": float("nan"), "chroma_pred": float("nan"), "chroma_true": float("nan")}
        if self.dist.main:
            net = self.ema.module.eval()
            psnr, psnr_grey, psnr_hints, c_pred, c_true, grid = [], [], [], [], [], None
            fidelity: list[dict[str, torch.Tensor]] = []
            loader = DataLoader(self.val_set, batch_size=self.cfg.batch_size, num_workers=self.cfg.workers)
            for b, rgb in enumerate(loader):
                rgb = rgb.to(self.device)
                L, L_net, ab_true = lab_batch(rgb)
                no_hints = self._hints(ab_true, torch.zeros(len(L), dtype=torch.long), None) if self.uses_hints else ()
                ab = net_to_ab(self._predict(net, L_net, no_hints).float())
                pred = render(L, ab)  # joined as the Colorizer joins a photo's L and its colours
                if self.uses_hints:
                    gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + b)
                    hints = self._hints(ab_true, torch.full((len(L),), self.cfg.val_hints), gen)
                    hinted = net_to_ab(self._predict(net, L_net, hints).float())
                    psnr_hints.append(psnr_per_image(render(L, hinted), rgb))
                    # One hint far from the truth per photo: is it obeyed, and does it stay in its region?
                    gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + 500_009 + b)
                    cfg = self.cfg
                    probe_ab, probe_mask, region = off_truth_probe(
                        L, net_to_ab(ab_true), gen, cfg.hint_patch, cfg.hint_region_radius, cfg.hint_region_l_tol
                    )
                    probe = (self._to_input(ab_to_net(probe_ab)), self._to_input(probe_mask))
                    obeyed = net_to_ab(self._predict(net, L_net, probe).float())
                    fidelity.append(hint_fidelity(L, obeyed, ab, probe_ab, probe_mask, region))
                grey = gray_rgb(L)
                psnr.append(psnr_per_image(pred, rgb))
                psnr_grey.append(psnr_per_image(grey, rgb))
                c_pred.append(mean_chroma(pred))
                c_true.append(mean_chroma(rgb))
                if grid is None:
                    grid = image_grid(grey[:8], pred[:8], rgb[:8])
            result = {
                "psnr": torch.cat(psnr).mean().item(),
                "psnr_grey": torch.cat(psnr_grey).mean().item(),
                "chroma_pred": torch.cat(c_pred).mean().item(),
                "chroma_true": torch.cat(c_true).mean().item(),
            }
            if psnr_hints:
                result["psnr_hints"] = torch.cat(psnr_hints).mean().item()
            if fidelity:
                scores = {k: torch.cat([f[k] for f in fidelity]) for k in fidelity[0]}
                result.update({f"fidelity_{k}": v for k, v in summarize_fidelity(scores).items()})
            if self.writer:
                for k, v in result.items():
                    self.writer.add_scalar(f"val/{k}", v, self.step)
                self.writer.add_image("val/grey_pred_true", grid, self.step)
        if self.dist.world > 1:
            dist.barrier()
        return result

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        if self.dist.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def image_grid(*rows: torch.Tensor) -> torch.Tensor:
    """Rows of (N, 3, H, W) images -> one (3, rows*H, N*W) image, each row laid side by side."""
    return torch.cat([torch.cat(list(r.float().cpu()), dim=2) for r in rows], dim=1).clamp(0, 1)


class _progress_bar:
    """A rich progress bar with loss, LR and ETA (a no-op when disabled, e.g. on ranks > 0)."""

    def __init__(self, enabled: bool, total: int | None, start: int):
        self.p = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.p = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            )
            self.p.start()
            self.task = self.p.add_task("train", total=total, completed=start, info="")

    def advance(self, loss: float, lr: float) -> None:
        if self.p:
            self.p.update(self.task, advance=1, info=f"loss {loss:.4f} lr {lr:.2e}")

    def close(self) -> None:
        if self.p:
            self.p.stop()


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at_step: int | None = None,
          overwrite: bool = False) -> dict:
    """Run a training job to completion (or to ``stop_at_step``); returns the final summary.

    A new run (not ``resume``) into an out_dir that already holds checkpoints is refused unless ``overwrite``."""
    trainer = Trainer(cfg, resume=resume, progress=progress, overwrite=overwrite)
    try:
        return trainer.fit(stop_at_step=stop_at_step)
    finally:
        trainer.close()
