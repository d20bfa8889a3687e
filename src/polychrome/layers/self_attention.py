"""Non-local self-attention over a feature map (SAGAN, Zhang et al. 2019), for a network's bottleneck."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention2d(nn.Module):
    """Every position attends to every other: ``x + gamma * softmax(q k^T / sqrt(d)) v``.

    Colour is a long-range affair (the sky's blue at the top says something about the water at the
    bottom), which convolutions only reach through many layers; at the bottleneck the map is small
    enough for full attention. Queries and keys are reduced to C // ``reduction`` channels (the values
    keep C). ``gamma`` starts at 0, so the block begins as the identity and blends attention in as it
    learns (SAGAN's recipe for a stable start).

    forward(x): (B, C, H, W) float -> (B, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, d)
        k = self.key(x).flatten(2).transpose(1, 2)  # (B, HW, d)
        v = self.value(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        # One head as a 4-D call: the same attention, and the form the ONNX exporter translates (3-D it cannot).
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]  # (B, HW, C)
        return x + self.gamma * out.transpose(1, 2).reshape(B, C, H, W)
