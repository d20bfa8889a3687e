"""evaluate.run_evaluation over a folder of generated photos: report contents, baselines, oracle, grid, JSON."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from _helpers import colorizer_of, colour_photo, save
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from polychrome.color.lab import ab_to_net, l_to_net, rgb_to_lab
from polychrome.colorizer import Colorizer
from polychrome.eval.automatic import run_evaluation
from polychrome.eval.metrics import colorfulness
from polychrome.eval.report import GRID_GAP, GRID_HEIGHT
from polychrome.hub import save_weights
from polychrome.io import ImageError, load_rgb, rgb_array_to_pil
from polychrome.models import create_model
from polychrome.models.card import ModelCard
from polychrome.pipeline import gray_array

# (w, h) of the three photos; the last has another aspect ratio so grid rows differ in width.
SIZES = [(48, 40), (48, 40), (30, 40)]
REQUIRED = {"model", "data", "n", "size", "settings", "mean", "grey", "reference", "skipped", "per_image", "seconds"}
METRICS = {"psnr", "ssim", "colorfulness", "ciede2000"}
PER_IMAGE = {"file", "psnr", "ssim", "colorfulness", "ciede2000", "grey_psnr", "grey_ssim", "ref_colorfulness"}


def _strict_json(path: Path) -> dict:
    def refuse(c):
        raise AssertionError(f"non-standard JSON constant {c}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def photos(tmp_path) -> Path:
    """3 colour PNGs (sorted: a.png, b.png, c.png) and a corrupt JPEG sorted between them."""
    root = tmp_path / "photos"
    for i, (name, (w, h)) in enumerate(zip(["a.png", "b.png", "sub/c.png"], SIZES)):
        save(colour_photo(10 + i, w, h), root / name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return root


@pytest.fixture
def model_dir(tmp_path) -> Path:
    torch.manual_seed(0)
    model = create_model("simple-unet")
    return save_weights(model, {"model": "simple-unet", "model_kwargs": {}, "infer_size": 64}, tmp_path / "model")


def _originals(root: Path) -> list[np.ndarray]:
    return [load_rgb(root / n) for n in ["a.png", "b.png", "sub/c.png"]]


def test_report_json_grid_and_skipped_file(photos, model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    res = run_evaluation(
        str(model_dir), str(photos), str(out / "eval.json"), grid_path=str(out / "grid.png"), progress=False
    )

    assert REQUIRED <= res.keys()
    assert res["model"] == str(model_dir) and res["data"] == str(photos)
    assert res["n"] == 3 and res["size"] == 64  # the working size comes from config.json
    assert set(res["mean"]) >= METRICS and set(res["grey"]) >= METRICS and "colorfulness" in res["reference"]
    assert [r["file"] for r in res["per_image"]] == ["a.png", "b.png", "sub/c.png"]
    assert all(PER_IMAGE <= r.keys() for r in res["per_image"])
    assert res["settings"]["ssim"]["channel_axis"] == 2 and res["settings"]["ssim"]["data_range"] == 255
    assert res["settings"]["psnr"]["data_range"] == 255
    assert res["seconds"] > 0

    # The corrupt file is reported, announced in one line, and not scored.
    assert [s["file"] for s in res["skipped"]] == ["broken.jpg"] and res["skipped"][0]["reason"]
    warn = [ln for ln in capsys.readouterr().err.splitlines() if "broken.jpg" in ln]
    assert len(warn) == 1 and warn[0].startswith("warning: skipped")

    # The JSON on disk is strict JSON holding the same report, and no temporary file is left behind.
    assert _strict_json(out / "eval.json") == json.loads(json.dumps(res))
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "grid.png"]

    # Grid: rows grey | prediction | original, each panel GRID_HEIGHT high, widest row sets the width.
    widths = [round(w * GRID_HEIGHT / h) for w, h in SIZES]
    with Image.open(out / "grid.png") as grid:
        assert grid.mode == "RGB"
        assert grid.size == (3 * max(widths) + 2 * GRID_GAP, 3 * GRID_HEIGHT + 2 * GRID_GAP)
        g = np.asarray(grid)
    row1 = g[:GRID_HEIGHT]
    grey_panel = row1[:, : widths[0]]
    orig_panel = row1[:, 2 * (widths[0] + GRID_GAP) : 3 * widths[0] + 2 * GRID_GAP]
    assert np.abs(grey_panel[..., 0].astype(int) - grey_panel[..., 2]).max() <= 2  # the first panel is grey
    assert colorfulness(orig_panel) > 20  # the third is the colour original
    assert (g[:GRID_HEIGHT, widths[0] : widths[0] + GRID_GAP] == 255).all()  # white gap between panels


def test_grey_baseline_matches_an_independent_computation(photos, model_dir):
    res = run_evaluation(str(model_dir), photos, None, progress=False)
    expected = []
    for rgb in _originals(photos):
        orig = np.asarray(rgb_array_to_pil(rgb))
        grey = np.asarray(rgb_array_to_pil(gray_array(rgb)))
        expected.append(peak_signal_noise_ratio(orig, grey, data_range=255))
    got = [r["grey_psnr"] for r in res["per_image"]]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert res["grey"]["psnr"] == pytest.approx(np.mean(expected), rel=1e-12)
    assert 10 < res["grey"]["psnr"] < 40  # a grey guess of a saturated photo is far from perfect
    refs = [colorfulness(np.asarray(rgb_array_to_pil(rgb))) for rgb in _originals(photos)]
    np.testing.assert_allclose([r["ref_colorfulness"] for r in res["per_image"]], refs, rtol=1e-12)
    assert res["grey"]["colorfulness"] < 1.0 < 20 < res["reference"]["colorfulness"]


class ZeroAb(nn.Module):
    """Predicts ab = 0 everywhere: its colourisation must be exactly the grey baseline."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # the pipeline asks a model for its device

    def forward(self, L_net):
        return torch.zeros_like(L_net).repeat(1, 2, 1, 1)


