"""layers/self_attention: identity at start, the attention formula, long-range mixing, gradients."""

from __future__ import annotations

import math

import torch

from polychrome.layers.self_attention import SelfAttention2d


def test_starts_as_identity_and_reduces_queries():
    m = SelfAttention2d(32, reduction=16)
    assert m.query.out_channels == 2 and m.key.out_channels == 2 and m.value.out_channels == 32
    x = torch.randn(2, 32, 3, 4)
    torch.testing.assert_close(m(x), x)


def test_attention_formula_and_global_reach():
    torch.manual_seed(0)
    m = SelfAttention2d(16, reduction=4)
    with torch.no_grad():
        m.gamma.fill_(1.0)
    x = torch.randn(1, 16, 3, 5)
    q = m.query(x).flatten(2)[0].T  # (HW, d)
    k = m.key(x).flatten(2)[0].T
    v = m.value(x).flatten(2)[0].T  # (HW, C)
    attn = torch.softmax(q @ k.T / math.sqrt(q.shape[1]), dim=1)
    expected = x + (attn @ v).T.reshape(1, 16, 3, 5)
    torch.testing.assert_close(m(x), expected, rtol=1e-4, atol=1e-5)
    # One pixel changes every output position: the receptive field is the whole map.
    x2 = x.clone()
    x2[..., 0, 0] += 1
    assert ((m(x2) - m(x)).abs().sum(1) > 0).all()


def test_gradients():
    torch.manual_seed(0)
    m = SelfAttention2d(16, reduction=4)
    with torch.no_grad():
        m.gamma.fill_(0.5)
    x = torch.randn(2, 16, 4, 4, requires_grad=True)
    m(x).square().mean().backward()
    assert x.grad.abs().sum() > 0
    for n, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n
