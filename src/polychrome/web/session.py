"""One server's photos and what its requests do with them, over a :class:`polychrome.Colorizer`."""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from fastapi import HTTPException
from PIL import Image

from polychrome.color.hints import TOO_DEEP, Hint, HintError, ab_to_hex, parse_hints, refine_base
from polychrome.colorizer import Colorizer, RefinedColorizer
from polychrome.io import ImageError, encode_image, photo_pixels, read_image, rgb_array_to_pil
from polychrome.io.images import jpeg_quality
from polychrome.pipeline import working_shape
from polychrome.pipeline.batch import provenance
from polychrome.pipeline.core import lightness_rows, working_lightness
from polychrome.web.limits import Limits, check_pixels, too_many_pixels
from polychrome.web.schemas import DoubtSpot, PhotoInfo, Suggestion

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------
# The photo store


@dataclass
class Photo:
    """One uploaded photo: the file as uploaded, its lightness at the working and preview sizes, and cached
    model outputs on the working grid. Nothing at full resolution is kept decoded: a full-resolution job
    decodes the file when it runs (:meth:`Session.full`), so a request waiting in the queue holds at most
    the uploaded bytes (``Limits.max_upload_bytes``)."""

    id: str
    name: str
    data: bytes  # the uploaded file, as sent
    width: int
    height: int
    L_work: torch.Tensor  # (1, 1, h, w) the model's input L on the working grid (as colorize computes it)
    L_preview: torch.Tensor  # (1, 1, ph, pw) the display L of previews
    jpeg_quality: int | None = None  # the upload's JPEG quality (libjpeg scale), None when not a JPEG
    ab_cache: OrderedDict = field(default_factory=OrderedDict)  # key -> (1, 2, h, w) ab, Lab units

    @property
    def hw(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def nbytes(self) -> int:
        tensors = [self.L_work, self.L_preview, *self.ab_cache.values()]
        return len(self.data) + sum(t.numel() * t.element_size() for t in tensors)

    def info(self) -> PhotoInfo:
        (H, W), (h, w), (ph, pw) = self.hw, self.L_work.shape[-2:], self.L_preview.shape[-2:]
        return PhotoInfo(
            id=self.id, name=self.name, width=W, height=H,
            working_width=w, working_height=h, preview_width=pw, preview_height=ph, jpeg_quality=self.jpeg_quality,
        )  # fmt: skip


#: JPEG quality of a full-resolution result when the upload was not a JPEG (a JPEG upload's own is kept).
DEFAULT_JPEG_QUALITY = 92

#: Cached ab results per photo (automatic + a few recent hint sets); each is small (2 x working grid).
AB_CACHE_ENTRIES = 6


class PhotoStore:
    """Photos kept in memory, least recently used dropped first when over a count or a byte budget."""

    def __init__(self, max_photos: int, max_bytes: int):
        self.max_photos, self.max_bytes = max_photos, max_bytes
        self._photos: OrderedDict[str, Photo] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, photo: Photo) -> None:
        with self._lock:
            self._photos[photo.id] = photo
            self._evict()

    def get(self, photo_id: str) -> Photo:
        with self._lock:
            photo = self._photos.get(photo_id)
            if photo is None:
                gone = f"photo {photo_id!r} is not on the server (dropped from memory or never uploaded)"
                raise HTTPException(404, f"{gone}; upload it again")
            self._photos.move_to_end(photo_id)
            return photo

    def remove(self, photo_id: str) -> None:
        with self._lock:
            if self._photos.pop(photo_id, None) is None:
                raise HTTPException(404, f"photo {photo_id!r} is not on the server")

    def cached_ab(self, photo: Photo, key) -> torch.Tensor | None:
        with self._lock:
            ab = photo.ab_cache.get(key)
            if ab is not None:
                photo.ab_cache.move_to_end(key)
            return ab

    def cache_ab(self, photo: Photo, key, ab: torch.Tensor) -> None:
        with self._lock:
            photo.ab_cache[key] = ab
            while len(photo.ab_cache) > AB_CACHE_ENTRIES:
                photo.ab_cache.popitem(last=False)
            self._evict()

    def nbytes(self) -> int:
        with self._lock:
            return sum(p.nbytes() for p in self._photos.values())

    def __len__(self) -> int:
        return len(self._photos)

    def _evict(self) -> None:
        # The newest photo always stays, even alone over the budget: max_pixels bounds its size.
        while len(self._photos) > 1 and (
            len(self._photos) > self.max_photos or sum(p.nbytes() for p in self._photos.values()) > self.max_bytes
        ):
            dropped, _ = self._photos.popitem(last=False)
            log.info("photo store: dropped %s (least recently used)", dropped)


