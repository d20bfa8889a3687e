"""train/gan: cicgan pre-training then adversarial fine-tuning with the PatchGAN, exact resume across
the critic, the palette file, and the config's own checks."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from _helpers import make_photo_tree
from test_train import _assert_same

from polychrome.color.palette import ABPalette
from polychrome.color.quantize import srgb_gamut_bins
from polychrome.models import create_model
from polychrome.train.checkpoint import load_checkpoint
from polychrome.train.config import ConfigError
from polychrome.train.gan import GanTrainConfig, GanTrainer, make_gan_config, train_gan


def gan_config(tmp_path, **overrides) -> GanTrainConfig:
    """cicgan-small and a 2-scale, base-8 critic on 48 px crops: 20 photos -> 16 train / 4 val, batch 4,
    so an epoch is 4 steps."""
    data = tmp_path / "data"
    if not data.exists():
        make_photo_tree(data, 20, size=(56, 56))
    base = {
        "model": "cicgan-small", "data": str(data), "val_fraction": 0.2, "val_max_images": 4, "image_size": 48,
        "infer_size": 48, "batch_size": 4, "epochs": 1, "warmup_steps": 1, "lr": 1e-3, "ema_decay": 0.9,
        "precision": "fp32", "channels_last": False, "workers": 0, "log_every_steps": 1, "ckpt_every_steps": 0,
        "d_base": 8, "d_scales": 2, "gan_start_step": 1, "out_dir": str(tmp_path / "run"),
    }
    return make_gan_config(overrides={**base, **overrides})


def _close(trainer: GanTrainer) -> None:
    trainer.close()


def test_two_gan_steps_then_resume_exactly(tmp_path):
    # Step 0 pre-trains; steps 1-3 are adversarial. The broken run stops after two steps (one of each).
    # The input augmentations (sharpening, grain) are on: their draws must resume exactly too.
    straight = gan_config(tmp_path, max_steps=4, l_noise=6.0, l_sharpen=1.0, out_dir=str(tmp_path / "a"))
    broken = gan_config(tmp_path, max_steps=4, l_noise=6.0, l_sharpen=1.0, out_dir=str(tmp_path / "b"))
    train_gan(straight, progress=False)

    first = GanTrainer(broken, progress=False)
    try:
        first.fit(stop_at_step=2)
    finally:
        first.close()
    mid = load_checkpoint(tmp_path / "b" / "last.pt")
    assert mid["step"] == 2 and {"disc", "disc_optimizer"} <= set(mid)

    torch.manual_seed(1234)
    random.seed(99)
    np.random.seed(7)
    second = GanTrainer(broken, resume=True, progress=False)
    try:
        assert second.step == 2 and second.adversarial
        second.fit()
    finally:
        second.close()
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 4
    for key in ("model", "ema", "optimizer", "scheduler", "disc", "disc_optimizer", "epoch", "step", "best_val_psnr"):
        _assert_same(a[key], b[key], key)
    # The critic trained after step 0 and the resumed half moved it further.
    first_conv = "scales.0.blocks.0.0.parametrizations.weight.original"
    assert not torch.equal(mid["disc"][first_conv], b["disc"][first_conv])


def test_pretraining_leaves_the_critic_alone_then_it_trains(tmp_path):
    cfg = gan_config(tmp_path, gan_start_step=2, max_steps=3)
    trainer = GanTrainer(cfg, progress=False)
    try:
        batch = [trainer.train_set[i] for i in range(4)]
        micro = [torch.stack(batch)]
        d0 = {k: v.clone() for k, v in trainer.disc.state_dict().items()}
        trainer.train_step(micro)
        assert set(trainer.last_terms) == {"class", "ab", "hist", "conf"}
        trainer.train_step(micro)
        _assert_same(d0, trainer.disc.state_dict(), "disc")  # untouched while pre-training
        trainer.train_step(micro)
        assert set(trainer.last_terms) == {"class", "ab", "hist", "conf", "adv", "fm", "d"}
        assert all(np.isfinite(v) for v in trainer.last_terms.values())
        # (Not a bias: at init every logit is within the hinge margin, where the bias gradient is -1 + 1 = 0.)
        w = "scales.1.out.parametrizations.weight.original"
        assert not torch.equal(d0[w], trainer.disc.state_dict()[w])
        for n, p in trainer.model.named_parameters():
            assert p.grad is None, n  # gradients are cleared after each step
    finally:
        _close(trainer)


def test_palette_file_goes_into_model_and_ema(tmp_path):
    bins = srgb_gamut_bins()
    prior = torch.softmax(torch.randn(len(bins), generator=torch.Generator().manual_seed(0)), 0)
    path = ABPalette(bins, prior).save(tmp_path / "pal.safetensors")
    trainer = GanTrainer(gan_config(tmp_path, palette=str(path), max_steps=1), progress=False)
    try:
        assert torch.equal(trainer.model.palette.prior, prior)
        assert torch.equal(trainer.ema.module.palette.prior, prior)
    finally:
        _close(trainer)
    ABPalette(bins[:50]).save(tmp_path / "small.safetensors")
    with pytest.raises(ConfigError, match="num_bins=50"):
        GanTrainer(gan_config(tmp_path, palette=str(tmp_path / "small.safetensors")), progress=False)


def test_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="needs at least 96 px"):
        gan_config(tmp_path, d_scales=3)
    with pytest.raises(ConfigError, match="adv_weight"):
        gan_config(tmp_path, adv_weight=-1)
    with pytest.raises(ConfigError, match="unknown config key"):
        gan_config(tmp_path, gan_strat_step=3)
    cfg = gan_config(tmp_path)
    assert isinstance(cfg, GanTrainConfig) and cfg.gan_start_step == 1
    assert make_gan_config(overrides=cfg.to_dict()) == cfg  # the checkpoint's config rebuilds the run
    with pytest.raises(ConfigError, match="no ab palette"):
        GanTrainer(gan_config(tmp_path, model="simple-unet"), progress=False)


def test_a_gan_checkpoint_colourises_at_full_resolution_with_a_temperature(tmp_path, photo):
    from polychrome.colorizer import Colorizer

    cfg = gan_config(tmp_path, max_steps=2, palette="")
    train_gan(cfg, progress=False)
    model = Colorizer.from_pretrained(tmp_path / "run" / "last.pt")  # the EMA generator; the critic is not needed
    assert model.card.architecture == "cicgan-small" and model.card.temperature == 0.38
    assert model.card.gives_confidence and not model.card.takes_hints
    rgb = photo(45, 70).astype(np.float32) / 255
    out = {}
    for t in (0.1, 1.0):
        out[t] = model.colorize_array(rgb, temperature=t)
        assert out[t].shape == (45, 70, 3) and np.isfinite(out[t]).all()
    assert not np.allclose(out[0.1], out[1.0])


@pytest.mark.parametrize("through_bins", [True, False])
def test_ab_loss_reaches_the_bin_logits_only_when_asked(tmp_path, through_bins):
    # Only the smooth-L1 on the final ab is weighted; without weight decay a parameter that gets no gradient
    # from it stays exactly where it was. The head's first Q output rows are the bin logits, the next two
    # the residual.
    cfg = gan_config(tmp_path, cic_class_weight=0.0, cic_hist_weight=0.0, cic_conf_weight=0.0, weight_decay=0.0,
                     gan_start_step=10, max_steps=2, cic_ab_through_bins=through_bins)
    trainer = GanTrainer(cfg, progress=False)
    try:
        q = trainer.model.num_bins
        before = trainer.model.head.weight.detach().clone()
        trainer.train_step([torch.stack([trainer.train_set[i] for i in range(4)])])
        after = trainer.model.head.weight.detach()
        assert not torch.equal(before[q : q + 2], after[q : q + 2])  # the residual learns either way
        assert torch.equal(before[:q], after[:q]) is (not through_bins)
    finally:
        _close(trainer)


def test_detach_bins_stops_the_final_ab_gradient_at_the_decoded_bins():
    torch.manual_seed(0)
    model = create_model("cicgan-small")
    L = torch.rand(1, 1, 32, 32) * 2 - 1
    q = model.num_bins
    for detach, bins_grad in ((False, True), (True, False)):
        model.zero_grad()
        out = model(L, return_all=True, detach_bins=detach)
        out.ab_net.square().sum().backward()
        g = model.head.weight.grad
        assert bool(g[:q].abs().sum() > 0) is bins_grad
        assert g[q : q + 2].abs().sum() > 0
    # The numbers themselves do not change.
    with torch.no_grad():
        a, b = model(L, return_all=True), model(L, return_all=True, detach_bins=True)
    assert torch.equal(a.ab_net, b.ab_net)


def test_a_new_leg_starts_its_critic_from_an_earlier_run(tmp_path):
    from safetensors.torch import save_file

    from polychrome.train.gan import export_critic

    first = gan_config(tmp_path, max_steps=2, gan_start_step=0, out_dir=str(tmp_path / "leg1"))
    train_gan(first, progress=False)
    ck = load_checkpoint(tmp_path / "leg1" / "last.pt")
    half = export_critic(tmp_path / "leg1" / "last.pt", tmp_path / "critic.safetensors", half=True)

    fresh = GanTrainer(gan_config(tmp_path, out_dir=str(tmp_path / "fresh")), progress=False)
    try:
        random_disc = {k: v.clone() for k, v in fresh.disc.state_dict().items()}
    finally:
        fresh.close()
    for source, tol in ((tmp_path / "leg1" / "last.pt", 0.0), (half, 1e-3)):
        t = GanTrainer(gan_config(tmp_path, init_critic=str(source), out_dir=str(tmp_path / f"leg2-{tol}")),
                       progress=False)
        try:
            got = t.disc.state_dict()
            for k, v in ck["disc"].items():
                assert got[k].dtype == v.dtype, k
                torch.testing.assert_close(got[k], v, rtol=tol, atol=tol, msg=k)
            moved = [k for k, v in got.items() if v.is_floating_point() and not torch.equal(v, random_disc[k])]
            assert moved, "the critic is still the random one"
            assert not t.d_opt.state  # a fresh critic optimiser, as init_weights gives a fresh generator one
            t.fit(stop_at_step=1)  # and it trains from there
        finally:
            t.close()

    with pytest.raises(ConfigError, match="init_critic: .*nope.pt: no such file"):
        GanTrainer(gan_config(tmp_path, init_critic=str(tmp_path / "nope.pt"), out_dir=str(tmp_path / "e1")),
                   progress=False)
    plain = tmp_path / "plain.pt"
    torch.save({"model_name": "cicgan-small", "ema": {}}, plain)
    with pytest.raises(ConfigError, match="plain.pt.*not a GAN run's checkpoint"):
        GanTrainer(gan_config(tmp_path, init_critic=str(plain), out_dir=str(tmp_path / "e2")), progress=False)
    with pytest.raises(ConfigError, match="critic.safetensors does not fit this critic"):
        GanTrainer(gan_config(tmp_path, init_critic=str(half), d_base=16, out_dir=str(tmp_path / "e3")),
                   progress=False)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="junk.safetensors: not a readable"):
        GanTrainer(gan_config(tmp_path, init_critic=str(junk), out_dir=str(tmp_path / "e4")), progress=False)
    save_file({"w": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match="other.safetensors does not fit"):
        GanTrainer(gan_config(tmp_path, init_critic=str(tmp_path / "other.safetensors"), out_dir=str(tmp_path / "e5")),
                   progress=False)


def test_distillation_teaches_the_flip_averaged_teacher(tmp_path):
    """A student trained by the distillation terms alone moves toward its teachers' mean prediction (each teacher
    flip-averaged), the targets are what the teachers predict, and the config says clearly what is wrong."""
    first = gan_config(tmp_path, max_steps=2, gan_start_step=10, out_dir=str(tmp_path / "t1"), seed=1)
    second = gan_config(tmp_path, max_steps=2, gan_start_step=10, out_dir=str(tmp_path / "t2"), seed=2)
    train_gan(first, progress=False)
    train_gan(second, progress=False)
    teachers = [str(tmp_path / "t1" / "last.pt"), str(tmp_path / "t2" / "last.pt")]
    only_distill = {"cic_class_weight": 0, "cic_ab_weight": 0, "cic_hist_weight": 0, "cic_conf_weight": 0,
                    "gan_start_step": 1000, "teachers": teachers, "distill_class_weight": 1.0,
                    "distill_ab_weight": 10.0, "lr": 3e-3, "warmup_steps": 1, "ema_decay": 0.0}
    trainer = GanTrainer(gan_config(tmp_path, out_dir=str(tmp_path / "s"), seed=3, **only_distill), progress=False)
    try:
        assert len(trainer.teachers) == 2 and not any(p.requires_grad for p in trainer.teachers[0].parameters())
        micro = [torch.stack([trainer.train_set[i] for i in range(4)])]
        from polychrome.train.loop import lab_batch

        _, L_net, _ = lab_batch(micro[0])
        probs, ab = trainer.teacher_targets(L_net)
        # The targets: the mean over both teachers and both mirror images, mirrored back.
        want_ab = 0
        for t in trainer.teachers:
            for flip in (False, True):
                x = L_net.flip(-1) if flip else L_net
                a = t(x, temperature=trainer.model.temperature)
                want_ab = want_ab + (a.flip(-1) if flip else a) / 4
        torch.testing.assert_close(ab, want_ab, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ab.flip(-1), trainer.teacher_targets(L_net.flip(-1))[1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(probs.sum(1), torch.ones_like(probs[:, 0]))
        # teacher_sharpen: the same mean probabilities squared and renormalised, a sharper (lower-entropy) target;
        # the ab target unchanged.
        trainer.cfg = dataclasses.replace(trainer.cfg, teacher_sharpen=2.0)
        sharp, sharp_ab = trainer.teacher_targets(L_net)
        trainer.cfg = dataclasses.replace(trainer.cfg, teacher_sharpen=1.0)
        torch.testing.assert_close(sharp, probs ** 2 / (probs ** 2).sum(1, keepdim=True), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(sharp_ab, ab)
        entropy = lambda p: -(p * p.clamp_min(1e-12).log()).sum(1).mean()  # noqa: E731
        assert entropy(sharp) < entropy(probs) - 0.1, (entropy(sharp), entropy(probs))

        def gap() -> float:
            with torch.no_grad():
                return (trainer.model(L_net, temperature=trainer.model.temperature) - ab).abs().mean().item()

        before = gap()
        for _ in range(15):
            trainer.train_step(micro)
        assert set(trainer.last_terms) == {"class", "ab", "hist", "conf", "distill_class", "distill_ab"}
        assert gap() < 0.6 * before, (before, gap())
    finally:
        trainer.close()

    with pytest.raises(ConfigError, match="teachers and distill"):
        gan_config(tmp_path, teachers=teachers)  # no weight
    with pytest.raises(ConfigError, match="teachers and distill"):
        gan_config(tmp_path, distill_ab_weight=1.0)  # no teacher
    with pytest.raises(ConfigError, match="teacher_sharpen: must be a finite number > 0"):
        gan_config(tmp_path, teachers=teachers, distill_ab_weight=1.0, teacher_sharpen=0)
    with pytest.raises(ConfigError, match="teacher_sharpen: sharpens the class target only"):
        gan_config(tmp_path, teachers=teachers, distill_ab_weight=1.0, teacher_sharpen=1.5)  # no class term
    with pytest.raises(ConfigError, match="teacher_flip: needs an even image_size"):
        gan_config(tmp_path, teachers=teachers, distill_ab_weight=1.0, image_size=49)
    with pytest.raises(ConfigError, match="teachers: .*nope.safetensors"):
        GanTrainer(gan_config(tmp_path, teachers=[str(tmp_path / "nope.safetensors")], distill_ab_weight=1.0,
                              out_dir=str(tmp_path / "e1")), progress=False)
    from polychrome.train.loop import train

    train(regression_config(tmp_path, tmp_path / "reg"), progress=False)
    with pytest.raises(ConfigError, match="reg/last.pt is not a classification colouriser"):
        GanTrainer(gan_config(tmp_path, teachers=[str(tmp_path / "reg" / "last.pt")], distill_ab_weight=1.0,
                              out_dir=str(tmp_path / "e2")), progress=False)


def regression_config(tmp_path, out):
    """A one-step simple-unet run on gan_config's photos: a model with no ab bins."""
    from polychrome.train.config import make_config

    return make_config(overrides={
        "model": "simple-unet", "data": str(tmp_path / "data"), "val_fraction": 0.2, "val_max_images": 4,
        "image_size": 48, "infer_size": 48, "batch_size": 4, "max_steps": 1, "precision": "fp32",
        "channels_last": False, "workers": 0, "ckpt_every_steps": 0, "out_dir": str(out)})
