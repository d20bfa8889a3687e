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


def pad_border(x: torch.Tensor, border: int) -> torch.Tensor:
    """Pad (B, C, H, W) by ``border`` pixels on all four sides, reflecting the image (replicating where
    the image is too small to reflect). Crop back with ``[..., border:border + H, border:border + W]``."""
    if border <= 0:
        return x
    h, w = x.shape[-2:]
    mode = "reflect" if (border < h and border < w) else "replicate"
    return F.pad(x, (border, border, border, border), mode=mode)
