"""cicgan from the command line: `polychrome train` picks the GAN trainer from the config's `trainer` key,
`colorize --temperature` / `--confidence` on its checkpoint and export, the one-line errors for other models,
and the pipeline's single-call confidence map."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from _helpers import make_photo_tree
from PIL import Image
from test_cli import assert_one_line_error, invoke

from polychrome import colorize as api_colorize
from polychrome import hub
from polychrome.color.quantize import DEFAULT_TEMPERATURE
from polychrome.colorizer import Colorizer
from polychrome.pipeline import lightness
from polychrome.train import ConfigError, GanTrainConfig, TrainConfig, load_config, make_config

#: A seconds-long GAN run (the sizes of tests/train/test_train_gan.py): cicgan-small, a 2-scale base-8 critic on
#: 48 px crops, 20 photos -> 16 train / 4 val, batch 4; adversarial from step 1; palette counted from the data.
TINY_GAN_TOML = """\
trainer = "gan"
model = "cicgan-small"
data = "{data}"
val_fraction = 0.2
val_max_images = 4
image_size = 48
infer_size = 48
batch_size = 4
epochs = 1
max_steps = 2
warmup_steps = 1
lr = 1e-3
ema_decay = 0.9
precision = "fp32"
channels_last = false
workers = 0
log_every_steps = 1
ckpt_every_steps = 0
d_base = 8
d_scales = 2
gan_start_step = 1
palette = "data"
palette_photos = 8
out_dir = "{out}"
"""


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    """`polychrome train CONFIG --no-progress` on the tiny GAN config: (run folder, CLI result)."""
    root = tmp_path_factory.mktemp("gan-run")
    make_photo_tree(root / "data", 20, size=(56, 56))
    cfg = root / "tiny-gan.toml"
    cfg.write_text(TINY_GAN_TOML.format(data=(root / "data").as_posix(), out=(root / "run").as_posix()))
    torch.set_num_threads(1)
    result = invoke("train", cfg, "--no-progress")
    return root / "run", result


@pytest.fixture(scope="module")
def checkpoint(gan_run):
    run, result = gan_run
    assert result.exit_code == 0, result.output
    return run / "last.pt"


# --------------------------------------------------------------------------- train
def test_train_cli_runs_the_gan_trainer_two_steps(gan_run):
    run, result = gan_run
    assert result.exit_code == 0, result.output
    assert "done:" in result.stdout
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 2 and ck["model_name"] == "cicgan-small"
    assert {"disc", "disc_optimizer"} <= set(ck)  # the GAN trainer ran, not the default one
    assert ck["config"]["trainer"] == "gan" and ck["config"]["gan_start_step"] == 1
    # palette = "data": the prior was counted from the photos (not uniform) and went into the model.
    prior = ck["model"]["palette.prior"]
    assert not torch.allclose(prior, torch.full_like(prior, 1 / len(prior)))
    assert torch.equal(ck["ema"]["module.palette.prior"], prior)
    assert (run / "palette.safetensors").is_file()


def test_load_config_picks_the_class_from_the_trainer_key(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('trainer = "gan"\nmodel = "cicgan-small"\ngan_start_step = 5\n')
    cfg = load_config(f)
    assert isinstance(cfg, GanTrainConfig) and cfg.gan_start_step == 5
    assert type(load_config(overrides=["lr=1e-3"])) is TrainConfig
    assert isinstance(load_config(overrides=["trainer=gan", "d_base=8"]), GanTrainConfig)
    # Unknown keys stay errors for either class; a GAN key without trainer = "gan" says what is missing.
    with pytest.raises(ConfigError, match="unknown config key 'gan_strat_step'"):
        load_config(f, ["gan_strat_step=1"])
    with pytest.raises(ConfigError, match='add trainer = "gan"'):
        load_config(overrides={"gan_start_step": 5})
    with pytest.raises(ConfigError, match="trainer: must be one of default, gan"):
        load_config(overrides=["trainer=wgan"])
    with pytest.raises(ConfigError, match="load_config"):
        make_config(overrides={"trainer": "gan"})  # the plain builder refuses a GAN config


def test_train_cli_config_errors_are_one_line(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('model = "cicgan-small"\nadv_weight = 0.5\n')
    assert_one_line_error(invoke("train", f), "adv_weight", 'trainer = "gan"', code=2)


# --------------------------------------------------------------------------- colorize
def test_colorize_a_checkpoint_with_temperature_and_confidence(checkpoint, tmp_path, make_photo):
    make_photo(tmp_path / "in" / "a.jpg", 70, 45, seed=1)
    make_photo(tmp_path / "in" / "b.png", 33, 50, seed=2)
    r = invoke("colorize", tmp_path / "in", "-o", tmp_path / "out", "--model", checkpoint,
               "--temperature", "0.38", "--confidence")
    assert r.exit_code == 0, r.output
    assert "2 written" in r.stdout
    for name, size in (("a.jpg", (70, 45)), ("b.png", (33, 50))):
        out = Image.open(tmp_path / "out" / name)
        assert out.size == size and out.mode == "RGB"
        conf = Image.open(tmp_path / "out" / f"{name.rsplit('.', 1)[0]}.confidence.png")
        assert conf.size == size and conf.mode == "L"  # full resolution, greyscale
    # The map is the model's confidence (sigmoid, upsampled to full size) in 8 bits.
    L = lightness(np.asarray(Image.open(tmp_path / "in" / "b.png").convert("RGB")).astype(np.float32) / 255)
    _, want = Colorizer.from_pretrained(checkpoint).predict_ab_confidence(L, 48)
    got = np.asarray(Image.open(tmp_path / "out" / "b.confidence.png")).astype(np.float32) / 255
    np.testing.assert_allclose(got, want[0, 0].numpy(), atol=1 / 255)
    assert got.std() > 0
    # A re-run finds both files and skips; a missing map is made again.
    (tmp_path / "out" / "b.confidence.png").unlink()
    r = invoke("colorize", tmp_path / "in", "-o", tmp_path / "out", "--model", checkpoint, "--confidence")
    assert r.exit_code == 0 and "1 written, 1 skipped" in r.stdout, r.output
    assert (tmp_path / "out" / "b.confidence.png").is_file()


def test_temperature_changes_the_colours(checkpoint, tmp_path, make_photo):
    src = make_photo(tmp_path / "p.png", 64, 48, seed=3)
    outs = {}
    for t in ("0.1", "1.0"):
        r = invoke("colorize", src, "-o", tmp_path / t, "--model", checkpoint, "--temperature", t)
        assert r.exit_code == 0, r.output
        outs[t] = np.asarray(Image.open(tmp_path / t / "p.png")).astype(int)
        assert outs[t].shape == (48, 64, 3)
    assert np.abs(outs["0.1"] - outs["1.0"]).max() > 0


def test_temperature_and_confidence_on_other_models_are_one_line_errors(tiny_model_dir, checkpoint, tmp_path,
                                                                        make_photo):
    src = make_photo(tmp_path / "p.png", 40, 30)
    r = invoke("colorize", src, "-o", tmp_path / "o1", "--model", tiny_model_dir, "--temperature", "0.38")
    assert_one_line_error(r, "--temperature", "no decoding temperature", code=2)
    r = invoke("colorize", src, "-o", tmp_path / "o2", "--model", tiny_model_dir, "--confidence")
    assert_one_line_error(r, "predicts no confidence map", code=2)
    r = invoke("colorize", src, "-o", tmp_path / "o3", "--model", checkpoint, "--temperature", "0")
    assert_one_line_error(r, "--temperature", "> 0", code=2)
    assert not any((tmp_path / d).exists() and any((tmp_path / d).iterdir()) for d in ("o1", "o2", "o3"))


def test_export_keeps_the_palette_and_the_temperature(checkpoint, tmp_path, make_photo):
    r = invoke("export", checkpoint, "-o", tmp_path / "exp")
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "exp" / "config.json").read_text())
    assert meta["temperature"] == DEFAULT_TEMPERATURE and meta["decode_mode"] == "annealed"
    from_ckpt, from_export = hub.load_model(checkpoint), hub.load_model(tmp_path / "exp")
    for k in ("bins", "prior", "weights"):
        assert torch.equal(getattr(from_ckpt.palette, k), getattr(from_export.palette, k)), k
    # The JSON's temperature is the loaded model's default (a person may edit it).
    meta["temperature"] = 0.2
    (tmp_path / "exp" / "config.json").write_text(json.dumps(meta))
    assert Colorizer.from_pretrained(tmp_path / "exp").card.temperature == 0.2
    src = make_photo(tmp_path / "p.png", 50, 40)
    r = invoke("colorize", src, "-o", tmp_path / "out", "--model", tmp_path / "exp", "--temperature", "1.0",
               "--confidence")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out" / "p.confidence.png").size == (50, 40)


# --------------------------------------------------------------------------- pipeline and API
def test_confidence_comes_from_the_same_single_model_call(checkpoint, photo):
    model = Colorizer.from_pretrained(checkpoint)
    calls = []
    model.model.register_forward_hook(lambda m, args, kwargs, out: calls.append(kwargs), with_kwargs=True)
    L = lightness(photo(45, 70).astype(np.float32) / 255)
    ab, conf = model.predict_ab_confidence(L, 48)
    assert calls == [{"return_all": True, "temperature": DEFAULT_TEMPERATURE, "decode_mode": "annealed"}]
    assert ab.shape == (1, 2, 45, 70) and conf.shape == (1, 1, 45, 70)
    assert conf.min() >= 0 and conf.max() <= 1
    torch.testing.assert_close(ab, model.predict_ab(L, 48))  # the same colours as without the map


def test_temperature_is_per_call_in_the_api(checkpoint, photo):
    model = Colorizer.from_pretrained(checkpoint)
    img = photo(40, 52)
    cold, warm = api_colorize(img, model, temperature=0.1), api_colorize(img, model, temperature=1.0)
    assert cold.shape == img.shape and not np.array_equal(cold, warm)
    # Nothing was set on the model: the temperature is an argument of the call.
    assert model.card.temperature == DEFAULT_TEMPERATURE and model.model.temperature == DEFAULT_TEMPERATURE
    np.testing.assert_array_equal(api_colorize(img, model), api_colorize(img, model, temperature=DEFAULT_TEMPERATURE))
    with pytest.raises(ValueError, match="no decoding temperature"):
        api_colorize(img, "unet-32", temperature=0.38)


# --------------------------------------------------------------------------- evaluate --temperature
def test_evaluate_at_several_temperatures_matches_single_runs(checkpoint, tmp_path, make_photo):
    from polychrome.eval.automatic import run_evaluation

    for i, (w, h) in enumerate(((64, 48), (40, 56), (50, 50))):
        make_photo(tmp_path / "photos" / f"p{i}.png", w, h, seed=10 + i)
    r = invoke("evaluate", "--model", checkpoint, "--data", tmp_path / "photos", "--json", tmp_path / "s.json",
               "--temperature", "0.1,1.0", "--grid", tmp_path / "g.png")
    assert r.exit_code == 0, r.output
    assert "T = 0.1" in r.stdout and "T = 1" in r.stdout and "grey baseline" in r.stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["n"] == 3 and summary["temperature"] == 0.1
    by_t = summary["by_temperature"]
    assert [t["temperature"] for t in by_t] == [0.1, 1.0]
    assert by_t[0]["mean"] == summary["mean"]  # the summary's mean is the first temperature's
    assert by_t[0]["mean"] != by_t[1]["mean"]  # the temperature reaches the decoding
    # Each column is what scoring the model alone at that temperature gives.
    for t in by_t:
        model = Colorizer.from_pretrained(checkpoint)
        model = Colorizer(model.model, replace(model.card, temperature=t["temperature"]))  # its default, now
        alone = run_evaluation(model, tmp_path / "photos", None, progress=False)
        assert alone["mean"] == pytest.approx(t["mean"], rel=1e-9), t["temperature"]
        assert alone["grey"] == pytest.approx(summary["grey"], rel=1e-9)
    # The grid: grey | one column per temperature | original.
    model = Colorizer.from_pretrained(checkpoint)
    grid = Image.open(tmp_path / "g.png")
    one = run_evaluation(model, tmp_path / "photos", None, grid_path=tmp_path / "g1.png", progress=False)
    assert one["n"] == 3 and grid.height == Image.open(tmp_path / "g1.png").height
    assert grid.width > Image.open(tmp_path / "g1.png").width
    # Temperatures are call arguments: a model passed in keeps its own decoding.
    run_evaluation(model, tmp_path / "photos", None, progress=False, temperatures=[0.1, 1.0])
    assert model.card.temperature == DEFAULT_TEMPERATURE and model.card.decode_mode == "annealed"
    assert model.model.temperature == DEFAULT_TEMPERATURE and model.model.decode_mode == "annealed"


def test_evaluate_temperature_errors_are_one_line(checkpoint, tiny_model_dir, tmp_path, make_photo):
    make_photo(tmp_path / "photos" / "p.png", 40, 30)
    base = ("evaluate", "--data", tmp_path / "photos", "--json", tmp_path / "s.json")
    r = invoke(*base, "--model", tiny_model_dir, "--temperature", "0.38")
    assert_one_line_error(r, "--temperature", "no decoding temperature", code=2)
    for bad in ("0", "0.1,x", "-1", ",", "nan"):
        assert_one_line_error(invoke(*base, "--model", checkpoint, "--temperature", bad), "--temperature", code=2)
    r = invoke(*base, "--model", checkpoint, "--temperature", "0.38,0.38")
    assert_one_line_error(r, "--temperature", "twice", code=2)
    r = invoke(*base, "--model", checkpoint, "--temperature", "0.38", "--hints", "0,1")
    assert_one_line_error(r, "--temperature", "--hints", code=2)
    assert not (tmp_path / "s.json").exists()


def test_export_critic_then_a_new_leg_starts_from_it(checkpoint, tiny_model_dir, tmp_path):
    # `export --critic` writes the run's critic beside the model; `train ... init_critic=` starts the next leg's
    # critic from it (or from the checkpoint itself) instead of a random one.
    r = invoke("export", checkpoint, "-o", tmp_path / "leg", "--half", "--critic")
    assert r.exit_code == 0, r.output
    assert "critic.safetensors" in r.stdout
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "leg" / "critic.safetensors"))
    disc = torch.load(checkpoint, map_location="cpu", weights_only=True)["disc"]
    assert saved.keys() == disc.keys()
    for k, v in disc.items():
        assert saved[k].dtype == (torch.float16 if v.is_floating_point() else v.dtype), k
        assert torch.equal(saved[k], v.half() if v.is_floating_point() else v), k
    # The exported folder still loads as a model.
    assert hub.load_model(tmp_path / "leg") is not None
    # A checkpoint without a critic, and --critic with onnx: one line each.
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    plain = tmp_path / "plain.pt"
    torch.save({k: v for k, v in ck.items() if k not in ("disc", "disc_optimizer")}, plain)  # exports as a model
    assert_one_line_error(invoke("export", plain, "-o", tmp_path / "p", "--critic"), "plain.pt", "no critic weights",
                          code=2)
    assert not (tmp_path / "p").exists()  # nothing half-written
    assert_one_line_error(invoke("export", tiny_model_dir, "--format", "onnx", "-o", tmp_path / "o", "--critic"),
                          "--critic", code=2)
