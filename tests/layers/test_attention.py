"""layers/attention.py: relative position indices, the bias table read for other grids, and the attention itself
against a plain softmax reference."""

from __future__ import annotations

import pytest
import torch

from polychrome.layers import RelPosSelfAttention, relative_position_index, resample_bias_table


def test_relative_position_index_of_a_2x2_grid():
    # Offsets (dy, dx) in a 3 x 3 layout, flat index (dy + 1) * 3 + (dx + 1); token order (0,0) (0,1) (1,0) (1,1).
    want = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(relative_position_index(2, 2), want)


def test_bias_table_is_itself_at_the_native_grid_and_a_crop_for_the_same_longest_side():
    table = torch.randn(2, 5, 5)  # built for a 3 x 3 grid
    torch.testing.assert_close(resample_bias_table(table, (3, 3)), table)
    torch.testing.assert_close(resample_bias_table(table, (2, 3)), table[:, 1:4, :])
    assert resample_bias_table(table, (5, 2)).shape == (2, 9, 3)


def test_attention_matches_a_softmax_reference_and_has_gradients():
    torch.manual_seed(0)
    attn = RelPosSelfAttention(8, heads=2, table_grid=2)
    x = torch.randn(1, 4, 8, requires_grad=True)
    out = attn(x, (2, 2))
    with torch.no_grad():
        q, k, v = (x @ w.T for w in attn.qkv.weight.chunk(3))
        q, v = q + attn.q_bias, v + attn.v_bias
        heads = []
        for h in range(2):
            s = slice(4 * h, 4 * h + 4)
            logits = q[0, :, s] @ k[0, :, s].T / 2.0 + attn.relative_bias(2, 2)[h]  # scale 1/sqrt(4)
            heads.append(logits.softmax(-1) @ v[0, :, s])
        want = attn.proj(torch.cat(heads, -1))[None]
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and attn.rel_bias_table.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="does not hold"):
        attn(x, (3, 3))
