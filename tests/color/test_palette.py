"""color/palette: photos' ab, grid bins and K-means palettes from photos, the palette object and its file."""

from __future__ import annotations

import pytest
import torch
from _helpers import random_ab

from polychrome.color.palette import (
    ABPalette,
    ab_of_photo,
    build_palette,
    gamut_bins_from_photos,
    kmeans_palette,
    photo_ab,
    prior_palette,
)
from polychrome.color.quantize import AB_GRID, empirical_prior, gamut_bins


# --------------------------------------------------------------------------- reading photos and grid bins
def test_grid_bins_from_photo_files(tmp_path, make_photo):
    paths = [make_photo(tmp_path / f"{i}.png", 24, 16, seed=i) for i in range(2)]
    bins, counts = gamut_bins_from_photos(paths)
    assert counts.sum() == 2 * 24 * 16
    assert (bins.remainder(AB_GRID) == 0).all()


def test_photo_ab_reads_paths_and_passes_tensors(tmp_path, make_photo):
    path = make_photo(tmp_path / "p.png", 12, 8, seed=1)
    ab = torch.zeros(2, 3, 3)
    got = list(photo_ab([path, ab]))
    assert torch.equal(got[0], ab_of_photo(path)) and got[0].shape == (2, 8, 12)
    assert got[1] is ab
    # From photos or from their ab: the same bins and counts.
    by_path, by_ab = gamut_bins_from_photos([path]), gamut_bins([ab_of_photo(path)])
    assert torch.equal(by_path[0], by_ab[0]) and torch.equal(by_path[1], by_ab[1])


def test_prior_palette_counts_the_photos_per_bin(tmp_path, make_photo, grid_bins):
    paths = [make_photo(tmp_path / f"{i}.png", 16, 16, seed=i) for i in range(2)]
    pal = prior_palette(grid_bins, paths)
    # Grid bins of the same grid: exactly the prior of the photos' own pixels.
    expected = empirical_prior(grid_bins, photo_ab(paths))
    torch.testing.assert_close(pal.prior, expected)
    assert torch.equal(pal.bins, grid_bins)


def test_kmeans_and_palette_shape_errors():
    with pytest.raises(ValueError, match=r"ab must have shape \(N, 2\), got \(4, 3\)"):
        kmeans_palette(torch.zeros(4, 3), k=2)
    with pytest.raises(ValueError, match=r"bins must have shape \(Q, 2\)"):
        ABPalette(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="Q >= 2"):
        ABPalette(torch.zeros(1, 2))


# --------------------------------------------------------------------------- k-means
def test_kmeans_finds_separated_clusters_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-50.0, 20.0], [0.0, 0.0], [40.0, 60.0]])
    x = (centres.repeat_interleave(200, 0) + torch.randn(600, 2, generator=g)).contiguous()
    found = kmeans_palette(x, k=3, seed=1)
    torch.testing.assert_close(found, centres, atol=0.5, rtol=0)  # sorted by a, like centres
    assert torch.equal(found, kmeans_palette(x, k=3, seed=1))
    with pytest.raises(ValueError, match="at least k"):
        kmeans_palette(x[:2], k=3)


# --------------------------------------------------------------------------- the palette
def test_palette_save_load_round_trip(tmp_path, grid_bins):
    prior = empirical_prior(grid_bins, [random_ab(500)])
    pal = ABPalette(grid_bins, prior)
    torch.testing.assert_close((pal.prior * pal.weights).sum(), torch.tensor(1.0))
    path = pal.save(tmp_path / "p.safetensors", {"grid": "10"})
    back = ABPalette.load(path)
    for name in ("bins", "prior", "weights"):
        assert torch.equal(getattr(back, name), getattr(pal, name))
    # Buffers: they travel inside a model's state dict.
    assert set(pal.state_dict()) == {"bins", "prior", "weights"}
    target = ABPalette.default()
    assert target.num_bins == pal.num_bins
    target.set_(back)
    assert torch.equal(target.prior, pal.prior)
    with pytest.raises(ValueError, match="sizes differ"):
        ABPalette(grid_bins[:10]).set_(pal)


def test_palette_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(3)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not an ab palette"):
        ABPalette.load(tmp_path / "x.safetensors")


@pytest.mark.parametrize("method", ["grid", "kmeans"])
def test_build_palette_from_photos(tmp_path, make_photo, method):
    paths = [make_photo(tmp_path / f"{i}.png", 20, 20, seed=i) for i in range(3)]
    pal = build_palette(paths, method=method, bins=8, samples_per_photo=64)
    if method == "kmeans":
        assert pal.num_bins == 8
    torch.testing.assert_close(pal.prior.sum(), torch.tensor(1.0))
    torch.testing.assert_close((pal.prior * pal.weights).sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="palette method"):
        build_palette(paths, method="octree")
