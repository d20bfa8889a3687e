"""losses.py: each ColorizationLoss term on a known case, gradients, the frozen feature networks,
and torchvision-format VGG16 weights loaded strictly from a file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from skimage.color import lab2rgb

from polychrome.color.lab import AB_SCALE, ab_to_net
from polychrome.losses import (
    ColorizationLoss,
    Lite0Features,
    VGG16Features,
    ab_loss,
    diversity_loss,
    load_vgg16_features,
    vgg16_features_state,
)


class Echo(nn.Module):
    """A stand-in feature network: the image itself and twice the image, so the perceptual term is
    1.5 x the RGB L1 by construction."""

    def forward(self, rgb):
        return [rgb, 2 * rgb]


def _constant(L: float, a: float, b: float, h: int = 6, w: int = 10, batch: int = 2):
    """(L (B,1,H,W) real units, ab (B,2,H,W) network units) of one flat colour."""
    Lt = torch.full((batch, 1, h, w), L)
    ab = ab_to_net(torch.tensor([a, b]).view(1, 2, 1, 1).expand(batch, 2, h, w).clone())
    return Lt, ab


def _lab2rgb(L, a, b) -> np.ndarray:
    return lab2rgb(np.array([[[L, a, b]]], dtype=np.float64))[0, 0]


# ----------------------------------------------------------------------------- values on known cases


def test_identical_prediction_zeroes_rgb_perceptual_and_ab():
    torch.manual_seed(0)
    L = torch.rand(2, 1, 24, 32) * 80 + 10
    ab = (torch.rand(2, 2, 24, 32) - 0.5) * 0.6
    loss = ColorizationLoss(feature_net=Lite0Features(pretrained=False))
    total, terms = loss(ab.clone(), ab, L)
    assert set(terms) == {"rgb", "perceptual", "ab", "diversity"}
    assert terms["rgb"] == 0 and terms["perceptual"] == 0 and terms["ab"] == 0
    torch.testing.assert_close(total, 0.1 * diversity_loss(ab))  # only the diversity term is left


def test_constant_offset_rgb_l1_and_ab_smooth_l1_by_hand():
    L, true = _constant(60.0, 10.0, -20.0)
    offset = 6.4  # CIE units = 0.05 in network units, below beta = 0.1: the quadratic branch
    pred = true + offset / AB_SCALE
    loss = ColorizationLoss(perceptual_weight=0, diversity_weight=0)
    total, terms = loss(pred, true, L)
    assert terms["ab"].item() == pytest.approx(0.5 * 0.05**2 / 0.1, rel=1e-5)  # 0.0125
    # Every pixel is one sRGB colour pair, so the L1 is the mean over the 3 channels of their difference.
    expected_rgb = np.abs(_lab2rgb(60, 10 + offset, -20 + offset) - _lab2rgb(60, 10, -20)).mean()
    assert terms["rgb"].item() == pytest.approx(expected_rgb, abs=2e-5)
    assert total.item() == pytest.approx(0.5 * expected_rgb + 2.0 * 0.0125, abs=2e-5)
    # Above beta the linear branch: |d| - beta / 2 = 0.3 - 0.05.
    _, terms = loss(true + torch.tensor([0.3, -0.3]).view(1, 2, 1, 1), true, L)
    assert terms["ab"].item() == pytest.approx(0.25, rel=1e-5)


def test_diversity_on_constant_and_on_a_checkerboard():
    _, flat = _constant(50.0, 30.0, -5.0)
    assert diversity_loss(flat).item() == pytest.approx(-math.log(1e-6), rel=1e-6)  # 13.8155
    # a alternates +-0.2 (variance 0.04 in every image), b stays flat (variance 0).
    board = torch.zeros(3, 2, 8, 8)
    board[:, 0] = 0.2 * (torch.arange(8).view(8, 1) + torch.arange(8)).remainder(2).mul(2).sub(1)
    expected = (-math.log(0.04 + 1e-6) - math.log(1e-6)) / 2
    assert diversity_loss(board).item() == pytest.approx(expected, rel=1e-5)
    # Per image: two photos in different flat colours are still flat, whatever the batch's spread.
    two_tints = torch.cat([torch.full((1, 2, 8, 8), -0.5), torch.full((1, 2, 8, 8), 0.5)])
    assert diversity_loss(two_tints).item() == pytest.approx(-math.log(1e-6), rel=1e-6)


def test_perceptual_term_is_the_mean_feature_l1():
    L, true = _constant(60.0, 10.0, -20.0)
    pred = true + 0.05
    terms = ColorizationLoss(rgb_weight=0.5, ab_weight=0, diversity_weight=0, feature_net=Echo())(pred, true, L)[1]
    assert terms["perceptual"].item() == pytest.approx(1.5 * terms["rgb"].item(), rel=1e-6)


def test_weights_scale_the_total_and_zero_weights_are_not_computed():
    torch.manual_seed(0)
    L = torch.rand(1, 1, 16, 16) * 100
    pred, true = (torch.rand(2, 1, 2, 16, 16) - 0.5).unbind(0)
    base_total, base = ColorizationLoss(feature_net=Echo())(pred, true, L)
    total, terms = ColorizationLoss(3.0, 0.5, 1.0, 0.2, feature_net=Echo())(pred, true, L)
    for k in base:
        torch.testing.assert_close(terms[k], base[k])
    expected = 3.0 * base["rgb"] + 0.5 * base["perceptual"] + 1.0 * base["ab"] + 0.2 * base["diversity"]
    torch.testing.assert_close(total.detach(), expected)
    assert base_total.item() == pytest.approx(
        (0.5 * base["rgb"] + base["perceptual"] + 2 * base["ab"] + 0.1 * base["diversity"]).item(), rel=1e-6
    )
    only_ab = ColorizationLoss(rgb_weight=0, perceptual_weight=0, diversity_weight=0)
    assert only_ab.feature_net is None  # no network is built (nor the wheel read) for a zero weight
    assert set(only_ab(pred, true, L)[1]) == {"ab"}
    assert only_ab(pred, true, L)[1]["ab"] == ab_loss(pred, true, "smooth_l1", 0.1)


@pytest.mark.parametrize("bad", [{"rgb_weight": -1.0}, {"ab_weight": float("nan")}, {"diversity_weight": "x"}])
def test_bad_weights_are_rejected(bad):
    with pytest.raises(ValueError, match="weight must be a finite number"):
        ColorizationLoss(perceptual_weight=0, **bad)


def test_all_zero_weights_are_rejected():
    with pytest.raises(ValueError, match="every ColorizationLoss weight is 0"):
        ColorizationLoss(0, 0, 0, 0)


# ----------------------------------------------------------------------------- gradients, frozen nets


@pytest.mark.parametrize("term", ["rgb", "perceptual", "ab", "diversity"])
def test_each_term_sends_a_gradient_to_the_prediction(term):
    torch.manual_seed(0)
    L = torch.rand(2, 1, 32, 32) * 60 + 20
    true = (torch.rand(2, 2, 32, 32) - 0.5) * 0.4
    pred = ((torch.rand(2, 2, 32, 32) - 0.5) * 0.4).requires_grad_()
    weights = {f"{t}_weight": float(t == term) for t in ColorizationLoss.TERMS}
    loss = ColorizationLoss(**weights, feature_net=Lite0Features() if term == "perceptual" else None)
    total, terms = loss(pred, true, L)
    assert list(terms) == [term] and total.requires_grad and not terms[term].requires_grad
    total.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    if loss.feature_net is not None:
        assert all(p.grad is None and not p.requires_grad for p in loss.feature_net.parameters())


def test_feature_net_stays_frozen_in_eval_mode_while_training():
    net = Lite0Features()  # the real ImageNet weights
    loss = ColorizationLoss(feature_net=net).train()
    assert loss.training and not net.training
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(0)
    L = torch.rand(2, 1, 32, 32) * 100
    pred = (torch.rand(2, 2, 32, 32) - 0.5).requires_grad_()
    loss(pred, torch.zeros(2, 2, 32, 32), L)[0].backward()
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm running statistics untouched
    assert len(Lite0Features.TAPS) == 4 and len(net.net.stages) == 5  # stages 5 and 6 are not kept


# ----------------------------------------------------------------------------- VGG16 from a file


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A randomly initialised VGG16 saved the way torchvision's vgg16().state_dict() is keyed."""
    torch.manual_seed(0)
    net = VGG16Features()
    state = dict(net.state_dict())
    # torchvision's file also holds the classifier; tiny stand-ins keep the file small.
    state.update({"classifier.0.weight": torch.zeros(2, 2), "classifier.0.bias": torch.zeros(2)})
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(state, path)
    return path, net


