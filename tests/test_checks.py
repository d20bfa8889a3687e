"""checks.check_shape: numbers, names that must agree, given sizes, leading dimensions, the message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polychrome.checks import check_shape


def test_a_matching_shape_returns_the_named_sizes():
    assert check_shape(torch.zeros(4, 2, 8, 9), "B 2 H W", "ab") == {"B": 4, "H": 8, "W": 9}
    assert check_shape(np.zeros((5, 7, 3)), "... H W 3") == {"H": 5, "W": 7}  # numpy arrays too
    assert check_shape(np.zeros((2, 5, 7, 3)), "... H W 3") == {"H": 5, "W": 7}
    assert check_shape(torch.zeros(6, 6), "N N") == {"N": 6}


@pytest.mark.parametrize(
    ("shape", "pattern", "sizes", "message"),
    [
        ((4, 1, 8, 9), "B 2 H W", {}, r"ab must have shape \(B, 2, H, W\), got \(4, 1, 8, 9\)"),
        ((2, 8, 9), "B 2 H W", {}, r"ab must have shape \(B, 2, H, W\), got \(2, 8, 9\)"),
        ((4, 2, 8, 9), "B 2 H W", {"H": 16}, r"ab must have shape \(B, 2, 16, W\), got \(4, 2, 8, 9\)"),
        ((6, 7), "N N", {}, r"ab must have shape \(N, N\), got \(6, 7\)"),
        ((5, 4), "... H W 3", {}, r"ab must have shape \(\.\.\., H, W, 3\), got \(5, 4\)"),
    ],
)
def test_a_mismatch_is_one_value_error_naming_the_argument(shape, pattern, sizes, message):
    with pytest.raises(ValueError, match=message):
        check_shape(torch.zeros(shape), pattern, "ab", **sizes)
