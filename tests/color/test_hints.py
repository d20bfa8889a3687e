"""color/hints.py: the hint file, rasterisation, and the random sampler used in training and evaluation."""

from __future__ import annotations

import json

import pytest
import torch
from skimage.color import rgb2lab

from polychrome.color.hints import (
    Hint,
    HintError,
    ab_to_hex,
    far_gamut_ab,
    hex_to_ab,
    hint_fidelity,
    hint_regions,
    hints_to_json,
    in_gamut,
    load_hint_file,
    max_chroma_ab,
    off_truth_probe,
    paint_hints,
    parse_hints,
    random_gamut_ab,
    random_hint_counts,
    rasterize_hints,
    recolor_hints,
    sample_hint_corners,
    sample_hints,
    save_hint_file,
    summarize_fidelity,
)


def test_hex_to_ab_matches_scikit_image():
    a, b = hex_to_ab("#aa3322")
    ref = rgb2lab([[[0xAA / 255, 0x33 / 255, 0x22 / 255]]])[0, 0]
    assert a == pytest.approx(ref[1], abs=1e-3) and b == pytest.approx(ref[2], abs=1e-3)
    assert hex_to_ab("#abc") == hex_to_ab("#aabbcc")
    assert hex_to_ab("#808080") == pytest.approx((0.0, 0.0), abs=0.01)  # kornia's D65 constants: ~3e-3


def test_ab_to_hex_round_trips_an_in_gamut_colour():
    lab = rgb2lab([[[0x33 / 255, 0x66 / 255, 0x99 / 255]]])[0, 0]
    assert ab_to_hex(*lab) == "#336699"


@pytest.mark.parametrize("bad", ["red", "#12345", "#ggg000", "", None, 3])
def test_bad_colours_are_hint_errors(bad):
    with pytest.raises(HintError, match="hex colour"):
        hex_to_ab(bad)


def test_parse_and_write_round_trip(tmp_path):
    raw = [{"x": 120, "y": 45, "color": "#AA3322"}, {"x": 3.5, "y": 0, "color": "#0f0"}]
    hints = parse_hints(raw)
    assert hints[0] == Hint(120, 45, "#aa3322") and hints[1].color == "#00ff00"
    assert hints_to_json(hints) == [{"x": 120, "y": 45, "color": "#aa3322"}, {"x": 3.5, "y": 0, "color": "#00ff00"}]
    path = save_hint_file(hints, tmp_path / "h.json")
    assert load_hint_file(path) == hints


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"x": 1}, "expected a JSON list"),
        ([1], "hint 0: expected an object"),
        ([{"x": 1, "y": 2}], "hint 0: missing color"),
        ([{"x": 1, "y": 2, "color": "#fff", "size": 3}], "unknown field"),
        ([{"x": "1", "y": 2, "color": "#fff"}], "x must be a finite number"),
        ([{"x": 1, "y": float("nan"), "color": "#fff"}], "y must be a finite number"),
        ([{"x": -1, "y": 2, "color": "#fff"}], ">= 0"),
        ([{"x": True, "y": 2, "color": "#fff"}], "x must be a finite number"),
        ([{"x": 10**400, "y": 2, "color": "#fff"}], "x must be a finite number"),
    ],
)
def test_malformed_hints_name_the_source_and_entry(obj, message):
    with pytest.raises(HintError, match=message) as e:
        parse_hints(obj, "h.json")
    assert str(e.value).startswith("h.json: ") and "\n" not in str(e.value)


def test_unreadable_hint_files(tmp_path):
    with pytest.raises(HintError, match="cannot read hint file"):
        load_hint_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[{'x': 1}]")
    with pytest.raises(HintError, match=r"bad.json: not valid JSON \(line 1"):
        load_hint_file(bad)
    bad.write_text(json.dumps([{"x": 1, "y": 1, "color": "blue"}]))
    with pytest.raises(HintError, match="bad.json: hint 0: colour 'blue'"):
        load_hint_file(bad)


