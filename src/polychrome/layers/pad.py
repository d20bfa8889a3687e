"""Padding an input up to a network's stride multiple."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right so H and W are multiples of ``multiple``.

    Reflect padding, so borders see image content rather than a zero frame; reflect cannot pad more
    than the input's own size, so very small or thin inputs (a panorama's height) replicate. Crop the
    result back with ``[..., :H, :W]``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)
