"""color/quantize: bins, soft-encoding, prior and rebalancing, decoding, histograms (tensors only)."""

from __future__ import annotations

import pytest
import torch
from _helpers import random_ab

from polychrome.color.quantize import (
    AB_GRID,
    ab_histograms,
    decode,
    empirical_prior,
    gamut_bins,
    rebalance_weights,
    soft_encode,
    srgb_gamut_bins,
)


# --------------------------------------------------------------------------- bins
def test_grid_bins_keep_the_cells_that_occur():
    ab = torch.tensor([[0.0, 0.0], [4.9, -4.9], [12.0, 0.0], [-31.0, 58.0], [15.1, 0.0]])
    bins, counts = gamut_bins([ab])
    assert bins.tolist() == [[-30.0, 60.0], [0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]
    assert counts.tolist() == [1, 2, 1, 1]
    # Image-shaped tensors and several items accumulate; min_count drops rare cells.
    img = ab.T.reshape(1, 2, 1, 5)
    bins2, counts2 = gamut_bins([img, ab[:2]], min_count=2)
    assert bins2.tolist() == [[0.0, 0.0]] and counts2.tolist() == [4]


def test_grid_bins_far_outside_the_gamut_still_count():
    ab = torch.tensor([[0.0, 0.0], [1000.0, -2000.0], [1001.0, -2001.0]])
    bins, counts = gamut_bins([ab])
    assert bins.tolist() == [[0.0, 0.0], [1000.0, -2000.0]] and counts.tolist() == [1, 2]


def test_srgb_gamut_bins(grid_bins):
    assert grid_bins.shape == (262, 2)  # documented in srgb_gamut_bins
    assert grid_bins.abs().max() <= 110
    assert [0.0, 0.0] in grid_bins.tolist()


# --------------------------------------------------------------------------- soft encoding
def test_soft_encode_is_a_distribution_on_k_nearest(grid_bins):
    ab = random_ab(50).reshape(1, 2, 5, 10)
    z = soft_encode(ab, grid_bins, k=5, sigma=5.0)
    assert z.shape == (1, len(grid_bins), 5, 10)
    torch.testing.assert_close(z.sum(1), torch.ones(1, 5, 10))
    assert ((z > 0).sum(1) == 5).all()
    # The largest weight sits on the nearest bin.
    nearest = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), grid_bins).argmin(1)
    assert torch.equal(z.permute(0, 2, 3, 1).reshape(-1, len(grid_bins)).argmax(1), nearest)


def test_soft_encode_in_chunks_is_the_same(grid_bins, monkeypatch):
    import polychrome.color.quantize as q

    ab = random_ab(60, seed=2).reshape(1, 2, 6, 10)
    whole = soft_encode(ab, grid_bins)
    monkeypatch.setattr(q, "_SOFT_CHUNK", 7)
    assert torch.equal(soft_encode(ab, grid_bins), whole)


def test_soft_encode_exactly_on_a_bin():
    bins = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [50.0, 50.0]])
    z = soft_encode(torch.zeros(1, 2, 1, 1), bins, k=3, sigma=5.0)[0, :, 0, 0]
    w_far = torch.exp(torch.tensor(-100 / 50.0))
    expected = torch.stack([torch.tensor(1.0), w_far, w_far, torch.tensor(0.0)]) / (1 + 2 * w_far)
    torch.testing.assert_close(z, expected)


def test_round_trip_within_half_a_bin(grid_bins):
    # ab -> soft-encode -> log as logits -> annealed mean at small T: back in the right cell.
    ab = random_ab(400, seed=3)
    z = soft_encode(ab, grid_bins)
    back = decode(torch.log(z + 1e-12), grid_bins, mode="annealed", temperature=0.05)
    err = (back - ab).abs()
    assert err.max() <= AB_GRID / 2 + 1e-3, err.max()
    # The mean of the soft code itself is closer still than the bin centre for most pixels.
    mean = decode(torch.log(z + 1e-12), grid_bins, mode="mean")
    assert (mean - ab).norm(dim=1).median() < (back - ab).norm(dim=1).median()


