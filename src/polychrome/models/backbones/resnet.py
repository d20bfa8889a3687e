"""A ResNet-18/34 encoder for one-channel lightness input, with GroupNorm, and torchvision weight loading.

torchvision does not import here, so the network is written out; its module names follow
torchvision's (``conv1``, ``layer1.0.conv1``, ``downsample.0``) so foreign weights map by a few renames
(:func:`remap_torchvision_resnet`). Two deliberate differences from torchvision's ResNet:

- the stem takes 1 channel (L in network units) instead of RGB;
- every BatchNorm is a GroupNorm (``gn1``/``gn2``, ``downsample.1``): statistics per image, so small
  CPU batches train well and a photo's output does not depend on its batch-mates.

Loading ImageNet weights (:func:`load_torchvision_resnet34`) keeps each BatchNorm's affine weight and
bias for the GroupNorm and drops its running statistics (GroupNorm computes its own); this is an
approximation - the pretrained filters are a good start, not an exact ImageNet network.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence

import torch
from torch import nn

from polychrome.layers.norm import group_norm

#: Blocks per stage of the standard variants.
RESNET18_LAYERS = (2, 2, 2, 2)
RESNET34_LAYERS = (3, 4, 6, 3)
RESNET_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual shortcut (torchvision's BasicBlock, GroupNorm for BatchNorm)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.gn1 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.gn2 = group_norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), group_norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.gn1(self.conv1(x)))
        out = self.gn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """ResNet feature pyramid from lightness.

    forward(L_net): (B, 1, H, W) float, L in network units, H and W multiples of 32.
    Returns the list of 5 feature maps [stem (/2), layer1 (/4), layer2 (/8), layer3 (/16), layer4 (/32)]
    with channels ``self.channels`` = (stem_width, *widths).
    """

    def __init__(self, layers: Sequence[int] = RESNET34_LAYERS, widths: Sequence[int] = RESNET_WIDTHS,
                 stem_width: int | None = None):
        super().__init__()
        stem_width = stem_width or widths[0]
        self.conv1 = nn.Conv2d(1, stem_width, 7, stride=2, padding=3, bias=False)
        self.gn1 = group_norm(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = stem_width
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = [BasicBlock(cin if j == 0 else w, w, stride=(1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = w
        self.channels = (stem_width, *widths)

    def forward(self, L_net: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.gn1(self.conv1(L_net)))
        feats = [x]
        x = self.maxpool(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats


def remap_torchvision_resnet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn a torchvision ResNet state dict into a :class:`ResNetEncoder` one.

    - ``conv1.weight`` (C, 3, 7, 7) -> (C, 1, 7, 7), the RGB filters summed: a grey photo has R = G = B,
      so the summed filter gives the RGB filter's response to it.
    - ``bn1`` / ``layerN.M.bnK`` -> ``gn1`` / ``layerN.M.gnK``; ``downsample.1`` keeps its name. Only
      ``weight`` and ``bias`` are kept; ``running_mean``, ``running_var`` and ``num_batches_tracked``
      have no GroupNorm counterpart and are dropped.
    - ``fc.*`` (the ImageNet classifier) is dropped.
    Any other key is passed through unchanged, so a strict load then reports what does not fit.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        parts = key.split(".")
        if parts[-1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue
        if key == "conv1.weight":
            if value.dim() != 4 or value.shape[1] != 3:
                raise ValueError(f"conv1.weight should be (C, 3, 7, 7) RGB filters, got {tuple(value.shape)}")
            value = value.sum(dim=1, keepdim=True)  # (C, 3, k, k) -> (C, 1, k, k)
        parts = [("gn" + p[2:]) if p in ("bn1", "bn2") else p for p in parts]
        out[".".join(parts)] = value
    return out


def load_torchvision_resnet34(path: str | os.PathLike, encoder: ResNetEncoder | None = None) -> ResNetEncoder:
    """Load torchvision-format ResNet34 weights (e.g. resnet34-b627a593.pth) into an encoder, strictly.

    The file is read with ``torch.load(weights_only=True)``: a plain state dict, never arbitrary pickled
    objects. ``encoder`` defaults to a new ResNet34 one. Raises ValueError for an unreadable file or a
    state dict that does not fit (the strict load's message names the keys).
    """
    encoder = encoder or ResNetEncoder()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:  # pickles with objects, truncated or foreign files
        raise ValueError(f"{path}: not a readable weights-only state dict ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")  # noqa: TRY004 (bad file, not bad argument)
    try:
        encoder.load_state_dict(remap_torchvision_resnet(state), strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: does not fit a ResNet34 encoder: {e}") from None
    return encoder
