"""Regression losses on ab: the per-pixel L1 / smooth-L1 and the diversity term against flat colour.

ab is in network units (ab / AB_SCALE, see color/lab.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: The diversity term's floor inside the log: a constant prediction scores -log(DIVERSITY_EPS) = 13.8.
DIVERSITY_EPS = 1e-6


def ab_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1", beta: float = 0.1) -> torch.Tensor:
    """Mean per-pixel loss between predicted and true ab.

    Args:
        pred, target: (B, 2, H, W) float, ab in network units (ab / AB_SCALE).
        kind: "l1" (the default: the median colour, less brown than L2's mean) or
            "smooth_l1" (quadratic below ``beta``, so small errors get smooth gradients).
    Returns: scalar tensor.
    """
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=beta)
    raise ValueError(f"unknown ab loss {kind!r}; use 'l1' or 'smooth_l1'")


def diversity_loss(ab: torch.Tensor, eps: float = DIVERSITY_EPS) -> torch.Tensor:
    """-log(var(ab) + eps), the variance taken per image and per channel over H and W, then averaged.

    Per image, because the term is there against the dull, uniform (sepia) prediction inside a photo:
    a variance over the whole batch would be satisfied by giving each photo its own flat tint. Per
    channel, so that a and b each have to vary. With ab in network units (tanh, within (-1, 1)) the
    variance is below 1, so the term lies in (0, -log(eps)]: bounded, and largest for a flat colour.

    Args:
        ab: (B, 2, H, W) float, network units.
    Returns: scalar tensor.
    """
    var = ab.float().var(dim=(-2, -1), unbiased=False)  # (B, 2)
    return -torch.log(var + eps).mean()
