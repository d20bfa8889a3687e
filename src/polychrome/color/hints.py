"""Colour hints: the user's hint file, rasterisation onto a model's working grid, and random sampling.

A hint says "around this pixel the colour is this". One convention everywhere (model, file format, web
page, training): ``hint_ab`` (B, 2, H, W) float in CIE Lab units, 0 where there is no hint, and
``hint_mask`` (B, 1, H, W) float, 1 where a hint is. Models take them in network units
(``ab_to_net(hint_ab)``), beside ``L_net``.

The hint file is JSON, in pixel coordinates of the ORIGINAL photo (x to the right, y down; pixel (x, y)
is column ``int(x)``, row ``int(y)``)::

    [{"x": 120, "y": 45, "color": "#aa3322"}, ...]

Only the colour's chroma (its Lab a and b) is used; the photo's own lightness is kept, so a dark
red hint on a bright wall gives a bright red wall.

Training and evaluation sample hints from the true colours (iColoriT, Zhang et al. 2017): each hint is
a ``patch`` x ``patch`` square (2 x 2 px at the working size) coloured with the true MEAN ab there.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from polychrome.color.lab import lab_to_rgb, rgb_to_lab

#: Side of a hint square on the model's working grid, in px (iColoriT's 2 x 2).
HINT_PATCH = 2

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


class HintError(ValueError):
    """A hint or hint file a person gave is unusable; the message is one line naming the source."""


def hex_to_ab(color: str) -> tuple[float, float]:
    """Lab (a, b) of an sRGB colour written ``#rrggbb`` (or ``#rgb``); raises HintError if malformed."""
    m = _HEX.match(color.strip()) if isinstance(color, str) else None
    if m is None:
        raise HintError(f"colour {color!r} is not a #rrggbb hex colour")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    rgb = torch.tensor([int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4)], dtype=torch.float64).view(3, 1, 1)
    lab = rgb_to_lab(rgb)
    return float(lab[1, 0, 0]), float(lab[2, 0, 0])


def ab_to_hex(L: float, a: float, b: float) -> str:
    """``#rrggbb`` of the Lab colour (L, a, b), clamped into sRGB."""
    lab = torch.tensor([L, a, b], dtype=torch.float64).view(3, 1, 1)
    rgb = lab_to_rgb(lab, clip=True).view(3)
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgb)


@dataclass(frozen=True)
class Hint:
    """One colour hint. ``x``, ``y``: pixel coordinates in the original photo; ``color``: ``#rrggbb``.

    ``ab`` is the colour's Lab chroma (CIE units), derived from ``color``."""

    x: float
    y: float
    color: str
    ab: tuple[float, float] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "color", _normal_hex(self.color))
        object.__setattr__(self, "ab", hex_to_ab(self.color))

    def to_json(self) -> dict:
        x = int(self.x) if float(self.x).is_integer() else self.x
        y = int(self.y) if float(self.y).is_integer() else self.y
        return {"x": x, "y": y, "color": self.color}


def _normal_hex(color: str) -> str:
    """``color`` as lower-case ``#rrggbb``; HintError if malformed."""
    m = _HEX.match(color.strip()) if isinstance(color, str) else None
    if m is None:
        raise HintError(f"colour {color!r} is not a #rrggbb hex colour")
    h = m.group(1).lower()
    return "#" + ("".join(c * 2 for c in h) if len(h) == 3 else h)


def _number(v, what: str) -> float:
    try:  # an integer too large for a float (10**400) overflows rather than being non-finite
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    except OverflowError:
        ok = False
    if not ok:
        raise HintError(f"{what} must be a finite number, got {str(v)[:40]}")
    return float(v)


def parse_hints(obj, source: str = "hints") -> list[Hint]:
    """Hints from the hint-file structure ``[{"x": .., "y": .., "color": "#rrggbb"}, ...]``.

    Raises HintError with a one-line message naming ``source`` and the faulty entry."""
    if not isinstance(obj, list):
        raise HintError(f"{source}: expected a JSON list of hints, got {type(obj).__name__}")
    hints = []
    for i, item in enumerate(obj):
        where = f"{source}: hint {i}"
        if not isinstance(item, dict):
            raise HintError(f"{where}: expected an object with x, y and color, got {type(item).__name__}")
        missing = [k for k in ("x", "y", "color") if k not in item]
        if missing:
            raise HintError(f"{where}: missing {', '.join(missing)}")
        extra = sorted(set(item) - {"x", "y", "color"})
        if extra:
            raise HintError(f"{where}: unknown field(s) {', '.join(extra)}")
        try:
            x, y = _number(item["x"], "x"), _number(item["y"], "y")
            if x < 0 or y < 0:
                raise HintError(f"x and y must be >= 0, got ({x:g}, {y:g})")
            hints.append(Hint(x, y, item["color"]))
        except HintError as e:
            raise HintError(f"{where}: {e}") from None
    return hints


