"""The command line, driven the way a person drives it: folders of photos, a broken file, re-runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import colorizer_of
from PIL import Image
from typer.testing import CliRunner

from polychrome import hub
from polychrome.cli import app

runner = CliRunner()


def invoke(*args: str | os.PathLike):
    return runner.invoke(app, [str(a) for a in args])


def error_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def assert_one_line_error(result, *must_contain: str, code: int | None = None) -> str:
    """Exactly one non-empty stderr line, naming what it must, and no traceback."""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for text in must_contain:
        assert text in lines[0], lines[0]
    if code is not None:
        assert result.exit_code == code, result.output
    else:
        assert result.exit_code != 0
    return lines[0]


@pytest.fixture
def album(tmp_path, make_photo):
    """in/: two good photos and one corrupt 'photo'."""
    root = tmp_path / "in"
    make_photo(root / "a.jpg", 64, 48, seed=1)
    make_photo(root / "b.png", 37, 51, seed=2)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return root


# --------------------------------------------------------------------------- colorize
def test_subprocess_batch_with_a_corrupt_file(album, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "polychrome", "colorize", str(album), "-o", str(out), "--model", str(tiny_model_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "broken.jpg" in lines[0], proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.png"]
    assert "2 written, 0 skipped, 1 failed" in proc.stdout
    with Image.open(out / "a.jpg") as a, Image.open(out / "b.png") as b:
        assert (a.format, a.size) == ("JPEG", (64, 48))
        assert (b.format, b.size) == ("PNG", (37, 51))


def test_rerun_skips_finished_outputs_and_overwrite_redoes_them(album, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    first = invoke("colorize", album, "-o", out, "--model", tiny_model_dir)
    assert first.exit_code == 1
    old = 1_000_000_000  # 2001: any rewrite moves the mtime far from this
    for p in out.iterdir():
        os.utime(p, (old, old))
    (out / "b.png").unlink()  # as if the first run had been interrupted

    again = invoke("colorize", album, "-o", out, "--model", tiny_model_dir)
    assert again.exit_code == 1  # the corrupt file still fails
    assert "1 written, 1 skipped" in again.stdout
    assert (out / "a.jpg").stat().st_mtime == old
    assert (out / "b.png").exists()

    forced = invoke("colorize", album, "-o", out, "--model", tiny_model_dir, "--overwrite")
    assert "2 written, 0 skipped, 1 failed" in forced.stdout
    assert (out / "a.jpg").stat().st_mtime != old


def test_folders_are_mirrored_files_and_globs_named(tmp_path, make_photo, tiny_model_dir):
    make_photo(tmp_path / "in" / "x" / "y" / "deep.png", 20, 20)
    make_photo(tmp_path / "in" / "top.jpg", 20, 20)
    single = make_photo(tmp_path / "elsewhere" / "single.webp", 20, 20)
    make_photo(tmp_path / "g" / "2020" / "one.png", 20, 20)
    make_photo(tmp_path / "g" / "2021" / "two.png", 20, 20)
    (tmp_path / "in" / "notes.txt").write_text("not a photo, and not picked up from a folder")
    out = tmp_path / "out"
    r = invoke("colorize", tmp_path / "in", single, f"{tmp_path}/g/**/*.png", "-o", out, "--model", tiny_model_dir)
    assert r.exit_code == 0, r.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["2020/one.png", "2021/two.png", "single.webp", "top.jpg", "x/y/deep.png"]


def test_flip_average_flag_overrides_the_card(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "p.png", 40, 57, seed=4)
    flip_dir = tmp_path / "flip-model"
    shutil.copytree(tiny_model_dir, flip_dir)
    meta = json.loads((flip_dir / "config.json").read_text())
    (flip_dir / "config.json").write_text(json.dumps({**meta, "flip_average": True}))

    def run(name: str, model, *flags: str) -> bytes:
        r = invoke("colorize", src, "-o", tmp_path / name, "--model", model, *flags)
        assert r.exit_code == 0, r.output
        return (tmp_path / name / "p.png").read_bytes()

    plain, carded = run("plain", tiny_model_dir), run("carded", flip_dir)
    assert plain != carded  # the untrained model is not mirror-symmetric
    assert run("flag", tiny_model_dir, "--flip-average") == carded
    assert run("off", flip_dir, "--no-flip-average") == plain
    assert run("archive", tiny_model_dir, "--flip-average", "--manifest", tmp_path / "m.jsonl") == carded


def test_guided_filter_flag_overrides_the_card(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "p.png", 40, 57, seed=4)
    gf_dir = tmp_path / "gf-model"
    shutil.copytree(tiny_model_dir, gf_dir)
    meta = json.loads((gf_dir / "config.json").read_text())
    (gf_dir / "config.json").write_text(json.dumps({**meta, "guided_filter": {"radius": 3, "eps": 50}}))

    def run(name: str, model, *flags: str) -> bytes:
        r = invoke("colorize", src, "-o", tmp_path / name, "--model", model, *flags)
        assert r.exit_code == 0, r.output
        return (tmp_path / name / "p.png").read_bytes()

    plain, carded = run("plain", tiny_model_dir), run("carded", gf_dir)
    assert plain != carded  # the filter smooths the untrained model's colours
    assert run("flag", tiny_model_dir, "--guided-filter", "3,50") == carded
    assert run("off", gf_dir, "--guided-filter", "off") == plain
    assert run("other", gf_dir, "--guided-filter", "1,50") not in (plain, carded)
    assert run("archive", tiny_model_dir, "--guided-filter", "3,50", "--manifest", tmp_path / "m.jsonl") == carded
    r = invoke("colorize", src, "-o", tmp_path / "bad", "--model", tiny_model_dir, "--guided-filter", "3")
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "--guided-filter: a guided filter is RADIUS,EPS (e.g. 5,100), got '3'" in r.output


def test_compare_doubles_the_width(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "p.png", 45, 30)
    r = invoke("colorize", src, "-o", tmp_path / "out", "--model", tiny_model_dir, "--compare")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "out" / "p.compare.png") as im:
        assert im.size == (90, 30)
    # The side-by-side picture is not the colourised photo: a plain run still writes p.png.
    assert not (tmp_path / "out" / "p.png").exists()
    r = invoke("colorize", src, "-o", tmp_path / "out", "--model", tiny_model_dir)
    assert r.exit_code == 0 and "1 written" in r.stdout, r.output
    with Image.open(tmp_path / "out" / "p.png") as im:
        assert im.size == (45, 30)


def test_precision_bf16_colourises_like_fp32(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "in" / "p.png", 70, 50)
    outs = {}
    for precision in ("fp32", "bf16"):
        r = invoke("colorize", src, "-o", tmp_path / precision, "--model", tiny_model_dir, "--precision", precision)
        assert r.exit_code == 0, r.output
        outs[precision] = np.asarray(Image.open(tmp_path / precision / "p.png")).astype(int)
    assert outs["bf16"].shape == outs["fp32"].shape == (50, 70, 3)
    assert np.abs(outs["bf16"] - outs["fp32"]).max() <= 2  # 8-bit levels; see tests/pipeline/test_core.py for the ab tolerance
    r = invoke("colorize", src, "-o", tmp_path / "x", "--model", tiny_model_dir, "--precision", "fp16")
    assert r.exit_code == 2 and "fp16" in r.output


def test_large_photo_keeps_its_size(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "big.jpg", 1200, 800, quality=90)
    r = invoke("colorize", src, "-o", tmp_path / "out", "--model", tiny_model_dir, "--size", "48")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "out" / "big.jpg") as im:
        assert (im.format, im.size) == ("JPEG", (1200, 800))


def test_never_overwrites_an_input(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "in" / "p.png", 20, 20)
    before = src.read_bytes()
    # The output folder is the input folder.
    r = invoke("colorize", tmp_path / "in", "-o", tmp_path / "in", "--model", tiny_model_dir)
    assert_one_line_error(r, "output folder", code=1)
    # A file whose output would land on itself, even with --overwrite.
    r = invoke("colorize", src, "-o", tmp_path / "in", "--model", tiny_model_dir, "--overwrite")
    assert_one_line_error(r, "p.png", "input", code=1)
    # Through a symlinked output folder.
    (tmp_path / "link").symlink_to(tmp_path / "in")
    r = invoke("colorize", src, "-o", tmp_path / "link", "--model", tiny_model_dir, "--overwrite")
    assert_one_line_error(r, "refusing", code=1)
    assert src.read_bytes() == before
    assert [p.name for p in (tmp_path / "in").iterdir()] == ["p.png"]


def test_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, make_photo, tiny_model_dir):
    make_photo(tmp_path / "in" / "p.png", 20, 20)
    out = tmp_path / "in" / "colour"
    assert invoke("colorize", tmp_path / "in", "-o", out, "--model", tiny_model_dir).exit_code == 0
    r = invoke("colorize", tmp_path / "in", "-o", out, "--model", tiny_model_dir)
    assert r.exit_code == 0 and "0 written, 1 skipped" in r.stdout
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["p.png"]


def test_two_inputs_with_one_output_name(tmp_path, make_photo, tiny_model_dir):
    a = make_photo(tmp_path / "a" / "same.png", 20, 20)
    b = make_photo(tmp_path / "b" / "same.png", 20, 20, seed=5)
    r = invoke("colorize", a, b, "-o", tmp_path / "out", "--model", tiny_model_dir)
    assert_one_line_error(r, str(b), "already the output of", code=1)
    assert "1 written" in r.stdout


def test_missing_input_is_one_line_and_the_rest_is_done(tmp_path, make_photo, tiny_model_dir):
    good = make_photo(tmp_path / "good.png", 20, 20)
    r = invoke("colorize", tmp_path / "nope.png", good, tmp_path / "none*.jpg", "-o", tmp_path / "out", "--model", tiny_model_dir)
    assert r.exit_code == 1
    lines = error_lines(r.stderr)
    assert len(lines) == 2 and "nope.png" in lines[0] and "none*.jpg" in lines[1]
    assert (tmp_path / "out" / "good.png").exists()


@pytest.mark.parametrize(
    "kind", ["missing", "empty-folder", "corrupt-weights", "bad-kwargs", "huge-kwargs", "architecture-name"]
)
def test_bad_model_is_a_one_line_error(tmp_path, make_photo, tiny_model_dir, kind):
    src = make_photo(tmp_path / "p.png", 20, 20)
    if kind == "missing":
        spec = tmp_path / "no-such-model"
    elif kind == "empty-folder":
        spec = tmp_path / "empty"
        spec.mkdir()
    elif kind == "corrupt-weights":
        spec = tmp_path / "corrupt"
        shutil.copytree(tiny_model_dir, spec)
        (spec / "model.safetensors").write_bytes(b"garbage")
    elif kind == "bad-kwargs":
        spec = tmp_path / "bad-kwargs"
        shutil.copytree(tiny_model_dir, spec)
        (spec / "config.json").write_text(json.dumps({"model": "simple-unet", "model_kwargs": {"nonsense": 1}}))
    elif kind == "huge-kwargs":  # a 10**6-wide transformer: 10**12 weights, refused before any is allocated
        spec = tmp_path / "huge"
        shutil.copytree(tiny_model_dir, spec)
        (spec / "config.json").write_text(json.dumps({"model": "icolorit-tiny", "model_kwargs": {"dim": 10**6}}))
    else:
        spec = "unet-128"  # an architecture with no bundled weights
    r = invoke("colorize", src, "-o", tmp_path / "out", "--model", spec)
    line = assert_one_line_error(r, "--model", code=2)
    assert kind != "huge-kwargs" or "over the 500 M-parameter limit" in line
    assert not (tmp_path / "out").exists()


def test_option_errors_are_one_line(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "p.png", 20, 20)
    (tmp_path / "file").write_text("x")
    r = invoke("colorize", src, "-o", tmp_path / "file", "--model", tiny_model_dir)
    assert_one_line_error(r, "not a folder", code=2)
    if not torch.cuda.is_available():
        r = invoke("colorize", src, "-o", tmp_path / "out", "--model", tiny_model_dir, "--device", "cuda")
        assert_one_line_error(r, "CUDA", code=2)


def test_default_model_missing_says_so(tmp_path, make_photo, monkeypatch):
    monkeypatch.setattr(hub, "bundled_names", lambda: [])
    monkeypatch.chdir(tmp_path)
    src = make_photo(tmp_path / "p.png", 20, 20)
    r = invoke("colorize", src, "-o", tmp_path / "out")
    assert_one_line_error(r, "'default' model", code=2)
    r = invoke("demo", tmp_path / "demo")
    assert_one_line_error(r, "'default' model", code=2)


# --------------------------------------------------------------------------- train / export
def _train_setup(tmp_path: Path, photo, n: int = 40) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(n):
        Image.fromarray(photo(40, 40, seed=i)).save(data / f"{i:03d}.png")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        f'model = "simple-unet"\ndata = "{data}"\nout_dir = "{tmp_path / "run"}"\n'
        "image_size = 32\ninfer_size = 64\nbatch_size = 8\nepochs = 3\nwarmup_steps = 2\n"
    )
    return cfg


def test_train_unknown_key_and_bad_value(tmp_path, photo):
    cfg = _train_setup(tmp_path, photo, n=0)
    assert_one_line_error(invoke("train", cfg, "learning_rate=1"), "learning_rate", code=2)
    assert_one_line_error(invoke("train", cfg, "epochs=many"), "epochs", code=2)
    assert_one_line_error(invoke("train", cfg, "model=no-such-net"), "no-such-net", code=2)
    assert_one_line_error(invoke("train", tmp_path / "missing.toml"), "missing.toml", code=2)
    assert not (tmp_path / "run").exists()


def test_train_resume_without_checkpoint(tmp_path, photo):
    cfg = _train_setup(tmp_path, photo)
    r = invoke("train", cfg, "workers=0", "--resume", "--no-progress")
    assert_one_line_error(r, "last.pt", code=1)


def test_train_refuses_to_replace_a_run_and_reads_a_bad_checkpoint_in_one_line(tmp_path, photo):
    cfg = _train_setup(tmp_path, photo)
    assert invoke("train", cfg, "epochs=1", "workers=0", "--no-progress").exit_code == 0
    run = tmp_path / "run"
    before = {n: (run / n).read_bytes() for n in ("last.pt", "best.pt")}
    (run / ".last.pt.x1y2.part").write_bytes(b"half a checkpoint from a killed run")
    # A new run into the same out_dir would replace last.pt and best.pt: refused, nothing touched.
    assert_one_line_error(invoke("train", cfg, "epochs=1", "workers=0", "--no-progress"), "--resume", code=1)
    assert {n: (run / n).read_bytes() for n in before} == before
    r = invoke("train", cfg, "epochs=1", "workers=0", "--no-progress", "--overwrite")
    assert r.exit_code == 0, r.output
    assert not list(run.glob(".*.part"))  # the killed run's temp file is gone
    # A truncated or foreign last.pt: one line naming it, for the plain trainer and the GAN trainer alike.
    data = (run / "last.pt").read_bytes()
    for bad in (data[: len(data) // 2], b"not a checkpoint"):
        (run / "last.pt").write_bytes(bad)
        assert_one_line_error(invoke("train", cfg, "epochs=2", "workers=0", "--no-progress", "--resume"),
                              "last.pt: not a readable polychrome checkpoint", code=1)
    torch.save({"step": 3}, run / "last.pt")
    assert_one_line_error(invoke("train", cfg, "epochs=2", "workers=0", "--no-progress", "--resume"),
                          "last.pt: not a polychrome training checkpoint", code=1)


def test_train_then_export_then_colorize(tmp_path, photo, make_photo):
    cfg = _train_setup(tmp_path, photo)
    r = invoke("train", cfg, "epochs=1", "workers=0", "--no-progress")
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
    assert json.loads((run / "config.json").read_text())["epochs"] == 1  # the override won over the file

    r = invoke("export", run / "last.pt", "-o", tmp_path / "export", "--infer-size", "48")
    assert r.exit_code == 0, r.output
    assert "model.safetensors" in r.stdout
    meta = json.loads((tmp_path / "export" / "config.json").read_text())
    assert meta["model"] == "simple-unet" and meta["infer_size"] == 48 and "flip_average" not in meta

    r = invoke("export", run, "-o", tmp_path / "half", "--half", "--flip-average")  # a run folder: uses best.pt
    assert r.exit_code == 0, r.output
    assert "flip_average" in r.stdout and json.loads((tmp_path / "half" / "config.json").read_text())["flip_average"] is True
    r = invoke("export", run, "-o", tmp_path / "gf", "--guided-filter", "3,50")
    assert r.exit_code == 0 and "guided filter radius 3 eps 50" in r.stdout, r.output
    assert json.loads((tmp_path / "gf" / "config.json").read_text())["guided_filter"] == {"radius": 3, "eps": 50.0}
    r = invoke("export", run, "-o", tmp_path / "gf-bad", "--guided-filter", "3")
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "--guided-filter: a guided filter is RADIUS,EPS (e.g. 5,100), got '3'" in r.output
    full, half = (tmp_path / d / "model.safetensors" for d in ("export", "half"))
    assert half.stat().st_size < 0.6 * full.stat().st_size

    src = make_photo(tmp_path / "photo.png", 50, 30)
    for model in (tmp_path / "export", tmp_path / "half", run / "last.pt"):
        out = tmp_path / f"out-{model.name}"
        r = invoke("colorize", src, "-o", out, "--model", model)
        assert r.exit_code == 0, r.output
        with Image.open(out / "photo.png") as im:
            assert im.size == (50, 30)


def test_export_errors(tmp_path):
    assert_one_line_error(invoke("export", tmp_path / "nope.pt", "-o", tmp_path / "x"), "nope.pt", code=2)
    (tmp_path / "fake.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(invoke("export", tmp_path / "fake.pt", "-o", tmp_path / "x"), "fake.pt", code=2)


@pytest.mark.slow
def test_train_under_torchrun_two_processes(tmp_path, photo):
    cfg = _train_setup(tmp_path, photo)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "polychrome", "train", str(cfg), "epochs=1", "workers=0", "num_threads=1", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, card = hub.load(tmp_path / "run" / "last.pt")
    assert card.about["step"] == 2  # 39 training photos // (8 per batch x 2 processes)


# --------------------------------------------------------------------------- models / evaluate / demo
def test_models_lists_architectures_and_weights():
    r = invoke("models")
    assert r.exit_code == 0
    assert "simple-unet" in r.stdout and "unet-32" in r.stdout
    for name in hub.bundled_names():
        assert name in r.stdout


def test_evaluate_is_wired_to_run_evaluation(tmp_path, monkeypatch):
    calls = {}

    def run_evaluation(model_spec, data, json_path, size=None, limit=None, grid_path=None, progress=True,
                       temperatures=None):
        calls.update(model_spec=model_spec, data=data, json_path=json_path, size=size, limit=limit, grid_path=grid_path,
                     temperatures=temperatures)
        return {"n": 3, "mean": {"psnr": 24.5, "ssim": 0.91}, "grey": {"psnr": 22.25, "ssim": 0.9}, "reference": {"ssim": 1.0}}

    monkeypatch.setitem(sys.modules, "polychrome.eval.automatic", types.SimpleNamespace(run_evaluation=run_evaluation))
    r = invoke("evaluate", "--model", "m", "--data", tmp_path, "--json", tmp_path / "s.json", "--limit", "5",
               "--size", "128", "--grid", tmp_path / "g.png")
    assert r.exit_code == 0, r.output
    assert calls == {"model_spec": "m", "data": str(tmp_path), "json_path": str(tmp_path / "s.json"),
                     "size": 128, "limit": 5, "grid_path": str(tmp_path / "g.png"), "temperatures": None}
    assert "24.5000" in r.stdout and "22.2500" in r.stdout and "1.0000" in r.stdout and "ssim" in r.stdout


def test_demo_writes_original_grey_and_colour(tmp_path, tiny_model_dir, lab):
    r = invoke("demo", tmp_path / "demo", "--model", tiny_model_dir)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    samples = sorted({n.rsplit("_", 1)[0] for n in names})
    assert len(samples) >= 3 and "astronaut" in samples
    assert names == sorted(f"{s}_{k}.png" for s in samples for k in ("original", "grey", "colour"))
    for s in samples:
        orig, grey, colour = (np.asarray(Image.open(tmp_path / "demo" / f"{s}_{k}.png")) for k in ("original", "grey", "colour"))
        assert orig.shape == grey.shape == colour.shape
        assert np.abs(lab(orig)[..., 1:]).mean() > 3  # a real colour photo
        assert np.abs(lab(grey)[..., 1:]).max() < 1.0
        assert np.median(np.abs(lab(colour)[..., 0] - lab(grey)[..., 0])) < 0.5
    assert str(tmp_path / "demo") in r.stdout


def test_python_dash_m_help_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "polychrome", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for cmd in ("colorize", "train", "export", "models", "evaluate", "benchmark", "report", "benchmark-speed", "demo"):
        assert cmd in proc.stdout


# --------------------------------------------------------------------------- colour hints (issue 6)
HINT_RED = "#b06050"


@pytest.fixture
def hint_model(monkeypatch):
    """The CLI's model loader hands out a SpreadHints fixture model; ``hint_model.specs`` records what was asked."""
    from _hint_helpers import SpreadHints

    from polychrome.cli import colorize as cli

    model = SpreadHints(infer_size=48)
    model.specs = []

    def load(spec, device, precision="fp32"):
        model.specs.append(spec)
        return colorizer_of(model, precision)

    monkeypatch.setattr(cli, "load_colorizer", load)
    return model


