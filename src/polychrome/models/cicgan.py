"""cicgan: classification colouriser with global colour context (the generator of the cicgan family).

After Zhang et al. (ECCV 2016) it predicts, per pixel, a distribution over Q quantised ab bins
(color/quantize.py) rather than regressing ab, which would average an object's plausible colours into
brown-grey. Around that:

- encoder: a ResNet34 (models/backbones/resnet.py) with a 1-channel L stem and GroupNorm, optionally started from
  torchvision ImageNet weights (``pretrained="path/to/resnet34.pth"``);
- bottleneck self-attention (reduction 16), for the long-range colour agreement convolutions lack;
- :class:`GlobalColorContextHead`: predicts the photo's a and b histograms (64 bins each, softmax) from
  the bottleneck; the two histograms condition every decoder stage through FiLM. Routing the global
  context through a histogram makes it supervisable (histogram loss) and inspectable, and lets a
  caller later steer the palette of a photo by editing the histogram;
- decoder: bilinear upsampling, attention-gated skips, GLU residual blocks with GroupNorm(32), FiLM;
- a triple head at half resolution from one shared trunk: ``ab_class`` (Q logits), ``ab_residual``
  (a bounded continuous correction added to the decoded bin colour, which undoes the grid's
  quantisation) and ``confidence`` (a logit: will this pixel's colour be right?). One trunk and one
  output conv split three ways, as detection heads do: the three read the same evidence.

The ab palette (bins, prior, rebalancing weights) lives in the model as buffers (``model.palette``),
so a checkpoint decodes with its own bins. Decoding is chosen at inference, not by weights: per call
through ``forward(..., temperature=, decode_mode=)``, defaulting to ``model.decode_mode`` ("annealed",
"mode" or "mean") and ``model.temperature`` (0.38).

Heads work at half resolution (Zhang used a quarter): the class logits are Q channels deep, and the
pipeline upsamples ab anyway; the final ab is upsampled bilinearly to the input size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from polychrome.color.lab import AB_SCALE
from polychrome.color.palette import ABPalette
from polychrome.color.quantize import DEFAULT_TEMPERATURE, HIST_BINS, decode
from polychrome.layers.attention_gate import AttentionGate
from polychrome.layers.film import FiLM
from polychrome.layers.glu import GLUResBlock
from polychrome.layers.norm import group_norm
from polychrome.layers.pad import pad_border, pad_to_multiple
from polychrome.layers.self_attention import SelfAttention2d
from polychrome.models._registry import register_model
from polychrome.models.backbones.resnet import RESNET34_LAYERS, RESNET_WIDTHS, ResNetEncoder, load_torchvision_resnet34

#: ab_residual is tanh-bounded to +-this many CIE units: one grid cell, enough to undo quantisation.
#: With bins within +-110 the final ab stays within +-120 < AB_SCALE, so ab_net is inside (-1, 1).
RESIDUAL_SCALE = 10.0


@dataclass
class CicganOutput:
    """Everything :class:`Cicgan` predicts (``forward(..., return_all=True)``).

    h2, w2 = ceil(H / 2), ceil(W / 2): the heads' half resolution.
    """

    ab_net: torch.Tensor  #: (B, 2, H, W) final ab in network units (ab / AB_SCALE), what model(L_net) returns
    ab: torch.Tensor  #: (B, 2, h2, w2) final ab in CIE units at half resolution (decoded bins + residual)
    ab_class: torch.Tensor  #: (B, Q, h2, w2) bin logits
    ab_residual: torch.Tensor  #: (B, 2, h2, w2) correction in CIE units, within +-RESIDUAL_SCALE
    confidence: torch.Tensor  #: (B, 1, h2, w2) logit; sigmoid -> expected closeness of the colour to the truth
    hist_a: torch.Tensor  #: (B, HIST_BINS) predicted histogram of a (softmax, sums to 1)
    hist_b: torch.Tensor  #: (B, HIST_BINS) predicted histogram of b


class GlobalColorContextHead(nn.Module):
    """Predict the photo's a and b histograms from bottleneck features.

    forward(x): (B, C, h, w) -> (hist_a, hist_b), each (B, bins) softmax probabilities. Mean and max
    pooling together: the mean says what dominates, the max that a small vivid object exists.
    """

    def __init__(self, channels: int, hidden: int = 256, bins: int = HIST_BINS):
        super().__init__()
        self.bins = bins
        self.mlp = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * bins))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # (B, 2C)
        logits = self.mlp(pooled).float()  # (B, 2 * bins); softmax in fp32 under autocast
        a, b = logits.split(self.bins, dim=1)
        return torch.softmax(a, 1), torch.softmax(b, 1)


class DecoderStage(nn.Module):
    """Upsample to the skip's size, gate the skip, concatenate, GLU res-block, FiLM by the histograms."""

    def __init__(self, cin: int, skip: int, cout: int, cond_dim: int):
        super().__init__()
        self.gate = AttentionGate(skip, cin)
        self.block = GLUResBlock(cin + skip, cout)
        self.film = FiLM(cond_dim, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.block(torch.cat([x, self.gate(skip, x)], dim=1))
        return self.film(x, cond)


def golden_spiral_bins(n: int, radius: float = 100.0) -> torch.Tensor:
    """n ab points spread evenly over a disc (Vogel's spiral): a stand-in palette for a model built with
    a palette size other than the default grid's, until the trained palette is loaded into it. (n, 2)."""
    i = torch.arange(n, dtype=torch.float64)
    r = radius * torch.sqrt((i + 0.5) / n)
    theta = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1).float()


