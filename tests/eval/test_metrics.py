"""metrics.py: colourfulness, PSNR, SSIM and CIEDE2000 on known cases; the training metrics still agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

import polychrome.eval.metrics as metrics
import torch
from skimage.metrics import structural_similarity

from polychrome.io import rgb_array_to_pil
from polychrome.eval.metrics import (
    PSNR_MAX_DB,
    ciede2000,
    colorfulness,
    mean_chroma,
    psnr,
    psnr_per_image,
    ssim,
    ssim_win_size,
    to_uint8,
)


def _random_u8(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- quantisation -----------------------------------------------------------------------------------


def test_to_uint8_matches_what_a_saved_file_holds():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.2, 1.2, (16, 16, 3)).astype(np.float32)
    x[0, :4, 0] = [0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0]  # rounding boundaries
    assert np.array_equal(to_uint8(x), np.asarray(rgb_array_to_pil(x)))


# --- colourfulness ----------------------------------------------------------------------------------


def test_colorfulness_of_grey_images_is_zero():
    g = np.random.default_rng(1).integers(0, 256, (20, 30, 1), dtype=np.uint8)
    assert colorfulness(np.repeat(g, 3, axis=2)) == 0.0
    assert colorfulness(np.full((5, 5, 3), 128.0)) == 0.0


def test_colorfulness_two_pixels_by_hand():
    # red (255,0,0) and blue (0,0,255): rg = [255, 0], yb = [127.5, -255]
    # std_rg = 127.5, std_yb = 191.25 -> sigma = 63.75 sqrt(13); mean_rg = 127.5, mean_yb = -63.75 -> mu = 63.75 sqrt(5)
    img = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    expected = 63.75 * (math.sqrt(13) + 0.3 * math.sqrt(5))
    assert colorfulness(img) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(272.6187, abs=1e-4)


def test_colorfulness_of_a_flat_colour_is_only_the_mean_term():
    red = np.zeros((4, 6, 3), dtype=np.uint8)
    red[..., 0] = 255  # rg = 255, yb = 127.5 everywhere, no spread
    assert colorfulness(red) == pytest.approx(0.3 * 127.5 * math.sqrt(5), rel=1e-12)


def test_colorfulness_float_0_255_and_batches():
    a, b = _random_u8(2), _random_u8(3)
    assert colorfulness(a.astype(np.float32)) == pytest.approx(colorfulness(a), rel=1e-6)
    batch = colorfulness(np.stack([a, b]))
    assert batch.shape == (2,)
    np.testing.assert_allclose(batch, [colorfulness(a), colorfulness(b)], rtol=1e-12)


def test_colorfulness_rejects_channels_first():
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, 3\)"):
        colorfulness(np.zeros((3, 8, 8), dtype=np.uint8))


# --- PSNR -------------------------------------------------------------------------------------------


def test_psnr_identical_is_capped_and_documented_as_such():
    a = _random_u8(4)
    assert psnr(a, a) == PSNR_MAX_DB == 100.0
    assert psnr(a, a, max_db=None) == math.inf


def test_psnr_known_mse():
    target = np.zeros((8, 10, 3), dtype=np.uint8)
    pred = np.full_like(target, 5)  # MSE = 25
    assert psnr(pred, target) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-9)  # 34.1514 dB
    # One level off in one value out of 240: MSE = 1/240, 72.0 dB; the cap does not touch it.
    pred = target.copy()
    pred[3, 4, 1] = 1
    assert psnr(pred, target) == pytest.approx(10 * math.log10(255**2 * 240), abs=1e-9)


def test_psnr_agrees_with_the_training_metric():
    a, b = _random_u8(5), _random_u8(6)
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].double() / 255.0  # noqa: E731
    assert float(psnr_per_image(t(a), t(b))[0]) == pytest.approx(psnr(a, b), abs=1e-4)


def test_psnr_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same size"):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


# --- SSIM -------------------------------------------------------------------------------------------


def test_ssim_identical_is_one_and_falls_with_noise():
    a = _random_u8(7, 40, 40)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(8)
    scores = [ssim(np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8), a) for s in (5, 20, 60)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_ssim_uses_the_documented_skimage_settings():
    a, b = _random_u8(9, 30, 30), _random_u8(10, 30, 30)
    ref = structural_similarity(a, b, channel_axis=2, data_range=255)
    assert ssim(b, a) == pytest.approx(ref, abs=1e-12)


def test_ssim_window_shrinks_for_tiny_photos_and_refuses_slivers():
    assert [ssim_win_size(*s) for s in [(100, 100), (6, 50), (5, 5), (3, 9)]] == [7, 5, 5, 3]
    a = _random_u8(11, 5, 6)
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3x3"):
        ssim(_random_u8(12, 2, 9), _random_u8(13, 2, 9))


# --- CIEDE2000 --------------------------------------------------------------------------------------


def test_ciede2000_identical_zero_black_white_hundred():
    a = _random_u8(14)
    assert ciede2000(a, a) == 0.0
    black, white = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)
    # Only L differs (0 vs 100) and S_L = 1 at mean L = 50, so dE00 = dL = 100.
    assert ciede2000(black, white) == pytest.approx(100.0, abs=1e-3)


def test_ciede2000_grey_vs_colour_is_large_grey_vs_itself_tiny():
    colour = _random_u8(15)
    grey = np.repeat(colour.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert ciede2000(grey, colour) > 10.0
    assert ciede2000(grey, grey) == 0.0


# --- training metrics -------------------------------------------------------------------------------


def test_mean_chroma_zero_for_grey_positive_for_colour():
    g = torch.rand(2, 1, 8, 8).repeat(1, 3, 1, 1)
    assert torch.allclose(mean_chroma(g), torch.zeros(2), atol=1e-2)  # float32 Lab of grey: |ab| ~ 3e-3
    assert (mean_chroma(torch.rand(2, 3, 8, 8)) > 5).all()


def test_green_cast_counts_green_painted_over_what_is_not_green():
    skin = np.full((4, 4, 3), (200, 150, 120), np.uint8)
    green = np.full((4, 4, 3), (120, 170, 110), np.uint8)
    grey = np.full((4, 4, 3), 150, np.uint8)
    assert metrics.green_cast(green, skin) == 1.0  # a green face
    assert metrics.green_cast(green, grey) == 1.0  # a green pavement
    assert metrics.green_cast(green, green) == 0.0  # green grass stays green: no cast
    assert metrics.green_cast(grey, skin) == 0.0  # the grey baseline paints nothing
    half = skin.copy()
    half[:2] = green[:2]
    assert metrics.green_cast(half, skin) == 0.5
