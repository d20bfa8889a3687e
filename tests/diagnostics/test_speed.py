"""`polychrome benchmark-speed` with a tiny model on small photos (the hidden --sizes option), in worker processes."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image
from typer.testing import CliRunner

from polychrome import hub
from polychrome.cli import app
from polychrome.diagnostics import speed

runner = CliRunner()


def invoke(*args: str | os.PathLike):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_speed_benchmark_times_both_precisions_end_to_end(tmp_path, tiny_model_dir):
    out = tmp_path / "speed.json"
    r = invoke("benchmark-speed", "--model", tiny_model_dir, "--repeats", "2", "--sizes", "64x64,200x150",
               "--threads", "1", "--json", out)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert [(run["size"], run["precision"]) for run in res["runs"]] == [
        ("64x64", "fp32"), ("64x64", "bf16"), ("200x150", "fp32"), ("200x150", "bf16")]
    for run in res["runs"]:
        assert len(run["seconds"]) == 2 and all(t > 0 for t in run["seconds"])
        assert 0 < run["min"] <= run["median"] <= run["max"]
        assert set(run["stages"]) == {k for k, _ in speed.STAGES}
        assert run["stages"]["model"] > 0 and run["stages"]["decode"] > 0 and run["stages"]["encode"] > 0
        assert run["stages"]["rgb_to_l"] > 0 and run["stages"]["lab_to_rgb"] > 0
        # The stages are the end-to-end run cut into pieces ("other" is the rest); over 2 repeats a median is
        # a mean, so the stage medians add up to the end-to-end median.
        assert sum(run["stages"].values()) == pytest.approx(run["median"], rel=1e-9)
        assert run["peak_rss_mib"] > 50 and run["photo_rss_mib"] >= 0  # a fresh Python with torch
        assert run["threads"] == 1 and run["working_size"] == 64
        # The Pillow floor is timed in the same worker, once per repeat, and set beside the result.
        assert len(run["floor"]["seconds"]) == 2 and 0 < run["floor"]["min"] <= run["floor"]["median"]
        assert run["floor_ratio"] == pytest.approx(run["median"] / run["floor"]["median"])
        w, h = (int(v) for v in run["size"].split("x"))
        assert run["decoded_mib"] == pytest.approx(w * h / 2**20, abs=0.01)  # a grey JPEG: one byte a pixel
        assert run["rgb_mib"] == pytest.approx(3 * w * h / 2**20, abs=0.01)
        assert run["rss_over_decoded"] == pytest.approx(run["photo_rss_mib"] / run["rgb_mib"], rel=0.01)
    for size in ("64x64", "200x150"):
        assert res["speedup"][size]["end_to_end"] > 0 and res["speedup"][size]["model"] > 0
    assert "ru_maxrss" in res["memory_method"] and res["system"]["versions"]["torch"]
    # The terminal gets the table, the stage split and how memory was measured.
    for text in ("fp32/bf16", "200x150", "bf16", "where the time goes", "rgb_to_l", "ru_maxrss", "pre/post",
                 "Pillow floor", "x floor", "the Pillow floor", "decoded MiB"):
        assert text in r.stdout, text


def test_make_photo_is_a_grey_photo_of_the_size(tmp_path):
    path = speed.make_photo(tmp_path / "p.jpg", 120, 80)
    with Image.open(path) as im:
        assert im.size == (120, 80) and im.mode == "L" and im.format == "JPEG"
        assert im.getextrema()[1] - im.getextrema()[0] > 50  # not a flat field


def test_speed_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "bundled_names", lambda: [])
    r = invoke("benchmark-speed")  # the bundled default does not exist yet
    assert r.exit_code == 2 and "'default' model" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = invoke("benchmark-speed", "--model", tmp_path / "nope")
    assert r.exit_code == 2 and "--model" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_speed_sizes_option_is_checked(tiny_model_dir):
    r = invoke("benchmark-speed", "--model", tiny_model_dir, "--sizes", "64by64")
    assert r.exit_code == 2 and "WIDTHxHEIGHT" in r.stderr
    with pytest.raises(ValueError, match="precision"):
        speed.run_speed(str(tiny_model_dir), precisions=("fp16",))
