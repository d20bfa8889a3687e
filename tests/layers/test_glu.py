"""layers/glu and layers/norm: shapes, the gate, the shortcut, gradients; group counts that divide."""

from __future__ import annotations

import pytest
import torch

from polychrome.layers.glu import GLUConv, GLUResBlock
from polychrome.layers.norm import group_norm


@pytest.mark.parametrize(("channels", "groups"), [(64, 32), (256, 32), (16, 16), (48, 16), (24, 8), (3, 1)])
def test_group_norm_groups_divide(channels, groups):
    assert group_norm(channels).num_groups == groups


def test_glu_conv_is_value_times_sigmoid_gate():
    torch.manual_seed(0)
    m = GLUConv(3, 4, groups=2)
    x = torch.randn(2, 3, 6, 5)
    a, g = m.norm(m.conv(x)).chunk(2, dim=1)
    torch.testing.assert_close(m(x), a * torch.sigmoid(g))


@pytest.mark.parametrize(("cin", "cout"), [(8, 8), (12, 8)])
def test_glu_res_block_shapes_and_gradients(cin, cout):
    torch.manual_seed(0)
    m = GLUResBlock(cin, cout)
    assert isinstance(m.shortcut, torch.nn.Identity) == (cin == cout)
    x = torch.randn(2, cin, 7, 9, requires_grad=True)
    y = m(x)
    assert y.shape == (2, cout, 7, 9) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad.abs().sum() > 0
    for n, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n
