"""layers/attention_gate: shapes (coarser gate resized), the gate lies in (0, 1), gradients."""

from __future__ import annotations

import torch

from polychrome.layers.attention_gate import AttentionGate


def test_attention_gate_shapes_range_and_gradients():
    torch.manual_seed(0)
    gate = AttentionGate(skip_channels=6, gate_channels=10)
    skip = torch.randn(2, 6, 8, 12, requires_grad=True)
    g = torch.randn(2, 10, 4, 6, requires_grad=True)
    out, alpha = gate(skip, g, return_alpha=True)
    assert out.shape == skip.shape and alpha.shape == (2, 1, 8, 12)
    assert ((alpha > 0) & (alpha < 1)).all()
    torch.testing.assert_close(out, skip * alpha)
    out.square().mean().backward()
    assert skip.grad.abs().sum() > 0 and g.grad.abs().sum() > 0
    for n, p in gate.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_attention_gate_can_close_the_skip():
    gate = AttentionGate(2, 2)
    with torch.no_grad():
        gate.psi.bias.fill_(-50.0)
    assert gate(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)).abs().max() < 1e-12
