"""Colour spaces: Lab conversion and normalisation (lab.py)."""

from polychrome.color.lab import (
    AB_SCALE,
    L_CENTER,
    L_SCALE,
    ab_to_net,
    l_to_net,
    lab_to_rgb,
    net_to_ab,
    net_to_l,
    rgb_to_gray_l,
    rgb_to_lab,
    split_lab,
)

__all__ = [
    "AB_SCALE",
    "L_CENTER",
    "L_SCALE",
    "ab_to_net",
    "l_to_net",
    "lab_to_rgb",
    "net_to_ab",
    "net_to_l",
    "rgb_to_gray_l",
    "rgb_to_lab",
    "split_lab",
]
