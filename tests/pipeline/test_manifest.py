"""The manifest: rows appended and flushed one at a time, a cut-off row skipped, part files merged atomically
with the latest row winning, one row per input."""

from __future__ import annotations

import json

from polychrome.pipeline.manifest import ManifestWriter, Row, merge, part_files, part_path, read_rows


def row(src: str, status: str, time: str, rank: int = 0, error: str | None = None) -> Row:
    return Row(source=src, output=f"out/{src}", status=status, error=error, model="default", seconds=0.5,
               rank=rank, time=time)  # fmt: skip


def test_rows_are_flushed_at_once_and_a_cut_off_row_is_skipped(tmp_path):
    path = part_path(tmp_path / "run.jsonl", 3)
    assert path.name == "run.jsonl.rank3.part"
    w = ManifestWriter(path)
    w.write(row("a.png", "written", "2026-01-01T00:00:01.000000+00:00", rank=3))
    assert len(path.read_text().splitlines()) == 1  # on disk before close: a kill -9 keeps it
    w.close()
    with open(path, "a") as f:
        f.write('{"source": "b.png", "output": "out/b')  # what a worker killed mid-row leaves
    with ManifestWriter(path) as w:  # the re-run starts on a fresh line
        w.write(row("c.png", "failed", "2026-01-01T00:00:02.000000+00:00", error="c.png: not an image"))
    assert [r["source"] for r in read_rows(path)] == ["a.png", "c.png"]


def test_merge_keeps_one_row_per_input_the_latest_winning(tmp_path):
    manifest = tmp_path / "run.jsonl"
    with ManifestWriter(manifest) as w:  # an earlier, merged run
        w.write(row("a.png", "failed", "2026-01-01T00:00:01.000000+00:00", error="a.png: cannot write"))
        w.write(row("b.png", "written", "2026-01-01T00:00:02.000000+00:00"))
    with ManifestWriter(part_path(manifest, 1)) as w:  # a killed run's part, and a newer one of another rank
        w.write(row("a.png", "written", "2026-01-02T00:00:01.000000+00:00", rank=1))
    with ManifestWriter(part_path(manifest, 0)) as w:
        w.write(row("b.png", "skipped", "2026-01-02T00:00:02.000000+00:00"))
        w.write(row("c.png", "written", "2026-01-02T00:00:03.000000+00:00"))
    (tmp_path / "run.jsonl.rankX.part").write_text("not ours")
    assert merge(manifest) == 3
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [(r["source"], r["status"], r["rank"]) for r in rows] == [
        ("a.png", "written", 1), ("b.png", "skipped", 0), ("c.png", "written", 0)]
    assert rows[0]["error"] is None and set(rows[0]) == {
        "source", "output", "status", "error", "model", "seconds", "rank", "time"}
    assert part_files(manifest) == [] and (tmp_path / "run.jsonl.rankX.part").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl", "run.jsonl.rankX.part"]  # no temp left
