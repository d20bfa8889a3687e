"""ab palettes from photos: the bins, prior and rebalancing weights a classification model holds.

The bin maths is :mod:`polychrome.color.quantize`'s; this module is its data side:

- :func:`ab_of_photo` and :func:`photo_ab`: the ab of photo files, read through :mod:`polychrome.io`;
- :func:`gamut_bins_from_photos`: the grid cells that occur in some photos;
- :func:`kmeans_palette`: a K-means palette of the photos' ab values;
- :class:`ABPalette`: bins + prior + weights as buffers, so they travel inside a model's state dict
  (and hence its safetensors file) and load strictly with it; saved to and read from its own
  safetensors file;
- :func:`build_palette` and :func:`prior_palette`: a palette from a list of photos.

Units: ab in CIE units throughout, never network units.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import nn

from polychrome.checks import check_shape
from polychrome.color.lab import rgb_to_lab
from polychrome.color.quantize import (
    AB_GRID,
    PRIOR_SIGMA,
    REBALANCE_LAMBDA,
    ab_samples,
    empirical_prior,
    gamut_bins,
    nearest_bin,
    rebalance_weights,
    srgb_gamut_bins,
)

__all__ = [
    "ABPalette",
    "ab_of_photo",
    "build_palette",
    "gamut_bins_from_photos",
    "kmeans_palette",
    "photo_ab",
    "prior_palette",
]


# --------------------------------------------------------------------------- reading photos
def ab_of_photo(path: str | os.PathLike) -> torch.Tensor:
    """The ab channels of a photo file: (2, H, W) float32, CIE units. Raises io.ImageError."""
    from polychrome.io import load_rgb  # io pulls in PIL; keep this module importable without it

    rgb = torch.from_numpy(load_rgb(path)).permute(2, 0, 1)  # (3, H, W) in [0, 1]
    return rgb_to_lab(rgb)[1:]


def photo_ab(paths_or_ab: Iterable) -> Iterator[torch.Tensor]:
    """Each item as an ab tensor: a photo path is read (:func:`ab_of_photo`), a tensor passes through."""
    for item in paths_or_ab:
        yield ab_of_photo(item) if isinstance(item, (str, os.PathLike)) else item


def gamut_bins_from_photos(
    paths_or_ab_iter: Iterable, grid: float = AB_GRID, min_count: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~polychrome.color.quantize.gamut_bins` of photo paths (or ab tensors): the grid cells that occur
    in the photos, and how many pixels fall in each."""
    return gamut_bins(photo_ab(paths_or_ab_iter), grid=grid, min_count=min_count)

