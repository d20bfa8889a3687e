"""The one colourisation path: full resolution, the input's own L, grey-first, alpha, EXIF, 16-bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from polychrome.color.lab import lab_to_rgb
from _helpers import colorizer_of

from polychrome.pipeline import colorize_file, gray_array, working_shape


@pytest.mark.parametrize("w,h", [(301, 97), (97, 301), (1, 1), (700, 5), (3, 400), (64, 64)])
def test_output_has_the_input_size(tiny_model, make_photo, tmp_path, w, h):
    src = make_photo(tmp_path / "in.png", w, h)
    dst = colorize_file(colorizer_of(tiny_model), src, tmp_path / "out" / "in.png")
    with Image.open(dst) as out:
        assert out.size == (w, h)
        assert out.mode == "RGB"


def test_working_shape_keeps_aspect_and_never_upscales():
    assert working_shape(97, 301, 64) == (21, 64)
    assert working_shape(301, 97, 64) == (64, 21)
    assert working_shape(20, 30, 64) == (20, 30)


def test_model_runs_at_the_working_size(constant_ab):
    model = constant_ab(0.0, 0.0)
    out = colorizer_of(model).colorize_array(np.full((200, 400, 3), 0.5, np.float32), size=64)
    assert out.shape == (200, 400, 3)
    assert model.seen == [(1, 1, 32, 64)]
    colorizer_of(model).colorize_array(np.full((200, 400, 3), 0.5, np.float32))  # size from the card (64)
    assert model.seen[-1] == (1, 1, 32, 64)


def test_output_keeps_input_L_and_takes_ab_from_the_model(constant_ab, lab):
    # Mid-grey with texture: ab (20, -10) stays inside the sRGB gamut, so no clamping moves L.
    rng = np.random.default_rng(1)
    grey = (100 + rng.integers(0, 40, size=(45, 77))).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    out = colorizer_of(constant_ab(20.0, -10.0)).colorize_array(rgb.astype(np.float32) / 255.0, size=32)
    out_u8 = (out * 255 + 0.5).astype(np.uint8)
    lab_in, lab_out = lab(rgb), lab(out_u8)
    assert np.abs(lab_out[..., 0] - lab_in[..., 0]).max() < 0.6  # only 8-bit rounding of the output
    assert np.abs(lab_out[..., 1] - 20.0).max() < 1.5
    assert np.abs(lab_out[..., 2] + 10.0).max() < 1.5


def test_tiny_model_keeps_L_on_mid_grey_and_adds_colour(tiny_model, lab):
    rng = np.random.default_rng(2)
    rgb = np.repeat((0.45 + 0.1 * rng.random((50, 70, 1))).astype(np.float32), 3, axis=2)
    out = colorizer_of(tiny_model).colorize_array(rgb)
    assert np.abs(lab(out)[..., 0] - lab(rgb)[..., 0]).max() < 0.05
    assert np.abs(lab(out)[..., 1:]).mean() > 2.0  # it really coloured something


def test_colour_input_is_turned_grey_first(tiny_model, lab, photo):
    """Two photos with the same L but different colours colourise identically."""
    L = torch.from_numpy(35 + 40 * photo(60, 90, seed=3)[..., 1] / 255.0).float()[None]
    y, x = torch.meshgrid(torch.linspace(-1, 1, 60), torch.linspace(-1, 1, 90), indexing="ij")
    # Two modest colour fields (in gamut for L 35..75, so both photos keep exactly this L).
    ab_a, ab_b = torch.stack([15 * x, 15 * y]), torch.stack([-12 * y, 10 * x * y])
    rgb_a, rgb_b = (lab_to_rgb(torch.cat([L, ab]), clip=True).permute(1, 2, 0).numpy() for ab in (ab_a, ab_b))
    assert np.abs(lab(rgb_b)[..., 0] - lab(rgb_a)[..., 0]).max() < 0.05
    assert np.abs(rgb_a - rgb_b).max() > 0.1
    out_a, out_b = colorizer_of(tiny_model).colorize_array(rgb_a), colorizer_of(tiny_model).colorize_array(rgb_b)
    np.testing.assert_allclose(out_a, out_b, atol=2e-3)
    np.testing.assert_allclose(out_a, colorizer_of(tiny_model).colorize_array(gray_array(rgb_a)), atol=2e-3)


def test_alpha_is_kept_in_png(tiny_model, photo, tmp_path):
    rgb = photo(40, 50)
    alpha = np.tile(np.linspace(0, 255, 50).astype(np.uint8), (40, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    dst = colorize_file(colorizer_of(tiny_model), tmp_path / "a.png", tmp_path / "out.png")
    with Image.open(dst) as out:
        assert out.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(out.getchannel("A")), alpha)


def test_exif_rotated_jpeg_comes_out_upright(tiny_model, tmp_path, lab):
    # Stored 60 wide x 40 high, dark left half; EXIF orientation 6 = show rotated 90 degrees clockwise.
    stored = np.full((40, 60, 3), 220, np.uint8)
    stored[:, :30] = 30
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    dst = colorize_file(colorizer_of(tiny_model), tmp_path / "rot.jpg", tmp_path / "out.jpg")
    with Image.open(dst) as out:
        assert out.size == (40, 60)  # upright: 40 wide, 60 high
        L = lab(out)[..., 0]
    # Rotated clockwise, the stored left half becomes the top half.
    assert L[:25].mean() < 20 and L[35:].mean() > 80


def test_16bit_png_keeps_its_range(constant_ab, tmp_path, lab):
    ramp = np.tile(np.linspace(0, 65535, 80), (30, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")  # really 16-bit on disk
    dst = colorize_file(colorizer_of(constant_ab(0.0, 0.0)), tmp_path / "deep.png", tmp_path / "out.png")
    with Image.open(dst) as out:
        assert out.size == (80, 30)
        L_out = lab(out)[..., 0]
    g = (ramp / 65535.0).astype(np.float32)
    L_true = lab(np.repeat(g[..., None], 3, axis=2))[..., 0]
    assert np.abs(L_out - L_true).max() < 0.6


@pytest.mark.parametrize("ext,fmt", [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".bmp", "BMP"), (".tif", "TIFF")])
def test_output_format_follows_the_extension(tiny_model, make_photo, tmp_path, ext, fmt):
    src = make_photo(tmp_path / f"in{ext}", 33, 21)
    dst = colorize_file(colorizer_of(tiny_model), src, tmp_path / "out" / f"in{ext}")
    with Image.open(dst) as out:
        assert out.format == fmt and out.size == (33, 21)
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]  # no temporary file left behind


def test_compare_puts_grey_left_of_colour(tiny_model, make_photo, tmp_path, lab):
    src = make_photo(tmp_path / "in.png", 41, 30)
    colour = np.asarray(Image.open(colorize_file(colorizer_of(tiny_model), src, tmp_path / "c.png")))
    both = np.asarray(Image.open(colorize_file(colorizer_of(tiny_model), src, tmp_path / "cmp.png", compare=True)))
    assert both.shape == (30, 82, 3)
    np.testing.assert_array_equal(both[:, 41:], colour)
    assert np.abs(lab(both[:, :41])[..., 1:]).max() < 1.0  # the left half is grey


# --------------------------------------------------------------------------- precision
def test_bf16_is_close_to_fp32_and_returns_fp32(tiny_model_dir, photo, lab):
    """bf16 autocast changes only the model call. Tolerance: ab within 0.5 CIE units of fp32 (a
    just-noticeable difference is about 2.3; measured about 0.12 on this model), sRGB within 0.005
    (about 1 level of 8 bits), L unchanged but for float rounding (the full-resolution L is fp32 either way)."""
    from polychrome.hub import load_model

    model = load_model(tiny_model_dir)  # its own copy: bf16 turns the weights channels_last in place
    rgb = photo(90, 120, seed=4).astype(np.float32) / 255.0
    fp32 = colorizer_of(model).colorize_array(rgb)
    bf16 = colorizer_of(model, "bf16").colorize_array(rgb)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert np.abs(bf16 - fp32).max() < 0.005
    lab32, lab16 = lab(fp32), lab(bf16)
    assert np.abs(lab16[..., 1:] - lab32[..., 1:]).max() < 0.5
    assert np.abs(lab16[..., 0] - lab32[..., 0]).max() < 0.05
    assert np.abs(lab32[..., 1:]).mean() > 2.0  # there is colour to compare
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)


def test_fp32_is_the_default_and_leaves_the_model_alone(tiny_model_dir, photo):
    from polychrome.hub import load_model

    model = load_model(tiny_model_dir)
    rgb = photo(40, 50, seed=5).astype(np.float32) / 255.0
    np.testing.assert_array_equal(colorizer_of(model).colorize_array(rgb), colorizer_of(model, "fp32").colorize_array(rgb))
    assert all(p.is_contiguous() for p in model.parameters())
    L = torch.full((1, 1, 30, 20), 50.0)
    assert colorizer_of(model, "bf16").predict_ab(L, 16).dtype == torch.float32


def test_unknown_precision_is_a_value_error(tiny_model, tmp_path, make_photo):
    with pytest.raises(ValueError, match="fp32, bf16"):
        colorizer_of(tiny_model, "fp16")
    with pytest.raises(ValueError, match="precision"):
        colorize_file(colorizer_of(tiny_model, "half"), make_photo(tmp_path / "a.png", 8, 8), tmp_path / "b.png")
    assert not (tmp_path / "b.png").exists()
