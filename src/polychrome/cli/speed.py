"""``polychrome benchmark-speed`` and its table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polychrome.cli.common import app, err_console, fail, load_colorizer, out_console


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


@app.command("benchmark-speed")
def benchmark_speed(
    model: Annotated[str, typer.Option(help="Bundled name, export folder, .safetensors file, checkpoint .pt or ONNX graph (.onnx or its export folder).")] = "default",
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
    from polychrome.diagnostics import speed

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
