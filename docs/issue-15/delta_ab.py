"""How far other exports of a colouriser move its colours: per-pixel |Δab| (CIE ab distance) from a reference.

    PYTHONPATH=src python docs/issue-15/delta_ab.py ../shared/data/val/bsds500 20 deploy/onnx deploy/int8 [more ...]

The first N photos of the folder (name order), each colourised at the model's working size by every model
given (bundled names, export folders, .onnx graphs); the first one is the reference. Prints, for each other
model, the mean and 99th percentile over all working-grid pixels of sqrt(Δa² + Δb²) against the reference's
``ColorizeResult.ab`` (before the join with full-resolution L and the 8-bit encode). One thread.
"""
import sys

import numpy as np
import torch

from polychrome import Colorizer
from polychrome.io import find_images, load_rgb

torch.set_num_threads(1)
if len(sys.argv) < 5:
    sys.exit(__doc__)
folder, n, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
photos = sorted(find_images(folder))[:n]
models = {s: Colorizer.from_pretrained(s) for s in specs}
dists: dict[str, list[np.ndarray]] = {s: [] for s in specs[1:]}
with torch.no_grad():
    for p in photos:
        rgb = load_rgb(p)
        ref = models[specs[0]](rgb, return_ab=True).ab
        for s in specs[1:]:
            dists[s].append(torch.linalg.vector_norm(models[s](rgb, return_ab=True).ab - ref, dim=1).flatten().numpy())
print(f"|Δab| from {specs[0]} on the first {len(photos)} photos of {folder} (working grid, CIE ab units)")
for s, d in dists.items():
    d = np.concatenate(d)
    print(f"{s}: mean {d.mean():.2f}, 99th percentile {np.percentile(d, 99):.2f}, max {d.max():.2f}")
