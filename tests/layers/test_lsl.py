"""layers/lsl.py: the Local Stabilising Layer is a k x k convolution over the token grid, reflect-padded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from polychrome.layers import LocalStabilizingLayer


def test_shape_gradient_and_reference():
    torch.manual_seed(0)
    lsl = LocalStabilizingLayer(8, 12, kernel_size=3)
    x = torch.randn(2, 8, 4, 5, requires_grad=True)
    out = lsl(x)
    assert out.shape == (2, 12, 4, 5)
    torch.testing.assert_close(out, F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), lsl.conv.weight, lsl.conv.bias))
    out.sum().backward()
    assert x.grad.abs().sum() > 0


def test_a_one_token_high_grid_replicates_and_even_kernels_are_refused():
    lsl = LocalStabilizingLayer(4, 4, kernel_size=3)
    assert lsl(torch.randn(1, 4, 1, 6)).shape == (1, 4, 1, 6)
    with pytest.raises(ValueError, match="odd"):
        LocalStabilizingLayer(4, 4, kernel_size=2)
