"""``polychrome colorize`` at archive scale: one worker of a torchrun / srun run, or one process writing a
manifest (over :mod:`polychrome.pipeline.distributed`). Every worker prints its own failures, one line each;
rank 0 prints the one summary."""

from __future__ import annotations

from pathlib import Path

import typer

from polychrome.cli.common import (
    check_request,
    err_console,
    fail,
    load_colorizer,
    say_error,
    say_note,
    warnings_as_lines,
    with_inference,
)


def colorize_archive(
    inputs: list[str], output: Path, model: str | None, size: int | None, compare: bool, hint_list,
    hint_labels: tuple[str, str], overwrite: bool, device, precision: str, temperature: float | None,
    confidence: bool, manifest: Path | None, world, workers: int = 1, batch_size: int = 1,
    flip_average: bool | None = None, guided_filter=None,
) -> None:  # fmt: skip
    """``device`` is a checked device string (:func:`~polychrome.cli.common.pick_device`); ``cuda`` is spread
    over the node's GPUs by local rank, ``cuda:N`` is that GPU for every worker."""
    from polychrome import hub
    from polychrome.color.hints import HintError
    from polychrome.io import ImageError, check_writable_folder
    from polychrome.pipeline.distributed import LaunchError, colorize_share, join, leave, plan_share

    err = err_console()
    hint_flag, hint_source = hint_labels  # how messages name the hints: (--hints FILE, FILE) or --hint
    if manifest is not None:
        _check_manifest(manifest)
    share = plan_share(inputs, output, world, compare=compare, confidence=confidence)
    if hint_list is not None and share.total > 1:
        raise fail(
            f"{hint_flag}: hints belong to one photo, the inputs hold {share.total}; give exactly one photo"
        )
    if model is None:
        model = "default" if hint_list is None else "hints"
        if model == "hints" and "hints" not in hub.bundled_names() and share.total:
            raise fail(
                "the bundled 'hints' model is not in this installation; pass --model PATH to a trained hint model"
            )
    if share.jobs:
        try:  # once, before the model loads: not one error per photo after all the work
            check_writable_folder(output)
        except ImageError as e:
            raise fail(f"-o {e}") from None
    where = device
    if where == "cuda" and world.size > 1:
        import torch

        # One device per worker on a node; more workers than devices share them round-robin.
        where = f"cuda:{world.local_rank % max(1, torch.cuda.device_count())}"
    colorizer = with_inference(load_colorizer(model, where, precision) if share.jobs else None, flip_average,
                               guided_filter)
    if colorizer is not None:
        check_request(colorizer, model, temperature, confidence, bool(hint_list))
    try:
        join(world)
    except LaunchError as e:
        raise fail(str(e)) from None

    if world.main:
        for msg in share.problems:  # every worker planned them; one says so
            say_error(msg, err)
        for msg in share.notes:
            say_note(msg, err)

    def on_job(job, outcome, failure) -> None:
        if failure is not None:
            hint_fault = isinstance(failure.error, HintError)  # a hint outside this photo
            say_error(f"{hint_source}: {failure.error}" if hint_fault else failure.message, err)

    try:
        with warnings_as_lines(err):
            summary = colorize_share(
                colorizer, share, world, manifest=manifest, model_name=model, on_job=on_job, size=size,
                compare=compare, hints=hint_list, temperature=temperature, overwrite=overwrite, workers=workers,
                batch_size=batch_size,
            )  # fmt: skip
    finally:
        leave(world)
    if world.main:
        note = " (already there; --overwrite to redo them)" if summary.skipped else ""
        workers = f"{summary.workers} worker{'s' if summary.workers > 1 else ''}"
        typer.echo(
            f"{summary.written} written, {summary.skipped} skipped{note}, {summary.failed} failed -> {output} "
            f"({workers}, {summary.seconds:.1f} s, {summary.photos_per_second:.2f} photos/s)"
            + (f"; manifest {manifest}" if manifest is not None else "")
        )
    # Under a launcher a worker exits 0 when the run itself completed: a non-zero exit would make torchrun
    # report a crash (and restart the group); failures are in the summary, the error lines and the manifest.
    if summary.failed and world.size <= 1:
        raise typer.Exit(1)


def _check_manifest(manifest: Path) -> None:
    """One line, before any work, for a manifest that cannot be written."""
    import os

    if manifest.is_dir():
        raise fail(f"--manifest {manifest}: is a folder; give a file name such as run.jsonl")
    try:
        manifest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise fail(f"--manifest {manifest}: cannot make its folder ({e.strerror})") from None
    if not os.access(manifest.parent, os.W_OK | os.X_OK) or (manifest.exists() and not os.access(manifest, os.W_OK)):
        raise fail(f"--manifest {manifest}: cannot be written here (no write permission)")
