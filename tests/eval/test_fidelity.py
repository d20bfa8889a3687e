"""Hint fidelity (issue 13): one off-truth hint per photo, scored for how close it lands and how far it leaks."""

from __future__ import annotations

import json

import pytest
import torch
from _helpers import colorizer_of, make_photo_tree
from _hint_helpers import SpreadHints
from PIL import Image
from torch import nn

from polychrome.eval.fidelity import main, run_hint_fidelity


class IgnoresHints(nn.Module):
    """A hint model that takes hints and ignores them: the same amber whatever is asked (the bundled model's a)."""

    uses_hints = True

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.meta = {"model": "ignores-hints", "infer_size": 48}

    def forward(self, L_net, hint_ab_net=None, hint_mask=None):
        B, _, H, W = L_net.shape
        return torch.tensor([0.05, 0.2]).view(1, 2, 1, 1).expand(B, 2, H, W) + self.w


def test_an_obedient_model_scores_well_and_an_ignoring_one_badly(tmp_path):
    data = tmp_path / "photos"
    make_photo_tree(data, 3, size=(64, 48))
    good = run_hint_fidelity(
        colorizer_of(SpreadHints(infer_size=48, reach=5)), data, json_path=tmp_path / "f.json", picture_path=tmp_path / "f.png"
    )
    s = good["summary"]
    assert good["n"] == 3 and good["size"] == 48
    assert s["de00_median"] < 1.0 and s["chroma_median"] > 0.95 and s["red_green_at_least_90"] == 1.0
    assert json.loads((tmp_path / "f.json").read_text())["summary"] == pytest.approx(s)
    picture = Image.open(tmp_path / "f.png")
    assert picture.size == (4 * 48, 3 * 36)  # grey | no hint | hinted | region, one row per photo
    bad = run_hint_fidelity(colorizer_of(IgnoresHints()), data)["summary"]
    assert bad["de00_median"] > 10 and bad["red_green_hue_gap_median"] < 1 and bad["change_in"] == 0


def test_seeded_probes_are_repeatable(tmp_path):
    data = tmp_path / "photos"
    make_photo_tree(data, 2, size=(40, 40))
    a = run_hint_fidelity(colorizer_of(SpreadHints(infer_size=40)), data, seed=3)["per_image"]
    b = run_hint_fidelity(colorizer_of(SpreadHints(infer_size=40)), data, seed=3)["per_image"]
    c = run_hint_fidelity(colorizer_of(SpreadHints(infer_size=40)), data, seed=4)["per_image"]
    assert [r["hint_xy"] for r in a] == [r["hint_xy"] for r in b] != [r["hint_xy"] for r in c]


def test_command_line_prints_the_headline_numbers(tmp_path, capsys, monkeypatch):
    import polychrome.eval.fidelity as ef

    data = tmp_path / "photos"
    make_photo_tree(data, 2, size=(40, 40))
    monkeypatch.setattr(ef, "as_colorizer", lambda spec, precision: colorizer_of(SpreadHints(infer_size=40)))
    assert main(["--model", "x", "--data", str(data), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "median CIEDE2000" in out and "leak" in out and (tmp_path / "r.json").exists()
