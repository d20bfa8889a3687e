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

from polychrome.layers.attention_gate import AttentionGate
from polychrome.layers.film import FiLM
from polychrome.layers.glu import GLUConv, GLUResBlock
from polychrome.layers.norm import group_norm
from polychrome.layers.self_attention import SelfAttention2d

__all__ += ["AttentionGate", "FiLM", "GLUConv", "GLUResBlock", "SelfAttention2d", "group_norm"]
