"""Score a colouriser against the colour originals of a folder of photos.

Each photo goes through the Colorizer the CLI uses (:meth:`polychrome.Colorizer.colorize_uint8`: the model
sees only L at its working size; ab is upsampled onto the full-resolution L), and so does a grey baseline
(:func:`polychrome.pipeline.gray_array`: ab = 0, L kept). Both are quantised to 8 bits as a saved file
would be (:func:`polychrome.io.to_uint8`), then compared with the original:

* PSNR (dB, peak 255, capped at :data:`polychrome.metrics.PSNR_MAX_DB`) and SSIM on RGB 0-255,
* colourfulness (Hasler and Suesstrunk 2003) of the prediction, the grey baseline and the original,
* mean CIEDE2000 between prediction and original.

A classification model (cicgan) can be scored at several annealed-mean temperatures in one run
(``temperatures``): each photo is read, made grey and scored against its original once, and colourised
once per temperature, so the temperatures compare on identical inputs beside one grey baseline.

Exact settings are in the :mod:`polychrome.metrics` docstrings and in the ``settings`` of the result.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from polychrome import metrics
from polychrome.colorizer import Colorizer, as_colorizer
from polychrome.io import ImageError, find_images, load_rgb, save_image_atomic, to_uint8, write_json_atomic
from polychrome.pipeline import gray_array

#: Photos shown in the comparison grid, and the height (px) of each panel in it.
GRID_ROWS = 6
GRID_HEIGHT = 160
#: White space (px) between panels and rows of the grid.
GRID_GAP = 4
#: Threads evaluating at once (the build machines have 2 cores): one colourises, the rest score.
MAX_THREADS = 2

_METRICS = ("psnr", "ssim", "colorfulness", "ciede2000")


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
                "mean": {k: _mean(scores.rows[label], k) for k in _METRICS},
                "colorize_seconds_per_image": _round(_mean(scores.rows[label], "colorize_seconds"), 4),
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


def as_colorizer_kept(model) -> Colorizer:
    """:func:`polychrome.colorizer.as_colorizer`, leaving a given model's train/eval mode as it was (the
    evaluation puts it in eval mode for its run only, :func:`eval_mode`)."""
    if isinstance(model, nn.Module):
        was_training = model.training
        colorizer = as_colorizer(model)
        model.train(was_training)
        return colorizer
    return as_colorizer(model)


#: What :func:`score_photos` runs under each label: a Colorizer and the temperature of its calls (None: the
#: model's own decoding).
Variant = tuple[Colorizer, float | None]


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


# --------------------------------------------------------------------------- reusable pieces
# run_evaluation is these pieces for one model; `polychrome benchmark` (polychrome.benchmark) runs them
# for several models at once, so each photo is decoded, made grey and scored against its original once.


def working_size(model: Colorizer, size: int | None = None) -> int:
    """The working size (longest side, px) a model is evaluated at: ``size``, else its card's."""
    return int(size or model.card.working_size)


