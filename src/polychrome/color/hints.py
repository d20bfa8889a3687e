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


#: Why JSON nested past the parser's recursion limit is refused (a hint list is two levels deep).
TOO_DEEP = "JSON nested too deeply to be a hint list ([{\"x\": .., \"y\": .., \"color\": ..}, ...])"


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
    except RecursionError:
        raise HintError(f"{path}: {TOO_DEEP}") from None
    return parse_hints(obj, str(path))


def parse_hint_text(text: str, source: str = "--hint") -> Hint:
    """One hint written ``X,Y,#RRGGBB`` (the command line's ``--hint``): X and Y in pixels of the photo, as
    in the hint file (decimals allowed, no fractions of the photo's size), the colour as there. Raises
    HintError with one line naming ``source`` and the value."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise HintError(f"{source} {text!r}: expected X,Y,#RRGGBB (pixels of the photo), e.g. 120,45,#aa3322")
    numbers = []
    for axis, part in zip("xy", parts[:2]):
        try:
            v = float(part)
        except ValueError:
            raise HintError(f"{source} {text!r}: {axis} {part!r} is not a number of pixels") from None
        if not math.isfinite(v) or v < 0:
            raise HintError(f"{source} {text!r}: {axis} must be a finite number of pixels >= 0, got {part}")
        numbers.append(int(v) if v.is_integer() else v)
    try:
        return Hint(numbers[0], numbers[1], parts[2])
    except HintError as e:
        raise HintError(f"{source} {text!r}: {e}") from None


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
#: ab change (CIE units) at which a hint's own result fully replaces the base result (:func:`refine_base`).
REFINE_TAU = 10.0


def refine_base(base: torch.Tensor, own0: torch.Tensor, own: torch.Tensor, tau: float = REFINE_TAU) -> torch.Tensor:
    """A hint model's hints applied on top of another model's automatic result (all (B, 2, H, W) ab, one grid).

    ``own0`` and ``own`` are the hint model's result without and with the hints; where the hints changed it by
    ``tau`` or more (their regions) the hint model's result is taken, so a hint's colour lands as the hint model
    puts it; elsewhere the base result carries the hint model's (small) change, blended by how large the
    change is. No hints (``own`` equal to ``own0``) gives ``base`` exactly."""
    delta = own - own0
    w = (delta.norm(dim=1, keepdim=True) / tau).clamp(0.0, 1.0)
    return w * own + (1.0 - w) * (base + delta)


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


def sample_hint_corners(
    batch: int,
    hw: tuple[int, int],
    counts: torch.Tensor | int,
    patch: int = HINT_PATCH,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Where :func:`sample_hints` puts its squares: (B, 1, H - p + 1, W - p + 1) float in {0, 1}, 1 at the
    top-left corner of each chosen ``p`` x ``p`` square (p = ``patch`` kept inside the grid).

    Image i gets ``counts[i]`` distinct corners, the first ones of one random order of all corners, so with
    the same generator state more hints are a superset of fewer."""
    H, W = hw
    p = min(patch, H, W)
    counts = torch.full((batch,), int(counts)) if isinstance(counts, int) else counts.to("cpu", torch.long)
    hp, wp = H - p + 1, W - p + 1  # possible top-left corners
    k = int(counts.clamp(0, hp * wp).max()) if batch else 0
    starts = torch.zeros(batch, 1, hp * wp)
    if k:
        order = torch.rand(batch, hp * wp, generator=generator).argsort(dim=1)[:, :k]  # (B, k) distinct places
        keep = torch.arange(k)[None, :] < counts[:, None]  # (B, k)
        starts.scatter_(2, order[:, None, :], keep[:, None, :].float())
    return starts.view(batch, 1, hp, wp)


