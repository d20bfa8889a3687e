"""Image-quality metrics on RGB batches; scales are documented per function."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from polychrome.color.lab import rgb_to_lab


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image. pred, target: (B, 3, H, W) sRGB in [0, 1] (the same as 0-255 with peak 255).
    Returns (B,) float."""
    return peak_signal_noise_ratio(pred.float(), target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3))


def mean_chroma(rgb: torch.Tensor) -> torch.Tensor:
    """Mean Lab chroma sqrt(a^2 + b^2) of each image. rgb: (B, 3, H, W) in [0, 1]. Returns (B,)."""
    ab = rgb_to_lab(rgb.float())[:, 1:]
    return ab.pow(2).sum(1).sqrt().mean(dim=(1, 2))
