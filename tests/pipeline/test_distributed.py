"""Archive-scale colourisation: the world read from torchrun's and srun's environment, the deterministic split
of the planned jobs, the streamed plan, and the real thing under torchrun with two CPU worker processes (gloo,
one thread each): every photo written once, the manifest complete, a re-run that skips all, and a worker
killed with SIGKILL whose run a re-run completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from polychrome.pipeline.batch import Job, iter_plan, plan
from polychrome.pipeline.distributed import TEST_KILL_ENV, World, owner, plan_share, world_from_env

N_PHOTOS = 20


def test_world_from_torchrun_srun_or_nothing():
    assert world_from_env({}) == World(0, 1, 0, "")
    assert world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(3, 4, 1, "torchrun")
    srun = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0"}
    assert world_from_env(srun) == World(5, 8, 1, "slurm")
    # The batch script itself (no job step) is one plain process, whatever SLURM_NTASKS says.
    assert world_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) == World()


@pytest.fixture
def archive(tmp_path, make_photo) -> Path:
    """N_PHOTOS small photos in a tree three folders deep, and one broken 'photo'."""
    root = tmp_path / "archive"
    for i in range(N_PHOTOS):
        folder = root / f"box{i % 3}" / (f"year{i % 2}" if i % 4 else "") / ("loose" if i % 5 == 0 else "")
        make_photo(folder / f"scan{i:02d}.{'jpg' if i % 2 else 'png'}", 24 + i, 20, seed=i)
    (root / "box0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_every_planned_job_has_exactly_one_owner(archive, tmp_path):
    out = tmp_path / "out"
    jobs, _ = plan([archive], out)
    shares = [plan_share([archive], out, World(r, 3, r, "torchrun")) for r in range(3)]
    by_src = lambda js: sorted(js, key=lambda j: j.src)  # noqa: E731
    assert by_src(j for s in shares for j in s.jobs) == by_src(jobs)  # a partition
    assert all(s.total == len(jobs) == N_PHOTOS + 1 for s in shares)
    assert all(s.jobs for s in shares)
    # The owner is a function of the output below the output folder: the same on every node and run.
    assert owner(Job(Path("x/a.png"), out / "box0" / "a.png"), out, 3) == owner(
        Job(Path("y/b.png"), Path("elsewhere") / "box0" / "a.png"), "elsewhere", 3)


def test_the_streamed_plan_reads_a_list_a_line_at_a_time(archive, tmp_path):
    out = tmp_path / "out"
    photos = sorted(archive.rglob("scan*"))
    listing = tmp_path / "list.txt"
    listing.write_text("# scans\n" + "\n".join(p.relative_to(tmp_path).as_posix() for p in photos) + "\n")
    problems: list[str] = []
    stream = iter_plan([listing, archive], out, problems)
    first = next(stream)  # the first job comes before the rest of the list is planned
    assert first.src == tmp_path / photos[0].relative_to(tmp_path)
    assert [first, *stream] == plan([listing, archive], out)[0] and problems == []
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00 not text")
    problems = []
    assert list(iter_plan([tmp_path / "bad.txt"], out, problems)) == []
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'bad.txt'}: cannot read the list")


# --------------------------------------------------------------------------- under torchrun
def torchrun(args, tmp_path, env_extra=None, restarts: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.pop(TEST_KILL_ENV, None) if not env_extra or TEST_KILL_ENV not in env_extra else None
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max-restarts", str(restarts), "-m", "polychrome", "colorize", *map(str, args), "--threads", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def manifest_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_complete(archive: Path, out: Path) -> None:
    """Every photo's output is there, whole (decodes to the end) and the input's size; nothing else is."""
    photos = sorted(p.relative_to(archive) for p in archive.rglob("scan*"))
    assert sorted(p.relative_to(out) for p in out.rglob("scan*") if not p.name.startswith(".")) == photos
    for rel in photos:
        with Image.open(out / rel) as img, Image.open(archive / rel) as src:
            img.load()
            assert img.size == src.size


@pytest.mark.slow
def test_two_workers_write_every_photo_once_and_a_rerun_skips_all(archive, tmp_path, tiny_model_dir):
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    args = [archive, "-o", out, "--model", tiny_model_dir, "--manifest", manifest]
    first = torchrun(args, tmp_path)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "Traceback" not in first.stderr
    assert f"{N_PHOTOS} written, 0 skipped, 1 failed -> {out} (2 workers," in first.stdout
    assert first.stdout.count("written,") == 1  # one summary, from rank 0
    errors = [ln for ln in first.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {archive / 'box0' / 'broken.jpg'}: ")
    assert_complete(archive, out)

    rows = manifest_rows(manifest)
    assert len(rows) == N_PHOTOS + 1 == len({r["source"] for r in rows})  # one row per input
    by_src = {Path(r["source"]).relative_to(archive).as_posix(): r for r in rows}
    broken = by_src.pop("box0/broken.jpg")
    assert broken["status"] == "failed" and errors[0] == f"error: {broken['error']}"  # the line on stderr
    assert {r["status"] for r in by_src.values()} == {"written"}
    assert all(Path(r["output"]) == out / rel and r["error"] is None for rel, r in by_src.items())
    assert {r["model"] for r in rows} == {str(tiny_model_dir)} and all(r["seconds"] >= 0 for r in rows)
    ranks = {r["rank"] for r in rows}
    assert ranks == {0, 1}  # both workers had a share
    # Each photo went to the worker its output hashes to: no two workers ever held one output.
    assert all(r["rank"] == owner(Job(Path(r["source"]), Path(r["output"])), out, 2) for r in rows)
    assert not list(tmp_path.glob("run.jsonl.rank*.part"))

    again = torchrun(args, tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"0 written, {N_PHOTOS} skipped" in again.stdout
    rows = manifest_rows(manifest)
    assert len(rows) == N_PHOTOS + 1
    assert sorted(r["status"] for r in rows) == ["failed"] + ["skipped"] * N_PHOTOS


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_a_rerun_cannot_finish(archive, tmp_path, tiny_model_dir):
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    args = [archive, "-o", out, "--model", tiny_model_dir, "--manifest", manifest]
    killed = torchrun(args, tmp_path, {TEST_KILL_ENV: "1:3"})  # rank 1 dies by SIGKILL after 3 photos
    assert killed.returncode != 0
    done = [p for p in out.rglob("scan*") if not p.name.startswith(".")]
    assert 3 <= len(done) < N_PHOTOS
    for p in done:  # what the workers left is whole, never a cut-off photo
        with Image.open(p) as img:
            img.load()
    parts = list(tmp_path.glob("run.jsonl.rank*.part"))
    assert parts and not manifest.exists()  # the rows so far are on disk, not yet merged

    rerun = torchrun(args, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert f"{N_PHOTOS - len(done)} written, {len(done)} skipped" in rerun.stdout
    assert_complete(archive, out)
    rows = manifest_rows(manifest)
    assert len(rows) == N_PHOTOS + 1 and not list(tmp_path.glob("run.jsonl.rank*.part"))
    assert sorted(r["status"] for r in rows).count("failed") == 1


@pytest.mark.slow
def test_torchrun_restarts_a_killed_worker_and_the_run_ends_complete(archive, tmp_path, tiny_model_dir):
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    args = [archive, "-o", out, "--model", tiny_model_dir, "--manifest", manifest]
    run = torchrun(args, tmp_path, {TEST_KILL_ENV: "0:2"}, restarts=1)
    assert run.returncode == 0, run.stderr[-4000:]
    assert_complete(archive, out)
    rows = manifest_rows(manifest)
    assert len(rows) == N_PHOTOS + 1
    assert sorted(r["status"] for r in rows).count("failed") == 1


@pytest.mark.slow
def test_two_srun_tasks_share_the_run(archive, tmp_path, tiny_model_dir):
    """What srun starts: two plain processes that know their rank from SLURM_* and meet at MASTER_ADDR."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    procs = []
    try:
        for rank in (0, 1):
            env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", TEST_KILL_ENV)}
            env.update(OMP_NUM_THREADS="1", SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_LOCALID=str(rank),
                       SLURM_STEP_ID="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
            cmd = [sys.executable, "-m", "polychrome", "colorize", str(archive), "-o", str(out), "--model",
                   str(tiny_model_dir), "--manifest", str(manifest), "--threads", "1"]  # fmt: skip
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                          cwd=tmp_path))  # fmt: skip
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    assert f"{N_PHOTOS} written, 0 skipped, 1 failed -> {out} (2 workers," in results[0][0]
    assert results[1][0] == ""  # one summary, from rank 0
    rows = manifest_rows(manifest)
    assert len(rows) == N_PHOTOS + 1 and {r["rank"] for r in rows} == {0, 1}
    assert_complete(archive, out)