def _hint_file(path: Path, hints) -> Path:
    path.write_text(json.dumps(hints))
    return path


def test_colorize_hints_moves_the_colour_at_full_resolution(tmp_path, hint_model, lab, monkeypatch):
    from _helpers import grey_photo, save

    from polychrome.color.hints import Hint

    monkeypatch.setattr(hub, "bundled_names", lambda: ["default", "hints"])
    src = save(grey_photo(5, w=160, h=90), tmp_path / "photo.png")
    hints = _hint_file(tmp_path / "photo.hints.json", [{"x": 140, "y": 15, "color": HINT_RED}])
    r = invoke("colorize", src, "--hints", hints, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert hint_model.specs == ["hints"]  # --hints without --model: the bundled hint model
    with Image.open(tmp_path / "out" / "photo.png") as out, Image.open(src) as grey:
        assert out.size == (160, 90)
        lab_out, lab_in = lab(out), lab(grey)
    assert np.median(np.abs(lab_out[..., 0] - lab_in[..., 0])) < 0.5
    want = np.array(Hint(0, 0, HINT_RED).ab)
    assert np.linalg.norm(lab_out[15, 140, 1:] - want) < 5.0  # the hint's colour where it was put
    assert np.abs(lab_out[80, 10, 1:]).max() < 1.0  # and grey far from it (this model only spreads hints)
    r = invoke("colorize", src, "--hints", hints, "-o", tmp_path / "out2", "--model", "mine")
    assert r.exit_code == 0 and hint_model.specs[-1] == "mine"


def test_colorize_base_refines_an_automatic_result_with_the_hints(tmp_path, hint_model, monkeypatch, tiny_model_dir):
    from _helpers import grey_photo, save

    monkeypatch.setattr(hub, "bundled_names", lambda: ["default", "hints"])
    src = save(grey_photo(5, w=160, h=90), tmp_path / "photo.png")
    hints = _hint_file(tmp_path / "photo.hints.json", [{"x": 140, "y": 15, "color": HINT_RED}])
    assert invoke("colorize", src, "--hints", hints, "-o", tmp_path / "plain").exit_code == 0
    r = invoke("colorize", src, "--hints", hints, "--base", "default", "-o", tmp_path / "based")
    assert r.exit_code == 0, r.output
    assert hint_model.specs[-2:] == ["hints", "default"]  # the hint model, then the base it refines
    # The stand-in base IS the hint model here, so refining its own result changes nothing.
    plain, based = (np.asarray(Image.open(tmp_path / d / "photo.png")) for d in ("plain", "based"))
    assert np.abs(plain.astype(int) - based.astype(int)).max() <= 1
    with Image.open(tmp_path / "based" / "photo.png") as im:
        assert im.getexif().get(0x0131, "").endswith("model spread-hints on spread-hints")  # provenance: "<hints> on <base>"


def test_colorize_base_needs_a_hint_model(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "p.png", 20, 20)
    r = invoke("colorize", src, "--model", tiny_model_dir, "--base", tiny_model_dir, "-o", tmp_path / "out")
    assert_one_line_error(r, f"--base {tiny_model_dir}: model", "takes no hints", code=2)


@pytest.mark.parametrize("kind", ["missing", "not-json", "not-a-list", "no-colour", "bad-colour", "outside", "nested"])
def test_bad_hint_files_are_one_line_errors(tmp_path, hint_model, make_photo, kind):
    src = make_photo(tmp_path / "p.png", 40, 30)
    path = tmp_path / "h.json"
    if kind == "not-json":
        path.write_text('[{"x": 1, "y": 2, "color": "#aa3322"')
    elif kind == "not-a-list":
        _hint_file(path, {"x": 1, "y": 2, "color": "#aa3322"})
    elif kind == "no-colour":
        _hint_file(path, [{"x": 1, "y": 2}])
    elif kind == "bad-colour":
        _hint_file(path, [{"x": 1, "y": 2, "color": "red"}])
    elif kind == "outside":
        _hint_file(path, [{"x": 5, "y": 5, "color": "#aa3322"}, {"x": 40, "y": 10, "color": "#aa3322"}])
    elif kind == "nested":
        path.write_text("[" * 100_000 + "]" * 100_000)
    r = invoke("colorize", src, "--hints", path, "-o", tmp_path / "out", "--model", "m")
    line = assert_one_line_error(r, f"error: {path}: ")
    expect = {"missing": "cannot read", "not-json": "not valid JSON", "not-a-list": "expected a JSON list",
              "no-colour": "hint 0: missing color", "bad-colour": "hint 0: colour 'red'",
              "outside": "hint 1 at (40, 10) lies outside the 40x30 photo", "nested": "nested too deeply"}[kind]
    assert expect in line
    assert not (tmp_path / "out" / "p.png").exists()


def test_hints_for_a_model_without_hint_inputs_is_one_line_error(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "p.png", 20, 20)
    hints = _hint_file(tmp_path / "h.json", [{"x": 1, "y": 2, "color": HINT_RED}])
    r = invoke("colorize", src, "--hints", hints, "-o", tmp_path / "out", "--model", tiny_model_dir)
    assert_one_line_error(r, f"model {tiny_model_dir} cannot use colour hints", "'hints'", code=2)
    assert not (tmp_path / "out").exists()


def test_hints_need_exactly_one_photo(tmp_path, make_photo, hint_model):
    a, b = make_photo(tmp_path / "in" / "a.png", 20, 20), make_photo(tmp_path / "in" / "b.png", 20, 20)
    hints = _hint_file(tmp_path / "h.json", [{"x": 1, "y": 2, "color": HINT_RED}])
    for args in ([a, b], [tmp_path / "in"]):
        r = invoke("colorize", *args, "--hints", hints, "-o", tmp_path / "out", "--model", "m")
        assert_one_line_error(r, "hints belong to one photo", "hold 2", code=2)
    assert hint_model.specs == []  # refused before loading a model


def test_hints_without_the_bundled_hint_model_says_so(tmp_path, make_photo, monkeypatch):
    monkeypatch.setattr(hub, "bundled_names", lambda: ["default"])
    src = make_photo(tmp_path / "p.png", 20, 20)
    hints = _hint_file(tmp_path / "h.json", [{"x": 1, "y": 2, "color": HINT_RED}])
    r = invoke("colorize", src, "--hints", hints, "-o", tmp_path / "out")
    assert_one_line_error(r, "'hints' model is not in this installation", "--model", code=2)


def test_colorize_hints_with_a_saved_icolorit_model(tmp_path, make_photo):
    from polychrome.models import create_model

    torch.manual_seed(0)
    model_dir = hub.save_weights(create_model("icolorit-tiny"), {"model": "icolorit-tiny", "infer_size": 48},
                                 tmp_path / "model")
    src = make_photo(tmp_path / "p.png", 70, 45)
    hints = _hint_file(tmp_path / "h.json", [{"x": 3, "y": 40, "color": HINT_RED}])
    for precision in ("fp32", "bf16"):
        r = invoke("colorize", src, "--hints", hints, "-o", tmp_path / precision, "--model", model_dir,
                   "--precision", precision)
        assert r.exit_code == 0, r.output
        with Image.open(tmp_path / precision / "p.png") as out:
            assert out.size == (70, 45)


@pytest.fixture
def hint_photos(tmp_path) -> Path:
    from _helpers import colour_photo, save

    for i, (w, h) in enumerate([(48, 40), (30, 40)]):
        save(colour_photo(20 + i, w, h), tmp_path / "photos" / f"{i}.png")
    return tmp_path / "photos"


def test_evaluate_hints_writes_the_curve_json_table_and_plot(tmp_path, hint_photos, monkeypatch):
    from _hint_helpers import SpreadHints

    from polychrome.eval import hints as evaluate_hints

    monkeypatch.setattr(evaluate_hints, "as_colorizer_kept", lambda spec: colorizer_of(SpreadHints(infer_size=32)))
    r = invoke("evaluate", "--model", "fixture", "--data", hint_photos, "--hints", "0,2,20,200",
               "--json", tmp_path / "curve.json", "--plot", tmp_path / "curve.png")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "curve.json").read_text())
    assert summary["counts"] == [0, 2, 20, 200] and [c["hints"] for c in summary["curve"]] == [0, 2, 20, 200]
    assert summary["n"] == 2 and summary["model"] == "fixture"
    for k in ("0", "20", "200", "grey baseline", "PSNR"):
        assert k in r.stdout
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "curve.png" in r.stdout


