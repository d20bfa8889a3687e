"""The one colourisation path, shared by the CLI, the Python API, the web page and evaluation.

    photo -> RGB [0,1] -> L (full resolution)
    L resized so its longest side is the model's working size -> model -> ab at working size
    ab upsampled bilinearly to full size, joined with the ORIGINAL full-resolution L
    -> Lab -> sRGB, clamped to the gamut -> a colour photo of the input's own size.

A colour input is turned grey first (only its L is used): the tool colourises, it does not keep
old colour.

``precision`` picks how the model runs: ``"fp32"`` (the default, plain eager float32) or ``"bf16"``
(``torch.autocast`` to bfloat16 with the model in ``channels_last``; about 3-4x faster for conv nets on
CPUs with AVX-512 BF16/AMX). Only the model call changes: the full-resolution Lab conversion,
the ab upsampling and the join stay float32, and ab always comes back float32.

Colour hints (:mod:`polychrome.color.hints`) ride along the same path: ``hints`` are given in pixel
coordinates of the full-resolution photo, painted onto the working grid by
:func:`~polychrome.color.hints.rasterize_hints` and passed to a hint model (``uses_hints = True``) as
``model(L_net, ab_to_net(hint_ab), hint_mask)``. A hint model given no hints sees zeros (automatic
colourisation); a model without hint inputs given hints raises :class:`~polychrome.color.hints.HintError`
rather than ignoring them.

Classification models (cicgan) add two switches. ``temperature`` (:func:`set_temperature`,
:func:`temperature`) picks their annealed-mean decoding: T -> 0 is the most likely bin (vivid, patchy),
T = 1 the mean (smooth, greyish), 0.38 the paper's compromise. A model that ``gives_confidence`` also
predicts, per pixel, how likely its colour is right; :func:`predict_ab_confidence` returns that map
upsampled bilinearly to full resolution from the SAME model call as the ab, and
``colorize_file(..., confidence_path=...)`` writes it as a greyscale image (white = confident).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from polychrome.color.hints import Hint, HintError, rasterize_hints
from polychrome.color.lab import ab_to_net, l_to_net, lab_to_rgb, net_to_ab, rgb_to_gray_l
from polychrome.io import open_image, pil_to_rgb_array, rgb_array_to_pil, save_image_atomic


def working_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(h, w) scaled so the longest side is ``size`` (never upscaled), aspect ratio kept."""
    scale = min(1.0, size / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


#: Values of the ``precision`` argument of :func:`predict_ab`, :func:`colorize_array` and :func:`colorize_file`.
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; else a ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def run_model(model: nn.Module, x: torch.Tensor, precision: str = "fp32", *extra: torch.Tensor) -> torch.Tensor:
    """``model(x, *extra)`` in the given precision, returned as contiguous float32.

    ``extra`` are further NCHW inputs of the same height and width (a hint model's ``hint_ab_net`` and
    ``hint_mask``); they get the same treatment as ``x``.

    ``"bf16"`` autocasts to bfloat16 on the model's device type, with input and weights in
    ``channels_last``: oneDNN's bf16 convolutions run in NHWC, and NCHW tensors would be reordered at
    every layer (measured on the 2-core build machine, unet-32 at 256 px, 1 thread: fp32 0.31 s, bf16 with
    an NHWC input only 0.17 s, bf16 with NHWC weights too 0.08 s). So the first bf16 call converts the
    model's weights to ``channels_last`` IN PLACE (once; later calls find them converted). That leaves its
    results unchanged but for float rounding: later fp32 calls on the same model differ by about 1e-7.
    ``"fp32"`` never touches the model.
    """
    return _call_model(model, x, precision, extra).float().contiguous()


def _call_model(model: nn.Module, x: torch.Tensor, precision: str, extra: tuple = (), **kwargs):
    """``model(x, *extra, **kwargs)`` in ``precision`` (see :func:`run_model`); the output as the model returns it."""
    if check_precision(precision) == "fp32":
        return model(x, *extra, **kwargs)  # exactly the pipeline before precision existed
    to_channels_last(model)
    x, *extra = (t.contiguous(memory_format=torch.channels_last) for t in (x, *extra))
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        return model(x, *extra, **kwargs)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert ``model``'s 4-D weights to ``channels_last`` in place, unless they already are; returns it."""
    if any(p.dim() == 4 and not p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters()):
        model.to(memory_format=torch.channels_last)
    return model


def uses_hints(model: nn.Module) -> bool:
    """Whether ``model`` takes colour hints: ``forward(L_net, hint_ab_net, hint_mask)`` (``uses_hints = True``)."""
    return bool(getattr(model, "uses_hints", False))


def model_label(model: nn.Module) -> str:
    """How errors name a model: its architecture from ``meta["model"]``, else its registry or class name."""
    meta = getattr(model, "meta", None) or {}
    return str(meta.get("model") or getattr(model, "registry_name", None) or type(model).__name__)


def hint_model_error(name: str) -> HintError:
    """The one-line error for colour hints given to a model that cannot use them."""
    return HintError(
        f"model {name} cannot use colour hints; use a hint model such as 'hints' "
        "(polychrome colorize --hints FILE uses it by default)"
    )


def check_hints(model: nn.Module, hints: list[Hint] | None) -> None:
    """Raise :func:`hint_model_error` if ``hints`` is non-empty and ``model`` cannot use hints."""
    if hints and not uses_hints(model):
        raise hint_model_error(model_label(model))


def gives_confidence(model: nn.Module) -> bool:
    """Whether ``model`` predicts a confidence map: ``forward(L_net, return_all=True).confidence`` (cicgan)."""
    return bool(getattr(model, "gives_confidence", False))


def set_temperature(model: nn.Module, value: float) -> nn.Module:
    """Set a classification model's annealed-mean temperature T (> 0) and switch it to annealed decoding.

    Raises ValueError (one line) for a model without a ``temperature`` (one that regresses ab directly)
    or a T that is not a finite number > 0."""
    if not hasattr(model, "temperature"):
        raise ValueError(
            f"model {model_label(model)} has no decoding temperature (it regresses ab); --temperature applies "
            "to classification models such as cicgan"
        )
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {value!r}")
    model.temperature = float(value)
    if hasattr(model, "decode_mode"):
        model.decode_mode = "annealed"  # a temperature means the annealed mean (T=1 is the mean anyway)
    return model


@contextlib.contextmanager
def temperature(model: nn.Module, value: float | None) -> Iterator[nn.Module]:
    """``with temperature(model, 0.1): ...`` decodes at T = 0.1 inside the block and restores the model's own
    setting after (a cached or shared model keeps its default). ``None`` changes nothing."""
    if value is None:
        yield model
        return
    before = (getattr(model, "temperature", None), getattr(model, "decode_mode", None))
    set_temperature(model, value)
    try:
        yield model
    finally:
        model.temperature = before[0]
        if before[1] is not None:
            model.decode_mode = before[1]


def confidence_path(dst: str | os.PathLike) -> Path:
    """Where ``colorize`` writes a photo's confidence map: ``<stem>.confidence.png`` beside ``dst``."""
    dst = Path(dst)
    return dst.with_name(f"{dst.stem}.confidence.png")


def confidence_error(name: str) -> ValueError:
    """The one-line error for a confidence map asked of a model that predicts none."""
    return ValueError(f"model {name} predicts no confidence map; --confidence needs a classification model such as cicgan")


@torch.no_grad()
def predict_ab(
    model: nn.Module,
    L: torch.Tensor,
    size: int,
    precision: str = "fp32",
    hints: list[Hint] | None = None,
    hint_ab: torch.Tensor | None = None,
    hint_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """ab for a batch of L at the model's working size, upsampled back to L's size.

    Args:
        model: a colouriser: forward(L_net (B,1,h,w)) -> ab_net (B,2,h,w); a hint model
            (``uses_hints = True``) takes forward(L_net, hint_ab_net (B,2,h,w), hint_mask (B,1,h,w)).
        L: (B, 1, H, W) float, L in [0, 100], full resolution.
        size: working size, longest side in px; the working grid is ``working_shape(H, W, size)`` = (h, w).
        precision: ``"fp32"`` or ``"bf16"`` for the model call only (see :func:`run_model`).
        hints: colour hints in pixel coordinates of the full-resolution (H, W) photo, the same for every
            image of the batch; rasterised onto the working grid (:func:`~polychrome.color.hints.rasterize_hints`).
        hint_ab, hint_mask: hints given directly ON THE WORKING GRID instead (what the evaluation samples):
            hint_ab (B or 1, 2, h, w) float in Lab units, 0 where no hint; hint_mask (B or 1, 1, h, w) float
            in {0, 1}. Both or neither; not together with ``hints``.
    A hint model with no hints sees zeros (automatic colourisation).
    Returns:
        (B, 2, H, W) float32 ab in CIE units.
    Raises:
        HintError: hints (a non-empty list, or a mask with any hint) for a model that cannot use them,
            or a hint outside the photo.
        ValueError: hint tensors of the wrong shape, or given together with ``hints``.
    """
    return _predict(model, L, size, precision, hints, hint_ab, hint_mask, confidence=False)[0]


@torch.no_grad()
def predict_ab_confidence(
    model: nn.Module, L: torch.Tensor, size: int, precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """ab and the model's confidence map, both at L's full resolution, from ONE model call.

    Args:
        model: a model that ``gives_confidence``: forward(L_net, return_all=True) returns an object with
            ``ab_net`` (B, 2, h, w) and ``confidence`` (B, 1, h', w') logits on a coarser grid aligned as
            cicgan's half-resolution heads are (h' = ceil(h / 2)).
        L, size, precision: as in :func:`predict_ab`.
    Returns:
        (ab (B, 2, H, W) float32 CIE units, confidence (B, 1, H, W) float32 in [0, 1]: the sigmoid of the
        logits, upsampled bilinearly; high where the model expects its colour to be right).
    Raises:
        ValueError: the model predicts no confidence (:func:`confidence_error`).
    """
    if not gives_confidence(model):
        raise confidence_error(model_label(model))
    return _predict(model, L, size, precision, None, None, None, confidence=True)


def _predict(model, L, size, precision, hints, hint_ab, hint_mask, confidence: bool):
    """:func:`predict_ab`'s body; with ``confidence`` also the full-resolution map (else None)."""
    B, _, H, W = L.shape
    h, w = working_shape(H, W, size)
    if (hint_ab is None) != (hint_mask is None):
        raise ValueError("give hint_ab and hint_mask together, or neither")
    if hint_ab is not None:
        if hints is not None:
            raise ValueError("give hints (full-resolution) or hint_ab/hint_mask (working grid), not both")
        if hint_ab.dim() != 4 or tuple(hint_ab.shape[1:]) != (2, h, w) or hint_ab.shape[0] not in (1, B):
            raise ValueError(f"hint_ab must be ({B} or 1, 2, {h}, {w}) on the working grid, got {tuple(hint_ab.shape)}")
        if hint_mask.dim() != 4 or tuple(hint_mask.shape[1:]) != (1, h, w) or hint_mask.shape[0] not in (1, B):
            raise ValueError(
                f"hint_mask must be ({B} or 1, 1, {h}, {w}) on the working grid, got {tuple(hint_mask.shape)}"
            )
        if not uses_hints(model) and bool((hint_mask != 0).any()):
            raise hint_model_error(model_label(model))
    else:
        check_hints(model, hints)
        if hints:
            hint_ab, hint_mask = rasterize_hints(hints, (H, W), (h, w))
    # Antialiased downscaling: plain bilinear would alias fine texture into the model's input.
    small = F.interpolate(L, size=(h, w), mode="bilinear", antialias=True, align_corners=False) if (h, w) != (H, W) else L
    device = next(model.parameters()).device
    extra: tuple[torch.Tensor, ...] = ()
    if uses_hints(model):
        if hint_ab is None:
            hint_ab, hint_mask = torch.zeros(1, 2, h, w), torch.zeros(1, 1, h, w)
        hint_ab = hint_ab.to(device, torch.float32).expand(B, 2, h, w)
        hint_mask = hint_mask.to(device, torch.float32).expand(B, 1, h, w)
        extra = (ab_to_net(hint_ab) * hint_mask, hint_mask.contiguous())  # ab 0 wherever there is no hint
    x = l_to_net(small.to(device))
    conf = None
    if confidence:
        out = _call_model(model, x, precision, extra, return_all=True)
        ab_net = out.ab_net.float().contiguous()
        conf = torch.sigmoid(out.confidence.float()).contiguous().to(L.device)  # (B, 1, h', w')
        # The heads' grid is the working grid halved with its last row/column padded; upsample at that exact
        # ratio and crop, as the model does for ab, so the map lines up with the colours, then to full size.
        conf = _grid_up(conf, h, w)
        if (h, w) != (H, W):
            conf = F.interpolate(conf, size=(H, W), mode="bilinear", align_corners=False)
        conf = conf.clamp(0, 1)
    else:
        ab_net = run_model(model, x, precision, *extra)
    ab = net_to_ab(ab_net).to(L.device)
    if (h, w) != (H, W):
        ab = F.interpolate(ab, size=(H, W), mode="bilinear", align_corners=False)
    return ab, conf


def _grid_up(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A (B, C, h', w') map on a grid of stride s = ceil-aligned to (h, w) -> (B, C, h, w): bilinear at the
    exact integer ratio, then cropped (how cicgan upsamples its half-resolution ab)."""
    h2, w2 = m.shape[-2:]
    sy, sx = max(1, round(h / h2)), max(1, round(w / w2))
    if (h2 * sy, w2 * sx) == (h, w):
        return F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    up = F.interpolate(m, size=(h2 * sy, w2 * sx), mode="bilinear", align_corners=False)
    if up.shape[-2] < h or up.shape[-1] < w:  # not a padded grid: plain resize
        return F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    return up[..., :h, :w]


def join_lab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Full-resolution L (B,1,H,W) + ab (B,2,H,W) -> sRGB (B,3,H,W) in [0,1], out-of-gamut colours clamped."""
    return lab_to_rgb(torch.cat([L, ab], dim=1), clip=True)


def lightness(rgb: np.ndarray) -> torch.Tensor:
    """The L channel of a photo: (H, W, 3) float RGB in [0, 1] -> (1, 1, H, W) float L in [0, 100]."""
    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    return rgb_to_gray_l(x)  # L alone: a and b of the input are never used


def _to_array(rgb: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) numpy array."""
    return rgb[0].permute(1, 2, 0).numpy()


def colorize_lightness(
    model: nn.Module,
    L: torch.Tensor,
    size: int | None = None,
    precision: str = "fp32",
    hints: list[Hint] | None = None,
    hint_ab: torch.Tensor | None = None,
    hint_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Full-resolution L (1, 1, H, W) in [0, 100] -> colour sRGB (1, 3, H, W) in [0, 1] (see :func:`colorize_array`).

    ``hints`` (full-resolution pixel coordinates) or ``hint_ab`` / ``hint_mask`` (on the working grid) as in
    :func:`predict_ab`."""
    check_precision(precision)
    size = size or getattr(model, "meta", {}).get("infer_size", 256)
    return join_lab(L, predict_ab(model, L, size, precision, hints=hints, hint_ab=hint_ab, hint_mask=hint_mask))


def colorize_array(
    model: nn.Module,
    rgb: np.ndarray,
    size: int | None = None,
    precision: str = "fp32",
    hints: list[Hint] | None = None,
) -> np.ndarray:
    """Colourise one photo held as an array.

    Args:
        rgb: (H, W, 3) float in [0, 1] (grey or colour; only its lightness is used).
        size: working size (longest side, px); defaults to the model's ``meta["infer_size"]``.
        precision: ``"fp32"`` (default) or ``"bf16"`` for the model call (see :func:`run_model`).
        hints: colour hints (:class:`~polychrome.color.hints.Hint`, x/y in pixels of this (H, W) photo);
            needs a hint model (``uses_hints = True``), else :class:`~polychrome.color.hints.HintError`.
    Returns:
        (H, W, 3) float32 sRGB in [0, 1], the same H and W.
    """
    check_hints(model, hints)  # before the Lab conversion: fail fast
    return _to_array(colorize_lightness(model, lightness(rgb), size, precision, hints=hints))


def gray_lightness(L: torch.Tensor) -> torch.Tensor:
    """The grey photo of an L (ab = 0): (1, 1, H, W) in [0, 100] -> sRGB (1, 3, H, W) in [0, 1]."""
    return join_lab(L, torch.zeros_like(L).repeat(1, 2, 1, 1))


def gray_array(rgb: np.ndarray) -> np.ndarray:
    """The grey version of a photo (ab = 0, L kept): (H, W, 3) float in [0, 1] -> same."""
    return _to_array(gray_lightness(lightness(rgb)))


def colorize_file(
    model: nn.Module,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    size: int | None = None,
    compare: bool = False,
    precision: str = "fp32",
    hints: list[Hint] | None = None,
    confidence_path: str | os.PathLike | None = None,
) -> Path:
    """Read ``src``, colourise it at full resolution, write ``dst`` atomically (format from its extension).

    ``confidence_path`` (a model that :func:`gives_confidence` only) also writes the model's confidence map,
    from the same model call, as an 8-bit greyscale image of the photo's own size (white = the model expects
    its colour to be right; :func:`confidence_path` gives the usual name). It is written before ``dst``, so a
    photo that exists has its map.

    EXIF orientation is applied on reading, so the written pixels stand upright; an alpha channel is
    kept when the output format has one. ``compare`` writes grey | colour side by side. ``precision``
    is ``"fp32"`` (default) or ``"bf16"`` for the model call (see :func:`run_model`). ``hints`` are in
    pixel coordinates of the upright photo (as a viewer shows it), for a hint model only.
    Raises :class:`polychrome.io.ImageError` for an unreadable input or unwritable output, and
    :class:`~polychrome.color.hints.HintError` for hints the model cannot use or a hint outside the photo.
    """
    check_precision(precision)
    check_hints(model, hints)
    if confidence_path is not None:
        if not gives_confidence(model):
            raise confidence_error(model_label(model))
        if hints:
            raise ValueError("a confidence map is for automatic colourisation; give hints or a confidence path, not both")
    rgb, alpha = pil_to_rgb_array(open_image(src))
    L = lightness(rgb)  # once: the grey panel of --compare shares it
    if confidence_path is None:
        out = _to_array(colorize_lightness(model, L, size, precision, hints=hints))
    else:
        size = size or getattr(model, "meta", {}).get("infer_size", 256)
        ab, conf = predict_ab_confidence(model, L, size, precision)
        out = _to_array(join_lab(L, ab))
        grey = (conf[0, 0].numpy() * 255 + 0.5).astype(np.uint8)  # (H, W)
        save_image_atomic(Image.fromarray(grey, "L"), confidence_path)
    if compare:
        out = np.concatenate([_to_array(gray_lightness(L)), out], axis=1)
        alpha = None if alpha is None else np.concatenate([alpha, alpha], axis=1)
    save_image_atomic(rgb_array_to_pil(out, alpha), dst)
    return Path(dst)
