"""A stand-in hint model for the pipeline, CLI and evaluation tests of colour hints (plain helpers, not a conftest)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpreadHints(nn.Module):
    """A deterministic "hint model": each hint's ab spreads over a ``reach`` x ``reach`` box around it
    (normalised box filter: where boxes overlap, the mean of their colours); ab 0 where no hint reaches.

    So the colour near a hint IS the hint's colour, more true hints cover more of a photo with nearly its
    true colours, and no hints give a grey photo. Records what it was given in ``seen``:
    (L_net, hint_ab_net, hint_mask) per call.
    """

    uses_hints = True

    def __init__(self, infer_size: int = 64, reach: int = 9):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()), requires_grad=False)  # the pipeline finds the device through it
        self.reach = reach
        self.meta = {"model": "spread-hints", "infer_size": infer_size}
        self.seen: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = []

    def forward(self, L_net, hint_ab_net=None, hint_mask=None):
        hints = (None if t is None else t.detach().float().clone() for t in (hint_ab_net, hint_mask))
        self.seen.append((L_net.detach().float().clone(), *hints))
        B, _, H, W = L_net.shape
        if hint_mask is None:
            return torch.zeros(B, 2, H, W)
        k = self.reach
        num = F.avg_pool2d(hint_ab_net * hint_mask, k, stride=1, padding=k // 2, count_include_pad=False)
        den = F.avg_pool2d(hint_mask, k, stride=1, padding=k // 2, count_include_pad=False)
        return torch.where(den > 0, num / den.clamp(min=1e-8), torch.zeros_like(num)) * self.gain
