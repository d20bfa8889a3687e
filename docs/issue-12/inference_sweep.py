"""Score one set of weights at several inference settings on the development sets, in one pass per set.

    PYTHONPATH=src python docs/issue-12/inference_sweep.py default --json sweep.json
    PYTHONPATH=src python docs/issue-12/inference_sweep.py default --settings 256:flip:0.32,256:once:0.38 --data DIR

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
    (192, True, 0.35), (192, True, 0.32), (192, True, 0.28), (256, True, 0.35), (256, True, 0.32),
]
SETS = ("../shared/data/val/bsds500", "../shared/data/val/people")


def parse_settings(text: str) -> list[tuple[int, bool, float]]:
    """"256:flip:0.32,192:once:0.38" -> [(256, True, 0.32), (192, False, 0.38)]."""
    out = []
    for item in text.split(","):
        size, flip, t = item.split(":")
        if flip not in ("flip", "once"):
            raise SystemExit(f"--settings: {item!r}: the middle field is flip or once")
        out.append((int(size), flip == "flip", float(t)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--settings", type=parse_settings, default=SETTINGS, help="SIZE:flip|once:T,... (default: the list above)")
    ap.add_argument("--data", nargs="+", default=list(SETS), help="folders of colour photos (default: both development sets)")
    a = ap.parse_args()
    base = Colorizer.from_pretrained(a.model)
    models, sizes = {}, {}
    for size, flip, t in a.settings:
        label = f"{size}px {'flip' if flip else 'once'} T={t}"
        card = replace(base.card, working_size=size, flip_average=flip, temperature=t)
        models[label], sizes[label] = (Colorizer(base.model, card), None), size
    result = {}
    for data in a.data:
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
