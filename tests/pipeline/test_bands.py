"""The full-resolution path in bands: each band-wise step equals the whole-image step it replaces, and a
photo file comes out as the float path gives it (quantised), within one level."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import colour_photo, grey_photo
from PIL import Image

from polychrome.color.lab import lab_to_rgb, lab_to_srgb8
from polychrome.io import photo_pixels, pil_to_rgb_array, to_uint8
from polychrome.pipeline.batch import colorize_file
from polychrome.pipeline.core import (
    RowUpsampler,
    bands,
    lightness,
    lightness_rows,
    render,
    resize_l,
    working_lightness,
)


def test_bands_cover_every_row_once():
    for h, w, px in ((1, 1, 10), (7, 3, 10), (100, 37, 200), (5, 10_000, 64)):
        rows = [r for r0, r1 in bands(h, w, px) for r in range(r0, r1)]
        assert rows == list(range(h))


@pytest.mark.parametrize("hw_in,hw_out", [((6, 8), (50, 77)), ((9, 5), (9, 31)), ((40, 30), (17, 13)), ((3, 4), (3, 4))])
def test_row_upsampler_equals_interpolate(hw_in, hw_out):
    torch.manual_seed(0)
    x = torch.randn(1, 2, *hw_in)
    want = F.interpolate(x, size=hw_out, mode="bilinear", align_corners=False)
    up = RowUpsampler(x, hw_out)
    got = torch.cat([up.rows(r0, r1) for r0, r1 in bands(*hw_out, pixels=hw_out[1] * 3)], dim=2)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("make", [grey_photo, colour_photo])
def test_lightness_rows_of_8bit_pixels_equal_the_float_path(make):
    img = make(3, w=97, h=61)
    want = lightness(pil_to_rgb_array(img)[0])
    rows = lightness_rows(photo_pixels(img))
    got = torch.cat([rows(r0, r1) for r0, r1 in bands(61, 97, pixels=500)], dim=2)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_lightness_rows_of_a_16bit_photo_keep_its_precision():
    a = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    img = Image.fromarray(a)
    assert img.mode.startswith("I;16")
    pixels = photo_pixels(img)
    assert pixels.kind == "F"
    want = lightness(pil_to_rgb_array(img)[0])
    torch.testing.assert_close(lightness_rows(pixels)(0, 30), want, rtol=0, atol=1e-4)


def test_working_lightness_equals_resizing_the_whole_l():
    img = grey_photo(5, w=301, h=203)
    L = lightness(pil_to_rgb_array(img)[0])
    rows = lightness_rows(photo_pixels(img))
    got = working_lightness(rows, (203, 301), (43, 64))
    torch.testing.assert_close(got, resize_l(L, (43, 64)), rtol=0, atol=1e-3)


def test_lab_to_srgb8_is_the_float_join_quantised_within_one_level():
    torch.manual_seed(0)
    n = 200_000
    L, a, b = torch.rand(n) * 100, (torch.rand(n) - 0.5) * 220, (torch.rand(n) - 0.5) * 220
    want = to_uint8(lab_to_rgb(torch.stack([L, a, b]).view(1, 3, 1, n))[0, :, 0].T.numpy())
    got = lab_to_srgb8(L, a, b).numpy()
    d = np.abs(got.astype(int) - want.astype(int))
    assert d.max() <= 1 and d.mean() < 0.01


def test_render_in_bands_equals_the_whole_image_join():
    torch.manual_seed(1)
    L = torch.rand(1, 1, 70, 90) * 100
    ab = torch.randn(1, 2, 9, 11) * 30
    want = lab_to_rgb(torch.cat([L, F.interpolate(ab, (70, 90), mode="bilinear", align_corners=False)], 1))
    torch.testing.assert_close(render(L, ab), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("make,ext", [(grey_photo, ".jpg"), (colour_photo, ".png")])
def test_a_photo_file_is_the_float_path_within_one_level(tiny_model, tmp_path, make, ext, monkeypatch):
    src = tmp_path / f"in{ext}"
    make(7, w=333, h=250).save(src)
    monkeypatch.setattr("polychrome.pipeline.core.BAND_PIXELS", 333 * 7)  # many bands
    dst = colorize_file(tiny_model, src, tmp_path / "out.png")
    got = np.asarray(Image.open(dst)).astype(int)
    rgb, _ = pil_to_rgb_array(Image.open(src))
    want = tiny_model.colorize_uint8(rgb).astype(int)  # the float path, whole-image
    d = np.abs(got - want)
    assert d.max() <= 1 and d.mean() < 0.01
