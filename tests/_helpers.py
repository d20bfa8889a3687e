"""Tiny photos and tensors made in code, shared by the data, model, hub, loss and training tests (not a conftest:
plain helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from polychrome.color.lab import ab_to_net, rgb_to_lab


def colour_photo(seed: int, w: int = 48, h: int = 40) -> Image.Image:
    """A smooth, saturated RGB photo (different colours per seed) with a little noise, w x h."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(0.02, 0.2), rng.uniform(0.02, 0.2), rng.uniform(0, 2 * np.pi)
        chans.append(0.5 + 0.45 * np.sin(fx * xx + fy * yy + ph))
    arr = np.stack(chans, axis=2) + rng.normal(0, 0.02, (h, w, 3))
    return Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


def grey_photo(seed: int, w: int = 48, h: int = 40) -> Image.Image:
    """An RGB photo with R = G = B exactly."""
    g = np.asarray(colour_photo(seed, w, h).convert("L"))
    return Image.fromarray(np.repeat(g[..., None], 3, axis=2), "RGB")


def tinted_grey_photo(seed: int, w: int = 48, h: int = 40) -> Image.Image:
    """A nearly grey RGB photo: a slight warm tint, every pixel's |a| and |b| well below 5 (a toned print)."""
    g = np.asarray(grey_photo(seed, w, h)).astype(np.int16)
    g = np.clip(g, 10, 245)
    tint = np.array([4, 0, -4], dtype=np.int16)  # 8-bit steps; |a|, |b| stay below about 4
    return Image.fromarray((g + tint).astype(np.uint8), "RGB")


def make_photo_tree(
    root: Path, n: int, size: tuple[int, int] = (40, 36), exts=("png",), start_seed: int = 0
) -> list[Path]:
    """Write ``n`` colour photos under ``root`` (two nested sub-folders), cycling through ``exts``."""
    paths = []
    for i in range(n):
        sub = root / f"set{i % 2}" / ("deep" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        ext = exts[i % len(exts)]
        p = sub / f"img{i:03d}.{ext}"
        save(colour_photo(start_seed + i, *size), p)
        paths.append(p)
    return paths


def save(img: Image.Image, path: Path, **kw) -> Path:
    """Save losslessly where the format allows, so colour tests are not at the mercy of JPEG chroma noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext == ".webp":
        kw.setdefault("lossless", True)
    if ext in (".jpg", ".jpeg"):
        kw.setdefault("quality", 95)
    img.save(path, **kw)
    return path


def tiny_train_config(tmp_path: Path, n_photos: int = 38, **overrides):
    """A :class:`TrainConfig` for a seconds-long run: simple-unet, 32 px, fp32, no workers, photos made in
    ``tmp_path/data`` (written once). 38 photos with ``val_fraction=0.2`` split 30 train / 8 val, so with
    batch 8 an epoch is 3 steps and 6 photos are left out (a different 6 each epoch)."""
    from polychrome.train import make_config

    data = tmp_path / "data"
    if not data.exists():
        make_photo_tree(data, n_photos, size=(40, 36), exts=("png", "jpg"))
    base = {
        "model": "simple-unet",
        "data": str(data),
        "val_fraction": 0.2,
        "val_max_images": 8,
        "image_size": 32,
        "infer_size": 48,
        "batch_size": 8,
        "epochs": 2,
        "warmup_steps": 2,
        "lr": 1e-3,
        "ema_decay": 0.9,
        "precision": "fp32",
        "channels_last": False,
        "workers": 0,
        "log_every_steps": 1,
        "ckpt_every_steps": 0,
        "out_dir": str(tmp_path / "run"),
    }
    return make_config(overrides={**base, **overrides})


def colorizer_of(model, precision: str = "fp32"):
    """A Colorizer for a test's model: a Colorizer (with ``precision``), or a stand-in module whose ``meta``
    test attribute names it and its working size ({"model": NAME, "infer_size": N})."""
    from dataclasses import replace

    from polychrome.colorizer import Colorizer
    from polychrome.models.card import ModelCard

    if isinstance(model, Colorizer):
        return model if model.precision == precision else Colorizer(model.model, model.card, precision)
    card = ModelCard.for_model(model)
    meta = getattr(model, "meta", None)
    if meta:
        card = replace(card, architecture=meta["model"], working_size=meta["infer_size"])
    return Colorizer(model, card, precision)


# --------------------------------------------------------------------------- tensors for the colour and loss tests
def random_ab(n: int, seed: int = 0) -> torch.Tensor:
    """(1, 2, 1, n) ab of random sRGB colours, CIE units: inside the gamut the sRGB grid bins cover."""
    rgb = torch.rand(3, 1, n, generator=torch.Generator().manual_seed(seed))
    return rgb_to_lab(rgb)[1:].unsqueeze(0)


def flat_lab(L: float, a: float, b: float, h: int = 6, w: int = 10, batch: int = 2):
    """(L (B,1,H,W) real units, ab (B,2,H,W) network units) of one flat colour."""
    Lt = torch.full((batch, 1, h, w), L)
    ab = ab_to_net(torch.tensor([a, b]).view(1, 2, 1, 1).expand(batch, 2, h, w).clone())
    return Lt, ab


class EchoFeatures(torch.nn.Module):
    """A stand-in feature network: the image itself and twice the image, so a perceptual term is 1.5 x the
    RGB L1 by construction."""

    def forward(self, rgb):
        return [rgb, 2 * rgb]


def assert_archive_metadata(path: Path, camera: str, icc: bytes, dpi: float, model_name: str) -> None:
    """The 16-bit scan tests' archive fields, read back with Pillow from the output at ``path``: description,
    camera, date, copyright, the provenance note naming ``model_name``, the ICC profile and the DPI."""
    from polychrome import __version__

    with Image.open(path) as im:
        exif = im.getexif()
        assert exif.get(0x010E) == "Grandma at the lake" and exif.get(0x010F) == camera
        assert exif.get(0x0132) == "1931:06:01 12:00:00" and exif.get(0x8298) == "(c) Miller"
        assert exif.get(0x0131) == f"colourised by polychrome {__version__}, model {model_name}"
        assert im.info.get("icc_profile") == icc
        assert im.info.get("dpi") == pytest.approx((dpi, dpi), abs=0.01)


def run_ddp_workers(tmp_path: Path, cfg, **env) -> tuple[dict, dict]:
    """Train ``cfg`` under torchrun in two CPU processes (gloo; tests/train/ddp_worker.py, run from
    ``tmp_path``, ``env`` added to the environment); asserts a clean exit within 120 s and returns the two
    ranks' reports (step, epoch, weights, ...)."""
    import json
    import os
    import subprocess
    import sys
    import time

    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    report = tmp_path / "report"
    report.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).parent / "train" / "ddp_worker.py"), str(tmp_path / "cfg.json"), str(report)]  # fmt: skip
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert time.time() - t0 < 120
    r0, r1 = (json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1))
    return r0, r1
