"""Adversarial losses for the multi-scale PatchGAN critic: hinge losses and pix2pixHD feature matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
