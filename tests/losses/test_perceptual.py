"""losses/perceptual: the frozen feature networks, and torchvision-format VGG16 weights loaded strictly from a
file."""

from __future__ import annotations

import pytest
import torch
from _helpers import EchoFeatures, flat_lab

from polychrome.losses import ColorizationLoss, Lite0Features, VGG16Features, load_vgg16_features, vgg16_features_state


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
    L, true = flat_lab(60.0, 10.0, -20.0, h=32, w=32)
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
        (write("pickled.pth", {"net": EchoFeatures()}), "weights-only"),
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
