"""layers/patch_embed.py: PatchEmbed equals a p x p, stride-p convolution, returns tokens in row-major order."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from polychrome.layers import PatchEmbed


def test_equals_a_strided_convolution():
    torch.manual_seed(0)
    embed = PatchEmbed(3, 10, 4)
    x = torch.randn(2, 3, 8, 12, requires_grad=True)
    tokens, grid = embed(x)
    assert tokens.shape == (2, 6, 10) and grid == (2, 3)
    weight = embed.proj.weight.view(10, 3, 4, 4)  # flattened as (c, i, j)
    want = F.conv2d(x, weight, embed.proj.bias, stride=4).flatten(2).transpose(1, 2)  # (B, N, dim), row-major
    torch.testing.assert_close(tokens, want, atol=1e-5, rtol=1e-5)
    tokens.sum().backward()
    assert x.grad.abs().sum() > 0


def test_a_size_that_is_no_multiple_is_refused():
    with pytest.raises(ValueError, match="multiple of the patch size 4"):
        PatchEmbed(1, 4, 4)(torch.randn(1, 1, 8, 10))
