"""polychrome: colourise black-and-white photographs.

    >>> import polychrome
    >>> colour = polychrome.colorize(pil_image)          # PIL in, PIL out; numpy in, numpy out
    >>> model = polychrome.load_model("default")          # bundled, trained weights
    >>> net = polychrome.create_model("unet-32")          # an untrained architecture
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from polychrome.hub import load_model
from polychrome.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["colorize", "create_model", "list_models", "load_model", "__version__"]


@lru_cache(maxsize=4)
def _cached_model(spec: str):
    return load_model(spec)


def colorize(img, model=None, size: int | None = None, hints=None, temperature: float | None = None):
    """Colourise a photo at its full resolution and return it in the type it came in.

    Args:
        img: a PIL image (any mode; EXIF orientation is not applied to an in-memory image), or a
            numpy array (H, W) or (H, W, 3|4): uint8 0-255, uint16 0-65535, or float in [0, 1].
        model: a bundled name, weight path, or an already loaded model. Default: ``"default"``, or
            the bundled hint model ``"hints"`` when ``hints`` are given.
        size: working size (longest side, px); default from the model's metadata.
        hints: colour hints for a hint model: a list of :class:`polychrome.color.hints.Hint`, the hint-file
            structure ``[{"x": 120, "y": 45, "color": "#aa3322"}, ...]``, or the path of a hint file;
            x, y in pixels of ``img`` (x right, y down). Only each colour's chroma is used; the photo's
            lightness is kept. A model that cannot use hints raises
            :class:`polychrome.color.hints.HintError`, as does a malformed hint or one outside the photo.
        temperature: annealed-mean temperature T > 0 for a classification model (cicgan): lower is more
            vivid, 1 is the plain mean. For this call only (the model keeps its own default); a model
            without a temperature raises ValueError.
    Returns:
        PIL input: a PIL RGB (RGBA if it had alpha) image of the same size.
        Array input: an array of the same dtype, height and width; (H, W, 3|4) keeps its shape
        (alpha passed through), a grey (H, W) or (H, W, 1) array comes back as (H, W, 3).
    """
    from polychrome.pipeline import temperature as decoding_temperature

    hints = _hint_list(hints)
    if model is None:
        model = "default" if hints is None else "hints"
    net = _cached_model(str(model)) if not hasattr(model, "forward") else model
    with decoding_temperature(net, temperature):  # restored after: the cached model is shared
        return _colorize(img, net, size, hints)


def _colorize(img, net, size, hints):
    """:func:`colorize` once the model is loaded (and its temperature set)."""
    from PIL import Image

    from polychrome.io import pil_to_rgb_array, rgb_array_to_pil
    from polychrome.pipeline import colorize_array

    if isinstance(img, Image.Image):
        rgb, alpha = pil_to_rgb_array(img)
        return rgb_array_to_pil(colorize_array(net, rgb, size, hints=hints), alpha)
    if not isinstance(img, np.ndarray):
        raise TypeError(f"colorize expects a PIL image or a numpy array, got {type(img).__name__}")
    arr = img
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"colorize expects an array of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.dtype == np.uint8:
        f = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        f = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        f = arr.astype(np.float32)
    else:
        raise TypeError(f"colorize expects a uint8, uint16 or float array, got {arr.dtype}")
    g = f if f.ndim == 3 else f[..., None]
    rgb = np.repeat(g, 3, axis=2) if g.shape[2] == 1 else g[..., :3]
    out = colorize_array(net, np.clip(rgb, 0, 1), size, hints=hints)
    if arr.ndim == 3 and arr.shape[2] == 4:
        out = np.concatenate([out, f[..., 3:4]], axis=2)
    elif arr.ndim == 2 or arr.shape[2] == 1:
        # A grey array has no room for colour; return RGB of the same height and width.
        pass
    if arr.dtype == np.uint8:
        return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.dtype == np.uint16:
        return (np.clip(out, 0, 1) * 65535 + 0.5).astype(np.uint16)
    return out.astype(arr.dtype)


def _hint_list(hints):
    """``colorize``'s ``hints`` argument as a list of Hint (None stays None)."""
    import os

    from polychrome.color.hints import Hint, load_hint_file, parse_hints

    if hints is None:
        return None
    if isinstance(hints, (str, os.PathLike)):
        return load_hint_file(hints)
    hints = list(hints)
    return hints if all(isinstance(h, Hint) for h in hints) else parse_hints(hints)
