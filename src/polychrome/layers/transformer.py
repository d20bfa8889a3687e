"""Pre-norm Vision Transformer block over a 2-D token grid (attention with a relative position bias)."""

from __future__ import annotations

import torch
from torch import nn

from polychrome.layers.attention import RelPosSelfAttention


class Mlp(nn.Sequential):
    """Linear -> GELU -> Linear, per token: (..., dim) -> (..., dim), hidden width ``hidden``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class TransformerBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)).

    forward(x, grid): x (B, N, dim) tokens of a gh x gw grid (row-major, N = gh*gw); returns (B, N, dim).
    ``table_grid`` is the side of the square token grid the relative bias table is built for; other grids
    resample it (layers/attention.py).
    """

    def __init__(self, dim: int, heads: int, table_grid: int, mlp_ratio: float = 4.0):
        super().__init__()
        # eps 1e-6 as in BEiT / iColoriT; pre-norm keeps the residual stream unnormalised, so deep stacks train
        # without warm-up tricks.
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RelPosSelfAttention(dim, heads, table_grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), grid)
        return x + self.mlp(self.norm2(x))
