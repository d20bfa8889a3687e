"""A dataset over any folder tree (or file list) of colour photos.

It returns RGB tensors; Lab targets are made on the batch by the trainer (one vectorised kornia
call instead of one per image). Greyscale photos are useless as colour targets and are skipped at
start-up with Zhang et al.'s test (no pixel with |a| or |b| > 5); unreadable files are skipped with
a warning naming them. Both counts are kept on the dataset.
"""

from __future__ import annotations

import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from polychrome.color.lab import rgb_to_lab
from polychrome.data.transforms import center_crop_resize, train_transform
from polychrome.io import ImageError, find_images, open_image, pil_to_rgb_array, to_uint8

log = logging.getLogger(__name__)

#: Zhang et al.'s greyscale test: a photo is grey when no pixel has |a| or |b| above this.
GRAY_AB_THRESHOLD = 5.0
# Photos are checked at this size: enough to find colour, cheap for big files.
_CHECK_SIZE = 128


def to_rgb_pil(img: Image.Image) -> Image.Image:
    """Any mode (palette, CMYK, 16-bit, alpha) -> 8-bit RGB PIL image."""
    if img.mode == "RGB":
        return img
    rgb, _ = pil_to_rgb_array(img)
    return Image.fromarray(to_uint8(rgb), "RGB")


def is_grayscale(img: Image.Image, threshold: float = GRAY_AB_THRESHOLD) -> bool:
    """True when no pixel of the (downscaled) photo has |a| or |b| above ``threshold``."""
    small = to_rgb_pil(img)
    small.thumbnail((_CHECK_SIZE, _CHECK_SIZE))
    rgb = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1)
    ab = rgb_to_lab(rgb)[1:]
    return bool(ab.abs().max() <= threshold)


def _check(path: Path) -> str:
    """'ok', 'gray' or an error message for one file."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (_CHECK_SIZE * 2, _CHECK_SIZE * 2))  # JPEG: decode at reduced size
            return "gray" if is_grayscale(im) else "ok"
    except ImageError as e:
        return str(e)
    except Exception as e:  # PIL raises many types for broken files
        return f"{path}: cannot read image ({e})"


class ColorPhotoFolder(Dataset):
    """Colour photos under ``root`` (folder tree, single file or .txt list), as RGB tensors.

    Each item is (3, size, size) float32 sRGB in [0, 1]. ``train=True``: random resized crop and
    flip, seeded by (seed, epoch, index) -- call :meth:`set_epoch` each epoch. ``train=False``:
    central square resized (deterministic).

    Attributes ``skipped_gray`` and ``skipped_unreadable`` count what the start-up scan dropped.
    """

    def __init__(
        self,
        root: str | os.PathLike | list,
        size: int,
        train: bool,
        seed: int = 0,
        skip_gray: bool = True,
        limit: int | None = None,
        scan_workers: int = 4,
    ):
        paths = [Path(p) for p in root] if isinstance(root, list) else find_images(root)
        if limit is not None:
            # A deterministic subset spread over the whole tree, not the first folder only.
            paths = sorted(random.Random(seed).sample(paths, min(limit, len(paths))))
        self.size, self.train, self.seed, self.epoch = size, train, seed, 0
        self.skipped_gray = 0
        self.skipped_unreadable: list[str] = []
        if skip_gray:
            with ThreadPoolExecutor(scan_workers) as pool:
                verdicts = list(pool.map(_check, paths))
            kept = []
            for p, v in zip(paths, verdicts):
                if v == "ok":
                    kept.append(p)
                elif v == "gray":
                    self.skipped_gray += 1
                else:
                    self.skipped_unreadable.append(v)
                    log.warning("skipping unreadable photo: %s", v)
            paths = kept
        if self.skipped_gray:
            log.warning("skipped %d greyscale photo(s) under %s", self.skipped_gray, root if not isinstance(root, list) else "the list")
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draws for this epoch (must be called before the loader is iterated)."""
        self.epoch = epoch

    def __getitem__(self, i: int) -> torch.Tensor:
        img = to_rgb_pil(open_image(self.paths[i]))
        if self.train:
            rng = random.Random((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
            img = train_transform(img, self.size, rng)
        else:
            img = center_crop_resize(img, self.size)
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
