"""Green on skin-like pixels of val/people: for each photo, the share of pixels whose ORIGINAL colour is
skin-like (hue 25-65 deg, chroma 10-35, L 35-85; this also takes in wood, sand and brown clothes) that a model
paints with a* < -2, and the photo's green cast (a* < -6 where the original's a* > -2). Prints the photos with
the largest green cast of the last model, the means, and how many photos have > 5% of skin-like pixels green.

    PYTHONPATH=src python docs/issue-12/green_on_skin.py OLD_MODEL NEW_MODEL   # e.g. LEG2 default
"""

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.color import rgb2lab

from polychrome.colorizer import Colorizer

torch.set_num_threads(2)
specs = sys.argv[1:] or ["default"]
models = {s: Colorizer.from_pretrained(s) for s in specs}
folder = Path(__file__).resolve().parents[2] / "../shared/data/val/people"
photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
rows = []
for p in photos:
    im = Image.open(p).convert("RGB")
    lab_t = rgb2lab(np.asarray(im) / 255.0)
    hue = np.degrees(np.arctan2(lab_t[..., 2], lab_t[..., 1]))
    chroma = np.hypot(lab_t[..., 1], lab_t[..., 2])
    skin = (hue > 25) & (hue < 65) & (chroma > 10) & (chroma < 35) & (lab_t[..., 0] > 35) & (lab_t[..., 0] < 85)
    row = [p.name, skin.mean()]
    for c in models.values():
        a = rgb2lab(np.asarray(c(im.convert("L")).image.convert("RGB")) / 255.0)[..., 1]
        row += [((a < -6) & (lab_t[..., 1] > -2)).mean(), ((a < -2) & skin).sum() / max(skin.sum(), 1)]
    rows.append(row)
rows.sort(key=lambda r: -r[-2])
print("photo, skin-like share, then per model (" + ", ".join(models) + "): green cast, green share of skin-like px")
for r in rows[:8]:
    print(r[0], " ".join(f"{v:.3f}" for v in r[1:]))
m = np.array([r[1:] for r in rows])
print("mean", " ".join(f"{v:.4f}" for v in m.mean(0)))
for i, s in enumerate(models):
    print(f"{s}: photos with > 5% of skin-like pixels green: {(m[:, 2 + 2 * i] > 0.05).sum()} of {len(rows)}")