# --------------------------------------------------------------------------- k-means
def _kmeans_pp_init(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next centre drawn with probability proportional to D(x)^2."""
    centers = [x[torch.randint(len(x), (1,), generator=gen)].squeeze(0)]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        if d2.sum() <= 0:  # fewer distinct points than k: repeat picks uniformly
            idx = torch.randint(len(x), (1,), generator=gen)
        else:
            idx = torch.multinomial(d2, 1, generator=gen)
        c = x[idx].squeeze(0)
        centers.append(c)
        d2 = torch.minimum(d2, ((x - c) ** 2).sum(1))
    return torch.stack(centers)


def kmeans_palette(ab: torch.Tensor, k: int = 313, iters: int = 50, seed: int = 0, tol: float = 1e-3) -> torch.Tensor:
    """A K-means palette of ab samples (Lloyd's algorithm, k-means++ init, seeded so it is reproducible).

    Args:
        ab: (N, 2) float ab samples in CIE units, N >= k.
        k: number of bins Q.
        iters: Lloyd iterations at most; stops early when no centre moves more than ``tol`` CIE units.
        seed: the init's random seed.
    Returns:
        (k, 2) float32 centres in CIE units, sorted by a then b so a palette's order does not depend on the init.
    """
    check_shape(ab, "N 2", "ab")
    if len(ab) < k:
        raise ValueError(f"k-means needs at least k={k} samples, got {len(ab)}")
    x = ab.float()
    gen = torch.Generator().manual_seed(seed)
    centers = _kmeans_pp_init(x, k, gen)
    for _ in range(iters):
        assign = torch.cdist(x, centers).argmin(1)  # (N,)
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        n = torch.bincount(assign, minlength=k).unsqueeze(1).float()
        # An emptied cluster keeps its old centre rather than collapsing to 0/0.
        new = torch.where(n > 0, sums / n.clamp_min(1), centers)
        moved = (new - centers).norm(dim=1).max()
        centers = new
        if moved < tol:
            break
    order = torch.argsort(centers[:, 0] * 1e4 + centers[:, 1])
    return centers[order].contiguous()


# --------------------------------------------------------------------------- the palette object
class ABPalette(nn.Module):
    """Bins, prior and rebalancing weights, held as buffers so they live in a model's state dict.

    Buffers (all float32): ``bins`` (Q, 2) centres in CIE units, ``prior`` (Q,) P(q) summing to 1,
    ``weights`` (Q,) rebalancing weights with E_P[w] = 1. A model that owns an ABPalette as a submodule
    saves and strictly loads them with its weights, so a checkpoint always decodes with its own bins.
    """

    def __init__(self, bins: torch.Tensor, prior: torch.Tensor | None = None, weights: torch.Tensor | None = None):
        super().__init__()
        bins = torch.as_tensor(bins, dtype=torch.float32)
        Q = check_shape(bins, "Q 2", "bins")["Q"]
        if Q < 2:
            raise ValueError(f"bins must be (Q, 2) with Q >= 2, got {tuple(bins.shape)}")
        prior = torch.full((Q,), 1.0 / Q) if prior is None else torch.as_tensor(prior, dtype=torch.float32)
        weights = rebalance_weights(prior) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if prior.shape != (Q,) or weights.shape != (Q,):
            raise ValueError(f"prior and weights must be ({Q},), got {tuple(prior.shape)} and {tuple(weights.shape)}")
        self.register_buffer("bins", bins.clone())
        self.register_buffer("prior", prior.clone())
        self.register_buffer("weights", weights.clone())

    @property
    def num_bins(self) -> int:
        return self.bins.shape[0]

    @classmethod
    def default(cls, grid: float = AB_GRID) -> ABPalette:
        """The sRGB-gamut grid with a uniform prior (weights all 1): what a model holds before training data."""
        return cls(srgb_gamut_bins(grid))

    def set_(self, other: ABPalette) -> ABPalette:
        """Copy another palette of the same size into this one's buffers (in place, so a model keeps them)."""
        if other.num_bins != self.num_bins:
            raise ValueError(f"palette sizes differ: {other.num_bins} vs {self.num_bins}; build the model with "
                             f"num_bins={other.num_bins}")
        with torch.no_grad():
            for name in ("bins", "prior", "weights"):
                getattr(self, name).copy_(getattr(other, name))
        return self

    def save(self, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
        """Write the three tensors to a safetensors file (string ``metadata`` goes in its header)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata={"format": "polychrome-ab-palette", **(metadata or {})})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ABPalette:
        """Read a palette written by :meth:`save`; exactly the keys bins, prior, weights are accepted."""
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if set(tensors) != {"bins", "prior", "weights"}:
            raise ValueError(f"{path}: not an ab palette (keys {sorted(tensors)}; expected bins, prior, weights)")
        return cls(tensors["bins"], tensors["prior"], tensors["weights"])

    def extra_repr(self) -> str:
        return f"num_bins={self.num_bins}"


def build_palette(
    paths: Iterable, method: str = "kmeans", bins: int = 313, grid: float = AB_GRID,
    samples_per_photo: int = 256, seed: int = 0, lam: float = REBALANCE_LAMBDA, sigma: float = PRIOR_SIGMA,
) -> ABPalette:
    """A palette from photos: K-means (``method="kmeans"``, ``bins`` centres) or the grid ("grid", ``grid``).

    K-means runs on ``samples_per_photo`` pixels drawn (seeded) from each photo, which keeps it small;
    the prior is counted over every pixel of every photo either way. ``paths`` is read twice, so pass a list.
    """
    paths = list(paths)
    if method == "grid":
        centres, counts = gamut_bins_from_photos(paths, grid=grid)
        prior = empirical_prior(centres, counts=counts, sigma=sigma)
    elif method == "kmeans":
        gen = torch.Generator().manual_seed(seed)
        samples = []
        for ab in ab_samples(photo_ab(paths)):
            samples.append(ab[torch.randint(len(ab), (min(samples_per_photo, len(ab)),), generator=gen)])
        centres = kmeans_palette(torch.cat(samples), k=bins, seed=seed)
        prior = empirical_prior(centres, photo_ab(paths), sigma=sigma)
    else:
        raise ValueError(f"unknown palette method {method!r}; use 'kmeans' or 'grid'")
    return ABPalette(centres, prior, rebalance_weights(prior, lam))


def prior_palette(bins: torch.Tensor, paths: Iterable, grid: float = AB_GRID, sigma: float = PRIOR_SIGMA,
                  lam: float = REBALANCE_LAMBDA) -> ABPalette:
    """Given bins (Q, 2) in CIE units, a palette with the photos' smoothed prior and rebalancing weights.

    What a model with a fixed set of bins (cicgan's sRGB grid) needs from its training data. Pixels are
    counted per ``grid`` cell (the fast table of :func:`~polychrome.color.quantize.gamut_bins`) and each cell's count goes
    to the bin nearest its centre: exact for grid bins of the same ``grid``, within half a cell otherwise.
    """
    bins = torch.as_tensor(bins, dtype=torch.float32)
    cells, counts = gamut_bins_from_photos(paths, grid=grid)
    per_bin = torch.zeros(len(bins), dtype=torch.float64)
    per_bin.index_add_(0, nearest_bin(cells, bins), counts.double())
    prior = empirical_prior(bins, counts=per_bin, sigma=sigma)
    return ABPalette(bins, prior, rebalance_weights(prior, lam))
