"""The memory one full-resolution download takes on the server, per pixel: a 5 MP photo is uploaded, then
the process's peak RSS is reset (/proc/self/clear_refs) and /full asked for; the rise of the peak over the
RSS before is what the job held at most (decoded photo, result, encoded file, band buffers). Each kind of
photo in its own process, so memory a former job freed cannot hide this one's.

    PYTHONPATH=src python docs/issue-14/full_job_memory.py
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from polychrome.web import create_app

W, H = 2610, 1916  # 5.0 MP, as load_test.py's photos


def rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def photos() -> dict[str, tuple[bytes, str]]:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    g = 0.5 + 0.3 * np.sin(x / 211.0) * np.cos(y / 157.0) + np.random.default_rng(0).normal(0, 0.02, (H, W))
    g = np.clip(g, 0, 1)
    out = {}
    buf = io.BytesIO()
    Image.fromarray((g * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=90)
    out["grey 8-bit JPEG -> PNG"] = (buf.getvalue(), "png")
    out["grey 8-bit JPEG -> JPEG"] = (buf.getvalue(), "jpeg")
    buf = io.BytesIO()
    Image.fromarray((np.stack([g, g * 0.9, g * 0.8], 2) * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=90)
    out["colour JPEG -> PNG"] = (buf.getvalue(), "png")
    buf = io.BytesIO()
    Image.fromarray((g * 65535 + 0.5).astype(np.uint16)).save(buf, "PNG")
    out["grey 16-bit PNG -> 16-bit PNG"] = (buf.getvalue(), "png")
    return out


def measure(what: str) -> None:
    data, fmt = photos()[what]
    with TestClient(create_app("hints")) as c:
        pid = c.post("/api/photos", files={"file": ("p", data, "application/octet-stream")}).json()["id"]
        c.post(f"/api/photos/{pid}/colorize", json=[])  # the model's ab, cached: the job below only renders
        before = rss("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        r = c.post(f"/api/photos/{pid}/full?format={fmt}", json=[])
        rise = rss("VmHWM") - before
        assert r.status_code == 200, r.text
    print(f"{what}: upload {len(data) / 1e6:.1f} MB, download {len(r.content) / 1e6:.1f} MB, "
          f"peak rise {rise / 1e6:.0f} MB = {rise / (W * H):.1f} bytes a pixel", flush=True)  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1:
        return measure(sys.argv[1])
    for what in photos():
        subprocess.run([sys.executable, __file__, what], check=True)


if __name__ == "__main__":
    main()
