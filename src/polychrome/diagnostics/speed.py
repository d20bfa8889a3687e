"""``polychrome benchmark-speed``: how fast the real colourisation path runs on this machine, end to end.

One photo file in, one colour photo file out, through :func:`polychrome.pipeline.colorize_file` (read and
decode, RGB -> Lab at full resolution, L down to the working size, the model, ab up to full size, Lab ->
RGB, 8-bit, encode and write), for a small and a 12-megapixel photo, in fp32 and in bf16 (autocast +
channels_last), timed over repeats after a warm-up.

Each (photo, precision) runs in a fresh Python process, so that its peak memory is its own: the worker
reports its peak resident set (VmHWM on Linux; ``getrusage(RUSAGE_SELF).ru_maxrss`` elsewhere), which includes Python,
torch and the model, and the peak it had reached before the first photo, after the imports and the model
load; the difference is what colourising that photo costs.

The floor is measured in the same worker, interleaved with polychrome's runs (one floor run after each of
them): Pillow alone decoding the same grey JPEG and encoding it as an RGB JPEG of the same quality, what any
tool that reads this photo and writes a colour one must pay. The ratio of polychrome's end-to-end median to
the floor's median is the figure to compare across machines (both slow down alike on a busy one). Beside the
peak memory stands the photo's own decoded size (its pixels as Pillow holds them, and the RGB output's).

The split between the model and everything around it is measured in the same timed runs: the worker
passes a ``timer`` to :func:`polychrome.pipeline.colorize_file`, which times each stage of the real path
(:data:`polychrome.pipeline.core.STAGES`), so the stage times add up to the end-to-end time but for glue
code ("other").
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from polychrome.io import grey_to_pil

#: (width, height) of the photos timed: a 256x256 image and a 12-megapixel photo.
SIZES: tuple[tuple[int, int], ...] = ((256, 256), (4000, 3000))
PRECISIONS = ("fp32", "bf16")
#: Stages of the pipeline, in order: (key, what it covers). "other" is the end-to-end time less the rest.
STAGES = (
    ("decode", "read + decode the file (PIL, EXIF orientation)"),
    ("to_float", "8-bit image -> float RGB array"),
    ("rgb_to_l", "RGB -> L at full resolution (the lightness only)"),
    ("resize", "L down to the working size, ab up to full size"),
    ("model", "the model (bf16: autocast + channels_last), and its card's guided filter"),
    ("lab_to_rgb", "join L + ab, Lab -> RGB at full resolution"),
    ("to_8bit", "float RGB -> 8-bit image"),
    ("encode", "encode + write the file"),
    ("other", "everything else (array copies, glue)"),
)
#: Stages that are not the model: the pre/post-processing, at full resolution.
PRE_POST = tuple(k for k, _ in STAGES if k != "model")
FLOOR_METHOD = (
    "Pillow alone on the same file, in the same process, interleaved with polychrome's runs: open + decode "
    "the grey JPEG, convert to RGB, encode a JPEG (quality 95) and write it"
)
MEMORY_METHOD = (
    "peak resident set (VmHWM on Linux, else getrusage ru_maxrss) of a fresh process per configuration, at its end; "
    "'+photo' is that peak less the peak after imports and model load, before the first photo"
)


def make_photo(path: str | os.PathLike, width: int, height: int, seed: int = 0) -> Path:
    """Write a synthetic black-and-white photo (8-bit grey JPEG, quality 95): smooth shapes, edges and grain,
    so decoding, encoding and the model see photo-like content rather than a flat field."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    img = 0.35 + 0.25 * x + 0.15 * np.sin(9.0 * x + 5.0 * y) * np.cos(7.0 * y)
    img = img + 0.2 * ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.04)  # a hard-edged disc
    img = img + rng.normal(0.0, 0.03, (height, width)).astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grey_to_pil(img).save(path, quality=95)
    return path


