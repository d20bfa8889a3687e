"""``polychrome benchmark-speed`` and its table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polychrome.cli.common import (
    DEVICE_HELP,
    Precision,
    app,
    err_console,
    fail,
    load_colorizer,
    out_console,
    pick_device,
)


# --------------------------------------------------------------------------- benchmark-speed
def _parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        try:
            w, h = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise fail(f"--sizes: {part!r} is not WIDTHxHEIGHT") from None
        if w < 1 or h < 1:
            raise fail(f"--sizes: {part!r} must be positive")
        sizes.append((w, h))
    return sizes


def _parse_counts(flag: str, text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4], each at least 1; a one-line error otherwise."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise fail(f"{flag} {text}: give whole numbers of at least 1 separated by commas, e.g. 1,2,4")
    return list(dict.fromkeys(values))


@app.command("benchmark-speed")
def benchmark_speed(
    model: Annotated[str, typer.Option(help="Bundled name, export folder, .safetensors file, checkpoint .pt or ONNX graph (.onnx or its export folder).")] = "default",
    repeats: Annotated[
        int | None,
        typer.Option(min=1, help="Timed runs per configuration (after the warm-up) [default: 5; with --folder 3].",
                     show_default=False),
    ] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first (with --folder: over its first photos).")] = 1,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads [default: torch's own].", show_default=False)
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results here.", show_default=False)
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            help="Instead of one photo: photos per second on this folder's photos (searched as colorize searches "
            "it), for each --workers and --batch-size against one worker with batch size 1, in one run; the "
            "outputs go to a temporary folder, deleted at the end.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[str, typer.Option(help="With --folder: colorize --workers settings to time, e.g. 1,2,4.")] = "1,2",
    batch_size: Annotated[str, typer.Option(help="With --folder: colorize --batch-size settings to time, e.g. 1,4.")] = "1",
    limit: Annotated[int | None, typer.Option(min=1, help="With --folder: only its first N photos (by name).", show_default=False)] = None,
    precision: Annotated[
        Precision, typer.Option(help="With --folder: the model arithmetic (the photo benchmark times both).")
    ] = Precision.fp32,
    device: Annotated[str, typer.Option(help=f"With --folder: {DEVICE_HELP} (The photo benchmark runs on the CPU.)")] = "auto",
    sizes: Annotated[str | None, typer.Option(hidden=True, help="WxH,WxH photo sizes (tests).")] = None,
) -> None:
    """Time the model end to end on this machine (photo file in, colour file out): a 256x256 image and a
    12-megapixel photo, fp32 against bf16 autocast + channels_last, with peak memory and where the time goes.
    With --folder: photos per second on a folder for each colorize --workers / --batch-size setting, and each
    one's ratio to one worker with batch size 1, measured in the same run."""
    if folder is not None:
        return _benchmark_folder(model, folder, workers, batch_size, repeats or 3, warmup, limit, threads,
                                 precision.value, device, json_path)  # fmt: skip
    given = [flag for flag, value, default in (("--workers", workers, "1,2"), ("--batch-size", batch_size, "1"),
             ("--device", device, "auto")) if value != default] + (["--limit"] if limit is not None else [])  # fmt: skip
    if given:
        raise fail(f"{', '.join(given)}: only with --folder DIR (the photo benchmark times one photo on the CPU)")
    from polychrome.diagnostics import speed

    repeats = repeats or 5
    load_colorizer(model, "cpu")  # a missing or broken model is one line now, not a worker's traceback later
    size_list = _parse_sizes(sizes) if sizes else list(speed.SIZES)
    err = err_console()
    with err.status("timing") as status:
        try:
            result = speed.run_speed(
                model, repeats=repeats, warmup=warmup, sizes=size_list, threads=threads,
                on_start=lambda what: status.update(f"timing {what}"),
            )
        except RuntimeError as e:
            raise fail(str(e), code=1) from None
    if json_path is not None:
        from polychrome.io import write_json_atomic

        write_json_atomic(result, json_path)
    _print_speed(result)
    if json_path is not None:
        typer.echo(f"results written to {json_path}")


def _benchmark_folder(model, folder: Path, workers: str, batch_size: str, repeats: int, warmup: int, limit,
                      threads, precision: str, device: str, json_path: Path | None) -> None:  # fmt: skip
    """``benchmark-speed --folder``: photos per second for each --workers / --batch-size setting."""
    worker_list, batch_list = _parse_counts("--workers", workers), _parse_counts("--batch-size", batch_size)
    if not folder.is_dir():
        raise fail(f"--folder {folder}: not a folder")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    colorizer = load_colorizer(model, pick_device(device), precision)
    from polychrome.diagnostics import throughput
    from polychrome.eval.provenance import system_info

    err = err_console()
    with err.status("timing") as status:
        try:
            result = throughput.run_throughput(
                colorizer, folder, worker_list, batch_list, repeats=repeats, warmup=warmup, limit=limit,
                on_start=lambda what: status.update(f"timing {what}"),
            )  # fmt: skip
        except ValueError as e:  # no photos in the folder
            raise fail(f"--folder {e}") from None
    import torch

    result.update(model=model, precision=precision, device=str(colorizer.device), threads=torch.get_num_threads(),
                  system=system_info())  # fmt: skip
    if json_path is not None:
        from polychrome.io import write_json_atomic

        write_json_atomic(result, json_path)
    _print_throughput(result)
    if json_path is not None:
        typer.echo(f"results written to {json_path}")


