"""Regression losses on ab: the per-pixel L1 / smooth-L1 and the diversity term against flat colour.

ab is in network units (ab / AB_SCALE, see color/lab.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: The diversity term's floor inside the log: a constant prediction scores -log(DIVERSITY_EPS) = 13.8.
DIVERSITY_EPS = 1e-6


def ab_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1", beta: float = 0.1,
            weight: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Mean per-pixel loss between predicted and true ab.

    Args:
        pred, target: (B, 2, H, W) float, ab in network units (ab / AB_SCALE).
        kind: "l1" (the default: the median colour, less brown than L2's mean) or
            "smooth_l1" (quadratic below ``beta``, so small errors get smooth gradients).
        weight: optional per-pixel weights broadcast to ``pred`` (e.g. (B, 1, H, W)); the mean of the
            weighted loss (weights of mean 1 keep the loss's scale).
    Returns: scalar tensor.
    """
    if kind not in ("l1", "smooth_l1"):
        raise ValueError(f"unknown ab loss {kind!r}; use 'l1' or 'smooth_l1'")
    reduction = "mean" if weight is None else "none"
    if kind == "l1":
        loss = F.l1_loss(pred, target, reduction=reduction)
    else:
        loss = F.smooth_l1_loss(pred, target, beta=beta, reduction=reduction)
    return loss if weight is None else (loss * weight).mean()


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