def run_speed(
    model_spec: str,
    repeats: int = 5,
    warmup: int = 1,
    sizes: Sequence[tuple[int, int]] = SIZES,
    precisions: Sequence[str] = PRECISIONS,
    threads: int | None = None,
    on_start: Callable[[str], None] | None = None,
) -> dict:
    """Time ``model_spec`` (anything :func:`polychrome.hub.load_model` accepts) end to end on photos of
    ``sizes`` ((width, height) each) in each precision; every configuration in its own process.

    Args:
        repeats: timed runs per configuration (median, min and max reported).
        warmup: untimed runs first (the first call allocates, and bf16 converts the weights to channels_last).
        threads: torch intra-op threads in the workers; None keeps torch's default (``OMP_NUM_THREADS`` or
            the cores).
        on_start: called with a short description as each configuration starts (for a progress line).

    Returns:
        ``{"model", "system", "repeats", "warmup", "memory_method", "stages", "runs": [...],
        "speedup": {"WxH": {"end_to_end", "model"}}}``; each run holds ``size``, ``precision``, ``seconds``
        (every repeat), ``median``/``min``/``max``, ``stages`` (median seconds per stage), ``model_share``,
        ``peak_rss_mib``, ``photo_rss_mib``, ``threads``, ``model_load_seconds``, ``floor`` (the Pillow
        decode + encode floor: ``seconds``, ``median``, ``min``, ``max``), ``floor_ratio`` (end-to-end median
        over the floor's median), ``decoded_mib`` / ``rgb_mib`` (the photo decoded, as Pillow holds it, and as
        8-bit RGB) and ``rss_over_decoded`` (``photo_rss_mib`` over ``rgb_mib``). ``speedup`` is the fp32
        median over the bf16 median, measured in this run.

    Raises:
        RuntimeError: a worker failed (its last error line is in the message).
    """
    from polychrome.eval.provenance import system_info

    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be at least 1 and warmup at least 0")
    for p in precisions:
        if p not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {p!r}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="polychrome-speed-") as tmp:
        total = len(sizes) * len(precisions)
        for (w, h) in sizes:
            src = make_photo(Path(tmp) / f"photo_{w}x{h}.jpg", w, h)
            for precision in precisions:
                if on_start is not None:
                    on_start(f"{w}x{h} {precision} ({len(runs) + 1}/{total})")
                cfg = {
                    "model": str(model_spec),
                    "src": str(src),
                    "dst": str(Path(tmp) / f"out_{w}x{h}_{precision}.jpg"),
                    "precision": precision,
                    "repeats": repeats,
                    "warmup": warmup,
                    "threads": threads,
                }
                run = _spawn(cfg)
                run["size"] = f"{w}x{h}"
                runs.append(run)
    speedup = {}
    for (w, h) in sizes:
        by_p = {r["precision"]: r for r in runs if r["size"] == f"{w}x{h}"}
        if "fp32" in by_p and "bf16" in by_p:
            speedup[f"{w}x{h}"] = {
                "end_to_end": by_p["fp32"]["median"] / by_p["bf16"]["median"],
                "model": _ratio(by_p["fp32"]["stages"]["model"], by_p["bf16"]["stages"]["model"]),
            }
    info = system_info()
    if runs:
        info["torch_threads"] = runs[0]["threads"]  # what the workers ran with
    return {
        "model": str(model_spec),
        "system": info,
        "repeats": repeats,
        "warmup": warmup,
        "photo_format": "8-bit grey JPEG in, RGB JPEG (quality 95) out",
        "memory_method": MEMORY_METHOD,
        "floor_method": FLOOR_METHOD,
        "stages": dict(STAGES),
        "runs": runs,
        "speedup": speedup,
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _spawn(cfg: dict) -> dict:
    """Run one configuration in a fresh interpreter; its result is the last line of its stdout."""
    cmd = [sys.executable, "-m", "polychrome.diagnostics.speed", json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise RuntimeError(f"speed worker for {cfg['precision']} failed: {lines[-1] if lines else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the worker (a fresh process)
class _StageTimer:
    """The ``timer`` given to the pipeline: ``with timer(stage):`` adds that block's time to the stage's total."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t0


def _peak_rss_mib() -> float:
    """This process's peak resident set. On Linux VmHWM, which is this program's own: ``ru_maxrss`` keeps the
    peak of the parent across fork and exec (the parent that made a 48 MP test photo would set it)."""
    import resource

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def pillow_floor(src: str | os.PathLike, dst: str | os.PathLike) -> float:
    """Seconds for Pillow alone to decode ``src`` and write it as an RGB JPEG (quality 95) to ``dst``."""
    from PIL import Image

    t = time.perf_counter()
    with Image.open(src) as im:
        rgb = im.convert("RGB")  # decodes
    rgb.save(dst, quality=95)
    return time.perf_counter() - t


def decoded_mib(src: str | os.PathLike) -> tuple[float, float]:
    """(the photo's pixels as Pillow decodes them, the same photo as 8-bit RGB), in MiB."""
    from PIL import Image

    with Image.open(src) as im:
        w, h = im.size
        bands = len(im.getbands())
    return w * h * bands / 2**20, w * h * 3 / 2**20


def _worker(cfg: dict) -> dict:
    import torch

    from polychrome.colorizer import Colorizer
    from polychrome.pipeline.batch import colorize_file

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    t0 = time.perf_counter()
    colorizer = Colorizer.from_pretrained(cfg["model"], precision=cfg["precision"])
    load_seconds = time.perf_counter() - t0
    rss_ready = _peak_rss_mib()
    timer = _StageTimer()

    def once() -> tuple[float, dict[str, float]]:
        timer.seconds.clear()
        t = time.perf_counter()
        colorize_file(colorizer, cfg["src"], cfg["dst"], timer=timer)
        total = time.perf_counter() - t
        stages = {k: timer.seconds.get(k, 0.0) for k, _ in STAGES if k != "other"}
        stages["other"] = total - sum(stages.values())
        return total, stages

    floor_dst = str(Path(cfg["dst"]).with_name("floor_" + Path(cfg["dst"]).name))
    for _ in range(cfg["warmup"]):
        once()
        pillow_floor(cfg["src"], floor_dst)
    totals, per_stage, floors = [], defaultdict(list), []
    for _ in range(cfg["repeats"]):
        total, stages = once()
        totals.append(total)
        for k, v in stages.items():
            per_stage[k].append(v)
        floors.append(pillow_floor(cfg["src"], floor_dst))
    peak = _peak_rss_mib()
    pixels_mib, rgb_mib = decoded_mib(cfg["src"])
    photo_rss, rgb_mib = round(peak - rss_ready, 1), round(rgb_mib, 2)  # the ratio is of the figures reported
    floor_median = statistics.median(floors)
    median_stages = {k: statistics.median(per_stage[k]) for k, _ in STAGES}
    median = statistics.median(totals)
    return {
        "precision": cfg["precision"],
        "seconds": totals,
        "median": median,
        "min": min(totals),
        "max": max(totals),
        "stages": median_stages,
        "model_share": median_stages["model"] / median if median > 0 else None,
        "peak_rss_mib": round(peak, 1),
        "photo_rss_mib": photo_rss,
        "floor": {"seconds": floors, "median": floor_median, "min": min(floors), "max": max(floors)},
        "floor_ratio": statistics.median(totals) / floor_median if floor_median > 0 else None,
        "decoded_mib": round(pixels_mib, 2),
        "rgb_mib": rgb_mib,
        "rss_over_decoded": photo_rss / rgb_mib if rgb_mib > 0 else None,
        "threads": torch.get_num_threads(),
        "model_load_seconds": load_seconds,
        "working_size": colorizer.card.working_size,
    }


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
