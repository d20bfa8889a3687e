"""iColoriT: a Vision Transformer that colourises from lightness plus a person's colour hints.

After Yun et al., "iColoriT: Towards Propagating Local Hint to the Right Region in Interactive
Colorization by Leveraging Vision Transformer", WACV 2023 (the 4-channel, patch-16 variant).

How a grey photo and hints reach the model. The pipeline turns the photo into L (0..100) at the working
size and rasterises each hint (color/hints.py) into ``hint_ab`` (Lab units, 0 elsewhere) and
``hint_mask`` (1 where a hint is). The model takes them in network units (color/lab.py):
``L_net = l_to_net(L)``, ``hint_ab_net = ab_to_net(hint_ab)``; without hints both hint tensors are zero,
which is automatic colourisation. The four channels [L_net, hint a, hint b, mask] are cut into 16 x 16
patches, each mapped linearly to one token (a 16 x 16, stride-16 convolution), so a hint is seen by the
token of the patch it falls in and reaches every other patch through self-attention.

Architecture: patch embedding -> ``depth`` pre-norm transformer blocks whose attention adds a learned
relative position bias per head (layers/attention.py; no absolute position embedding, so no part of
the network is tied to one grid) -> LayerNorm -> Local Stabilising Layer (layers/lsl.py: a 3 x 3
convolution over the token grid that produces each token's 16*16*2 values from its own and its eight
neighbours' features, against patch-grid seams) -> pixel shuffle to (B, 2, H, W) -> tanh.

Sizes. Any H x W works: inputs are padded at the bottom/right to a multiple of 16 (L reflected; hint ab
and mask padded with zeros, since a reflected hint would be a hint nobody gave) and the output is cropped
back. The bias tables are built for an ``img_size`` square (default 224: a 14 x 14 grid) and keep that
size whatever the input, so weights load strictly. A grid whose longest side is 14 (224 x 160 -> 14 x 10)
reads the tables' exact entries; other grids read them resampled bicubically at one scale on both axes
so the grid's longest side spans the table (bigger working sizes see offsets as fractions of the picture,
as at training). Quality away from the training size is not guaranteed, only that it runs and degrades
gracefully; train at the size you serve if you can.

Parameter counts (measured with ``create_model``):

    icolorit-tiny   dim 192, depth 12, heads 3    6,444,740
    icolorit-small  dim 384, depth 12, heads 6   23,505,800
    icolorit-base   dim 768, depth 12, heads 12  89,478,416

iColoriT quotes about 6M / 22M / 86M, the counts with a per-token linear last layer (here 5,658,308 /
21,932,936 / 86,332,688); the 3 x 3 Local Stabilising Layer adds 8 * dim * 512 weights (0.8M / 1.6M / 3.1M).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from polychrome.checks import check_shape
from polychrome.layers import LocalStabilizingLayer, PatchEmbed, TransformerBlock, pad_to_multiple
from polychrome.models._registry import register_model


class IColoriT(nn.Module):
    """Hint-guided colouriser.

    forward(L_net, hint_ab_net=None, hint_mask=None):
        L_net: (B, 1, H, W) float, lightness in network units [-1, 1]; any H, W >= 1.
        hint_ab_net: (B, 2, H, W) float, hint colours in network units (ab / AB_SCALE), 0 where no hint.
        hint_mask: (B, 1, H, W) float, 1 where a hint is, 0 elsewhere.
        Both hint tensors None means no hints (zeros); giving only one is an error.
    Returns (B, 2, H, W) ab in network units within (-1, 1).

    ``img_size`` fixes the relative bias tables' size (a square of img_size / patch tokens): it is part of
    the weights, not a limit on the input size (see the module docstring for other sizes).
    """

    #: forward takes (L_net, hint_ab_net, hint_mask); front ends read this from the model card.
    uses_hints = True

    def __init__(
        self,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        patch: int = 16,
        img_size: int = 224,
        mlp_ratio: float = 4.0,
        lsl_kernel: int = 3,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        if img_size % patch:
            raise ValueError(f"img_size {img_size} is not a multiple of the patch size {patch}")
        self.patch = patch
        self.img_size = img_size
        self.grad_checkpointing = grad_checkpointing
        # 4 input channels: L, hint a, hint b, hint mask. The first parameter on purpose: the layer furthest
        # from the loss (the registry-wide test checks a gradient reaches it). A linear map of each flattened
        # patch, i.e. a patch x patch stride-patch convolution (layers/patch_embed.py says why not Conv2d).
        self.patch_embed = PatchEmbed(4, dim, patch)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, img_size // patch, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.lsl = LocalStabilizingLayer(dim, 2 * patch * patch, lsl_kernel)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # A small last layer starts the output near grey (|ab| a few CIE units), the L1-optimal guess for an
        # unknown colour, instead of saturated noise the loss must first undo. Scaled by the fan-in so every
        # variant starts equally grey; not zero, or no gradient would reach the blocks on the first step.
        w = self.lsl.conv.weight
        nn.init.trunc_normal_(w, std=0.02 / math.sqrt(w[0].numel()))

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them (training only):
        less memory for about one more forward pass of compute."""
        self.grad_checkpointing = enabled

    def forward(
        self,
        L_net: torch.Tensor,
        hint_ab_net: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_shape(L_net, "B 1 H W", "L_net")
        B, _, H, W = L_net.shape
        if (hint_ab_net is None) != (hint_mask is None):
            raise ValueError("give hint_ab_net and hint_mask together, or neither")
        if hint_ab_net is None:
            hint_ab_net = L_net.new_zeros(B, 2, H, W)
            hint_mask = L_net.new_zeros(B, 1, H, W)
        check_shape(hint_ab_net, "B 2 H W", "hint_ab_net", B=B, H=H, W=W)
        check_shape(hint_mask, "B 1 H W", "hint_mask", B=B, H=H, W=W)

        p = self.patch
        x = pad_to_multiple(L_net, p)
        ph, pw = x.shape[-2] - H, x.shape[-1] - W
        hints = torch.cat([hint_ab_net, hint_mask], dim=1).to(L_net.dtype)
        # Zeros, not reflection: a mirrored hint would be a colour nobody gave, at a place nobody clicked.
        hints = F.pad(hints, (0, pw, 0, ph)) if (ph or pw) else hints
        x, grid = self.patch_embed(torch.cat([x, hints], dim=1))  # (B, N, dim), row-major tokens

        checkpointing = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            x = checkpoint(block, x, grid, use_reentrant=False) if checkpointing else block(x, grid)
        x = self.norm(x)

        x = x.transpose(1, 2).reshape(B, -1, *grid)  # (B, dim, gh, gw)
        x = F.pixel_shuffle(self.lsl(x), p)  # (B, 2*p*p, gh, gw) -> (B, 2, gh*p, gw*p)
        return torch.tanh(x[..., :H, :W])


@register_model
def icolorit_tiny(**kw) -> IColoriT:
    return IColoriT(**{"dim": 192, "depth": 12, "heads": 3, **kw})


@register_model
def icolorit_small(**kw) -> IColoriT:
    return IColoriT(**{"dim": 384, "depth": 12, "heads": 6, **kw})


@register_model
def icolorit_base(**kw) -> IColoriT:
    return IColoriT(**{"dim": 768, "depth": 12, "heads": 12, **kw})
