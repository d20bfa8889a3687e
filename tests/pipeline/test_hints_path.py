"""Colour hints through the one pipeline: full-resolution hints land on the working grid in network units,
the colour near a hint moves toward it, and a model that cannot use hints says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _helpers import colorizer_of, grey_photo, save
from _hint_helpers import SpreadHints
from PIL import Image

import polychrome
from polychrome.color.hints import Hint, HintError, hex_to_ab
from polychrome.color.lab import AB_SCALE
from polychrome.colorizer import Colorizer
from polychrome.models import create_model
from polychrome.models.card import ModelCard
from polychrome.pipeline import colorize_file, working_shape

# Muted colours: in gamut at the test photos' mid lightness, so the output keeps the photo's L exactly.
RED, BLUE = "#b06050", "#5070a8"


def _mid_grey(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) float grey photo of lightness about 45..60 with a little texture."""
    rng = np.random.default_rng(seed)
    return np.repeat((0.42 + 0.12 * rng.random((h, w, 1))).astype(np.float32), 3, axis=2)


def _ab(rgb: np.ndarray, lab) -> np.ndarray:
    return lab(rgb)[..., 1:]


def test_hints_reach_the_model_on_the_working_grid_in_network_units():
    model = SpreadHints(infer_size=64)
    # 200 x 90 photo at working size 64 -> a 29 x 64 grid (non-square: x and y scale differently).
    assert working_shape(90, 200, 64) == (29, 64)
    colorizer_of(model).colorize_array(_mid_grey(90, 200), hints=[Hint(150, 20, RED), Hint(3.5, 88.9, BLUE)])
    L_net, hint_ab_net, hint_mask = model.seen[-1]
    assert L_net.shape == (1, 1, 29, 64) and hint_ab_net.shape == (1, 2, 29, 64) and hint_mask.shape == (1, 1, 29, 64)
    expected = torch.zeros(29, 64)
    # (150, 20): column int(150 * 64 / 200) = 48, row int(20 * 29 / 90) = 6; a 2x2 square from (row 5, col 47).
    expected[5:7, 47:49] = 1
    # (3.5, 88.9): column 1, row 28 (the last): the square is kept inside the grid, rows 27..28, cols 0..1.
    expected[27:29, 0:2] = 1
    torch.testing.assert_close(hint_mask[0, 0], expected)
    for (r, c), colour in [((5, 47), RED), ((27, 0), BLUE)]:
        want = torch.tensor(hex_to_ab(colour)) / AB_SCALE  # network units: ab / 128
        torch.testing.assert_close(hint_ab_net[0, :, r : r + 2, c : c + 2], want.view(2, 1, 1).expand(2, 2, 2))
    assert hint_ab_net[0][:, expected == 0].abs().max() == 0


def test_a_hint_model_without_hints_sees_zeros():
    model = SpreadHints()
    rgb = _mid_grey(30, 50)
    out = colorizer_of(model).colorize_array(rgb)
    _, hint_ab_net, hint_mask = model.seen[-1]
    assert hint_ab_net is not None and hint_mask is not None  # zeros, not None: one input format for a hint model
    assert hint_ab_net.abs().max() == 0 and hint_mask.abs().max() == 0
    np.testing.assert_array_equal(out, colorizer_of(model).colorize_array(rgb, hints=[]))


def test_colorize_file_moves_the_colour_near_a_hint_toward_it_and_keeps_size_and_L(tmp_path, lab):
    src = save(grey_photo(3, w=150, h=97), tmp_path / "in.png")
    grey = np.asarray(Image.open(src)).astype(np.float32) / 255.0
    hints = [Hint(30, 70, RED), Hint(120, 20, BLUE)]
    plain = colorize_file(colorizer_of(SpreadHints(infer_size=48)), src, tmp_path / "plain.png")
    hinted = colorize_file(colorizer_of(SpreadHints(infer_size=48)), src, tmp_path / "hinted.png", hints=hints)
    with Image.open(plain) as p, Image.open(hinted) as h:
        assert h.size == (150, 97) and h.mode == "RGB"
        plain_ab, hinted_ab, hinted_L = _ab(np.asarray(p), lab), _ab(np.asarray(h), lab), lab(np.asarray(h))[..., 0]
    assert np.median(np.abs(hinted_L - lab(grey)[..., 0])) < 0.5  # the photo's own lightness (8-bit rounding)
    for hint in hints:
        near = hinted_ab[int(hint.y) - 2 : int(hint.y) + 3, int(hint.x) - 2 : int(hint.x) + 3].reshape(-1, 2)
        before = plain_ab[int(hint.y) - 2 : int(hint.y) + 3, int(hint.x) - 2 : int(hint.x) + 3].reshape(-1, 2)
        target = np.array(hint.ab)
        dist_after = np.linalg.norm(near - target, axis=1).mean()
        dist_before = np.linalg.norm(before - target, axis=1).mean()
        assert dist_after < 5.0 < dist_before, (hint, dist_before, dist_after)
    # Far from both hints nothing changed: the hints act where they are put.
    assert np.abs(hinted_ab[5:15, 5:15]).max() < 1.0


