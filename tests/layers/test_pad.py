"""layers/pad.py: pad_to_multiple pads bottom/right to a multiple, reflecting (replicating when too thin)."""

from __future__ import annotations

import torch

from polychrome.layers.pad import pad_border, pad_to_multiple


def test_pads_to_the_multiple_and_crops_back():
    x = torch.randn(1, 2, 13, 30)
    out = pad_to_multiple(x, 8)
    assert out.shape == (1, 2, 16, 32)
    torch.testing.assert_close(out[..., :13, :30], x)
    assert pad_to_multiple(torch.randn(1, 1, 16, 8), 8).shape == (1, 1, 16, 8)


def test_reflect_values_and_replicate_for_thin_inputs():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    out = pad_to_multiple(x, 4)
    torch.testing.assert_close(out[0, 0, 3, :3], x[0, 0, 1])  # reflect: the row before the last comes again
    thin = torch.arange(3.0).view(1, 1, 1, 3)  # one row: reflect cannot pad 3 rows, so it replicates
    out = pad_to_multiple(thin, 4)
    assert out.shape == (1, 1, 4, 4)
    torch.testing.assert_close(out[0, 0, :, 3], torch.full((4,), 2.0))


def test_gradient_flows_through_the_padding():
    x = torch.randn(1, 1, 5, 5, requires_grad=True)
    pad_to_multiple(x, 4).sum().backward()
    assert x.grad.sum() == 8 * 8  # every output element comes from exactly one input element


def test_pad_border_reflects_on_all_sides_and_replicates_when_too_small():
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    y = pad_border(x, 2)
    assert y.shape == (1, 1, 8, 9)
    torch.testing.assert_close(y[..., 2:6, 2:7], x)
    torch.testing.assert_close(y[..., 0, 2:7], x[..., 2, :])  # reflected: row 2 above row 0
    torch.testing.assert_close(y[..., 2:6, -1], x[..., :, -3])
    thin = pad_border(torch.ones(1, 1, 2, 9), 3)  # 3 rows cannot reflect 2: replicate
    assert thin.shape == (1, 1, 8, 15) and thin.eq(1).all()
    assert pad_border(x, 0) is x
