"""polychrome: colourise black-and-white photographs.

    >>> import polychrome
    >>> c = polychrome.Colorizer.from_pretrained("default")  # bundled, trained weights
    >>> colour = c(pil_image).image                          # PIL in, PIL out; numpy in, numpy out
    >>> colour = polychrome.colorize(pil_image)              # the same through a cached Colorizer
    >>> net = polychrome.create_model("unet-32")             # an untrained architecture

The names below are imported on first use, so ``import polychrome`` (and the command line's ``--help``)
does not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["ColorizeResult", "Colorizer", "colorize", "create_model", "list_models", "load_model", "__version__"]

#: Public name -> the module that defines it.
_LAZY = {
    "ColorizeResult": "polychrome.colorizer",
    "Colorizer": "polychrome.colorizer",
    "colorize": "polychrome.colorizer",
    "load_model": "polychrome.hub",
    "create_model": "polychrome.models",
    "list_models": "polychrome.models",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from polychrome.colorizer import Colorizer, ColorizeResult, colorize
    from polychrome.hub import load_model
    from polychrome.models import create_model, list_models


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'polychrome' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
