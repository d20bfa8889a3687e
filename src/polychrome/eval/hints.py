"""Score a hint model against colour originals as hints are added: the PSNR / SSIM-vs-hints curve.

For each photo, hints are drawn from its TRUE colours on the model's working grid (as in training and in
Zhang et al. 2017 / iColoriT): :func:`polychrome.color.hints.sample_hints` with a generator seeded
``seed + i`` for the i-th photo (in :func:`polychrome.eval.automatic.photo_paths` order), the same seed for every
hint count. The sampler draws one random order of all places, so a larger count is a superset of a smaller
one: the curve adds hints, it does not redraw them. Each count colourises the photo through the one
Colorizer (:meth:`polychrome.Colorizer.colorize_lightness` with ``hint_ab`` / ``hint_mask`` on the working
grid; L at full resolution, ab upsampled), and the 8-bit result is scored with the same PSNR and SSIM as
``polychrome evaluate`` (:mod:`polychrome.eval.metrics`). The grey baseline (ab = 0) is scored once per photo.

Reference (ImageNet, Zhang et al. SIGGRAPH 2017): 24.4 dB with 0 hints, 28.4 with 10, 31.1 with 100.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from polychrome.color.hints import HINT_PATCH, HintError, sample_hints
from polychrome.color.lab import rgb_to_lab
from polychrome.colorizer import Colorizer
from polychrome.eval import metrics
from polychrome.eval.provenance import evaluation_settings
from polychrome.eval.report import curve_plot
from polychrome.eval.runner import as_colorizer_kept, photo_paths, run_photos, working_size
from polychrome.io import load_rgb, save_image_atomic, to_uint8, write_json_atomic
from polychrome.pipeline import gray_rgb, lightness, resize_l, to_array

#: The hint counts of the standard curve (``polychrome evaluate --hints`` takes any list).
DEFAULT_COUNTS = (0, 1, 2, 5, 10, 20, 50, 100, 200)

_CURVE_METRICS = ("psnr", "ssim")


def parse_counts(text: str) -> list[int]:
    """``"0,1,2,5"`` -> ``[0, 1, 2, 5]``: non-negative integers, sorted, duplicates dropped.
    Raises ValueError with a one-line message naming the bad item."""
    counts = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit():
            raise ValueError(f"hint counts must be non-negative integers separated by commas, got {item!r}")
        counts.add(int(item))
    if not counts:
        raise ValueError("give at least one hint count, e.g. 0,1,2,5,10,20,50,100,200")
    return sorted(counts)


def sample_photo_hints(
    rgb: np.ndarray, work_hw: tuple[int, int], counts: Sequence[int], seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The evaluation's hints for one photo: for each count, hints sampled from its true ab on the working grid.

    Args:
        rgb: (H, W, 3) float in [0, 1], the colour original.
        work_hw: (h, w) working grid (:meth:`polychrome.Colorizer.working_shape`).
        counts: numbers of hints (each clamped to the places there are).
        seed: the photo's seed. Every count starts from a generator seeded with it, so the hints of a larger
            count are a superset of a smaller count's.
    Returns:
        per count, hint_ab (1, 2, h, w) in Lab units and hint_mask (1, 1, h, w) in {0, 1}.
    """
    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]  # (1, 3, H, W)
    ab = rgb_to_lab(x)[:, 1:]
    ab = resize_l(ab, work_hw)  # resized as the model's L is, so hint colours match what the model sees
    return [sample_hints(ab, int(k), patch=HINT_PATCH, generator=torch.Generator().manual_seed(seed)) for k in counts]


