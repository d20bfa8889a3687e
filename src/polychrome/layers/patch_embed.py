"""Patch embedding: cut an image into non-overlapping p x p patches and map each to a token."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """A p x p, stride-p convolution written as a matrix product over flattened patches.

    forward(x): x (B, in_ch, H, W) with H and W multiples of ``patch``; returns (tokens (B, N, dim) in
    row-major patch order, grid (gh, gw)) with gh = H / patch, gw = W / patch, N = gh * gw.

    Why not ``nn.Conv2d(in_ch, dim, patch, stride=patch)``, the same function: on CPU under bf16 autocast,
    PyTorch 2.13's oneDNN convolution returns wrong values for this shape (4 input channels, 16 x 16 kernel,
    stride 16: relative error about 1 against fp32, i.e. unrelated numbers; a 14 x 14 kernel or 3 channels
    are fine), and the pipeline's bf16 path would feed the transformer garbage. The matmul goes through
    the plain GEMM and is as fast. ``weight`` is (dim, in_ch * patch * patch), flattened as (c, i, j).
    """

    def __init__(self, in_ch: int, dim: int, patch: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(in_ch * patch * patch, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        B, C, H, W = x.shape
        p = self.patch
        if H % p or W % p:
            raise ValueError(f"input {H}x{W} is not a multiple of the patch size {p}")
        gh, gw = H // p, W // p
        x = x.reshape(B, C, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p)
        return self.proj(x.reshape(B, gh * gw, C * p * p)), (gh, gw)