def test_rasterize_maps_full_resolution_coordinates_onto_the_working_grid():
    hints = parse_hints([{"x": 320, "y": 10, "color": "#ff0000"}, {"x": 639.9, "y": 479.9, "color": "#0000ff"}])
    hint_ab, mask = rasterize_hints(hints, (480, 640), (120, 160))
    assert hint_ab.shape == (1, 2, 120, 160) and mask.shape == (1, 1, 120, 160)
    # (320, 10) -> column 80, row 2: a 2x2 square around it; the corner hint is kept inside the grid.
    assert mask[0, 0].nonzero().tolist() == [[1, 79], [1, 80], [2, 79], [2, 80], [118, 158], [118, 159], [119, 158], [119, 159]]
    assert hint_ab[0, :, 2, 80].tolist() == pytest.approx(list(hex_to_ab("#ff0000")))
    assert hint_ab[0, :, 119, 159].tolist() == pytest.approx(list(hex_to_ab("#0000ff")))
    assert (hint_ab[:, :, mask[0, 0] == 0] == 0).all()


def test_rasterize_rejects_a_hint_outside_the_photo():
    with pytest.raises(HintError, match=r"hint 1 at \(640, 3\) lies outside the 640x480 photo"):
        rasterize_hints(parse_hints([{"x": 1, "y": 1, "color": "#fff"}, {"x": 640, "y": 3, "color": "#fff"}]), (480, 640), (48, 64))


def test_sample_hints_colours_each_square_with_its_true_mean():
    ab = torch.randn(3, 2, 16, 20) * 30
    counts = torch.tensor([5, 0, 40])
    hint_ab, mask = sample_hints(ab, counts, patch=2, generator=torch.Generator().manual_seed(0))
    assert hint_ab.shape == ab.shape and mask.shape == (3, 1, 16, 20)
    assert mask[1].sum() == 0 and (hint_ab[1] == 0).all()
    assert 4 * 2 < mask[0].sum() <= 4 * 5  # 5 squares of 4 px, possibly overlapping
    assert (hint_ab * (1 - mask) == 0).all()  # no colour where there is no hint
    # A pixel covered by exactly one square carries that square's mean: find a lone square.
    h1, m1 = sample_hints(ab[:1], 1, generator=torch.Generator().manual_seed(3))
    (r, c), *_ = m1[0, 0].nonzero().tolist()
    assert m1.sum() == 4
    assert h1[0, :, r, c].tolist() == pytest.approx(ab[0, :, r : r + 2, c : c + 2].mean(dim=(1, 2)).tolist(), abs=1e-4)


