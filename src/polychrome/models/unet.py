"""UNet regressor on Lab ab (the classic "Colorizer" design).

Encoder: ``depth`` stages of DoubleConv then 2x2 max-pool, widths ``base * 2**i``; a DoubleConv
bottleneck; decoder: 2x2 transposed conv up, concatenation with the skip, DoubleConv. A 1x1 head
maps to 2 channels with tanh (ab / AB_SCALE), or, for the RGB head option, to 3 channels with a
sigmoid (sRGB) that is converted to ab: the prediction then always lies inside the sRGB gamut, and
the model keeps the one contract every caller (trainer, pipeline, export) relies on.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from polychrome.color.lab import ab_to_net, rgb_to_lab
from polychrome.layers import DoubleConv, pad_to_multiple
from polychrome.models._registry import register_model


class UNetColorizer(nn.Module):
    """Predicts colour from lightness.

    forward(L_net) with L_net (B, 1, H, W) float, L in network units [-1, 1] (see color/lab.py),
    any H and W (padded internally to a multiple of 2**depth, cropped back).
    Returns (B, 2, H, W) ab in network units within (-1, 1), for either head: ``head="rgb"``
    predicts sRGB in (0, 1) and returns its ab (its own lightness is discarded; the caller's L is kept).
    """

    def __init__(self, base: int = 64, depth: int = 4, head: str = "ab"):
        super().__init__()
        if head not in ("ab", "rgb"):
            raise ValueError(f"head must be 'ab' or 'rgb', got {head!r}")
        self.head_kind = head
        self.depth = depth
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = 1
        for w in widths[:-1]:
            self.down.append(DoubleConv(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_deep, w in zip(widths[:0:-1], widths[-2::-1]):
            self.up.append(nn.ConvTranspose2d(w_deep, w, 2, stride=2))
            self.dec.append(DoubleConv(2 * w, w))
        self.head = nn.Conv2d(widths[0], 2 if head == "ab" else 3, 1)

    def forward(self, L_net: torch.Tensor) -> torch.Tensor:
        h, w = L_net.shape[-2:]
        x = pad_to_multiple(L_net, 2**self.depth)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        x = self.head(x)[..., :h, :w]
        if self.head_kind == "ab":
            return torch.tanh(x)
        # fp32 for the colour conversion even under autocast: its matrix and cube root are too coarse in bf16.
        with torch.autocast(x.device.type, enabled=False):
            rgb = torch.sigmoid(x.float())  # (B, 3, H, W) sRGB
            return ab_to_net(rgb_to_lab(rgb)[:, 1:])  # (B, 2, H, W)


@register_model
def unet_32(**kw) -> UNetColorizer:
    return UNetColorizer(**{"base": 32, **kw})


@register_model
def unet_64(**kw) -> UNetColorizer:
    return UNetColorizer(**{"base": 64, **kw})


@register_model
def unet_96(**kw) -> UNetColorizer:
    return UNetColorizer(**{"base": 96, **kw})


@register_model
def unet_128(**kw) -> UNetColorizer:
    return UNetColorizer(**{"base": 128, **kw})


@register_model
def simple_unet(**kw) -> UNetColorizer:
    """A small UNet (base 16, depth 3) for quick experiments and tests."""
    return UNetColorizer(**{"base": 16, "depth": 3, **kw})