def test_evaluate_hints_errors_are_one_line(tmp_path, hint_photos, tiny_model_dir):
    base = ("evaluate", "--data", hint_photos, "--json", tmp_path / "s.json")
    r = invoke(*base, "--model", tiny_model_dir, "--hints", "0,5")
    assert_one_line_error(r, "--hints 0,5", "cannot use colour hints", code=2)
    r = invoke(*base, "--model", tiny_model_dir, "--hints", "0,five")
    assert_one_line_error(r, "--hints 0,five", "'five'", code=2)
    r = invoke(*base, "--model", tiny_model_dir, "--plot", tmp_path / "p.png")
    assert_one_line_error(r, "--plot", "--hints", code=2)
    r = invoke(*base, "--model", tiny_model_dir, "--hints", "0", "--grid", tmp_path / "g.png")
    assert_one_line_error(r, "--grid", code=2)
    assert not (tmp_path / "s.json").exists()
    # 0 hints only is the automatic colouriser's single point: fine for any model.
    r = invoke(*base, "--model", tiny_model_dir, "--hints", "0")
    assert r.exit_code == 0, r.output
    assert [c["hints"] for c in json.loads((tmp_path / "s.json").read_text())["curve"]] == [0]


# --------------------------------------------------------------------------- palette
def test_palette_build_kmeans_and_grid(tmp_path, make_photo):
    from polychrome.color.palette import ABPalette

    for i in range(3):
        make_photo(tmp_path / "photos" / f"{i}.png", 20, 16, seed=i)
    r = invoke("palette", "build", tmp_path / "photos", "--bins", "6", "-o", tmp_path / "k.safetensors")
    assert r.exit_code == 0, r.output
    assert "6 bins from 3 photos" in r.output
    pal = ABPalette.load(tmp_path / "k.safetensors")
    assert pal.num_bins == 6 and abs(float(pal.prior.sum()) - 1) < 1e-5
    r = invoke("palette", "build", tmp_path / "photos", "--method", "grid", "--max-photos", "2",
               "-o", tmp_path / "g.safetensors")
    assert r.exit_code == 0, r.output
    assert "from 2 photos (grid)" in r.output
    assert (ABPalette.load(tmp_path / "g.safetensors").bins.remainder(10) == 0).all()