def photo_paths(data: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """The photos of ``data`` in evaluation order (:func:`polychrome.io.find_images`), the first ``limit`` only.
    Raises :class:`polychrome.io.ImageError` when ``data`` does not exist."""
    paths = find_images(data)
    return paths if limit is None else paths[: max(0, limit)]


@dataclass
class PhotoScores:
    """What :func:`score_photos` found, photo by photo, for each model (keyed by its label)."""

    #: label -> per-image rows in ``run_evaluation``'s ``per_image`` format, in photo order. Every label has
    #: a row for the same photos: a photo that fails for one model is skipped for all.
    rows: dict[str, list[dict]]
    #: ``{"file", "reason"}`` of each photo that could not be read, colourised or scored.
    skipped: list[dict]
    #: (file, grey, {label: prediction}, original) thumbnails, uint8, :data:`GRID_HEIGHT` px high, of the first
    #: ``keep`` scored photos.
    panels: list[tuple[str, np.ndarray, dict[str, np.ndarray], np.ndarray]]


def score_photos(
    models: Mapping[str, Variant],
    paths: list[Path],
    root: Path,
    sizes: Mapping[str, int],
    keep: int = GRID_ROWS,
    progress: bool = True,
    title: str = "evaluating",
) -> PhotoScores:
    """Colourise each photo once with each model and score every result, the grey baseline and the original.

    Args:
        models: label -> (Colorizer, temperature or None). Each model is put in eval mode for the call (its
            mode restored after).
        paths: the photos, in order; ``root`` names them in the rows (path relative to it when it is a folder).
        sizes: label -> working size (longest side, px).
        keep: thumbnails are kept for the first ``keep`` scored photos (for grids).
        progress: show a rich progress bar on stderr, titled ``title``.

    Each photo is read once; its grey baseline and the originals' colourfulness are scored once and copied
    into every model's row. Runs on two threads: torch at one intra-op thread (restored after) colourises
    photo i+1 with every model while a worker thread scores photo i.
    """
    rows: dict[str, list[dict]] = {label: [] for label in models}
    skipped: list[dict] = []
    panels: list[tuple[str, np.ndarray, dict[str, np.ndarray], np.ndarray]] = []
    first = next(iter(models), None)

    console = Console(stderr=True, highlight=False)
    bar = progress_bar(title, console, progress)

    def skip(name: str, e: Exception) -> None:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        skipped.append({"file": name, "reason": reason})
        console.print(f"warning: skipped {name}: {reason}", markup=False, soft_wrap=True)
        bar.advance(task)

    def collect(name: str, job: Future, photo: ColourisedPhoto) -> None:
        try:
            reference, per_model = job.result()
        except ValueError as e:  # a photo too small for SSIM
            skip(name, e)
            return
        for label, scored in per_model.items():
            timing = {"colorize_seconds": photo.seconds[label], "grey_seconds": photo.grey_seconds}
            rows[label].append({"file": name, **scored, **reference, **timing})
        if len(panels) < keep:
            panels.append(
                (
                    name,
                    thumbnail(photo.grey, GRID_HEIGHT),
                    {label: thumbnail(p, GRID_HEIGHT) for label, p in photo.preds.items()},
                    thumbnail(photo.orig, GRID_HEIGHT),
                )
            )
        if first is not None:
            done = rows[first]
            status = f"PSNR {_mean(done, 'psnr'):.2f} dB (grey {_mean(done, 'grey_psnr'):.2f})"
            bar.update(task, status=status if len(models) == 1 else f"{first}: {status}")
        bar.advance(task)

    # Two threads: this one colourises photo i+1 (torch, one intra-op thread) while a worker scores photo i
    # (scikit-image, which dominates the time); torch with as many intra-op threads as cores would
    # oversubscribe them.
    with ExitStack() as stack:
        for model in {id(c.model): c.model for c, _ in models.values()}.values():
            stack.enter_context(eval_mode(model))
        stack.enter_context(torch_threads(1))
        stack.enter_context(bar)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=MAX_THREADS - 1))
        task = bar.add_task(title, total=len(paths), status="")
        pending = None
        for path in paths:
            name = display_name(path, root)
            try:
                photo = colourise_photo(models, path, sizes)
            except (ImageError, ValueError) as e:  # unreadable file
                skip(name, e)
                continue
            job = pool.submit(_score_all, photo)
            if pending is not None:
                collect(*pending)
            pending = (name, job, photo)
        if pending is not None:
            collect(*pending)
    return PhotoScores(rows, skipped, panels)


def progress_bar(title: str, console: Console, enabled: bool = True) -> Progress:
    """The evaluations' rich progress bar: title, bar, n/N, elapsed, remaining, and a status field."""
    return Progress(
        TextColumn(title),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not enabled,
    )


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
        "settings": _settings(size),
        "mean": {k: _mean(per_image, k) for k in _METRICS},
        "grey": {k: _mean(per_image, f"grey_{k}") for k in _METRICS},
        "reference": {"colorfulness": _mean(per_image, "ref_colorfulness")},
        "colorize_seconds_per_image": _round(_mean(per_image, "colorize_seconds"), 4),
        "grey_seconds_per_image": _round(_mean(per_image, "grey_seconds"), 4),
        "skipped": skipped,
        "per_image": per_image,
        "grid": grid,
    }


@dataclass
class ColourisedPhoto:
    """One photo as a saved 8-bit file would hold it: grey baseline, each model's colourisation, the original."""

    grey: np.ndarray
    preds: dict[str, np.ndarray]
    orig: np.ndarray
    seconds: dict[str, float]
    grey_seconds: float


def colourise_photo(models: Mapping[str, Variant], path: Path, sizes: Mapping[str, int]) -> ColourisedPhoto:
    """Read one photo and colourise it once with each model (label -> (Colorizer, temperature), label ->
    working size), timing each call. Raises :class:`polychrome.io.ImageError` for an unreadable file."""
    rgb = load_rgb(path)
    t = time.perf_counter()
    grey = to_uint8(gray_array(rgb))
    grey_seconds = time.perf_counter() - t
    preds, seconds = {}, {}
    for label, (model, temperature) in models.items():
        t = time.perf_counter()
        preds[label] = model.colorize_uint8(rgb, temperature=temperature, size=sizes[label])
        seconds[label] = time.perf_counter() - t
    return ColourisedPhoto(grey, preds, to_uint8(rgb), seconds, grey_seconds)


