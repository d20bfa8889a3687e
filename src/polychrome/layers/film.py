"""FiLM: feature-wise linear modulation of a feature map by a conditioning vector (Perez et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn


class FiLM(nn.Module):
    """``x * (1 + gamma(c)) + beta(c)``, per channel, with (gamma, beta) a linear function of a vector c.

    Parameterised as 1 + gamma so a zero projection is the identity; the projection starts small
    (default init scaled by ``init_scale``) so an untrained condition barely disturbs the features, yet
    gradient reaches the conditioning network from the first step (a zero init would cut it off).

    forward(x, cond): x (B, C, H, W) float, cond (B, cond_dim) float -> (B, C, H, W).
    """

    def __init__(self, cond_dim: int, channels: int, init_scale: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        with torch.no_grad():
            self.proj.weight.mul_(init_scale)
            self.proj.bias.zero_()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond).to(x.dtype)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return x * (1 + gamma) + beta
