"""iColoriT hint transformer: shapes, hints, relative bias at other grids, checkpointing, weights, precision."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from polychrome.layers import PatchEmbed, RelPosSelfAttention, relative_position_index, resample_bias_table
from polychrome.models import IColoriT, create_model


def _inputs(h: int, w: int, batch: int = 2, n_hints: int = 6, seed: int = 0):
    """L_net in [-1, 1] (a ramp plus noise) and a few 2 x 2 hints in network units."""
    g = torch.Generator().manual_seed(seed)
    L = (0.7 * torch.linspace(-1, 1, w).expand(batch, 1, h, w) + 0.3 * torch.randn(batch, 1, h, w, generator=g)).clamp(
        -1, 1
    )
    ab = torch.zeros(batch, 2, h, w)
    mask = torch.zeros(batch, 1, h, w)
    for i in range(batch):
        for _ in range(n_hints):
            y = int(torch.randint(0, h - 1, (1,), generator=g))
            x = int(torch.randint(0, w - 1, (1,), generator=g))
            ab[i, :, y : y + 2, x : x + 2] = (torch.rand(2, 1, 1, generator=g) - 0.5) * 1.2
            mask[i, :, y : y + 2, x : x + 2] = 1
    return L, ab, mask


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("icolorit-tiny")


def _direct_param_count(dim: int, heads: int, depth: int = 12, patch: int = 16, grid: int = 14) -> int:
    """Counted by hand from the architecture, independently of the modules."""
    embed = 4 * dim * patch * patch + dim
    attn = dim * 3 * dim + 2 * dim + dim * dim + dim + heads * (2 * grid - 1) ** 2  # qkv, q/v bias, proj, table
    mlp = dim * 4 * dim + 4 * dim + 4 * dim * dim + dim
    block = attn + mlp + 2 * 2 * dim  # two LayerNorms
    lsl = 9 * dim * 2 * patch * patch + 2 * patch * patch
    return embed + depth * block + 2 * dim + lsl


def test_uses_hints_and_is_registered(tiny):
    assert tiny.uses_hints is True and isinstance(tiny, IColoriT)
    assert tiny.registry_name == "icolorit-tiny"


@pytest.mark.parametrize(
    ("name", "dim", "heads", "measured"),
    [
        ("icolorit-tiny", 192, 3, 6_444_740),
        ("icolorit-small", 384, 6, 23_505_800),
        ("icolorit-base", 768, 12, 89_478_416),
    ],
)
def test_parameter_counts(name, dim, heads, measured):
    # On the meta device nothing is allocated, so base costs nothing here.
    with torch.device("meta"):
        model = create_model(name)
    n = sum(p.numel() for p in model.parameters())
    assert n == _direct_param_count(dim, heads) == measured  # the counts quoted in the module docstring


@pytest.mark.parametrize("hw", [(224, 224), (96, 160), (70, 100)])
def test_forward_backward_shapes(tiny, hw):
    h, w = hw
    tiny.train().zero_grad(set_to_none=True)
    L, ab, mask = _inputs(h, w)
    y = tiny(L, ab, mask)
    assert y.shape == (2, 2, h, w) and y.dtype == torch.float32
    assert torch.isfinite(y).all() and y.abs().max() < 1
    y.square().mean().backward()
    for n, p in tiny.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    assert tiny.patch_embed.proj.weight.grad.abs().sum() > 0


def test_tiny_and_thin_inputs(tiny):
    # Smaller than a patch, and one token high: the LSL's reflect padding would fail on a 1-token grid.
    tiny.eval()
    with torch.no_grad():
        for hw in [(1, 1), (5, 7), (3, 100), (16, 16)]:
            y = tiny(_inputs(*hw, batch=1, n_hints=0)[0])
            assert y.shape == (1, 2, *hw) and torch.isfinite(y).all()


def test_starts_near_grey():
    torch.manual_seed(0)
    model = create_model("icolorit-tiny").eval()
    with torch.no_grad():
        y = model(*_inputs(64, 64))
    assert (y.abs() * 128).mean() < 5  # CIE ab units: a grey-ish start, not saturated noise


def test_hints_reach_the_output(tiny):
    tiny.eval()
    L, ab, mask = _inputs(64, 80)
    with torch.no_grad():
        none = tiny(L)
        zeros = tiny(L, torch.zeros_like(ab), torch.zeros_like(mask))
        hinted = tiny(L, ab, mask)
    assert torch.equal(none, zeros)  # None means "no hints"
    assert (hinted - none).abs().max() > 1e-4
    ab = ab.clone().requires_grad_(True)
    tiny(L, ab, mask).sum().backward()
    assert ab.grad.abs().sum() > 0


def test_padding_reflects_L_and_zero_pads_hints(tiny):
    # An odd-sized input must give exactly the crop of the padded input the docstring describes.
    tiny.eval()
    L, ab, mask = _inputs(70, 100, n_hints=30)
    with torch.no_grad():
        y = tiny(L, ab, mask)
        ref = tiny(F.pad(L, (0, 12, 0, 10), mode="reflect"), F.pad(ab, (0, 12, 0, 10)), F.pad(mask, (0, 12, 0, 10)))
    torch.testing.assert_close(y, ref[..., :70, :100])


def test_bad_hint_arguments(tiny):
    L, ab, mask = _inputs(32, 32)
    with pytest.raises(ValueError, match="together"):
        tiny(L, ab)
    with pytest.raises(ValueError, match=r"hint_ab_net must have shape \(2, 2, 32, 32\), got \(2, 2, 32, 16\)"):
        tiny(L, ab[..., :16], mask)
    with pytest.raises(ValueError, match=r"hint_mask must have shape \(2, 1, 32, 32\), got \(4, 1, 32, 32\)"):
        tiny(L, ab, torch.cat([mask, mask]))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        tiny(torch.cat([L, L], dim=1))


def _index_by_loops(gh: int, gw: int) -> torch.Tensor:
    n = gh * gw
    idx = torch.empty(n, n, dtype=torch.long)
    for i in range(n):
        for j in range(n):
            dy, dx = i // gw - j // gw, i % gw - j % gw
            idx[i, j] = (dy + gh - 1) * (2 * gw - 1) + (dx + gw - 1)
    return idx


@pytest.mark.parametrize("grid", [(3, 3), (2, 5), (4, 3)])
def test_relative_position_index(grid):
    assert torch.equal(relative_position_index(*grid), _index_by_loops(*grid))


def _attention(grid_side: int = 6, dim: int = 24, heads: int = 3) -> RelPosSelfAttention:
    torch.manual_seed(0)
    attn = RelPosSelfAttention(dim, heads, grid_side)
    with torch.no_grad():  # visible biases, so a misplaced entry would show
        attn.rel_bias_table.normal_(0, 1.0)
        attn.q_bias.normal_(0, 0.1)
        attn.v_bias.normal_(0, 0.1)
    return attn


def test_native_grid_uses_the_table_unchanged():
    attn = _attention()
    G, heads = 6, 3
    table = attn.rel_bias_table
    bias = attn.relative_bias(G, G)
    expected = torch.stack([table[h].flatten()[_index_by_loops(G, G)] for h in range(heads)])
    assert torch.equal(bias, expected)

    # The whole attention against a direct computation: softmax(q k^T / sqrt(d) + bias) v.
    x = torch.randn(2, G * G, 24)
    out = attn(x, (G, G))
    qkv = x @ attn.qkv.weight.T + torch.cat([attn.q_bias, torch.zeros(24), attn.v_bias])
    q, k, v = qkv.view(2, G * G, 3, heads, 8).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-1, -2) / 8**0.5 + expected
    ref = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(2, G * G, 24))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_grid_with_the_native_longest_side_reads_exact_offsets():
    # A landscape's 6 x 4 grid (native 6 x 6): every offset exists in the table, so no interpolation at all.
    attn = _attention()
    table = attn.rel_bias_table
    bias = attn.relative_bias(4, 6)
    expected = torch.stack([table[h, 2:9, :].flatten()[_index_by_loops(4, 6)] for h in range(3)])
    assert torch.equal(bias, expected)


@pytest.mark.parametrize("grid", [(9, 9), (10, 7), (3, 3), (1, 1), (1, 5)])
def test_other_grids_resample_the_table(grid):
    attn = _attention()
    gh, gw = grid
    resampled = resample_bias_table(attn.rel_bias_table, grid)
    assert resampled.shape == (3, 2 * gh - 1, 2 * gw - 1) and torch.isfinite(resampled).all()
    # Zero offset is the table's centre at any scale, and the longest side's extremes its corners' rows/columns.
    torch.testing.assert_close(resampled[:, gh - 1, gw - 1], attn.rel_bias_table[:, 5, 5])
    if gw == max(grid) > 1:
        torch.testing.assert_close(resampled[:, gh - 1, 0], attn.rel_bias_table[:, 5, 0])
    x = torch.randn(2, gh * gw, 24)
    out = attn(x, grid)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().sum().backward()
    assert attn.rel_bias_table.grad.abs().sum() > 0 or gh * gw == 1  # one token: softmax ignores any bias


def test_model_runs_at_a_larger_grid_than_its_table():
    # Bias tables for 64 px (4 x 4 tokens) at a 128 x 96 input (8 x 6 tokens): resampled, not an error.
    torch.manual_seed(0)
    model = create_model("icolorit-tiny", img_size=64, depth=2)
    y = model(*_inputs(128, 96))
    assert y.shape == (2, 2, 128, 96) and torch.isfinite(y).all()


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = create_model("icolorit-tiny", depth=3).train()
    L, ab, mask = _inputs(48, 64)

    def grads():
        model.zero_grad(set_to_none=True)
        y = model(L, ab, mask)
        y.square().mean().backward()
        return y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    y0, g0 = grads()
    model.set_grad_checkpointing()
    assert model.grad_checkpointing
    y1, g1 = grads()
    torch.testing.assert_close(y1, y0)
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-5, atol=1e-7, msg=n)
    model.set_grad_checkpointing(False)
    assert not model.grad_checkpointing
    assert create_model("icolorit-tiny", depth=1, grad_checkpointing=True).grad_checkpointing


def test_state_dict_round_trip_is_strict(tiny):
    sd = tiny.state_dict()
    # Only learned weights travel: the relative position index is computed, not stored.
    assert all("index" not in k for k in sd)
    torch.manual_seed(123)
    other = create_model("icolorit-tiny")
    other.load_state_dict(sd, strict=True)
    L, ab, mask = _inputs(48, 80)
    tiny.eval()
    other.eval()
    with torch.no_grad():
        assert torch.equal(tiny(L, ab, mask), other(L, ab, mask))
    # The table size belongs to the weights: a model built for another img_size refuses them.
    with pytest.raises(RuntimeError, match="rel_bias_table"):
        create_model("icolorit-tiny", img_size=128).load_state_dict(sd, strict=True)


def test_bf16_autocast_and_channels_last(tiny):
    # The pipeline's bf16 path: weights converted to channels_last in place, NHWC input, CPU autocast.
    torch.manual_seed(0)
    model = create_model("icolorit-tiny").eval()
    L, ab, mask = _inputs(80, 112)
    with torch.no_grad():
        ref = model(L, ab, mask)
        model.to(memory_format=torch.channels_last)
        same = model(L.contiguous(memory_format=torch.channels_last), ab, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(L.contiguous(memory_format=torch.channels_last), ab, mask)
            no_hints = model(L.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(same, ref, rtol=1e-4, atol=1e-5)
    assert low.shape == ref.shape == no_hints.shape and torch.isfinite(low.float()).all()
    # Relative: the untrained output is small, so an absolute bound would pass even unrelated numbers.
    assert (low.float() - ref).norm() / ref.norm() < 0.05


def test_patch_embed_is_a_strided_conv_and_survives_bf16():
    torch.manual_seed(0)
    embed = PatchEmbed(4, 32, 16)
    x = torch.randn(2, 4, 48, 80)
    tokens, grid = embed(x)
    assert grid == (3, 5) and tokens.shape == (2, 15, 32)
    conv = F.conv2d(x, embed.proj.weight.view(32, 4, 16, 16), embed.proj.bias, stride=16)  # (2, 32, 3, 5)
    torch.testing.assert_close(tokens, conv.flatten(2).transpose(1, 2), rtol=1e-4, atol=1e-5)
    # The reason it is not a Conv2d: oneDNN's bf16 conv of this shape returned unrelated numbers (torch 2.13).
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = embed(x)
    assert (low.float() - tokens).norm() / tokens.norm() < 0.01
    with pytest.raises(ValueError, match="multiple of the patch size"):
        embed(x[..., :40])


# ----------------------------------------------------------------------------- issue 13: hints that obey


def test_patch_embedding_sees_L_then_hint_a_then_hint_b_then_the_mask(tiny):
    """The model's four input channels, in the order the weights were trained with."""
    L, ab, mask = _inputs(32, 48)
    seen = {}
    handle = tiny.patch_embed.register_forward_hook(lambda m, inp, out: seen.__setitem__("x", inp[0]))
    try:
        with torch.no_grad():
            tiny.eval()(L, ab, mask)
    finally:
        handle.remove()
    x = seen["x"][..., :32, :48]  # the model pads to a multiple of 16
    for c, want in enumerate((L, ab[:, :1], ab[:, 1:], mask)):
        assert torch.equal(x[:, c : c + 1], want), f"channel {c}"


def _slopes(model, L, ab, hint_ab, mask):
    """Least-squares slope of the output's a and b on the hint's a and b, over the hinted pixels."""
    with torch.no_grad():
        out = model(L, hint_ab, mask)
    sel = mask[:, 0] > 0
    slopes = []
    for c in (0, 1):
        req, got = hint_ab[:, c][sel], out[:, c][sel]
        req, got = req - req.mean(), got - got.mean()
        slopes.append(float((req * got).sum() / (req * req).sum()))
    return slopes


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-channels-last"])
def test_a_tiny_icolorit_learns_to_follow_both_hint_channels(bf16):
    """The training path can learn a hint's a as well as its b: photos whose colour L cannot tell (a random
    flat colour per 8 x 8 block, L noise), true-colour hints as in training, L1. The bundled model's a-blindness
    (issue 13) is therefore not built into the architecture, the hint sampler or bf16 training."""
    from polychrome.color.hints import sample_hints

    torch.manual_seed(0)
    model = IColoriT(dim=48, depth=2, heads=2, patch=8, img_size=32)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)

    def batch(n):
        ab = F.interpolate((torch.rand(n, 2, 4, 4, generator=g) * 2 - 1) * 0.4, scale_factor=8, mode="nearest")
        return torch.rand(n, 1, 32, 32, generator=g) * 2 - 1, ab

    cl = (lambda t: t.contiguous(memory_format=torch.channels_last)) if bf16 else (lambda t: t)
    for _ in range(120):
        L, ab = batch(16)
        hint_ab, mask = sample_hints(ab, 12, 2, g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model(cl(L), cl(hint_ab), cl(mask))
        loss = (pred.float() - ab).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    L, ab = batch(64)
    hint_ab, mask = sample_hints(ab, 12, 2, g)
    slope_a, slope_b = _slopes(model.eval(), L, ab, hint_ab, mask)
    assert slope_a > 0.8 and slope_b > 0.8, (slope_a, slope_b)
