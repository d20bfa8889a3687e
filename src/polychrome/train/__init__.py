"""Training: config dataclass, the loop (single process or DDP), checkpoints."""

from polychrome.train.config import ConfigError, TrainConfig, make_config
from polychrome.train.loop import Trainer, train

__all__ = ["ConfigError", "TrainConfig", "Trainer", "make_config", "train"]
