"""losses/regression: the ab L1 / smooth-L1 loss and the diversity term on known values."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import flat_lab

from polychrome.losses import ab_loss, diversity_loss


def test_ab_loss_l1_and_smooth_l1_by_hand():
    pred, target = torch.zeros(1, 2, 1, 2), torch.tensor([0.05, 0.3]).view(1, 1, 1, 2).expand(1, 2, 1, 2)
    assert ab_loss(pred, target).item() == pytest.approx((0.05 + 0.3) / 2)
    # Quadratic below beta (0.5 * d^2 / beta), linear above (|d| - beta / 2).
    expected = (0.5 * 0.05**2 / 0.1 + (0.3 - 0.05)) / 2
    assert ab_loss(pred, target, "smooth_l1", beta=0.1).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="unknown ab loss 'l2'"):
        ab_loss(pred, target, "l2")


def test_diversity_on_constant_and_on_a_checkerboard():
    _, flat = flat_lab(50.0, 30.0, -5.0)
    assert diversity_loss(flat).item() == pytest.approx(-math.log(1e-6), rel=1e-6)  # 13.8155
    # a alternates +-0.2 (variance 0.04 in every image), b stays flat (variance 0).
    board = torch.zeros(3, 2, 8, 8)
    board[:, 0] = 0.2 * (torch.arange(8).view(8, 1) + torch.arange(8)).remainder(2).mul(2).sub(1)
    expected = (-math.log(0.04 + 1e-6) - math.log(1e-6)) / 2
    assert diversity_loss(board).item() == pytest.approx(expected, rel=1e-5)
    # Per image: two photos in different flat colours are still flat, whatever the batch's spread.
    two_tints = torch.cat([torch.full((1, 2, 8, 8), -0.5), torch.full((1, 2, 8, 8), 0.5)])
    assert diversity_loss(two_tints).item() == pytest.approx(-math.log(1e-6), rel=1e-6)
