"""train/: the wall-clock budget (max_minutes): where a run stops, an LR schedule that follows the clock, the
images/s it reports, a resumed budget, and every DDP rank taking rank 0's reading of the clock.

The clock is ``polychrome.train.loop.clock``; these tests replace it with one that moves only when a training
step runs, so nothing depends on how fast this machine is."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _helpers import run_ddp_workers, tiny_train_config

import polychrome.train.loop as loop
from polychrome.train import ConfigError, Trainer, make_config, train
from polychrome.train.checkpoint import load_checkpoint

TESTS = Path(__file__).parent


class StepClock:
    """A clock that moves ``seconds_per_step`` each time a training step runs, and not otherwise."""

    def __init__(self, seconds_per_step: float):
        self.now, self.per_step = 1000.0, seconds_per_step

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def step_clock(monkeypatch):
    """Install a StepClock (10 s a step) as the trainer's clock; returns it (its ``per_step`` can be changed)."""
    fake = StepClock(10.0)
    monkeypatch.setattr(loop, "clock", fake)
    real_opt = Trainer.optimizer_step

    def optimizer_step(self):
        fake.now += fake.per_step  # the step's work "took" this long; the trainer reads the clock after it
        real_opt(self)

    monkeypatch.setattr(Trainer, "optimizer_step", optimizer_step)
    return fake


