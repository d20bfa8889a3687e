"""train/checkpoint: the one schema training writes and loading reads: one-line errors for unreadable or
foreign files, the EMA weights' keys, the card of a checkpoint with and without a written card."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from polychrome.models import create_model
from polychrome.models.card import CardError
from polychrome.train.checkpoint import (
    CHECKPOINT_KEYS,
    WEIGHT_KEYS,
    checkpoint_card,
    ema_to_model_state,
    read_checkpoint,
    read_training_checkpoint,
)


class Evil:
    """Stands for any pickled object: a checkpoint must never be unpickled beyond tensors and containers."""


@pytest.mark.parametrize("reader", [read_checkpoint, read_training_checkpoint])
def test_unreadable_and_foreign_files_are_one_line_errors_naming_the_file(tmp_path, reader):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"model_name": "simple-unet", "ema": {}, "payload": Evil()}, tmp_path / "evil.pt")
    torch.save({"step": 3}, tmp_path / "foreign.pt")
    for name, needle in (("junk.pt", "not a readable polychrome checkpoint"),
                         ("evil.pt", "not a readable polychrome checkpoint"),
                         ("foreign.pt", "not a polychrome training checkpoint (no model_name")):
        with pytest.raises(ValueError) as info:
            reader(tmp_path / name)
        msg = str(info.value)
        assert msg.startswith(str(tmp_path / name)) and needle in msg and "\n" not in msg, msg


def test_loading_weights_needs_fewer_keys_than_a_resume(tmp_path):
    torch.save({"model_name": "simple-unet", "ema": {}}, tmp_path / "weights.pt")
    assert set(read_checkpoint(tmp_path / "weights.pt")) == set(WEIGHT_KEYS)
    with pytest.raises(ValueError, match="no model, optimizer"):
        read_training_checkpoint(tmp_path / "weights.pt")
    assert set(WEIGHT_KEYS) < set(CHECKPOINT_KEYS)


def test_ema_to_model_state_remaps_keys():
    w, b, n = torch.randn(2, 1, 1, 1), torch.randn(2), torch.tensor(7)
    out = ema_to_model_state({"module.head.weight": w, "module.head.bias": b, "n_averaged": n})
    assert list(out) == ["head.weight", "head.bias"]
    assert out["head.weight"] is w and out["head.bias"] is b
    # On a real AveragedModel (with BatchNorm buffers) the result fits the plain model strictly.
    torch.manual_seed(0)
    model = create_model("simple-unet").train()
    model(torch.rand(2, 1, 32, 32) * 2 - 1)  # BatchNorm statistics away from their init
    remapped = ema_to_model_state(AveragedModel(model, use_buffers=True).state_dict())
    fresh = create_model("simple-unet")
    fresh.load_state_dict(remapped, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_checkpoint_card_prefers_the_written_card_and_keeps_provenance():
    position = {"config": {"infer_size": 96, "lr": 0.001}, "epoch": 2, "step": 40, "best_val_psnr": 21.5}
    written = {"model": "simple-unet", "model_kwargs": {"depth": 2}, "infer_size": 128}
    card = checkpoint_card({"card": written, "model_name": "unet-32", **position})
    assert (card.architecture, card.kwargs, card.working_size) == ("simple-unet", {"depth": 2}, 128)
    assert card.about["step"] == 40 and card.about["train_config"]["lr"] == 0.001
    # Without a written card: rebuilt from the model name, its arguments and the config's working size.
    card = checkpoint_card({"model_name": "simple-unet", "model_kwargs": {"depth": 2}, **position})
    assert (card.architecture, card.kwargs, card.working_size) == ("simple-unet", {"depth": 2}, 96)
    assert card.about["best_val_psnr"] == 21.5
    with pytest.raises(CardError, match="names no model"):
        checkpoint_card({"ema": {}})


def test_loading_weights_does_not_import_the_trainer():
    # The schema is train/checkpoint.py; reading it must not pull in the loop, its data and metrics.
    code = ("import sys, polychrome, polychrome.hub, polychrome.train.checkpoint; "
            "print(sorted(m for m in ('polychrome.train.loop', 'polychrome.train.gan', 'polychrome.losses') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    import polychrome.train as train

    assert train.Trainer.__module__ == "polychrome.train.loop" and train.train_gan.__module__ == "polychrome.train.gan"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        train.nope  # noqa: B018
