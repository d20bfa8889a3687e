"""Additive attention gate on a UNet skip connection (Oktay et al. 2018, "Attention U-Net")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionGate(nn.Module):
    """Weight a skip feature map by a per-pixel gate computed from it and the coarser decoder feature.

    ``alpha = sigmoid(psi(relu(theta(skip) + phi(up(gate)))))`` and the output is ``skip * alpha``: the
    decoder, which already knows what the region is, chooses which fine encoder details (edges that
    matter for colour boundaries, not texture noise) come through.

    forward(skip, gate): skip (B, Cs, H, W), gate (B, Cg, h, w) with any h, w (resized to H, W)
    -> (B, Cs, H, W). ``return_alpha=True`` also returns the gate alpha (B, 1, H, W) in (0, 1).
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(skip_channels // 2, 1)
        self.theta = nn.Conv2d(skip_channels, inter, 1, bias=False)
        self.phi = nn.Conv2d(gate_channels, inter, 1)
        self.psi = nn.Conv2d(inter, 1, 1)

    def forward(self, skip: torch.Tensor, gate: torch.Tensor, return_alpha: bool = False):
        g = self.phi(gate)
        if g.shape[-2:] != skip.shape[-2:]:
            g = F.interpolate(g, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(self.theta(skip) + g)))  # (B, 1, H, W)
        out = skip * alpha
        return (out, alpha) if return_alpha else out
