"""``polychrome colorize --manifest / --threads`` in one process, and the one-line errors of a launched run
that cannot start (the multi-process runs are in tests/pipeline/test_distributed.py)."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from polychrome.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def album(tmp_path, make_photo):
    root = tmp_path / "in"
    make_photo(root / "a.jpg", 40, 30, seed=1)
    make_photo(root / "deep" / "er" / "b.png", 30, 40, seed=2)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def test_one_process_writes_the_manifest_and_a_rerun_updates_it(album, tmp_path, tiny_model_dir):
    out, manifest = tmp_path / "out", tmp_path / "logs" / "run.jsonl"
    before = torch.get_num_threads()
    try:
        first = invoke("colorize", album, "-o", out, "--model", tiny_model_dir, "--manifest", manifest,
                       "--threads", "1")  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert first.exit_code == 1 and "Traceback" not in first.output
    assert f"2 written, 0 skipped, 1 failed -> {out} (1 worker," in first.stdout
    errors = [ln for ln in first.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    rows = [json.loads(ln) for ln in manifest.read_text().splitlines()]
    assert [(os.path.relpath(r["output"], out), r["status"]) for r in rows] == [
        ("a.jpg", "written"), ("broken.jpg", "failed"), ("deep/er/b.png", "written")]
    assert errors[0] == f"error: {rows[1]['error']}" and {r["rank"] for r in rows} == {0}
    assert not torch.distributed.is_initialized()  # one plain process: no process group
    assert (out / "deep" / "er" / "b.png").is_file()  # the tree is mirrored

    (album / "broken.jpg").unlink()
    again = invoke("colorize", album, "-o", out, "--model", tiny_model_dir, "--manifest", manifest)
    assert again.exit_code == 0 and "0 written, 2 skipped" in again.stdout
    rows = [json.loads(ln) for ln in manifest.read_text().splitlines()]
    # One row per input, the newest winning; the photo that is gone keeps its last row.
    assert [r["status"] for r in rows] == ["skipped", "failed", "skipped"]


def test_a_manifest_that_cannot_be_written_is_one_line(album, tmp_path, tiny_model_dir):
    result = invoke("colorize", album, "-o", tmp_path / "out", "--model", tiny_model_dir, "--manifest", album)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert [ln for ln in result.stderr.splitlines() if ln.strip()] == [
        f"error: --manifest {album}: is a folder; give a file name such as run.jsonl"]
    assert not (tmp_path / "out").exists()


def test_an_srun_step_without_a_master_address_is_one_line(album, tmp_path, tiny_model_dir, monkeypatch):
    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    result = invoke("colorize", album, "-o", tmp_path / "out", "--model", tiny_model_dir)
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "under srun set MASTER_ADDR and MASTER_PORT" in lines[0]
