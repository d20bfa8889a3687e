"""Re-pin tests/reference_results.json for bundled models whose weights (or inference) changed on purpose.

    PYTHONPATH=src python docs/issue-12/repin.py default [hints]

default: its evaluation figures and the files `polychrome colorize` writes (one thread, as the test runs);
hints: its hint curve and the file `colorize --hints` writes. Run it only when the change is meant to change the results, and say so in the commit.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image
from typer.testing import CliRunner

from polychrome.cli import app
from polychrome.eval.automatic import run_evaluation
from polychrome.eval.hints import run_hint_evaluation

ref = Path("tests/reference_results.json")
pins = json.loads(ref.read_text())
root = Path("/tmp/repin/photos")
root.mkdir(parents=True, exist_ok=True)
for name, img in (("astronaut", skimage.data.astronaut()), ("coffee", skimage.data.coffee()), ("chelsea", skimage.data.chelsea())):
    Image.fromarray(img).resize((img.shape[1] // 4, img.shape[0] // 4), Image.BICUBIC).save(root / f"{name}.png")
if "default" in sys.argv[1:]:
    r = run_evaluation("default", str(root), None, progress=False)
    pins["eval/default"] = {p: r[p] for p in ("mean", "grey", "reference")}
    torch.set_num_threads(1)
    out = Path("/tmp/repin/o-default")
    res = CliRunner().invoke(app, ["colorize", str(root), "-o", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    for f in sorted(out.iterdir()):
        pins[f"file/o-default/{f.name}"] = hashlib.sha256(np.asarray(Image.open(f)).tobytes()).hexdigest()
    print("default", pins["eval/default"]["mean"])
if "hints" in sys.argv[1:]:
    r = run_hint_evaluation("hints", str(root), counts=[0, 2, 10], progress=False)
    pins["hints/hints"] = {"curve": r["curve"], "grey": r["grey"]}
    print("hints", r["curve"])
    hints = Path("/tmp/repin/h.json")
    hints.write_text(json.dumps([{"x": 30, "y": 40, "color": "#aa3322"}, {"x": 100, "y": 60, "color": "#2233aa"}]))
    torch.set_num_threads(1)
    out = Path("/tmp/repin/o-hints")
    res = CliRunner().invoke(app, ["colorize", str(root / "astronaut.png"), "-o", str(out), "--hints", str(hints), "--overwrite"])
    assert res.exit_code == 0, res.output
    for f in sorted(out.iterdir()):
        pins[f"file/o-hints/{f.name}"] = hashlib.sha256(np.asarray(Image.open(f)).tobytes()).hexdigest()
ref.write_text(json.dumps(pins, indent=1) + "\n")
