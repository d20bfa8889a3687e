"""layers/conv.py: DoubleConv keeps the size and is two conv -> BatchNorm -> ReLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from polychrome.layers import DoubleConv


def test_double_conv_shape_gradient_and_reference():
    torch.manual_seed(0)
    block = DoubleConv(3, 5)
    x = torch.randn(2, 3, 9, 7, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 5, 9, 7) and (out >= 0).all()
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in block.parameters())
    block.eval()
    conv1, bn1, _, conv2, bn2, _ = block

    def bn(t, m):
        return (t - m.running_mean[None, :, None, None]) / torch.sqrt(m.running_var[None, :, None, None] + m.eps) * \
            m.weight[None, :, None, None] + m.bias[None, :, None, None]

    with torch.no_grad():
        want = F.relu(bn(F.conv2d(F.relu(bn(F.conv2d(x, conv1.weight, padding=1), bn1)), conv2.weight, padding=1), bn2))
        torch.testing.assert_close(block(x), want)