def test_hints_follow_an_exif_rotated_photo(tmp_path, lab):
    """Hint coordinates are in the upright photo (as a viewer shows it), like the output's pixels."""
    upright = grey_photo(4, w=60, h=40)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # stored sideways (turned left), 40 x 60 ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... tagged "turn right to view": it shows as the upright 60 x 40 photo
    stored.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = colorize_file(colorizer_of(SpreadHints()), tmp_path / "rot.jpg", tmp_path / "out.png", hints=[Hint(50, 8, RED)])
    with Image.open(out) as o:
        assert o.size == (60, 40)
        ab = _ab(np.asarray(o), lab)
    assert np.linalg.norm(ab[8, 50] - np.array(Hint(50, 8, RED).ab)) < 5.0
    assert np.abs(ab[40 - 8, 60 - 50]).max() < 1.0  # not where the stored (sideways) pixels would put it


def test_a_model_without_hint_inputs_refuses_hints(tiny_model, tmp_path, make_photo):
    rgb = _mid_grey(20, 30)
    with pytest.raises(HintError, match=r"^model simple-unet cannot use colour hints; use a hint model such as 'hints'"):
        colorizer_of(tiny_model).colorize_array(rgb, hints=[Hint(1, 1, RED)])
    src = make_photo(tmp_path / "a.png", 30, 20)
    with pytest.raises(HintError, match="cannot use colour hints") as e:
        colorize_file(colorizer_of(tiny_model), src, tmp_path / "out.png", hints=[Hint(1, 1, RED)])
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out.png").exists()
    # Hint tensors on the working grid: refused too, unless they hold no hint at all.
    L = torch.full((1, 1, 20, 30), 50.0)
    with pytest.raises(HintError, match="cannot use colour hints"):
        colorizer_of(tiny_model).predict_ab(L, 64, hint_ab=torch.zeros(1, 2, 20, 30), hint_mask=torch.ones(1, 1, 20, 30))
    empty = colorizer_of(tiny_model).predict_ab(L, 64, hint_ab=torch.zeros(1, 2, 20, 30), hint_mask=torch.zeros(1, 1, 20, 30))
    torch.testing.assert_close(empty, colorizer_of(tiny_model).predict_ab(L, 64))
    # An empty hint list asks for nothing the model cannot do.
    np.testing.assert_array_equal(colorizer_of(tiny_model).colorize_array(rgb, hints=[]), colorizer_of(tiny_model).colorize_array(rgb))


def test_a_hint_outside_the_photo_is_a_hint_error():
    with pytest.raises(HintError, match=r"outside the 30x20 photo"):
        colorizer_of(SpreadHints()).colorize_array(_mid_grey(20, 30), hints=[Hint(30, 5, RED)])


def test_working_grid_hint_tensors_equal_the_rasterised_hints_and_are_checked():
    model = SpreadHints(infer_size=32)
    L = torch.full((2, 1, 40, 80), 55.0)  # a batch of 2; working grid 16 x 32
    hint_ab, hint_mask = torch.zeros(1, 2, 16, 32), torch.zeros(1, 1, 16, 32)
    hint_ab[..., 4:6, 10:12] = torch.tensor(Hint(0, 0, RED).ab).view(1, 2, 1, 1)
    hint_mask[..., 4:6, 10:12] = 1
    by_tensor = colorizer_of(model).predict_ab(L, 32, hint_ab=hint_ab, hint_mask=hint_mask)  # one set, broadcast to the batch
    assert by_tensor.shape == (2, 2, 40, 80)
    # (28, 13) -> column int(28 * 32 / 80) = 11, row int(13 * 16 / 40) = 5: the square from (4, 10).
    torch.testing.assert_close(colorizer_of(model).predict_ab(L, 32, hints=[Hint(28, 13, RED)]), by_tensor)
    # (21, 9) -> column 8, row 3: another square, another result.
    assert not torch.allclose(colorizer_of(model).predict_ab(L, 32, hints=[Hint(21, 9, RED)]), by_tensor)
    with pytest.raises(ValueError, match="together"):
        colorizer_of(model).predict_ab(L, 32, hint_ab=hint_ab)
    with pytest.raises(ValueError, match="working grid"):
        colorizer_of(model).predict_ab(L, 32, hint_ab=torch.zeros(1, 2, 40, 80), hint_mask=torch.zeros(1, 1, 40, 80))
    with pytest.raises(ValueError, match="not both"):
        colorizer_of(model).predict_ab(L, 32, hints=[], hint_ab=hint_ab, hint_mask=hint_mask)


