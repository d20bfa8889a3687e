"""Memory: a photo costs the colouriser about its decoded input and its 8-bit output, not a float copy per
step, and a photo that does not fit in the memory a process is given fails alone, in one line."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import polychrome
from polychrome.io import BYTES_PER_PIXEL, MAX_PIXELS, ImageError, read_image

SRC = str(Path(polychrome.__file__).resolve().parents[1])


def _python(code: str, *args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}

    def cap() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          preexec_fn=cap, timeout=600)  # fmt: skip


def _grey_png(path: Path, w: int, h: int) -> Path:
    y, x = np.mgrid[0:h, 0:w]
    Image.fromarray(((x * 7 + y * 3) % 251).astype(np.uint8), "L").save(path, compress_level=1)
    return path


PEAKS = """
import json, resource, sys
from polychrome.colorizer import Colorizer
from polychrome.pipeline.batch import colorize_file
c = Colorizer.from_pretrained(sys.argv[1])
peaks = []
for src in sys.argv[2:]:
    colorize_file(c, src, src + ".out.jpg")
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
print(json.dumps(peaks))
"""


def test_peak_memory_grows_by_the_photo_and_its_result_only(tiny_model_dir, tmp_path):
    small = _grey_png(tmp_path / "small.png", 1000, 1000)
    large = _grey_png(tmp_path / "large.png", 2500, 2400)
    proc = _python(PEAKS, str(tiny_model_dir), str(small), str(large))
    assert proc.returncode == 0, proc.stderr
    after_small, after_large = json.loads(proc.stdout.strip().splitlines()[-1])
    extra_pixels = 2500 * 2400 - 1000 * 1000
    # The grey input (1 byte a pixel) and the RGB result (4) grow with the photo; the rest works in bands.
    assert (after_large - after_small) / extra_pixels < BYTES_PER_PIXEL + 4


VM_PEAK = """
import sys
from polychrome.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
peak = [ln for ln in open("/proc/self/status") if ln.startswith("VmPeak")][0].split()[1]
print("VMPEAK", int(peak) * 1024, code)
"""


def test_a_photo_too_large_for_the_memory_given_fails_alone(tiny_model_dir, tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("a_small.png", "c_small.png"):
        _grey_png(photos / name, 300, 200)
    # What a batch of small photos takes, in address space (torch maps a lot of it): the cap leaves 300 MB more.
    calib = _python(VM_PEAK, "colorize", str(photos), "-o", str(tmp_path / "calib"), "--model", str(tiny_model_dir))
    assert calib.returncode == 0, calib.stderr
    vm_peak = int(calib.stdout.split("VMPEAK")[-1].split()[0])
    # 100 MP: its 8-bit RGB result alone (400 MB) does not fit in the 300 MB left.
    _grey_png(photos / "b_large.png", 10_000, 10_000)
    out = tmp_path / "out"
    proc = _python(VM_PEAK, "colorize", str(photos), "-o", str(out), "--model", str(tiny_model_dir),
                   limit_bytes=vm_peak + 300 * 2**20)  # fmt: skip
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "b_large.png" in errors[0] and "not enough memory" in errors[0], proc.stderr
    assert proc.stdout.split("VMPEAK")[-1].split()[1] == "1"  # exit code 1: a photo failed
    assert sorted(p.name for p in out.iterdir()) == ["a_small.png", "c_small.png"]
    assert "2 written, 0 skipped, 1 failed" in proc.stdout


def test_the_pixel_limit_says_what_memory_it_stands_for(tmp_path):
    w, h = 20_000, MAX_PIXELS // 20_000 + 10
    path = tmp_path / "huge.png"
    Image.new("1", (w, h)).save(path)  # a bilevel PNG: a few KB on disk
    try:
        read_image(path)
    except ImageError as e:
        msg = str(e)
    else:
        raise AssertionError("a photo over the limit was read")
    assert str(path) in msg and f"{MAX_PIXELS / 1e6:.0f} MP" in msg and "GB of memory" in msg
    assert "\n" not in msg
