"""``polychrome colorize`` (over :mod:`polychrome.pipeline.batch`) and ``polychrome demo``."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from polychrome.cli.common import (
    DEVICE_HELP,
    Precision,
    app,
    check_request,
    err_console,
    fail,
    load_colorizer,
    need_extra,
    pick_device,
    say_error,
    say_note,
    warnings_as_lines,
    guided_filter_option,
    with_inference,
)

#: Sample colour photos shipped inside scikit-image's wheel (no download needed) used by `demo`.
DEMO_SAMPLES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


# --------------------------------------------------------------------------- colorize
def _progress(console: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]colorize"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[name]}", style="dim"),
        console=console,
        # A bar is for people; logs and pipes get the error lines and the summary only.
        disable=not console.is_terminal,
    )


@app.command()
def colorize(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Photos, folders (searched recursively) or globs; - reads one photo from standard input "
            "(written as stdin.EXT, EXT from its format).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o",
            help="Folder for the colour photos; for one photo, also the file to write (result.jpg: format from "
            "its extension), or - to write it to standard output in the input's format.",
            show_default=False,
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Bundled name, export folder, .safetensors file or training checkpoint .pt. "
            "Default: 'default', or 'hints' with --hints.",
            show_default=False,
        ),
    ] = None,
    size: Annotated[int | None, typer.Option(min=8, help="Working size (longest side, px); default: the model's.")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Write grey | colour side by side, as NAME.compare.EXT.")] = False,
    hints: Annotated[
        Path | None,
        typer.Option(
            help='Colour hints for ONE photo, a JSON file: [{"x": 120, "y": 45, "color": "#aa3322"}, ...] in pixels '
            "of the photo (x right, y down); the colour's chroma is used, the photo's lightness kept.",
            show_default=False,
        ),
    ] = None,
    hint: Annotated[
        list[str] | None,
        typer.Option(
            "--hint",
            help="One colour hint for ONE photo: X,Y,#RRGGBB with X, Y in pixels of the photo (as in a hint file; "
            "not fractions), e.g. --hint 120,45,#aa3322. Repeat it for more; added after those of --hints.",
            show_default=False,
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            help="With a hint model: start from this automatic model's result (e.g. default) and let the hints "
            "refine it, as the web page does; without hints the result is that model's.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo outputs that already exist.")] = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    precision: Annotated[
        Precision,
        typer.Option(help="Model arithmetic: fp32, or bf16 autocast + channels_last (faster on CPUs with bf16 units)."),
    ] = Precision.fp32,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Classification models (cicgan): annealed-mean temperature T > 0; lower is more vivid and "
            "patchier (-> the most likely colour), 1 is the plain mean (smooth, greyish). Default: the model "
            "card's (0.30 for the bundled default).",
            show_default=False,
        ),
    ] = None,
    flip_average: Annotated[
        bool | None,
        typer.Option(
            "--flip-average/--no-flip-average",
            help="Also colourise each photo's mirror image and average the two: a little more accurate (README: "
            "about +0.1 dB for the default), twice the model time. Default: as the model's card says (off for the "
            "bundled models).",
            show_default=False,
        ),
    ] = None,
    guided_filter: Annotated[
        str | None,
        typer.Option(
            "--guided-filter",
            metavar="RADIUS,EPS|off",
            help="Smooth the model's colours with a guided filter (the photo's lightness as the guide; radius in "
            "working-grid pixels, eps in squared L units), or 'off'. Default: as the model's card says (radius 5, "
            "eps 100 for the bundled default).",
            show_default=False,
        ),
    ] = None,
    confidence: Annotated[
        bool,
        typer.Option(
            "--confidence",
            help="Also write the model's confidence map (cicgan) beside each output as NAME.confidence.png: "
            "greyscale at the photo's size, white where the model expects its colour to be right.",
        ),
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="Write a JSON Lines manifest: one row per input photo (source, output, status written/skipped/"
            "failed, error, model, seconds, rank, time); a re-run updates it.",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="torch threads per process [default: torch's own].", show_default=False),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Threads that read and write photos while the model runs, so decoding, the model and encoding "
            "overlap (1: each photo start to finish in turn). Not torchrun's worker processes: each of those "
            "has this many. Outputs are the same bytes either way.",
        ),
    ] = 1,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Photos given to the model at once when their working grids have one shape (one size and "
            "orientation). Above 1 a few pixels can differ by a colour level or two from batch size 1 (the "
            "model's float arithmetic in a batch).",
        ),
    ] = 1,
) -> None:
    """Colourise photos at their full resolution into OUTPUT, keeping each input's name and format
    (or, for one photo, into the file OUTPUT names, e.g. -o result.jpg). A .txt input is a list of photos,
    one path per line. In a pipeline, - is standard input (one photo, the only input) and -o - standard
    output (one photo, in its input's format): polychrome colorize - -o - < old.jpg > new.jpg.

    Outputs that already exist are skipped (so re-running finishes an interrupted batch) unless
    --overwrite. A bad photo is reported on one line and the rest still get written; the exit code
    is 1 if any failed. With --hints or --hint (one photo only) the model defaults to the bundled hint model.
    A classification model (cicgan) takes --temperature, and --confidence writes its confidence map
    beside each photo (NAME.confidence.png); any other model answers those with a one-line error.
    Started by torchrun or srun, every worker does its share of the photos and rank 0 prints the summary
    (README: Colourise an archive).
    """
    from dataclasses import replace

    from polychrome import hub
    from polychrome.color.hints import HintError, load_hint_file, parse_hint_text
    from polychrome.io import ImageError, check_writable_folder, is_image_path, unread_photo_format
    from polychrome.pipeline.batch import colorize_batch, confidence_path, plan, plan_stdin

    err = err_console()
    from_stdin, to_stdout = "-" in inputs, str(output) == "-"
    if from_stdin and len(inputs) > 1:
        raise fail("-: standard input is one photo and the only input; give - alone or files and folders")
    if from_stdin and sys.stdin is not None and sys.stdin.isatty():
        raise fail("-: standard input is a terminal; pipe a photo in (polychrome colorize - -o out/ < old.jpg)")
    if to_stdout and sys.stdout is None:
        raise fail("-o -: standard output is closed")
    if to_stdout and sys.stdout.isatty():
        raise fail("-o -: standard output is a terminal, not writing a photo there; redirect it (> new.jpg)")
    to_file = not to_stdout and is_image_path(output) and not output.is_dir()  # -o result.jpg: into that file
    if unread_photo_format(output) and not output.is_dir():
        raise fail(f"-o {output}: polychrome writes JPEG, PNG, WebP, BMP or TIFF photos, not {unread_photo_format(output)}")
    if output.exists() and not output.is_dir() and not to_file and not to_stdout:
        raise fail(f"-o {output}: exists and is not a folder (or a photo file, for one input)")
    if to_stdout and confidence:
        raise fail("-o -: standard output takes the photo only; --confidence needs a folder to write its map into")
    hint_list = None
    try:
        if hints is not None:
            hint_list = load_hint_file(hints)  # its errors name the file
        if hint:
            hint_list = (hint_list or []) + [parse_hint_text(text) for text in hint]
    except HintError as e:
        raise fail(str(e)) from None
    hint_flag, hint_source = hint_labels(hints, bool(hint))
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    gf = guided_filter_option(guided_filter)
    where = pick_device(device)  # before any work: --device banana, cuda:7 on a machine with two GPUs
    world = _world()
    if manifest is not None or world.size > 1:  # a worker of a launched run, or a run that keeps a manifest
        from polychrome.cli.archive import colorize_archive

        if to_file or to_stdout:
            raise fail(f"-o {output}: a run with --manifest or several workers writes into a folder; give a folder")
        if from_stdin:
            raise fail("-: a run with --manifest or several workers reads photo files; give files or folders")
        if base is not None:
            raise fail("--base is for one photo with hints; it does not combine with --manifest or several workers")

        return colorize_archive(inputs, output, model, size, compare, hint_list, (hint_flag, hint_source), overwrite,
                                where, precision.value, temperature, confidence, manifest, world,
                                workers=workers, batch_size=batch_size, flip_average=flip_average,
                                guided_filter=gf)  # fmt: skip
    notes: list[str] = []
    # Standard output has no folder: os.devnull stands in for one, which no input is or holds.
    out_dir = Path(os.devnull) if to_stdout else output.parent if to_file else output
    if from_stdin:
        data = sys.stdin.buffer.read() if sys.stdin is not None else b""  # None: closed (<&-), as empty
        jobs, problems = plan_stdin(data, out_dir, compare=compare, confidence=confidence)
    else:
        jobs, problems = plan(inputs, out_dir, compare=compare, confidence=confidence, notes=notes)
    if to_file and len(jobs) > 1:
        raise fail(f"-o {output}: names one photo file, but the inputs hold {len(jobs)} photos; give a folder")
    if to_stdout and len(jobs) > 1:
        raise fail(f"-o -: standard output takes one photo, but the inputs hold {len(jobs)}; give a folder")
    if to_file and jobs:
        jobs = [replace(jobs[0], dst=output, confidence=confidence_path(output) if confidence else None)]
    if jobs and not to_stdout:
        try:  # once, before the model loads: not one error per photo after all the work
            check_writable_folder(output.parent if to_file else output)
        except ImageError as e:
            raise fail(f"-o {e}") from None
    if hint_list is not None and len(jobs) > 1:
        raise fail(f"{hint_flag}: hints belong to one photo, the inputs hold {len(jobs)}; give exactly one photo")
    if model is None:
        model = "default" if hint_list is None and base is None else "hints"
        if model == "hints" and "hints" not in hub.bundled_names() and jobs:
            raise fail(
                "the bundled 'hints' model is not in this installation (polychrome/weights/hints.safetensors "
                "is missing); pass --model PATH to a trained hint model"
            )
    if confidence and hint_list:
        raise fail("--confidence is for automatic colourisation; use it without --hints")
    colorizer = with_inference(load_colorizer(model, where, precision.value) if jobs else None, flip_average, gf)
    if colorizer is not None:
        check_request(colorizer, model, temperature, confidence, bool(hint_list))
        if base is not None:
            from polychrome.colorizer import RefinedColorizer

            try:
                base_colorizer = with_inference(load_colorizer(base, where, precision.value), flip_average, gf)
                colorizer = RefinedColorizer(colorizer, base_colorizer)
            except ValueError as e:
                raise fail(f"--base {base}: {e}") from None

    for msg in notes:
        say_note(msg, err)
    for msg in problems:
        say_error(msg, err)
    with _progress(err) as bar, warnings_as_lines(err):
        task = bar.add_task("colorize", total=len(jobs), name="")

        def on_job(job, outcome, failure) -> None:
            if failure is not None:
                if isinstance(failure.error, HintError):  # a hint outside this photo
                    say_error(f"{hint_source}: {failure.error}", err)
                else:
                    say_error(failure.message, err)
            bar.update(task, advance=1, name=job.src.name)

        args = dict(size=size, compare=compare, hints=hint_list, temperature=temperature)
        if to_stdout:
            report = _colorize_to_stdout(colorizer, jobs, on_job, **args)
        else:
            report = colorize_batch(colorizer, jobs, overwrite=overwrite, on_job=on_job, workers=workers,
                                    batch_size=batch_size, **args)  # fmt: skip
    written, skipped, failed = len(report.written), len(report.skipped), len(problems) + len(report.failed)
    note = " (already there; --overwrite to redo them)" if skipped else ""
    # With -o -, standard output holds the photo's bytes and nothing else.
    typer.echo(f"{written} written, {skipped} skipped{note}, {failed} failed -> {'<stdout>' if to_stdout else output}",
               err=to_stdout)  # fmt: skip
    if failed:
        raise typer.Exit(1)


def _colorize_to_stdout(colorizer, jobs, on_job, **kw):
    """The one photo of ``jobs`` (or none) onto standard output, in the format its output file would have
    (its output name's extension: the input's, or for standard input and a file named without one the format
    its bytes hold, as ``plan`` names it), encoded whole before a byte is written, so a failure writes nothing."""
    from polychrome.io import image_format
    from polychrome.pipeline.batch import BatchReport, Failure, colorize_file

    report = BatchReport()
    for job in jobs:
        buf = io.BytesIO()
        buf.name = "<stdout>"
        try:
            colorize_file(colorizer, job.source(), buf, fmt=image_format(job.dst), **kw)
        except Exception as e:  # noqa: BLE001 -- one line, as a batch reports a failed photo
            failure = Failure(job.src, e.with_traceback(None))
        else:
            _write_stdout(buf.getbuffer())
            report.written.append(job)
            on_job(job, "written", None)
            continue
        report.failed.append(failure)
        on_job(job, "failed", failure)
    return report


def _write_stdout(data) -> None:
    """``data`` onto standard output as bytes, flushed. A reader that went away (``| head -c 100``) is a
    one-line error, not a traceback at exit."""
    out, view = sys.stdout.buffer, memoryview(data)
    try:
        sys.stdout.flush()  # anything already in the text layer first (nothing, by design)
        while view:  # a pipe can take part of a large write; the rest, or the broken pipe, comes next
            view = view[out.write(view) :]
        out.flush()
    except BrokenPipeError:
        # Python would flush stdout again at exit and print the same error: point it at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise fail("-o -: standard output was closed before the photo was written (its reader stopped)", code=1)


def hint_labels(hints_file: Path | None, options: bool) -> tuple[str, str]:
    """How messages name the hints given: (the flags, e.g. ``--hints h.json``; their source, e.g. ``h.json``)."""
    flags, sources = [], []
    if hints_file is not None:
        flags.append(f"--hints {hints_file}")
        sources.append(str(hints_file))
    if options:
        flags.append("--hint")
        sources.append("--hint")
    return " and ".join(flags), " and ".join(sources)


def _world():
    from polychrome.pipeline.distributed import LaunchError, world_from_env

    try:
        return world_from_env()
    except LaunchError as e:
        raise fail(str(e)) from None


# --------------------------------------------------------------------------- demo
def _demo_sources() -> list[Path]:
    import skimage.data

    root = Path(skimage.data.__file__).parent
    return [root / n for n in DEMO_SAMPLES if (root / n).is_file()]


@app.command()
def demo(
    output: Annotated[Path, typer.Argument(help="Folder for the demo photos.", show_default=False)],
    model: Annotated[str, typer.Option(help="Bundled name, export folder, .safetensors file, checkpoint .pt or ONNX graph (.onnx or its export folder).")] = "default",
    size: Annotated[int | None, typer.Option(min=8, help="Working size (longest side, px); default: the model's.")] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
) -> None:
    """Colourise scikit-image's sample photos: NAME_original / NAME_grey / NAME_colour .png in OUTPUT."""
    need_extra("eval", "demo", ("skimage",))  # the sample photos come with scikit-image
    from polychrome.io import ImageError, open_image, pil_to_rgb_array, rgb_array_to_pil, save_image_atomic
    from polychrome.pipeline import colorize_file, gray_array

    colorizer = load_colorizer(model, pick_device(device))
    sources = _demo_sources()
    if not sources:
        raise fail("scikit-image's sample photos are not installed (skimage/data/*.png)", code=1)
    written = []
    try:
        for src in sources:
            name = src.stem
            rgb, _ = pil_to_rgb_array(open_image(src))
            original, grey, colour = (output / f"{name}_{kind}.png" for kind in ("original", "grey", "colour"))
            save_image_atomic(rgb_array_to_pil(rgb), original)
            save_image_atomic(rgb_array_to_pil(gray_array(rgb)), grey)
            # From the grey file, through the very path `polychrome colorize` takes.
            colorize_file(colorizer, grey, colour, size=size)
            written.append(name)
    except ImageError as e:
        raise fail(str(e), code=1) from None
    typer.echo(f"colourised {len(written)} sample photos ({', '.join(written)}) into {output}/")
    typer.echo(f"  each as NAME_original.png (true colour), NAME_grey.png (input), NAME_colour.png (polychrome, model {model})")
