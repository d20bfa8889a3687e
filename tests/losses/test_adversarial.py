"""losses/adversarial: the hinge losses of critic and generator, and feature matching, on known values."""

from __future__ import annotations

import pytest
import torch

from polychrome.losses import feature_matching_loss, hinge_d_loss, hinge_g_loss


def test_hinge_losses_and_feature_matching():
    real = [torch.tensor([[2.0, 0.5]]), torch.tensor([[1.0]])]
    fake = [torch.tensor([[-2.0, 0.0]]), torch.tensor([[-0.5]])]
    # Scale 0: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; relu(1-2)=0, relu(1+0)=1 -> 0.5. Scale 1: 0 + 0.5.
    assert hinge_d_loss(real, fake).item() == pytest.approx(((0.25 + 0.5) + (0 + 0.5)) / 2)
    assert hinge_g_loss(fake).item() == pytest.approx((1.0 + 0.5) / 2)
    rf = [[torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]]
    ff = [[torch.zeros(1, 2, 2, 2, requires_grad=True), torch.full((1, 1, 1, 1), 3.0, requires_grad=True)]]
    loss = feature_matching_loss(rf, ff)
    assert loss.item() == pytest.approx((1.0 + 3.0) / 2)
    loss.backward()
    assert ff[0][0].grad.abs().sum() > 0
