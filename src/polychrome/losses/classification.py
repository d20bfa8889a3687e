"""Losses of classification colourisation (the cicgan family): rebalanced / focal cross-entropy over ab
bins, the global colour histograms' distance, and the confidence map's target and loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
