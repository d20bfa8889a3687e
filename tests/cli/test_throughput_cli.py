"""``polychrome colorize --workers N --batch-size B`` (one process and the manifest path) and
``polychrome benchmark-speed --folder``: photos per second per setting, against one worker, in one run."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from polychrome.cli import app

runner = CliRunner()


def invoke(*args: str | os.PathLike):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def album(tmp_path, make_photo):
    root = tmp_path / "in"
    for i in range(5):
        make_photo(root / f"p{i}.jpg", 48, 32, seed=i)
    make_photo(root / "deep" / "q.png", 32, 48, seed=9)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_colorize_with_workers_writes_the_same_files_and_reports_the_same(album, tmp_path, tiny_model_dir):
    one = invoke("colorize", album, "-o", tmp_path / "one", "--model", tiny_model_dir)
    many = invoke("colorize", album, "-o", tmp_path / "many", "--model", tiny_model_dir, "--workers", "3")
    for r, out in ((one, tmp_path / "one"), (many, tmp_path / "many")):
        assert r.exit_code == 1 and "Traceback" not in r.output
        assert r.stdout.strip() == f"6 written, 0 skipped, 1 failed -> {out}"
        errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(errors) == 1 and "broken.jpg" in errors[0]
    assert _files(tmp_path / "one") == _files(tmp_path / "many")
    again = invoke("colorize", album, "-o", tmp_path / "many", "--model", tiny_model_dir, "--workers", "3",
                   "--batch-size", "4")  # fmt: skip
    assert again.exit_code == 1 and again.stdout.strip().startswith("0 written, 6 skipped")


def test_the_manifest_path_takes_workers_and_batches(album, tmp_path, tiny_model_dir):
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    r = invoke("colorize", album, "-o", out, "--model", tiny_model_dir, "--manifest", manifest, "--workers", "2",
               "--batch-size", "3")  # fmt: skip
    assert r.exit_code == 1 and f"6 written, 0 skipped, 1 failed -> {out} (1 worker," in r.stdout
    rows = [json.loads(ln) for ln in manifest.read_text().splitlines()]
    assert sorted(r["status"] for r in rows) == ["failed"] + ["written"] * 6
    assert len(_files(out)) == 6


def test_bad_worker_and_batch_options_are_one_line(album, tmp_path, tiny_model_dir):
    for flag in ("--workers", "--batch-size"):
        r = invoke("colorize", album, "-o", tmp_path / "out", "--model", tiny_model_dir, flag, "0")
        assert r.exit_code == 2 and "Traceback" not in r.output and flag in r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_benchmark_folder_times_each_setting_against_one_worker(album, tmp_path, tiny_model_dir):
    res_path = tmp_path / "tp.json"
    before = _files(album)
    r = invoke("benchmark-speed", "--model", tiny_model_dir, "--folder", album, "--workers", "1,2",
               "--batch-size", "1,2", "--repeats", "2", "--threads", "1", "--json", res_path)  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads(res_path.read_text())
    assert [(x["workers"], x["batch_size"]) for x in res["runs"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert res["photos"] == 7 and res["sizes"] == {"48x32": 5, "32x48": 1, "unreadable": 1}
    for x in res["runs"]:
        assert len(x["seconds"]) == 2 and 0 < x["min"] <= x["median"] <= x["max"]
        assert x["written"] == 6 and x["failed"] == 1
        assert x["photos_per_second"] == pytest.approx(6 / x["median"])
        assert x["vs_single"] == pytest.approx(x["photos_per_second"] / res["runs"][0]["photos_per_second"])
    assert res["runs"][0]["vs_single"] == 1.0
    assert res["runs"][2]["identical"] == 6  # two workers, batch size 1: the same bytes
    assert res["threads"] == 1 and res["precision"] == "fp32" and res["device"] == "cpu"
    for text in ("photos/s", "x single", "same bytes as single", "single worker (colorize's default)", "best:",
                 "48x32 x5", "warm-up", "temporary folder", "machine:"):  # fmt: skip
        assert text in r.stdout, text
    assert _files(album) == before  # the photos are only read


def test_benchmark_folder_errors_are_one_line(album, tmp_path, tiny_model_dir):
    cases = [
        (["--workers", "2"], "--workers: only with --folder DIR"),
        (["--folder", album, "--workers", "1,x"], "--workers 1,x: give whole numbers"),
        (["--folder", album, "--batch-size", "0"], "--batch-size 0: give whole numbers"),
        (["--folder", tmp_path / "nope"], "not a folder"),
        (["--folder", tmp_path], "no photos found"),
        (["--folder", album, "--device", "banana"], "--device banana: not a device"),
    ]
    (tmp_path / "empty").mkdir()
    cases[4] = (["--folder", tmp_path / "empty"], "no photos found")
    for args, says in cases:
        r = invoke("benchmark-speed", "--model", tiny_model_dir, *args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and says in lines[0], (args, r.output)
