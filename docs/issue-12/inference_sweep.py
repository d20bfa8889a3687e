"""Score one set of weights at several inference settings on the development sets, in one pass per set.

    PYTHONPATH=src python docs/issue-12/inference_sweep.py default --json sweep.json

Each setting is (working size, flip averaging, temperature), applied through the model card as `colorize`
would apply it; every photo is read once and scored beside one grey baseline (polychrome.eval.runner).
Prints one line per set and setting: PSNR, CIEDE2000, colourfulness, green cast.
"""
import argparse
import json
from dataclasses import replace
from pathlib import Path

from polychrome.colorizer import Colorizer
from polychrome.eval.runner import mean_of, photo_paths, score_photos

SETTINGS = [  # (working size, flip averaging, temperature)
    (256, False, 0.38), (224, False, 0.38), (192, False, 0.38),
    (256, True, 0.38), (224, True, 0.38), (192, True, 0.38), (160, True, 0.38),
    (192, True, 0.35), (192, True, 0.32), (192, True, 0.28),
]
SETS = ("../shared/data/val/bsds500", "../shared/data/val/people")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    base = Colorizer.from_pretrained(a.model)
    models, sizes = {}, {}
    for size, flip, t in SETTINGS:
        label = f"{size}px {'flip' if flip else 'once'} T={t}"
        card = replace(base.card, working_size=size, flip_average=flip, temperature=t)
        models[label], sizes[label] = (Colorizer(base.model, card), None), size
    result = {}
    for data in SETS:
        root = Path(data)
        scores = score_photos(models, photo_paths(root), root, sizes, keep=0, progress=False)
        rows = next(iter(scores.rows.values()))
        table = {"grey": {"psnr": mean_of(rows, "grey_psnr"), "ciede2000": mean_of(rows, "grey_ciede2000")}}
        for label, rows in scores.rows.items():
            table[label] = {k: mean_of(rows, k) for k in ("psnr", "ciede2000", "colorfulness", "green_cast")}
        result[root.name] = table
        for label, m in table.items():
            print(root.name, label, "  ".join(f"{k} {v:.3f}" for k, v in m.items()), flush=True)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
