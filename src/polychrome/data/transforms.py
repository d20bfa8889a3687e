"""Geometric transforms on PIL images, driven by an explicit ``random.Random`` so that a sample's
augmentation depends only on (seed, epoch, index): resumed and multi-process runs see the same data."""

from __future__ import annotations

import math
import random

from PIL import Image


def random_resized_crop(
    img: Image.Image,
    size: int,
    rng: random.Random,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Image.Image:
    """Crop a random area (fraction ``scale`` of the photo, aspect in ``ratio``) and resize it to size x size."""
    w, h = img.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0 = rng.randint(0, w - cw)
            y0 = rng.randint(0, h - ch)
            return img.resize((size, size), Image.Resampling.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
    return center_crop_resize(img, size)  # fallback for extreme aspect ratios


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Deterministic: the central square of the photo resized to size x size (validation)."""
    w, h = img.size
    s = min(w, h)
    x0, y0 = (w - s) // 2, (h - s) // 2
    return img.resize((size, size), Image.Resampling.BICUBIC, box=(x0, y0, x0 + s, y0 + s))


def train_transform(img: Image.Image, size: int, rng: random.Random) -> Image.Image:
    """Random resized crop, then a horizontal flip half of the time."""
    out = random_resized_crop(img, size, rng)
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out
