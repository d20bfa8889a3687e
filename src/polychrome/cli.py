"""The ``polychrome`` command line: colorize, train, export, models, evaluate, benchmark, report,
benchmark-speed, demo.

Every mistake a person can make (a missing file, a corrupt photo, a bad model path, an unknown
config key) ends as ONE line on stderr and a non-zero exit code, never a traceback:

    exit 0  everything asked for was done
    exit 1  some photos failed (the rest were still written), or a run failed
    exit 2  the command could not start: bad model, bad config, bad option
"""

from __future__ import annotations

import importlib
import logging
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    name="polychrome",
    help="Colourise black-and-white photographs.",
    no_args_is_help=True,
    add_completion=False,
    # Locals of a colourisation frame are whole tensors and images: never print them.
    pretty_exceptions_show_locals=False,
)

#: Sample colour photos shipped inside scikit-image's wheel (no download needed) used by `demo`.
DEMO_SAMPLES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


def _err_console() -> Console:
    # Made per call, not at import: test runners and rich's progress swap sys.stderr.
    return Console(stderr=True, highlight=False)


def _say_error(message: str, console: Console | None = None) -> None:
    """One line on stderr; soft_wrap so rich never breaks a long path across lines."""
    (console or _err_console()).print(Text(f"error: {message}", style="red"), soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _say_error(message)
    return typer.Exit(code)


def _pick_device(device: Device) -> str:
    import torch

    if device is Device.auto:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device is Device.cuda and not torch.cuda.is_available():
        raise _fail("--device cuda: no CUDA device is available to PyTorch here")
    return device.value


def _load(spec: str, device: str, precision: str = "fp32"):
    """A Colorizer for --model, with a one-line error (exit 2) for anything a person can get wrong."""
    from polychrome import hub
    from polychrome.colorizer import Colorizer

    if spec == "default" and "default" not in hub.bundled_names():
        raise _fail(
            "the bundled 'default' model is not in this installation (polychrome/weights/default.safetensors "
            "is missing); train one and pass --model PATH"
        )
    try:
        return Colorizer.from_pretrained(spec, precision=precision, device=device)
    except hub.ModelLoadError as e:
        raise _fail(f"--model {e}") from None


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
    inputs: Annotated[list[str], typer.Argument(help="Photos, folders (searched recursively) or globs.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the colour photos.", show_default=False)],
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
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo outputs that already exist.")] = False,
    device: Annotated[Device, typer.Option(help="Where the model runs.")] = Device.auto,
    precision: Annotated[
        Precision,
        typer.Option(help="Model arithmetic: fp32, or bf16 autocast + channels_last (faster on CPUs with bf16 units)."),
    ] = Precision.fp32,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Classification models (cicgan): annealed-mean temperature T > 0; lower is more vivid and "
            "patchier (-> the most likely colour), 1 is the plain mean (smooth, greyish). Default: the model's (0.38).",
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
) -> None:
    """Colourise photos at their full resolution into OUTPUT, keeping each input's name and format.

    Outputs that already exist are skipped (so re-running finishes an interrupted batch) unless
    --overwrite. A bad photo is reported on one line and the rest still get written; the exit code
    is 1 if any failed. With --hints (one photo only) the model defaults to the bundled hint model.
    A classification model (cicgan) takes --temperature, and --confidence writes its confidence map
    beside each photo (NAME.confidence.png); any other model answers those with a one-line error.
    """
    from polychrome import hub
    from polychrome.color.hints import HintError, load_hint_file
    from polychrome.pipeline.batch import colorize_batch, plan

    err = _err_console()
    if output.exists() and not output.is_dir():
        raise _fail(f"-o {output}: exists and is not a folder")
    hint_list = None
    if hints is not None:
        try:
            hint_list = load_hint_file(hints)  # its errors name the file
        except HintError as e:
            raise _fail(str(e)) from None
    jobs, problems = plan(inputs, output, compare=compare, confidence=confidence)
    if hint_list is not None and len(jobs) > 1:
        raise _fail(f"--hints {hints}: hints belong to one photo, the inputs hold {len(jobs)}; give exactly one photo")
    if model is None:
        model = "default" if hints is None else "hints"
        if model == "hints" and "hints" not in hub.bundled_names() and jobs:
            raise _fail(
                "the bundled 'hints' model is not in this installation (polychrome/weights/hints.safetensors "
                "is missing); pass --model PATH to a trained hint model"
            )
    if confidence and hint_list:
        raise _fail("--confidence is for automatic colourisation; use it without --hints")
    colorizer = _load(model, _pick_device(device), precision.value) if jobs else None
    if colorizer is not None:
        try:
            colorizer.decoding(temperature)
        except ValueError as e:
            raise _fail(f"--temperature: {e}") from None
        if confidence:
            try:
                colorizer.check_confidence()
            except ValueError as e:
                raise _fail(f"--confidence: {e}") from None
        if hint_list and not colorizer.card.takes_hints:
            raise _fail(
                f"model {model} cannot use colour hints; use a hint model such as 'hints' "
                "(polychrome colorize --hints FILE uses it by default)"
            )

    for msg in problems:
        _say_error(msg, err)
    with _progress(err) as bar:
        task = bar.add_task("colorize", total=len(jobs), name="")

        def on_job(job, outcome, failure) -> None:
            if failure is not None:
                if isinstance(failure.error, HintError):  # a hint outside this photo
                    _say_error(f"{hints}: {failure.error}", err)
                else:
                    _say_error(failure.message, err)
            bar.update(task, advance=1, name=job.src.name)

        report = colorize_batch(
            colorizer, jobs, size=size, compare=compare, hints=hint_list, temperature=temperature,
            overwrite=overwrite, on_job=on_job,
        )  # fmt: skip
    written, skipped, failed = len(report.written), len(report.skipped), len(problems) + len(report.failed)
    note = " (already there; --overwrite to redo them)" if skipped else ""
    typer.echo(f"{written} written, {skipped} skipped{note}, {failed} failed -> {output}")
    if failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- train
