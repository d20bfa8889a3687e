"""Fixtures of the colour tests."""

from __future__ import annotations

import pytest
import torch

from polychrome.color.quantize import srgb_gamut_bins


@pytest.fixture(scope="module")
def grid_bins() -> torch.Tensor:
    """The data-free sRGB-gamut grid bins, (262, 2) CIE units."""
    return srgb_gamut_bins()
