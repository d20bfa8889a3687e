"""One rank of the DDP test (tests/train/test_train.py::test_ddp_two_processes), started by torchrun.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/train/ddp_worker.py CONFIG.json REPORT_DIR

Trains the config (a JSON dict of TrainConfig overrides) with the real Trainer, then writes
REPORT_DIR/rank{R}.json with hashes of this rank's model and EMA parameters, and
REPORT_DIR/saves-rank{R}.txt naming every checkpoint this rank wrote (none, except on rank 0).
With POLYCHROME_TEST_STEP_SECONDS=S, the trainer's clock moves S * (1 + 2 * rank) seconds at each optimiser
step and not otherwise (the time-budget test: each rank's clock has its own pace).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

import polychrome.train.loop as loop
from polychrome.train import Trainer, make_config


def params_digest(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter's name and exact bytes."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def step_clock(seconds_per_step: float) -> None:
    """Replace the trainer's clock with one that moves ``seconds_per_step`` at each optimiser step only
    (tests/train/test_time_budget.py gives each rank its own pace)."""
    now = [1000.0]
    loop.clock = lambda: now[0]
    real_step = Trainer.optimizer_step

    def optimizer_step(self):
        now[0] += seconds_per_step
        real_step(self)

    Trainer.optimizer_step = optimizer_step


def main(config_json: str, report_dir: str) -> None:
    report = Path(report_dir)
    cfg = make_config(overrides=json.loads(Path(config_json).read_text()))

    real_save = loop.save_atomic
    saves: list[str] = []

    def recording_save(obj, path):
        saves.append(Path(path).name)
        real_save(obj, path)

    loop.save_atomic = recording_save  # the trainer's own save path, observed per rank
    if os.environ.get("POLYCHROME_TEST_STEP_SECONDS"):
        step_clock(float(os.environ["POLYCHROME_TEST_STEP_SECONDS"]) * (1 + 2 * int(os.environ.get("RANK", "0"))))
    trainer = Trainer(cfg, progress=False)
    try:
        summary = trainer.fit()
        rank = trainer.dist.rank
        result = {
            "rank": rank,
            "world": trainer.dist.world,
            "step": trainer.step,
            "epoch": trainer.epoch,
            "n_train": len(trainer.train_set),
            "steps_per_epoch": trainer.steps_per_epoch,
            "model": params_digest(trainer.model),
            "ema": params_digest(trainer.ema.module),
            "loss": summary["loss"],
        }
        (report / f"saves-rank{rank}.txt").write_text("\n".join(saves))
        (report / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        trainer.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
