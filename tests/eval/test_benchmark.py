"""`polychrome benchmark` and `polychrome report`: two tiny photo sets, two tiny saved models, a historical folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from _helpers import colorizer_of, colour_photo, grey_photo, save
from PIL import Image
from typer.testing import CliRunner

from polychrome import hub
from polychrome.cli import app
from polychrome.colorizer import Colorizer
from polychrome.diagnostics.param_report import parameter_report, write_parameter_report
from polychrome.eval.automatic import run_evaluation
from polychrome.eval.benchmark import model_label, run_benchmark
from polychrome.eval.report import GRID_GAP, GRID_HEIGHT, LABEL_HEIGHT, labelled_grid
from polychrome.models import create_model

METRICS = ("psnr", "ssim", "colorfulness", "ciede2000", "green_cast")
# (w, h) of the two photos of each set; the second is portrait, so grid cells are set by the first.
SIZES = [(48, 40), (30, 44)]
HIST_SIZES = [(50, 40), (36, 45), (40, 40)]

runner = CliRunner()


def invoke(*args: str | os.PathLike):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *must_contain: str, code: int = 2) -> None:
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert all(text in lines[0] for text in must_contain), lines[0]
    assert result.exit_code == code, result.output


def _width(w: int, h: int) -> int:
    return round(w * GRID_HEIGHT / h)


def _grid_size(n_cols: int, panel_sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """What labelled_grid makes of rows of (w, h) photos: every column as wide as the widest thumbnail."""
    cell = max(_width(w, h) for w, h in panel_sizes)
    rows = len(panel_sizes)
    return n_cols * cell + (n_cols - 1) * GRID_GAP, LABEL_HEIGHT + GRID_GAP + rows * GRID_HEIGHT + (rows - 1) * GRID_GAP


@pytest.fixture
def bench_setup(tmp_path, tiny_model_dir):
    """Two photo sets of two photos, a historical folder of grey photos, and two saved models: the shared
    tiny export folder and a differently seeded one as NAME.safetensors + NAME.json with another working size."""
    for s, folder in enumerate(["set_a", "set_b"]):
        for i, (w, h) in enumerate(SIZES):
            save(colour_photo(10 * s + i, w, h), tmp_path / folder / f"p{i}.png")
    for i, (w, h) in enumerate(HIST_SIZES):
        save(grey_photo(30 + i, w, h), tmp_path / "hist" / f"h{i}.png")
    torch.manual_seed(1)
    meta = {"model": "simple-unet", "model_kwargs": {}, "infer_size": 32}
    hub.save_weights(create_model("simple-unet"), meta, tmp_path / "weights", name="other")
    return tmp_path, tiny_model_dir, tmp_path / "weights" / "other.safetensors"


def test_benchmark_writes_json_report_and_grids(bench_setup):
    root, model_a, model_b = bench_setup
    out = root / "rep"
    r = invoke("benchmark", "--models", f"{model_a},{model_b}", "--data", root / "set_a", root / "set_b",
               "--out", out, "--historical", root / "hist", "--grid-rows", "2")
    assert r.exit_code == 0, r.output
    label_a, label_b = model_label(model_a), model_label(model_b)
    assert label_b == "other"

    res = json.loads((out / "results.json").read_text())
    assert list(res["sets"]) == ["set_a", "set_b"]
    for name, entry in res["sets"].items():
        assert entry["n"] == 2 and entry["skipped"] == []
        assert set(entry["grey"]) >= set(METRICS) and entry["reference"]["colorfulness"] > 20
        assert list(entry["models"]) == [label_a, label_b]
        for label, summary in entry["models"].items():
            assert summary["n"] == 2 and summary["data"] == str(root / name)
            assert all(isinstance(summary["mean"][k], float) for k in METRICS)
            assert [row["file"] for row in summary["per_image"]] == ["p0.png", "p1.png"]
            for row in summary["per_image"]:
                assert all(np.isfinite(row[k]) and np.isfinite(row[f"grey_{k}"]) for k in METRICS)
            assert summary["colorize_seconds_per_image"] > 0
        assert entry["models"][label_a]["size"] == 64 and entry["models"][label_b]["size"] == 32
    assert res["models"][label_b]["spec"] == str(model_b)
    assert res["models"][label_a]["parameters"] == sum(p.numel() for p in create_model("simple-unet").parameters())
    assert res["system"]["versions"]["torch"] == torch.__version__
    assert res["command"].startswith("polychrome benchmark --models ")

    # The same numbers as `polychrome evaluate` gives one model alone.
    alone = run_evaluation(str(model_b), root / "set_b", None, progress=False)
    assert res["sets"]["set_b"]["models"][label_b]["mean"] == pytest.approx(alone["mean"], rel=1e-9)
    assert res["sets"]["set_b"]["grey"]["psnr"] == pytest.approx(alone["grey"]["psnr"], rel=1e-9)

    report = (out / "report.md").read_text()
    for name in ("set_a", "set_b"):
        grey_psnr = res["sets"][name]["grey"]["psnr"]
        assert f"## {name}" in report and f"![{name}: grey, each model, original](grids/{name}.png)" in report
        assert f"| grey baseline | {grey_psnr:.2f} |" in report
        for label in (label_a, label_b):
            assert f"| {label} | {res['sets'][name]['models'][label]['mean']['psnr']:.2f} |" in report
    assert "\\|colourfulness − originals'\\|" in report and "sec/photo" in report
    assert "torch 2" in report and res["command"] in report and "grids/historical.png" in report
    assert f"params/{label_b}/params.md" in report

    for name in ("set_a", "set_b"):
        with Image.open(out / "grids" / f"{name}.png") as grid:
            assert grid.size == _grid_size(4, SIZES)  # grey | a | b | original
    with Image.open(out / "grids" / "historical.png") as grid:
        assert grid.size == _grid_size(3, HIST_SIZES[:2])  # grey input | a | b, --grid-rows 2
    assert res["historical"]["files"] == ["h0.png", "h1.png"]
    for label in (label_a, label_b):
        assert (out / "params" / label / "weight_histograms.png").is_file()

    # The overall table: per model, against the same set's grey baseline and originals, mean and worst set.
    assert res["overall"]["sets"] == ["set_a", "set_b"]
    for label in (label_a, label_b):
        gains = [res["sets"][n]["models"][label]["mean"]["psnr"] - res["sets"][n]["grey"]["psnr"] for n in ("set_a", "set_b")]
        shares = [res["sets"][n]["models"][label]["mean"]["colorfulness"] / res["sets"][n]["reference"]["colorfulness"]
                  for n in ("set_a", "set_b")]
        row = res["overall"]["models"][label]
        assert row["psnr_gain"] == pytest.approx(np.mean(gains)) and row["psnr_gain_worst"] == pytest.approx(min(gains))
        assert row["colorfulness_share_worst"] == pytest.approx(min(shares))
        assert f"| {label} | {row['psnr_gain']:+.2f} | {row['psnr_gain_worst']:+.2f} |" in report
    assert "## Overall" in report

    # The terminal gets a table per set, and the overall one.
    assert "set_a (2 photos)" in r.stdout and "grey baseline" in r.stdout and label_b in r.stdout
    assert "overall (set_a, set_b)" in r.stdout


class CountingZeroAb(nn.Module):
    """Predicts ab = 0 and counts forward passes."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.calls = 0
        self.meta = {"model": "zero", "infer_size": 32}

    def forward(self, L_net):
        self.calls += 1
        return torch.zeros_like(L_net).repeat(1, 2, 1, 1)


