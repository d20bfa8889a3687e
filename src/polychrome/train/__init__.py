"""Training: config dataclasses, the loop (single process or DDP), the GAN trainer, checkpoints.

A config file names its trainer with the ``trainer`` key: ``"default"`` (the regression/hint loop,
:class:`TrainConfig`) or ``"gan"`` (the cicgan family, :class:`~polychrome.train.gan.GanTrainConfig`,
which adds its own keys). :func:`load_config` reads that key first and builds the right class, so
each class still rejects keys it does not know; :func:`run` starts the trainer the config belongs to.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from polychrome.train.config import ConfigError, TrainConfig, make_config, read_config_file

#: trainer key -> (its config builder, its training function) as "module.function" in this package, imported
#: when a config asks for that trainer.
TRAINERS = {"default": ("config.make_config", "loop.train"), "gan": ("gan.make_gan_config", "gan.train_gan")}

#: Names this package offers from its heavier modules, imported on first use: loading weights reads the
#: checkpoint schema (train.checkpoint) without the trainer's imports (data, metrics, losses).
_LAZY = {"GanTrainConfig": "gan", "make_gan_config": "gan", "train_gan": "gan", "Trainer": "loop", "train": "loop"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"polychrome.train.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _trainer(name: str, part: int):
    """Trainer ``name``'s config builder (``part`` 0) or training function (1)."""
    module, function = TRAINERS[name][part].rsplit(".", 1)
    return getattr(importlib.import_module(f"polychrome.train.{module}"), function)


def _trainer_of(file: str | Path | None, overrides: list[str] | dict | None) -> str:
    """The ``trainer`` a config asks for: the last override that sets it, else the file's, else "default"."""
    name = read_config_file(file).get("trainer", "default") if file else "default"
    if isinstance(overrides, dict):
        name = overrides.get("trainer", name)
    else:
        for item in overrides or []:
            key, _, value = item.partition("=")
            if key.strip() == "trainer":
                name = value.strip().strip("\"'")
    if name not in TRAINERS:
        raise ConfigError(f"trainer: must be one of {', '.join(TRAINERS)}, got {name!r}")
    return name


def load_config(file: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """A config of the class its ``trainer`` key names (defaults <- file <- overrides; unknown keys are errors)."""
    name = _trainer_of(file, overrides)
    try:
        return _trainer(name, 0)(file, overrides)
    except ConfigError as e:
        from polychrome.train.gan import GanTrainConfig

        gan_only = [f for f in GanTrainConfig.__dataclass_fields__ if f not in TrainConfig.__dataclass_fields__]
        key = next((k for k in gan_only if str(e).startswith(f"unknown config key {k!r}")), None)
        if name == "default" and key:
            raise ConfigError(f'unknown config key {key!r} for the default trainer; it is a GAN trainer key: '
                              'add trainer = "gan"') from None
        raise


def run(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at_step: int | None = None,
        overwrite: bool = False) -> dict:
    """Train ``cfg`` with the trainer its ``trainer`` field names; returns the final summary. A new run into an
    out_dir holding checkpoints is refused (FileExistsError) unless ``overwrite``."""
    return _trainer(cfg.trainer, 1)(cfg, resume=resume, progress=progress, stop_at_step=stop_at_step,
                                     overwrite=overwrite)


__all__ = [
    "TRAINERS", "ConfigError", "GanTrainConfig", "TrainConfig", "Trainer", "load_config", "make_config",
    "make_gan_config", "run", "train", "train_gan",
]