class Cicgan(nn.Module):
    """The classification colouriser (see the module docstring).

    forward(L_net, return_all=False): L_net (B, 1, H, W) float, L in network units [-1, 1], any H, W
    (padded to a multiple of 32 inside and cropped back). Returns ab_net (B, 2, H, W) in network units,
    inside (-1, 1), decoded with ``decode_mode`` / ``temperature`` when given, else the model's defaults
    ``self.decode_mode`` / ``self.temperature`` (read by its model card; front ends pass the call's own
    settings instead of changing them); ``return_all=True`` returns a :class:`CicganOutput` with every head.
    ``detach_bins=True`` (training, with ``return_all``) stops gradients of the final ab at the decoded bins:
    a loss on ``ab``/``ab_net`` then trains the residual (and the trunk through it), never the bin logits.

    Args:
        layers, widths, stem_width: the ResNet encoder (ResNet34 by default).
        decoder: widths of the 4 decoder stages (/16, /8, /4, /2).
        num_bins: Q. None: the sRGB-gamut grid (color/quantize.srgb_gamut_bins, 262 bins, uniform prior);
            another number: a placeholder palette of that size, to be replaced by a trained palette
            (``model.palette.set_(palette)``) or by a checkpoint's buffers.
        hist_hidden: hidden width of the global colour head.
        attn_reduction: query/key channel reduction of the bottleneck self-attention.
        pretrained: a torchvision-format resnet34 state-dict file to start the encoder from (init only).
        encoder: another encoder instead of the ResNet (``layers``, ``widths``, ``stem_width`` and
            ``pretrained`` are then unused): a module mapping L_net (B, 1, H, W), H and W multiples of 32,
            to five feature maps at strides 2, 4, 8, 16, 32, whose ``channels`` attribute lists their widths
            (see models/effnet_cic.py).
        border: reflect-pad the input by this many pixels (even) on all four sides and crop every output
            back, so the photo's own edges lie inside the network's field, not on its zero-padded border
            (where a stride-2 layer treats the top/left edge differently from the bottom/right one).
    """

    #: ``forward(..., return_all=True).confidence`` exists (read by :mod:`polychrome.models.card`).
    gives_confidence = True

    def __init__(
        self,
        layers: Sequence[int] = RESNET34_LAYERS,
        widths: Sequence[int] = RESNET_WIDTHS,
        stem_width: int | None = None,
        decoder: Sequence[int] = (256, 128, 64, 64),
        num_bins: int | None = None,
        hist_hidden: int = 256,
        attn_reduction: int = 16,
        pretrained: str | None = None,
        encoder: nn.Module | None = None,
        border: int = 0,
    ):
        super().__init__()
        if len(decoder) != 4:
            raise ValueError(f"decoder must list 4 widths (/16, /8, /4, /2), got {list(decoder)}")
        if border < 0 or border % 2:
            raise ValueError(f"border must be an even number of pixels >= 0, got {border}")
        self.border = border
        if encoder is None:
            encoder = ResNetEncoder(layers, widths, stem_width)
            if pretrained:
                load_torchvision_resnet34(pretrained, encoder)
        self.encoder = encoder
        ch = self.encoder.channels  # (stem, l1, l2, l3, l4)
        self.attention = SelfAttention2d(ch[4], attn_reduction)
        self.color_context = GlobalColorContextHead(ch[4], hist_hidden, HIST_BINS)
        cond = 2 * HIST_BINS
        skips = (ch[3], ch[2], ch[1], ch[0])
        cins = (ch[4], *decoder[:3])
        self.decoder = nn.ModuleList(DecoderStage(ci, s, co, cond) for ci, s, co in zip(cins, skips, decoder))
        self.palette = ABPalette.default() if num_bins is None else ABPalette(golden_spiral_bins(num_bins))
        q = self.palette.num_bins
        self.head_trunk = nn.Sequential(
            nn.Conv2d(decoder[3], decoder[3], 3, padding=1, bias=False), group_norm(decoder[3]), nn.ReLU(inplace=True)
        )
        self.head = nn.Conv2d(decoder[3], q + 2 + 1, 1)  # [class logits | residual a, b | confidence]
        self.decode_mode = "annealed"
        self.temperature = DEFAULT_TEMPERATURE

    @property
    def num_bins(self) -> int:
        return self.palette.num_bins

    def _head_ab(self, x: torch.Tensor, mode: str, temperature: float) -> torch.Tensor:
        """The final ab (decoded bins + residual, CIE units, (B, 2, h, w)) from the head's input x (B, C, h, w):
        what ``forward`` returns when it is asked for ab alone. The same numbers as decoding the head's
        (B, Q, h, w) logit maps (up to float rounding), computed on (B, h * w, C) rows so that the 1x1 head is
        one matrix product and the softmax runs along the contiguous last dimension. On a CPU under bf16
        that made the whole model call 16-18% faster than the same decoding on maps (docs/issue-12/README.md,
        "Inference cost"); in fp32 the two are level."""
        B, _, h, w = x.shape
        logits, residual = self._head_rows(x)
        ab = decode(logits, self.palette.bins, mode, temperature, dim=-1) + residual  # (B, h * w, 2)
        return ab.transpose(1, 2).reshape(B, 2, h, w)

    def _head_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1x1 head's bin logits (B, h * w, Q) and bounded ab residual (B, h * w, 2, CIE units) on the
        rows of x (B, C, h, w); the confidence output is not computed."""
        C, q = x.shape[1], self.num_bins
        weight, bias = self.head.weight.reshape(-1, C).to(x.dtype), self.head.bias.to(x.dtype)
        rows = x.flatten(2).transpose(1, 2)  # (B, h * w, C)
        logits = F.linear(rows, weight[:q], bias[:q])  # (B, h * w, Q)
        residual = RESIDUAL_SCALE * torch.tanh(F.linear(rows, weight[q : q + 2], bias[q : q + 2]))
        return logits, residual

    def forward(
        self,
        L_net: torch.Tensor,
        return_all: bool = False,
        temperature: float | None = None,
        decode_mode: str | None = None,
        detach_bins: bool = False,
    ):
        h, w = L_net.shape[-2:]
        p = self.border
        L_net = pad_border(L_net, p)
        H, W = L_net.shape[-2:]
        feats = self.encoder(pad_to_multiple(L_net, 32))
        x = self.attention(feats[4])
        hist_a, hist_b = self.color_context(x)
        cond = torch.cat([hist_a, hist_b], dim=1)  # (B, 2 * HIST_BINS)
        for stage, skip in zip(self.decoder, (feats[3], feats[2], feats[1], feats[0])):
            x = stage(x, skip, cond)
        # The head (1x1) and the decoding run only on the half-resolution cells that the photo's pixels
        # read when upsampled: the photo's own and one more on each side, not the reflected border (at
        # 256 px with border 16: 130^2 cells instead of 144^2, and the 262-bin softmax is most of the
        # decoding time). m: the first kept row and column (the border is the same on all four sides).
        H2, W2 = (H + 1) // 2, (W + 1) // 2
        m = max(p // 2 - 1, 0)
        r1, c1 = min(H2, (p + h + 1) // 2 + 1), min(W2, (p + w + 1) // 2 + 1)
        x = self.head_trunk(x)[..., m:r1, m:c1]
        mode, t = decode_mode or self.decode_mode, temperature or self.temperature  # per call; the model's own stay
        # The 1x1 head and the decoding in fp32, also under bf16 autocast (the logits are divided by
        # T < 1 before the softmax); converting the head's 32 input channels costs less than its 265 outputs.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float().contiguous()
            if return_all:
                out = self.head(x)  # (B, Q + 3, r1 - m, c1 - m)
                q = self.num_bins
                logits, residual, confidence = out[:, :q], out[:, q : q + 2], out[:, q + 2 :]
                residual = RESIDUAL_SCALE * torch.tanh(residual)
                decoded = decode(logits, self.palette.bins, mode, t)  # (B, 2, r1 - m, c1 - m) CIE
                # detach_bins (training): a loss on the final ab reaches the residual, not the bin logits
                ab = (decoded.detach() if detach_bins else decoded) + residual
            else:
                ab = self._head_ab(x, mode, t)
            # Upsample at the padded-grid ratio (exactly 2x of the half-resolution map), then crop: pixel
            # centres line up with the encoder's grid for odd sizes too, and the cut cells are never read.
            ab_full = F.interpolate(ab, size=(2 * (r1 - m), 2 * (c1 - m)), mode="bilinear", align_corners=False)
        ab_net = ab_full[..., p - 2 * m : p - 2 * m + h, p - 2 * m : p - 2 * m + w] / AB_SCALE
        if not return_all:
            return ab_net
        q, h2, w2 = p // 2 - m, (h + 1) // 2, (w + 1) // 2  # the maps, cropped to the photo

        def crop(t: torch.Tensor) -> torch.Tensor:
            return t[..., q : q + h2, q : q + w2]

        return CicganOutput(ab_net, crop(ab), crop(logits), crop(residual), crop(confidence), hist_a, hist_b)


@register_model
def cicgan(**kw) -> Cicgan:
    """ResNet34 encoder (21M parameters), decoder (256, 128, 64, 64), the 262-bin sRGB grid."""
    return Cicgan(**kw)


@register_model
def cicgan_small(**kw) -> Cicgan:
    """A narrow, shallow cicgan (ResNet with one block per stage, widths 16-128) for tests and quick CPU runs."""
    return Cicgan(**{"layers": (1, 1, 1, 1), "widths": (16, 32, 64, 128), "decoder": (64, 32, 32, 32),
                     "hist_hidden": 64, **kw})
