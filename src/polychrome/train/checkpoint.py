"""Training checkpoints, the one schema that training writes and loading reads.

A checkpoint is a ``torch.save`` of a dict of tensors and plain containers (read back with
``weights_only=True`` only), written atomically:

    model_name, model_kwargs   the registered architecture and its arguments
    card                       the model card's JSON (models/card.py)
    config                     the training config, as a dict
    model, ema                 the weights, and their EMA (an ``AveragedModel``: ``module.`` keys, ``n_averaged``)
    optimizer, scheduler, scaler, epoch, step, best_val_psnr, rng
                               what a resumed run needs to continue exactly

Resuming needs :data:`CHECKPOINT_KEYS`; loading the trained weights needs :data:`WEIGHT_KEYS` (the EMA
weights are the released ones) and builds the card with :func:`checkpoint_card`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from polychrome.io.parts import locked_part
from polychrome.models.card import DEFAULT_WORKING_SIZE, CardError, ModelCard

#: File suffixes of training checkpoints.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


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


#: The keys a resume needs (every checkpoint the trainer writes holds them).
CHECKPOINT_KEYS = ("model_name", "model", "ema", "optimizer", "scheduler", "scaler", "epoch", "step",
                   "best_val_psnr", "rng")
#: The keys loading the trained (EMA) weights needs.
WEIGHT_KEYS = ("model_name", "ema")


def read_checkpoint(path: str | os.PathLike, needs: tuple[str, ...] = WEIGHT_KEYS) -> dict:
    """:func:`load_checkpoint` with one-line errors: ValueError naming the file when it is truncated, not a
    checkpoint, holds anything but tensors and plain containers, or lacks a key of ``needs``."""
    try:
        ck = load_checkpoint(path)
    except Exception as e:  # truncated zip, pickle refused by weights_only, not a torch file at all
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"{path}: not a readable polychrome checkpoint ({first})") from None
    missing = [k for k in needs if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise ValueError(f"{path}: not a polychrome training checkpoint (no {', '.join(missing)})")
    return ck


def read_training_checkpoint(path: str | os.PathLike) -> dict:
    """:func:`read_checkpoint` of everything a resume needs (:data:`CHECKPOINT_KEYS`)."""
    return read_checkpoint(path, CHECKPOINT_KEYS)


def ema_to_model_state(ema_state: dict) -> dict:
    """Map an ``AveragedModel`` state dict (``module.`` prefix, ``n_averaged``) to the plain model's keys."""
    return {k[len("module.") :]: v for k, v in ema_state.items() if k.startswith("module.")}


def checkpoint_card(ckpt: dict) -> ModelCard:
    """The model card of a checkpoint: ``ckpt["card"]`` where training wrote one, else rebuilt from the
    checkpoint's model name, arguments and training config (checkpoints written before the card). The
    training config, epoch, step and best validation PSNR travel as provenance (``about``).

    Raises CardError when the checkpoint names no model or its card is not valid."""
    cfg = ckpt.get("config", {})
    provenance = {"train_config": cfg, "epoch": ckpt.get("epoch"), "step": ckpt.get("step"),
                  "best_val_psnr": ckpt.get("best_val_psnr")}
    if isinstance(ckpt.get("card"), dict):
        return ModelCard.from_json({**ckpt["card"], **provenance})
    if "model_name" not in ckpt:
        raise CardError("checkpoint names no model (no card, no model_name)")
    return ModelCard.from_json({
        "model": ckpt["model_name"],
        "model_kwargs": ckpt.get("model_kwargs", {}),
        "infer_size": cfg.get("infer_size", DEFAULT_WORKING_SIZE),
        **provenance,
    })
