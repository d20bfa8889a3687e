"""losses/classification: rebalanced and focal cross-entropy over ab bins, the histogram loss, the confidence
target and loss."""

from __future__ import annotations

import math

import pytest
import torch

from polychrome.color.quantize import rebalance_weights, soft_encode
from polychrome.losses import class_loss, confidence_loss, confidence_target, histogram_loss


def _class_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    bins = torch.randn(9, 2, generator=g) * 40
    logits = torch.randn(2, 9, 3, 4, generator=g, requires_grad=True)
    target = soft_encode(torch.randn(2, 2, 3, 4, generator=g) * 30, bins, k=3)
    return bins, logits, target


def test_class_loss_gamma_zero_is_cross_entropy():
    _, logits, target = _class_case()
    ref = torch.nn.functional.cross_entropy(logits, target)  # soft-target CE, mean over pixels
    torch.testing.assert_close(class_loss(logits, target), ref)
    torch.testing.assert_close(class_loss(logits, target, gamma=0.0), ref)


def test_focal_loss_down_weights_easy_pixels():
    _, logits, target = _class_case()
    ce, focal = class_loss(logits, target), class_loss(logits, target, gamma=2.0)
    assert 0 < focal < ce
    # A hard one-hot, correctly predicted pixel: focal ~ 0 while CE is small but not tiny.
    onehot = torch.zeros(1, 3, 1, 1)
    onehot[0, 1] = 1
    confident = torch.tensor([0.0, 3.0, 0.0]).view(1, 3, 1, 1)
    assert class_loss(confident, onehot, gamma=2.0) < 0.01 * class_loss(confident, onehot)
    with pytest.raises(ValueError, match="gamma"):
        class_loss(logits, target, gamma=-1)


def test_class_loss_rebalancing_uses_the_true_bin_weight():
    _, logits, target = _class_case()
    w = torch.arange(1.0, 10.0)
    per_pixel = -(target * torch.log_softmax(logits, 1)).sum(1)
    expected = (per_pixel * w[target.argmax(1)]).mean()
    torch.testing.assert_close(class_loss(logits, target, class_weights=w), expected)
    # Uniform prior -> weights all 1 -> the plain loss.
    flat = rebalance_weights(torch.full((9,), 1 / 9))
    torch.testing.assert_close(class_loss(logits, target, class_weights=flat), class_loss(logits, target))
    class_loss(logits, target, class_weights=w, gamma=1.0).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_histogram_loss():
    a = torch.zeros(1, 8)
    a[0, 2] = 1
    b, c = torch.zeros(1, 8), torch.zeros(1, 8)
    b[0, 3], c[0, 7] = 1, 1
    # EMD in bin units: one bin off costs 1, five bins off cost 5; KL cannot tell them apart.
    assert histogram_loss(b, a).item() == pytest.approx(1.0)
    assert histogram_loss(c, a).item() == pytest.approx(5.0)
    assert histogram_loss(a, a).item() == 0
    kl_b, kl_c = histogram_loss(b, a, kind="kl"), histogram_loss(c, a, kind="kl")
    assert kl_b == kl_c
    logits = torch.zeros(2, 8, requires_grad=True)
    histogram_loss(torch.softmax(logits, 1), torch.cat([a, b])).backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="histogram loss"):
        histogram_loss(a, a, kind="l2")


def test_confidence_loss_learns_where_colour_is_wrong():
    true = torch.zeros(1, 2, 1, 2)
    pred = true.clone()
    pred[0, 0, 0, 1] = 30.0  # pixel 1 is three bins off
    t = confidence_target(pred, true)
    assert t[0, 0, 0, 0] == 1 and t[0, 0, 0, 1] == pytest.approx(math.exp(-3))
    # Gradient descent on the logit alone reaches the target; the colour gets no gradient from this loss.
    logit = torch.zeros(1, 1, 1, 2, requires_grad=True)
    pred.requires_grad_(True)
    opt = torch.optim.SGD([logit], lr=5.0)
    for _ in range(300):
        opt.zero_grad()
        loss = confidence_loss(logit, pred, true)
        loss.backward()
        opt.step()
    assert pred.grad is None
    conf = torch.sigmoid(logit).detach()[0, 0, 0]
    assert conf[0] > 0.95 and conf[1] == pytest.approx(math.exp(-3), abs=0.01)
