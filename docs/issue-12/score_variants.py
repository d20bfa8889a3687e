"""Score models, and decodings of a classification model, on every photo of val/bsds500, val/people and SKIM
(the five scikit-image photos, a folder of links: astronaut.png, chelsea.png, coffee.png, rocket.jpg,
motorcycle_left.png) with the runner behind `polychrome benchmark`, at the model's working size unless size= says;
per-photo rows to a JSON file, summed up by summarize_variants.py.

usage: PYTHONPATH=src python docs/issue-12/score_variants.py OUT.json SPEC [SPEC ...]
SPEC = MODEL[@key=value...], MODEL a bundled name, export folder or .safetensors; keys:
  label=NAME      the row's name (default: the SPEC)
  T=0.38          the annealed mean's temperature (default: the model's)
  size=256        the working size (the longest side of the model's grid; default: the model's, 256 for default)
  beta=B          add B x log w (w the rebalancing weights) to the logits: a push towards rare colours
  betaR=B         ... plus B x R, R = |E[ab]| / E[|ab|] per cell (1 when the mass lies in one hue direction)
  sat=K satp=P    scale the decoded ab by 1 + K x R^P
  gf=R,EPS        the guided filter of the model card (radius R, eps EPS), or gf=off for none
e.g. ... r.json default@label=shipped default@sat=0.3@label=sat.3 EXPORT_FOLDER@label=leg10 default@T=0.3@gf=5,100
"""
import json
import os
import sys
import types
from dataclasses import replace
from pathlib import Path

import torch

from polychrome.colorizer import Colorizer
from polychrome.eval.runner import photo_paths, score_photos
from polychrome.models.card import GuidedFilter

DATA = Path(os.environ.get("POLYCHROME_DATA", "../shared/data"))
SETS = {
    "bsds": DATA / "val/bsds500",
    "people": DATA / "val/people",
    "skim": Path(os.environ.get("SKIM", "SKIM")),
}


def variant_head(opts):
    """A replacement for ``Cicgan._head_ab`` that decodes the model's own head outputs the variant's way."""
    sat, satp = float(opts.get("sat", 0)), float(opts.get("satp", 1))
    beta, betaR = float(opts.get("beta", 0)), float(opts.get("betaR", 0))

    def _head_ab(self, x, mode, temperature):
        B, _, h, w = x.shape
        logits, residual = self._head_rows(x)  # (B, h * w, Q), (B, h * w, 2)
        bins = self.palette.bins
        p = torch.softmax(logits / temperature, dim=-1)
        ab = p @ bins
        R = ab.norm(dim=-1, keepdim=True) / (p @ bins.norm(dim=-1, keepdim=True)).clamp_min(1e-6)
        if beta or betaR:
            b = beta + betaR * R
            ab = torch.softmax((logits + b * self.palette.weights.log()) / temperature, dim=-1) @ bins
        if sat:
            ab = ab * (1 + sat * R.pow(satp))
        return (ab + residual).transpose(1, 2).reshape(B, 2, h, w)

    return _head_ab


def load(spec):
    path, *kv = spec.split("@")
    opts = dict(s.split("=", 1) for s in kv)
    c = Colorizer.from_pretrained(path)
    if any(k in opts for k in ("sat", "beta", "betaR")):  # else the model decodes as it ships
        c.model._head_ab = types.MethodType(variant_head(opts), c.model)
    if "gf" in opts:
        c.card = replace(c.card, guided_filter=None if opts["gf"] == "off" else GuidedFilter.parse(opts["gf"]))
    label = opts.pop("label", spec)
    T = float(opts["T"]) if "T" in opts else None
    return label, (c, T), int(opts.get("size", c.card.working_size))


def main():
    out = sys.argv[1]
    loaded = [load(s) for s in sys.argv[2:]]
    models = {label: model for label, model, _ in loaded}
    sizes = {label: size for label, _, size in loaded}
    res = {}
    for name, root in SETS.items():
        paths = photo_paths(root)
        ps = score_photos(models, paths, root, sizes, progress=False)
        for label, rows in ps.rows.items():
            for r in rows:
                res.setdefault(label, {}).setdefault(name, []).append(r)
    Path(out).write_text(json.dumps(res, default=str))


if __name__ == "__main__":
    main()
