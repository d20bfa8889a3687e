"""Memory a 16-bit scan costs `polychrome colorize` per pixel: grey 16-bit and colour (RGB) 16-bit, PNG and
TIFF in, the same format (16-bit RGB) out. Each photo is colourised in a fresh process after a tiny photo of
its kind (first-use costs), with the peak RSS reset (/proc/self/clear_refs) just before it and glibc's mmap
threshold fixed (a freed array goes back to the system); bytes a pixel = (rise for 5 MP - rise for 1 MP) /
4 MP, so what does not grow with the photo cancels out. Uses a seeded, untrained simple-unet (the test
suite's tiny model): the model's own memory does not grow with the photo.

    PYTHONPATH=src nice -n 19 python docs/issue-14/deep_colour_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import png
import tifffile
import torch
from PIL import Image

CHILD = """
import json, sys
from pathlib import Path
from polychrome.colorizer import Colorizer
from polychrome.pipeline.batch import colorize_file
def rss(field):
    return [int(ln.split()[1]) * 1024 for ln in Path("/proc/self/status").read_text().splitlines()
            if ln.startswith(field + ":")][0]
c = Colorizer.from_pretrained(sys.argv[1])
for src in sys.argv[2:]:
    before = rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    colorize_file(c, src, src + ".out" + src[-4:])
    rise = rss("VmHWM") - before
print(json.dumps(rise))
"""
SIZES = {"tiny": (64, 40), "small": (1000, 1000), "large": (2600, 1925)}


def write(kind: str, path: Path, w: int, h: int) -> None:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 0.5 + 0.3 * np.sin(x / 211.0) * np.cos(y / 157.0) + np.random.default_rng(0).normal(0, 0.02, (h, w))
    g16 = (np.clip(g, 0, 1) * 65535 + 0.5).astype(np.uint16)
    if kind == "grey":
        Image.fromarray(g16).save(path)  # Pillow writes 16-bit grey PNG and TIFF
        return
    rgb = np.stack([g16, (g16 * 0.93).astype(np.uint16), (g16 * 0.82).astype(np.uint16)], axis=-1)
    if path.suffix == ".png":
        png.from_array(rgb.reshape(h, w * 3), "RGB;16").save(str(path))
    else:
        tifffile.imwrite(path, rgb, photometric="rgb", compression="adobe_deflate", predictor=True)


def main() -> None:
    from polychrome import hub
    from polychrome.models import create_model

    tmp = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    meta = {"model": "simple-unet", "model_kwargs": {}, "infer_size": 64}
    model = hub.save_weights(create_model("simple-unet"), meta, tmp / "model")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    for kind in ("grey", "colour"):
        for ext in ("png", "tif"):
            rise = {}
            for name, (w, h) in SIZES.items():
                write(kind, tmp / f"{kind}-{name}.{ext}", w, h)
            for name in ("small", "large"):
                args = [str(model), str(tmp / f"{kind}-tiny.{ext}"), str(tmp / f"{kind}-{name}.{ext}")]
                out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env,
                                     check=True).stdout  # fmt: skip
                rise[name] = json.loads(out.strip().splitlines()[-1])
            per_pixel = (rise["large"] - rise["small"]) / (2600 * 1925 - 1000 * 1000)
            what = f"16-bit {kind} {ext.upper()} -> 16-bit {ext.upper()}"
            print(f"{what}: peak rise {rise['small'] / 1e6:.0f} MB (1 MP), {rise['large'] / 1e6:.0f} MB (5 MP): "
                  f"{per_pixel:.1f} bytes a pixel", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
