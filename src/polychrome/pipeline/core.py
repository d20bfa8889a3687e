"""The tensor path from lightness to colour, shared by every front end through the Colorizer:

    L (B,1,H,W), 0..100 ──resize_l──> L at the working size (h,w) ──model──> ab (B,2,h,w), CIE units
    ab ──upsample──> (B,2,H,W) ──join_lab with the ORIGINAL L──> sRGB (B,3,H,W) in [0,1], gamut-clamped

This module is the only place that resizes L for a model, paints hints onto the working grid and joins
Lab; files, PIL and 8-bit images are :mod:`polychrome.io`'s. A colour input is made grey first (only its
L is used): the tool colourises, it does not keep old colour.

Full resolution in bounded memory: everything at the photo's own size is done a band of rows at a time
(:data:`BAND_PIXELS` pixels, whatever the photo's size): L from the photo's 8-bit pixels through lookup
tables, L down to the working grid (antialiased, one axis at a time), ab up (bilinear, as
``F.interpolate``), the Lab join and the 8-bit quantisation. An 8-bit photo is never held as floats at full
resolution: what grows with the photo is its decoded input and its 8-bit output. A photo of more than 8
bits (a 16-bit scan) takes the same bands with the float join (:func:`render_deep`), for a 16-bit output.

Stage timing: functions here take ``timer``, a callable ``timer(stage) -> context manager`` wrapped around
each stage (:data:`STAGES` names them); :func:`no_timer` does nothing. The speed benchmark passes its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import box_blur
from torch import nn

from polychrome.color.hints import Hint, HintError, rasterize_hints
from polychrome.color.lab import (
    ab_to_net,
    gray8_to_l_table,
    l_to_net,
    lab_to_rgb,
    lab_to_srgb8,
    linear_to_l,
    net_to_ab,
    rgb_to_gray_l,
    srgb8_to_linear_table,
)
from polychrome.models.card import GuidedFilter
from polychrome.pipeline.precision import call_model, model_device

#: Stages a ``timer`` is called with, in path order.
STAGES = ("decode", "to_float", "rgb_to_l", "resize", "model", "lab_to_rgb", "to_8bit", "encode")

#: ``timer(stage)`` -> a context manager around that stage's work.
Timer = Callable[[str], AbstractContextManager]


def no_timer(stage: str) -> AbstractContextManager:
    """The default ``timer``: times nothing."""
    return contextlib.nullcontext()


def working_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(h, w) scaled so the longest side is ``size`` (never upscaled), aspect ratio kept."""
    scale = min(1.0, size / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_l(L: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """L (B, 1, H, W) resized to ``hw`` for a model: antialiased bilinear (plain bilinear would alias fine
    texture into the model's input); L itself when it already has that size."""
    if tuple(L.shape[-2:]) == tuple(hw):
        return L
    return F.interpolate(L, size=hw, mode="bilinear", antialias=True, align_corners=False)


def upsample(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A (B, C, h, w) map (ab, confidence) resized bilinearly to ``hw``; itself when it has that size."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)


def join_lab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B,1,H,W) + ab (B,2,H,W) of the same size -> sRGB (B,3,H,W) in [0,1], out-of-gamut colours clamped."""
    return lab_to_rgb(torch.cat([L, ab], dim=1), clip=True)


def gray_rgb(L: torch.Tensor) -> torch.Tensor:
    """The grey photo of an L (ab = 0): (B, 1, H, W) in [0, 100] -> sRGB (B, 3, H, W) in [0, 1]."""
    return join_lab(L, torch.zeros_like(L).repeat(1, 2, 1, 1))


def lightness(rgb: np.ndarray) -> torch.Tensor:
    """The L channel of a photo: (H, W, 3) float RGB in [0, 1] -> (1, 1, H, W) float32 L in [0, 100]."""
    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    return rgb_to_gray_l(x)  # L alone: a and b of the input are never used


def to_array(rgb: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) numpy array (a view)."""
    return rgb[0].permute(1, 2, 0).numpy()


def gray_array(rgb: np.ndarray) -> np.ndarray:
    """The grey version of a photo (ab = 0, L kept): (H, W, 3) float in [0, 1] -> same."""
    return to_array(gray_rgb(lightness(rgb)))


def hint_planes(
    hints: list[Hint] | None, full_hw: tuple[int, int], work_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hints in pixel coordinates of the (H, W) photo painted onto the (h, w) working grid:
    hint_ab (1, 2, h, w) in Lab units, 0 where no hint, and hint_mask (1, 1, h, w) in {0, 1}.
    No hints: both zero. Raises HintError for a hint outside the photo."""
    if not hints:
        return torch.zeros(1, 2, *work_hw), torch.zeros(1, 1, *work_hw)
    return rasterize_hints(hints, full_hw, work_hw)


def check_hint_planes(hint_ab: torch.Tensor, hint_mask: torch.Tensor, batch: int, hw: tuple[int, int]) -> None:
    """ValueError unless hint_ab is (batch or 1, 2, h, w) and hint_mask (batch or 1, 1, h, w)."""
    for name, t, c in (("hint_ab", hint_ab, 2), ("hint_mask", hint_mask, 1)):
        if t.dim() != 4 or tuple(t.shape[1:]) != (c, *hw) or t.shape[0] not in (1, batch):
            raise ValueError(f"{name} must be ({batch} or 1, {c}, {hw[0]}, {hw[1]}) on the working grid, got {tuple(t.shape)}")


def to_working_grid(L: torch.Tensor, size: int, timer: Timer = no_timer) -> torch.Tensor:
    """Full-resolution L (B, 1, H, W) -> L on the working grid (longest side ``size``), as the model sees it."""
    with timer("resize"):
        return resize_l(L, working_shape(*L.shape[-2:], size))


def render(L: torch.Tensor, ab_work: torch.Tensor, timer: Timer = no_timer) -> torch.Tensor:
    """Working-grid ab (B, 2, h, w) upsampled to L's size and joined with L (B, 1, H, W): sRGB (B, 3, H, W),
    computed a band of rows at a time (the float output is the only full-size buffer)."""
    B, _, H, W = L.shape
    with timer("resize"):
        up = RowUpsampler(ab_work, (H, W))
    out = None
    for r0, r1 in bands(H, W):
        with timer("resize"):
            ab = up.rows(r0, r1)
        with timer("lab_to_rgb"):
            rgb = join_lab(L[:, :, r0:r1], ab)
            if out is None:
                out = torch.empty(B, 3, H, W, dtype=rgb.dtype, device=rgb.device)
            out[:, :, r0:r1] = rgb
    return out


# --------------------------------------------------------------------------- full resolution, in bands
#: Pixels in one band of rows: the working memory of every full-resolution step, whatever the photo's size.
BAND_PIXELS = 1 << 18

#: ``rows(r0, r1)`` -> L (1, 1, r1 - r0, W) float32 in [0, 100] of those rows of a photo.
LightnessRows = Callable[[int, int], torch.Tensor]


def bands(height: int, width: int, pixels: int | None = None) -> Iterator[tuple[int, int]]:
    """(r0, r1) row ranges covering ``height`` rows, about ``pixels`` (default :data:`BAND_PIXELS`) pixels
    each (at least one row)."""
    step = max(1, (pixels or BAND_PIXELS) // max(1, width))
    for r0 in range(0, height, step):
        yield r0, min(height, r0 + step)


class RowUpsampler:
    """A (B, C, h, w) map on the working grid, resized bilinearly to ``hw`` = (H, W) one band of rows at a
    time: :meth:`rows` equals those rows of ``F.interpolate(x, hw, mode="bilinear", align_corners=False)``
    (the same sample positions and weights: along the width once, here; along the height per band)."""

    def __init__(self, x: torch.Tensor, hw: tuple[int, int]):
        H, W = hw
        h, w = x.shape[-2:]
        self.wide = x if w == W else F.interpolate(x, size=(h, W), mode="bilinear", align_corners=False)
        self.same_height = h == H
        if not self.same_height:
            scale = torch.tensor(h / H, dtype=torch.float32)  # as PyTorch: input / output size, in float32
            src = ((torch.arange(H, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0.0)
            self.i0 = src.floor().long().clamp(max=h - 1)
            self.i1 = (self.i0 + 1).clamp(max=h - 1)
            self.lam = (src - self.i0).to(x.dtype).view(1, 1, H, 1).to(x.device)

    def rows(self, r0: int, r1: int) -> torch.Tensor:
        """Rows ``r0`` to ``r1`` (exclusive) of the resized map: (B, C, r1 - r0, W)."""
        if self.same_height:
            return self.wide[:, :, r0:r1]
        lam = self.lam[:, :, r0:r1]
        return self.wide[:, :, self.i0[r0:r1]] * (1 - lam) + self.wide[:, :, self.i1[r0:r1]] * lam


def lightness_rows(pixels) -> LightnessRows:
    """L of a photo's rows, from :class:`polychrome.io.PhotoPixels`: an 8-bit photo through lookup tables
    (a grey level's L; an 8-bit channel's linear value), equal to :func:`lightness` of its float RGB."""
    if pixels.kind == "L":
        table = gray8_to_l_table()
        return lambda r0, r1: torch.from_numpy(table[pixels.rows(r0, r1)])[None, None]
    if pixels.kind == "RGB":
        table = srgb8_to_linear_table()
        return lambda r0, r1: linear_to_l(torch.from_numpy(table[pixels.rows(r0, r1)]), dim=-1)[..., 0][None, None]

    def grey(r0: int, r1: int) -> torch.Tensor:  # more than 8 bits: float grey, R = G = B
        g = torch.from_numpy(pixels.rows(r0, r1))[None, None]
        return rgb_to_gray_l(g.expand(1, 3, *g.shape[-2:]))

    return grey


def working_lightness(rows: LightnessRows, hw: tuple[int, int], work_hw: tuple[int, int]) -> torch.Tensor:
    """L of an (H, W) = ``hw`` photo on the working grid, as :func:`resize_l` of its full-resolution L gives
    it (antialiased bilinear), computed a band at a time: each band along the width, then the (H, w) result
    along the height. (1, 1, h, w)."""
    H, W = hw
    h, w = work_hw
    mid = torch.empty(1, 1, H, w, dtype=torch.float32)
    for r0, r1 in bands(H, W):
        mid[:, :, r0:r1] = resize_l(rows(r0, r1), (r1 - r0, w))
    return resize_l(mid, (h, w))


def render8(
    rows: LightnessRows, ab_work: torch.Tensor, hw: tuple[int, int], timer: Timer = no_timer
) -> Iterator[tuple[int, torch.Tensor, np.ndarray]]:
    """The colour photo in 8 bits, a band at a time: for each band, (r0, its L (n, W), its sRGB (n, W, 3)
    uint8). ``ab_work`` (1, 2, h, w) on the working grid is upsampled to ``hw`` and joined with the L
    ``rows`` gives (:func:`~polychrome.color.lab.lab_to_srgb8`: :func:`render` quantised by
    :func:`polychrome.io.to_uint8`, within one level)."""
    H, W = hw
    with timer("resize"):
        up = RowUpsampler(ab_work[:1].float(), hw)
    for r0, r1 in bands(H, W):
        with timer("rgb_to_l"):
            L = rows(r0, r1)[0, 0]
        with timer("resize"):
            ab = up.rows(r0, r1)[0]
        with timer("lab_to_rgb"):
            rgb = lab_to_srgb8(L, ab[0], ab[1]).view(r1 - r0, W, 3).numpy()
        yield r0, L, rgb


def render_deep(
    rows: LightnessRows, ab_work: torch.Tensor, hw: tuple[int, int], timer: Timer = no_timer
) -> Iterator[tuple[int, torch.Tensor, np.ndarray]]:
    """:func:`render8` without the 8-bit step, for a photo of more than 8 bits: for each band, (r0, its L
    (n, W), its sRGB (n, W, 3) float32 in [0, 1]), the exact float join (:func:`join_lab`) of the L ``rows``
    gives with the upsampled ab, to be quantised to 16 bits (:func:`polychrome.io.to_uint16`)."""
    H, W = hw
    with timer("resize"):
        up = RowUpsampler(ab_work[:1].float(), hw)
    for r0, r1 in bands(H, W):
        with timer("rgb_to_l"):
            L = rows(r0, r1)
        with timer("resize"):
            ab = up.rows(r0, r1)
        with timer("lab_to_rgb"):
            rgb = to_array(join_lab(L, ab))
        yield r0, L[0, 0], rgb


def gray_deep(L: torch.Tensor) -> np.ndarray:
    """The grey photo of L (ab = 0) in float: (n, W) L -> (n, W, 3) float32 in [0, 1] (:func:`gray_rgb`)."""
    return to_array(gray_rgb(L[None, None]))


def gray8(L: torch.Tensor) -> np.ndarray:
    """The grey photo of L (ab = 0) in 8 bits: (n, W) L -> (n, W, 3) uint8 (as :func:`gray_rgb`, quantised)."""
    zero = torch.zeros_like(L)
    return lab_to_srgb8(L, zero, zero).view(*L.shape, 3).numpy()


@dataclass(frozen=True)
class Prediction:
    """What one model call gives, on the working grid."""

    ab: torch.Tensor  # (B, 2, h, w) float32, CIE units
    confidence: torch.Tensor | None = None  # (B, 1, h, w) float32 in [0, 1], high where the colour is likely right


@torch.no_grad()
def predict(
    model: nn.Module,
    L_work: torch.Tensor,
    *,
    precision: str = "fp32",
    takes_hints: bool = False,
    hints: list[Hint] | None = None,
    full_hw: tuple[int, int] | None = None,
    hint_ab: torch.Tensor | None = None,
    hint_mask: torch.Tensor | None = None,
    decoding: dict | None = None,
    confidence: bool = False,
    flip_average: bool = False,
    guided_filter: GuidedFilter | None = None,
    timer: Timer = no_timer,
) -> Prediction:
    """Run ``model`` on L already at its working size: once, or with ``flip_average`` twice.

    Args:
        model: forward(L_net (B,1,h,w), [hint_ab_net (B,2,h,w), hint_mask (B,1,h,w)], **decoding) -> ab_net;
            with ``confidence`` forward(..., return_all=True) -> an object with ``ab_net`` and ``confidence``
            logits on a grid of stride 2 aligned as cicgan's half-resolution heads are.
        L_work: (B, 1, h, w) float L in [0, 100].
        precision: ``"fp32"`` or ``"bf16"`` for the model call (:mod:`polychrome.pipeline.precision`).
        takes_hints: the model has hint inputs; with none given it sees zeros (automatic colourisation).
        hints: hints in pixel coordinates of the full-resolution photo of size ``full_hw`` (default: the
            working grid's own), painted onto the working grid (:func:`hint_planes`).
        hint_ab, hint_mask: (B or 1, 2|1, h, w) on the working grid, Lab units / {0, 1}; hint models only.
        decoding: keyword arguments for a classification model's forward (``temperature``, ``decode_mode``).
        confidence: also return the model's confidence map.
        flip_average: also colourise the mirror image (L and hint planes flipped left-right) and return the mean
            of the two predictions (ab and confidence), the second mirrored back: test-time augmentation
            that cancels what the model gets wrong differently on a photo and its mirror image, at twice the
            model time (a model card's ``flip_average``).
        guided_filter: pass the predicted ab through this guided filter, L_work the guide (:func:`guided_ab`;
            a model card's ``guided_filter``), after the flip average.
    Raises:
        HintError: a hint (any mask value) for a model without hint inputs.
        ValueError: hint planes of the wrong shape.
    """
    B, _, h, w = L_work.shape
    device = model_device(model)
    extra: tuple[torch.Tensor, ...] = ()
    if hints is not None and (hint_ab is not None or hint_mask is not None):
        raise ValueError("give hints (full-resolution) or hint_ab/hint_mask (working grid), not both")
    if hints:
        if not takes_hints:
            raise HintError("this model cannot use colour hints")
        hint_ab, hint_mask = hint_planes(hints, full_hw or (h, w), (h, w))
    if hint_ab is not None or hint_mask is not None:
        if hint_ab is None or hint_mask is None:
            raise ValueError("give hint_ab and hint_mask together, or neither")
        check_hint_planes(hint_ab, hint_mask, B, (h, w))
        if not takes_hints and bool((hint_mask != 0).any()):
            raise HintError("this model cannot use colour hints")
    if takes_hints:
        if hint_ab is None:
            hint_ab, hint_mask = hint_planes(None, (h, w), (h, w))
        hint_ab = hint_ab.to(device, torch.float32).expand(B, 2, h, w)
        hint_mask = hint_mask.to(device, torch.float32).expand(B, 1, h, w)
        extra = (ab_to_net(hint_ab) * hint_mask, hint_mask.contiguous())  # ab 0 wherever there is no hint
    x = l_to_net(L_work.to(device))

    def one_call(x: torch.Tensor, extra: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(ab_net (B, 2, h, w), confidence (B, 1, h, w) in [0, 1] or None) of one model call."""
        if not confidence:
            return call_model(model, x, precision, extra, **(decoding or {})).float().contiguous(), None
        out = call_model(model, x, precision, extra, return_all=True, **(decoding or {}))
        conf = torch.sigmoid(out.confidence.float()).contiguous().to(L_work.device)  # (B, 1, h', w')
        return out.ab_net.float().contiguous(), _grid_up(conf, h, w)

    with timer("model"):
        ab_net, conf = one_call(x, extra)
        if flip_average:  # the mirror image's prediction, mirrored back: both on the same working grid
            ab_m, conf_m = one_call(x.flip(-1), tuple(t.flip(-1) for t in extra))
            ab_net = (ab_net + ab_m.flip(-1)) / 2
            conf = None if conf is None else (conf + conf_m.flip(-1)) / 2
        ab = net_to_ab(ab_net).to(L_work.device)
        if guided_filter is not None:
            ab = guided_ab(L_work, ab, guided_filter)
    return Prediction(ab, conf)


def guided_ab(L_work: torch.Tensor, ab: torch.Tensor, gf: GuidedFilter) -> torch.Tensor:
    """ab (B, 2, h, w) on the working grid through the guided filter ``gf`` with L_work (B, 1, h, w) as the
    guide (He et al. 2010): in each (2r + 1)^2 window ab is fitted as a linear function of L, ab ~ A L + b, and
    each pixel takes the mean fit of the windows over it, so the blotches and speckle of a per-cell decoding
    are smoothed within regions of even lightness while colour edges stay where the lightness edges are. Same
    shape, float32. kornia's ``guided_blur`` computes the same (tested) with six single-channel box filters;
    here the window means are two batched ``box_blur`` calls, a quarter of the time at 256 x 256."""
    r = gf.radius
    h, w = ab.shape[-2:]
    if min(h, w) <= r:  # a grid too small to reflect the window on: nothing to smooth
        return ab
    k = 2 * r + 1
    L, ab = L_work.float(), ab.float()
    means = box_blur(torch.cat([L, L * L, ab, L * ab], 1), k, border_type="reflect")
    mL, mLL, mab, mLab = means[:, :1], means[:, 1:2], means[:, 2:4], means[:, 4:6]
    A = (mLab - mL * mab) / (mLL - mL * mL + gf.eps)
    coef = box_blur(torch.cat([A, mab - A * mL], 1), k, border_type="reflect")
    return coef[:, :2] * L + coef[:, 2:]


def _grid_up(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A (B, C, h', w') map on a grid of stride s, ceil-aligned to (h, w) -> (B, C, h, w): bilinear at the
    exact integer ratio, then cropped, as cicgan upsamples its half-resolution ab, so the map lines up with
    the colours."""
    h2, w2 = m.shape[-2:]
    sy, sx = max(1, round(h / h2)), max(1, round(w / w2))
    if (h2 * sy, w2 * sx) == (h, w):
        return F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    up = F.interpolate(m, size=(h2 * sy, w2 * sx), mode="bilinear", align_corners=False)
    if up.shape[-2] < h or up.shape[-1] < w:  # not a padded grid: plain resize
        return F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    return up[..., :h, :w]
