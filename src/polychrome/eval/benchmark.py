"""``polychrome benchmark``: several models and the grey baseline on several photo sets, in one run.

For each set every photo is read once, made grey once and colourised once by each model (through the
one pipeline, :func:`polychrome.pipeline.colorize_array`); those same 8-bit results are scored against
the originals (:func:`polychrome.eval.automatic.score_photos`, the code behind ``polychrome evaluate``, so the
numbers are the ones ``evaluate`` gives each model alone) and laid out in the image grids. Written into
the output folder:

* ``results.json``: per set, per model, the ``evaluate`` summary with its per-image rows; the grey
  baseline and the originals; hardware, versions and the command line.
* ``report.md``: a table per set (grey baseline and each model: PSNR, SSIM, CIEDE2000, colourfulness,
  its distance from the originals', seconds per photo), the grids, the models, the hardware.
* ``grids/SET.png``: grey | each model | original for the first few photos of each set, columns labelled;
  ``grids/historical.png``: grey input | each model over a folder of genuine black-and-white photos.
* ``params/LABEL/``: each model's parameter report (:mod:`polychrome.diagnostics.param_report`).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch.nn as nn
from PIL import Image
from rich.console import Console

from polychrome.colorizer import Colorizer
from polychrome.diagnostics.param_report import write_parameter_report
from polychrome.eval import report as pictures
from polychrome.eval import runner
from polychrome.eval.automatic import summarise
from polychrome.eval.provenance import describe, system_info
from polychrome.io import ImageError, find_images, is_inside, save_image_atomic, write_json_atomic

GREY_LABEL = "grey baseline"
#: Table columns of the report: (key in a row of :func:`table_rows`, heading, short heading for a terminal, format).
COLUMNS = (
    ("psnr", "PSNR (dB) ↑", "PSNR", "{:.2f}"),
    ("ssim", "SSIM ↑", "SSIM", "{:.4f}"),
    ("ciede2000", "CIEDE2000 ↓", "CIEDE2000", "{:.2f}"),
    ("colorfulness", "colourfulness", "colourful", "{:.1f}"),
    ("colorfulness_gap", "|colourfulness − originals'| ↓", "|Δ colourful|", "{:.1f}"),
    ("green_cast", "green cast ↓", "green", "{:.1%}"),
    ("seconds_per_image", "sec/photo", "s/photo", "{:.3f}"),
)


def model_label(spec: str | os.PathLike) -> str:
    """A short column/row name for a model spec: a bundled name as is, an export folder by its name, a weight
    file by its stem (``model.safetensors`` by its folder), a run's ``best.pt`` / ``last.pt`` as ``RUN/best``."""
    p = Path(spec)
    if p.is_dir():
        return p.resolve().name
    if p.suffix in (".safetensors", ".pt", ".pth", ".ckpt"):
        parent = p.resolve().parent.name
        if p.stem == "model" and parent:
            return parent
        if p.stem in ("best", "last") and parent:
            return f"{parent}/{p.stem}"
        return p.stem
    return str(spec)


def load_models(specs: Sequence[str | os.PathLike]) -> dict[str, Colorizer]:
    """spec -> Colorizer, in order (:meth:`polychrome.Colorizer.from_pretrained`; raises its ModelLoadError)."""
    return {str(spec): Colorizer.from_pretrained(spec) for spec in specs}