def _setup_logging() -> None:
    from rich.logging import RichHandler

    # Under torchrun only rank 0 talks; the others would repeat every line.
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    console = Console(stderr=True)
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        # Log files (nohup, SLURM) want one unwrapped, timestamped line per record.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("polychrome").setLevel(level)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Experiment config, .toml or .yaml.", show_default=False)],
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE settings that replace the file's.", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT_DIR/last.pt.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar (for logs).")] = False,
) -> None:
    """Train a colouriser. Works as is under `torchrun --nproc_per_node N -m polychrome train ...`.

    The config's `trainer` key picks the trainer: "default" (regression and hint models) or "gan"
    (the cicgan family: classification losses, then the PatchGAN critic; see configs/cicgan.toml)."""
    from polychrome.io import ImageError
    from polychrome.models import list_models
    from polychrome.train import ConfigError, load_config
    from polychrome.train import run as run_training

    _setup_logging()
    try:
        cfg = load_config(config, overrides or [])  # its `trainer` key picks the config class and trainer
    except ConfigError as e:
        raise _fail(str(e)) from None
    if cfg.model not in list_models():
        raise _fail(f"model: unknown architecture {cfg.model!r}; registered: {', '.join(list_models())}")
    try:
        summary = run_training(cfg, resume=resume, progress=not no_progress)
    except ConfigError as e:
        raise _fail(str(e)) from None
    except (ImageError, FileNotFoundError, ValueError) as e:
        # Set-up problems a person can fix: no data, too few photos for a batch, nothing to resume.
        if os.environ.get("POLYCHROME_DEBUG"):
            raise
        raise _fail(str(e).splitlines()[0] if str(e) else type(e).__name__, code=1) from None
    if os.environ.get("RANK", "0") == "0":
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items())
        typer.echo(f"done: {shown}; checkpoints in {cfg.out_dir}")


