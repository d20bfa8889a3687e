"""CIE L*a*b* (D65) conversion and the one network-facing normalisation.

Every Lab conversion and every L/ab scaling constant in polychrome lives here. Conversions are
thin, checked wrappers around :mod:`kornia.color` so they are differentiable and batched on any
device.

Units: ``L`` in [0, 100]; ``a``/``b`` in CIE units (about [-110, 110] for sRGB colours).
Network units: ``L_net = (L - L_CENTER) / L_SCALE`` in [-1, 1], ``ab_net = ab / AB_SCALE``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab
from kornia.color import rgb_to_linear_rgb

#: L is centred and scaled to [-1, 1] for the network.
L_CENTER = 50.0
L_SCALE = 50.0
#: ab is divided by this for the network; a tanh head on this scale spans every sRGB colour.
AB_SCALE = 128.0

__all__ = [
    "AB_SCALE",
    "L_CENTER",
    "L_SCALE",
    "ab_to_net",
    "check_image",
    "l_to_net",
    "lab_to_rgb",
    "net_to_ab",
    "net_to_l",
    "rgb_to_lab",
    "split_lab",
    "rgb_to_gray_l",
    "l_to_gray_rgb",
    "gray8_to_l_table",
    "lab_to_srgb8",
    "linear_to_l",
    "srgb8_to_linear_table",
]


def check_image(x: torch.Tensor, channels: int, name: str = "input") -> None:
    """Raise a clear error unless ``x`` is a floating tensor of shape (B, channels, H, W) or (channels, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() not in (3, 4) or x.shape[-3] != channels:
        raise ValueError(f"{name} must have shape (B, {channels}, H, W) or ({channels}, H, W), got {tuple(x.shape)}")


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB to CIE Lab (D65).

    Args:
        rgb: (B, 3, H, W) or (3, H, W) float, sRGB in [0, 1].
    Returns:
        Same shape; channel 0 is L in [0, 100], channels 1-2 are a, b in CIE units.
    """
    check_image(rgb, 3, "rgb")
    return _kornia_rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE Lab (D65) to sRGB.

    Args:
        lab: (B, 3, H, W) or (3, H, W) float; L in [0, 100], a/b in CIE units.
        clip: clamp the result to [0, 1]. This is how out-of-gamut ab is brought into sRGB.
    Returns:
        Same shape, sRGB in [0, 1] when ``clip``.
    """
    check_image(lab, 3, "lab")
    return _kornia_lab_to_rgb(lab, clip=clip)


def split_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) Lab -> (L (B, 1, H, W), ab (B, 2, H, W)), real units."""
    check_image(lab, 3, "lab")
    return lab[..., :1, :, :], lab[..., 1:, :, :]


def rgb_to_gray_l(rgb: torch.Tensor) -> torch.Tensor:
    """The L channel of an sRGB image: (B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [0, 100].

    Computes L alone, the way :func:`rgb_to_lab` (kornia) computes it: linear RGB (kornia), the Y row of
    the same RGB->XYZ matrix, then CIE's f(Y) with kornia's constants. The full conversion also builds
    X, Z, a and b, which the pipeline throws away at full resolution: for a 12 MP photo this is most of
    the cost of reading its lightness. Tested equal to ``rgb_to_lab(rgb)[:, :1]``."""
    check_image(rgb, 3, "rgb")
    x = rgb if rgb.dtype in (torch.float32, torch.float64) else rgb.float()
    return linear_to_l(rgb_to_linear_rgb(x), dim=-3).to(rgb.dtype)


def linear_to_l(lin: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """L in [0, 100] of linear RGB whose channels lie along ``dim`` (kept, size 1): the Y row of kornia's
    RGB->XYZ matrix (D65), then CIE's f(Y) with kornia's constants, as :func:`rgb_to_gray_l` computes it."""
    r, g, b = lin.narrow(dim, 0, 1), lin.narrow(dim, 1, 1), lin.narrow(dim, 2, 1)
    # Y of kornia's rgb_to_xyz (D65); the D65 white's Y is 1, so no normalisation is needed.
    y = 0.212671 * r + 0.715160 * g + 0.072169 * b
    threshold = 0.008856
    f = torch.where(y > threshold, y.clamp(min=threshold).pow(1 / 3.0), 7.787 * y + 4.0 / 29.0)
    return 116.0 * f - 16.0


# ------------------------------------------------------------------ 8-bit photos: lookup tables
# An 8-bit channel has 256 values, so its linear value and a grey level's L are tables, computed once by the
# very functions above (the results equal what those functions give pixel by pixel). On the way out, linear
# RGB in [0, 1] is indexed into a 65536-entry table of 8-bit sRGB values: its step (1/65535 in linear) moves
# an 8-bit value by at most 0.025, so a pixel differs from the exact conversion by one level at most, and
# only where the exact value lies within 0.025 of a rounding boundary.
_OUT_STEPS = 65535


@lru_cache(maxsize=1)
def srgb8_to_linear_table() -> np.ndarray:
    """(256,) float32: linear RGB of each 8-bit sRGB value (kornia's ``rgb_to_linear_rgb`` of v / 255)."""
    v = torch.arange(256, dtype=torch.float32) / 255.0
    return rgb_to_linear_rgb(v.view(1, 1, 256).expand(3, 1, 256))[0, 0].numpy().copy()


@lru_cache(maxsize=1)
def gray8_to_l_table() -> np.ndarray:
    """(256,) float32: L of each 8-bit grey level (R = G = B), as :func:`rgb_to_gray_l` computes it."""
    v = torch.arange(256, dtype=torch.float32) / 255.0
    return rgb_to_gray_l(v.view(1, 1, 256).expand(3, 1, 256))[0, 0].numpy().copy()


@lru_cache(maxsize=1)
def _linear_to_srgb8_table() -> torch.Tensor:
    x = torch.arange(_OUT_STEPS + 1, dtype=torch.float64) / _OUT_STEPS
    srgb = torch.where(x > 0.0031308, 1.055 * x.clamp(min=0.0031308).pow(1 / 2.4) - 0.055, 12.92 * x)
    return (srgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)  # rounded half up, as polychrome.io.to_uint8


#: kornia's XYZ->RGB matrix (D65) with the D65 white folded in, transposed for (N, 3) @ (3, 3).
_XYZ_WHITE = (0.95047, 1.0, 1.08883)
_XYZ_TO_RGB = (
    (3.2404813432005266, -1.5371515162713185, -0.4985363261688878),
    (-0.9692549499965682, 1.8759900014898907, 0.0415559265582928),
    (0.0556466391351772, -0.2040413383665112, 1.0573110696453443),
)


@lru_cache(maxsize=1)
def _lab_matrix() -> torch.Tensor:
    m = torch.tensor(_XYZ_TO_RGB, dtype=torch.float32) * torch.tensor(_XYZ_WHITE).view(1, 3)
    return m.T.contiguous()


def lab_to_srgb8(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65) of N pixels -> 8-bit sRGB (N, 3) uint8, out-of-gamut colours clamped.

    ``L``, ``a``, ``b``: (N,) float32. The conversion is :func:`lab_to_rgb`'s (kornia's formulas and
    constants) up to the linear -> sRGB step, which is a lookup table (see above): the result equals
    ``to_uint8(lab_to_rgb(...))`` but for a level's difference at rare pixels, at a fraction of the cost
    and memory of the float path."""
    f = torch.empty(3, L.numel(), dtype=torch.float32, device=L.device)
    fy = (L.reshape(-1) + 16.0) / 116.0
    torch.add(a.reshape(-1) / 500.0, fy, out=f[0])
    f[1] = fy
    torch.sub(fy, b.reshape(-1) / 200.0, out=f[2])
    f[2].clamp_(min=0.0)  # out of range: Z < 0
    xyz = torch.where(f > 0.2068966, f * f * f, (f - 4.0 / 29.0) / 7.787)
    lin = torch.mm(xyz.T, _lab_matrix().to(L.device))  # (N, 3): pixels in rows, as an RGB image stores them
    idx = lin.clamp_(0.0, 1.0).mul_(float(_OUT_STEPS)).add_(0.5).to(torch.int32)
    return _linear_to_srgb8_table().to(L.device)[idx]


def l_to_gray_rgb(L: torch.Tensor) -> torch.Tensor:
    """The neutral sRGB grey of lightness L: (B, 1, H, W) L in [0, 100] -> (B, 1, H, W) sRGB in [0, 1].

    It is what an RGB network trained on colour photos sees of a grey photo (R = G = B), which
    ``L_net`` itself is not: L is a cube-root scale, sRGB a gamma curve. Computed in fp32."""
    check_image(L, 1, "L")
    L = L.float()
    zeros = torch.zeros_like(L)
    rgb = lab_to_rgb(torch.cat([L, zeros, zeros], dim=-3))  # (B, 3, H, W), channels equal up to rounding
    return rgb.mean(dim=-3, keepdim=True)


def l_to_net(L: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> network input in [-1, 1]."""
    return (L - L_CENTER) / L_SCALE


def net_to_l(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`l_to_net`."""
    return x * L_SCALE + L_CENTER


def ab_to_net(ab: torch.Tensor) -> torch.Tensor:
    """ab in CIE units -> network units (ab / AB_SCALE, within [-1, 1] for sRGB colours)."""
    return ab / AB_SCALE


def net_to_ab(x: torch.Tensor) -> torch.Tensor:
    """Network units -> ab in CIE units. Inverse of :func:`ab_to_net`."""
    return x * AB_SCALE
