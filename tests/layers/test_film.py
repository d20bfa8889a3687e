"""layers/film: identity at zero projection, the modulation formula, gradients to the condition."""

from __future__ import annotations

import torch

from polychrome.layers.film import FiLM


def test_film_formula_and_identity():
    torch.manual_seed(0)
    film = FiLM(cond_dim=3, channels=4)
    x, c = torch.randn(2, 4, 5, 6), torch.randn(2, 3)
    gamma, beta = film.proj(c).chunk(2, dim=1)
    torch.testing.assert_close(film(x, c), x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])
    with torch.no_grad():
        film.proj.weight.zero_()
    torch.testing.assert_close(film(x, c), x)


def test_film_gradients_reach_features_and_condition():
    torch.manual_seed(0)
    film = FiLM(3, 4)
    x = torch.randn(2, 4, 5, 6, requires_grad=True)
    c = torch.randn(2, 3, requires_grad=True)
    y = film(x, c)
    assert y.shape == x.shape
    y.square().mean().backward()
    for t in (x, c, film.proj.weight, film.proj.bias):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
