"""Results pinned before the Colorizer refactor: evaluation figures, the hint curve and full-resolution files
written by ``polychrome colorize`` (the bundled models, a seeded random cicgan-small at T = 0.1 with its
confidence map). A refactor of the outer ring must leave every one of them unchanged.

The pins were written on one x86 CPU (an AMD EPYC). Another CPU may pick other kernels: on an Intel Xeon with
AMX the evaluation figures moved by 4e-7 of their value and the bf16 file changed, while the fp32 files
pinned there came out byte for byte the same (unet-32's fp32 file was pinned later, on the Xeon). So the
figures are compared to 1e-5 of their value (a change of the results moves them by far more), fp32 files by
their digest, and the bf16 file against the same model's fp32 file written in the same test."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from typer.testing import CliRunner

from polychrome.cli import app

PINS = json.loads((Path(__file__).parent / "reference_results.json").read_text())


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pinned") / "photos"
    root.mkdir()
    for name, img in (("astronaut", skimage.data.astronaut()), ("coffee", skimage.data.coffee()),
                      ("chelsea", skimage.data.chelsea())):
        small = Image.fromarray(img).resize((img.shape[1] // 4, img.shape[0] // 4), Image.BICUBIC)
        small.save(root / f"{name}.png")
    return root


#: How far a pinned figure may move on another CPU (its kernels round differently; seen: 4e-7 of the value).
FIGURE_REL = 1e-5


def _close(got: dict, want: dict) -> None:
    # Every pinned figure is unchanged; metrics added since (e.g. green_cast) may appear beside them.
    assert got.keys() >= want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=FIGURE_REL, abs=1e-9), key


@pytest.mark.parametrize("model", ["default", "unet-32"])
def test_evaluation_figures_are_unchanged(photos, model):
    from polychrome.eval.automatic import run_evaluation

    result = run_evaluation(model, str(photos), None, progress=False)
    for part in ("mean", "grey", "reference"):
        _close(result[part], PINS[f"eval/{model}"][part])


def test_hint_curve_is_unchanged(photos):
    from polychrome.eval.hints import run_hint_evaluation

    result = run_hint_evaluation("hints", str(photos), counts=[0, 2, 10], progress=False)
    assert [p["hints"] for p in result["curve"]] == [0, 2, 10]
    for got, want in zip(result["curve"], PINS["hints/hints"]["curve"]):
        _close(got, want)
    _close(result["grey"], PINS["hints/hints"]["grey"])


def _digest(path: Path) -> str:
    return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()


def test_colorize_files_are_unchanged(photos, tmp_path):
    from polychrome.hub import save_weights
    from polychrome.models import create_model

    hints = tmp_path / "h.json"
    hints.write_text(json.dumps([{"x": 30, "y": 40, "color": "#aa3322"}, {"x": 100, "y": 60, "color": "#2233aa"}]))
    torch.manual_seed(0)
    cic = create_model("cicgan-small").eval()
    meta = {"model": "cicgan-small", "model_kwargs": {}, "infer_size": 64, "temperature": 0.38, "decode_mode": "annealed"}
    save_weights(cic, meta, tmp_path / "cic")
    runs = [
        ["colorize", str(photos), "-o", str(tmp_path / "o-default")],
        ["colorize", str(photos / "coffee.png"), "-o", str(tmp_path / "o-unet"), "--model", "unet-32",
         "--precision", "fp32"],
        ["colorize", str(photos / "coffee.png"), "-o", str(tmp_path / "bf16-unet"), "--model", "unet-32",
         "--precision", "bf16"],
        ["colorize", str(photos / "astronaut.png"), "-o", str(tmp_path / "o-hints"), "--hints", str(hints)],
        ["colorize", str(photos / "chelsea.png"), "-o", str(tmp_path / "o-cic"), "--model", str(tmp_path / "cic"),
         "--temperature", "0.1", "--confidence"],
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the pins were written with one thread: more threads may round differently
    try:
        for argv in runs:
            result = CliRunner().invoke(app, argv)
            assert result.exit_code == 0, result.output
    finally:
        torch.set_num_threads(threads)
    want = {k: v for k, v in PINS.items() if k.startswith("file/")}
    got = {f"file/{d.name}/{f.name}": _digest(f) for d in sorted(tmp_path.glob("o-*")) for f in sorted(d.iterdir())}
    if os.environ.get("POLYCHROME_REPIN_FILES"):  # docs/issue-12/repin.py: an intended change writes new pins
        Path(os.environ["POLYCHROME_REPIN_FILES"]).write_text(json.dumps(got))
    assert got == want
    # bf16 rounds differently from CPU to CPU: its file is held to the same model's fp32 file instead.
    bf16 = np.asarray(Image.open(tmp_path / "bf16-unet" / "coffee.png")).astype(np.int16)
    fp32 = np.asarray(Image.open(tmp_path / "o-unet" / "coffee.png")).astype(np.int16)
    diff = np.abs(bf16 - fp32)
    assert bf16.shape == fp32.shape and diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