def test_bf16_with_hints_matches_fp32():
    rgb = _mid_grey(45, 70)
    hints = [Hint(10, 10, RED), Hint(60, 40, BLUE)]
    fp32 = colorizer_of(SpreadHints()).colorize_array(rgb, hints=hints)
    model = SpreadHints()
    bf16 = colorizer_of(model, "bf16").colorize_array(rgb, hints=hints)
    assert bf16.dtype == np.float32 and bf16.shape == rgb.shape
    np.testing.assert_allclose(bf16, fp32, atol=0.02)  # bfloat16 rounding of the hint colours only
    _, hint_ab_net, hint_mask = model.seen[-1]
    assert hint_mask.sum() == 8 and hint_ab_net.abs().max() > 0


def test_python_api_takes_hints_as_objects_json_structure_or_file(tmp_path, lab):
    img = Image.fromarray((_mid_grey(40, 60) * 255 + 0.5).astype(np.uint8))
    model = SpreadHints()
    as_objects = polychrome.colorize(img, model=model, hints=[Hint(20, 10, RED)])
    as_json = polychrome.colorize(img, model=model, hints=[{"x": 20, "y": 10, "color": RED}])
    (tmp_path / "h.json").write_text(json.dumps([{"x": 20, "y": 10, "color": RED}]))
    as_file = polychrome.colorize(np.asarray(img), model=model, hints=tmp_path / "h.json")
    assert isinstance(as_objects, Image.Image) and as_objects.size == (60, 40)
    np.testing.assert_array_equal(np.asarray(as_objects), np.asarray(as_json))
    np.testing.assert_array_equal(np.asarray(as_objects), as_file)
    assert np.linalg.norm(_ab(np.asarray(as_objects), lab)[10, 20] - np.array(Hint(0, 0, RED).ab)) < 5.0
    with pytest.raises(HintError, match="hint 0: missing color"):
        polychrome.colorize(img, model=model, hints=[{"x": 1, "y": 2}])


def test_python_api_refuses_hints_for_a_model_without_hint_inputs(tiny_model):
    with pytest.raises(HintError, match="cannot use colour hints"):
        polychrome.colorize(np.zeros((8, 8, 3), np.uint8), model=tiny_model, hints=[Hint(1, 1, RED)])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_icolorit_tiny_through_the_pipeline(precision):
    torch.manual_seed(0)
    model = create_model("icolorit-tiny")
    card = ModelCard.for_model(model, working_size=40)  # a size that is no multiple of 16
    assert card.takes_hints
    colorizer = Colorizer(model, card, precision)
    rgb = _mid_grey(37, 61)
    out = colorizer.colorize_array(rgb, hints=[Hint(5, 30, RED), Hint(60, 0, BLUE)])
    assert out.shape == (37, 61, 3) and out.dtype == np.float32 and np.isfinite(out).all()
    auto = colorizer.colorize_array(rgb)
    assert auto.shape == (37, 61, 3) and np.isfinite(auto).all()


# ----------------------------------------------------------------------------- issue 13: hints that obey


def _hue_at(colorizer: Colorizer, rgb: np.ndarray, hint: Hint) -> float:
    """Hue angle (degrees) of the model's ab in a 5 x 5 px box around ``hint``."""
    from polychrome.pipeline import lightness

    ab = colorizer.predict_ab(lightness(rgb), hints=[hint])
    x, y = int(hint.x), int(hint.y)
    a, b = ab[0, :, y - 2 : y + 3, x - 2 : x + 3].mean(dim=(1, 2)).tolist()
    return float(np.degrees(np.arctan2(b, a)))


def test_red_and_green_hints_reach_the_model_as_opposite_a():
    """The inference joint for the issue's two colours: same b, opposite a, in network units, a first."""
    model = SpreadHints(infer_size=64)
    red, green = Hint(40, 30, "#c0392b"), Hint(40, 30, "#2e9e3a")
    got = []
    for h in (red, green):
        colorizer_of(model).colorize_array(_mid_grey(60, 80), hints=[h])
        _, hint_ab_net, hint_mask = model.seen[-1]
        got.append((hint_ab_net * AB_SCALE)[0, :, hint_mask[0, 0] > 0].mean(dim=1))
    assert got[0][0] == pytest.approx(52.9, abs=0.1) and got[1][0] == pytest.approx(-51.6, abs=0.1)
    assert got[0][1] == pytest.approx(39.2, abs=0.1) and got[1][1] == pytest.approx(42.3, abs=0.1)


def test_the_bundled_hint_model_tells_a_red_hint_from_a_green_one():
    model = Colorizer.from_pretrained("hints")
    rgb = _mid_grey(120, 160, seed=3)
    red = _hue_at(model, rgb, Hint(80, 60, "#c0392b"))
    green = _hue_at(model, rgb, Hint(80, 60, "#2e9e3a"))
    gap = abs((red - green + 180) % 360 - 180)
    assert gap >= 90, f"red {red:.0f} deg, green {green:.0f} deg"
