"""models/patchgan: the 70-pixel receptive field (from the layer list and from gradients), three scales,
features for matching, spectral normalisation, gradients, and the GAN losses on its outputs."""

from __future__ import annotations

import torch
from torch import nn

from polychrome.losses import feature_matching_loss, hinge_d_loss, hinge_g_loss
from polychrome.models.patchgan import PATCH_SIZE, MultiScalePatchGAN, patchgan, receptive_field


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_receptive_field_is_70_from_the_layer_list():
    d = patchgan()
    convs = _convs(d.scales[0])
    assert [(c.kernel_size[0], c.stride[0]) for c in convs] == [(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)]
    assert receptive_field(convs) == PATCH_SIZE == 70
    assert receptive_field([nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)]) == 5  # textbook case


def test_receptive_field_is_70_from_gradients():
    torch.manual_seed(0)
    disc = MultiScalePatchGAN(base=8, num_scales=1).scales[0]
    x = torch.randn(1, 3, 160, 160, requires_grad=True)
    logits = disc(x)
    h, w = logits.shape[-2:]
    logits[0, 0, h // 2, w // 2].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_three_scales_shapes_and_features():
    torch.manual_seed(0)
    d = patchgan(base=8).eval()  # in training mode each forward advances spectral norm's power iteration
    x = torch.randn(2, 3, 96, 128)
    logits = d(x)
    assert [tuple(t.shape) for t in logits] == [(2, 1, 10, 14), (2, 1, 4, 6), (2, 1, 1, 2)]
    logits2, feats = d(x, return_features=True)
    assert all(torch.equal(a, b) for a, b in zip(logits, logits2))
    assert len(feats) == 3 and all(len(f) == 4 for f in feats)
    assert [tuple(f.shape) for f in feats[0]] == [(2, 8, 48, 64), (2, 16, 24, 32), (2, 32, 12, 16), (2, 64, 11, 15)]


def test_too_small_input_is_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match="at least 96 px"):
        patchgan(base=8)(torch.randn(1, 3, 95, 200))


def test_spectral_norm_bounds_every_layer():
    torch.manual_seed(0)
    d = patchgan(base=8).train()
    x = torch.randn(1, 3, 96, 96)
    for _ in range(30):  # the power iteration advances once per training forward
        d(x)
    d.eval()
    for conv in _convs(d):
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert abs(sigma.item() - 1) < 0.05


def test_gradients_and_gan_losses():
    torch.manual_seed(0)
    d = patchgan(base=8)
    real = torch.randn(2, 3, 96, 96)
    fake = torch.randn(2, 3, 96, 96, requires_grad=True)
    r_logits, r_feats = d(real, return_features=True)
    f_logits, f_feats = d(fake, return_features=True)
    d_loss = hinge_d_loss(r_logits, [f.detach() for f in f_logits])
    d_loss.backward()
    for n, p in d.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n
    assert fake.grad is None  # the critic's loss never reaches the generator
    g_loss = hinge_g_loss(f_logits) + 10 * feature_matching_loss(r_feats, f_feats)
    g_loss.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
