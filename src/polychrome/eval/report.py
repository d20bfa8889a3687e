"""Pictures of an evaluation: panels made small and laid out in grids (grey | prediction(s) | original),
labelled grids for benchmarks, and the hint curve plot."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from polychrome.color.hints import HINT_PATCH

#: Photos shown in the comparison grid, and the height (px) of each panel in it.
GRID_ROWS = 6
GRID_HEIGHT = 160
#: White space (px) between panels and rows of the grid.
GRID_GAP = 4
#: Height (px) of the label strip above a grid's columns, and the size of its font.
LABEL_HEIGHT = 22
LABEL_FONT_SIZE = 14


def thumbnail(u8: np.ndarray, height: int) -> np.ndarray:
    """uint8 (h, w, 3) -> uint8 (height, w * height / h, 3), Lanczos, aspect ratio kept."""
    h, w = u8.shape[:2]
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(u8, "RGB").resize((width, height), Image.Resampling.LANCZOS))


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


def _font(size: int = LABEL_FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed-size bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text``, cut with an ellipsis until it is at most ``width`` px wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def labelled_grid(labels: list[str], rows: list[list[np.ndarray]], gap: int = GRID_GAP) -> Image.Image:
    """Panels in columns under a strip of labels, on white.

    Args:
        labels: one per column.
        rows: each a list of uint8 (h, w, 3) panels, one per column, all of one height per row.
    Every column is as wide as the widest panel of the grid (panels centred in it), so a column holds one
    model from top to bottom. Size: ``len(labels) * cell + (len(labels) - 1) * gap`` by
    ``LABEL_HEIGHT + gap + sum(row heights) + (len(rows) - 1) * gap``.
    """
    if any(len(r) != len(labels) for r in rows):
        raise ValueError("every row needs one panel per label")
    cell = max(p.shape[1] for r in rows for p in r)
    heights = [max(p.shape[0] for p in r) for r in rows]
    width = len(labels) * cell + (len(labels) - 1) * gap
    canvas = Image.new("RGB", (width, LABEL_HEIGHT + gap + sum(heights) + gap * (len(rows) - 1)), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for i, label in enumerate(labels):
        text = _fit(draw, label, font, cell - 4)
        x = i * (cell + gap) + (cell - draw.textlength(text, font=font)) / 2
        draw.text((x, LABEL_HEIGHT / 2), text, fill="black", font=font, anchor="lm")
    y = LABEL_HEIGHT + gap
    for r, h in zip(rows, heights):
        for i, p in enumerate(r):
            canvas.paste(Image.fromarray(p, "RGB"), (i * (cell + gap) + (cell - p.shape[1]) // 2, y))
        y += h + gap
    return canvas


def curve_plot(result: dict) -> Image.Image:
    """The PSNR and SSIM vs hints curves of a :func:`run_hint_evaluation` result, grey baseline as a dashed
    line, on a symmetric-log x axis (linear below 1, so 0 hints is shown). Matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = [c["hints"] for c in result["curve"]]
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    for i, (metric, label) in enumerate([("psnr", "PSNR (dB)"), ("ssim", "SSIM")]):
        ax = fig.add_subplot(1, 2, i + 1)
        values = [c[metric] for c in result["curve"]]
        ax.plot(counts, values, marker="o", label=result["model"])
        for k, v in zip(counts, values):
            if metric == "psnr" and v is not None:
                ax.annotate(f"{v:.1f}", (k, v), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        if result["grey"][metric] is not None:
            ax.axhline(result["grey"][metric], color="grey", linestyle="--", label="grey baseline")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(counts)
        ax.set_xticklabels([str(k) for k in counts])
        ax.set_xlim(left=-0.2 if counts[0] == 0 else None)
        ax.margins(y=0.1)  # room for the value labels above the points
        ax.set_xlabel(f"hints sampled from the true colours ({HINT_PATCH}x{HINT_PATCH} px at the working size)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{result['model']} on {result['data']}: {result['n']} photos, working size {result['size']} px")
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy(), "RGB")
