"""``polychrome evaluate`` (automatic, ``--temperature``, ``--hints``), ``benchmark`` and ``report``, and their tables."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from polychrome.cli.common import app, err_console, fail, fmt, load_colorizer, need_extra, out_console


# --------------------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Bundled name, export folder, .safetensors file, checkpoint .pt or ONNX graph (.onnx or its export folder).", show_default=False)],
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
    need_extra("eval", "evaluate")
    from polychrome import hub
    from polychrome.io import ImageError

    if hints is not None:
        if temperature is not None:
            raise fail("--temperature applies to classification models; --hints scores a hint model")
        _evaluate_hints(model, data, json_path, size, limit, grid, hints, plot, seed)
        return
    if plot is not None:
        raise fail("--plot draws the hint curve; it needs --hints COUNTS")
    temperatures = None if temperature is None else _parse_temperatures(temperature)
    evaluation = _evaluation_module("polychrome.eval.automatic")
    try:
        summary = evaluation.run_evaluation(
            str(model), str(data), str(json_path), size=size, limit=limit,
            grid_path=str(grid) if grid else None, progress=err_console().is_terminal,
            temperatures=temperatures,
        )
    except hub.ModelLoadError as e:
        raise fail(f"--model {e}") from None
    except (ImageError, FileNotFoundError) as e:
        raise fail(str(e)) from None
    except ValueError as e:  # --temperature on a regressor, or a repeated temperature
        raise fail(f"--temperature {temperature}: {e}") from None
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
        row = [key, *(fmt(mean.get(key)) for mean in columns.values()), fmt(grey.get(key))]
        table.add_row(*row, *([fmt(reference.get(key))] if reference else []))
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
        raise fail(f"--temperature {text}: give numbers > 0 separated by commas, e.g. 0.1,0.38,1.0")
    return values


def _evaluate_hints(model: str, data: Path, json_path: Path, size, limit, grid, hints: str, plot, seed: int) -> None:
    """``evaluate --hints``: the PSNR / SSIM-vs-hints curve (polychrome.eval.hints)."""
    from polychrome import hub
    from polychrome.color.hints import HintError
    from polychrome.io import ImageError

    if grid is not None:
        raise fail("--grid is not available with --hints (use --plot for the curve)")
    evaluation = _evaluation_module("polychrome.eval.hints")
    try:
        counts = evaluation.parse_counts(hints)
    except ValueError as e:
        raise fail(f"--hints {hints}: {e}") from None
    try:
        summary = evaluation.run_hint_evaluation(
            str(model), str(data), counts, json_path=str(json_path), plot_path=str(plot) if plot else None,
            size=size, limit=limit, seed=seed, progress=err_console().is_terminal,
        )
    except hub.ModelLoadError as e:
        raise fail(f"--model {e}") from None
    except HintError as e:
        raise fail(f"--hints {hints}: {e}") from None
    except (ImageError, FileNotFoundError) as e:
        raise fail(str(e)) from None
    table = Table(title=f"{model} on {data} ({summary['n']} photos, hints sampled from the true colours, seed {seed})")
    table.add_column("hints", justify="right")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    for point in summary["curve"]:
        table.add_row(str(point["hints"]), fmt(point["psnr"]), fmt(point["ssim"]))
    table.add_row("grey baseline", fmt(summary["grey"]["psnr"]), fmt(summary["grey"]["ssim"]))
    Console(highlight=False).print(table)
    if summary.get("skipped"):
        typer.echo(f"{len(summary['skipped'])} unreadable photos skipped (listed in the JSON)")
    typer.echo(f"summary written to {json_path}" + (f", curve to {plot}" if summary.get("plot") else ""))


def _evaluation_module(name: str):
    """Import an evaluation module lazily (it pulls in scikit-image); a broken install is a one-line error."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise fail(f"evaluation is not available in this installation ({e})") from None


# --------------------------------------------------------------------------- benchmark
def _parse_models(models: str) -> list[str]:
    specs = [m.strip() for m in models.split(",") if m.strip()]
    if not specs:
        raise fail("--models: give at least one model (comma-separated)")
    return specs


def _table(title: str, rows: list[tuple[str, dict]], columns) -> Table:
    from polychrome.eval.benchmark import format_value

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
    need_extra("eval", "benchmark")
    from polychrome.eval import benchmark as bench
    from polychrome.io import ImageError

    specs = _parse_models(models)
    sets = [*data, *(more_data or [])]
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out}: exists and is not a folder")
    for d in sets:
        if not d.exists():
            raise fail(f"--data {d}: no such file or folder")
    if no_historical:
        historical = None
    elif historical is not None and not historical.exists():
        raise fail(f"--historical {historical}: no such file or folder")
    loaded = {spec: load_colorizer(spec, "cpu") for spec in specs}
    try:
        result = bench.run_benchmark(
            loaded, [str(d) for d in sets], out, size=size, limit=limit,
            historical=str(historical) if historical is not None else None,
            grid_rows=grid_rows, params=params, progress=err_console().is_terminal,
        )
    except (ImageError, ValueError) as e:
        raise fail(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    console = out_console()
    for name, entry in result["sets"].items():
        console.print(_table(f"{name} ({entry['n']} photos)", bench.table_rows(entry), bench.COLUMNS))
        ref = entry["reference"].get("colorfulness")
        console.print(f"originals' colourfulness: {bench.format_value('colorfulness', ref)}", soft_wrap=True)
    if result.get("overall"):
        rows = list(result["overall"]["models"].items())
        console.print(_table(f"overall ({', '.join(result['overall']['sets'])}): against grey and the originals",
                             rows, bench.OVERALL_COLUMNS))
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
    need_extra("eval", "report", ("matplotlib",))  # the weight histograms
    from polychrome import hub
    from polychrome.models import create_model, list_models
    from polychrome.diagnostics.param_report import write_parameter_report

    if out.exists() and not out.is_dir():
        raise fail(f"--out {out}: exists and is not a folder")
    if model in list_models() and model not in hub.bundled_names() and not Path(model).exists():
        net, title = create_model(model), f"{model} (random weights: counts only)"
    else:
        net, title = load_colorizer(model, "cpu").model, model
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