def _score_all(photo: ColourisedPhoto) -> tuple[dict, dict[str, dict]]:
    """(reference row: size, grey baseline and originals' scores; label -> the model's scores) of one photo
    (numpy and scikit-image only, so it can run beside torch)."""
    per_model = {label: _score_pred(p, photo.orig) for label, p in photo.preds.items()}
    return _score_reference(photo.grey, photo.orig), per_model


def _score_pred(pred: np.ndarray, orig: np.ndarray) -> dict:
    return {
        "psnr": metrics.psnr(pred, orig),
        "ssim": metrics.ssim(pred, orig),
        "colorfulness": metrics.colorfulness(pred),
        "ciede2000": metrics.ciede2000(pred, orig),
    }


def _score_reference(grey: np.ndarray, orig: np.ndarray) -> dict:
    return {
        "height": int(orig.shape[0]),
        "width": int(orig.shape[1]),
        **{f"grey_{k}": v for k, v in _score_pred(grey, orig).items()},
        "ref_colorfulness": metrics.colorfulness(orig),
    }


def comparison_grid(rows: list[tuple[np.ndarray, ...]], gap: int = GRID_GAP) -> Image.Image:
    """Panels (uint8 (h, w, 3) arrays of one height per row) laid out row by row on white, ``gap`` px apart.
    Rows of different widths are left-aligned; the canvas is as wide as the widest row."""
    widths = [sum(p.shape[1] for p in r) + gap * (len(r) - 1) for r in rows]
    heights = [max(p.shape[0] for p in r) for r in rows]
    canvas = Image.new("RGB", (max(widths), sum(heights) + gap * (len(rows) - 1)), "white")
    y = 0
    for r, h in zip(rows, heights):
        x = 0
        for p in r:
            canvas.paste(Image.fromarray(p, "RGB"), (x, y))
            x += p.shape[1] + gap
        y += h + gap
    return canvas


def _settings(size: int) -> dict:
    import skimage

    import polychrome

    return {
        "pipeline": "polychrome.Colorizer at full resolution (model sees L only, at the working size)",
        "grey_baseline": "polychrome.pipeline.gray_array (ab = 0, L kept)",
        "working_size": size,
        "quantisation": "uint8 = floor(clip(x, 0, 1) * 255 + 0.5), as a saved 8-bit file",
        "psnr": {
            "function": "skimage.metrics.peak_signal_noise_ratio",
            "space": "RGB 0-255",
            "data_range": 255,
            "max_db": metrics.PSNR_MAX_DB,
        },
        "ssim": {
            "function": "skimage.metrics.structural_similarity",
            "space": "RGB 0-255",
            "channel_axis": 2,
            "data_range": 255,
            "win_size": metrics.SSIM_WIN_SIZE,
            "gaussian_weights": False,
            "note": "win_size shrinks to the largest odd size that fits photos under 7 px",
        },
        "colorfulness": (
            "Hasler & Suesstrunk 2003 on RGB 0-255 (prediction, grey and original alike): rg = R - G, "
            "yb = (R + G) / 2 - B, sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2), population std"
        ),
        "ciede2000": "mean of skimage.color.deltaE_ciede2000 (kL=kC=kH=1) on skimage.color.rgb2lab (D65, 2 deg)",
        "versions": {
            "polychrome": polychrome.__version__,
            "scikit-image": skimage.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
    }


def _mean(rows: list[dict], key: str) -> float | None:
    if not rows:
        return None
    value = float(np.mean([r[key] for r in rows]))
    return value if math.isfinite(value) else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def thumbnail(u8: np.ndarray, height: int) -> np.ndarray:
    """uint8 (h, w, 3) -> uint8 (height, w * height / h, 3), Lanczos, aspect ratio kept."""
    h, w = u8.shape[:2]
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(u8, "RGB").resize((width, height), Image.Resampling.LANCZOS))


def display_name(path: Path, root: Path) -> str:
    """How a photo is named in reports: its path relative to ``root`` when ``root`` is a folder."""
    try:
        return path.relative_to(root).as_posix() if root.is_dir() else str(path)
    except ValueError:
        return str(path)


@contextmanager
def eval_mode(model: nn.Module):
    """``model`` in eval mode inside the block, its train/eval mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def torch_threads(n: int):
    """torch at ``n`` intra-op threads inside the block, the previous number restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
