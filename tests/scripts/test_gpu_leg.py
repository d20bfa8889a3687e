"""scripts/gpu_leg.sh, the one command of a lent GPU machine, run here on CPU with a tiny model and photos made in
code: it trains the GPU config with the overrides passed through, exports the weights and writes summary.json,
everything that comes back at most two folders deep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import make_photo_tree

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_leg_trains_exports_and_summarises(tmp_path):
    make_photo_tree(tmp_path / "data", 20, size=(56, 56))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "GPU_RUN": str(tmp_path / "run"),
           "GPU_SITE": str(tmp_path / "site"), "GPU_WHEELS": str(tmp_path / "no-wheels"), "OMP_NUM_THREADS": "1"}
    overrides = [  # the GPU recipe made tiny: a small cicgan from scratch, 48 px, a few seconds
        "model=cicgan-small", "model_kwargs={}", "init_weights=", f"data={tmp_path / 'data'}", "image_size=48",
        "infer_size=48", "batch_size=4", "workers=0", "device=cpu", "precision=fp32", "channels_last=false",
        "palette_photos=8", "d_base=8", "d_scales=2", "warmup_steps=1", "val_fraction=0.2", "val_max_images=4",
        "max_minutes=0.001", "num_threads=1",
    ]  # fmt: skip
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_leg.sh"), *overrides], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert {"train.log", "summary.json", "W/model.safetensors", "W/config.json"} <= set(files)
    assert all(f.count("/") <= 2 for f in files) and len(files) <= 8
    log = (out / "train.log").read_text()
    assert "stopped at the time budget" in log and "nvidia-smi" in log and "torch" in log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["train_rc"] == summary["export_rc"] == 0
    assert summary["steps"] >= 1 and summary["images_seen"] == 4 * summary["steps"]
    assert summary["images_per_s"] > 0 and summary["training_seconds"] >= 0.06
    assert summary["config"]["batch_size"] == 4 and summary["config"]["max_minutes"] == 0.001  # passed through
    assert "train/loss_class" in summary["last_logged"] and "val/psnr" in summary["last_logged"]
    assert summary["weights"]["model.safetensors"] == (out / "W" / "model.safetensors").stat().st_size

    from polychrome import load_model

    assert type(load_model(str(out / "W"))).__name__ == "Cicgan"
