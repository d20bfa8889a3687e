"""Training losses. Inputs are in network units (see color/lab.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ab_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1", beta: float = 0.1) -> torch.Tensor:
    """Mean per-pixel loss between predicted and true ab.

    Args:
        pred, target: (B, 2, H, W) float, ab in network units (ab / AB_SCALE).
        kind: "l1" (the seed's default: the median colour, less brown than L2's mean) or
            "smooth_l1" (quadratic below ``beta``, so small errors get smooth gradients).
    Returns: scalar tensor.
    """
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=beta)
    raise ValueError(f"unknown ab loss {kind!r}; use 'l1' or 'smooth_l1'")
