"""ab quantisation for classification colourisation (after Zhang, Isola and Efros, ECCV 2016): the bin maths.

A colour model that regresses ab averages the plausible colours of an object into brown-grey. The
classification alternative predicts, per pixel, a distribution over Q quantised ab "bins" and decodes
it. This module is the tensor maths of those bins, none of it a network and none of it reading files
(photos, K-means palettes and palette files are :mod:`polychrome.color.palette`'s):

- the bins: the in-gamut cells of a square ab grid (:func:`gamut_bins`, or the data-free
  :func:`srgb_gamut_bins`), and :func:`nearest_bin`;
- :func:`soft_encode`: the true ab of a pixel as a soft target over its k nearest bins;
- :func:`empirical_prior` and :func:`rebalance_weights`: the smoothed bin frequencies P(q) and the
  weights that stop rare vivid colours from being drowned by common dull ones;
- :func:`decode`: mode, mean or annealed mean of the predicted distribution;
- :func:`ab_histograms`: the per-image a and b histograms a global colour head learns to predict.

Units: ab in CIE units throughout (about +-110 for sRGB colours), never network units. Where a function
takes "ab tensors", each is (2, H, W), (B, 2, H, W) or (N, 2).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator

import torch

from polychrome.checks import check_shape
from polychrome.color.lab import AB_SCALE, rgb_to_lab

#: Zhang et al.'s grid: cells of 10 x 10 CIE ab units, centred on multiples of 10.
AB_GRID = 10.0
#: Soft-encoding: a pixel's true ab is spread over its SOFT_K nearest bins with a Gaussian of SOFT_SIGMA.
SOFT_K = 5
SOFT_SIGMA = 5.0
#: The empirical prior is smoothed with a Gaussian of this width (CIE units) before rebalancing.
PRIOR_SIGMA = 5.0
#: Mix of the prior with a uniform distribution in the rebalancing weights; 0.5 as in the paper.
REBALANCE_LAMBDA = 0.5
#: The annealed-mean temperature the paper found to trade vividness against spatial consistency.
DEFAULT_TEMPERATURE = 0.38
#: Global colour histograms: bins per channel, over [-AB_SCALE, AB_SCALE] (width 4 CIE units).
HIST_BINS = 64

DECODE_MODES = ("mode", "mean", "annealed")
#: Pixels per chunk of soft-encoding's distance computation (memory, not results).
_SOFT_CHUNK = 1 << 14

__all__ = [
    "AB_GRID",
    "DECODE_MODES",
    "DEFAULT_TEMPERATURE",
    "HIST_BINS",
    "PRIOR_SIGMA",
    "REBALANCE_LAMBDA",
    "ab_histograms",
    "ab_samples",
    "decode",
    "empirical_prior",
    "gamut_bins",
    "nearest_bin",
    "rebalance_weights",
    "soft_encode",
    "srgb_gamut_bins",
]


def ab_samples(ab_iter: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Yield each ab tensor of ``ab_iter`` as (N, 2) float32 samples, CIE units."""
    for item in ab_iter:
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"expected an ab tensor, got {type(item).__name__} (photos: color.palette.photo_ab)")
        if item.dim() == 2 and item.shape[1] == 2:
            yield item.float()
        elif item.dim() in (3, 4) and item.shape[-3] == 2:
            yield item.float().movedim(-3, -1).reshape(-1, 2)  # (..., 2, H, W) -> (N, 2)
        else:
            raise ValueError(f"an ab tensor must be (2, H, W), (B, 2, H, W) or (N, 2), got {tuple(item.shape)}")


# --------------------------------------------------------------------------- bins
def _cells(ab: torch.Tensor, grid: float) -> torch.Tensor:
    """(N, 2) ab -> (N, 2) integer cell indices; cell (i, j) is centred on (i * grid, j * grid)."""
    return torch.round(ab / grid).long()