class Oracle(nn.Module):
    """Knows the photos: returns the true ab of whichever photo's L it is given (fails if it meets a stranger)."""

    def __init__(self, rgbs):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.known = []
        for rgb in rgbs:
            lab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None])
            self.known.append((l_to_net(lab[:, :1]), ab_to_net(lab[:, 1:])))

    def forward(self, L_net):
        # The pipeline may pad a small working image (bottom/right); recognise the photo by its top-left crop.
        for L, ab in self.known:
            h, w = L.shape[-2:]
            if L_net.shape[-2] >= h and L_net.shape[-1] >= w and torch.allclose(L, L_net[..., :h, :w], atol=1e-5):
                return nn.functional.pad(ab, (0, L_net.shape[-1] - w, 0, L_net.shape[-2] - h), mode="replicate")
        raise AssertionError("the oracle was shown an L it does not know")


def test_model_predicting_zero_ab_scores_exactly_as_the_grey_baseline(photos):
    res = run_evaluation(ZeroAb(), photos, None, size=16, progress=False)  # size 16: the resize path too
    assert res["n"] == 3 and res["size"] == 16 and res["model"] == "ZeroAb"
    for r in res["per_image"]:
        assert r["psnr"] == r["grey_psnr"] and r["ssim"] == r["grey_ssim"]
        assert r["colorfulness"] == r["grey_colorfulness"] and r["ciede2000"] == r["grey_ciede2000"]
    assert res["mean"] == res["grey"]


def test_oracle_that_predicts_the_true_ab_recovers_the_originals(photos):
    # A working size above the photos' own keeps them unresized, so the oracle can recognise its L.
    res = run_evaluation(Oracle(_originals(photos)), photos, None, size=64, progress=False)
    assert res["n"] == 3
    for r in res["per_image"]:
        assert r["psnr"] > 50 and r["psnr"] > r["grey_psnr"] + 15
        assert r["ssim"] > 0.999 > r["grey_ssim"]
        assert r["ciede2000"] < 0.5 < r["grey_ciede2000"]
        assert r["colorfulness"] == pytest.approx(r["ref_colorfulness"], abs=0.5)


def test_specs_limit_and_module_state(photos, model_dir):
    by_folder = run_evaluation(str(model_dir), photos, None, limit=2, progress=False)
    by_file = run_evaluation(model_dir / "model.safetensors", photos, None, limit=2, progress=False)
    assert by_folder["n"] == 2 and [r["file"] for r in by_folder["per_image"]] == ["a.png", "b.png"]
    assert by_folder["skipped"] == []  # broken.jpg sorts third, beyond the limit
    assert by_file["mean"] == by_folder["mean"]

    torch.manual_seed(0)
    module = create_model("simple-unet").train()  # the same weights as model_dir, not loaded from disk
    threads = torch.get_num_threads()
    by_module = run_evaluation(module, photos, None, size=64, limit=2, progress=True)
    assert by_module["model"] == "simple-unet" and by_module["mean"] == pytest.approx(by_folder["mean"], rel=1e-6)
    assert module.training and torch.get_num_threads() == threads  # state given back


