"""`polychrome export --format onnx` and colourising with the graph, driven the way a person drives them."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime  # noqa: F401  (the test extra installs polychrome[onnx]: missing is a failure, not a skip)
import onnxscript  # noqa: F401
import pytest
from PIL import Image
from test_cli import assert_one_line_error, invoke



@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("cli-onnx") / "onnx"
    r = invoke("export", tiny_model_dir, "--format", "onnx", "-o", out)
    assert r.exit_code == 0, r.output
    assert "dynamic height and width" in r.output and "fp32" in r.output
    return out


def test_export_then_colorize_with_the_graph(onnx_dir, tiny_model_dir, tmp_path, make_photo):
    meta = json.loads((onnx_dir / "config.json").read_text())
    assert meta["format"] == "onnx" and meta["model"] == "simple-unet"
    make_photo(tmp_path / "in" / "a.jpg", 200, 136, seed=3)
    for name, model in (("onnx", onnx_dir), ("file", onnx_dir / "model.onnx"), ("torch", tiny_model_dir)):
        r = invoke("colorize", tmp_path / "in", "-o", tmp_path / name, "--model", model)
        assert r.exit_code == 0, r.output
    a, b, c = (np.asarray(Image.open(tmp_path / n / "a.jpg"), np.int16) for n in ("onnx", "file", "torch"))
    assert np.array_equal(a, b) and np.abs(a - c).max() <= 2  # JPEG re-encoding of a <= 1 difference


def test_export_onnx_errors(tiny_model_dir, onnx_dir, tmp_path):
    assert_one_line_error(invoke("export", tiny_model_dir, "--format", "onnx", "--int8", "-o", tmp_path / "x"),
                          "--calibration", code=2)
    assert_one_line_error(invoke("export", tiny_model_dir, "--format", "onnx", "--half", "-o", tmp_path / "x"),
                          "--half", code=2)
    assert_one_line_error(invoke("export", tiny_model_dir, "--int8", "-o", tmp_path / "x"), "--format onnx", code=2)
    assert_one_line_error(invoke("export", tiny_model_dir, "--format", "onnx", "--int8", "--calibration",
                                 tmp_path / "none", "-o", tmp_path / "x"), "not a folder", code=2)
    assert_one_line_error(invoke("export", onnx_dir, "--format", "onnx", "-o", tmp_path / "x"), "already", code=2)
    assert_one_line_error(invoke("export", "no-such-model", "--format", "onnx", "-o", tmp_path / "x"),
                          "no-such-model", code=2)


def test_colorize_with_a_corrupt_graph_is_one_line(tmp_path, onnx_dir, make_photo):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"garbage")
    (bad / "config.json").write_text((onnx_dir / "config.json").read_text())
    make_photo(tmp_path / "in" / "a.jpg", 40, 30)
    r = invoke("colorize", tmp_path / "in", "-o", tmp_path / "out", "--model", bad)
    assert_one_line_error(r, "not a usable ONNX graph", code=2)
    r = invoke("colorize", tmp_path / "in", "-o", tmp_path / "out", "--model", onnx_dir, "--precision", "bf16")
    assert_one_line_error(r, "fp32", code=2)