def gamut_bins(
    ab_iter: Iterable[torch.Tensor], grid: float = AB_GRID, min_count: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cells of a square ab grid that some ab values fall in: Zhang's in-gamut bins.

    Args:
        ab_iter: ab tensors in CIE units ((2, H, W), (B, 2, H, W) or (N, 2)); for photo files,
            :func:`polychrome.color.palette.gamut_bins_from_photos`.
        grid: cell side in CIE units; cells are centred on multiples of ``grid``.
        min_count: a cell is kept when at least this many pixels fall in it (1: every cell that occurs).
    Returns:
        (bins (Q, 2) float32 cell centres in CIE units, sorted by a then b; counts (Q,) int64 pixels per bin).
    """
    # Cells within +-lim (every Lab colour of sRGB, with room) are counted in a dense table with
    # bincount, much faster than torch.unique per photo; any others go through a dict.
    lim = math.ceil(1.5 * AB_SCALE / grid)
    side = 2 * lim + 1
    dense = torch.zeros(side * side, dtype=torch.int64)
    counts: dict[tuple[int, int], int] = {}
    for ab in ab_samples(ab_iter):
        cells = _cells(ab, grid)  # (N, 2)
        inside = (cells.abs() <= lim).all(1)
        c = cells[inside] + lim
        dense += torch.bincount(c[:, 0] * side + c[:, 1], minlength=side * side)
        if not inside.all():
            outside, n = torch.unique(cells[~inside], dim=0, return_counts=True)
            for (i, j), m in zip(outside.tolist(), n.tolist()):
                counts[(i, j)] = counts.get((i, j), 0) + m
    for flat_index in dense.nonzero().flatten().tolist():
        counts[(flat_index // side - lim, flat_index % side - lim)] = int(dense[flat_index])
    kept = sorted(k for k, c in counts.items() if c >= min_count)
    if not kept:
        raise ValueError("no ab values were given (or none reached min_count)")
    bins = torch.tensor(kept, dtype=torch.float32) * grid
    return bins, torch.tensor([counts[k] for k in kept], dtype=torch.int64)


def srgb_gamut_bins(grid: float = AB_GRID, steps: int = 96) -> torch.Tensor:
    """The grid cells reached by some sRGB colour (at any lightness): a data-free default palette.

    The sRGB cube is sampled on a ``steps``^3 lattice; with grid 10 this gives 262 cells (Zhang's 313
    came from ImageNet and include a few cells outside sRGB). Returns (Q, 2) float32 centres, CIE units.
    """
    return _srgb_gamut_bins(float(grid), int(steps)).clone()


@functools.lru_cache(maxsize=4)
def _srgb_gamut_bins(grid: float, steps: int) -> torch.Tensor:
    # Cached: every model built with the default palette asks, and the lattice takes about a second.
    g = torch.linspace(0, 1, steps)
    rgb = torch.stack(torch.meshgrid(g, g, g, indexing="ij")).reshape(3, -1, 1)  # (3, steps^3, 1)
    ab = rgb_to_lab(rgb)[1:].reshape(2, -1).T  # (steps^3, 2)
    return gamut_bins([ab], grid=grid)[0]


def nearest_bin(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Index of the nearest bin for each ab: (N, 2) -> (N,) int64."""
    return torch.cdist(ab.float(), bins.float()).argmin(1)


# --------------------------------------------------------------------------- soft encoding
def soft_encode(
    ab: torch.Tensor, bins: torch.Tensor, k: int = SOFT_K, sigma: float = SOFT_SIGMA
) -> torch.Tensor:
    """Encode true ab as a soft distribution over its ``k`` nearest bins (Gaussian weights of ``sigma``).

    Args:
        ab: (B, 2, H, W) float, CIE units.
        bins: (Q, 2) bin centres, CIE units.
    Returns:
        (B, Q, H, W) float32 soft targets; each pixel's Q values are >= 0 and sum to 1.
    """
    check_shape(ab, "B 2 H W", "ab")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    B, _, H, W = ab.shape
    Q = bins.shape[0]
    k = min(k, Q)
    flat = ab.float().permute(0, 2, 3, 1).reshape(-1, 2)  # (B*H*W, 2)
    bins = bins.float().to(flat.device)
    out = torch.zeros(flat.shape[0], Q, device=flat.device)  # (N, Q)
    # In chunks: the (N, Q) distance matrix of a training batch would double the targets' memory.
    for s in range(0, flat.shape[0], _SOFT_CHUNK):
        dk, idx = torch.cdist(flat[s : s + _SOFT_CHUNK], bins).topk(k, dim=1, largest=False)  # (n, k)
        w = torch.softmax(-(dk**2) / (2 * sigma**2), dim=1)  # normalised Gaussian weights, stable for far pixels
        out[s : s + _SOFT_CHUNK].scatter_(1, idx, w)
    return out.reshape(B, H, W, Q).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- prior and rebalancing
def _gaussian_smooth_over_bins(p: torch.Tensor, bins: torch.Tensor, sigma: float) -> torch.Tensor:
    """Spread each bin's mass over its neighbours with a Gaussian of ``sigma`` CIE units, mass conserved.

    Works for any bin layout (grid or K-means): on a regular grid it is the paper's Gaussian filter
    of the 2-D histogram restricted to the kept cells, renormalised."""
    d2 = torch.cdist(bins.double(), bins.double()) ** 2  # (Q, Q)
    kernel = torch.exp(-d2 / (2 * sigma**2))
    kernel = kernel / kernel.sum(0, keepdim=True)  # column q' says where bin q''s mass goes
    return kernel @ p.double()


def empirical_prior(
    bins: torch.Tensor, ab_iter: Iterable[torch.Tensor] | None = None, counts: torch.Tensor | None = None,
    sigma: float = PRIOR_SIGMA,
) -> torch.Tensor:
    """P(q): how often each bin is the nearest to a pixel's ab, smoothed with a Gaussian of ``sigma``.

    Give either ab tensors (counted here; photos: :func:`polychrome.color.palette.photo_ab`) or precomputed
    per-bin ``counts`` (Q,).
    Returns (Q,) float32, >= 0, summing to 1. ``sigma=0`` skips the smoothing.
    """
    if (ab_iter is None) == (counts is None):
        raise ValueError("give exactly one of ab_iter and counts")
    Q = bins.shape[0]
    if counts is None:
        counts = torch.zeros(Q, dtype=torch.float64)
        for ab in ab_samples(ab_iter):
            counts += torch.bincount(nearest_bin(ab, bins), minlength=Q).double()
    p = counts.double()
    if p.shape != (Q,) or p.sum() <= 0:
        raise ValueError(f"counts must be (Q,) = ({Q},) with a positive sum")
    p = p / p.sum()
    if sigma > 0:
        p = _gaussian_smooth_over_bins(p, bins, sigma)
    return (p / p.sum()).float()


def rebalance_weights(prior: torch.Tensor, lam: float = REBALANCE_LAMBDA) -> torch.Tensor:
    """Class-rebalancing weights w proportional to ((1 - lam) P + lam / Q)^-1, scaled so E_P[w] = 1.

    With E_P[w] = 1 a rebalanced loss keeps the plain loss's scale on average over the data, so a
    learning rate tuned without rebalancing still fits. ``lam`` = 1 gives uniform weights.
    Returns (Q,) float32.
    """
    p = prior.double()
    Q = p.numel()
    w = 1.0 / ((1 - lam) * p + lam / Q)
    return (w / (p * w).sum()).float()


# --------------------------------------------------------------------------- decoding
def decode(
    logits: torch.Tensor,
    bins: torch.Tensor,
    mode: str = "annealed",
    temperature: float = DEFAULT_TEMPERATURE,
    dim: int = 1,
) -> torch.Tensor:
    """Turn per-pixel bin logits into one ab.

    Args:
        logits: (B, Q, H, W) unnormalised log-probabilities, or with the Q bins along ``dim``.
        bins: (Q, 2) bin centres, CIE units.
        mode: "mode" (the most likely bin: vivid, but patchy where two colours compete), "mean" (the
            expectation: smooth but greyish, like regression), or "annealed" (the mean of the distribution
            sharpened to p^(1/T): T -> 0 is the mode, T = 1 the mean).
        temperature: T for "annealed", > 0.
        dim: the bins' dimension: 1 for (B, Q, H, W) maps, -1 for (..., Q) rows (a softmax over the
            last, contiguous dimension is the fast one on a CPU).
    Returns:
        ``logits``' shape with 2 (a, b) instead of Q along ``dim``: (B, 2, H, W) ab in CIE units, in the
        logits' dtype promoted to at least float32.
    """
    if mode not in DECODE_MODES:
        raise ValueError(f"unknown decode mode {mode!r}; use one of {', '.join(DECODE_MODES)}")
    dtype = torch.promote_types(logits.dtype, torch.float32)  # fp32 under autocast; fp64 stays fp64
    bins = bins.to(device=logits.device, dtype=dtype)
    logits = logits.to(dtype)
    if mode == "mode":
        return bins[logits.argmax(dim)].movedim(-1, dim)  # (..., 2) -> 2 along dim
    if mode == "annealed":
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        # p^(1/T) renormalised is softmax(log p / T), and log p = logits up to a per-pixel constant.
        logits = logits / temperature
    p = torch.softmax(logits, dim=dim)
    if dim in (-1, p.dim() - 1):
        return p @ bins
    return torch.einsum("bq...,qc->bc...", p.movedim(dim, 1), bins).movedim(1, dim)


# --------------------------------------------------------------------------- global histograms
def ab_histograms(ab: torch.Tensor, n_bins: int = HIST_BINS, limit: float = AB_SCALE) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image histograms of a and of b: the target of a global colour head.

    Values are soft-assigned (linear interpolation between the two nearest bin centres), so the
    histogram changes smoothly with ab. Bins split [-limit, limit] evenly; values outside are clamped.

    Args:
        ab: (B, 2, H, W) float, CIE units.
    Returns:
        (hist_a, hist_b), each (B, n_bins) float32 summing to 1 per image.
    """
    check_shape(ab, "B 2 H W", "ab")
    B = ab.shape[0]
    # Position in bin units: bin i is centred on -limit + (i + 0.5) * width.
    pos = ((ab.float().flatten(2) + limit) / (2 * limit) * n_bins - 0.5).clamp(0, n_bins - 1)  # (B, 2, N)
    lo = pos.floor().clamp(max=n_bins - 2).long() if n_bins > 1 else pos.long()
    frac = pos - lo
    hist = torch.zeros(B, 2, n_bins, device=ab.device)
    hist.scatter_add_(2, lo, 1 - frac)
    if n_bins > 1:
        hist.scatter_add_(2, lo + 1, frac)
    hist = hist / hist.sum(2, keepdim=True)
    return hist[:, 0], hist[:, 1]

