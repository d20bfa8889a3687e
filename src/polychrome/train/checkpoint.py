"""Training checkpoints: everything needed to continue exactly, written atomically."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from polychrome.io.parts import locked_part


def rng_state() -> dict:
    """Python, NumPy and torch RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), state["numpy"]["pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked_part(path) as tmp:
        torch.save(obj, tmp)
        os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint safely (tensors and plain containers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


#: The keys every training checkpoint holds (written through Trainer.state).
CHECKPOINT_KEYS = ("model_name", "model", "ema", "optimizer", "scheduler", "scaler", "epoch", "step",
                   "best_val_psnr", "rng")


def read_training_checkpoint(path: str | os.PathLike) -> dict:
    """:func:`load_checkpoint` with one-line errors: ValueError naming the file when it is truncated, not a
    checkpoint, holds anything but tensors and plain containers, or lacks a key a resume needs."""
    try:
        ck = load_checkpoint(path)
    except Exception as e:  # truncated zip, pickle refused by weights_only, not a torch file at all
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"{path}: not a readable training checkpoint ({first})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise ValueError(f"{path}: not a polychrome training checkpoint (no {', '.join(missing)})")
    return ck