def load_hint_file(path: str | os.PathLike) -> list[Hint]:
    """Read a hint file (JSON, see the module docstring). HintError names the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HintError(f"{path}: cannot read hint file ({getattr(e, 'strerror', None) or e})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise HintError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return parse_hints(obj, str(path))


def hints_to_json(hints: list[Hint]) -> list[dict]:
    """The hint-file structure of ``hints`` (inverse of :func:`parse_hints`)."""
    return [h.to_json() for h in hints]


def save_hint_file(hints: list[Hint], path: str | os.PathLike) -> Path:
    """Write ``hints`` as a hint file, atomically."""
    from polychrome.io import write_json_atomic

    return write_json_atomic(hints_to_json(hints), path)


def rasterize_hints(
    hints: list[Hint], full_hw: tuple[int, int], work_hw: tuple[int, int], patch: int = HINT_PATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint hints given on the full-resolution photo onto the model's working grid.

    Args:
        hints: in pixel coordinates of the photo of size ``full_hw`` = (H, W).
        work_hw: (h, w) of the working grid (the photo resized, aspect ratio kept).
        patch: side of each hint square on the working grid; the square is centred on the hint's cell
            (for an even side, the hint's cell is its lower-right middle cell) and kept inside the grid.
    Returns:
        hint_ab (1, 2, h, w) float32 in Lab units and hint_mask (1, 1, h, w) float32 in {0, 1}. Where
        squares overlap, the later hint wins.
    Raises:
        HintError for a hint outside the photo.
    """
    H, W = full_hw
    h, w = work_hw
    hint_ab = torch.zeros(1, 2, h, w)
    hint_mask = torch.zeros(1, 1, h, w)
    p = max(1, min(patch, h, w))
    for i, hint in enumerate(hints):
        if not (0 <= hint.x < W and 0 <= hint.y < H):
            raise HintError(f"hint {i} at ({hint.x:g}, {hint.y:g}) lies outside the {W}x{H} photo")
        col, row = min(int(hint.x * w / W), w - 1), min(int(hint.y * h / H), h - 1)
        r0 = min(max(row - p // 2, 0), h - p)
        c0 = min(max(col - p // 2, 0), w - p)
        hint_ab[0, :, r0 : r0 + p, c0 : c0 + p] = torch.tensor(hint.ab).view(2, 1, 1)
        hint_mask[0, :, r0 : r0 + p, c0 : c0 + p] = 1.0
    return hint_ab, hint_mask


#: How :func:`random_hint_counts` spreads the counts over [lo, hi].
HINT_SAMPLINGS = ("uniform", "log")


def random_hint_counts(
    batch: int, lo: int, hi: int, generator: torch.Generator | None = None, sampling: str = "uniform"
) -> torch.Tensor:
    """(batch,) int64 hint counts in [lo, hi] inclusive.

    ``sampling="uniform"``: every count equally likely. ``"log"``: count + 1 log-uniform, so a person's
    typical few hints are trained on as often as in a narrow range while large counts (100-200) still
    occur: over [0, 200] the median is about 13 and a quarter of the draws are above 50."""
    if not 0 <= lo <= hi:
        raise ValueError(f"need 0 <= lo <= hi, got lo={lo}, hi={hi}")
    if sampling == "uniform":
        return torch.randint(lo, hi + 1, (batch,), generator=generator)
    if sampling == "log":
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        x = torch.exp(math.log(lo + 1) + u * (math.log(hi + 2) - math.log(lo + 1)))  # in [lo + 1, hi + 2)
        return (x.floor().long() - 1).clamp(lo, hi)
    raise ValueError(f"hint sampling must be one of {', '.join(HINT_SAMPLINGS)}, got {sampling!r}")


def sample_hints(
    ab: torch.Tensor,
    counts: torch.Tensor | int,
    patch: int = HINT_PATCH,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hints sampled from the true colours, as in training and the hint-count evaluation.

    Image i gets ``counts[i]`` non-overlapping-in-origin ``patch`` x ``patch`` squares at uniformly random
    places (distinct top-left corners), each coloured with the true mean ab of its square. Squares
    come from one random order of all places, so with the same generator state more hints are a
    superset of fewer (the evaluation's curve adds hints, it does not redraw them).

    Args:
        ab: (B, 2, H, W) float, true ab in Lab units.
        counts: (B,) int hint counts, or one int for every image.
        patch: side of a hint square, px.
        generator: torch.Generator (on the CPU) for reproducible draws.
    Returns:
        hint_ab (B, 2, H, W) in Lab units (where squares overlap, the mean of their colours) and
        hint_mask (B, 1, H, W) in {0, 1}, both float like ``ab`` and on its device.
    """
    B, _, H, W = ab.shape
    p = min(patch, H, W)
    counts = torch.full((B,), int(counts)) if isinstance(counts, int) else counts.to("cpu", torch.long)
    hp, wp = H - p + 1, W - p + 1  # possible top-left corners
    k = int(counts.clamp(0, hp * wp).max()) if B else 0
    starts = torch.zeros(B, 1, hp * wp, dtype=ab.dtype)
    if k:
        order = torch.rand(B, hp * wp, generator=generator).argsort(dim=1)[:, :k]  # (B, k) distinct places
        keep = torch.arange(k)[None, :] < counts[:, None]  # (B, k)
        starts.scatter_(2, order[:, None, :], keep[:, None, :].to(ab.dtype))
    starts = starts.view(B, 1, hp, wp).to(ab.device)
    mean_ab = F.avg_pool2d(ab, p, stride=1)  # (B, 2, hp, wp): the mean of the square starting there
    # Spread each chosen corner over its square: pixel (r, c) is covered by the corners in
    # [r-p+1, r] x [c-p+1, c], a p x p window sum over the corners padded by p-1 on every side.
    spread = (p - 1, p - 1, p - 1, p - 1)
    n = F.avg_pool2d(F.pad(starts, spread), p, stride=1) * p * p  # (B, 1, H, W) squares covering each pixel
    s = F.avg_pool2d(F.pad(starts * mean_ab, spread), p, stride=1) * p * p  # (B, 2, H, W)
    mask = (n > 0.5).to(ab.dtype)
    return s / n.clamp(min=1.0) * mask, mask
