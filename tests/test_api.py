"""The Python API: polychrome.colorize returns what it was given (PIL -> PIL, array -> array of that dtype)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import polychrome


def test_pil_in_pil_out_same_size(tiny_model, photo, lab):
    img = Image.fromarray(photo(37, 53))
    out = polychrome.colorize(img, model=tiny_model)
    assert isinstance(out, Image.Image)
    assert out.size == (53, 37) and out.mode == "RGB"
    # The photo's own lightness (gamut clamping may move a few saturated pixels a little).
    assert np.median(np.abs(lab(out)[..., 0] - lab(img)[..., 0])) < 0.5


def test_pil_rgba_keeps_alpha(tiny_model, photo):
    alpha = np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))
    img = Image.fromarray(np.dstack([photo(30, 40), alpha]), "RGBA")
    out = polychrome.colorize(img, model=tiny_model)
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out.getchannel("A")), alpha)


def test_pil_and_array_paths_agree(tiny_model, photo):
    arr = photo(29, 31)
    from_pil = np.asarray(polychrome.colorize(Image.fromarray(arr), model=tiny_model))
    from_array = polychrome.colorize(arr, model=tiny_model)
    np.testing.assert_array_equal(from_pil, from_array)


def test_uint8_array_returns_uint8_of_the_same_shape(tiny_model, photo, lab):
    arr = photo(24, 35)
    out = polychrome.colorize(arr, model=tiny_model)
    assert out.dtype == np.uint8 and out.shape == arr.shape
    assert np.abs(lab(out)[..., 1:]).mean() > 1.0  # coloured, not just the grey copy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_array_returns_float(tiny_model, photo, dtype):
    arr = photo(24, 35).astype(dtype) / 255.0
    out = polychrome.colorize(arr, model=tiny_model)
    assert out.dtype == dtype and out.shape == arr.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_allclose(out, polychrome.colorize(photo(24, 35), model=tiny_model) / 255.0, atol=1 / 255 + 1e-6)


def test_uint16_array_returns_uint16(tiny_model, photo):
    arr = photo(20, 22).astype(np.uint16) * 257
    out = polychrome.colorize(arr, model=tiny_model)
    assert out.dtype == np.uint16 and out.shape == arr.shape
    assert out.max() > 255  # kept on the 16-bit scale


def test_rgba_array_keeps_alpha(tiny_model, photo):
    alpha = np.linspace(0, 255, 26 * 18).reshape(18, 26).astype(np.uint8)
    arr = np.dstack([photo(18, 26), alpha])
    out = polychrome.colorize(arr, model=tiny_model)
    assert out.shape == (18, 26, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], alpha)


def test_grey_array_comes_back_as_rgb_of_the_same_size(tiny_model, photo):
    grey = photo(18, 26)[..., 0]
    out = polychrome.colorize(grey, model=tiny_model)
    assert out.shape == (18, 26, 3) and out.dtype == np.uint8


def test_model_given_by_path(tiny_model, tiny_model_dir, photo):
    arr = photo(16, 20)
    np.testing.assert_array_equal(
        polychrome.colorize(arr, model=str(tiny_model_dir)), polychrome.colorize(arr, model=tiny_model)
    )
    assert polychrome.Colorizer.from_pretrained(tiny_model_dir).card.working_size == 64


def test_bad_inputs_raise_clear_errors(tiny_model):
    with pytest.raises(TypeError, match="PIL image or a numpy array"):
        polychrome.colorize([[0, 1]], model=tiny_model)
    with pytest.raises(ValueError, match="shape"):
        polychrome.colorize(np.zeros((4, 4, 2), np.uint8), model=tiny_model)
    with pytest.raises(TypeError, match="int32"):
        polychrome.colorize(np.zeros((4, 4, 3), np.int32), model=tiny_model)
