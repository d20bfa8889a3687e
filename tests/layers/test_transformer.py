"""layers/transformer.py: a pre-norm block with residuals; the identity when its branches output zero."""

from __future__ import annotations

import torch
from torch import nn

from polychrome.layers import Mlp, TransformerBlock


def test_shape_gradient_and_residual_reference():
    torch.manual_seed(0)
    block = TransformerBlock(16, heads=2, table_grid=3)
    x = torch.randn(2, 6, 16, requires_grad=True)
    out = block(x, (2, 3))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    with torch.no_grad():
        for layer in (block.attn.proj, block.mlp[2]):  # both branches end in a linear layer: zero them
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        torch.testing.assert_close(block(x, (2, 3)), x)


def test_mlp_is_linear_gelu_linear():
    torch.manual_seed(0)
    mlp = Mlp(4, 8)
    x = torch.randn(3, 4)
    torch.testing.assert_close(mlp(x), mlp[2](torch.nn.functional.gelu(mlp[0](x))))
