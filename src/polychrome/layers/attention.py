"""Multi-head self-attention over a 2-D token grid with a learned relative position bias per head.

The bias follows BEiT / Swin: every head owns a table with one learned scalar per relative offset
(dy, dx) between a query token and a key token, added to the attention logits before the softmax.
The table is kept in its 2-D layout, (heads, 2G-1, 2G-1) for the G x G token grid it was built for
(offset (dy, dx) at row dy + G-1, column dx + G-1), so it can be resampled for other grids.

Other grids (:func:`resample_bias_table`). A picture reaches the model with its aspect ratio kept and
its longest side at the working size, so the table is read at ONE scale on both axes, chosen so the
grid's longest side spans the table exactly as the training grid's side did:

- the native G x G grid uses the table unchanged;
- a grid whose longest side is G (a 14 x 10 grid from a 224 x 160 landscape when G = 14) reads the
  table's exact integer offsets: the central (2gh-1, 2gw-1) window, no interpolation at all;
- any other longest side L resamples the table bicubically (align_corners) at offsets scaled by
  (G-1)/(L-1), the same on both axes: the BEiT / Swin-v2 fine-tuning resize for square grids, but a
  non-square grid is not stretched anisotropically (stretching each axis to fill the table would
  turn a vertical neighbour of a landscape's 10-row grid into a 1.4-row offset that training never
  showed).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn


@lru_cache(maxsize=32)
def _relative_position_index(gh: int, gw: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()  # (N,) token coordinates in row-major order
    dy = ys[:, None] - ys[None, :] + (gh - 1)  # (N, N) query row minus key row, shifted to >= 0
    dx = xs[:, None] - xs[None, :] + (gw - 1)
    return dy * (2 * gw - 1) + dx


def relative_position_index(gh: int, gw: int) -> torch.Tensor:
    """(N, N) long, N = gh*gw: for query token i and key token j (row-major), the flat index of their
    offset (dy, dx) = (row_i - row_j, col_i - col_j) in a (2gh-1, 2gw-1) bias layout."""
    # Cached per grid (the same few sizes recur every forward); callers must not modify it in place.
    return _relative_position_index(gh, gw)


def resample_bias_table(table: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A bias table built for a G x G grid, read for a gh x gw grid.

    Args:
        table: (heads, 2G-1, 2G-1) float, the learned bias per offset (logit units).
        grid: (gh, gw) token grid, each >= 1.
    Returns:
        (heads, 2gh-1, 2gw-1): the table itself at the native grid, its exact central window when
        max(gh, gw) == G, else a bicubic resampling at one isotropic scale (see the module docstring).
    """
    G = (table.shape[-1] + 1) // 2
    gh, gw = grid
    longest = max(gh, gw)
    if longest == G:
        # Exact integer offsets: a crop, so a grid of the training size's longest side is bit-identical.
        return table[:, G - gh : G + gh - 1, G - gw : G + gw - 1]
    # grid_sample wants coordinates in [-1, 1] over the table (align_corners: -1/+1 are the corner
    # entries at offsets -(G-1) and +(G-1)). Offset d of the new grid sits at d * (G-1)/(L-1) table
    # cells from the centre, i.e. at d / (L-1) in normalised units, on both axes.
    scale = 1.0 / max(longest - 1, 1)
    ys = torch.arange(-(gh - 1), gh, device=table.device, dtype=torch.float32) * scale
    xs = torch.arange(-(gw - 1), gw, device=table.device, dtype=torch.float32) * scale
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([gx, gy], dim=-1)[None]  # (1, 2gh-1, 2gw-1, 2), grid_sample's (x, y) order
    # fp32 whatever the autocast: the bias is small and its resampling is cheap.
    out = F.grid_sample(table.float()[None], coords, mode="bicubic", padding_mode="border", align_corners=True)
    return out[0].to(table.dtype)  # (heads, 2gh-1, 2gw-1)


class RelPosSelfAttention(nn.Module):
    """Multi-head self-attention with a relative position bias table per head.

    forward(x, grid): x (B, N, dim) float tokens of a gh x gw grid in row-major order, N = gh*gw,
    any grid (see the module docstring). Returns (B, N, dim).

    q and v have biases, k has none: a key bias adds the same q.b_k to every logit of a query's row,
    which the softmax cancels (BEiT leaves it out for the same reason).
    """

    def __init__(self, dim: int, heads: int, table_grid: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.table_grid = table_grid
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.rel_bias_table = nn.Parameter(torch.zeros(heads, 2 * table_grid - 1, 2 * table_grid - 1))
        nn.init.trunc_normal_(self.rel_bias_table, std=0.02)
        self.proj = nn.Linear(dim, dim)

    def relative_bias(self, gh: int, gw: int) -> torch.Tensor:
        """(heads, N, N) bias added to the logits of a gh x gw grid (N = gh*gw)."""
        table = resample_bias_table(self.rel_bias_table, (gh, gw))  # (heads, 2gh-1, 2gw-1)
        index = relative_position_index(gh, gw).to(table.device)
        return table.flatten(1)[:, index]  # (heads, N, N)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        B, N, D = x.shape
        gh, gw = grid
        if gh * gw != N:
            raise ValueError(f"grid {gh}x{gw} does not hold {N} tokens")
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, N, 3*D)
        q, k, v = qkv.view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # each (B, h, N, D/h)
        attn_bias = self.relative_bias(gh, gw).to(q.dtype)  # SDPA wants the mask in the query's dtype
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)  # (B, h, N, D/h)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))
