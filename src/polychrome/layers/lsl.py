"""Local Stabilising Layer (iColoriT, Yun et al., WACV 2023).

A ViT that upsamples by pixel shuffling predicts each 16 x 16 patch's colours from that patch's token
alone, so neighbouring patches, decided independently, disagree at their shared edge and the result
shows a patch grid. iColoriT's fix is to make the last layer, the one whose outputs are shuffled into
pixels, see a small neighbourhood of tokens instead of one: its receptive field is restricted to the
k x k neighbouring patches (in the paper, a local attention or, the authors' default, a convolution;
this is the convolution). Each patch's pixels are then a linear function of its own and its
neighbours' tokens, and adjacent patches share most of their inputs, which smooths the seams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LocalStabilizingLayer(nn.Module):
    """k x k convolution over the token grid, producing each token's pixel-shuffle values.

    forward(x): x (B, dim, gh, gw) token features laid out as their grid; returns (B, out_dim, gh, gw),
    e.g. out_dim = 2 * 16 * 16 for ``F.pixel_shuffle(..., 16)`` to ab at full resolution.
    """

    def __init__(self, dim: int, out_dim: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.pad = kernel_size // 2
        self.conv = nn.Conv2d(dim, out_dim, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        if p:
            # Reflect so border patches see real neighbours rather than a zero frame (zeros would pull the
            # border patches' colours toward the bias). Reflect cannot pad a grid that is only p tokens wide
            # (a 16 px high strip): replicate there.
            mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
            x = F.pad(x, (p, p, p, p), mode=mode)
        return self.conv(x)
