"""Speed of one model as PyTorch (fp32, bf16) and as ONNX graphs (fp32, int8) through the same Colorizer path,
in one process, interleaved: ``python -m polychrome.deploy.bench --model default --onnx DIR [--int8 DIR ...]``.

Each repeat times every configuration once, in turn, so a machine shared with other work slows them alike;
the table gives the median (and min-max) of the repeats after a warm-up. Two timings per configuration:
``model``, one :meth:`~polychrome.colorizer.Colorizer.predict_working` call on an L already on the working grid
(the model and its unit conversions), and ``photo``, a whole in-memory photo through ``Colorizer.__call__``
(L, resize, model, upsample, join, 8-bit). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from PIL import Image


def _photo(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    grey = 0.5 + 0.3 * np.sin(x / 23.0) * np.cos(y / 17.0) + 0.04 * rng.standard_normal((h, w))
    return Image.fromarray((np.clip(grey, 0, 1) * 255).astype(np.uint8), "L")


def run(configs: dict[str, str], size: int, repeats: int, warmup: int, threads: int) -> dict:
    """``configs``: label -> ``"SPEC"`` or ``"SPEC@bf16"``. Returns per label the model and photo seconds."""
    from polychrome.colorizer import Colorizer

    torch.set_num_threads(threads)
    colorizers = {}
    for label, spec in configs.items():
        src, _, precision = spec.partition("@")
        colorizers[label] = Colorizer.from_pretrained(src, precision=precision or "fp32")
    img = _photo(size, size)
    L_work = torch.rand(1, 1, size, size) * 100
    times: dict[str, dict[str, list[float]]] = {k: {"model": [], "photo": []} for k in configs}
    for i in range(warmup + repeats):
        for label, c in colorizers.items():
            t0 = time.perf_counter()
            c.predict_working(L_work)
            t1 = time.perf_counter()
            c(img)
            t2 = time.perf_counter()
            if i >= warmup:
                times[label]["model"].append(t1 - t0)
                times[label]["photo"].append(t2 - t1)
    out = {}
    for label, t in times.items():
        out[label] = {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in t.items()}
        out[label]["spec"] = configs[label]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="the PyTorch model (bundled name or path)")
    ap.add_argument("--onnx", help="its fp32 ONNX export folder")
    ap.add_argument("--int8", action="append", default=[], help="its int8 ONNX export folder (repeat to compare "
                    "several: rows named by the folder as given)")
    ap.add_argument("--size", type=int, default=256, help="square photo side and working size, px")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    configs = {"pytorch fp32": a.model, "pytorch bf16": f"{a.model}@bf16"}
    if a.onnx:
        configs["onnx fp32"] = a.onnx
    for folder in a.int8:
        configs["onnx int8" if len(a.int8) == 1 else f"onnx int8 {folder}"] = folder
    res = run(configs, a.size, a.repeats, a.warmup, a.threads)
    base = res["pytorch fp32"]["model"]["median"]
    print(f"{a.size}x{a.size}, {a.threads} thread(s), median of {a.repeats} interleaved repeats after {a.warmup} warm-up")
    width = max(14, *map(len, res))
    print(f"{'configuration':<{width}} {'model ms':>9} {'(min-max)':>15} {'photo ms':>9} {'vs fp32':>8}")
    for label, r in res.items():
        m, p = r["model"], r["photo"]
        print(f"{label:<{width}} {m['median'] * 1e3:9.1f} {m['min'] * 1e3:7.1f}-{m['max'] * 1e3:<7.1f} "
              f"{p['median'] * 1e3:9.1f} {base / m['median']:7.2f}x")
    if a.json:
        from polychrome.eval.provenance import system_info

        with open(a.json, "w") as f:
            json.dump({"size": a.size, "threads": a.threads, "repeats": a.repeats, "results": res,
                       "system": system_info()}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
