"""Many page users at once against a real `polychrome serve`: each uploads a photo and asks for the
full-resolution result, as the page does (a dropped photo is uploaded again once). Prints the successes,
the answer times and the server's peak resident memory (VmHWM).

    PYTHONPATH=src python docs/issue-14/load_test.py [--users 20] [--megapixels 5] [serve options...]

Any further arguments go to `polychrome serve` (e.g. --jobs 2 --queue 32 --job-megapixels 30).
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
from PIL import Image

SOURCE = Path("/work/shared/data/historical/1860girls.jpg")


def photo_bytes(megapixels: float) -> bytes:
    """A grey JPEG of about ``megapixels``: a historical photo scaled up (or a plain gradient without it)."""
    img = Image.open(SOURCE).convert("L") if SOURCE.exists() else Image.linear_gradient("L").resize((400, 300))
    scale = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--megapixels", type=float, default=5.0)
    args, serve_args = ap.parse_known_args()
    data = photo_bytes(args.megapixels)
    with Image.open(io.BytesIO(data)) as im:
        size = im.size
    cmd = [sys.executable, "-c", "import sys; from polychrome.cli import main; sys.argv[0] = 'polychrome'; sys.exit(main())",
           "serve", "--port", "0", *serve_args]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        url = line.split("serving ")[1].split()[0].rstrip("/")
        print(f"server: {line.strip()}")
        print(f"{args.users} users, each a {size[0]}x{size[1]} JPEG ({size[0] * size[1] / 1e6:.2f} MP, "
              f"{len(data) / 1e6:.1f} MB); server RSS before: {peak_rss_mb(server.pid):.0f} MB peak")  # fmt: skip
        start = threading.Barrier(args.users)

        def user(i: int) -> tuple[int, float, int]:
            with httpx2.Client(base_url=url, timeout=600) as h:
                start.wait()
                t0 = time.perf_counter()
                uploads = 0
                for _ in range(2):  # the page uploads again once if the server dropped the photo (404)
                    r = h.post("/api/photos", files={"file": (f"user{i}.jpg", data, "image/jpeg")})
                    uploads += 1
                    if r.status_code != 201:
                        break
                    r = h.post(f"/api/photos/{r.json()['id']}/full?format=png", json=[])
                    if r.status_code != 404:
                        break
                ok = r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == size
                if not ok:
                    print(f"user {i}: {r.status_code} {r.text[:200] if r.status_code != 200 else ''}")
                return (200 if ok else r.status_code), time.perf_counter() - t0, uploads

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.users) as pool:
            results = list(pool.map(user, range(args.users)))
        wall = time.perf_counter() - t0
        codes = [c for c, _, _ in results]
        times = sorted(t for _, t, _ in results)
        print(f"succeeded: {codes.count(200)}/{args.users}; other answers: {[c for c in codes if c != 200]}")
        print(f"uploads made: {sum(u for _, _, u in results)} (a re-upload means the photo was dropped)")
        print(f"time to the full result per user: min {times[0]:.1f} s, median {statistics.median(times):.1f} s, "
              f"max {times[-1]:.1f} s; all done in {wall:.1f} s")  # fmt: skip
        print(f"server peak RSS (VmHWM): {peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