def paint_hints(ab: torch.Tensor, starts: torch.Tensor, patch: int = HINT_PATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour the squares whose top-left corners are ``starts`` (from :func:`sample_hint_corners`) with the
    mean of ``ab`` over each square: (hint_ab (B, 2, H, W) in ``ab``'s units, where squares overlap the mean
    of their colours; hint_mask (B, 1, H, W) in {0, 1}), float like ``ab`` and on its device."""
    B, _, H, W = ab.shape
    p = min(patch, H, W)
    starts = starts.to(ab.device, ab.dtype)
    mean_ab = F.avg_pool2d(ab, p, stride=1)  # (B, 2, hp, wp): the mean of the square starting there
    # Spread each chosen corner over its square: pixel (r, c) is covered by the corners in
    # [r-p+1, r] x [c-p+1, c], a p x p window sum over the corners padded by p-1 on every side.
    spread = (p - 1, p - 1, p - 1, p - 1)
    n = F.avg_pool2d(F.pad(starts, spread), p, stride=1) * p * p  # (B, 1, H, W) squares covering each pixel
    s = F.avg_pool2d(F.pad(starts * mean_ab, spread), p, stride=1) * p * p  # (B, 2, H, W)
    mask = (n > 0.5).to(ab.dtype)
    return s / n.clamp(min=1.0) * mask, mask


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
    return paint_hints(ab, sample_hint_corners(B, (H, W), counts, patch, generator), patch)


# ----------------------------------------------------------------------------------------------------------
# Off-truth hints. A model trained only on hints of the true colours can half-guess those colours from L and
# learns to lean on that guess; the bundled icolorit-tiny copies a hint's b at half strength, ignores its a
# (green-red) entirely and spreads it over the whole photo. Training with some hints of colours nobody could
# guess from L, with the target recoloured over the hint's region only, rewards exactly what a person wants:
# the requested colour where they click, spread over that object and no further.

#: Bound of the a/b search box for in-gamut colours (sRGB chroma stays below about 135 CIE units).
_AB_SEARCH_MAX = 140.0


def in_gamut(L: torch.Tensor, ab: torch.Tensor, tol: float = 1e-4) -> torch.Tensor:
    """(K,) bool: whether Lab colours (L (K,), ab (K, 2), CIE units) lie inside sRGB."""
    lab = torch.cat([L.reshape(-1, 1), ab.reshape(-1, 2)], dim=1).double()
    rgb = lab_to_rgb(lab.T[:, :, None], clip=False)[:, :, 0].T  # (K, 3), unclipped
    return ((rgb >= -tol) & (rgb <= 1 + tol)).all(dim=1)


def max_chroma_ab(L: torch.Tensor, hue: torch.Tensor, steps: int = 16) -> torch.Tensor:
    """(K, 2) ab on the sRGB gamut's edge: the most saturated colour of hue ``hue`` (K,) radians (atan2(b, a))
    at lightness ``L`` (K,) in [0, 100]. Bisection on the chroma (``steps`` halvings of 0..140 CIE units)."""
    L, hue = L.reshape(-1).double(), hue.reshape(-1).double()
    direction = torch.stack([hue.cos(), hue.sin()], dim=1)  # (K, 2)
    lo, hi = torch.zeros_like(L), torch.full_like(L, _AB_SEARCH_MAX)
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = in_gamut(L, direction * mid[:, None])
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return (direction * lo[:, None]).float()


def random_gamut_ab(L: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(K, 2) random in-gamut ab at lightness ``L`` (K,): a uniform hue, and a chroma spread evenly over the
    area of that hue's in-gamut slice (chroma = edge * sqrt(u)), so vivid colours are as common as they are
    in the gamut, not crowded near grey."""
    K = L.numel()
    hue = torch.rand(K, generator=generator, dtype=torch.float64) * (2 * math.pi)
    u = torch.rand(K, generator=generator, dtype=torch.float64)
    return max_chroma_ab(L, hue) * u.sqrt().float()[:, None]


def far_gamut_ab(
    L: torch.Tensor, true_ab: torch.Tensor, generator: torch.Generator | None = None, spread: float = math.pi / 4
) -> torch.Tensor:
    """(K, 2) in-gamut ab far from ``true_ab`` (K, 2) at lightness ``L`` (K,): the opposite hue give or take
    ``spread`` radians, at 90% of the gamut's edge (an evaluation's off-truth hint colour)."""
    K = L.numel()
    true_ab = true_ab.reshape(K, 2).double()
    jitter = (torch.rand(K, generator=generator, dtype=torch.float64) * 2 - 1) * spread
    hue = torch.atan2(true_ab[:, 1], true_ab[:, 0]) + math.pi + jitter
    return max_chroma_ab(L, hue) * 0.9


def hint_regions(L: torch.Tensor, seeds: torch.Tensor, radius: int, l_tol: float, smooth: bool = True) -> torch.Tensor:
    """The region each hint colours: grown from the hint's square through pixels of similar lightness.

    A flood fill, ``radius`` steps of 8-connected growth, through pixels whose L (3 x 3 box-smoothed against
    texture) is within ``l_tol`` of the hint square's mean L; it stops at edges (a lightness change) and
    fades with the number of steps: weight 1 up to ``radius / 2`` steps, linearly down to 0 at ``radius``.

    Args:
        L: (K, 1, H, W) float, lightness (0..100) of the photo each hint lies in; NaN = never in a region.
        seeds: (K, 1, H, W) float in {0, 1}, each row one hint's square (non-empty).
        radius: growth steps (px on this grid), >= 1.
        l_tol: lightness tolerance, L units.
        smooth: box-smooth L here (False: the caller already did, e.g. before cropping).
    Returns:
        (K, 1, H, W) float weights in [0, 1], 1 on the seed.
    """
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    seeds = seeds > 0.5
    Ls = smooth_lightness(L) if smooth else L.float()
    L_seed = torch.nan_to_num(Ls * seeds).sum((2, 3), keepdim=True) / seeds.sum((2, 3), keepdim=True).clamp(min=1)
    allowed = ((Ls - L_seed).abs() <= l_tol) | seeds  # NaN compares False: outside the photo
    reached = seeds.clone()
    dist = torch.where(seeds, 0.0, float(radius))  # steps to reach each pixel; radius = not reached (weight 0)
    for step in range(1, radius):
        grown = (F.max_pool2d(reached.float(), 3, stride=1, padding=1) > 0) & allowed
        new = grown & ~reached
        if not bool(new.any()):
            break
        dist = torch.where(new, float(step), dist)
        reached = grown
    return (2.0 - 2.0 * dist / radius).clamp(0.0, 1.0)


def smooth_lightness(L: torch.Tensor) -> torch.Tensor:
    """(K, 1, H, W) L box-smoothed 3 x 3 (edges replicated): what :func:`hint_regions` compares."""
    return F.avg_pool2d(F.pad(L.float(), (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def recolor_hints(
    L: torch.Tensor,
    ab: torch.Tensor,
    starts: torch.Tensor,
    patch: int = HINT_PATCH,
    generator: torch.Generator | None = None,
    fraction: float = 0.5,
    max_per_photo: int = 3,
    radius: int = 32,
    l_tol: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training hints some of which ask for a colour that is not the truth, with the target changed to match.

    Each photo with at least one hint square (``starts``, from :func:`sample_hint_corners`) is picked with
    probability ``fraction``; a picked photo gets 1..``max_per_photo`` (uniform, at most its hint count) of
    its squares recoloured with a random in-gamut colour at the square's lightness (:func:`random_gamut_ab`).
    The target takes that colour over the hint's region (:func:`hint_regions`, blended by the region's
    weight, overlapping regions averaged by weight) and is brought back into sRGB there; L is untouched.
    Every hint, true or not, is then painted from the new target (:func:`paint_hints`), so a true-colour hint
    inside a recoloured region carries the region's new colour and hints never contradict the target.

    Args:
        L: (B, 1, H, W) lightness 0..100.
        ab: (B, 2, H, W) true ab, CIE units.
        starts: (B, 1, H - p + 1, W - p + 1) chosen square corners in {0, 1}.
        patch, generator: as :func:`sample_hints`.
        fraction: share of hinted photos that get off-truth hints (0 = plain true-colour hints).
        max_per_photo, radius, l_tol: see above.
    Returns:
        hint_ab (B, 2, H, W) CIE units (0 where no hint), hint_mask (B, 1, H, W) in {0, 1}, and the new
        target ab (B, 2, H, W) CIE units; all float like ``ab``, on its device.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if max_per_photo < 1:
        raise ValueError(f"max_per_photo must be >= 1, got {max_per_photo}")
    B, _, H, W = ab.shape
    p = min(patch, H, W)
    starts = starts.cpu()
    target = ab
    picked = torch.rand(B, generator=generator) < fraction
    rows: list[tuple[int, int, int]] = []  # (photo, corner row, corner col) of each recoloured square
    for i in range(B):
        corners = starts[i, 0].nonzero()  # (n, 2)
        if not bool(picked[i]) or len(corners) == 0:
            continue
        k = int(torch.randint(1, min(max_per_photo, len(corners)) + 1, (1,), generator=generator))
        chosen = corners[torch.randperm(len(corners), generator=generator)[:k]]
        rows += [(i, int(r), int(c)) for r, c in chosen]
    if rows:
        target = _recolor_regions(L, ab, rows, p, generator, radius, l_tol)
    hint_ab, hint_mask = paint_hints(target, starts, p)
    return hint_ab, hint_mask, target


def _recolor_regions(L, ab, rows, p, generator, radius, l_tol):
    """:func:`recolor_hints`' new target: ``rows`` = (photo, corner row, corner col) of each recoloured square.

    Each region is grown in a window reaching ``radius`` px around its square (it cannot reach further), so
    the cost does not grow with the photo."""
    B, _, H, W = ab.shape
    K, r_ = len(rows), radius
    idx = torch.tensor([i for i, _, _ in rows], device=ab.device)
    Lpad = F.pad(smooth_lightness(L), (r_, r_, r_, r_), value=float("nan"))  # (B, 1, H + 2r, W + 2r)
    side = 2 * r_ + p
    Lwin = torch.stack([Lpad[i, :, r : r + side, c : c + side] for i, r, c in rows])  # (K, 1, side, side)
    seeds = torch.zeros(K, 1, side, side, device=ab.device)
    seeds[:, :, r_ : r_ + p, r_ : r_ + p] = 1.0
    L_seed = (Lwin * seeds).nan_to_num().sum((1, 2, 3)) / (p * p)
    colours = random_gamut_ab(L_seed.cpu(), generator).to(ab.device)  # (K, 2)
    w = hint_regions(Lwin, seeds, radius, l_tol, smooth=False)  # (K, 1, side, side)
    wsum = torch.zeros(B, 1, H + 2 * r_, W + 2 * r_, device=ab.device)
    csum = torch.zeros(B, 2, H + 2 * r_, W + 2 * r_, device=ab.device)
    for j, (i, r, c) in enumerate(rows):
        wsum[i, :, r : r + side, c : c + side] += w[j]
        csum[i, :, r : r + side, c : c + side] += w[j] * colours[j, :, None, None]
    wsum, csum = wsum[:, :, r_ : r_ + H, r_ : r_ + W], csum[:, :, r_ : r_ + H, r_ : r_ + W]
    alpha = wsum.clamp(max=1.0)
    new = ab.float() * (1 - alpha) + csum / wsum.clamp(min=1e-6) * alpha
    # Blended and spread over other lightnesses a colour can leave sRGB: bring it back where it changed.
    where = (alpha[:, 0] > 0).nonzero(as_tuple=True)  # (b, y, x) of the changed pixels
    lab = torch.stack([L[where[0], 0, where[1], where[2]].float(), new[where[0], 0, where[1], where[2]],
                       new[where[0], 1, where[1], where[2]]])  # (3, N)
    fixed = rgb_to_lab(lab_to_rgb(lab[:, :, None], clip=True))[1:, :, 0]  # (2, N)
    for c in (0, 1):
        new[where[0], c, where[1], where[2]] = fixed[c]
    return new.to(ab.dtype)


# ----------------------------------------------------------------------------------------------------------
# Hint fidelity: does a hint whose colour is NOT the truth land where it was put, and stay in its region?
# True-colour hints cannot tell obeying a hint from guessing the colour anyway (issue 13).


def off_truth_probe(
    L: torch.Tensor,
    ab: torch.Tensor,
    generator: torch.Generator | None = None,
    patch: int = HINT_PATCH,
    radius: int = 32,
    l_tol: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One hint per photo, far from the truth, for measuring hint fidelity.

    The hint's ``patch`` x ``patch`` square lies at a random place at least an eighth of the photo from every
    edge; its colour is :func:`far_gamut_ab` of the true mean ab there, at the square's mean lightness.

    Args:
        L: (B, 1, H, W) lightness 0..100; ab: (B, 2, H, W) true ab, CIE units.
        generator: for the places and colours (seed it for a repeatable probe).
        radius, l_tol: the hint's region (:func:`hint_regions`), where its colour is meant to go.
    Returns:
        hint_ab (B, 2, H, W) CIE units, hint_mask (B, 1, H, W) in {0, 1}, region (B, 1, H, W) weights in [0, 1].
    """
    B, _, H, W = ab.shape
    p = min(patch, H, W)
    rows = _inner_positions(B, H, p, generator)
    cols = _inner_positions(B, W, p, generator)
    seeds = torch.zeros(B, 1, H, W, device=ab.device)
    for i in range(B):
        seeds[i, 0, rows[i] : rows[i] + p, cols[i] : cols[i] + p] = 1.0
    n = seeds.sum((2, 3))  # (B, 1)
    L_hint = (L.float() * seeds).sum((2, 3))[:, 0] / n[:, 0]
    true_ab = (ab.float() * seeds).sum((2, 3)) / n  # (B, 2)
    colour = far_gamut_ab(L_hint.cpu(), true_ab.cpu(), generator).to(ab.device)
    region = hint_regions(L, seeds, radius, l_tol)
    return (seeds * colour[:, :, None, None]).to(ab.dtype), seeds.to(ab.dtype), region.to(ab.dtype)


def _inner_positions(batch: int, size: int, p: int, generator: torch.Generator | None) -> list[int]:
    """``batch`` random square starts along an axis of ``size`` px, an eighth of it away from both ends."""
    lo = size // 8
    hi = max(lo, size - size // 8 - p)
    return [int(v) for v in torch.randint(lo, hi + 1, (batch,), generator=generator)]


def hint_fidelity(
    L: torch.Tensor,
    ab_hinted: torch.Tensor,
    ab_base: torch.Tensor,
    hint_ab: torch.Tensor,
    hint_mask: torch.Tensor,
    region: torch.Tensor,
    reach: int = 2,
) -> dict[str, torch.Tensor]:
    """How well one hint per photo was obeyed, per photo.

    Args:
        L: (B, 1, H, W) lightness 0..100 (the photo's: fidelity is about ab only).
        ab_hinted: (B, 2, H, W) the model's ab with the hint; ab_base: the same without it (CIE units).
        hint_ab, hint_mask: the one hint per photo (as :func:`off_truth_probe` gives).
        region: (B, 1, H, W) the hint's region (weights; > 0 is inside).
        reach: the obtained colour is the mean of ``ab_hinted`` over the hint's square grown by this many px.
    Returns:
        (B,) float tensors: ``de00`` CIEDE2000 between requested and obtained colour, both at the hint's
        lightness; ``chroma`` the fraction of the requested chroma obtained along the requested direction
        (<obtained, requested> / |requested|^2, 1 = all of it); ``hue`` the hue difference in degrees;
        ``change_in`` / ``change_out`` the mean ab change (Euclidean, CIE units) the hint caused inside its
        region and outside it (leak).
    """
    from skimage.color import deltaE_ciede2000

    k = 2 * reach + 1
    near = (F.max_pool2d(hint_mask.float(), k, stride=1, padding=reach) > 0).float()  # (B, 1, H, W)
    n = near.sum((2, 3))  # (B, 1)
    m = hint_mask.float().sum((2, 3))
    obtained = (ab_hinted.float() * near).sum((2, 3)) / n  # (B, 2)
    requested = (hint_ab.float() * hint_mask).sum((2, 3)) / m
    L_hint = (L.float() * hint_mask).sum((2, 3)) / m  # (B, 1)
    lab_req = torch.cat([L_hint, requested], 1).double().numpy()
    lab_got = torch.cat([L_hint, obtained], 1).double().numpy()
    de00 = torch.from_numpy(deltaE_ciede2000(lab_req, lab_got)).float()
    chroma = (obtained * requested).sum(1) / (requested * requested).sum(1).clamp(min=1e-6)
    hue = torch.atan2(obtained[:, 1], obtained[:, 0]) - torch.atan2(requested[:, 1], requested[:, 0])
    hue = torch.rad2deg(torch.atan2(hue.sin(), hue.cos()).abs())
    change = (ab_hinted.float() - ab_base.float()).norm(dim=1, keepdim=True)  # (B, 1, H, W)
    inside = (region > 0).float()
    outside = 1.0 - inside
    change_in = (change * inside).sum((1, 2, 3)) / inside.sum((1, 2, 3)).clamp(min=1)
    change_out = (change * outside).sum((1, 2, 3)) / outside.sum((1, 2, 3)).clamp(min=1)
    return {"de00": de00, "chroma": chroma, "hue": hue, "change_in": change_in, "change_out": change_out}


def summarize_fidelity(scores: dict[str, torch.Tensor]) -> dict[str, float]:
    """The issue's headline numbers from per-photo :func:`hint_fidelity` scores: median CIEDE2000 and chroma
    fraction, mean hue error, and ``leak`` = mean change outside the region / mean change inside it."""
    return {
        "de00_median": scores["de00"].median().item(),
        "chroma_median": scores["chroma"].median().item(),
        "hue_mean": scores["hue"].mean().item(),
        "change_in": scores["change_in"].mean().item(),
        "change_out": scores["change_out"].mean().item(),
        "leak": (scores["change_out"].mean() / scores["change_in"].mean().clamp(min=1e-6)).item(),
    }