def test_palette_build_errors_are_one_line(tmp_path, make_photo):
    r = invoke("palette", "build", tmp_path / "missing", "-o", tmp_path / "p.safetensors")
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output
    make_photo(tmp_path / "one" / "a.png", 4, 4)
    r = invoke("palette", "build", tmp_path / "one", "--bins", "313", "-o", tmp_path / "p.safetensors")
    assert r.exit_code == 2 and "at least k=313" in r.output
    assert not (tmp_path / "p.safetensors").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["colorize", "x", "-o", "y", "--bogus"], "No such option: --bogus"),
        (["colorize", "x"], "Missing option '--output'"),
        (["colorize", "--size", "2", "x", "-o", "y"], "Invalid value for '--size'"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_usage_mistakes_are_one_line_from_the_console_script(capsys, argv, message):
    from polychrome.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err


def test_console_script_passes_exit_codes_through(capsys, tmp_path):
    from polychrome.cli import main

    with pytest.raises(SystemExit) as e:
        main(["colorize", str(tmp_path / "missing.png"), "-o", str(tmp_path / "out")])
    assert e.value.code == 1 and "missing.png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["models"])
    assert e.value.code == 0


def _count_colourisations(monkeypatch) -> list:
    import polychrome.pipeline.batch as batch

    calls = []
    real = batch.colorize_file
    monkeypatch.setattr(batch, "colorize_file", lambda *a, **k: (calls.append(a[1]), real(*a, **k))[1])
    return calls


def test_an_unwritable_output_folder_is_one_line_before_any_work(album, tmp_path, tiny_model_dir, monkeypatch):
    calls = _count_colourisations(monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the output folder's parent should be")
    r = invoke("colorize", album, "-o", blocker / "out", "--model", tiny_model_dir)
    assert_one_line_error(r, str(blocker / "out"), "cannot write", code=2)
    assert calls == []  # stopped before the first photo, not after all of them


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line_before_any_work(album, tmp_path, tiny_model_dir, monkeypatch):
    calls = _count_colourisations(monkeypatch)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        r = invoke("colorize", album, "-o", out, "--model", tiny_model_dir)
    finally:
        out.chmod(0o755)
    assert_one_line_error(r, str(out), "cannot write", code=2)
    assert calls == [] and not list(out.iterdir())


def test_every_file_in_a_folder_is_colourised_or_named(tmp_path, make_photo, tiny_model_dir):
    src = tmp_path / "in"
    make_photo(src / "a.jpg", 20, 20)
    elsewhere = make_photo(tmp_path / "elsewhere" / "linked.png", 20, 20).parent
    (src / "by-link").symlink_to(elsewhere, target_is_directory=True)  # a linked sub-folder is followed
    (src / "loop").symlink_to(src, target_is_directory=True)  # and a link back up cannot loop
    Image.new("L", (8, 8)).save(src / "anim.gif")
    for name in ("b.avif", "c.heic", "d.psd", "e.svg"):
        (src / name).write_bytes(b"a photo in a format polychrome does not read")
    (src / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (src / "notes.txt").write_text("not a photo")
    (src / ".DS_Store").write_bytes(b"\0")
    out = tmp_path / "out"
    r = invoke("colorize", src, "-o", out, "--model", tiny_model_dir)
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = error_lines(r.stderr)
    for name, fmt in (("anim.gif", "GIF"), ("b.avif", "AVIF"), ("c.heic", "HEIC"), ("d.psd", "Photoshop"),
                      ("e.svg", "SVG"), ("gone.jpg", "link to nothing")):  # fmt: skip
        named = [ln for ln in lines if f"{src / name}:" in ln]
        assert len(named) == 1 and fmt in named[0], (name, r.stderr)
    notes = [ln for ln in lines if ln.startswith("note:")]
    assert len(notes) == 1 and "2 other file(s)" in notes[0] and "notes.txt" in notes[0], r.stderr
    assert len(lines) == 7, r.stderr  # nothing else, no line per photo done
    assert "2 written, 0 skipped, 6 failed" in r.stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.jpg", "by-link/linked.png"]


def test_a_folder_of_only_unread_photos_is_never_a_silent_success(tmp_path, tiny_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("L", (8, 8)).save(src / "x.gif")
    (src / "y.heic").write_bytes(b"a HEIC photo")
    r = invoke("colorize", src, "-o", tmp_path / "out", "--model", tiny_model_dir)
    assert r.exit_code == 1 and "0 written, 0 skipped, 2 failed" in r.stdout, r.output
    assert len(error_lines(r.stderr)) == 2


def test_output_file_for_one_photo_writes_that_file(tmp_path, make_photo, tiny_model_dir):
    src = make_photo(tmp_path / "scan.png", 30, 20)
    result = tmp_path / "done" / "result.jpg"
    r = invoke("colorize", src, "-o", result, "--model", tiny_model_dir)
    assert r.exit_code == 0, r.output
    assert result.is_file() and not (result / "scan.png").exists()
    with Image.open(result) as im:
        assert (im.format, im.size) == ("JPEG", (30, 20))
    again = invoke("colorize", src, "-o", result, "--model", tiny_model_dir)
    assert again.exit_code == 0 and "0 written, 1 skipped" in again.stdout, again.output
    two = invoke("colorize", src, make_photo(tmp_path / "b.png", 8, 8), "-o", tmp_path / "two.jpg", "--model",
                 tiny_model_dir)  # fmt: skip
    assert_one_line_error(two, "two.jpg", "2 photos", "folder", code=2)
    assert not (tmp_path / "two.jpg").exists()
    gif = invoke("colorize", src, "-o", tmp_path / "result.gif", "--model", tiny_model_dir)
    assert_one_line_error(gif, "result.gif", "GIF", code=2)
    assert not (tmp_path / "result.gif").exists()


def test_a_list_file_not_named_txt_says_what_a_list_is(tmp_path, make_photo, tiny_model_dir):
    make_photo(tmp_path / "a.png", 8, 8)
    lst = tmp_path / "photos.lst"
    lst.write_text("a.png\n")
    r = invoke("colorize", lst, "-o", tmp_path / "out", "--model", tiny_model_dir)
    line = assert_one_line_error(r, str(lst), ".txt", "one photo path per line", code=1)
    assert "cannot read" not in line


def test_colorize_hint_option_is_the_hint_file_inline(tmp_path, hint_model, lab, monkeypatch):
    """--hint X,Y,#RRGGBB (repeatable) gives what the same hints in a file give; with --hints both count."""
    from _helpers import grey_photo, save

    monkeypatch.setattr(hub, "bundled_names", lambda: ["default", "hints"])
    src = save(grey_photo(5, w=160, h=90), tmp_path / "photo.png")
    both = [{"x": 140, "y": 15, "color": HINT_RED}, {"x": 20.5, "y": 70, "color": "#3060c0"}]
    r = invoke("colorize", src, "--hints", _hint_file(tmp_path / "h.json", both), "-o", tmp_path / "file")
    assert r.exit_code == 0, r.output
    r = invoke("colorize", src, "--hint", f"140,15,{HINT_RED}", "--hint", "20.5, 70, #3060C0", "-o", tmp_path / "opt")
    assert r.exit_code == 0, r.output
    assert hint_model.specs == ["hints", "hints"]  # --hint without --model: the bundled hint model too
    first = _hint_file(tmp_path / "first.json", both[:1])
    r = invoke("colorize", src, "--hints", first, "--hint", "20.5,70,#3060c0", "-o", tmp_path / "mixed")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "file" / "photo.png") as a, Image.open(tmp_path / "opt" / "photo.png") as b:
        file_result, opt_result = np.asarray(a), np.asarray(b)
    with Image.open(tmp_path / "mixed" / "photo.png") as c:
        assert np.array_equal(np.asarray(c), file_result)
    assert np.array_equal(file_result, opt_result)
    from polychrome.color.hints import hex_to_ab

    assert np.linalg.norm(lab(opt_result)[70, 20, 1:] - np.array(hex_to_ab("#3060c0"))) < 5.0


@pytest.mark.parametrize(
    "value, expect",
    [
        ("120,45", "expected X,Y,#RRGGBB"),
        ("120;45;#aa3322", "expected X,Y,#RRGGBB"),
        ("1,2,3,#aa3322", "expected X,Y,#RRGGBB"),
        ("ten,45,#aa3322", "x 'ten' is not a number of pixels"),
        ("10,-4,#aa3322", "y must be a finite number of pixels >= 0"),
        ("10,nan,#aa3322", "y must be a finite number of pixels >= 0"),
        ("10,4,red", "colour 'red' is not a #rrggbb hex colour"),
        ("10,4,#12345", "colour '#12345' is not a #rrggbb hex colour"),
        ("50,4,#aa3322", "--hint: hint 0 at (50, 4) lies outside the 40x30 photo"),
    ],
)
def test_bad_hint_options_are_one_line_errors(tmp_path, hint_model, make_photo, value, expect):
    src = make_photo(tmp_path / "p.png", 40, 30)
    r = invoke("colorize", src, "--hint", value, "-o", tmp_path / "out", "--model", "m")
    line = assert_one_line_error(r, expect)
    if "outside" not in expect:
        assert f"--hint {value!r}" in line and hint_model.specs == []  # refused before loading a model
    assert not (tmp_path / "out" / "p.png").exists()


def test_hint_options_need_exactly_one_photo(tmp_path, make_photo, hint_model):
    a, b = make_photo(tmp_path / "in" / "a.png", 20, 20), make_photo(tmp_path / "in" / "b.png", 20, 20)
    r = invoke("colorize", a, b, "--hint", "1,2,#aa3322", "-o", tmp_path / "out", "--model", "m")
    assert_one_line_error(r, "--hint: hints belong to one photo", "hold 2", code=2)


# --------------------------------------------------------------------------- colorize in a pipeline: - and -o -
# These run in tmp_path: code that took -o - for a folder named "-" must not leave one in the repository.
def _run_in(tmp_path: Path) -> dict:
    """subprocess.run's cwd and env for a run in ``tmp_path`` that still imports this polychrome."""
    import polychrome

    paths = [str(Path(polychrome.__file__).resolve().parents[1]), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return {"cwd": tmp_path, "env": {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}}


def _pipe_photos(tmp_path: Path) -> dict[str, Path]:
    """Photos whose file path keeps something a pipe could lose: a JPEG's EXIF (turned upright) and ICC
    profile, a 16-bit grey PNG (16-bit out), a 3-page LZW TIFF (every page out), a WebP."""
    from PIL import ImageCms

    from _helpers import colour_photo

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112], exif[0x0110] = 6, "Pipe Camera"  # orientation: rotate 90 degrees; the camera model
    jpeg = tmp_path / "in" / "old.jpg"
    jpeg.parent.mkdir()
    colour_photo(1, 40, 24).save(jpeg, exif=exif.tobytes(), icc_profile=icc, quality=90)
    deep = tmp_path / "in" / "scan.png"
    ramp = np.linspace(0, 65535, 36 * 20).reshape(20, 36).astype(np.uint16)
    Image.fromarray(ramp).save(deep)
    tiff = tmp_path / "in" / "pages.tif"
    pages = [colour_photo(s, 30, 22).convert("L") for s in (2, 3, 4)]
    pages[0].save(tiff, save_all=True, append_images=pages[1:], compression="tiff_lzw")
    webp = tmp_path / "in" / "snap.webp"
    colour_photo(5, 26, 26).save(webp, quality=80)
    return {"jpeg": jpeg, "png16": deep, "tiff": tiff, "webp": webp}


@pytest.mark.parametrize("kind", ["jpeg", "png16", "tiff", "webp"])
def test_stdin_and_stdout_give_the_file_paths_bytes(tmp_path, tiny_model_dir, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = _pipe_photos(tmp_path)[kind]
    model = ("--model", tiny_model_dir)
    r = invoke("colorize", src, "-o", tmp_path / "files", *model)
    assert r.exit_code == 0, r.output
    expected = (tmp_path / "files" / src.name).read_bytes()

    piped = runner.invoke(app, ["colorize", "-", "-o", "-", *map(str, model)], input=src.read_bytes())
    assert piped.exit_code == 0, piped.stderr
    assert piped.stdout_bytes == expected  # the photo's bytes and nothing else
    assert "1 written, 0 skipped, 0 failed" in piped.stderr

    from_file = invoke("colorize", src, "-o", "-", *model)
    assert from_file.exit_code == 0 and from_file.stdout_bytes == expected, from_file.stderr

    into = runner.invoke(app, ["colorize", "-", "-o", str(tmp_path / "pipe"), *map(str, model)], input=src.read_bytes())
    assert into.exit_code == 0 and "1 written" in into.stdout, into.output
    ext = {"jpeg": ".jpg", "png16": ".png", "tiff": ".tif", "webp": ".webp"}[kind]
    assert [p.name for p in (tmp_path / "pipe").iterdir()] == [f"stdin{ext}"]
    assert (tmp_path / "pipe" / f"stdin{ext}").read_bytes() == expected
    with Image.open(tmp_path / "pipe" / f"stdin{ext}") as im:  # what makes these bytes worth comparing
        if kind == "jpeg":
            assert im.size == (24, 40) and im.getexif()[0x0110] == "Pipe Camera" and im.info.get("icc_profile")
        if kind == "tiff":
            assert im.n_frames == 3 and im.info.get("compression") == "tiff_lzw"
    if kind == "png16":
        import png

        assert png.Reader(bytes=expected).read()[3]["bitdepth"] == 16


def test_a_shell_pipeline_through_stdin_and_stdout(tmp_path, make_photo, tiny_model_dir):
    """A real pipe: `polychrome colorize - -o - < old.png > new.png`, binary and flushed, the summary on stderr."""
    src = make_photo(tmp_path / "old.png", 33, 21)
    cmd = [sys.executable, "-m", "polychrome", "colorize", "-", "-o", "-", "--model", str(tiny_model_dir)]
    with open(src, "rb") as stdin:
        proc = subprocess.run(cmd, stdin=stdin, capture_output=True, timeout=300, **_run_in(tmp_path))
    assert proc.returncode == 0, proc.stderr.decode()
    assert invoke("colorize", src, "-o", tmp_path / "out", "--model", tiny_model_dir).exit_code == 0
    assert proc.stdout == (tmp_path / "out" / "old.png").read_bytes()
    assert b"Traceback" not in proc.stderr and b"1 written, 0 skipped, 0 failed" in proc.stderr


def test_stdout_that_is_a_terminal_is_refused(tmp_path, make_photo, tiny_model_dir):
    import pty

    src = make_photo(tmp_path / "old.png", 20, 20)
    leader, follower = pty.openpty()
    try:
        cmd = [sys.executable, "-m", "polychrome", "colorize", str(src), "-o", "-", "--model", str(tiny_model_dir)]
        proc = subprocess.run(cmd, stdout=follower, stderr=subprocess.PIPE, timeout=300, **_run_in(tmp_path))
        os.close(follower)
        written = b""
        try:
            while chunk := os.read(leader, 4096):
                written += chunk
        except OSError:  # the terminal's end: nothing more to read
            pass
    finally:
        os.close(leader)
    assert proc.returncode == 2
    lines = error_lines(proc.stderr.decode())
    assert len(lines) == 1 and "-o -" in lines[0] and "terminal" in lines[0], proc.stderr
    assert written == b""


@pytest.mark.parametrize(
    "data, expect",
    [(b"", "<stdin>: empty"), (b"just some text\n", "<stdin>: not a photo polychrome reads"),
     ("truncated", "<stdin>: cannot read image")],
    ids=["empty", "not-a-photo", "truncated"],
)  # fmt: skip
def test_a_bad_photo_on_stdin_is_one_line_naming_stdin(tmp_path, make_photo, tiny_model_dir, data, expect, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if data == "truncated":
        data = make_photo(tmp_path / "whole.png", 40, 30).read_bytes()[:-300]
    out = tmp_path / "out"
    r = runner.invoke(app, ["colorize", "-", "-o", str(out), "--model", str(tiny_model_dir)], input=data)
    assert_one_line_error(r, expect, code=1)
    assert "0 written, 0 skipped, 1 failed" in r.stdout
    assert not out.exists() or not any(out.iterdir())
    # To stdout: nothing there, the error and the summary on stderr.
    r = runner.invoke(app, ["colorize", "-", "-o", "-", "--model", str(tiny_model_dir)], input=data)
    assert r.exit_code == 1 and r.stdout_bytes == b"", r.stderr
    errors = [ln for ln in error_lines(r.stderr) if ln.startswith("error:")]
    assert len(errors) == 1 and expect in errors[0] and "Traceback" not in r.stderr, r.stderr


def test_stdin_and_stdout_take_one_photo(tmp_path, make_photo, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = make_photo(tmp_path / "in" / "a.png", 20, 20)
    make_photo(tmp_path / "in" / "b.png", 20, 20, seed=3)
    model = ("--model", tiny_model_dir)
    r = runner.invoke(app, ["colorize", "-", str(a), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)],
                      input=a.read_bytes())  # fmt: skip
    assert_one_line_error(r, "-:", "only input", code=2)
    for inputs in ([tmp_path / "in"], [a, tmp_path / "in" / "b.png"]):
        r = invoke("colorize", *inputs, "-o", "-", *model)
        assert_one_line_error(r, "-o -", "standard output takes one photo", "hold 2", code=2)
        assert r.stdout_bytes == b""
    r = invoke("colorize", a, "-o", "-", "--confidence", *model)
    assert_one_line_error(r, "-o -", "--confidence", code=2)
    r = invoke("colorize", a, "-o", "-", "--manifest", tmp_path / "m.jsonl", *model)
    assert_one_line_error(r, "-o -", "folder", code=2)
    r = runner.invoke(app, ["colorize", "-", "-o", str(tmp_path / "o"), "--manifest", str(tmp_path / "m.jsonl"),
                            "--model", str(tiny_model_dir)], input=a.read_bytes())  # fmt: skip
    assert_one_line_error(r, "-:", "--manifest", code=2)
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_stdin_into_a_folder_follows_the_batch_rules(tmp_path, make_photo, tiny_model_dir):
    """stdin.EXT is skipped when it is there and opens, redone with --overwrite; -o FILE takes it too."""
    data = make_photo(tmp_path / "a.jpg", 20, 20).read_bytes()
    args = ["colorize", "-", "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)]
    assert runner.invoke(app, args, input=data).exit_code == 0
    again = runner.invoke(app, args, input=data)
    assert again.exit_code == 0 and "0 written, 1 skipped" in again.stdout, again.output
    forced = runner.invoke(app, [*args, "--overwrite", "--compare"], input=data)
    assert forced.exit_code == 0 and "1 written" in forced.stdout, forced.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["stdin.compare.jpg", "stdin.jpg"]
    r = runner.invoke(app, ["colorize", "-", "-o", str(tmp_path / "new.png"), "--model", str(tiny_model_dir)],
                      input=data)  # fmt: skip
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "new.png") as im:
        assert (im.format, im.size) == ("PNG", (20, 20))


def test_colorize_help_mentions_dash():
    r = invoke("colorize", "--help")
    assert r.exit_code == 0
    text = " ".join(r.stdout.replace("│", " ").split())  # rich's boxes wrap the option help
    assert "- is standard input" in text and "-o - standard output" in text
    assert "- reads one photo from standard input" in text and "- to write it to standard output" in text


def test_a_photo_named_without_an_extension_is_written_with_its_formats(tmp_path, make_photo, tiny_model_dir):
    """`scan` (a JPEG with no extension) lands as out/scan.jpg, in JPEG; a file with no extension that is no
    photo is one line naming it, and the other photo is still written."""
    scan = tmp_path / "scan"
    make_photo(tmp_path / "scan.jpg", 24, 18).rename(scan)
    junk = tmp_path / "notes"
    junk.write_bytes(b"\x00\x01 not a photo")
    out = tmp_path / "out"
    r = invoke("colorize", scan, junk, "-o", out, "--model", tiny_model_dir)
    assert r.exit_code == 1, r.output
    assert "1 written, 0 skipped, 1 failed" in r.stdout
    assert f"{junk}: " in r.output and "Traceback" not in r.output
    assert [p.name for p in out.iterdir()] == ["scan.jpg"]
    with Image.open(out / "scan.jpg") as im:
        assert (im.format, im.size) == ("JPEG", (24, 18))
    again = invoke("colorize", scan, "-o", out, "--model", tiny_model_dir)  # re-run: finished, skipped
    assert again.exit_code == 0 and "0 written, 1 skipped" in again.stdout, again.output