# --------------------------------------------------------------------------- export
@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Training checkpoint .pt, or a run folder (uses best.pt).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write model.safetensors + config.json.", show_default=False)],
    half: Annotated[bool, typer.Option("--half", help="Store the weights as fp16 (half the size).")] = False,
    infer_size: Annotated[int | None, typer.Option(min=8, help="Working size to record (longest side, px).")] = None,
) -> None:
    """Turn a training checkpoint into release weights (EMA weights, safetensors + JSON)."""
    from polychrome import hub

    if checkpoint.is_dir():
        picked = next((checkpoint / n for n in ("best.pt", "last.pt") if (checkpoint / n).is_file()), None)
        if picked is None:
            raise _fail(f"{checkpoint}: a folder without best.pt or last.pt")
        checkpoint = picked
    if not checkpoint.is_file():
        raise _fail(f"{checkpoint}: no such checkpoint file")
    try:
        out = hub.export_checkpoint(checkpoint, output, half=half, infer_size=infer_size)
    except hub.ModelLoadError as e:
        raise _fail(str(e)) from None
    import json

    meta = json.loads((out / "config.json").read_text())
    weights = out / "model.safetensors"
    typer.echo(f"{weights}  ({weights.stat().st_size / 1e6:.1f} MB, {'fp16' if half else 'fp32'})")
    typer.echo(f"{out / 'config.json'}  (model {meta['model']}, infer_size {meta['infer_size']})")
    typer.echo(f"use it with: polychrome colorize PHOTOS -o OUT --model {out}")


# --------------------------------------------------------------------------- models
@app.command()
def models() -> None:
    """List the registered architectures and the bundled trained weights."""
    import json
    from importlib import resources

    from polychrome import hub
    from polychrome.models import list_models

    out = Console(highlight=False)
    out.print("[bold]architectures[/] (polychrome.create_model(NAME), train with model = NAME):")
    for name in list_models():
        out.print(f"  {name}", soft_wrap=True)
    names = hub.bundled_names()
    out.print("[bold]bundled weights[/] (--model NAME, polychrome.load_model(NAME)):")
    if not names:
        out.print("  none in this installation", soft_wrap=True)
    for name in names:
        side = resources.files("polychrome") / "weights" / f"{name}.json"
        try:
            meta = json.loads(side.read_text())
            about = f"{meta.get('model', '?')}, infer_size {meta.get('infer_size', '?')}"
        except (OSError, ValueError):
            about = "metadata missing"
        out.print(f"  {name}  ({about})", soft_wrap=True)


