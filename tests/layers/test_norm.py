"""layers/norm.py: group_norm picks a group count that divides the channels and normalises per group."""

from __future__ import annotations

import torch

from polychrome.layers import group_norm


def test_group_count_divides_the_channels():
    assert [group_norm(c).num_groups for c in (64, 128, 48, 24, 7)] == [32, 32, 16, 8, 1]


def test_group_norm_reference_and_gradient():
    torch.manual_seed(0)
    norm = group_norm(12, groups=4)
    x = torch.randn(2, 12, 5, 6, requires_grad=True)
    out = norm(x)
    g = x.detach().view(2, 4, 3 * 5 * 6)
    want = ((g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + norm.eps)).view_as(x)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)  # weight 1, bias 0 at init
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
