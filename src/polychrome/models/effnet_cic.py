"""effnet-cic: the classification colouriser (cicgan's heads and decoder) on the ImageNet-pretrained
EfficientNet-Lite0 encoder.

Per pixel it predicts a distribution over the quantised ab bins (color/quantize.py), trained with
rebalanced cross-entropy on soft-encoded targets and decoded by the annealed mean, plus a bounded
continuous ab residual that undoes the grid's quantisation, a confidence logit and the photo's global
a/b histograms that drive FiLM in every decoder stage: everything of :class:`~polychrome.models.cicgan.Cicgan`
but its encoder. The encoder is EfficientNet-Lite0 (models/backbones/efficientnet.py), tapped at strides 2, 4, 8,
16 and 32 (16, 24, 40, 112, 320 channels), fed the neutral grey sRGB of the photo's lightness, as in
models/effnet_unet.py.

Its strided convolutions pad symmetrically, not like TensorFlow's "SAME" with which the ImageNet weights
were trained: "SAME" puts the odd padding pixel after, never before, at each of the five stride-2 layers,
so the bottom-right border looks different from the top-left one and a dense predictor can tell where
its corners are. effnet-unet's composite loss rewarded one fixed, saturated patch there (a cyan blob in
the top-right corner of every photo). Symmetric padding leaves the four corners alike; the cost on the
encoder's ImageNet accuracy is small (module docstring of models/backbones/efficientnet.py) and training adapts it.

Symmetric padding alone still leaves one edge unlike the others: at an even size a stride-2 convolution's
first window overlaps the top/left zero padding and its last one ends inside the photo, so the top rows
were tinted (a thin cyan band, most visible over skies). The input is therefore reflect-padded by
``border`` pixels on every side and the outputs are cropped back: the photo's own edges are seen with
image content around them, as its interior is.
"""

from __future__ import annotations

import torch
from torch import nn

from polychrome.models._registry import register_model
from polychrome.models.backbones.efficientnet import EfficientNetLite
from polychrome.models.cicgan import Cicgan
from polychrome.models.effnet_unet import lite0_input

#: Encoder stages tapped, one per output stride 2, 4, 8, 16, 32.
_TAPS = (0, 1, 2, 4, 6)


class LitePyramid(nn.Module):
    """EfficientNet-Lite0 (or -Lite2) as a 5-level feature pyramid over the photo's lightness.

    forward(L_net): (B, 1, H, W) L in network units, H and W multiples of 32 -> five maps at strides
    2, 4, 8, 16, 32 with ``channels`` = (16, 24, 40, 112, 320) for Lite0, (16, 24, 48, 120, 352) for Lite2."""

    def __init__(self, pretrained: bool = False, padding: str = "symmetric", variant: str = "lite0"):
        super().__init__()
        self.net = EfficientNetLite(head=False, pretrained=pretrained, padding=padding, variant=variant)
        self.channels = tuple(self.net.stage_channels[i] for i in _TAPS)

    def forward(self, L_net: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_features(lite0_input(L_net), _TAPS)


@register_model
def effnet_cic(pretrained: bool = False, padding: str = "symmetric", border: int = 16, variant: str = "lite0",
               **kw) -> Cicgan:
    """EfficientNet-Lite0 encoder (pretrained=True: ImageNet weights; variant="lite2": the larger Lite2), cicgan
    decoder (128, 64, 48, 32), 262 bins, the input reflect-padded by ``border`` pixels on every side."""
    return Cicgan(encoder=LitePyramid(pretrained, padding, variant), border=border,
                  **{"decoder": (128, 64, 48, 32), **kw})
