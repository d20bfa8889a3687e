"""models/backbones/resnet: the encoder's pyramid, and torchvision-format ResNet34 weights through the named remap."""

from __future__ import annotations

import pickle

import pytest
import torch

from polychrome.models.backbones.resnet import (
    RESNET34_LAYERS,
    ResNetEncoder,
    load_torchvision_resnet34,
    remap_torchvision_resnet,
)

#: torchvision.models.resnet34().parameters() count, classifier included (a published reference figure).
TORCHVISION_RESNET34_PARAMS = 21_797_672


def torchvision_resnet34_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict laid out exactly like torchvision's resnet34 (names, shapes, BN buffers, fc)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, c: int) -> None:
        state[f"{prefix}.weight"] = torch.rand(c, generator=g) + 0.5
        state[f"{prefix}.bias"] = torch.randn(c, generator=g)
        state[f"{prefix}.running_mean"] = torch.randn(c, generator=g)
        state[f"{prefix}.running_var"] = torch.rand(c, generator=g) + 0.5
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(100)

    state["conv1.weight"] = torch.randn(64, 3, 7, 7, generator=g)
    bn("bn1", 64)
    cin = 64
    for i, (n, w) in enumerate(zip(RESNET34_LAYERS, (64, 128, 256, 512))):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            state[f"{p}.conv1.weight"] = torch.randn(w, cin if j == 0 else w, 3, 3, generator=g)
            bn(f"{p}.bn1", w)
            state[f"{p}.conv2.weight"] = torch.randn(w, w, 3, 3, generator=g)
            bn(f"{p}.bn2", w)
            if j == 0 and i > 0:
                state[f"{p}.downsample.0.weight"] = torch.randn(w, cin, 1, 1, generator=g)
                bn(f"{p}.downsample.1", w)
        cin = w
    state["fc.weight"] = torch.randn(1000, 512, generator=g)
    state["fc.bias"] = torch.randn(1000, generator=g)
    return state


def test_fake_state_has_torchvision_size():
    state = torchvision_resnet34_state()
    n = sum(v.numel() for k, v in state.items() if k.rsplit(".", 1)[-1] in ("weight", "bias"))
    assert n == TORCHVISION_RESNET34_PARAMS


def test_encoder_pyramid_shapes_and_gradients():
    torch.manual_seed(0)
    enc = ResNetEncoder(layers=(1, 1, 1, 1), widths=(8, 16, 32, 64))
    x = torch.randn(2, 1, 64, 96)
    feats = enc(x)
    assert [tuple(f.shape) for f in feats] == [
        (2, 8, 32, 48), (2, 8, 16, 24), (2, 16, 8, 12), (2, 32, 4, 6), (2, 64, 2, 3),
    ]
    assert enc.channels == (8, 8, 16, 32, 64)
    sum(f.mean() for f in feats).backward()
    for n, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    assert enc.conv1.weight.grad.abs().sum() > 0


def test_remap_cases():
    state = torchvision_resnet34_state()
    out = remap_torchvision_resnet(state)
    # The stem: RGB filters summed to one channel.
    torch.testing.assert_close(out["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    # BatchNorm -> GroupNorm keeps weight and bias, drops the running statistics.
    assert torch.equal(out["gn1.weight"], state["bn1.weight"]) and torch.equal(out["gn1.bias"], state["bn1.bias"])
    assert torch.equal(out["layer3.2.gn2.bias"], state["layer3.2.bn2.bias"])
    assert torch.equal(out["layer2.0.downsample.1.weight"], state["layer2.0.downsample.1.weight"])
    assert not any(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in out)
    # The ImageNet classifier is dropped; convolutions pass through unchanged.
    assert not any(k.startswith("fc.") for k in out)
    assert out["layer4.2.conv2.weight"] is state["layer4.2.conv2.weight"]
    # Exactly the encoder's keys.
    assert set(out) == set(ResNetEncoder().state_dict())


def test_remap_rejects_a_non_rgb_stem():
    with pytest.raises(ValueError, match="RGB filters"):
        remap_torchvision_resnet({"conv1.weight": torch.zeros(64, 1, 7, 7)})


def test_load_torchvision_resnet34_strictly(tmp_path):
    state = torchvision_resnet34_state()
    torch.save(state, tmp_path / "resnet34.pth")
    enc = load_torchvision_resnet34(tmp_path / "resnet34.pth")
    torch.testing.assert_close(enc.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(enc.layer1[0].gn1.weight, state["layer1.0.bn1.weight"])
    # A missing key is an error naming it (strict), never a silently random layer.
    del state["layer4.2.conv2.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"layer4\.2\.conv2\.weight"):
        load_torchvision_resnet34(tmp_path / "broken.pth")


class _NotWeights:
    pass


def test_load_refuses_pickled_objects_and_junk(tmp_path):
    with open(tmp_path / "obj.pth", "wb") as f:
        pickle.dump({"conv1.weight": _NotWeights()}, f, protocol=2)
    with pytest.raises(ValueError, match="weights-only"):
        load_torchvision_resnet34(tmp_path / "obj.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights-only"):
        load_torchvision_resnet34(tmp_path / "junk.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="expected a state dict"):
        load_torchvision_resnet34(tmp_path / "list.pth")
