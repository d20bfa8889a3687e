"""The summary of a GPU leg (scripts/gpu_leg.sh): what it trained, how fast, and where it ended, as one JSON file.

    python3 scripts/gpu_summary.py --run /tmp/gpu-run --weights OUT/W --out OUT/summary.json \
        --train-rc 0 --export-rc 0 --wall 431

Read from the run's last.pt (steps, epochs, training seconds, the config), its TensorBoard log (the last value
of each train/ and val/ scalar: losses, LR, images/s, PSNR) and the run's summary.json, which the trainer writes
when it ends (this session's images and images/s, validation and checkpoints included). Anything missing (a run that failed early)
is null, never a reason not to write the file.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def run_summary(run: Path) -> dict:
    """The trainer's RUN/summary.json (step, epoch, seconds, images, images_per_s, loss, validation figures)."""
    try:
        return json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def last_scalars(tb: Path) -> dict:
    """The last value of every scalar in a TensorBoard folder, and the mean of train/images_per_s after its first
    reading (the first holds the loader's start)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    if not tb.is_dir():
        return {}
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        events = acc.Scalars(tag)
        out[tag] = events[-1].value
        if tag == "train/images_per_s" and len(events) > 1:
            out["train/images_per_s_mean_after_first"] = sum(e.value for e in events[1:]) / (len(events) - 1)
    return out


def checkpoint_facts(run: Path) -> dict:
    path = run / "last.pt"
    if not path.is_file():
        return {}
    from polychrome.train.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    cfg = ck.get("config", {})
    per_step = cfg.get("batch_size", 0) * cfg.get("grad_accum", 1)
    return {
        "steps": ck.get("step"),
        "epochs": ck.get("epoch"),
        "training_seconds": ck.get("elapsed_seconds"),
        "images_seen": ck.get("step", 0) * per_step,
        "best_val_psnr": ck.get("best_val_psnr"),
        "config": cfg,
    }


def device_facts() -> dict:
    import torch

    facts = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        facts["device"] = torch.cuda.get_device_name(0)
    return facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--train-rc", type=int, required=True)
    p.add_argument("--export-rc", type=int, required=True)
    p.add_argument("--wall", type=float, required=True, help="seconds the whole leg took")
    a = p.parse_args(argv)

    facts = checkpoint_facts(a.run)
    cfg = facts.pop("config", {})
    done = run_summary(a.run)
    scalars = last_scalars(a.run / "tb")
    pack = {}
    manifest = Path(cfg.get("data", "")) / "MANIFEST.json"
    if cfg.get("data") and manifest.is_file():
        m = json.loads(manifest.read_text())
        pack = {k: m.get(k) for k in ("seed", "size", "quality", "count", "bytes")}
    images = done.get("images")
    seconds = done.get("seconds")
    summary = {
        "ok": a.train_rc == 0 and a.export_rc == 0,
        "train_rc": a.train_rc,
        "export_rc": a.export_rc,
        "wall_seconds": round(a.wall, 1),
        **device_facts(),
        **facts,
        # This session's rate: images trained on over the train command's fit() time (validation included).
        "images_this_session": images,
        "fit_seconds": seconds,
        "images_per_s": done.get("images_per_s") if images else None,
        "final": {k: v for k, v in done.items() if k not in ("step", "epoch", "seconds", "images", "images_per_s")},
        "last_logged": scalars,
        "pack": pack,
        "config": {k: cfg.get(k) for k in ("model", "init_weights", "data", "batch_size", "lr", "warmup_steps",
                                            "max_minutes", "ema_decay", "workers", "precision", "device", "seed")},
        "weights": {p.name: p.stat().st_size for p in sorted(a.weights.glob("*")) if p.is_file()}
        if a.weights.is_dir() else {},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(_finite(summary), indent=2, allow_nan=False) + "\n")
    print(json.dumps({k: summary.get(k) for k in ("ok", "steps", "images_seen", "images_per_s", "wall_seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
