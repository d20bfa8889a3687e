"""Reusable network blocks."""

from polychrome.layers.conv import DoubleConv
from polychrome.layers.pad import pad_to_multiple

__all__ = ["DoubleConv", "pad_to_multiple"]