# --------------------------------------------------------------------------- decoding
def test_decode_limits_on_synthetic_distributions():
    g = torch.Generator().manual_seed(0)
    bins = torch.randn(7, 2, generator=g) * 40
    logits = torch.randn(3, 7, 4, 5, generator=g) * 2
    p = torch.softmax(logits, 1)
    mean = torch.einsum("bqhw,qc->bchw", p, bins)
    mode = bins[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(decode(logits, bins, "mean"), mean)
    torch.testing.assert_close(decode(logits, bins, "annealed", temperature=1.0), mean)
    torch.testing.assert_close(decode(logits, bins, "mode"), mode)
    torch.testing.assert_close(decode(logits, bins, "annealed", temperature=1e-4), mode, atol=1e-3, rtol=0)
    # In between: the annealed mean moves monotonically from the mean towards the mode.
    dists = [(decode(logits, bins, "annealed", temperature=t) - mode).norm() for t in (1.0, 0.38, 0.1)]
    assert dists[0] > dists[1] > dists[2]


@pytest.mark.parametrize("mode", ["mean", "annealed", "mode"])
def test_decode_along_any_dimension(mode):
    """The bins may lie along the last dimension ((B, N, Q) rows, the fast layout for a CPU softmax) or
    any other: the same colours as the (B, Q, H, W) maps, with the 2 ab channels in the bins' place."""
    g = torch.Generator().manual_seed(1)
    bins = torch.randn(7, 2, generator=g) * 40
    logits = torch.randn(3, 7, 4, 5, generator=g) * 2
    maps = decode(logits, bins, mode, temperature=0.38)
    rows = decode(logits.flatten(2).transpose(1, 2), bins, mode, temperature=0.38, dim=-1)  # (3, 20, 2)
    torch.testing.assert_close(rows.transpose(1, 2).reshape(3, 2, 4, 5), maps)
    torch.testing.assert_close(decode(logits.movedim(1, 3), bins, mode, temperature=0.38, dim=3), maps.movedim(1, 3))


@pytest.mark.parametrize("mode", ["mean", "annealed"])
def test_decode_gradcheck(mode):
    g = torch.Generator().manual_seed(0)
    bins = torch.randn(5, 2, generator=g, dtype=torch.float64) * 30
    logits = torch.randn(1, 5, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)

    assert torch.autograd.gradcheck(lambda x: decode(x, bins, mode, temperature=0.38), (logits,))
    assert decode(logits.half(), bins).dtype == torch.float32


def test_decode_rejects_bad_arguments():
    with pytest.raises(ValueError, match="decode mode"):
        decode(torch.zeros(1, 2, 1, 1), torch.zeros(2, 2), mode="median")
    with pytest.raises(ValueError, match="temperature"):
        decode(torch.zeros(1, 2, 1, 1), torch.zeros(2, 2), temperature=0)


# --------------------------------------------------------------------------- prior and weights
def test_prior_sums_to_one_and_is_smoothed(grid_bins):
    ab = random_ab(2000, seed=5)
    raw = empirical_prior(grid_bins, [ab], sigma=0)
    smooth = empirical_prior(grid_bins, [ab])
    for p in (raw, smooth):
        assert p.shape == (len(grid_bins),) and (p >= 0).all()
        torch.testing.assert_close(p.sum(), torch.tensor(1.0))
    # Smoothing spreads mass onto empty neighbours and lowers the peak.
    assert (smooth > 0).sum() > (raw > 0).sum() and smooth.max() < raw.max()
    # Counts give the same answer as the pixels they come from.
    counts = torch.bincount(torch.cdist(ab[0].reshape(2, -1).T, grid_bins).argmin(1), minlength=len(grid_bins))
    torch.testing.assert_close(empirical_prior(grid_bins, counts=counts), smooth)


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.9])
def test_rebalance_weights_have_unit_expectation(lam):
    prior = torch.softmax(torch.randn(50, generator=torch.Generator().manual_seed(0)) * 3, 0)
    w = rebalance_weights(prior, lam)
    torch.testing.assert_close((prior * w).sum(), torch.tensor(1.0))
    # Rarer bins weigh more.
    order = torch.argsort(prior)
    assert (w[order][1:] <= w[order][:-1] + 1e-6).all()


def test_rebalance_weights_formula_and_uniform_limit():
    prior = torch.tensor([0.7, 0.2, 0.1, 0.0])
    w = rebalance_weights(prior, 0.5)
    raw = 1 / (0.5 * prior + 0.5 / 4)
    torch.testing.assert_close(w, raw / (prior * raw).sum())
    torch.testing.assert_close(rebalance_weights(prior, 1.0), torch.ones(4))


# --------------------------------------------------------------------------- histograms
def test_ab_histograms():
    ab = torch.zeros(2, 2, 3, 3)
    ab[1, 0] = 64.0  # image 1: every a = 64, b = 0
    ha, hb = ab_histograms(ab, n_bins=64, limit=128)
    assert ha.shape == hb.shape == (2, 64)
    torch.testing.assert_close(ha.sum(1), torch.ones(2))
    # 0 lies between bins 31 and 32 (centres -2 and +2): half in each; 64 between bins 47 and 48.
    assert ha[0, 31] == pytest.approx(0.5) and ha[0, 32] == pytest.approx(0.5)
    assert ha[1, 47] == pytest.approx(0.5) and ha[1, 48] == pytest.approx(0.5)
    assert torch.equal(hb[0], hb[1])


def test_the_bin_maths_reads_no_files(tmp_path):
    # Photos are color.palette's: a path given to the tensor maths is a TypeError saying where to go.
    with pytest.raises(TypeError, match="photo_ab"):
        gamut_bins([tmp_path / "photo.png"])
    with pytest.raises(TypeError, match="photo_ab"):
        empirical_prior(srgb_gamut_bins(), ["photo.png"])
    with pytest.raises(ValueError, match=r"an ab tensor must be"):
        gamut_bins([torch.zeros(3, 4, 4)])


def test_shape_errors_name_the_argument(grid_bins):
    with pytest.raises(ValueError, match=r"ab must have shape \(B, 2, H, W\), got \(2, 4, 4\)"):
        soft_encode(torch.zeros(2, 4, 4), grid_bins)
    with pytest.raises(ValueError, match=r"ab must have shape \(B, 2, H, W\), got \(1, 3, 4, 4\)"):
        ab_histograms(torch.zeros(1, 3, 4, 4))
