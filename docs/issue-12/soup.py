"""Average the weights of exported models of one architecture ("a model soup"): fp16 tensors averaged in fp32,
written as an fp16 export folder with the first model's config.json, its keys replaced by those of --card JSON if
given. Palette buffers (bins must agree) are the first model's.

usage: python docs/issue-12/soup.py OUT_DIR A B [C ...] [--card JSON]
       (A, B: export folders or NAME.safetensors with NAME.json / config.json beside)
e.g.   python docs/issue-12/soup.py W LEG3 LEG11 --card '{"temperature": 0.3,
           "guided_filter": {"radius": 5, "eps": 100}}'   (the shipped default)
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def weights_and_card(spec: str) -> tuple[dict, Path]:
    p = Path(spec)
    if p.is_dir():
        return load_file(str(p / "model.safetensors")), p / "config.json"
    card = p.with_suffix(".json")
    return load_file(str(p)), card if card.exists() else p.parent / "config.json"


def main() -> None:
    args = sys.argv[1:]
    extra = {}
    if "--card" in args:
        i = args.index("--card")
        extra = json.loads(args[i + 1])
        del args[i : i + 2]
    out, specs = Path(args[0]), args[1:]
    loaded = [weights_and_card(s) for s in specs]
    first, card = loaded[0]
    soup = {}
    for k, v in first.items():
        if k == "palette.bins" and any(not torch.equal(w[k], v) for w, _ in loaded[1:]):
            raise SystemExit(f"{k}: the models' bins differ; they cannot be averaged")
        if k.startswith("palette.") or not v.is_floating_point():
            soup[k] = v  # the first model's palette and integer buffers
        else:
            soup[k] = (sum(w[k].float() for w, _ in loaded) / len(loaded)).to(v.dtype).contiguous()
    out.mkdir(parents=True, exist_ok=True)
    save_file(soup, str(out / "model.safetensors"))
    if extra:
        (out / "config.json").write_text(json.dumps({**json.loads(card.read_text()), **extra}, indent=2) + "\n")
    else:
        shutil.copy(card, out / "config.json")
    print(json.dumps({"out": str(out), "models": specs, "tensors": len(soup)}))


if __name__ == "__main__":
    main()
