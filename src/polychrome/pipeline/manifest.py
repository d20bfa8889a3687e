"""The manifest of a batch: one JSON Lines row per input photo, saying what happened to it.

Each row is one JSON object on one line::

    {"source": "scans/1931/a.tif", "output": "coloured/1931/a.tif", "status": "written", "error": null,
     "model": "default", "seconds": 1.73, "rank": 0, "time": "2026-11-30T04:51:07.123456+00:00"}

``status`` is ``written`` (colourised now), ``skipped`` (its output was already there) or ``failed`` (then
``error`` is the one-line reason, as printed on stderr); ``seconds`` is the time this photo took its worker,
``rank`` which worker did it, ``time`` (UTC) when it finished. ``source`` and ``output`` are the paths as
planned from the command line.

While a run goes, every worker appends to its own part file (``FILE.rank<N>.part``, flushed after every row,
so a killed worker loses at most the row it was writing); a single process appends to ``FILE`` itself. At the
end :func:`merge` folds ``FILE`` and every part file into ``FILE``, rewritten atomically: one row per
(source, output), the latest ``time`` winning, sorted by source. A run that was killed leaves its rows in the
part files, and the next run merges them, so re-running the same command leaves a complete manifest.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from polychrome.io import default_file_mode

STATUSES = ("written", "skipped", "failed")


@dataclass(frozen=True)
class Row:
    """What happened to one input photo."""

    source: str
    output: str
    status: str  # one of STATUSES
    error: str | None  # the one-line reason of a failure, else None
    model: str  # the model as named on the command line (or the architecture, from Python)
    seconds: float  # this photo's time in its worker
    rank: int  # the worker that did it
    time: str  # when it finished: ISO 8601, UTC, microseconds (so rows sort by it as text)


def now() -> str:
    """The current time as a manifest ``time``."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def part_path(manifest: str | os.PathLike, rank: int) -> Path:
    """Where worker ``rank`` appends its rows during a run."""
    manifest = Path(manifest)
    return manifest.with_name(f"{manifest.name}.rank{rank}.part")


def part_files(manifest: str | os.PathLike) -> list[Path]:
    """Every worker's part file of ``manifest`` there is (also those a killed run left, whatever its size)."""
    manifest = Path(manifest)
    prefix = f"{manifest.name}.rank"
    if not manifest.parent.is_dir():
        return []
    return sorted(
        p for p in manifest.parent.iterdir()
        if p.name.startswith(prefix) and p.name.endswith(".part") and p.name[len(prefix):-5].isdigit()
    )  # fmt: skip


class ManifestWriter:
    """Appends rows to one file, flushed one row at a time (a worker killed with SIGKILL loses at most the
    row it was writing; :func:`read_rows` skips such a cut-off line)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+b")  # noqa: SIM115 -- held for the run, closed by close()
        self._f.seek(0, os.SEEK_END)
        if self._f.tell() > 0:
            self._f.seek(-1, os.SEEK_END)
            if self._f.read(1) != b"\n":  # a row cut off by a kill: start ours on a line of its own
                self._f.write(b"\n")
        self._f.flush()

    def write(self, row: Row) -> None:
        self._f.write((json.dumps(asdict(row), ensure_ascii=False) + "\n").encode("utf-8"))
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_rows(path: str | os.PathLike) -> Iterator[dict]:
    """The rows of a manifest or part file, one at a time; a line that is not a complete row (cut off by a
    killed worker) is skipped."""
    with open(path, "rb") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and {"source", "output", "status", "time"} <= row.keys():
                yield row


def merge(manifest: str | os.PathLike) -> int:
    """Fold ``manifest`` and all its part files into ``manifest`` (one row per (source, output), the latest
    ``time`` winning; sorted by source then output), written atomically; then delete the part files.
    Returns the number of rows. Holds one row per input in memory (a few hundred bytes each)."""
    manifest = Path(manifest)
    parts = part_files(manifest)
    latest: dict[tuple[str, str], dict] = {}
    for path in ([manifest] if manifest.is_file() else []) + parts:
        for row in read_rows(path):
            key = (row["source"], row["output"])
            old = latest.get(key)
            if old is None or row["time"] >= old["time"]:
                latest[key] = row
    _write_lines_atomic((json.dumps(latest[k], ensure_ascii=False) for k in sorted(latest)), manifest)
    for p in parts:
        p.unlink(missing_ok=True)
    return len(latest)


def _write_lines_atomic(lines, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

