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
    hex_to_ab,
    hints_to_json,
    load_hint_file,
    parse_hints,
    random_hint_counts,
    rasterize_hints,
    sample_hints,
    save_hint_file,
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
