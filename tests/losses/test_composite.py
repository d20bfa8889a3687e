"""losses/composite: each ColorizationLoss term on a known case, its weights, and the gradient each term sends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import EchoFeatures, flat_lab
from skimage.color import lab2rgb

from polychrome.color.lab import AB_SCALE
from polychrome.losses import ColorizationLoss, Lite0Features, ab_loss, diversity_loss


def _lab2rgb(L, a, b) -> np.ndarray:
    return lab2rgb(np.array([[[L, a, b]]], dtype=np.float64))[0, 0]


# ----------------------------------------------------------------------------- values on known cases


def test_identical_prediction_zeroes_rgb_perceptual_and_ab():
    torch.manual_seed(0)
    L = torch.rand(2, 1, 24, 32) * 80 + 10
    ab = (torch.rand(2, 2, 24, 32) - 0.5) * 0.6
    loss = ColorizationLoss(feature_net=Lite0Features(pretrained=False))
    total, terms = loss(ab.clone(), ab, L)
    assert set(terms) == {"rgb", "perceptual", "ab", "diversity"}
    assert terms["rgb"] == 0 and terms["perceptual"] == 0 and terms["ab"] == 0
    torch.testing.assert_close(total, 0.1 * diversity_loss(ab))  # only the diversity term is left


def test_constant_offset_rgb_l1_and_ab_smooth_l1_by_hand():
    L, true = flat_lab(60.0, 10.0, -20.0)
    offset = 6.4  # CIE units = 0.05 in network units, below beta = 0.1: the quadratic branch
    pred = true + offset / AB_SCALE
    loss = ColorizationLoss(perceptual_weight=0, diversity_weight=0)
    total, terms = loss(pred, true, L)
    assert terms["ab"].item() == pytest.approx(0.5 * 0.05**2 / 0.1, rel=1e-5)  # 0.0125
    # Every pixel is one sRGB colour pair, so the L1 is the mean over the 3 channels of their difference.
    expected_rgb = np.abs(_lab2rgb(60, 10 + offset, -20 + offset) - _lab2rgb(60, 10, -20)).mean()
    assert terms["rgb"].item() == pytest.approx(expected_rgb, abs=2e-5)
    assert total.item() == pytest.approx(0.5 * expected_rgb + 2.0 * 0.0125, abs=2e-5)
    # Above beta the linear branch: |d| - beta / 2 = 0.3 - 0.05.
    _, terms = loss(true + torch.tensor([0.3, -0.3]).view(1, 2, 1, 1), true, L)
    assert terms["ab"].item() == pytest.approx(0.25, rel=1e-5)


def test_perceptual_term_is_the_mean_feature_l1():
    L, true = flat_lab(60.0, 10.0, -20.0)
    pred = true + 0.05
    loss = ColorizationLoss(rgb_weight=0.5, ab_weight=0, diversity_weight=0, feature_net=EchoFeatures())
    terms = loss(pred, true, L)[1]
    assert terms["perceptual"].item() == pytest.approx(1.5 * terms["rgb"].item(), rel=1e-6)


def test_weights_scale_the_total_and_zero_weights_are_not_computed():
    torch.manual_seed(0)
    L = torch.rand(1, 1, 16, 16) * 100
    pred, true = (torch.rand(2, 1, 2, 16, 16) - 0.5).unbind(0)
    base_total, base = ColorizationLoss(feature_net=EchoFeatures())(pred, true, L)
    total, terms = ColorizationLoss(3.0, 0.5, 1.0, 0.2, feature_net=EchoFeatures())(pred, true, L)
    for k in base:
        torch.testing.assert_close(terms[k], base[k])
    expected = 3.0 * base["rgb"] + 0.5 * base["perceptual"] + 1.0 * base["ab"] + 0.2 * base["diversity"]
    torch.testing.assert_close(total.detach(), expected)
    assert base_total.item() == pytest.approx(
        (0.5 * base["rgb"] + base["perceptual"] + 2 * base["ab"] + 0.1 * base["diversity"]).item(), rel=1e-6
    )
    only_ab = ColorizationLoss(rgb_weight=0, perceptual_weight=0, diversity_weight=0)
    assert only_ab.feature_net is None  # no network is built (nor the wheel read) for a zero weight
    assert set(only_ab(pred, true, L)[1]) == {"ab"}
    assert only_ab(pred, true, L)[1]["ab"] == ab_loss(pred, true, "smooth_l1", 0.1)


@pytest.mark.parametrize("bad", [{"rgb_weight": -1.0}, {"ab_weight": float("nan")}, {"diversity_weight": "x"}])
def test_bad_weights_are_rejected(bad):
    with pytest.raises(ValueError, match="weight must be a finite number"):
        ColorizationLoss(perceptual_weight=0, **bad)


def test_all_zero_weights_are_rejected():
    with pytest.raises(ValueError, match="every ColorizationLoss weight is 0"):
        ColorizationLoss(0, 0, 0, 0)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("term", ["rgb", "perceptual", "ab", "diversity"])
def test_each_term_sends_a_gradient_to_the_prediction(term):
    torch.manual_seed(0)
    L = torch.rand(2, 1, 32, 32) * 60 + 20
    true = (torch.rand(2, 2, 32, 32) - 0.5) * 0.4
    pred = ((torch.rand(2, 2, 32, 32) - 0.5) * 0.4).requires_grad_()
    weights = {f"{t}_weight": float(t == term) for t in ColorizationLoss.TERMS}
    loss = ColorizationLoss(**weights, feature_net=Lite0Features() if term == "perceptual" else None)
    total, terms = loss(pred, true, L)
    assert list(terms) == [term] and total.requires_grad and not terms[term].requires_grad
    total.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    if loss.feature_net is not None:
        assert all(p.grad is None and not p.requires_grad for p in loss.feature_net.parameters())
