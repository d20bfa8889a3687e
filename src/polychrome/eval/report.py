"""Pictures of an evaluation: panels made small and laid out in grids (grey | prediction(s) | original)."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Photos shown in the comparison grid, and the height (px) of each panel in it.
GRID_ROWS = 6
GRID_HEIGHT = 160
#: White space (px) between panels and rows of the grid.
GRID_GAP = 4


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
