"""Reusable network blocks."""

from polychrome.layers.conv import DoubleConv
from polychrome.layers.pad import pad_to_multiple

__all__ = ["DoubleConv", "pad_to_multiple"]

from polychrome.layers.attention import RelPosSelfAttention, relative_position_index, resample_bias_table
from polychrome.layers.lsl import LocalStabilizingLayer
from polychrome.layers.patch_embed import PatchEmbed
from polychrome.layers.transformer import Mlp, TransformerBlock

__all__ += [
    "LocalStabilizingLayer",
    "Mlp",
    "PatchEmbed",
    "RelPosSelfAttention",
    "TransformerBlock",
    "relative_position_index",
    "resample_bias_table",
]
