"""The critic of the cicgan family: a 70x70 PatchGAN (pix2pix, Isola et al. 2017) at three scales.

Each scale is the pix2pix ``n_layers=3`` discriminator: four 4x4 convolutions (strides 2, 2, 2, 1;
widths base, 2*base, 4*base, 8*base) with LeakyReLU(0.2), then a 4x4 stride-1 conv to one logit per
patch; each logit sees a 70x70 pixel patch of its input. The multi-scale version (pix2pixHD, Wang et
al. 2018) runs the same architecture, with its own weights, on the input average-pooled 1, 2 and 4
times, so the coarser critics judge colour consistency over 140 and 280 pixel regions.

Every convolution is spectrally normalised (Miyato et al. 2018) and there are no normalisation
layers: spectral norm bounds each layer's Lipschitz constant, which is what keeps a hinge-loss critic
(losses.hinge_d_loss) from overpowering the generator, and per-image patch scores stay independent of
batch-mates. It is not a colouriser, so it is not in the model registry (whose models map L to ab).

Input: ``torch.cat([L_net, ab_net], 1)``, (B, 3, H, W) in network units (color/lab.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

#: The receptive field, in input pixels, of one base-scale patch logit (tested from the layer list).
PATCH_SIZE = 70


def _sn_conv(cin: int, cout: int, stride: int) -> nn.Conv2d:
    return spectral_norm(nn.Conv2d(cin, cout, 4, stride=stride, padding=1))


class PatchDiscriminator(nn.Module):
    """One scale: (B, in_channels, H, W) -> patch logits (B, 1, ~H/8 - 2, ~W/8 - 2).

    ``forward(x, return_features=True)`` returns (logits, [the 4 LeakyReLU outputs]) for feature matching.
    """

    def __init__(self, in_channels: int = 3, base: int = 64):
        super().__init__()
        widths = (base, 2 * base, 4 * base, 8 * base)
        strides = (2, 2, 2, 1)
        self.blocks = nn.ModuleList()
        cin = in_channels
        for w, s in zip(widths, strides):
            self.blocks.append(nn.Sequential(_sn_conv(cin, w, s), nn.LeakyReLU(0.2, inplace=True)))
            cin = w
        self.out = _sn_conv(cin, 1, 1)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        logits = self.out(x)
        return (logits, feats) if return_features else logits


class MultiScalePatchGAN(nn.Module):
    """``num_scales`` PatchDiscriminators on the input downsampled 2x between scales.

    forward(x): x (B, in_channels, H, W) float -> list of per-scale patch logits [(B, 1, h_s, w_s)].
    ``return_features=True`` -> (logits list, per-scale lists of the 4 intermediate feature maps).
    Each side must be at least ``min_size`` = 24 * 2**(num_scales - 1) pixels (96 for three scales): the
    coarsest critic needs 24 pixels for one patch logit.
    """

    def __init__(self, in_channels: int = 3, base: int = 64, num_scales: int = 3):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, base) for _ in range(num_scales))
        self.min_size = 24 * 2 ** (num_scales - 1)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"a {len(self.scales)}-scale PatchGAN needs inputs of at least {self.min_size} px a side, "
                             f"got {tuple(x.shape[-2:])}")
        logits, feats = [], []
        for i, disc in enumerate(self.scales):
            if i:
                # pix2pixHD's downsampling: the border average ignores the padding, so edges keep their colour.
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out = disc(x, return_features=return_features)
            if return_features:
                logits.append(out[0])
                feats.append(out[1])
            else:
                logits.append(out)
        return (logits, feats) if return_features else logits


def receptive_field(layers: list[nn.Conv2d]) -> int:
    """Receptive field in input pixels of one output of a chain of convolutions (no dilation).

    rf = 1 + sum_i (k_i - 1) * prod_{j < i} s_j: each layer widens the field by (k - 1) of its input's
    pixels, and an input pixel of layer i spans the product of the earlier strides."""
    rf, jump = 1, 1
    for conv in layers:
        rf += (conv.kernel_size[0] - 1) * jump
        jump *= conv.stride[0]
    return rf


def patchgan(base: int = 64, num_scales: int = 3, in_channels: int = 3) -> MultiScalePatchGAN:
    """The default critic: three scales of the 70x70 PatchGAN, base width 64 (2.8M parameters per scale)."""
    return MultiScalePatchGAN(in_channels, base, num_scales)
