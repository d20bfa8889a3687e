"""color/lab.py: references (scikit-image), round trips, gradients, normalisation, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from polychrome.color.lab import (
    AB_SCALE,
    ab_to_net,
    l_to_gray_rgb,
    l_to_net,
    lab_to_rgb,
    net_to_ab,
    net_to_l,
    rgb_to_gray_l,
    rgb_to_lab,
    split_lab,
)

# Measured against scikit-image 0.26 / kornia 0.9 (same D65 white point and sRGB transfer curve):
# float64 agrees to ~1e-13 in L/a/b units, float32 to ~6e-5. The bounds leave a margin of a few x
# for float32 and many orders of magnitude for float64 without hiding a formula mismatch, which
# shows up at >= 1e-2 (e.g. a D50 white point or a missing linear segment of the sRGB curve).
TOL = {torch.float64: 1e-9, torch.float32: 3e-4}

EDGE_RGB = np.array(
    [
        [0, 0, 0],  # black: the cube root's linear segment
        [1, 1, 1],  # white: L = 100, a = b = 0
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [0, 1, 1],
        [1, 0, 1],
        [0.5, 0.5, 0.5],
        [0.04045, 0.04045, 0.04045],  # the knee of the sRGB transfer curve
        [0.001, 0.002, 0.003],  # very dark, below the Lab knee (t < (6/29)^3)
    ],
    dtype=np.float64,
)


def _random_rgb(seed: int = 0, h: int = 12, w: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3))


def _to_torch(hwc: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """(H, W, 3) numpy -> (1, 3, H, W) torch."""
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None].to(dtype)


def _to_numpy(bchw: torch.Tensor) -> np.ndarray:
    return bchw[0].permute(1, 2, 0).double().numpy()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("which", ["random", "edge"])
def test_rgb_to_lab_matches_skimage(dtype, which):
    rgb = _random_rgb() if which == "random" else EDGE_RGB[None]
    ours = _to_numpy(rgb_to_lab(_to_torch(rgb, dtype)))
    ref = rgb2lab(rgb)  # D65, 2 degree observer
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL[dtype])


def test_known_values():
    lab = _to_numpy(rgb_to_lab(_to_torch(EDGE_RGB[None, :2], torch.float64)))
    np.testing.assert_allclose(lab[0, 0], [0, 0, 0], atol=1e-9)  # black
    # White: L = 100; ab is ~5e-3 rather than 0 in every implementation (skimage too) because the
    # 4-digit sRGB matrix and the rounded D65 white point do not quite agree.
    np.testing.assert_allclose(lab[0, 1], [100, 0, 0], atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("which", ["random", "edge"])
def test_lab_to_rgb_matches_skimage(dtype, which):
    rgb = _random_rgb(1) if which == "random" else EDGE_RGB[None]
    lab = rgb2lab(rgb)
    ours = _to_numpy(lab_to_rgb(_to_torch(lab, dtype)))
    ref = lab2rgb(lab)
    # In RGB units (0..1); float32 measured ~2e-6.
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9 if dtype == torch.float64 else 1e-5)


def test_lab_to_rgb_clips_out_of_gamut():
    lab = torch.tensor([50.0, 120.0, -120.0]).view(1, 3, 1, 1)
    clipped = lab_to_rgb(lab)
    assert clipped.min() >= 0 and clipped.max() <= 1
    raw = lab_to_rgb(lab, clip=False)
    assert raw.min() < 0 or raw.max() > 1


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_round_trip(dtype):
    rgb = torch.cat([_to_torch(_random_rgb(2), dtype).flatten(2), _to_torch(EDGE_RGB[None], dtype).flatten(2)], 2)
    rgb = rgb.unsqueeze(-1)  # (1, 3, N, 1)
    back = lab_to_rgb(rgb_to_lab(rgb))
    torch.testing.assert_close(back, rgb, rtol=0, atol=1e-7 if dtype == torch.float64 else 2e-5)


def test_batched_and_unbatched_agree():
    rgb = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    batched = rgb_to_lab(rgb)
    assert batched.shape == rgb.shape
    torch.testing.assert_close(rgb_to_lab(rgb[1]), batched[1])
    torch.testing.assert_close(lab_to_rgb(batched[0]), lab_to_rgb(batched)[0])


def test_split_lab_and_gray_l():
    rgb = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    lab = rgb_to_lab(rgb)
    L, ab = split_lab(lab)
    assert L.shape == (2, 1, 4, 4) and ab.shape == (2, 2, 4, 4)
    torch.testing.assert_close(torch.cat([L, ab], 1), lab)
    torch.testing.assert_close(rgb_to_gray_l(rgb), L)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gray_l_alone_equals_the_full_conversion(dtype):
    # rgb_to_gray_l computes L without a and b (the pipeline's full-resolution read): same values as
    # kornia's full conversion, dark values below the cube-root threshold included.
    g = torch.Generator().manual_seed(2)
    rgb = torch.cat([torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g) * 0.02], 0).to(dtype)
    full = rgb_to_lab(rgb)[:, :1]
    got = rgb_to_gray_l(rgb)
    assert got.dtype == dtype and got.shape == full.shape
    torch.testing.assert_close(got, full, atol=1e-4 if dtype == torch.float32 else 1e-10, rtol=0)
    assert (rgb[1] < 0.02).all() and got[1].max() < 2  # the dark image exercises the linear branch


def test_l_to_gray_rgb_inverts_the_lightness_of_a_grey_photo():
    # A grey sRGB value g (R = G = B) has some L; the neutral grey of that L is g again.
    g = torch.linspace(0, 1, 101).view(1, 1, 1, 101)
    L = rgb_to_gray_l(g.expand(1, 3, 1, 101))
    out = l_to_gray_rgb(L)
    assert out.shape == (1, 1, 1, 101) and out.dtype == torch.float32
    torch.testing.assert_close(out, g, atol=2e-4, rtol=0)
    # skimage agrees: L 50 is sRGB 0.4663 (119 of 255), far from the linear L/100 = 0.5.
    ref = lab2rgb(np.array([[[50.0, 0.0, 0.0]]]))[0, 0, 0]
    assert abs(l_to_gray_rgb(torch.full((1, 1, 1, 1), 50.0)).item() - ref) < 1e-4
    with pytest.raises(ValueError, match="L must have shape"):
        l_to_gray_rgb(torch.zeros(1, 3, 2, 2))


def test_gradcheck_rgb_to_lab():
    # Keep away from 0: the cube root's slope is infinite at black (kornia uses the linear segment
    # there, but finite differences straddling the knee are not smooth either).
    g = torch.Generator().manual_seed(0)
    rgb = (0.05 + 0.9 * torch.rand(1, 3, 3, 4, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(rgb_to_lab, (rgb,), eps=1e-6, atol=1e-5)


def test_gradcheck_lab_to_rgb():
    g = torch.Generator().manual_seed(1)
    rgb = 0.1 + 0.8 * torch.rand(1, 3, 3, 4, generator=g, dtype=torch.float64)
    lab = rgb_to_lab(rgb).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: lab_to_rgb(x, clip=False), (lab,), eps=1e-6, atol=1e-5)
    # With clip=True the gradient is the same inside the gamut.
    assert torch.autograd.gradcheck(lambda x: lab_to_rgb(x, clip=True), (lab,), eps=1e-6, atol=1e-5)


def test_normalisation_inverts_and_ranges():
    L = torch.linspace(0, 100, 11, dtype=torch.float64)
    torch.testing.assert_close(net_to_l(l_to_net(L)), L)
    assert l_to_net(L).min() == -1 and l_to_net(L).max() == 1
    ab = torch.linspace(-110, 110, 23, dtype=torch.float64)
    torch.testing.assert_close(net_to_ab(ab_to_net(ab)), ab)
    x = torch.linspace(-1, 1, 9, dtype=torch.float64)
    torch.testing.assert_close(ab_to_net(net_to_ab(x)), x)
    torch.testing.assert_close(l_to_net(net_to_l(x)), x)
    # Every sRGB colour's ab fits inside a tanh head's (-1, 1).
    rgb = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    corners = torch.tensor(EDGE_RGB, dtype=torch.float32).T.reshape(1, 3, -1, 1)
    for img in (rgb, corners):
        assert ab_to_net(rgb_to_lab(img)[:, 1:]).abs().max() < 1
    assert AB_SCALE > 0


@pytest.mark.parametrize("fn", [rgb_to_lab, lab_to_rgb, split_lab, rgb_to_gray_l])
def test_wrong_channel_count(fn):
    with pytest.raises(ValueError, match=r"shape \(B, 3, H, W\).*got \(1, 4, 5, 5\)"):
        fn(torch.rand(1, 4, 5, 5))
    with pytest.raises(ValueError, match="got"):
        fn(torch.rand(1, 1, 5, 5))


@pytest.mark.parametrize("fn", [rgb_to_lab, lab_to_rgb])
@pytest.mark.parametrize("shape", [(3, 5), (5,), (1, 1, 3, 5, 5)])
def test_wrong_ndim(fn, shape):
    with pytest.raises(ValueError, match="must have shape"):
        fn(torch.rand(*shape))


@pytest.mark.parametrize("fn", [rgb_to_lab, lab_to_rgb])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_dtype(fn, dtype):
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.zeros(1, 3, 4, 4, dtype=dtype))


@pytest.mark.parametrize("fn", [rgb_to_lab, lab_to_rgb])
def test_not_a_tensor(fn):
    with pytest.raises(TypeError, match="torch.Tensor, got ndarray"):
        fn(np.zeros((1, 3, 4, 4), dtype=np.float32))
