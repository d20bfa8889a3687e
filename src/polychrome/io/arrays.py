"""In-memory photos in and out: a PIL image or a numpy array <-> float RGB in [0, 1], in the caller's own type.

The Python API hands back what it was given: PIL in, PIL out (RGBA if it had alpha); an array comes back
with its dtype, height and width ((H, W, 4) keeps its alpha; a grey (H, W) or (H, W, 1) array becomes
(H, W, 3), since a grey array has no room for colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from polychrome.io.images import finite_unit, pil_to_rgb_array, rgb_array_to_pil, to_uint8, to_uint16


@dataclass(frozen=True)
class Photo:
    """A photo as the pipeline takes it, and how to hand a result back in the input's own type."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray | None  # (H, W) float32 in [0, 1], or None
    kind: type  # Image.Image or np.ndarray
    dtype: np.dtype | None = None  # an array's dtype
    has_alpha_channel: bool = False  # an (H, W, 4) array

    def like_input(self, rgb: np.ndarray):
        """A result (H, W, 3) float in [0, 1] in this photo's own type (alpha put back)."""
        if self.kind is Image.Image:
            return rgb_array_to_pil(rgb, self.alpha)
        out = np.concatenate([rgb, self.alpha[..., None]], axis=2) if self.has_alpha_channel else rgb
        if self.dtype == np.uint8:
            return to_uint8(out)
        if self.dtype == np.uint16:
            return to_uint16(out)
        return out.astype(self.dtype)


def read_photo(img) -> Photo:
    """A PIL image (any mode; EXIF orientation is NOT applied to an in-memory image) or a numpy array (H, W)
    or (H, W, 1|3|4) of uint8 0-255, uint16 0-65535 or float in [0, 1] (clipped; NaN/Inf mended with an
    ImageWarning) -> :class:`Photo`.

    Raises TypeError for another type or dtype, ValueError for another shape."""
    if isinstance(img, Image.Image):
        rgb, alpha = pil_to_rgb_array(img)
        return Photo(rgb, alpha, Image.Image)
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(img).__name__}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an array of shape (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    if img.dtype == np.uint8:
        f = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        f = img.astype(np.float32) / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        f = finite_unit(img.astype(np.float32), "array")
    else:
        raise TypeError(f"expected a uint8, uint16 or float array, got {img.dtype}")
    g = f if f.ndim == 3 else f[..., None]
    rgb = np.repeat(g, 3, axis=2) if g.shape[2] == 1 else g[..., :3]
    four = img.ndim == 3 and img.shape[2] == 4
    return Photo(np.clip(rgb, 0, 1), f[..., 3] if four else None, np.ndarray, img.dtype, four)
