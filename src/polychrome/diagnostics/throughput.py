"""``polychrome benchmark-speed --folder DIR``: photos per second on a folder of photos, for each setting of
``colorize``'s ``--workers`` and ``--batch-size``, against one worker with batch size 1, in one run.

Every setting colourises the same photos through :func:`polychrome.pipeline.batch.colorize_batch` (the path
``polychrome colorize`` takes), with one model loaded once, into a fresh folder under a temporary folder that
is deleted at the end (the photos themselves are only read). The settings take turns: each repeat runs every
setting once, starting from a different one each time, so that a machine that gets busier or quieter during
the run slows every setting alike; the ratios to the single worker are of the medians of this run. Untimed
warm-up runs of each setting over the first few photos come first (the first calls allocate).

Each setting's files of its first timed run are compared with the single worker's: byte for byte, and where
they differ, by the largest difference of a colour level (0-255) of any pixel.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: The setting every other is measured against: what ``polychrome colorize`` does without the options.
BASELINE = (1, 1)


def settings(workers: Sequence[int], batch_sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(workers, batch size) pairs to time: the baseline first, then every pair of the two lists, in order."""
    pairs = [BASELINE] + [(w, b) for w in workers for b in batch_sizes]
    return list(dict.fromkeys(pairs))


def run_throughput(
    colorizer,
    folder: str | os.PathLike,
    workers: Sequence[int] = (1, 2),
    batch_sizes: Sequence[int] = (1,),
    repeats: int = 3,
    warmup: int = 1,
    limit: int | None = None,
    on_start: Callable[[str], None] | None = None,
) -> dict:
    """Time ``colorizer`` on the photos of ``folder`` (searched as ``colorize`` searches it; the first
    ``limit`` in name order) for every (workers, batch size) of :func:`settings`.

    Returns ``{"folder", "photos", "sizes", "repeats", "warmup", "warmup_photos", "runs": [...]}``; each run
    holds ``workers``, ``batch_size``, ``seconds`` (every timed repeat), ``median``, ``min``, ``max``,
    ``photos_per_second`` (photos written over the median), ``vs_single`` (this setting's photos/s over the
    single worker's), ``written`` / ``failed`` (of the first repeat), ``identical`` (files byte-identical to
    the single worker's) and ``max_level_diff`` (the largest difference of one colour level, 0-255).

    Raises ValueError for no photos or a setting below 1.
    """
    from polychrome.pipeline.batch import colorize_batch, plan

    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be at least 1 and warmup at least 0")
    pairs = settings(workers, batch_sizes)
    if any(w < 1 or b < 1 for w, b in pairs):
        raise ValueError("workers and batch sizes must be at least 1")
    with tempfile.TemporaryDirectory(prefix="polychrome-throughput-") as tmp:
        tmp = Path(tmp)
        jobs, _ = plan([folder], tmp / "plan")
        jobs = sorted(jobs, key=lambda j: str(j.src))[:limit]
        if not jobs:
            raise ValueError(f"{folder}: no photos found")
        photos = [j.src for j in jobs]
        n_warm = min(len(photos), max(8, 2 * max(b for _, b in pairs) + max(w for w, _ in pairs)))

        def once(pair: tuple[int, int], out: Path, srcs: list[Path]) -> tuple[float, int, int]:
            todo, _ = plan(srcs, out)
            t = time.perf_counter()
            report = colorize_batch(colorizer, todo, workers=pair[0], batch_size=pair[1])
            return time.perf_counter() - t, len(report.written), len(report.failed)

        for i in range(warmup):
            for pair in pairs:
                if on_start is not None:
                    on_start(f"warm-up {i + 1}/{warmup}: {_label(pair)}")
                once(pair, tmp / "warmup", photos[:n_warm])
                shutil.rmtree(tmp / "warmup")
        seconds: dict[tuple[int, int], list[float]] = {p: [] for p in pairs}
        counts: dict[tuple[int, int], tuple[int, int]] = {}
        compared: dict[tuple[int, int], tuple[int, int]] = {}
        first_out = {p: tmp / f"first_w{p[0]}_b{p[1]}" for p in pairs}
        for r in range(repeats):
            order = pairs[r % len(pairs):] + pairs[: r % len(pairs)]  # each repeat starts from another setting
            for pair in order:
                if on_start is not None:
                    on_start(f"run {r + 1}/{repeats}: {_label(pair)}, {len(photos)} photos")
                out = first_out[pair] if r == 0 else tmp / "run"
                s, written, failed = once(pair, out, photos)
                seconds[pair].append(s)
                if r == 0:
                    counts[pair] = (written, failed)
                else:
                    shutil.rmtree(out)
        for pair in pairs:
            compared[pair] = compare_folders(first_out[BASELINE], first_out[pair])
    base = _photos_per_second(counts[BASELINE][0], seconds[BASELINE])
    runs = []
    for pair in pairs:
        pps = _photos_per_second(counts[pair][0], seconds[pair])
        runs.append({
            "workers": pair[0], "batch_size": pair[1], "seconds": seconds[pair],
            "median": statistics.median(seconds[pair]), "min": min(seconds[pair]), "max": max(seconds[pair]),
            "photos_per_second": pps, "vs_single": pps / base if base > 0 else None,
            "written": counts[pair][0], "failed": counts[pair][1],
            "identical": compared[pair][0], "max_level_diff": compared[pair][1],
        })  # fmt: skip
    return {
        "folder": str(folder),
        "photos": len(photos),
        "sizes": _sizes(photos),
        "repeats": repeats,
        "warmup": warmup,
        "warmup_photos": n_warm,
        "runs": runs,
    }


def _label(pair: tuple[int, int]) -> str:
    return f"workers {pair[0]}, batch size {pair[1]}"


def _photos_per_second(written: int, seconds: list[float]) -> float:
    median = statistics.median(seconds)
    return written / median if median > 0 else 0.0


def _sizes(photos: list[Path]) -> dict[str, int]:
    """How many photos have each size, "WxH" -> count, most common first."""
    from PIL import Image

    count: dict[str, int] = {}
    for p in photos:
        try:
            with Image.open(p) as im:
                key = f"{im.width}x{im.height}"
        except Exception:  # noqa: BLE001 -- a broken photo: counted as such
            key = "unreadable"
        count[key] = count.get(key, 0) + 1
    return dict(sorted(count.items(), key=lambda kv: -kv[1]))


def compare_folders(a: Path, b: Path) -> tuple[int, int]:
    """(how many files of ``a`` are byte-identical in ``b``, the largest difference of a colour level (0-255)
    between the pictures of the others; 0 when all are identical). A file missing from ``b`` counts as not
    identical."""
    import numpy as np
    from PIL import Image

    same, worst = 0, 0
    for fa in sorted(p for p in a.rglob("*") if p.is_file()):
        fb = b / fa.relative_to(a)
        if fb.is_file() and fa.read_bytes() == fb.read_bytes():
            same += 1
            continue
        try:
            with Image.open(fa) as ia, Image.open(fb) as ib:
                xa = np.asarray(ia.convert("RGB"), dtype=np.int16)
                xb = np.asarray(ib.convert("RGB"), dtype=np.int16)
            worst = max(worst, int(np.abs(xa - xb).max()) if xa.shape == xb.shape else 255)
        except Exception:  # noqa: BLE001 -- missing or unreadable: as different as can be
            worst = 255
    return same, worst
