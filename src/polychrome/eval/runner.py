"""The one read -> colourise -> score loop behind ``polychrome evaluate`` and ``polychrome benchmark``.

Each photo is read once, made grey once, colourised once per model (a Colorizer and the temperature of its
calls) and scored against its original (:mod:`polychrome.eval.metrics`), on two threads: torch colourises
photo i+1 while a worker scores photo i with scikit-image.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from polychrome.colorizer import Colorizer, as_colorizer
from polychrome.eval import metrics
from polychrome.eval.report import GRID_HEIGHT, GRID_ROWS, thumbnail
from polychrome.io import ImageError, find_images, load_rgb, to_uint8
from polychrome.pipeline import gray_array

#: Threads evaluating at once: one colourises, the rest score.
MAX_THREADS = 2

#: The scores of every prediction (and of the grey baseline).
METRICS = ("psnr", "ssim", "colorfulness", "ciede2000", "green_cast")


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
    panels: list[tuple[str, np.ndarray, dict[str, np.ndarray], np.ndarray]] = []
    first = next(iter(models), None)

    def scored(name: str, photo: ColourisedPhoto, result: tuple[dict, dict[str, dict]]) -> str | None:
        reference, per_model = result
        for label, scores in per_model.items():
            timing = {"colorize_seconds": photo.seconds[label], "grey_seconds": photo.grey_seconds}
            rows[label].append({"file": name, **scores, **reference, **timing})
        if len(panels) < keep:
            panels.append(
                (
                    name,
                    thumbnail(photo.grey, GRID_HEIGHT),
                    {label: thumbnail(p, GRID_HEIGHT) for label, p in photo.preds.items()},
                    thumbnail(photo.orig, GRID_HEIGHT),
                )
            )
        if first is None:
            return None
        done = rows[first]
        status = f"PSNR {mean_of(done, 'psnr'):.2f} dB (grey {mean_of(done, 'grey_psnr'):.2f})"
        return status if len(models) == 1 else f"{first}: {status}"

    skipped = run_photos(
        paths, root, lambda i, path: colourise_photo(models, path, sizes), _score_all, scored,
        [c.model for c, _ in models.values()], title, progress,
    )  # fmt: skip
    return PhotoScores(rows, skipped, panels)


def run_photos(
    paths: list[Path],
    root: Path,
    colourise: Callable[[int, Path], Any],
    score: Callable[[Any], Any],
    scored: Callable[[str, Any, Any], str | None],
    models: list[nn.Module],
    title: str,
    progress: bool = True,
) -> list[dict]:
    """The read -> colourise -> score loop every evaluation runs, on two threads.

    ``colourise(i, path)`` reads and colourises photo i (torch, this thread, one intra-op thread) while a
    worker runs ``score`` on the previous photo's result (numpy and scikit-image, which dominate the time;
    torch with as many intra-op threads as cores would oversubscribe them). ``scored(name, colourised,
    scores)`` collects each photo's result in order and may return a status line for the progress bar.
    ``models`` are in eval mode for the loop (their modes restored after). An unreadable photo (ImageError,
    ValueError from ``colourise``) or one too small to score (ValueError from ``score``) is skipped with a
    one-line warning on stderr. Returns the skipped photos as ``{"file", "reason"}``.
    """
    skipped: list[dict] = []
    console = Console(stderr=True, highlight=False)
    bar = progress_bar(title, console, progress)

    def skip(name: str, e: Exception) -> None:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        skipped.append({"file": name, "reason": reason})
        console.print(f"warning: skipped {name}: {reason}", markup=False, soft_wrap=True)

    def collect(name: str, job: Future, colourised) -> None:
        try:
            result = job.result()
        except ValueError as e:  # a photo too small for SSIM
            skip(name, e)
        else:
            status = scored(name, colourised, result)
            if status is not None:
                bar.update(task, status=status)
        bar.advance(task)

    with ExitStack() as stack:
        for model in {id(m): m for m in models}.values():
            stack.enter_context(eval_mode(model))
        stack.enter_context(torch_threads(1))
        stack.enter_context(bar)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=MAX_THREADS - 1))
        task = bar.add_task(title, total=len(paths), status="")
        pending = None
        for i, path in enumerate(paths):
            name = display_name(path, root)
            try:
                colourised = colourise(i, path)
            except (ImageError, ValueError) as e:  # an unreadable file (HintError is a ValueError too)
                skip(name, e)
                bar.advance(task)
                continue
            job = pool.submit(score, colourised)
            if pending is not None:
                collect(*pending)
            pending = (name, job, colourised)
        if pending is not None:
            collect(*pending)
    return skipped


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
        "green_cast": metrics.green_cast(pred, orig),
    }


def _score_reference(grey: np.ndarray, orig: np.ndarray) -> dict:
    return {
        "height": int(orig.shape[0]),
        "width": int(orig.shape[1]),
        **{f"grey_{k}": v for k, v in _score_pred(grey, orig).items()},
        "ref_colorfulness": metrics.colorfulness(orig),
    }


def mean_of(rows: list[dict], key: str) -> float | None:
    if not rows:
        return None
    value = float(np.mean([r[key] for r in rows]))
    return value if math.isfinite(value) else None


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


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