def test_each_photo_is_colourised_once_per_model(bench_setup):
    root, _, model_b = bench_setup
    zero = CountingZeroAb()
    res = run_benchmark({"zero": colorizer_of(zero), str(model_b): Colorizer.from_pretrained(model_b)}, [root / "set_a", root / "set_b"],
                        root / "rep", historical=root / "hist", params=False, progress=False)
    assert zero.calls == 2 + 2 + len(HIST_SIZES)  # scores and grids come from the same colourisation
    grey = res["sets"]["set_a"]["grey"]
    assert res["sets"]["set_a"]["models"]["zero"]["mean"] == {k: grey[k] for k in METRICS}  # ab = 0 is the baseline
    assert res["models"]["zero"]["parameter_report"] is None


def test_labelled_grid_columns_and_labels():
    tall = np.zeros((40, 20, 3), np.uint8)
    wide = np.full((40, 70, 3), 200, np.uint8)
    grid = labelled_grid(["grey", "a model with a very long name indeed", "original"], [[wide, tall, wide]], gap=3)
    assert grid.size == (3 * 70 + 2 * 3, LABEL_HEIGHT + 3 + 40)
    g = np.asarray(grid)
    assert (g[:LABEL_HEIGHT, :70] < 128).any()  # a label was drawn
    assert (g[:LABEL_HEIGHT, 73 + 70 - 2:73 + 70] == 255).all()  # a long label is cut to its column
    assert (g[LABEL_HEIGHT + 3:, 73:73 + 25] == 255).all()  # the narrow panel is centred in its column
    with pytest.raises(ValueError, match="one panel per label"):
        labelled_grid(["a", "b"], [[wide]])


def test_model_labels():
    assert model_label("default") == "default"
    assert model_label("runs/effnet/best.pt") == "effnet/best"
    assert model_label("exports/v2/model.safetensors") == "v2"
    assert model_label("exports/v2/fast.safetensors") == "fast"


