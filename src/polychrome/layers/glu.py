"""A residual block with GLU gating (Dauphin et al. 2017), for colourisation decoders."""

from __future__ import annotations

import torch
from torch import nn

from polychrome.layers.norm import group_norm


class GLUConv(nn.Module):
    """3x3 conv to 2 * out channels, GroupNorm, then GLU: ``a * sigmoid(g)``.

    The gate lets each position switch a feature off (a colour that does not belong there) instead of
    only scaling it, which a ReLU cannot do for positive features. (B, cin, H, W) -> (B, cout, H, W)."""

    def __init__(self, cin: int, cout: int, groups: int = 32):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, 3, padding=1, bias=False)  # the norm's shift replaces a bias
        self.norm = group_norm(2 * cout, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.norm(self.conv(x)).chunk(2, dim=1)
        return a * torch.sigmoid(g)


class GLUResBlock(nn.Module):
    """Two GLU convs plus a shortcut (1x1 conv when the width changes).

    forward(x) with x (B, cin, H, W) float -> (B, cout, H, W)."""

    def __init__(self, cin: int, cout: int, groups: int = 32):
        super().__init__()
        self.body = nn.Sequential(GLUConv(cin, cout, groups), GLUConv(cout, cout, groups))
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)
