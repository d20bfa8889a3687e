"""hub.py: strict weight loading, save/load round trips, checkpoints and their export."""

from __future__ import annotations

import json

import pytest
import torch
from _helpers import tiny_train_config

from polychrome.models.card import architecture_kwargs
from safetensors.torch import load_file, save_file

from polychrome import hub
from polychrome.models import create_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real training checkpoint: 4 steps of simple-unet (EMA on) on tiny photos."""
    from polychrome.train import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("hubrun")
    cfg = tiny_train_config(tmp, max_steps=4, model_kwargs={"depth": 2})
    train(cfg, progress=False)
    torch.set_num_threads(before)
    return tmp / "run" / "last.pt"


def _trained_like(name: str = "simple-unet", seed: int = 0, **kw) -> torch.nn.Module:
    """A model with non-trivial weights and BatchNorm statistics (not the init values)."""
    torch.manual_seed(seed)
    model = create_model(name, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.train()
        model(torch.rand(2, 1, 32, 32) * 2 - 1)  # updates running_mean / running_var
    return model.eval()


def _meta(model) -> dict:
    return {"model": model.registry_name, "model_kwargs": model.registry_kwargs, "infer_size": 64}


def test_save_load_round_trip_identical_outputs(tmp_path):
    model = _trained_like(depth=2)
    hub.save_weights(model, _meta(model), tmp_path / "export")
    assert (tmp_path / "export" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "export" / "config.json").read_text())["model"] == "simple-unet"
    loaded, card = hub.load(tmp_path / "export")
    assert not loaded.training
    assert card.working_size == 64 and loaded.depth == 2
    x = torch.rand(2, 1, 40, 56) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # The same weights through the file path, and through a NAME.safetensors + NAME.json pair.
    assert torch.equal(hub.load_model(tmp_path / "export" / "model.safetensors")(x), loaded(x))
    hub.save_weights(model, _meta(model), tmp_path / "flat", name="mine")
    assert (tmp_path / "flat" / "mine.json").is_file()
    with torch.no_grad():
        assert torch.equal(hub.load_model(tmp_path / "flat" / "mine.safetensors")(x), loaded(x))


def test_half_export_loads_into_fp32(tmp_path):
    model = _trained_like()
    hub.save_weights(model, _meta(model), tmp_path, half=True)
    assert load_file(str(tmp_path / "model.safetensors"))["head.weight"].dtype == torch.float16
    loaded = hub.load_model(tmp_path)
    assert loaded.head.weight.dtype == torch.float32
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=2e-2, rtol=0)


@pytest.mark.parametrize("change", ["missing", "extra", "wrong_shape"])
def test_strict_loading_rejects_mismatched_keys(tmp_path, change):
    model = _trained_like()
    hub.save_weights(model, _meta(model), tmp_path)
    st = tmp_path / "model.safetensors"
    state = load_file(str(st))
    if change == "missing":
        del state["head.weight"]
    elif change == "extra":
        state["head.extra_weight"] = torch.zeros(3)
    else:
        state["head.weight"] = torch.zeros(2, 99, 1, 1)
    save_file(state, str(st))
    with pytest.raises(hub.ModelLoadError, match="model.safetensors: cannot load weights") as info:
        hub.load_model(tmp_path)
    expected = {"missing": "Missing key", "extra": "Unexpected key", "wrong_shape": "size mismatch"}[change]
    assert expected in str(info.value) and "head." in str(info.value)  # the message names the key


def test_load_errors_are_model_load_errors(tmp_path):
    with pytest.raises(hub.ModelLoadError, match="weight file not found"):
        hub.load_model(tmp_path / "nothing.safetensors")
    model = _trained_like()
    hub.save_weights(model, _meta(model), tmp_path / "a")
    (tmp_path / "a" / "config.json").unlink()
    with pytest.raises(hub.ModelLoadError, match="metadata file not found"):
        hub.load_model(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text("{not json")
    with pytest.raises(hub.ModelLoadError, match="not valid JSON"):
        hub.load_model(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model": "no-such-net"}))
    with pytest.raises(hub.ModelLoadError, match="no known model"):
        hub.load_model(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text(json.dumps(_meta(model)))
    (tmp_path / "a" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(hub.ModelLoadError, match="cannot load weights"):
        hub.load_model(tmp_path / "a")
    with pytest.raises(hub.ModelLoadError, match="architecture without trained weights"):
        hub.load_model("simple-unet")
    with pytest.raises(hub.ModelLoadError, match="not a bundled model"):
        hub.load_model("no-such-thing")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(hub.ModelLoadError, match="bad.pt: not a readable polychrome checkpoint"):
        hub.load_model(tmp_path / "bad.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(hub.ModelLoadError, match="not a polychrome training checkpoint"):
        hub.load_model(tmp_path / "other.pt")


class Evil:
    """Stands for any pickled object: a user's .pt must never be unpickled beyond tensors and containers."""


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    torch.save({"model_name": "simple-unet", "ema": {}, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(hub.ModelLoadError, match="not a readable polychrome checkpoint"):
        hub.load_model(tmp_path / "evil.pt")


def test_training_checkpoint_loads_its_ema_weights(checkpoint):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model, card = hub.load(checkpoint)
    assert not model.training and model.depth == 2
    assert card.architecture == "simple-unet" and card.kwargs == {"depth": 2}
    assert card.working_size == 48 and card.about["step"] == 4
    assert card.about["train_config"]["image_size"] == 32
    assert ckpt["card"]["model"] == "simple-unet"  # training writes the card into every checkpoint
    state = model.state_dict()
    for k, v in ckpt["ema"].items():
        if k.startswith("module."):
            assert torch.equal(state[k[len("module."):]], v), k
    # EMA (decay 0.9, with warm-up) differs from the raw weights after a few steps.
    assert not torch.equal(state["head.weight"], ckpt["model"]["head.weight"])


def test_a_checkpoint_written_before_the_card_still_loads(checkpoint, tmp_path):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    del ckpt["card"]
    torch.save(ckpt, tmp_path / "old.pt")
    (old_model, old), (model, card) = hub.load(tmp_path / "old.pt"), hub.load(checkpoint)
    assert old == card and old.about["step"] == card.about["step"] == 4
    x = torch.rand(1, 1, 24, 40) * 2 - 1
    with torch.no_grad():
        assert torch.equal(old_model(x), model(x))


def test_export_checkpoint(checkpoint, tmp_path):
    out = hub.export_checkpoint(checkpoint, tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["model"] == "simple-unet" and meta["model_kwargs"] == {"depth": 2} and meta["infer_size"] == 48
    from_ckpt, exported = hub.load_model(checkpoint), hub.load_model(out)
    x = torch.rand(2, 1, 40, 56) * 2 - 1
    with torch.no_grad():
        assert torch.equal(from_ckpt(x), exported(x))
    half = hub.export_checkpoint(checkpoint, tmp_path / "half", half=True)
    assert load_file(str(half / "model.safetensors"))["head.weight"].dtype == torch.float16
    assert (half / "config.json").is_file()


def test_loaded_model_colourises_through_the_pipeline(checkpoint):
    import numpy as np

    from polychrome.colorizer import Colorizer

    out = Colorizer.from_pretrained(checkpoint).colorize_array(np.random.default_rng(0).random((30, 70, 3)).astype(np.float32))
    assert out.shape == (30, 70, 3) and out.dtype == np.float32 and np.isfinite(out).all()


def test_checkpoint_that_does_not_fit_names_the_keys(checkpoint, tmp_path):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    ckpt["card"]["model_kwargs"] = {"depth": 3}  # the architecture no longer matches the saved EMA weights
    torch.save(ckpt, tmp_path / "mismatch.pt")
    with pytest.raises(hub.ModelLoadError, match="weights do not fit simple-unet.*Missing key") as info:
        hub.load_model(tmp_path / "mismatch.pt")
    assert "\n" not in str(info.value)


def test_init_only_kwargs_are_dropped_when_rebuilding(tmp_path):
    # `pretrained` only picks starting weights, which the strict load replaces: a trained model's
    # metadata may carry it (older exports, hand-written JSON), and loading must neither need nor use it.
    model = _trained_like(depth=2)
    meta = {"model": "simple-unet", "model_kwargs": {"depth": 2, "pretrained": True}, "infer_size": 64}
    hub.save_weights(model, meta, tmp_path / "export")
    loaded = hub.load_model(tmp_path / "export")  # simple-unet takes no `pretrained`: it was dropped
    assert loaded.registry_kwargs == {"depth": 2}
    x = torch.rand(1, 1, 24, 40) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert architecture_kwargs({"pretrained": False, "base": 8}) == {"base": 8}
    bad = {"model": "simple-unet", "model_kwargs": [1, 2], "infer_size": 64}
    with pytest.raises(hub.ModelLoadError, match="model_kwargs must be a mapping"):
        hub.read_card(bad)