def test_vgg16_keys_match_torchvision_layout():
    keys = [k for k in VGG16Features().state_dict()]
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # where torchvision's vgg16().features has convs
    assert keys == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]


def test_vgg16_file_loads_strictly_and_gives_four_feature_maps(vgg_file):
    path, ref = vgg_file
    net = load_vgg16_features(path)
    for k, v in ref.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        feats = net(torch.rand(1, 3, 32, 48))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 48), (128, 16, 24), (256, 8, 12), (512, 4, 6)]
    assert all((f >= 0).all() for f in feats)  # post-ReLU
    L, true = _constant(60.0, 10.0, -20.0, h=32, w=32)
    total, terms = ColorizationLoss(feature_net=net)(true + 0.1, true, L)
    assert terms["perceptual"] > 0 and torch.isfinite(total)


def test_vgg16_file_errors_are_one_line(vgg_file, tmp_path):
    path, _ = vgg_file
    state = torch.load(path, weights_only=True)

    def write(name, obj):
        torch.save(obj, tmp_path / name)
        return tmp_path / name

    missing = {k: v for k, v in state.items() if k != "features.28.bias"}
    extra = {**state, "features.31.weight": torch.zeros(1)}
    wrapped = {f"module.{k}": v for k, v in state.items()}
    shape = {**state, "features.0.weight": torch.zeros(64, 1, 3, 3)}
    cases = [
        (write("missing.pth", missing), "features.28.bias"),
        (write("extra.pth", extra), "features.31.weight"),
        (write("wrapped.pth", wrapped), "module.features.0.weight"),
        (write("shape.pth", shape), "features.0.weight"),
        (write("pickled.pth", {"net": Echo()}), "weights-only"),
    ]
    for bad, needle in cases:
        with pytest.raises(ValueError) as info:
            load_vgg16_features(bad)
        msg = str(info.value)
        assert str(bad) in msg and needle in msg and "\n" not in msg, msg
    with pytest.raises(FileNotFoundError, match="no such VGG16 weight file"):
        load_vgg16_features(tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        vgg16_features_state({"features.0.weight": 3})