def test_nothing_readable_gives_a_valid_empty_report(tmp_path, model_dir):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "x.png").write_bytes(b"not a png")
    res = run_evaluation(str(model_dir), root, tmp_path / "e.json", grid_path=tmp_path / "g.png", progress=False)
    assert res["n"] == 0 and len(res["skipped"]) == 1 and res["per_image"] == []
    assert res["mean"]["psnr"] is None and res["reference"]["colorfulness"] is None
    assert _strict_json(tmp_path / "e.json")["n"] == 0
    assert not (tmp_path / "g.png").exists()


def test_photo_too_thin_for_ssim_is_skipped_not_fatal(tmp_path):
    root = tmp_path / "thin"
    save(colour_photo(1, 40, 2), root / "a_strip.png")  # 2 px high: no SSIM window fits
    save(colour_photo(2, 40, 36), root / "b_photo.png")
    res = run_evaluation(ZeroAb(), root, None, progress=False)
    assert res["n"] == 1 and res["per_image"][0]["file"] == "b_photo.png"
    assert res["skipped"] == [{"file": "a_strip.png", "reason": "SSIM needs a photo of at least 3x3 px, got 2x40"}]


def test_missing_data_folder_is_an_image_error(tmp_path, model_dir):
    with pytest.raises(ImageError, match="no such file"):
        run_evaluation(str(model_dir), tmp_path / "nowhere", None, progress=False)


def test_every_reported_number_is_finite(photos, model_dir):
    res = run_evaluation(str(model_dir), photos, None, progress=False)
    for r in res["per_image"]:
        assert all(math.isfinite(v) for k, v in r.items() if k != "file")


