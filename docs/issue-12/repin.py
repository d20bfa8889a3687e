"""Re-pin tests/reference_results.json for bundled models whose weights (or inference) changed on purpose.

    PYTHONPATH=src python docs/issue-12/repin.py [default] [hints] [files]

default: its evaluation figures; hints: its hint curve; files: the digests of every file
test_colorize_files_are_unchanged writes (run by pytest with POLYCHROME_REPIN_FILES, which makes the test
write what it got before it compares). Run it only when the change is meant to change the results, and say so in the commit.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import skimage.data
from PIL import Image

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
    print("default", pins["eval/default"]["mean"])
if "hints" in sys.argv[1:]:
    r = run_hint_evaluation("hints", str(root), counts=[0, 2, 10], progress=False)
    pins["hints/hints"] = {"curve": r["curve"], "grey": r["grey"]}
    print("hints", r["curve"])
if "files" in sys.argv[1:]:
    got = Path("/tmp/repin/files.json")
    env = {**os.environ, "POLYCHROME_REPIN_FILES": str(got)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "tests/test_reference_results.py::test_colorize_files_are_unchanged"], env=env, check=False)
    pins = {k: v for k, v in pins.items() if not k.startswith("file/")} | json.loads(got.read_text())
    print("files", len(json.loads(got.read_text())))
ref.write_text(json.dumps(pins, indent=1) + "\n")