# ----------------------------------------------------------------------------------------------------
# Small helpers


def encode(rgb: torch.Tensor | Image.Image, fmt: str, quality: int = 90) -> bytes:
    """sRGB (1, 3, H, W) in [0, 1], or an 8-bit PIL image -> encoded image bytes (``"png"`` or ``"jpeg"``)."""
    img = rgb if isinstance(rgb, Image.Image) else rgb_array_to_pil(rgb[0].permute(1, 2, 0).numpy())
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format="PNG", compress_level=1 if img.width * img.height < 2_000_000 else 3)
    return buf.getvalue()


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def hints_key(hints: list[Hint]) -> tuple:
    return tuple((h.x, h.y, h.color) for h in hints)


def stem(name: str) -> str:
    stem = Path(name).stem or "photo"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]


def least_sure_cells(
    doubt: torch.Tensor, count: int, taken: list[tuple[int, int]] = ()
) -> tuple[list[tuple[int, int, float]], float]:
    """The peaks of a doubt map (h, w) (larger: less sure): ``([(row, col, value), ...], reach)``, most
    doubtful first.

    The map is first averaged over windows of about a sixteenth of its short side (a region, not one odd
    cell), then peaks are taken greedily, each at least ``reach`` = an eighth of the long side away from
    the earlier ones and from the ``taken`` cells (hints already placed), and not within one window of the
    border (models are unsure along every border, where a hint helps little); only peaks above the map's
    mean count, so a photo the model is sure of everywhere gets few or none."""
    h, w = doubt.shape
    k = max(3, (min(h, w) // 16) | 1)
    smooth = torch.nn.functional.avg_pool2d(
        doubt.float().view(1, 1, h, w), k, stride=1, padding=k // 2, count_include_pad=False
    )[0, 0]
    reach = max(h, w) / 8.0
    rows = torch.arange(h, dtype=torch.float32).view(h, 1)
    cols = torch.arange(w, dtype=torch.float32).view(1, w)
    free = torch.zeros(h, w, dtype=torch.bool)
    free[k : max(k, h - k), k : max(k, w - k)] = True

    def block(r: int, c: int) -> None:
        free.logical_and_((rows - r) ** 2 + (cols - c) ** 2 >= reach**2)

    for r, c in taken:
        block(r, c)
    floor = float(smooth.mean())
    out: list[tuple[int, int, float]] = []
    while len(out) < count and bool(free.any()):
        masked = torch.where(free, smooth, torch.tensor(float("-inf")))
        i = int(masked.argmax())
        r, c, v = i // w, i % w, float(masked.view(-1)[i])
        if not v > floor:
            break
        out.append((r, c, v))
        block(r, c)
    return out, reach


class Session:
    """What the page's requests do with one Colorizer (and the optional automatic one): an upload is kept as
    its file and its L on the working and preview grids, every request runs the model once on the
    working-grid L (cached per hint list) and renders that ab onto the L it needs: the preview's, or the
    photo's own, decoded from the file when a full-resolution job runs."""

    def __init__(
        self, model: Colorizer, auto: Colorizer | None, model_name: str, auto_name: str | None, limits: Limits,
        size: int, preview_size: int, start_from_auto: bool = True,
    ):
        self.model, self.auto, self.model_name, self.auto_name = model, auto, model_name, auto_name
        # A hint model beside an automatic one: the page starts from the automatic result and hints refine it.
        self.refines = bool(start_from_auto and auto is not None and model.card.takes_hints)
        self.limits, self.size, self.preview_size = limits, size, preview_size
        self.store = PhotoStore(limits.max_photos, limits.max_store_bytes)
        # The note every download carries: the command-line equivalent's (colorize --hints --base AUTO).
        self.provenance = provenance(RefinedColorizer(model, auto) if self.refines else model)

    def read_hints(self, photo: Photo, body: bytes) -> list[Hint]:
        if not body.strip():
            raise HTTPException(422, "request body is empty: expected a JSON list of hints ([] for none)")
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPException(422, f"request body is not valid JSON ({one_line(e)})") from None
        except RecursionError:
            raise HTTPException(422, f"request body: {TOO_DEEP}") from None
        try:
            hints = parse_hints(obj, "hints")
        except HintError as e:
            raise HTTPException(422, one_line(e)) from None
        if len(hints) > self.limits.max_hints:
            raise HTTPException(422, f"too many hints: {len(hints)} > {self.limits.max_hints}")
        H, W = photo.hw
        for i, h in enumerate(hints):
            if not (h.x < W and h.y < H):
                raise HTTPException(422, f"hints: hint {i} at ({h.x:g}, {h.y:g}) lies outside the {W}x{H} photo")
        if hints and not self.model.card.takes_hints:
            raise HTTPException(422, f"model {self.model_name} cannot use colour hints; serve a hint model such as 'hints'")
        return hints

    def ab_work(self, photo: Photo, net: Colorizer, tag: str, hints: list[Hint]) -> torch.Tensor:
        """ab (1, 2, h, w) on the working grid for ``hints`` (full-resolution coordinates), cached."""
        key = (tag, hints_key(hints))
        ab = self.store.cached_ab(photo, key)
        if ab is not None:
            return ab
        try:
            ab = net.predict_working(photo.L_work, hints or None, full_hw=photo.hw).ab
        except HintError as e:
            raise HTTPException(422, one_line(e)) from None
        self.store.cache_ab(photo, key, ab)
        return ab

    def result_ab(self, photo: Photo, hints: list[Hint]) -> torch.Tensor:
        """The page's result on the working grid: the hint model's, or (:attr:`refines`) the automatic model's
        result with the hints applied on top (:func:`~polychrome.color.hints.refine_base`). Preview and
        download both render this."""
        if not self.refines:
            return self.ab_work(photo, self.model, "model", hints)
        base = self.ab_work(photo, self.auto, "auto", [])
        if not hints:
            return base
        return refine_base(base, self.ab_work(photo, self.model, "model", []), self.ab_work(photo, self.model, "model", hints))

    def preview(self, photo: Photo, hints: list[Hint], fmt: str) -> tuple[bytes, float]:
        t0 = time.perf_counter()
        data = encode(self.model.render(photo.L_preview, self.result_ab(photo, hints)), fmt)
        return data, time.perf_counter() - t0

    def suggest(self, photo: Photo, x: float, y: float, hints: list[Hint]) -> list[Suggestion]:
        (H, W), (h, w) = photo.hw, tuple(photo.L_work.shape[-2:])
        col, row = min(int(x * w / W), w - 1), min(int(y * h / H), h - 1)
        r0, r1, c0, c1 = max(row - 1, 0), min(row + 2, h), max(col - 1, 0), min(col + 2, w)

        def at(ab: torch.Tensor) -> tuple[float, float]:  # mean over the 3x3 cells around the spot
            a, b = ab[0, :, r0:r1, c0:c1].mean(dim=(1, 2)).tolist()
            return a, b

        L_spot = float(photo.L_work[0, 0, r0:r1, c0:c1].mean())
        L_show = min(max(L_spot, 40.0), 80.0)
        found: list[tuple[str, str, tuple[float, float]]] = []
        if self.model.card.takes_hints:
            found.append(("hint-model-auto", "automatic, no hints", at(self.ab_work(photo, self.model, "model", []))))
            if hints or self.refines:
                found.append(("current", "current result", at(self.result_ab(photo, hints))))
        else:
            found.append(("current", "current result", at(self.ab_work(photo, self.model, "model", []))))
        if self.auto is not None:
            found.append(("auto-model", f"{self.auto_name} model", at(self.ab_work(photo, self.auto, "auto", []))))
        out: list[Suggestion] = []
        for source, label, (a, b) in found:
            if any(((a - s.ab[0]) ** 2 + (b - s.ab[1]) ** 2) ** 0.5 < 8.0 for s in out):
                continue
            hexed = ab_to_hex(L_show, a, b)
            ab = (round(a, 2), round(b, 2))
            out.append(Suggestion(color=hexed, ab=ab, lightness=round(L_show, 2), source=source, label=label))
        return out

    def doubt_map(self, photo: Photo) -> tuple[str, str, torch.Tensor] | None:
        """Where the models are least sure of their colour, on the working grid: (source, label, map (h, w))
        with larger values less sure, or None when this server has nothing to measure it with.

        In this order: the confidence head of the page's model (1 - confidence), else that of the automatic
        model, else the disagreement between the hint model's automatic result and the automatic model's
        (the ab distance between them, CIE units): where two models trained differently disagree, the
        colour is a guess."""
        for net, tag, name in ((self.model, "model", self.model_name), (self.auto, "auto", self.auto_name)):
            if net is not None and net.card.gives_confidence:
                key = ("doubt", tag)
                conf = self.store.cached_ab(photo, key)
                if conf is None:
                    conf = net.predict_working(photo.L_work, confidence=True).confidence
                    self.store.cache_ab(photo, key, conf)
                return "confidence", f"{name} model's confidence", 1.0 - conf[0, 0]
        if self.auto is not None and self.model.card.takes_hints:
            own, auto = self.ab_work(photo, self.model, "model", []), self.ab_work(photo, self.auto, "auto", [])
            label = f"where {self.model_name} and {self.auto_name} disagree"
            return "disagreement", label, (own - auto)[0].norm(dim=0)
        return None

    def doubtful_spots(self, photo: Photo, hints: list[Hint], count: int) -> tuple[str, str, list[DoubtSpot]]:
        """Up to ``count`` spots (original photo pixels) where a hint would help most: :meth:`doubt_map`'s
        peaks, away from each other and from the ``hints`` already placed."""
        found = self.doubt_map(photo)
        if found is None:
            return "none", "no model on this server measures its own doubt", []
        source, label, doubt = found
        (H, W), (h, w) = photo.hw, tuple(doubt.shape)
        taken = [(min(int(q.y * h / H), h - 1), min(int(q.x * w / W), w - 1)) for q in hints]
        cells, reach = least_sure_cells(doubt, count, taken)
        sx, sy = W / w, H / h
        spots = [
            DoubtSpot(
                x=min(int((c + 0.5) * sx), W - 1), y=min(int((r + 0.5) * sy), H - 1),
                radius=round(reach * 0.5 * max(sx, sy), 1), doubt=round(v, 3),
            )
            for r, c, v in cells
        ]  # fmt: skip
        return source, label, spots

    def full(self, photo: Photo, hints: list[Hint], fmt: str) -> bytes:
        """The full-resolution result as a file: the working-grid ab of the preview joined with the photo's
        own L, decoded from the upload now (its turn in the queue), by polychrome colorize's path
        (:meth:`Colorizer.render_pixels`): the same pixels (alpha kept in a PNG; 16 bits for a 16-bit scan
        in a PNG), EXIF (orientation reset), ICC profile, DPI and provenance note (:func:`provenance`)."""
        ab = self.result_ab(photo, hints)
        img, metadata = self._read(photo.data, photo.name)
        pixels = photo_pixels(img, photo.name)
        del img
        out = self.model.render_pixels(pixels, ab, bits=16 if fmt == "png" else 8)
        del pixels
        buf = io.BytesIO()
        if fmt == "jpeg":
            kw = {"quality": photo.jpeg_quality or DEFAULT_JPEG_QUALITY}
        else:
            kw = {"compress_level": 1 if photo.pixels < 2_000_000 else 3}
        encode_image(out, buf, fmt.upper(), replace(metadata, software=self.provenance), photo.name, **kw)
        return buf.getvalue()

    @staticmethod
    def _read(data: bytes, name: str):
        try:
            return read_image(io.BytesIO(data), name)
        except ImageError as e:
            raise HTTPException(422, one_line(e)) from None

    def decode(self, path: str, name: str) -> Photo:
        """An upload (a file ``path`` named ``name`` by its sender) -> a :class:`Photo`: its bytes, and its L on
        the working and preview grids, computed a band at a time from the decoded photo (as colorize does),
        which is then let go."""
        check_pixels(path, name, self.limits.max_pixels)
        data = Path(path).read_bytes()
        img, _ = self._read(data, name)
        if img.width * img.height > self.limits.max_pixels:
            raise HTTPException(413, too_many_pixels(name, img.width, img.height, self.limits.max_pixels))
        pixels = photo_pixels(img, name)
        rows, (W, H) = lightness_rows(pixels), img.size
        L_work = working_lightness(rows, (H, W), self.model.working_shape(H, W, self.size))
        L_preview = working_lightness(rows, (H, W), working_shape(H, W, self.preview_size))
        return Photo(
            secrets.token_urlsafe(9), name, data, W, H, L_work.contiguous(), L_preview.contiguous(),
            jpeg_quality(io.BytesIO(data)),
        )  # fmt: skip