def _print_throughput(result: dict) -> None:
    from polychrome.eval.provenance import describe

    console = out_console()
    n = result["photos"]
    table = Table(title=f"polychrome benchmark-speed --folder: {result['model']} ({result['precision']}, "
                        f"{result['device']}) on {n} photos of {result['folder']}, median of {result['repeats']} "
                        "runs per setting, settings in turn")  # fmt: skip
    for head in ("workers", "batch size", "median s", "min-max s", "photos/s", "x single", "failed",
                 "same bytes as single"):
        table.add_column(head, justify="right")
    for r in result["runs"]:
        same = f"{r['identical']}/{r['written']}"
        if r["identical"] < r["written"]:
            same += f" (max diff {r['max_level_diff']}/255)"
        table.add_row(
            str(r["workers"]), str(r["batch_size"]), f"{r['median']:.2f}", f"{r['min']:.2f}-{r['max']:.2f}",
            f"{r['photos_per_second']:.2f}", f"{r['vs_single']:.2f}x" if r["vs_single"] else "-", str(r["failed"]),
            same,
        )  # fmt: skip
    console.print(table)
    base = result["runs"][0]
    best = max(result["runs"], key=lambda r: r["photos_per_second"])
    console.print(
        f"single worker (colorize's default): {base['photos_per_second']:.2f} photos/s; best: workers "
        f"{best['workers']}, batch size {best['batch_size']}: {best['photos_per_second']:.2f} photos/s, "
        f"{best['vs_single']:.2f}x the single worker (polychrome colorize --workers {best['workers']} "
        f"--batch-size {best['batch_size']})",
        soft_wrap=True,
    )
    sizes = ", ".join(f"{k} x{v}" for k, v in list(result["sizes"].items())[:4])
    more = len(result["sizes"]) - 4
    console.print(f"photos: {n} ({sizes}{f', {more} more sizes' if more > 0 else ''}); photos/s = photos written "
                  "over the median wall time of colourising the folder (model loaded once, before); x single = "
                  "photos/s over the single worker's, from this run", soft_wrap=True)  # fmt: skip
    console.print(f"warm-up: {result['warmup']} untimed run(s) of each setting over the first "
                  f"{result['warmup_photos']} photos; outputs written to a temporary folder, deleted at the end; "
                  "'same bytes': each setting's files of its first run against the single worker's",
                  soft_wrap=True)  # fmt: skip
    info = dict(result["system"], torch_threads=result["threads"])
    console.print(f"machine: {describe(info)}", soft_wrap=True)
    console.print(", ".join(f"{k} {v}" for k, v in info["versions"].items()), soft_wrap=True)


def _print_speed(result: dict) -> None:
    from polychrome.diagnostics import speed
    from polychrome.eval.provenance import describe

    console = out_console()
    table = Table(title=f"polychrome benchmark-speed: {result['model']}, photo file -> colour file, "
                        f"median of {result['repeats']} runs after {result['warmup']} warm-up")
    for head in ("photo", "precision", "median s", "min-max s", "model s", "pre/post s", "Pillow floor s",
                 "x floor", "peak RSS MiB (+photo)", "decoded MiB (RGB)", "fp32/bf16"):
        table.add_column(head, justify="left" if head in ("photo", "precision") else "right")
    for r in result["runs"]:
        pre_post = sum(r["stages"][k] for k in speed.PRE_POST)
        up = result["speedup"].get(r["size"], {}).get("end_to_end") if r["precision"] == "bf16" else None
        table.add_row(
            r["size"], r["precision"], f"{r['median']:.3f}", f"{r['min']:.3f}-{r['max']:.3f}",
            f"{r['stages']['model']:.3f}", f"{pre_post:.3f}", f"{r['floor']['median']:.3f}",
            f"{r['floor_ratio']:.1f}x" if r["floor_ratio"] else "",
            f"{r['peak_rss_mib']:.0f} (+{r['photo_rss_mib']:.0f})", f"{r['decoded_mib']:.1f} ({r['rgb_mib']:.1f})",
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
    for r in result["runs"]:
        console.print(
            f"{r['size']} {r['precision']}: {r['floor_ratio']:.1f}x the Pillow floor ({r['median']:.3f} s vs "
            f"{r['floor']['median']:.3f} s); the photo costs {r['photo_rss_mib']:.0f} MiB of peak memory, "
            f"{r['rss_over_decoded']:.1f}x its {r['rgb_mib']:.1f} MiB as 8-bit RGB",
            soft_wrap=True,
        )
    console.print(f"floor: {result['floor_method']}", soft_wrap=True)
    console.print(f"memory: {result['memory_method']}", soft_wrap=True)
    console.print(", ".join(f"{k} {v}" for k, v in info["versions"].items()), soft_wrap=True)
