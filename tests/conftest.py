"""Shared fixtures: a tiny saved model, a model that predicts a known colour, photos made in code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from polychrome import create_model, hub
from polychrome.color.lab import AB_SCALE, rgb_to_lab

TINY_INFER_SIZE = 64


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread per test: the machines have two shared cores, and bitwise comparisons
    (resume exactness) want a fixed reduction order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """An export folder (model.safetensors + config.json) of a seeded, untrained simple-unet."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-model")
    meta = {"model": "simple-unet", "model_kwargs": {}, "infer_size": TINY_INFER_SIZE}
    return hub.save_weights(create_model("simple-unet"), meta, out)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """A Colorizer over the tiny export (its model: ``tiny_model.model``)."""
    from polychrome.colorizer import Colorizer

    return Colorizer.from_pretrained(tiny_model_dir)


class ConstantAB(nn.Module):
    """A stand-in colouriser that paints every pixel one known ab and records what it was given."""

    def __init__(self, a: float, b: float, infer_size: int = TINY_INFER_SIZE):
        super().__init__()
        self.ab_net = nn.Parameter(torch.tensor([a, b]) / AB_SCALE, requires_grad=False)
        self.meta = {"model": "constant-ab", "infer_size": infer_size}
        self.seen: list[tuple[int, ...]] = []

    def forward(self, L_net: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(L_net.shape))
        B, _, H, W = L_net.shape
        return self.ab_net.view(1, 2, 1, 1).expand(B, 2, H, W).clone()


@pytest.fixture
def constant_ab():
    """Factory: ``constant_ab(a, b)`` -> a model whose output colour is exactly (a, b) in CIE units."""
    return ConstantAB


def photo_array(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A colourful uint8 RGB (h, w, 3) test photo: smooth gradients plus a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = x / max(w - 1, 1)
    g = y / max(h - 1, 1)
    b = 0.5 + 0.5 * np.sin((x + y) / max(h, w) * 6.0 + seed)
    rgb = np.stack([r, g, b], axis=2) * 0.8 + 0.2 * rng.random((h, w, 3))
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def make_photo():
    """Factory: ``make_photo(path, w, h, seed=0, **save_kwargs)`` writes a colour photo (format from the
    extension) and returns its path."""

    def make(path, w: int, h: int, seed: int = 0, **save_kwargs):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_array(h, w, seed)).save(path, **save_kwargs)
        return path

    return make


def lab_of(img) -> np.ndarray:
    """Lab (H, W, 3) float of a PIL image or a uint8/float RGB array (alpha ignored)."""
    if isinstance(img, Image.Image):
        img = np.asarray(img.convert("RGB"))
    arr = np.asarray(img)
    f = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(f[..., :3])).permute(2, 0, 1)).permute(1, 2, 0).numpy()


@pytest.fixture
def lab():
    """``lab(img)``: Lab (H, W, 3) of a PIL image or an RGB array."""
    return lab_of


@pytest.fixture
def photo():
    """``photo(h, w, seed=0)``: a colourful uint8 RGB array."""
    return photo_array