def _lr_log(out: Path):
    """The run's TensorBoard train/lr by step, and the event reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars("train/lr")}, acc


def test_max_minutes_is_checked_like_other_keys():
    assert make_config().max_minutes == 0  # off unless asked for
    assert make_config(overrides=["max_minutes=6"]).max_minutes == 6.0
    for bad in ("-1", "NaN", "Infinity", "soon"):
        with pytest.raises(ConfigError, match=r"^max_minutes\b"):
            make_config(overrides=[f"max_minutes={bad}"])


def test_the_run_stops_at_the_first_step_past_the_budget_and_ends_normally(tmp_path, step_clock):
    # 25 s a step against 1 minute: 50 s after two steps, 75 s after three -> three steps, not the 600 of 200 epochs.
    step_clock.per_step = 25.0
    cfg = tiny_train_config(tmp_path, epochs=200, max_minutes=1, warmup_steps=1, log_every_steps=2)
    summary = train(cfg, progress=False)
    assert summary["step"] == 3 and summary["epoch"] == 1  # epoch 0 is 3 steps: the budget ended it
    ck = load_checkpoint(Path(cfg.out_dir) / "last.pt")
    assert ck["step"] == 3 and ck["elapsed_seconds"] == pytest.approx(75.0)
    assert math.isfinite(summary["psnr"])  # validated at the end, like a run that reached max_steps
    assert (Path(cfg.out_dir) / "best.pt").exists()
    # images/s over this session: 3 steps of 8 photos in 75 (fake) seconds.
    assert summary["images"] == 24 and summary["seconds"] == pytest.approx(75.0)
    assert summary["images_per_s"] == pytest.approx(24 / 75)
    # TensorBoard has the train/ scalars every 2 steps and where the run ended (step 3), with the step's images/s.
    lrs, acc = _lr_log(Path(cfg.out_dir))
    assert sorted(lrs) == [2, 3] and [e.step for e in acc.Scalars("train/loss")] == [2, 3]
    assert [(e.step, round(e.value, 4)) for e in acc.Scalars("train/images_per_s")] == [(2, 0.32), (3, 0.32)]


def test_the_schedule_follows_the_clock_not_the_steps(tmp_path, step_clock):
    """Warm-up in steps, then cosine on elapsed / budget: with 200 epochs (600 steps) the step schedule would
    hardly have moved after six steps; the time schedule has reached its floor when the minute is up."""
    cfg = tiny_train_config(tmp_path, epochs=200, max_minutes=1, warmup_steps=2, lr=1e-3, lr_min_ratio=0.05)
    summary = train(cfg, progress=False)
    assert summary["step"] == 6  # 10 s a step: 60 s after six steps
    lrs, acc = _lr_log(Path(cfg.out_dir))
    # The LR logged at step s is the one the next step (s + 1) uses, set after s steps, 10 * s seconds in.
    for s in range(1, 7):
        step_lr = 1e-3 * loop.lr_factor(s, 2, 600, 0.05)
        time_lr = 1e-3 * loop.lr_factor(s, 2, 600, 0.05, time_progress=10 * s / 60)
        assert lrs[s] == pytest.approx(time_lr, rel=1e-6), s
        if s > 2:
            assert time_lr < step_lr - 1e-5, s  # the two schedules differ after warm-up
    assert lrs[2] == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 3))), rel=1e-6)
    assert lrs[6] == pytest.approx(0.05 * 1e-3, rel=1e-6)  # annealed to the floor when the budget ends
    # images/s to TensorBoard: 8 photos a step, 10 (fake) seconds a step.
    rates = acc.Scalars("train/images_per_s")
    assert [e.step for e in rates] == list(range(1, 7)) and all(e.value == pytest.approx(0.8) for e in rates)


def test_max_steps_still_caps_a_timed_run(tmp_path, step_clock):
    cfg = tiny_train_config(tmp_path, epochs=200, max_minutes=1, max_steps=4, warmup_steps=1)
    assert train(cfg, progress=False)["step"] == 4
    lrs, _ = _lr_log(Path(cfg.out_dir))
    assert lrs[4] == pytest.approx(1e-3 * 0.05, rel=1e-6)  # the steps ran out first: annealed by them


def test_a_resumed_run_spends_what_is_left_of_its_budget(tmp_path, step_clock):
    cfg = tiny_train_config(tmp_path, epochs=200, max_minutes=1)
    first = Trainer(cfg, progress=False)
    try:
        first.fit(stop_at_step=2)  # interrupted after 20 s of the 60
    finally:
        first.close()
    assert load_checkpoint(Path(cfg.out_dir) / "last.pt")["elapsed_seconds"] == pytest.approx(20.0)
    summary = train(cfg, progress=False, resume=True)
    assert summary["step"] == 6 and summary["images"] == 4 * 8  # 40 s more: four steps
    # A run whose budget is spent trains no further when resumed again.
    assert train(cfg, progress=False, resume=True)["step"] == 6


def test_without_a_budget_the_clock_is_not_consulted_by_the_schedule(tmp_path, step_clock):
    step_clock.per_step = 1e6  # a budget would have stopped this run after one step
    cfg = tiny_train_config(tmp_path, max_steps=4)
    assert train(cfg, progress=False)["step"] == 4
    lrs, _ = _lr_log(Path(cfg.out_dir))
    assert lrs[3] == pytest.approx(1e-3 * loop.lr_factor(3, 2, 4, cfg.lr_min_ratio), rel=1e-6)


@pytest.mark.slow
def test_ddp_ranks_stop_together_on_rank_0s_clock(tmp_path):
    """torchrun, two CPU processes: rank 1's clock runs three times as fast as rank 0's (30 s a step against
    10 s). Alone it would stop after two steps and rank 0 after six; both take rank 0's reading, so both train
    six steps at the same LRs and end with the same weights."""
    cfg = tiny_train_config(tmp_path, batch_size=2, epochs=200, max_minutes=1, num_threads=1)
    r0, r1 = run_ddp_workers(tmp_path, cfg, POLYCHROME_TEST_STEP_SECONDS="10")
    assert r0["step"] == r1["step"] == 6
    assert r0["model"] == r1["model"] and r0["ema"] == r1["ema"]
    assert load_checkpoint(Path(cfg.out_dir) / "last.pt")["elapsed_seconds"] == pytest.approx(60.0)


def test_val_every_epochs_validates_every_nth_epoch_end_and_where_the_run_ends(tmp_path, monkeypatch):
    """5 epochs of 3 steps with val_every_epochs=2: validation (and last.pt) after epochs 2 and 4, and at the end
    (epoch 5) although 5 is not a multiple of 2; 0 is refused like other counts."""
    seen = []
    real = Trainer.validate

    def validate(self):
        seen.append((self.epoch, self.step))
        return real(self)

    monkeypatch.setattr(Trainer, "validate", validate)
    summary = train(tiny_train_config(tmp_path, epochs=5, val_every_epochs=2), progress=False)
    assert seen == [(2, 6), (4, 12), (5, 15)]
    assert summary["step"] == 15 and "psnr" in summary
    with pytest.raises(ConfigError, match="val_every_epochs"):
        make_config(overrides={"data": "x", "val_every_epochs": 0})
