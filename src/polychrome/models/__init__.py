"""Model families. Importing this package registers every architecture."""

from polychrome.models import cicgan, effnet_cic, effnet_unet, icolorit, unet  # noqa: F401  (registers their variants)
from polychrome.models._registry import create_model, list_models, register_model
from polychrome.models.cicgan import Cicgan
from polychrome.models.effnet_unet import EffNetUNet
from polychrome.models.icolorit import IColoriT
from polychrome.models.unet import UNetColorizer

__all__ = ["Cicgan", "EffNetUNet", "IColoriT", "UNetColorizer", "create_model", "list_models", "register_model"]