def run_benchmark(
    models: Mapping[str, Colorizer | nn.Module],
    data: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    size: int | None = None,
    limit: int | None = None,
    historical: str | os.PathLike | None = None,
    grid_rows: int = pictures.GRID_ROWS,
    params: bool = True,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Benchmark ``models`` (spec -> loaded model, e.g. from :func:`load_models`) and the grey baseline on
    every photo set of ``data``; write results.json, report.md, grids/ and params/ into ``out_dir``.

    Args:
        models: spec (as the user named it) -> colouriser. Labels come from :func:`model_label`, made unique.
        data: photo sets: folders (searched recursively), image files or ``.txt`` lists.
        size: working size (longest side, px) for every model; default each model card's.
        limit: score only the first ``limit`` photos of each set.
        historical: a folder of photos without ground truth for the grey | models grid; None for none.
        grid_rows: photos per grid (the first of each set, and of ``historical``).
        params: also write each model's parameter report into ``params/LABEL/``.
        command: the command line to record; default a ``polychrome benchmark`` line rebuilt from the arguments.

    Returns the content of results.json.

    Raises:
        polychrome.io.ImageError: a ``data`` or ``historical`` path does not exist.
        ValueError: no models, or no data.
    """
    if not models:
        raise ValueError("no models to benchmark")
    if not data:
        raise ValueError("no photo sets to benchmark on")
    t0 = time.perf_counter()
    out = Path(out_dir)
    labels = _unique([model_label(spec) for spec in models])
    by_label = {label: runner.as_colorizer_kept(m) for label, m in zip(labels, models.values())}
    specs = dict(zip(labels, models))
    sizes = {label: runner.working_size(m, size) for label, m in by_label.items()}
    # Every path is checked before the first photo is colourised, so a typo costs nothing. Files under
    # out_dir are earlier grids (out_dir may sit inside a photo folder), never photos to score.
    set_paths = {str(d): [p for p in runner.photo_paths(d) if not is_inside(p, out)][:limit] for d in data}
    hist_paths = None
    if historical is not None:
        hist_paths = [p for p in find_images(historical) if not is_inside(p, out)][: max(0, grid_rows)]
    set_names = _unique([_set_name(d) for d in data], taken={"historical"} if historical is not None else set())

    info = system_info()
    result: dict = {
        "command": command or _rebuild_command(models, data, out, size, limit, historical, grid_rows),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "system": info,
        "torch_threads_while_colourising": 1,
        "models": {},
        "sets": {},
        "historical": None,
    }
    for label, model in by_label.items():
        entry = {
            "spec": specs[label],
            "architecture": model.card.architecture,
            "size": sizes[label],
            "parameters": sum(p.numel() for p in model.model.parameters()),
            "parameter_report": None,
        }
        if params:
            folder = out / "params" / _slug(label)
            write_parameter_report(model.model, folder, title=label)
            entry["parameter_report"] = (folder / "params.md").relative_to(out).as_posix()
        result["models"][label] = entry

    for name, d in zip(set_names, data):
        t_set = time.perf_counter()
        scores = runner.score_photos(
            {label: (m, None) for label, m in by_label.items()}, set_paths[str(d)], Path(d), sizes, keep=grid_rows, progress=progress, title=f"benchmark {name}"
        )
        summaries = {
            label: summarise(label, by_label[label], d, sizes[label], limit, scores.rows[label], scores.skipped)
            for label in labels
        }
        first = summaries[labels[0]]
        entry = {
            "data": str(d),
            "n": first["n"],
            "skipped": scores.skipped,
            "grey": {**first["grey"], "seconds_per_image": first["grey_seconds_per_image"]},
            "reference": first["reference"],
            "models": summaries,
            "grid": None,
            "seconds": None,
        }
        if scores.panels:
            grid = pictures.labelled_grid(
                [GREY_LABEL, *labels, "original"],
                [[grey, *(preds[label] for label in labels), orig] for _, grey, preds, orig in scores.panels],
            )
            entry["grid"] = _save_grid(grid, out, name)
        entry["seconds"] = round(time.perf_counter() - t_set, 3)
        for summary in summaries.values():
            summary["seconds"] = entry["seconds"]  # the whole set's wall time: every model and the scoring
            summary["grid"] = entry["grid"]
        result["sets"][name] = entry

    result["overall"] = overall(result["sets"]) if len(result["sets"]) > 1 else None
    if hist_paths is not None:
        result["historical"] = _historical(by_label, sizes, hist_paths, Path(historical), out, progress)

    result["seconds"] = round(time.perf_counter() - t0, 3)
    write_json_atomic(result, out / "results.json")
    (out / "report.md").write_text(markdown_report(result), encoding="utf-8")
    return result


def table_rows(set_entry: dict) -> list[tuple[str, dict[str, float | None]]]:
    """(row name, {column key: value}) for the grey baseline and each model of one set of results.json."""
    ref = set_entry["reference"].get("colorfulness")

    def gap(c: float | None) -> float | None:
        return None if c is None or ref is None else abs(c - ref)

    grey = dict(set_entry["grey"])
    grey["colorfulness_gap"] = gap(grey.get("colorfulness"))
    rows = [(GREY_LABEL, grey)]
    for label, summary in set_entry["models"].items():
        row = dict(summary["mean"])
        row["colorfulness_gap"] = gap(row.get("colorfulness"))
        row["seconds_per_image"] = summary.get("colorize_seconds_per_image")
        rows.append((label, row))
    return rows


#: The overall table's columns: (key, heading, short heading, format). Each compares a model with the grey
#: baseline or the originals of the same set, so sets of different difficulty can be put side by side.
OVERALL_COLUMNS = (
    ("psnr_gain", "PSNR − grey (dB) ↑", "ΔPSNR", "{:+.2f}"),
    ("psnr_gain_worst", "worst set", "worst", "{:+.2f}"),
    ("ciede2000_gain", "CIEDE2000 − grey ↓", "ΔCIEDE", "{:+.2f}"),
    ("ciede2000_gain_worst", "worst set", "worst", "{:+.2f}"),
    ("colorfulness_share", "colourfulness / originals' ↑", "colour %", "{:.0%}"),
    ("colorfulness_share_worst", "worst set", "worst", "{:.0%}"),
)


def overall(sets: dict) -> dict:
    """Across photo sets (each set weighs the same): per model, the mean and the worst set of its PSNR and
    CIEDE2000 against the grey baseline of the same set, and of its colourfulness as a share of the originals'.

    Returns {"sets": [names], "models": {label: {column key: value}}} (results.json's ``overall``)."""
    per: dict[str, dict[str, list[float]]] = {}
    for entry in sets.values():
        grey, ref = entry["grey"], entry["reference"].get("colorfulness")
        for label, summary in entry["models"].items():
            m = summary["mean"]
            cols = per.setdefault(label, {"psnr_gain": [], "ciede2000_gain": [], "colorfulness_share": []})
            cols["psnr_gain"].append(m["psnr"] - grey["psnr"])
            cols["ciede2000_gain"].append(m["ciede2000"] - grey["ciede2000"])
            if ref:
                cols["colorfulness_share"].append(m["colorfulness"] / ref)
    worst = {"psnr_gain": min, "ciede2000_gain": max, "colorfulness_share": min}
    models = {}
    for label, cols in per.items():
        row: dict[str, float | None] = {}
        for key, values in cols.items():
            row[key] = float(np.mean(values)) if values else None
            row[f"{key}_worst"] = float(worst[key](values)) if values else None
        models[label] = row
    return {"sets": list(sets), "models": models}


def format_value(key: str, value: float | None) -> str:
    """A table cell: the column's format, or "-" for a missing value."""
    fmt = next(f for k, _, _, f in (*COLUMNS, *OVERALL_COLUMNS) if k == key)
    return "-" if value is None else fmt.format(value)


def markdown_report(result: dict) -> str:
    """report.md from the content of results.json."""
    info = result["system"]
    lines = [
        "# polychrome benchmark",
        "",
        f"```\n{result['command']}\n```",
        "",
        f"Run {result['created']} in {result['seconds']:.0f} s on {describe(info)}.",
        "",
    ]
    for name, entry in result["sets"].items():
        skipped = f", {len(entry['skipped'])} unreadable skipped (listed in results.json)" if entry["skipped"] else ""
        lines += [f"## {name}", "", f"`{entry['data']}`: {entry['n']} photos{skipped}.", ""]
        lines.append("| | " + " | ".join(head.replace("|", "\\|") for _, head, _, _ in COLUMNS) + " |")
        lines.append("|---|" + "---:|" * len(COLUMNS))
        for row_name, row in table_rows(entry):
            cells = " | ".join(format_value(k, row.get(k)) for k, _, _, _ in COLUMNS)
            lines.append(f"| {row_name} | {cells} |")
        ref = entry["reference"].get("colorfulness")
        lines += ["", f"Originals' colourfulness: {format_value('colorfulness', ref)}.", ""]
        if entry["grid"]:
            lines += [f"![{name}: grey, each model, original]({entry['grid']})", ""]
    if result.get("overall"):
        names = ", ".join(result["overall"]["sets"])
        lines += ["## Overall", "", f"Each model against the grey baseline and the originals of the same set, over {names} "
                  "(mean of the sets, and the worst set).", ""]
        lines.append("| | " + " | ".join(head for _, head, _, _ in OVERALL_COLUMNS) + " |")
        lines.append("|---|" + "---:|" * len(OVERALL_COLUMNS))
        for label, row in result["overall"]["models"].items():
            lines.append(f"| {label} | " + " | ".join(format_value(k, row.get(k)) for k, _, _, _ in OVERALL_COLUMNS) + " |")
        lines.append("")
    hist = result.get("historical")
    if hist:
        lines += [
            "## Historical photographs (no ground truth)",
            "",
            f"`{hist['data']}`: the first {len(hist['files'])} photos, grey input | each model.",
            "",
        ]
        if hist["grid"]:
            lines += [f"![historical: grey input, each model]({hist['grid']})", ""]
    lines += ["## Models", "", "| label | spec | architecture | working size | parameters | parameter report |",
              "|---|---|---|---:|---:|---|"]
    for label, m in result["models"].items():
        report = f"[params]({m['parameter_report']})" if m.get("parameter_report") else "-"
        cells = [label, f"`{m['spec']}`", m["architecture"], str(m["size"]), f"{m['parameters']:,}", report]
        lines.append("| " + " | ".join(cells) + " |")
    settings = next((s["settings"] for e in result["sets"].values() for s in e["models"].values()), None)
    lines += [
        "",
        "## How the numbers are made",
        "",
        "- Each photo is turned grey (its L kept), colourised at full resolution by `polychrome.pipeline` "
        "(the model sees L at its working size; ab is upsampled onto the original L), saved as 8 bits in memory, "
        "and compared with the colour original. The grey baseline is the grey photo itself (ab = 0).",
        "- PSNR and SSIM on RGB 0-255 (scikit-image, SSIM 7x7 uniform window); CIEDE2000 is the mean per-pixel "
        "`skimage.color.deltaE_ciede2000`; colourfulness is Hasler and Suesstrunk (2003). Every figure is the "
        "mean over the set's photos; \\|colourfulness − originals'\\| is the distance between the set means.",
        f"- sec/photo: the colourisation alone (decoded photo in, 8-bit photo out; no file reading, no scoring), "
        f"with torch at {result['torch_threads_while_colourising']} thread while a second thread scores the "
        "previous photo. For end-to-end speed see `polychrome benchmark-speed`.",
    ]
    if settings:
        lines.append(f"- Exact settings: `settings` in results.json (quantisation: {settings['quantisation']}).")
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    lines += [
        "",
        "## Hardware and versions",
        "",
        f"- {describe(info)}",
        f"- {info['platform']}",
        f"- {versions}",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- grids
def _save_grid(grid: Image.Image, out: Path, name: str) -> str:
    path = out / "grids" / f"{_slug(name)}.png"
    save_image_atomic(grid, path)
    return path.relative_to(out).as_posix()


def _historical(
    models: Mapping[str, Colorizer], sizes: Mapping[str, int], paths: list[Path], root: Path, out: Path, progress: bool
) -> dict:
    """grey input | each model for photos without ground truth; each photo colourised once per model."""
    console = Console(stderr=True, highlight=False)
    rows, files, skipped = [], [], []
    with ExitStack() as stack:
        stack.enter_context(runner.torch_threads(1))
        for model in models.values():
            stack.enter_context(runner.eval_mode(model.model))
        for path in paths:
            name = runner.display_name(path, root)
            try:
                photo = runner.colourise_photo({label: (m, None) for label, m in models.items()}, path, sizes)
            except (ImageError, ValueError) as e:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                skipped.append({"file": name, "reason": reason})
                console.print(f"warning: skipped {name}: {reason}", markup=False, soft_wrap=True)
                continue
            files.append(name)
            panels = [photo.grey, *(photo.preds[label] for label in models)]
            rows.append([pictures.thumbnail(p, pictures.GRID_HEIGHT) for p in panels])
    grid = _save_grid(pictures.labelled_grid(["grey input", *models], rows), out, "historical") if rows else None
    return {"data": str(root), "files": files, "skipped": skipped, "grid": grid}


# --------------------------------------------------------------------------- names
def _set_name(data: str | os.PathLike) -> str:
    p = Path(data)
    return (p.resolve().name if p.is_dir() else p.stem) or str(data)


def _unique(names: list[str], taken: set[str] | None = None) -> list[str]:
    seen = set(taken or ())
    out = []
    for name in names:
        candidate, i = name, 2
        while candidate in seen or candidate in (GREY_LABEL, "original"):
            candidate, i = f"{name}-{i}", i + 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _slug(name: str) -> str:
    """A file-name-safe form of a label (``run/best`` -> ``run_best``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _rebuild_command(models, data, out, size, limit, historical, grid_rows) -> str:
    import shlex

    parts = ["polychrome", "benchmark", "--models", ",".join(models)]
    for d in data:
        parts += ["--data", str(d)]
    parts += ["--out", str(out)]
    if size is not None:
        parts += ["--size", str(size)]
    if limit is not None:
        parts += ["--limit", str(limit)]
    parts += ["--historical", str(historical)] if historical is not None else ["--no-historical"]
    if grid_rows != pictures.GRID_ROWS:
        parts += ["--grid-rows", str(grid_rows)]
    return shlex.join(parts)