# --------------------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Bundled name, export folder, .safetensors file or checkpoint .pt.", show_default=False)],
    data: Annotated[Path, typer.Option(help="Folder (or .txt list) of colour photos to score against.", show_default=False)],
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the summary JSON.", show_default=False)],
    size: Annotated[int | None, typer.Option(min=8, help="Working size (longest side, px); default: the model's.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Score only the first N photos.")] = None,
    grid: Annotated[Path | None, typer.Option(help="Also write a grey | predicted | true grid PNG here.")] = None,
    hints: Annotated[
        str | None,
        typer.Option(
            help="Hint counts, e.g. 0,1,2,5,10,20,50,100,200: score a hint model with that many hints sampled "
            "from the true colours (PSNR and SSIM per count).",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="With --hints: write the PSNR/SSIM-vs-hints plot PNG here.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="With --hints: photo i's hints are drawn with seed + i.")] = 0,
    temperature: Annotated[
        str | None,
        typer.Option(
            help="Classification models (cicgan): annealed-mean temperature(s), e.g. 0.1,0.38,1.0: every "
            "photo is colourised at each, beside one grey baseline (the JSON's mean is the first's).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score a model on colour photos (turned grey, colourised, compared with the truth).

    With --hints, score a hint model once per hint count instead (hints sampled from each photo's true
    colours, nested and reproducible), and optionally plot the curve. With --temperature T1,T2,..., score
    a classification model at each decoding temperature in one run.
    """
    from polychrome import hub
    from polychrome.io import ImageError

    if hints is not None:
        if temperature is not None:
            raise _fail("--temperature applies to classification models; --hints scores a hint model")
        _evaluate_hints(model, data, json_path, size, limit, grid, hints, plot, seed)
        return
    if plot is not None:
        raise _fail("--plot draws the hint curve; it needs --hints COUNTS")
    temperatures = None if temperature is None else _parse_temperatures(temperature)
    evaluation = _evaluation_module("polychrome.evaluate")
    try:
        summary = evaluation.run_evaluation(
            str(model), str(data), str(json_path), size=size, limit=limit,
            grid_path=str(grid) if grid else None, progress=_err_console().is_terminal,
            temperatures=temperatures,
        )
    except hub.ModelLoadError as e:
        raise _fail(f"--model {e}") from None
    except (ImageError, FileNotFoundError) as e:
        raise _fail(str(e)) from None
    except ValueError as e:  # --temperature on a regressor, or a repeated temperature
        raise _fail(f"--temperature {temperature}: {e}") from None
    columns = {"model": summary.get("mean") or {}}
    if summary.get("by_temperature"):
        columns = {f"T = {t['temperature']:g}": t["mean"] or {} for t in summary["by_temperature"]}
    grey, reference = summary.get("grey") or {}, summary.get("reference") or {}
    table = Table(title=f"{model} on {data} ({summary.get('n', '?')} photos)")
    table.add_column("metric")
    for heading in columns:
        table.add_column(heading, justify="right")
    table.add_column("grey baseline", justify="right")
    if reference:
        table.add_column("originals", justify="right")
    keys = list(dict.fromkeys([k for mean in columns.values() for k in mean] + list(grey)))
    for key in keys:
        row = [key, *(_fmt(mean.get(key)) for mean in columns.values()), _fmt(grey.get(key))]
        table.add_row(*row, *([_fmt(reference.get(key))] if reference else []))
    Console(highlight=False).print(table)
    if summary.get("skipped"):
        typer.echo(f"{len(summary['skipped'])} unreadable photos skipped (listed in the JSON)")
    typer.echo(f"summary written to {json_path}")


def _parse_temperatures(text: str) -> list[float]:
    """``"0.1,0.38,1"`` -> [0.1, 0.38, 1.0]; a one-line usage error for what is not a list of numbers (their
    range is checked by the model card, :meth:`polychrome.models.card.ModelCard.decoding`)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise _fail(f"--temperature {text}: give numbers > 0 separated by commas, e.g. 0.1,0.38,1.0")
    return values


def _evaluate_hints(model: str, data: Path, json_path: Path, size, limit, grid, hints: str, plot, seed: int) -> None:
    """``evaluate --hints``: the PSNR / SSIM-vs-hints curve (polychrome.evaluate_hints)."""
    from polychrome import hub
    from polychrome.color.hints import HintError
    from polychrome.io import ImageError

    if grid is not None:
        raise _fail("--grid is not available with --hints (use --plot for the curve)")
    evaluation = _evaluation_module("polychrome.evaluate_hints")
    try:
        counts = evaluation.parse_counts(hints)
    except ValueError as e:
        raise _fail(f"--hints {hints}: {e}") from None
    try:
        summary = evaluation.run_hint_evaluation(
            str(model), str(data), counts, json_path=str(json_path), plot_path=str(plot) if plot else None,
            size=size, limit=limit, seed=seed, progress=_err_console().is_terminal,
        )
    except hub.ModelLoadError as e:
        raise _fail(f"--model {e}") from None
    except HintError as e:
        raise _fail(f"--hints {hints}: {e}") from None
    except (ImageError, FileNotFoundError) as e:
        raise _fail(str(e)) from None
    table = Table(title=f"{model} on {data} ({summary['n']} photos, hints sampled from the true colours, seed {seed})")
    table.add_column("hints", justify="right")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    for point in summary["curve"]:
        table.add_row(str(point["hints"]), _fmt(point["psnr"]), _fmt(point["ssim"]))
    table.add_row("grey baseline", _fmt(summary["grey"]["psnr"]), _fmt(summary["grey"]["ssim"]))
    Console(highlight=False).print(table)
    if summary.get("skipped"):
        typer.echo(f"{len(summary['skipped'])} unreadable photos skipped (listed in the JSON)")
    typer.echo(f"summary written to {json_path}" + (f", curve to {plot}" if summary.get("plot") else ""))


def _evaluation_module(name: str):
    """Import an evaluation module lazily (it pulls in scikit-image); a broken install is a one-line error."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise _fail(f"evaluation is not available in this installation ({e})") from None


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- benchmark
def _parse_models(models: str) -> list[str]:
    specs = [m.strip() for m in models.split(",") if m.strip()]
    if not specs:
        raise _fail("--models: give at least one model (comma-separated)")
    return specs


def _table(title: str, rows: list[tuple[str, dict]], columns) -> Table:
    from polychrome.benchmark import format_value

    table = Table(title=title)
    table.add_column("")
    for _, _, head, _ in columns:
        table.add_column(head, justify="right")
    for name, row in rows:
        table.add_row(name, *(format_value(k, row.get(k)) for k, _, _, _ in columns))
    return table


_BENCH_HELP = {
    "models": "Comma-separated models: bundled names, export folders, .safetensors files, checkpoints .pt.",
    "data": "Photo set(s) with colour originals: folders or .txt lists; several may follow one --data.",
    "out": "Folder for results.json, report.md, grids/ and params/.",
    "size": "Working size (longest side, px) for every model; default: each model's.",
    "historical": "Black-and-white photos without ground truth, for a grey | models grid "
    "(none by default).",
    "params": "Write each model's parameter report into OUT/params/.",
}


@app.command()
def benchmark(
    models: Annotated[str, typer.Option(help=_BENCH_HELP["models"], show_default=False)],
    data: Annotated[list[Path], typer.Option(help=_BENCH_HELP["data"], show_default=False)],
    out: Annotated[Path, typer.Option(help=_BENCH_HELP["out"], show_default=False)],
    # `--data A B`: click options take one value each, so the photo sets after the first arrive here.
    more_data: Annotated[list[Path] | None, typer.Argument(hidden=True, show_default=False)] = None,
    size: Annotated[int | None, typer.Option(min=8, help=_BENCH_HELP["size"])] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Score only the first N photos of each set.")] = None,
    historical: Annotated[Path | None, typer.Option(help=_BENCH_HELP["historical"], show_default=False)] = None,
    no_historical: Annotated[bool, typer.Option("--no-historical", help="No historical grid (the default).")] = False,
    grid_rows: Annotated[int, typer.Option(min=1, help="Photos per grid.")] = 6,
    params: Annotated[bool, typer.Option("--params/--no-params", help=_BENCH_HELP["params"])] = True,
) -> None:
    """Score several models and the grey baseline on photo sets in one run: JSON, Markdown report, image grids.

    Each photo is colourised once per model; the same results are scored and drawn in the grids.
    """
    from polychrome import benchmark as bench
    from polychrome.io import ImageError

    specs = _parse_models(models)
    sets = [*data, *(more_data or [])]
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out}: exists and is not a folder")
    for d in sets:
        if not d.exists():
            raise _fail(f"--data {d}: no such file or folder")
    if no_historical:
        historical = None
    elif historical is not None and not historical.exists():
        raise _fail(f"--historical {historical}: no such file or folder")
    loaded = {spec: _load(spec, "cpu") for spec in specs}
    try:
        result = bench.run_benchmark(
            loaded, [str(d) for d in sets], out, size=size, limit=limit,
            historical=str(historical) if historical is not None else None,
            grid_rows=grid_rows, params=params, progress=_err_console().is_terminal,
        )
    except (ImageError, ValueError) as e:
        raise _fail(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    console = _out_console()
    for name, entry in result["sets"].items():
        console.print(_table(f"{name} ({entry['n']} photos)", bench.table_rows(entry), bench.COLUMNS))
        ref = entry["reference"].get("colorfulness")
        console.print(f"originals' colourfulness: {bench.format_value('colorfulness', ref)}", soft_wrap=True)
    typer.echo(f"report: {out / 'report.md'}  (results.json, grids/ beside it)")


# --------------------------------------------------------------------------- report
@app.command()
def report(
    model: Annotated[
        str,
        typer.Option(help="Bundled name, export folder, .safetensors, .pt, or an architecture (random weights).",
                     show_default=False),
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for params.json, params.md and weight_histograms.png.", show_default=False)
    ],
) -> None:
    """Where a model's parameters are: count per layer and module, the largest layers' share, weight histograms."""
    from polychrome import hub
    from polychrome.models import create_model, list_models
    from polychrome.param_report import write_parameter_report

    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out}: exists and is not a folder")
    if model in list_models() and model not in hub.bundled_names() and not Path(model).exists():
        net, title = create_model(model), f"{model} (random weights: counts only)"
    else:
        net, title = _load(model, "cpu").model, model
    rep = write_parameter_report(net, out, title=title)
    table = Table(title=f"{title}: {rep['total']:,} parameters")
    table.add_column("largest layers")
    table.add_column("type")
    table.add_column("parameters", justify="right")
    table.add_column("share", justify="right")
    table.add_column("cumulative", justify="right")
    for x in rep["largest"]:
        table.add_row(x["name"], x["type"], f"{x['parameters']:,}", f"{x['share']:.1%}", f"{x['cumulative_share']:.1%}")
    Console(highlight=False).print(table)
    typer.echo(f"report: {out / 'params.md'}  (params.json, weight_histograms.png beside it)")


# --------------------------------------------------------------------------- benchmark-speed
def _parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        try:
            w, h = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise _fail(f"--sizes: {part!r} is not WIDTHxHEIGHT") from None
        if w < 1 or h < 1:
            raise _fail(f"--sizes: {part!r} must be positive")
        sizes.append((w, h))
    return sizes


@app.command("benchmark-speed")
def benchmark_speed(
    model: Annotated[str, typer.Option(help="Bundled name, export folder, .safetensors file or checkpoint .pt.")] = "default",
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per configuration (after the warm-up).")] = 5,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first.")] = 1,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads [default: torch's own].", show_default=False)
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results here.", show_default=False)
    ] = None,
    sizes: Annotated[str | None, typer.Option(hidden=True, help="WxH,WxH photo sizes (tests).")] = None,
) -> None:
    """Time the model end to end on this machine (photo file in, colour file out): a 256x256 image and a
    12-megapixel photo, fp32 against bf16 autocast + channels_last, with peak memory and where the time goes."""
    from polychrome import speed

    _load(model, "cpu")  # a missing or broken model is one line now, not a worker's traceback later
    size_list = _parse_sizes(sizes) if sizes else list(speed.SIZES)
    err = _err_console()
    with err.status("timing") as status:
        try:
            result = speed.run_speed(
                model, repeats=repeats, warmup=warmup, sizes=size_list, threads=threads,
                on_start=lambda what: status.update(f"timing {what}"),
            )
        except RuntimeError as e:
            raise _fail(str(e), code=1) from None
    if json_path is not None:
        from polychrome.io import write_json_atomic

        write_json_atomic(result, json_path)
    _print_speed(result)
    if json_path is not None:
        typer.echo(f"results written to {json_path}")


def _out_console() -> Console:
    """stdout for tables; when it is a file or a pipe (a README, a log), wide enough not to cut columns."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 140)
    return console


def _print_speed(result: dict) -> None:
    from polychrome import speed
    from polychrome.sysinfo import describe

    console = _out_console()
    table = Table(title=f"polychrome benchmark-speed: {result['model']}, photo file -> colour file, "
                        f"median of {result['repeats']} runs after {result['warmup']} warm-up")
    for head in ("photo", "precision", "median s", "min-max s", "model s", "pre/post s", "peak RSS MiB (+photo)",
                 "fp32/bf16"):
        table.add_column(head, justify="left" if head in ("photo", "precision") else "right")
    for r in result["runs"]:
        pre_post = sum(r["stages"][k] for k in speed.PRE_POST)
        up = result["speedup"].get(r["size"], {}).get("end_to_end") if r["precision"] == "bf16" else None
        table.add_row(
            r["size"], r["precision"], f"{r['median']:.3f}", f"{r['min']:.3f}-{r['max']:.3f}",
            f"{r['stages']['model']:.3f}", f"{pre_post:.3f}", f"{r['peak_rss_mib']:.0f} (+{r['photo_rss_mib']:.0f})",
            f"{up:.2f}x" if up else "",
        )
    console.print(table)

    stages = Table(title="where the time goes: median seconds per stage")
    stages.add_column("stage")
    for r in result["runs"]:
        stages.add_column(f"{r['size']} {r['precision']}", justify="right")
    stages.add_column("what it covers")
    for key, what in speed.STAGES:
        stages.add_row(key, *(f"{r['stages'][key]:.3f}" for r in result["runs"]), what)
    console.print(stages)
    for r in result["runs"]:
        pre_post = sum(r["stages"][k] for k in speed.PRE_POST)
        lab = r["stages"]["rgb_to_l"] + r["stages"]["lab_to_rgb"]
        top = max(speed.PRE_POST, key=lambda k: r["stages"][k])
        console.print(
            f"{r['size']} {r['precision']}: model {r['stages']['model']:.3f} s ({r['model_share']:.0%}), "
            f"pre/post-processing {pre_post:.3f} s ({pre_post / r['median']:.0%}), of which the full-resolution "
            f"Lab conversions {lab:.3f} s ({lab / r['median']:.0%}); the largest non-model stage is {top}",
            soft_wrap=True,
        )
    info = result["system"]
    console.print(f"machine: {describe(info)}", soft_wrap=True)
    console.print(f"photos: {result['photo_format']}", soft_wrap=True)
    console.print(f"memory: {result['memory_method']}", soft_wrap=True)
    console.print(", ".join(f"{k} {v}" for k, v in info["versions"].items()), soft_wrap=True)


# --------------------------------------------------------------------------- demo
def _demo_sources() -> list[Path]:
    import skimage.data

    root = Path(skimage.data.__file__).parent
    return [root / n for n in DEMO_SAMPLES if (root / n).is_file()]


@app.command()
def demo(
    output: Annotated[Path, typer.Argument(help="Folder for the demo photos.", show_default=False)],
    model: Annotated[str, typer.Option(help="Bundled name, export folder, .safetensors file or checkpoint .pt.")] = "default",
    size: Annotated[int | None, typer.Option(min=8, help="Working size (longest side, px); default: the model's.")] = None,
    device: Annotated[Device, typer.Option(help="Where the model runs.")] = Device.auto,
) -> None:
    """Colourise scikit-image's sample photos: NAME_original / NAME_grey / NAME_colour .png in OUTPUT."""
    from polychrome.io import ImageError, open_image, pil_to_rgb_array, rgb_array_to_pil, save_image_atomic
    from polychrome.pipeline import colorize_file, gray_array

    colorizer = _load(model, _pick_device(device))
    sources = _demo_sources()
    if not sources:
        raise _fail("scikit-image's sample photos are not installed (skimage/data/*.png)", code=1)
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
        raise _fail(str(e), code=1) from None
    typer.echo(f"colourised {len(written)} sample photos ({', '.join(written)}) into {output}/")
    typer.echo(f"  each as NAME_original.png (true colour), NAME_grey.png (input), NAME_colour.png (polychrome, model {model})")


# --------------------------------------------------------------------------- palette
palette_app = typer.Typer(help="ab palettes (bins, prior, rebalancing weights) for classification models.",
                          no_args_is_help=True)
app.add_typer(palette_app, name="palette")


class PaletteMethod(str, Enum):
    kmeans = "kmeans"
    grid = "grid"


@palette_app.command("build")
def palette_build(
    data: Annotated[Path, typer.Argument(help="A folder of colour photos (searched recursively) or a .txt list.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The palette file to write (.safetensors).")],
    bins: Annotated[int, typer.Option(help="K-means: number of bins Q.", min=2)] = 313,
    method: Annotated[PaletteMethod, typer.Option(help="kmeans (Q centres) or grid (the cells that occur).")] = (
        PaletteMethod.kmeans
    ),
    grid: Annotated[float, typer.Option(help="grid: cell side in CIE ab units.", min=1.0)] = 10.0,
    samples_per_photo: Annotated[int, typer.Option(help="K-means: pixels drawn per photo.", min=1)] = 256,
    max_photos: Annotated[int, typer.Option(help="Use a seeded random subset of this many photos (0: all).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the subset, the pixel draws and the k-means init.")] = 0,
) -> None:
    """Build an ab palette from photos: bins, smoothed prior P(q) and rebalancing weights, in one file."""
    import random

    from polychrome.color.quantize import build_palette
    from polychrome.io import IMAGE_EXTENSIONS, ImageError, find_images

    try:
        paths = find_images(data)
    except ImageError as e:
        raise _fail(str(e)) from None
    if not paths:
        raise _fail(f"{data}: no photos found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    if 0 < max_photos < len(paths):
        paths = sorted(random.Random(seed).sample(paths, max_photos))
    try:
        palette = build_palette(paths, method=method.value, bins=bins, grid=grid,
                                samples_per_photo=samples_per_photo, seed=seed)
    except ImageError as e:
        raise _fail(str(e), code=1) from None
    except ValueError as e:  # too few pixels for k-means
        raise _fail(str(e)) from None
    meta = {"method": method.value, "photos": str(len(paths)), "seed": str(seed),
            "grid" if method is PaletteMethod.grid else "samples_per_photo":
            str(grid if method is PaletteMethod.grid else samples_per_photo)}
    palette.save(out, meta)
    _out_console().print(f"{out}: {palette.num_bins} bins from {len(paths)} photos ({method.value})", soft_wrap=True)


# --------------------------------------------------------------------------- serve
@app.command()
def serve(
    model: Annotated[str, typer.Option(help="The colourising model (a hint model): bundled name, export folder, .safetensors or .pt.")] = "hints",
    host: Annotated[str, typer.Option(help="Address to listen on. 127.0.0.1: this machine only; 0.0.0.0: every network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one).")] = 8000,
    size: Annotated[int | None, typer.Option(min=16, help="Working size (longest side, px) the model colourises at; default: the model's (192 for 'hints').", show_default=False)] = None,
    preview_size: Annotated[int, typer.Option(min=64, help="Longest side of the preview images, px.")] = 640,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest photo file accepted, MB (HTTP 413 over it).")] = 25.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest photo accepted, width x height (HTTP 413 over it).")] = 30_000_000,
    max_photos: Annotated[int, typer.Option(min=1, help="Photos kept in memory (least recently used dropped first).")] = 16,
    jobs: Annotated[int, typer.Option(min=1, help="Colourisations at once; a request beyond them gets HTTP 429.")] = 2,
    timeout: Annotated[float, typer.Option(min=0.1, help="Time limit of one request's model work, s (HTTP 504 past it).")] = 60.0,
    auto_model: Annotated[str | None, typer.Option(help="Automatic model whose colour is offered as a suggestion ('' for none); default: the bundled 'default'.", show_default=False)] = None,
    precision: Annotated[Precision, typer.Option(help="Model arithmetic: fp32, or bf16 (autocast).")] = Precision.fp32,
) -> None:
    """The interactive page: upload a photo, click colour hints onto it, download the result (API docs at /docs)."""
    import socket

    import uvicorn

    from polychrome import hub
    from polychrome.web import Limits, create_app

    if model == "hints" and "hints" not in hub.bundled_names():
        raise _fail("the bundled 'hints' model is not in this installation (polychrome/weights/hints.safetensors "
                    "is missing); pass --model PATH to a trained hint model")
    try:
        limits = Limits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels,
                        max_photos=max_photos, jobs=jobs, timeout_s=timeout)
        web = create_app(model, auto_spec=auto_model, limits=limits, size=size, preview_size=preview_size,
                         precision=precision.value)
    except (hub.ModelLoadError, ValueError) as e:
        raise _fail(str(e)) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them: the URL works once printed
    except OSError as e:
        sock.close()
        raise _fail(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    size = web.state.size  # the model's own when --size is not given
    typer.echo(f"polychrome: serving {url}  (model {model}, working size {size} px; API docs at {url}docs; Ctrl+C stops)")
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", lifespan="on"))
    server.run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``polychrome``) and ``python -m polychrome``.

    Usage mistakes (a missing ``-o``, an unknown option, a bad value) are printed as ONE line, like every
    other error of this tool, rather than the boxed usage panel; exit code 2 as before."""
    import sys

    from typer import Abort

    try:  # typer >= 0.25 carries its own copy of click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - older typer on top of click
        from click.exceptions import ClickException

    try:
        code = app(args=argv, prog_name="polychrome", standalone_mode=False)
    except ClickException as e:
        ctx = getattr(e, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        sys.stderr.write(f"error: {' '.join(e.format_message().split())}{where}\n")
        sys.exit(e.exit_code)
    except Abort:  # Ctrl+C at a prompt
        sys.stderr.write("aborted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
