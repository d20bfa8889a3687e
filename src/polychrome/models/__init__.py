"""Model families. Importing this package registers every architecture."""

from polychrome.models import unet  # noqa: F401  (registers the UNet variants)
from polychrome.models._registry import create_model, list_models, register_model
from polychrome.models.unet import UNetColorizer

__all__ = ["UNetColorizer", "create_model", "list_models", "register_model"]
