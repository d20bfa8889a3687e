"""Model time at 256 x 256 of two colourisers, interleaved in one run (these machines are noisy: compare the ratio).

    git show 8cb8198:src/polychrome/weights/default.safetensors > old.safetensors
    git show 8cb8198:src/polychrome/weights/default.json > old.json
    PYTHONPATH=src python docs/issue-12/compare_model_time.py old.safetensors default

One thread, median of 20 calls of Colorizer.predict_working after 3 warm-up calls, fp32 and bf16.
"""
import statistics
import sys
import time

import torch

from polychrome import Colorizer

torch.set_num_threads(1)
specs = sys.argv[1:3] if len(sys.argv) > 2 else sys.exit(__doc__)
L = torch.rand(1, 1, 256, 256) * 100
for prec in ("fp32", "bf16"):
    cs = {s: Colorizer.from_pretrained(s, precision=prec) for s in specs}
    times = {s: [] for s in cs}
    with torch.no_grad():
        for i in range(23):
            for s, c in cs.items():
                work = c.working_l(L)
                t = time.perf_counter()
                c.predict_working(work)
                if i >= 3:
                    times[s].append(time.perf_counter() - t)
    med = {s: statistics.median(v) * 1000 for s, v in times.items()}
    a, b = specs
    print(f"{prec}: {a} {med[a]:.1f} ms, {b} {med[b]:.1f} ms, second/first {med[b] / med[a]:.2f}x")
