"""Convolution blocks shared by the CNN colourisers."""

from __future__ import annotations

import torch.nn as nn


class DoubleConv(nn.Sequential):
    """Two (3x3 conv -> BatchNorm -> ReLU). Keeps H and W; (B, cin, H, W) -> (B, cout, H, W)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            # The conv bias is redundant in front of BatchNorm.
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )
