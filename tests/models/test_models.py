"""Every registered architecture: tiny forward/backward, shapes, ranges, gradients; registry behaviour."""

from __future__ import annotations

import pytest
import torch

import polychrome
from polychrome.color.lab import AB_SCALE, ab_to_net, l_to_net, rgb_to_lab
from polychrome.models import UNetColorizer, create_model, list_models, register_model

# Heights and widths that are not multiples of 16 (the deepest UNet's stride), plus an exact one.
SHAPES = [(32, 48), (40, 56), (37, 29)]


def _input(h: int, w: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """L in network units: a ramp plus noise, within [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-1, 1, w).expand(batch, 1, h, w)
    return (0.7 * ramp + 0.3 * torch.randn(batch, 1, h, w, generator=g)).clamp(-1, 1)


def _first_param(model: torch.nn.Module) -> tuple[str, torch.nn.Parameter]:
    """The first parameter in registration order: the stem, i.e. the layer furthest from the loss."""
    return next(iter(model.named_parameters()))


def test_registry_lists_models():
    names = list_models()
    assert names == sorted(names) and len(names) == len(set(names))
    assert {"simple-unet", "unet-32", "unet-64"} <= set(names)
    assert polychrome.list_models() == names


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name)
    assert model.registry_name == name
    n_params = sum(p.numel() for p in model.parameters())
    # Big variants share their code with the small ones; one odd shape keeps them to a few seconds.
    shapes = SHAPES if n_params < 10_000_000 else SHAPES[1:2]
    model.train()
    for h, w in shapes:
        model.zero_grad(set_to_none=True)
        x = _input(h, w)
        y = model(x)
        assert y.shape == (2, 2, h, w), (name, h, w)
        assert y.dtype == torch.float32
        assert torch.isfinite(y).all()
        assert y.abs().max() < 1  # ab in network units, strictly inside (-1, 1)
        target = ab_to_net(rgb_to_lab(torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(1)))[:, 1:])
        loss = (y - target).abs().mean()
        loss.backward()
        pname, first = _first_param(model)
        assert first.grad is not None and first.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"
        for n, p in model.named_parameters():
            # An unused parameter would also break DDP (it waits for a gradient that never comes).
            assert p.grad is not None, f"{name}: {n} gets no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {n}"

    # Eval mode: deterministic, and an image's output does not depend on its batch-mates.
    model.eval()
    x = _input(20, 28, batch=3)
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(single, a[1:2], rtol=1e-4, atol=1e-5)


def test_rgb_head_returns_ab_in_network_units():
    torch.manual_seed(0)
    model = create_model("simple-unet", head="rgb")
    assert model.head.out_channels == 3  # the head predicts sRGB ...
    x = _input(40, 56)
    y = model(x)
    assert y.shape == (2, 2, 40, 56)  # ... and the model still returns ab / AB_SCALE
    assert torch.isfinite(y).all() and y.abs().max() < 1
    # It is the ab of an sRGB colour: a sigmoid colour's |ab| stays below ~110 CIE units.
    assert (y * AB_SCALE).abs().max() < 115
    y.square().mean().backward()
    assert _first_param(model)[1].grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # Under bf16 autocast (the CPU training default) the colour conversion stays in fp32.
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z = model.eval()(x)
    assert z.dtype == torch.float32 and z.shape == (2, 2, 40, 56)


def test_rgb_head_trains_with_the_ab_loss():
    from polychrome.losses import ab_loss

    torch.manual_seed(0)
    model = create_model("simple-unet", head="rgb")
    rgb = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    lab = rgb_to_lab(rgb)
    loss = ab_loss(model(l_to_net(lab[:, :1])), ab_to_net(lab[:, 1:]))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()


def test_bad_head_is_rejected():
    with pytest.raises(ValueError, match="head must be 'ab' or 'rgb'"):
        create_model("simple-unet", head="lab")


@pytest.mark.parametrize("hw", [(1, 1), (5, 7), (8, 8), (3, 100)])
def test_tiny_and_thin_inputs(hw):
    # Smaller than the padding multiple: a 3 px high strip is what a panorama becomes at working size.
    model = create_model("unet-32").eval()
    with torch.no_grad():
        y = model(_input(*hw, batch=1))
    assert y.shape == (1, 2, *hw) and torch.isfinite(y).all()


def test_channels_last_and_bf16_match_shape():
    torch.manual_seed(0)
    model = create_model("simple-unet").to(memory_format=torch.channels_last).eval()
    x = _input(40, 56).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == ref.shape
    assert (low.float() - ref).abs().max() < 0.05


def test_create_model_unknown_name_lists_names():
    with pytest.raises(KeyError) as info:
        create_model("unet-7")
    msg = str(info.value)
    assert "unet-7" in msg
    for name in list_models():
        assert name in msg


def test_create_model_kwargs_are_recorded():
    model = create_model("unet-32", depth=2)
    assert isinstance(model, UNetColorizer) and model.depth == 2
    assert model.registry_kwargs == {"depth": 2}
    assert create_model("unet-32").registry_kwargs == {}


def test_register_twice_is_an_error():
    def simple_unet(**kw):  # same name as a registered variant
        return UNetColorizer(**kw)

    with pytest.raises(ValueError, match="registered twice"):
        register_model(simple_unet)


def test_no_forward_pass_or_io_in_init(monkeypatch):
    # Building must not run the network (DESIGN: no forward pass in __init__).
    calls = []
    monkeypatch.setattr(UNetColorizer, "forward", lambda self, x: calls.append(x))
    create_model("simple-unet")
    assert calls == []