class CountingZeroAb(ZeroAb):
    """ZeroAb that counts its forward passes."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, L_net):
        self.calls += 1
        return super().forward(L_net)


def test_score_photos_reads_each_photo_once_for_several_models(photos, model_dir, monkeypatch):
    import polychrome.eval.runner as ev

    reads = []
    real_load = ev.load_rgb
    monkeypatch.setattr(ev, "load_rgb", lambda p: reads.append(Path(p).name) or real_load(p))
    zero, loaded = CountingZeroAb(), Colorizer.from_pretrained(model_dir)
    paths = ev.photo_paths(photos)
    models, sizes = {"zero": (colorizer_of(zero), None), "tiny": (loaded, None)}, {"zero": 64, "tiny": 64}
    scores = ev.score_photos(models, paths, photos, sizes, keep=2, progress=False)

    assert sorted(reads) == sorted(p.name for p in paths)  # each file decoded once, for both models
    assert zero.calls == 3  # one forward pass per readable photo
    assert [s["file"] for s in scores.skipped] == ["broken.jpg"]
    names = ["a.png", "b.png", "sub/c.png"]
    assert [r["file"] for r in scores.rows["zero"]] == [r["file"] for r in scores.rows["tiny"]] == names
    assert [name for name, *_ in scores.panels] == ["a.png", "b.png"]
    assert all(set(preds) == {"zero", "tiny"} for _, _, preds, _ in scores.panels)

    # The same numbers as one run_evaluation per model (timings aside).
    alone = run_evaluation(str(model_dir), photos, None, progress=False)
    untimed = [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in scores.rows["tiny"]]
    assert untimed == [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in alone["per_image"]]
    for row in scores.rows["zero"]:
        assert row["psnr"] == row["grey_psnr"] and row["colorize_seconds"] > 0 and row["grey_seconds"] > 0


# --------------------------------------------------------------------------- the hints curve (issue 6)
HINT_COUNTS = [0, 1, 5, 20, 100, 400]


def _curve(res: dict, metric: str = "psnr") -> list[float]:
    return [c[metric] for c in res["curve"]]


def test_hint_curve_json_plot_and_more_hints_score_higher(photos, tmp_path):
    from _hint_helpers import SpreadHints

    from polychrome.eval.hints import run_hint_evaluation

    res = run_hint_evaluation(colorizer_of(SpreadHints(infer_size=32)), photos, HINT_COUNTS, json_path=tmp_path / "h.json",
                              plot_path=tmp_path / "h.png", progress=False)
    saved = _strict_json(tmp_path / "h.json")
    assert saved["counts"] == HINT_COUNTS and [c["hints"] for c in saved["curve"]] == HINT_COUNTS
    assert saved["n"] == 3 and [s["file"] for s in saved["skipped"]] == ["broken.jpg"]
    assert saved["plot"] == str(tmp_path / "h.png") and saved["size"] == 32 and saved["seed"] == 0
    for row in saved["per_image"]:
        assert len(row["psnr"]) == len(row["ssim"]) == len(HINT_COUNTS)
    # This fixture model spreads hints locally and is grey without them: 0 hints IS the grey baseline,
    # and every added (nested) hint brings more of the true colour.
    psnr, ssim = _curve(saved), _curve(saved, "ssim")
    assert psnr[0] == pytest.approx(saved["grey"]["psnr"]) and ssim[0] == pytest.approx(saved["grey"]["ssim"])
    assert all(b > a for a, b in itertools.pairwise(psnr)), psnr
    assert psnr[-1] > psnr[0] + 3 and ssim[-1] > ssim[0]
    # The grey baseline is the one polychrome evaluate reports.
    plain = run_evaluation(ZeroAb(), photos, None, size=32, progress=False)
    assert saved["grey"]["psnr"] == pytest.approx(plain["grey"]["psnr"])
    png = (tmp_path / "h.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(tmp_path / "h.png") as im:
        assert im.format == "PNG" and im.width > 400 and im.height > 200
        assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 3  # not a blank canvas
    assert res["curve"] == saved["curve"]


def test_hint_curve_is_reproducible_and_nested(photos, monkeypatch):
    from _hint_helpers import SpreadHints

    from polychrome.eval import hints as evaluate_hints

    def drop_seconds(res):
        return {k: v for k, v in res.items() if k != "seconds"}

    first = evaluate_hints.run_hint_evaluation(SpreadHints(infer_size=32), photos, [0, 3, 30], progress=False)
    again = evaluate_hints.run_hint_evaluation(SpreadHints(infer_size=32), photos, [30, 3, 0, 3], progress=False)
    assert drop_seconds(first) == drop_seconds(again)  # counts sorted, duplicates dropped, same draws
    other = evaluate_hints.run_hint_evaluation(SpreadHints(infer_size=32), photos, [0, 3, 30], seed=7, progress=False)
    assert _curve(other) != _curve(first) and _curve(other)[0] == _curve(first)[0]
    # Nested: with a photo's seed, the hints of a larger count cover those of a smaller one.
    rgb = np.asarray(Image.open(photos / "a.png")).astype(np.float32) / 255.0
    (_, m3), (_, m30) = evaluate_hints.sample_photo_hints(rgb, (40, 48), [3, 30], seed=5)
    assert m3.sum() > 0 and bool((m30[m3 > 0] == 1).all()) and m30.sum() > m3.sum()


def test_hint_curve_zero_hints_is_the_plain_evaluation_and_hints_need_a_hint_model(photos, model_dir):
    from polychrome.color.hints import HintError
    from polychrome.eval.hints import run_hint_evaluation

    plain = run_evaluation(str(model_dir), photos, None, progress=False)
    zero = run_hint_evaluation(str(model_dir), photos, [0], progress=False)
    assert zero["curve"][0]["psnr"] == pytest.approx(plain["mean"]["psnr"])
    assert zero["curve"][0]["ssim"] == pytest.approx(plain["mean"]["ssim"])
    assert zero["grey"]["psnr"] == pytest.approx(plain["grey"]["psnr"])
    with pytest.raises(HintError, match="cannot use colour hints"):
        run_hint_evaluation(str(model_dir), photos, [0, 10], progress=False)
    with pytest.raises(ValueError, match="non-negative"):
        run_hint_evaluation(str(model_dir), photos, [-1, 10], progress=False)


def test_hint_curve_with_icolorit_tiny_runs(photos):
    from polychrome.eval.hints import run_hint_evaluation

    torch.manual_seed(0)
    model = create_model("icolorit-tiny")
    res = run_hint_evaluation(Colorizer(model, ModelCard.for_model(model, working_size=32)), photos, [0, 10], limit=2, progress=False)
    assert res["n"] == 2 and all(math.isfinite(v) for c in res["curve"] for v in (c["psnr"], c["ssim"]))