def test_more_hints_extend_fewer_with_the_same_seed():
    ab = torch.randn(2, 2, 24, 24) * 30
    _, m5 = sample_hints(ab, 5, generator=torch.Generator().manual_seed(7))
    _, m20 = sample_hints(ab, 20, generator=torch.Generator().manual_seed(7))
    assert ((m5 <= m20).all()) and m20.sum() > m5.sum()
    _, again = sample_hints(ab, 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(m5, again)


def test_random_hint_counts_stay_in_range():
    c = random_hint_counts(1000, 2, 9, torch.Generator().manual_seed(0))
    assert c.min() == 2 and c.max() == 9 and c.dtype == torch.long
    with pytest.raises(ValueError):
        random_hint_counts(4, 5, 2)


def test_log_hint_counts_favour_few_hints_but_reach_the_top():
    c = random_hint_counts(20000, 0, 200, torch.Generator().manual_seed(0), sampling="log")
    assert c.min() == 0 and c.max() == 200
    assert 8 <= c.median() <= 18  # log-uniform count + 1 over [1, 201]: median about sqrt(201) - 1
    assert 0.2 < (c > 50).float().mean() < 0.3
    with pytest.raises(ValueError, match="uniform, log"):
        random_hint_counts(4, 0, 2, sampling="gauss")


# ----------------------------------------------------------------------------- issue 13: hints that obey

# The issue's four colours and their Lab chroma (CIE units): a is green(-)..red(+), b is blue(-)..yellow(+).
ISSUE_13_COLOURS = {
    "#c0392b": (52.9, 39.2),
    "#2e9e3a": (-51.6, 42.3),
    "#2f5fbf": (17.8, -55.1),
    "#e0c020": (-3.1, 75.1),
}


@pytest.mark.parametrize("colour,ab", list(ISSUE_13_COLOURS.items()))
def test_hex_to_ab_gives_a_then_b_with_their_signs(colour, ab):
    assert hex_to_ab(colour) == pytest.approx(ab, abs=0.05)


def test_rasterize_keeps_a_in_channel_0_and_b_in_channel_1():
    """Red and green differ in a, not b: the rasteriser must keep them apart (issue 13's red == green)."""
    for colour, (a, b) in ISSUE_13_COLOURS.items():
        hint_ab, mask = rasterize_hints([Hint(50, 40, colour)], (80, 100), (40, 50))
        assert hint_ab[0, 0, 20, 25].item() == pytest.approx(a, abs=0.05)
        assert hint_ab[0, 1, 20, 25].item() == pytest.approx(b, abs=0.05)
        assert mask[0, 0, 20, 25] == 1 and mask.sum() == 4


def test_sample_hints_is_its_corners_painted_with_the_same_draws():
    ab = torch.randn(3, 2, 17, 23) * 30
    counts = torch.tensor([0, 4, 60])
    hint_ab, mask = sample_hints(ab, counts, 2, torch.Generator().manual_seed(5))
    starts = sample_hint_corners(3, (17, 23), counts, 2, torch.Generator().manual_seed(5))
    assert starts.shape == (3, 1, 16, 22) and starts.sum((1, 2, 3)).tolist() == [0, 4, 60]
    h2, m2 = paint_hints(ab, starts, 2)
    assert torch.equal(hint_ab, h2) and torch.equal(mask, m2)


def test_max_chroma_is_the_gamut_edge():
    L = torch.tensor([5.0, 30.0, 50.0, 70.0, 97.0, 50.0])
    hue = torch.tensor([0.3, 1.2, 2.5, 3.9, 1.6, 5.2])
    edge = max_chroma_ab(L, hue)
    assert in_gamut(L, edge).all() and not in_gamut(L, edge * 1.02).any()
    assert torch.allclose(torch.atan2(edge[:, 1], edge[:, 0]), torch.atan2(hue.sin(), hue.cos()), atol=1e-4)
    assert in_gamut(torch.tensor([50.0]), torch.tensor([[0.0, 0.0]])).all()


def test_random_and_far_colours_are_in_gamut_and_far_ones_oppose_the_truth():
    g = torch.Generator().manual_seed(0)
    L = torch.rand(200, generator=g) * 80 + 10
    rnd = random_gamut_ab(L, g)
    assert in_gamut(L, rnd).all() and rnd.norm(dim=1).max() > 50  # vivid colours occur
    true = torch.randn(200, 2, generator=g) * 20
    far = far_gamut_ab(L, true, g)
    assert in_gamut(L, far).all()
    gap = torch.atan2(far[:, 1], far[:, 0]) - torch.atan2(true[:, 1], true[:, 0])
    gap = torch.rad2deg(torch.atan2(gap.sin(), gap.cos()).abs())
    assert gap.min() >= 135 - 1e-3


def _two_tone(h: int = 40, w: int = 40) -> torch.Tensor:
    """(1, 1, h, w) L: 30 above row h/2, 70 below (an edge across the photo)."""
    L = torch.full((1, 1, h, w), 30.0)
    L[..., h // 2 :, :] = 70.0
    return L


def test_hint_regions_stop_at_edges_and_fade_with_distance():
    L = _two_tone()
    seeds = torch.zeros(1, 1, 40, 40)
    seeds[..., 8:10, 20:22] = 1
    w = hint_regions(L, seeds, radius=16, l_tol=10.0)
    assert (w[seeds > 0] == 1).all()
    assert (w[..., 20:, :] == 0).all()  # the other side of the edge
    assert w[0, 0, 9, 20 + 7].item() == 1.0 and 0 < w[0, 0, 9, 20 + 12].item() < 1 and w[0, 0, 9, 38].item() == 0
    assert w[0, 0, 0, 20].item() == 1.0  # same tone, 8 px up: inside
    # NaN is never inside a region (callers pad crops with it).
    L2 = L.clone()
    L2[..., :, 30:] = float("nan")
    assert (hint_regions(L2, seeds, 16, 10.0)[..., 30:] == 0).all()


def test_recolor_hints_with_fraction_0_is_the_true_colour_sampler():
    g = torch.Generator().manual_seed(1)
    L, ab = torch.rand(2, 1, 24, 24) * 100, torch.randn(2, 2, 24, 24) * 20
    starts = sample_hint_corners(2, (24, 24), torch.tensor([3, 7]), 2, g)
    hint_ab, mask, target = recolor_hints(L, ab, starts, 2, torch.Generator().manual_seed(2), fraction=0.0)
    assert target is ab or torch.equal(target, ab)
    h2, m2 = paint_hints(ab, starts, 2)
    assert torch.equal(hint_ab, h2) and torch.equal(mask, m2)


def test_recolor_hints_change_the_target_in_the_hint_region_only_and_hints_match_the_target():
    L = _two_tone(48, 48).repeat(3, 1, 1, 1)
    ab = torch.zeros(3, 2, 48, 48)
    ab[:, 1] = 20.0  # a yellowish photo; the off-truth colours are random
    counts = torch.tensor([1, 0, 5])
    starts = sample_hint_corners(3, (48, 48), counts, 2, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    hint_ab, mask, target = recolor_hints(L, ab, starts, 2, g, fraction=1.0, max_per_photo=2, radius=8, l_tol=10.0)
    assert torch.equal(target[1], ab[1]) and mask[1].sum() == 0  # no hints: nothing to recolour
    changed = (target - ab).norm(dim=1) > 1e-3  # (3, 48, 48)
    assert changed[0].any() and changed[2].any()
    near = torch.nn.functional.max_pool2d(mask, 2 * 8 + 1, stride=1, padding=8)[:, 0] > 0  # squares grown by 8 px
    assert not (changed & ~near).any()  # never beyond the radius
    # The recoloured target stays in sRGB and keeps its region on one side of the edge.
    Lf = L.permute(0, 2, 3, 1)[changed]
    assert in_gamut(Lf[:, 0], target.permute(0, 2, 3, 1)[changed], tol=2e-3).all()
    # Every hint, true or off-truth, is the mean of the NEW target over its square: hints never contradict it.
    h2, m2 = paint_hints(target, starts, 2)
    assert torch.allclose(hint_ab, h2) and torch.equal(mask, m2)
    # The same generator state gives the same recolouring (exact resume).
    again = recolor_hints(L, ab, starts, 2, torch.Generator().manual_seed(4), 1.0, 2, 8, 10.0)
    assert all(torch.equal(x, y) for x, y in zip((hint_ab, mask, target), again))


def test_off_truth_probe_is_one_far_hint_per_photo_away_from_the_edges():
    g = torch.Generator().manual_seed(0)
    L = torch.full((4, 1, 40, 64), 55.0)
    ab = torch.zeros(4, 2, 40, 64)
    ab[:, 0] = 30.0  # red-ish truth: the probe should ask for a green-blue
    hint_ab, mask, region = off_truth_probe(L, ab, g, patch=2, radius=8)
    assert mask.sum((1, 2, 3)).tolist() == [4.0] * 4
    rows, cols = mask[:, 0].nonzero()[:, 1], mask[:, 0].nonzero()[:, 2]
    assert rows.min() >= 5 and rows.max() <= 34 and cols.min() >= 8 and cols.max() <= 55
    req = hint_ab.sum((2, 3)) / 4
    assert (req[:, 0] < 0).all() and in_gamut(torch.full((4,), 55.0), req).all()
    assert (region[mask > 0] == 1).all() and (region > 0).sum() > 4 * 4


def test_hint_fidelity_scores_an_obedient_and_an_ignoring_model():
    g = torch.Generator().manual_seed(1)
    L = _two_tone(48, 48).repeat(2, 1, 1, 1)
    ab = torch.zeros(2, 2, 48, 48)
    hint_ab, mask, region = off_truth_probe(L, ab, g, radius=8)
    base = torch.zeros_like(ab) + torch.tensor([3.0, 10.0]).view(1, 2, 1, 1)
    colour = (hint_ab.sum((2, 3)) / 4)[:, :, None, None]
    obedient = base + region * (colour - base)
    good = hint_fidelity(L, obedient, base, hint_ab, mask, region)
    assert good["de00"].max() < 1.0 and good["chroma"].min() > 0.95 and good["hue"].max() < 2
    assert (good["change_out"] == 0).all() and (good["change_in"] > 5).all()
    bad = hint_fidelity(L, base, base, hint_ab, mask, region)
    assert bad["de00"].min() > 10 and bad["chroma"].max() < 0.3 and (bad["change_in"] == 0).all()
    tint = base + (colour - base) * 0.5  # the bundled model's failure: the whole photo tinted
    s = summarize_fidelity(hint_fidelity(L, tint, base, hint_ab, mask, region))
    assert s["leak"] == pytest.approx(1.0) and s["chroma_median"] < 0.7