def run_hint_evaluation(
    model_spec: str | os.PathLike | nn.Module,
    data: str | os.PathLike,
    counts: Sequence[int] = DEFAULT_COUNTS,
    json_path: str | os.PathLike | None = None,
    plot_path: str | os.PathLike | None = None,
    size: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Colourise every photo under ``data`` with 0, 1, 2, ... hints sampled from its true colours; score each.

    Args:
        model_spec: anything :meth:`polychrome.Colorizer.from_pretrained` accepts, a Colorizer, or a loaded
            ``nn.Module`` (eval mode for the run, its mode restored after). Needs a hint model (its card's
            ``takes_hints``) unless ``counts`` is only ``[0]``.
        data: a folder (searched recursively), one image, or a ``.txt`` list (:func:`polychrome.io.find_images`).
        counts: hint counts (sorted, duplicates dropped).
        json_path: where to write the result as JSON (atomically); None writes nothing.
        plot_path: where to write a PNG of the PSNR and SSIM curves; None draws nothing.
        size: working size (longest side, px); default the model card's.
        limit: only the first ``limit`` photos.
        seed: photo i's hints come from a generator seeded ``seed + i``.
        progress: a rich progress bar on stderr.

    Returns:
        ``{"model", "architecture", "data", "n", "size", "limit", "seed", "hint_patch", "counts", "curve",
        "grey", "skipped", "per_image", "settings", "plot", "seconds"}``: ``curve`` is one
        ``{"hints": k, "psnr": mean dB, "ssim": mean}`` per count, ``grey`` the grey baseline's means,
        ``per_image`` one ``{"file", "height", "width", "seed", "psnr": [...], "ssim": [...], "grey_psnr",
        "grey_ssim"}`` per photo with lists aligned with ``counts``. Means are None when n == 0.

    Raises:
        polychrome.color.hints.HintError: hints > 0 for a model that cannot use hints.
        polychrome.io.ImageError: ``data`` does not exist.
        polychrome.hub.ModelLoadError: ``model_spec`` cannot be loaded.
        ValueError: a negative or no hint count.
    """
    t0 = time.perf_counter()
    counts = sorted({int(k) for k in counts})
    if not counts or counts[0] < 0:
        raise ValueError(f"hint counts must be non-negative and at least one, got {counts}")
    model = as_colorizer_kept(model_spec)
    model_name = str(model_spec if isinstance(model_spec, (str, os.PathLike)) else model.name)
    if counts != [0] and not model.card.takes_hints:
        raise HintError(f"model {model_name} cannot use colour hints; use a hint model such as 'hints'")
    work_size = working_size(model, size)
    paths = photo_paths(data, limit)
    root = Path(data)

    per_image: list[dict] = []

    def scored(name: str, colourised, row: dict) -> str:
        per_image.append({"file": name, "seed": seed + colourised[0], **row})
        status = "  ".join(f"{k}: {_mean_at(per_image, 'psnr', j):.2f}" for j, k in _status_counts(counts))
        return f"PSNR by hints {status} dB"

    def colourise(i: int, path: Path):
        return (i, *colourise_with_hints(model, path, counts, work_size, seed + i))

    skipped = run_photos(
        paths, root, colourise, lambda c: _score(*c[1:]), scored, [model.model], "evaluating hints", progress
    )

    result = {
        "model": model_name,
        "architecture": model.card.architecture,
        "data": str(data),
        "n": len(per_image),
        "size": work_size,
        "limit": limit,
        "seed": seed,
        "hint_patch": HINT_PATCH,
        "counts": counts,
        "curve": [{"hints": k, **{m: _mean_at(per_image, m, j) for m in _CURVE_METRICS}} for j, k in enumerate(counts)],
        "grey": {m: _mean_at(per_image, f"grey_{m}") for m in _CURVE_METRICS},
        "skipped": skipped,
        "per_image": per_image,
        "settings": {
            **evaluation_settings(work_size),
            "pipeline": "polychrome.Colorizer.colorize_lightness at full resolution, hints on the working grid",
            "hints": (
                f"polychrome.color.hints.sample_hints on the true ab resized (antialiased bilinear) to the working "
                f"grid: {HINT_PATCH}x{HINT_PATCH} px squares, each the true mean ab there; photo i uses "
                f"torch.Generator().manual_seed(seed + i) for every count, so more hints are a superset of fewer"
            ),
        },
        "plot": None if plot_path is None or not per_image else str(plot_path),
    }
    result["seconds"] = round(time.perf_counter() - t0, 3)
    if json_path is not None:
        write_json_atomic(result, json_path)
    if plot_path is not None and per_image:  # after the JSON: an unwritable plot costs the picture only
        save_image_atomic(curve_plot(result), plot_path)
    return result


def colourise_with_hints(
    model: Colorizer, path: Path, counts: Sequence[int], size: int, seed: int
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(grey, [colourisation with each count of hints], original) of one photo, uint8 (H, W, 3) as saved.
    Raises :class:`polychrome.io.ImageError` for an unreadable file."""
    rgb = load_rgb(path)
    L = lightness(rgb)
    work_hw = model.working_shape(*rgb.shape[:2], size)
    preds = []
    for hint_ab, hint_mask in sample_photo_hints(rgb, work_hw, counts, seed):
        if model.card.takes_hints:
            out, _ = model.colorize_lightness(L, size=size, hint_ab=hint_ab, hint_mask=hint_mask)
        else:  # only count 0 gets here (checked up front): the plain automatic path
            out, _ = model.colorize_lightness(L, size=size)
        preds.append(to_uint8(to_array(out)))
    return to_uint8(to_array(gray_rgb(L))), preds, to_uint8(rgb)


def _score(grey: np.ndarray, preds: list[np.ndarray], orig: np.ndarray) -> dict:
    return {
        "height": int(orig.shape[0]),
        "width": int(orig.shape[1]),
        "psnr": [metrics.psnr(p, orig) for p in preds],
        "ssim": [metrics.ssim(p, orig) for p in preds],
        "grey_psnr": metrics.psnr(grey, orig),
        "grey_ssim": metrics.ssim(grey, orig),
    }


def _mean_at(rows: list[dict], key: str, j: int | None = None) -> float | None:
    """Mean of ``row[key]`` (or ``row[key][j]``) over rows; None for no rows."""
    if not rows:
        return None
    value = float(np.mean([r[key] if j is None else r[key][j] for r in rows]))
    return value if np.isfinite(value) else None


def _status_counts(counts: list[int]) -> list[tuple[int, int]]:
    """(index, count) of at most three counts for the progress line: the first, a middle one, the last."""
    picks = sorted({0, len(counts) // 2, len(counts) - 1})
    return [(j, counts[j]) for j in picks]


__all__ = [
    "DEFAULT_COUNTS",
    "colourise_with_hints",
    "curve_plot",
    "parse_counts",
    "run_hint_evaluation",
    "sample_photo_hints",
]
