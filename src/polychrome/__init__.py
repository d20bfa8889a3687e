"""polychrome: colourise black-and-white photographs.

    >>> import polychrome
    >>> c = polychrome.Colorizer.from_pretrained("default")  # bundled, trained weights
    >>> colour = c(pil_image).image                          # PIL in, PIL out; numpy in, numpy out
    >>> colour = polychrome.colorize(pil_image)              # the same through a cached Colorizer
    >>> net = polychrome.create_model("unet-32")             # an untrained architecture
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

from polychrome.colorizer import Colorizer, ColorizeResult
from polychrome.hub import load_model
from polychrome.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["ColorizeResult", "Colorizer", "colorize", "create_model", "list_models", "load_model", "__version__"]

_cache_lock = threading.Lock()


@lru_cache(maxsize=4)
def _cached(spec: str | os.PathLike) -> Colorizer:
    return Colorizer.from_pretrained(spec)


def _cached_colorizer(spec: str | os.PathLike) -> Colorizer:
    with _cache_lock:  # two first calls load the weights once
        return _cached(spec)


def colorize(img, model=None, size: int | None = None, hints=None, temperature: float | None = None):
    """Colourise a photo at its full resolution and return it in the type it came in.

    Args:
        img: a PIL image (any mode; EXIF orientation is not applied to an in-memory image), or a
            numpy array (H, W) or (H, W, 3|4): uint8 0-255, uint16 0-65535, or float in [0, 1].
        model: a Colorizer, a loaded model, a bundled name or a weight path. Default: ``"default"``, or
            the bundled hint model ``"hints"`` when ``hints`` are given. Names and paths are loaded once
            and cached.
        size: working size (longest side, px); default from the model's card.
        hints: colour hints for a hint model: a list of :class:`polychrome.color.hints.Hint`, the hint-file
            structure ``[{"x": 120, "y": 45, "color": "#aa3322"}, ...]``, or the path of a hint file;
            x, y in pixels of ``img`` (x right, y down). Only each colour's chroma is used; the photo's
            lightness is kept. A model that cannot use hints raises
            :class:`polychrome.color.hints.HintError`, as does a malformed hint or one outside the photo.
        temperature: annealed-mean temperature T > 0 for a classification model (cicgan): lower is more
            vivid, 1 is the plain mean. For this call only; a model without a temperature raises ValueError.
    Returns:
        PIL input: a PIL RGB (RGBA if it had alpha) image of the same size.
        Array input: an array of the same dtype, height and width; (H, W, 3|4) keeps its shape
        (alpha passed through), a grey (H, W) or (H, W, 1) array comes back as (H, W, 3).
    """
    from polychrome.colorizer import as_colorizer

    hints = _hint_list(hints)
    if model is None:
        model = "default" if hints is None else "hints"
    if isinstance(model, (str, os.PathLike)):
        colorizer = _cached_colorizer(model)  # a Path stays a path, never a bundled name
    else:
        colorizer = as_colorizer(model)
    return colorizer(img, hints=hints, temperature=temperature, size=size).image


def _hint_list(hints):
    """``colorize``'s ``hints`` argument as a list of Hint (None stays None)."""
    from polychrome.color.hints import Hint, load_hint_file, parse_hints

    if hints is None:
        return None
    if isinstance(hints, (str, os.PathLike)):
        return load_hint_file(hints)
    hints = list(hints)
    return hints if all(isinstance(h, Hint) for h in hints) else parse_hints(hints)
