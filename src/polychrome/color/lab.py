"""CIE L*a*b* (D65) conversion and the one network-facing normalisation.

Every Lab conversion and every L/ab scaling constant in polychrome lives here. Conversions are
thin, checked wrappers around :mod:`kornia.color` so they are differentiable and batched on any
device.

Units: ``L`` in [0, 100]; ``a``/``b`` in CIE units (about [-110, 110] for sRGB colours).
Network units: ``L_net = (L - L_CENTER) / L_SCALE`` in [-1, 1], ``ab_net = ab / AB_SCALE``.
"""

from __future__ import annotations

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
    lin = rgb_to_linear_rgb(x)
    # Y of kornia's rgb_to_xyz (D65); the D65 white's Y is 1, so no normalisation is needed.
    y = 0.212671 * lin[..., 0:1, :, :] + 0.715160 * lin[..., 1:2, :, :] + 0.072169 * lin[..., 2:3, :, :]
    threshold = 0.008856
    f = torch.where(y > threshold, y.clamp(min=threshold).pow(1 / 3.0), 7.787 * y + 4.0 / 29.0)
    return (116.0 * f - 16.0).to(rgb.dtype)


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
