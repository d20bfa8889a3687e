"""Score a colouriser against the colour originals of a folder of photos.

Each photo goes through the Colorizer the CLI uses (:meth:`polychrome.Colorizer.colorize_uint8`: the model
sees only L at its working size; ab is upsampled onto the full-resolution L), and so does a grey baseline
(:func:`polychrome.pipeline.gray_array`: ab = 0, L kept). Both are quantised to 8 bits as a saved file
would be (:func:`polychrome.io.to_uint8`), then compared with the original:

* PSNR (dB, peak 255, capped at :data:`polychrome.eval.metrics.PSNR_MAX_DB`) and SSIM on RGB 0-255,
* colourfulness (Hasler and Suesstrunk 2003) of the prediction, the grey baseline and the original,
* mean CIEDE2000 between prediction and original.

A classification model (cicgan) can be scored at several annealed-mean temperatures in one run
(``temperatures``): each photo is read, made grey and scored against its original once, and colourised
once per temperature, so the temperatures compare on identical inputs beside one grey baseline.

Exact settings are in the :mod:`polychrome.eval.metrics` docstrings and in the ``settings`` of the result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from polychrome.colorizer import Colorizer
from polychrome.eval.provenance import evaluation_settings
from polychrome.eval.report import comparison_grid
from polychrome.eval.runner import (
    METRICS,
    Variant,
    as_colorizer_kept,
    mean_of,
    photo_paths,
    rounded,
    score_photos,
    working_size,
)
from polychrome.io import save_image_atomic, write_json_atomic


def run_evaluation(
    model_spec: str | os.PathLike | nn.Module | Colorizer,
    data: str | os.PathLike,
    json_path: str | os.PathLike | None,
    size: int | None = None,
    limit: int | None = None,
    grid_path: str | os.PathLike | None = None,
    progress: bool = True,
    temperatures: Sequence[float] | None = None,
) -> dict:
    """Colourise every photo under ``data`` and score it against the original.

    Args:
        model_spec: anything :meth:`polychrome.Colorizer.from_pretrained` accepts (bundled name, export
            folder, ``.safetensors``, checkpoint ``.pt``), a Colorizer, or a loaded ``nn.Module`` (put in eval
            mode for the run, its mode restored after).
        data: a folder (searched recursively), one image, or a ``.txt`` list (see :func:`polychrome.io.find_images`).
            Folder contents are taken in sorted order, a ``.txt`` list in its own order.
        json_path: where to write the result as JSON (atomically); None writes nothing.
        size: working size (longest side, px) the model sees; default its card's.
        limit: evaluate only the first ``limit`` photos.
        grid_path: if given, a PNG with one row per photo (the first :data:`GRID_ROWS`):
            grey | prediction | original, each :data:`GRID_HEIGHT` px high.
        progress: show a rich progress bar on stderr.
        temperatures: for a classification model (cicgan), decode at each of these annealed-mean
            temperatures (distinct, each > 0) instead of the model's own setting. The summary's ``mean``,
            ``per_image`` and grid are then the FIRST temperature's (``temperature`` says which), and
            ``by_temperature`` lists ``{"temperature", "mean", "colorize_seconds_per_image"}`` for each,
            in the order given; the grid shows one column per temperature.

    Runs on two threads: torch is set to one intra-op thread for the call (restored after) while a
    worker thread scores the previous photo.

    Returns:
        ``{"model", "data", "n", "size", "settings", "mean", "grey", "reference", "skipped",
        "per_image", "seconds", ...}``. ``mean`` / ``grey`` hold ``psnr``, ``ssim``, ``colorfulness``,
        ``ciede2000`` averaged over the ``n`` scored photos (None when n == 0); ``reference`` holds the
        originals' mean ``colorfulness``; ``skipped`` lists ``{"file", "reason"}`` for unreadable photos
        (and any under 3 px a side), each also announced by a one-line warning on stderr. Every number
        is finite (valid JSON). ``colorize_seconds_per_image`` / ``grey_seconds_per_image`` time the
        pipeline alone (decoded photo in, 8-bit colour photo out; no file I/O, no scoring).

    Raises:
        polychrome.io.ImageError: ``data`` does not exist.
        polychrome.hub.ModelLoadError: ``model_spec`` cannot be loaded.
        ValueError: ``temperatures`` for a model that regresses ab, or a repeated or invalid temperature.
    """
    t0 = time.perf_counter()
    model = as_colorizer_kept(model_spec)
    model_name = model_spec if isinstance(model_spec, (str, os.PathLike)) else model.name
    model_name = str(model_name)
    work_size = working_size(model, size)
    variants = temperature_variants(model, temperatures) if temperatures else {model_name: (model, None)}
    paths = photo_paths(data, limit)

    scores = score_photos(variants, paths, Path(data), dict.fromkeys(variants, work_size), progress=progress)
    first = next(iter(variants))
    thumbs = [(grey, *(preds[label] for label in variants), orig) for _, grey, preds, orig in scores.panels]
    result = summarise(
        model_name,
        model,
        data,
        work_size,
        limit,
        scores.rows[first],
        scores.skipped,
        grid=None if grid_path is None or not thumbs else str(grid_path),
    )
    if temperatures:
        result["temperature"] = float(temperatures[0])
        result["by_temperature"] = [
            {
                "temperature": float(t),
                "mean": {k: mean_of(scores.rows[label], k) for k in METRICS},
                "colorize_seconds_per_image": rounded(mean_of(scores.rows[label], "colorize_seconds"), 4),
            }
            for t, label in zip(temperatures, variants)
        ]
    result["seconds"] = round(time.perf_counter() - t0, 3)
    result["seconds_per_image"] = round(result["seconds"] / result["n"], 4) if result["n"] else None
    if json_path is not None:
        write_json_atomic(result, json_path)
    # After the JSON, so an unwritable grid path costs the picture, not the scores.
    if grid_path is not None and thumbs:
        save_image_atomic(comparison_grid(thumbs), grid_path)
    return result


def temperature_variants(model: Colorizer, temperatures: Sequence[float]) -> dict[str, Variant]:
    """``"T=0.38"`` -> the classification ``model`` decoding at that annealed-mean temperature, in order (one
    model: the temperature is an argument of each call).

    Raises ValueError (one line) for a model without a temperature, a repeated temperature or one that is
    not a finite number > 0 (:meth:`polychrome.models.card.ModelCard.decoding`)."""
    variants: dict[str, Variant] = {}
    for t in temperatures:
        label = f"T={t:g}"
        if label in variants:
            raise ValueError(f"temperature {t:g} is given twice")
        model.decoding(t)
        variants[label] = (model, float(t))
    return variants


def summarise(
    model_name: str,
    model: Colorizer,
    data: str | os.PathLike,
    size: int,
    limit: int | None,
    per_image: list[dict],
    skipped: list[dict],
    grid: str | None = None,
) -> dict:
    """The summary ``run_evaluation`` returns, from one model's rows of :func:`score_photos` (less the
    ``seconds`` fields, which the caller knows)."""
    return {
        "model": model_name,
        "architecture": model.card.architecture,
        "data": str(data),
        "n": len(per_image),
        "size": size,
        "limit": limit,
        "settings": evaluation_settings(size),
        "mean": {k: mean_of(per_image, k) for k in METRICS},
        "grey": {k: mean_of(per_image, f"grey_{k}") for k in METRICS},
        "reference": {"colorfulness": mean_of(per_image, "ref_colorfulness")},
        "colorize_seconds_per_image": rounded(mean_of(per_image, "colorize_seconds"), 4),
        "grey_seconds_per_image": rounded(mean_of(per_image, "grey_seconds"), 4),
        "skipped": skipped,
        "per_image": per_image,
        "grid": grid,
    }