def test_benchmark_errors_are_one_line(bench_setup, monkeypatch):
    root, model_a, _ = bench_setup
    out = root / "rep"
    r = invoke("benchmark", "--models", f"{model_a},{root / 'nope'}", "--data", root / "set_a", "--out", out,
               "--no-historical")
    assert_one_line_error(r, "--model", "nope")
    r = invoke("benchmark", "--models", model_a, "--data", root / "nowhere", "--out", out, "--no-historical")
    assert_one_line_error(r, "nowhere")
    r = invoke("benchmark", "--models", " , ", "--data", root / "set_a", "--out", out)
    assert_one_line_error(r, "--models")
    r = invoke("benchmark", "--models", model_a, "--data", root / "set_a", "--out", out, "--historical", root / "no")
    assert_one_line_error(r, "--historical")
    monkeypatch.setattr(hub, "bundled_names", lambda: [])
    monkeypatch.chdir(root)  # no ../shared/data/historical here either
    r = invoke("benchmark", "--models", "default", "--data", root / "set_a", "--out", out)
    assert_one_line_error(r, "'default' model")
    assert not out.exists()  # nothing was started


def test_benchmark_without_historical_folder(bench_setup, monkeypatch):
    root, model_a, _ = bench_setup
    monkeypatch.chdir(root)  # the default ../shared/data/historical does not exist from here
    r = invoke("benchmark", "--models", model_a, "--data", "set_a", "--out", "rep", "--limit", "1", "--no-params")
    assert r.exit_code == 0, r.output
    res = json.loads((root / "rep" / "results.json").read_text())
    assert res["historical"] is None and res["sets"]["set_a"]["n"] == 1
    assert sorted(p.name for p in (root / "rep" / "grids").iterdir()) == ["set_a.png"]
    assert not (root / "rep" / "params").exists()


def test_an_output_folder_inside_a_photo_folder_is_not_scored(bench_setup):
    root, model_a, _ = bench_setup
    for _ in range(2):  # the second run finds the first run's grids inside set_a and leaves them alone
        res = run_benchmark({str(model_a): Colorizer.from_pretrained(model_a)}, [root / "set_a"], root / "set_a" / "rep",
                            params=False, progress=False)
        assert [row["file"] for row in res["sets"]["set_a"]["models"][model_label(model_a)]["per_image"]] == [
            "p0.png", "p1.png"]


# --------------------------------------------------------------------------- parameter report
class Tied(nn.Module):
    """Two layers sharing one weight: counted once, like model.parameters() does."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 5)
        self.b = nn.Linear(5, 5)
        self.b.weight = self.a.weight
        self.norm = nn.BatchNorm1d(5)


@pytest.mark.parametrize("make", [lambda: create_model("simple-unet"), Tied])
def test_parameter_counts_add_up(make):
    model = make()
    rep = parameter_report(model)
    total = sum(p.numel() for p in model.parameters())
    assert rep["total"] == total == sum(layer["parameters"] for layer in rep["layers"])
    assert rep["modules"][0]["name"] == "(model)" and rep["modules"][0]["parameters"] == total
    assert sum(layer["share"] for layer in rep["layers"]) == pytest.approx(1.0)
    counts = [x["parameters"] for x in rep["largest"]]
    assert counts == sorted(counts, reverse=True) and counts[0] == max(x["parameters"] for x in rep["layers"])
    assert rep["largest"][-1]["cumulative_share"] == pytest.approx(sum(x["share"] for x in rep["largest"]))
    assert rep["buffers"] == sum(b.numel() for b in model.buffers())


def test_tied_weight_is_counted_at_its_first_layer():
    rep = parameter_report(Tied())
    by_name = {layer["name"]: layer["parameters"] for layer in rep["layers"]}
    assert by_name == {"a": 30, "b": 5, "norm": 10}


def test_report_command_writes_json_markdown_and_histograms(tmp_path, tiny_model_dir):
    r = invoke("report", "--model", tiny_model_dir, "--out", tmp_path / "params")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "params" / "params.json").read_text())
    assert rep["total"] == sum(p.numel() for p in hub.load_model(tiny_model_dir).parameters())
    md = (tmp_path / "params" / "params.md").read_text()
    assert f"**{rep['total']:,}** parameters" in md and f"`{rep['largest'][0]['name']}`" in md
    with Image.open(tmp_path / "params" / "weight_histograms.png") as png:
        assert png.format == "PNG" and png.size[0] > 300
    assert rep["largest"][0]["name"] in r.stdout

    r = invoke("report", "--model", "unet-32", "--out", tmp_path / "arch")  # an architecture: random weights
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "arch" / "params.json").read_text())["total"] == sum(
        p.numel() for p in create_model("unet-32").parameters())
    r = invoke("report", "--model", tmp_path / "missing", "--out", tmp_path / "x")
    assert_one_line_error(r, "--model")


def test_write_parameter_report_lists_its_files(tmp_path):
    rep = write_parameter_report(Tied(), tmp_path / "p", title="tied")
    assert [Path(f).name for f in rep["files"]] == ["params.json", "params.md", "weight_histograms.png"]
    assert all(Path(f).is_file() for f in rep["files"])
