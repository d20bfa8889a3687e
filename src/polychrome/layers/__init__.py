"""Reusable network blocks."""

from polychrome.layers.conv import DoubleConv

__all__ = ["DoubleConv"]
