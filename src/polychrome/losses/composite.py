"""The composite colourisation loss: RGB L1 + perceptual + ab smooth-L1 + diversity.

ab is in network units and L in real units (see color/lab.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from polychrome.color.lab import net_to_ab
from polychrome.losses.perceptual import Lite0Features
from polychrome.losses.regression import diversity_loss
from polychrome.pipeline.core import join_lab


class ColorizationLoss(nn.Module):
    """The composite colourisation loss; returns ``(total, {term: value})``.

    Terms (each off when its weight is 0, and then not computed nor reported):

    - ``rgb`` (weight 0.5): L1 between the sRGB made from the true L with the predicted ab and the
      sRGB of the true L and ab (joined as the colouriser joins them, clipped to the gamut).
    - ``perceptual`` (1.0): mean over the feature network's taps of the L1 between the features of
      those two sRGB images. The feature network is frozen and in eval mode; the target side runs
      without gradients.
    - ``ab`` (2.0): smooth-L1 with ``ab_beta`` (0.1) on ab in network units.
    - ``diversity`` (0.1): :func:`diversity_loss` of the predicted ab (per-image spatial variance).

    ``total`` is the weighted sum; the dict holds each term's unweighted value, detached (for logging).

    Args:
        feature_net: module mapping sRGB (B, 3, H, W) in [0, 1] to a list of feature maps. Default
            (when the perceptual weight is not 0): :class:`Lite0Features`, from the installed wheel.
    """

    TERMS = ("rgb", "perceptual", "ab", "diversity")

    def __init__(
        self,
        rgb_weight: float = 0.5,
        perceptual_weight: float = 1.0,
        ab_weight: float = 2.0,
        diversity_weight: float = 0.1,
        ab_beta: float = 0.1,
        feature_net: nn.Module | None = None,
    ):
        super().__init__()
        self.weights = {
            "rgb": rgb_weight, "perceptual": perceptual_weight, "ab": ab_weight, "diversity": diversity_weight,
        }  # fmt: skip
        for name, w in self.weights.items():
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"{name} weight must be a finite number >= 0, got {w!r}")
        if not any(self.weights.values()):
            raise ValueError("every ColorizationLoss weight is 0: nothing to train on")
        self.ab_beta = ab_beta
        if perceptual_weight and feature_net is None:
            feature_net = Lite0Features()
        self.feature_net = feature_net if perceptual_weight else None

    def forward(
        self, pred_ab: torch.Tensor, true_ab: torch.Tensor, L: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        Args:
            pred_ab, true_ab: (B, 2, H, W) float, ab in network units.
            L: (B, 1, H, W) float, the true lightness in real units [0, 100].
        Returns: (scalar total, {term: scalar detached tensor}) for the terms with a non-zero weight.
        """
        pred_ab, true_ab, L = pred_ab.float(), true_ab.float(), L.float()
        terms: dict[str, torch.Tensor] = {}
        w = self.weights
        if w["rgb"] or w["perceptual"]:
            rgb_pred = join_lab(L, net_to_ab(pred_ab))  # (B, 3, H, W) in [0, 1]
            with torch.no_grad():
                rgb_true = join_lab(L, net_to_ab(true_ab))
            if w["rgb"]:
                terms["rgb"] = F.l1_loss(rgb_pred, rgb_true)
            if w["perceptual"]:
                with torch.no_grad():
                    target = self.feature_net(rgb_true)
                feats = self.feature_net(rgb_pred)
                terms["perceptual"] = torch.stack([F.l1_loss(f, t) for f, t in zip(feats, target)]).mean()
        if w["ab"]:
            terms["ab"] = F.smooth_l1_loss(pred_ab, true_ab, beta=self.ab_beta)
        if w["diversity"]:
            terms["diversity"] = diversity_loss(pred_ab)
        total = sum(w[k] * v for k, v in terms.items())
        return total, {k: v.detach() for k, v in terms.items()}
