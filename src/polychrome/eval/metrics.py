"""Image-quality metrics. Two families, scales documented per function:

* torch, batched, sRGB in [0, 1] (``psnr_per_image``, ``mean_chroma``): cheap validation inside training.
* numpy, one photo (H, W, 3) on the **0-255 scale** (uint8, or float holding 0-255 values): the
  evaluation metrics of ``polychrome evaluate``, wrappers over scikit-image so the numbers match what
  others compute with the same library. Use :func:`polychrome.io.to_uint8` (re-exported here) to quantise a [0, 1] result exactly as
  a saved 8-bit file would hold it.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio as _tm_psnr

from polychrome.checks import check_shape
from polychrome.color.lab import rgb_to_lab
from polychrome.io import to_uint8  # noqa: F401  (re-exported: scores are taken on 8-bit values)

#: PSNR (dB) reported for identical images, and the most any image scores. A finite cap keeps means
#: and JSON finite; for 8-bit photos of a few hundred pixels a side only (near-)identical pairs reach it
#: (one pixel off by 1 level in a 481x321 photo is 104.8 dB).
PSNR_MAX_DB = 100.0

#: Side (px) of the square SSIM window, scikit-image's default; smaller photos get the largest odd side that fits.
SSIM_WIN_SIZE = 7


# --- torch, batched, [0, 1] ------------------------------------------------------------------------


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image. pred, target: (B, 3, H, W) sRGB in [0, 1] (the same as 0-255 with peak 255).
    Returns (B,) float."""
    return _tm_psnr(pred.float(), target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3))


def mean_chroma(rgb: torch.Tensor) -> torch.Tensor:
    """Mean Lab chroma sqrt(a^2 + b^2) of each image. rgb: (B, 3, H, W) in [0, 1]. Returns (B,)."""
    ab = rgb_to_lab(rgb.float())[:, 1:]
    return ab.pow(2).sum(1).sqrt().mean(dim=(1, 2))


# --- numpy, one photo, 0-255 -----------------------------------------------------------------------


def _check_rgb255(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    check_shape(x, "... H W 3", name)
    if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"{name} must be uint8 or float on the 0-255 scale, got dtype {x.dtype}")
    return x


def _check_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = _check_rgb255(pred, "pred"), _check_rgb255(target, "target")
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(f"pred and target must both be (H, W, 3) of the same size, got {pred.shape}, {target.shape}")
    return pred, target


def psnr(pred: np.ndarray, target: np.ndarray, max_db: float | None = PSNR_MAX_DB) -> float:
    """PSNR in dB with peak 255 (``skimage.metrics.peak_signal_noise_ratio(data_range=255)``).

    Args:
        pred, target: (H, W, 3) on the 0-255 scale, same shape.
        max_db: cap on the result (:data:`PSNR_MAX_DB`); identical images score exactly ``max_db``.
            ``None`` returns the raw value, ``inf`` for identical images.
    """
    pred, target = _check_pair(pred, target)
    with np.errstate(divide="ignore"):  # MSE 0 -> inf, handled below
        value = float(peak_signal_noise_ratio(target.astype(np.float64), pred.astype(np.float64), data_range=255))
    return value if max_db is None else min(value, float(max_db))


def ssim_win_size(h: int, w: int) -> int:
    """SSIM window side used for an (h, w) photo: :data:`SSIM_WIN_SIZE`, or the largest odd side that fits."""
    side = min(SSIM_WIN_SIZE, h, w)
    side -= 1 - side % 2
    if side < 3:
        raise ValueError(f"SSIM needs a photo of at least 3x3 px, got {h}x{w}")
    return side


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM over the three RGB channels, in [-1, 1] (1 = identical).

    ``skimage.metrics.structural_similarity(channel_axis=2, data_range=255)`` with its defaults
    (uniform 7x7 window, K1=0.01, K2=0.03, sample covariance); the window shrinks to the largest odd
    side that fits a photo under 7 px (see :func:`ssim_win_size`).

    Args:
        pred, target: (H, W, 3) on the 0-255 scale, same shape, H and W at least 3.
    """
    pred, target = _check_pair(pred, target)
    win = ssim_win_size(*pred.shape[:2])
    return float(
        structural_similarity(
            target.astype(np.float64), pred.astype(np.float64), channel_axis=2, data_range=255, win_size=win
        )
    )


def colorfulness(rgb: np.ndarray) -> np.ndarray | float:
    """Colourfulness M of Hasler and Suesstrunk (2003), "Measuring colourfulness in natural images".

    With rg = R - G and yb = (R + G) / 2 - B over all pixels:
    ``M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)`` (population std).
    0 for any grey image; about 40 for typical photos, above 100 for saturated graphics.

    Args:
        rgb: (..., H, W, 3) on the 0-255 scale (uint8, or float with 0-255 values: NOT [0, 1]).
    Returns:
        float for one image, else an array of shape ``rgb.shape[:-3]``.
    """
    x = _check_rgb255(rgb, "rgb").astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    axes = (-2, -1)
    sigma = np.sqrt(rg.var(axis=axes) + yb.var(axis=axes))
    mu = np.sqrt(rg.mean(axis=axes) ** 2 + yb.mean(axis=axes) ** 2)
    m = sigma + 0.3 * mu
    return float(m) if np.ndim(m) == 0 else m


def ciede2000(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference per pixel (0 = identical; about 2.3 is a just-noticeable difference).

    ``skimage.color.deltaE_ciede2000`` (kL = kC = kH = 1) between ``skimage.color.rgb2lab`` (sRGB, D65,
    2-degree observer) of the two photos.

    Args:
        pred, target: (H, W, 3) on the 0-255 scale, same shape.
    """
    pred, target = _check_pair(pred, target)
    lab_p = rgb2lab(pred.astype(np.float64) / 255.0)
    lab_t = rgb2lab(target.astype(np.float64) / 255.0)
    return float(deltaE_ciede2000(lab_t, lab_p).mean())


#: green_cast: a pixel counts as painted green when its CIE a* is below this (clearly green) ...
GREEN_A = -6.0
#: ... while the original's a* there is above this (not green at all: skin, wood, brick, grey pavement).
NOT_GREEN_A = -2.0


def green_cast(pred: np.ndarray, target: np.ndarray) -> float:
    """Share of pixels (0-1) a colouriser paints clearly green (a* < GREEN_A) where the original is not green
    at all (a* > NOT_GREEN_A): green faces, green pavements, green walls. 0 for the grey baseline.

    Args:
        pred, target: (H, W, 3) on the 0-255 scale, same shape.
    """
    pred, target = _check_pair(pred, target)
    a_p = rgb2lab(pred.astype(np.float64) / 255.0)[..., 1]
    a_t = rgb2lab(target.astype(np.float64) / 255.0)[..., 1]
    return float(((a_p < GREEN_A) & (a_t > NOT_GREEN_A)).mean())
