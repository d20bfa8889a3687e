"""polychrome: colourise black-and-white photographs.

    >>> import polychrome
    >>> c = polychrome.Colorizer.from_pretrained("default")  # bundled, trained weights
    >>> colour = c(pil_image).image                          # PIL in, PIL out; numpy in, numpy out
    >>> colour = polychrome.colorize(pil_image)              # the same through a cached Colorizer
    >>> net = polychrome.create_model("unet-32")             # an untrained architecture
"""

from polychrome.colorizer import Colorizer, ColorizeResult, colorize
from polychrome.hub import load_model
from polychrome.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["ColorizeResult", "Colorizer", "colorize", "create_model", "list_models", "load_model", "__version__"]
