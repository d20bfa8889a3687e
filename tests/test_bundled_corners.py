"""No shipped model paints a corner or tints an edge: the chroma a model adds in each corner region of a
photo, averaged over real photos, is no outlier against the rest of the image, and no edge's outer rows
are pushed toward cold colours (green, cyan, blue) beyond what the original photos show there.

The earlier default (effnet-unet with TensorFlow "SAME" padding and a diversity term) painted a cyan blob
into the top-right corner of every photo: its encoder's asymmetric padding told the network where that
corner was, and the loss rewarded a fixed saturated patch. This check is what caught it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import polychrome
from polychrome.color.lab import l_to_net, net_to_ab, rgb_to_lab
from polychrome.hub import bundled_names

#: Working size of the check and its block grid: 8 x 8 blocks of 32 px.
SIZE, GRID = 256, 8
#: A corner may add at most this much more chroma (CIE ab units) than the most colourful other block.
MARGIN = 2.0


def _photos() -> list[np.ndarray]:
    """The colour photographs scikit-image ships (no download): portrait, cat, cup, rocket, street."""
    import skimage.data as data

    return [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.stereo_motorcycle()[0]]


def _lab_and_prediction(model: torch.nn.Module, img: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo at SIZE x SIZE as Lab (1, 3, SIZE, SIZE) and the model's ab for its L (2, SIZE, SIZE), CIE units."""
    rgb = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
    rgb = F.interpolate(rgb, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    lab = rgb_to_lab(rgb.clamp(0, 1))
    with torch.no_grad():
        return lab, net_to_ab(model(l_to_net(lab[:, :1])).float())[0]


def chroma_excess_blocks(model: torch.nn.Module, photos: list[np.ndarray]) -> np.ndarray:
    """(GRID, GRID): per block, predicted chroma minus the photo's true chroma, averaged over the photos."""
    out = []
    for img in photos:
        lab, ab = _lab_and_prediction(model, img)
        b = SIZE // GRID
        pred = ab.norm(dim=0).reshape(GRID, b, GRID, b).mean((1, 3))
        true = lab[0, 1:].norm(dim=0).reshape(GRID, b, GRID, b).mean((1, 3))
        out.append((pred - true).numpy())
    return np.mean(out, axis=0)


def corner_outliers(excess: np.ndarray, margin: float = MARGIN) -> list[str]:
    """Names of the corners whose excess chroma is above every other block's by more than ``margin``."""
    g = excess.shape[0]
    corners = {"top-left": (0, 0), "top-right": (0, g - 1), "bottom-left": (g - 1, 0), "bottom-right": (g - 1, g - 1)}
    mask = np.ones_like(excess, dtype=bool)
    for ij in corners.values():
        mask[ij] = False
    ceiling = excess[mask].max() + margin
    return [name for name, ij in corners.items() if excess[ij] > ceiling]


def test_corner_outliers_finds_a_painted_corner():
    excess = np.zeros((GRID, GRID))
    excess[3, 4] = 1.0
    assert corner_outliers(excess) == []
    excess[0, GRID - 1] = 6.0
    assert corner_outliers(excess) == ["top-right"]


class _Blob(torch.nn.Module):
    """A colouriser that paints only a cyan square into the top-right corner."""

    def forward(self, L_net):
        ab = torch.zeros(L_net.shape[0], 2, *L_net.shape[-2:])
        ab[:, 0, :24, -24:] = -0.4
        ab[:, 1, :24, -24:] = -0.3
        return ab


def test_the_check_catches_a_blob_model():
    assert corner_outliers(chroma_excess_blocks(_Blob(), _photos())) == ["top-right"]


@pytest.mark.parametrize("name", bundled_names())
def test_no_bundled_model_paints_a_corner(name):
    model = polychrome.load_model(name)
    excess = chroma_excess_blocks(model, _photos())
    corners = np.round(excess[[0, 0, -1, -1], [0, -1, 0, -1]], 1)
    assert corner_outliers(excess) == [], f"{name}: corner chroma excess (TL, TR, BL, BR) {corners}, blocks {excess.round(1)}"


#: Edge band: the outer EDGE_ROWS rows against rows EDGE_INNER in; an edge may move a* or b* below the
#: inner rows' by at most EDGE_COLD more than the original photo does there (CIE units, mean over photos).
EDGE_ROWS, EDGE_INNER, EDGE_COLD = 2, (8, 16), 1.5


def edge_shifts(model: torch.nn.Module, photos: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per edge (top, bottom, left, right): mean over photos of (predicted ab of the outer rows minus the
    inner band) minus the same difference in the original, as (a, b)."""
    shifts: dict[str, list[np.ndarray]] = {"top": [], "bottom": [], "left": [], "right": []}
    for img in photos:
        lab, pred = _lab_and_prediction(model, img)
        true = lab[0, 1:]
        for edge, out in shifts.items():
            p, t = (pred, true) if edge in ("top", "bottom") else (pred.transpose(1, 2), true.transpose(1, 2))
            if edge in ("bottom", "right"):
                p, t = p.flip(1), t.flip(1)
            lo, hi = EDGE_INNER

            def band(x: torch.Tensor) -> torch.Tensor:
                return x[:, :EDGE_ROWS].mean((1, 2)) - x[:, lo:hi].mean((1, 2))

            out.append((band(p) - band(t)).numpy())
    return {edge: np.mean(v, axis=0) for edge, v in shifts.items()}


class _ColdTop(torch.nn.Module):
    """A colouriser that paints a thin cyan band along the top edge only."""

    def forward(self, L_net):
        ab = torch.zeros(L_net.shape[0], 2, *L_net.shape[-2:])
        ab[:, 0, :4] = -0.04
        ab[:, 1, :4] = -0.02
        return ab


def test_the_edge_check_catches_a_cyan_top_band():
    shifts = edge_shifts(_ColdTop(), _photos())
    assert shifts["top"].min() < -EDGE_COLD
    assert all(shifts[e].min() >= -EDGE_COLD for e in ("bottom", "left", "right"))


@pytest.mark.parametrize("name", bundled_names())
def test_no_bundled_model_tints_an_edge_cold(name):
    shifts = edge_shifts(polychrome.load_model(name), _photos())
    cold = {edge: s.round(2).tolist() for edge, s in shifts.items() if s.min() < -EDGE_COLD}
    assert not cold, f"{name}: edge bands pushed toward cold colours (a*, b* shift against the original): {cold}"
