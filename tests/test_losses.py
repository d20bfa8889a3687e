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
from polychrome.color.quantize import rebalance_weights, soft_encode
from polychrome.losses import (
    ColorizationLoss,
    Lite0Features,
    VGG16Features,
    ab_loss,
    class_loss,
    confidence_loss,
    confidence_target,
    diversity_loss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    histogram_loss,
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


# --------------------------------------------------------------------------- classification (cicgan) losses
def _class_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    bins = torch.randn(9, 2, generator=g) * 40
    logits = torch.randn(2, 9, 3, 4, generator=g, requires_grad=True)
    target = soft_encode(torch.randn(2, 2, 3, 4, generator=g) * 30, bins, k=3)
    return bins, logits, target


def test_class_loss_gamma_zero_is_cross_entropy():
    _, logits, target = _class_case()
    ref = torch.nn.functional.cross_entropy(logits, target)  # soft-target CE, mean over pixels
    torch.testing.assert_close(class_loss(logits, target), ref)
    torch.testing.assert_close(class_loss(logits, target, gamma=0.0), ref)


def test_focal_loss_down_weights_easy_pixels():
    _, logits, target = _class_case()
    ce, focal = class_loss(logits, target), class_loss(logits, target, gamma=2.0)
    assert 0 < focal < ce
    # A hard one-hot, correctly predicted pixel: focal ~ 0 while CE is small but not tiny.
    onehot = torch.zeros(1, 3, 1, 1)
    onehot[0, 1] = 1
    confident = torch.tensor([0.0, 3.0, 0.0]).view(1, 3, 1, 1)
    assert class_loss(confident, onehot, gamma=2.0) < 0.01 * class_loss(confident, onehot)
    with pytest.raises(ValueError, match="gamma"):
        class_loss(logits, target, gamma=-1)


def test_class_loss_rebalancing_uses_the_true_bin_weight():
    _, logits, target = _class_case()
    w = torch.arange(1.0, 10.0)
    per_pixel = -(target * torch.log_softmax(logits, 1)).sum(1)
    expected = (per_pixel * w[target.argmax(1)]).mean()
    torch.testing.assert_close(class_loss(logits, target, class_weights=w), expected)
    # Uniform prior -> weights all 1 -> the plain loss.
    flat = rebalance_weights(torch.full((9,), 1 / 9))
    torch.testing.assert_close(class_loss(logits, target, class_weights=flat), class_loss(logits, target))
    class_loss(logits, target, class_weights=w, gamma=1.0).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_histogram_loss():
    a = torch.zeros(1, 8)
    a[0, 2] = 1
    b, c = torch.zeros(1, 8), torch.zeros(1, 8)
    b[0, 3], c[0, 7] = 1, 1
    # EMD in bin units: one bin off costs 1, five bins off cost 5; KL cannot tell them apart.
    assert histogram_loss(b, a).item() == pytest.approx(1.0)
    assert histogram_loss(c, a).item() == pytest.approx(5.0)
    assert histogram_loss(a, a).item() == 0
    kl_b, kl_c = histogram_loss(b, a, kind="kl"), histogram_loss(c, a, kind="kl")
    assert kl_b == kl_c
    logits = torch.zeros(2, 8, requires_grad=True)
    histogram_loss(torch.softmax(logits, 1), torch.cat([a, b])).backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="histogram loss"):
        histogram_loss(a, a, kind="l2")


def test_confidence_loss_learns_where_colour_is_wrong():
    true = torch.zeros(1, 2, 1, 2)
    pred = true.clone()
    pred[0, 0, 0, 1] = 30.0  # pixel 1 is three bins off
    t = confidence_target(pred, true)
    assert t[0, 0, 0, 0] == 1 and t[0, 0, 0, 1] == pytest.approx(math.exp(-3))
    # Gradient descent on the logit alone reaches the target; the colour gets no gradient from this loss.
    logit = torch.zeros(1, 1, 1, 2, requires_grad=True)
    pred.requires_grad_(True)
    opt = torch.optim.SGD([logit], lr=5.0)
    for _ in range(300):
        opt.zero_grad()
        loss = confidence_loss(logit, pred, true)
        loss.backward()
        opt.step()
    assert pred.grad is None
    conf = torch.sigmoid(logit).detach()[0, 0, 0]
    assert conf[0] > 0.95 and conf[1] == pytest.approx(math.exp(-3), abs=0.01)


def test_hinge_losses_and_feature_matching():
    real = [torch.tensor([[2.0, 0.5]]), torch.tensor([[1.0]])]
    fake = [torch.tensor([[-2.0, 0.0]]), torch.tensor([[-0.5]])]
    # Scale 0: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; relu(1-2)=0, relu(1+0)=1 -> 0.5. Scale 1: 0 + 0.5.
    assert hinge_d_loss(real, fake).item() == pytest.approx(((0.25 + 0.5) + (0 + 0.5)) / 2)
    assert hinge_g_loss(fake).item() == pytest.approx((1.0 + 0.5) / 2)
    rf = [[torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]]
    ff = [[torch.zeros(1, 2, 2, 2, requires_grad=True), torch.full((1, 1, 1, 1), 3.0, requires_grad=True)]]
    loss = feature_matching_loss(rf, ff)
    assert loss.item() == pytest.approx((1.0 + 3.0) / 2)
    loss.backward()
    assert ff[0][0].grad.abs().sum() > 0
