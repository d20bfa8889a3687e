"""The interactive hint page's server: a FastAPI app over a :class:`polychrome.Colorizer`.

A person uploads a photo once; the server keeps its lightness in memory and answers every later
request from it:

    POST /api/photos                     multipart photo -> id and size (the photo's L is kept, LRU)
    POST /api/photos/{id}/colorize       hint list -> preview image (long side ``preview_size``)
    POST /api/photos/{id}/suggestions    ?x=&y= + hint list -> colours the models propose at that spot
    POST /api/photos/{id}/full           hint list -> the full-resolution result (the CLI's path)
    POST /api/photos/{id}/hints          hint list -> the canonical hint file (for `colorize --hints`)
    GET  /api/photos/{id}/gray           the grey input at preview size
    GET  /api/info                       the models, sizes and limits

Every request body is the hint file's structure, ``[{"x": 120, "y": 45, "color": "#aa3322"}, ...]``, in
pixel coordinates of the ORIGINAL photo (:mod:`polychrome.color.hints`); ``[]`` is automatic colourisation.

Why the preview is both fast and faithful: at upload the server computes, once, the full-resolution L,
the model's input L on the working grid (:meth:`Colorizer.working_l`) and a display-size L. Every request
runs the model once on the working-grid L (:meth:`Colorizer.predict_working`, cached per hint list) and
renders that ab onto an L (:meth:`Colorizer.render`): the display L for a preview, the full-resolution L
for the download. ``polychrome colorize`` is the same three calls on the same full-resolution L, so the
download is the CLI's result and the preview is it at display size.

Model calls run in worker threads (never on the event loop), at most ``Limits.jobs`` at a time; a
request over that is refused (429) rather than queued, and one that runs past ``Limits.timeout_s`` is
answered 504 (its thread finishes in the background and only then frees its job slot).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from torch import nn

from polychrome.color.hints import Hint, HintError, ab_to_hex, hints_to_json, parse_hints
from polychrome.colorizer import Colorizer, as_colorizer
from polychrome.io import ImageError, open_image, pil_to_rgb_array, rgb_array_to_pil
from polychrome.pipeline import check_precision, gray_rgb, lightness, resize_l, working_shape

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("polychrome") / "web" / "static"))

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one server accepts. Every refusal is an HTTP error with a one-line JSON ``detail``."""

    max_upload_bytes: int = 25 * MB  # size of an uploaded photo file (413 over it)
    max_pixels: int = 30_000_000  # width x height of an uploaded photo, checked before decoding (413)
    max_photos: int = 16  # photos kept in memory; the least recently used is dropped first
    max_store_bytes: int = 1024 * MB  # memory for kept photos (their L at three sizes plus cached ab)
    max_hints: int = 500  # hints in one request (422 over it)
    max_json_bytes: int = 1 * MB  # a JSON request body (413 over it)
    jobs: int = 2  # colourisations (and photo decodes) running at once; one more gets 429
    timeout_s: float = 60.0  # a request's model work, seconds (504 past it)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")


# ----------------------------------------------------------------------------------------------------
# Response models (they are the OpenAPI documentation)


class ErrorDetail(BaseModel):
    detail: str = Field(description="One line naming the problem.", examples=["upload too large: 31.4 MB > 25 MB"])


class PhotoInfo(BaseModel):
    id: str = Field(description="Photo id for the other endpoints; valid while the photo is kept (LRU).")
    name: str = Field(description="The uploaded file's name.")
    width: int = Field(description="Width of the photo in pixels (EXIF orientation applied); hint x is in 0..width.")
    height: int = Field(description="Height of the photo in pixels; hint y is in 0..height.")
    working_width: int = Field(description="Width of the grid the model colourises on.")
    working_height: int = Field(description="Height of the grid the model colourises on.")
    preview_width: int = Field(description="Width of preview images (colorize, gray).")
    preview_height: int = Field(description="Height of preview images.")


class Suggestion(BaseModel):
    color: str = Field(description="#rrggbb: the proposed chroma shown at the spot's lightness (see `lightness`).")
    ab: tuple[float, float] = Field(description="The proposed Lab chroma (a, b), CIE units; what a hint uses.")
    lightness: float = Field(description="Lab L at which `color` is written: the spot's own L, kept within 40..80.")
    source: Literal["hint-model-auto", "current", "auto-model"] = Field(description="Which model output it is.")
    label: str = Field(description="A short human label for the source.")


class Suggestions(BaseModel):
    x: float
    y: float
    suggestions: list[Suggestion] = Field(description="Distinct colours (Lab chroma at least 8 apart), best first.")


class LimitsInfo(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    max_photos: int
    max_store_bytes: int
    max_hints: int
    max_json_bytes: int
    jobs: int
    timeout_s: float


class ServerInfo(BaseModel):
    model: str = Field(description="The model that colourises (a hint model unless told otherwise).")
    uses_hints: bool = Field(description="Whether that model takes colour hints; if not, any hint is a 422.")
    auto_model: str | None = Field(description="The automatic model asked for suggestions, if any.")
    working_size: int = Field(description="Longest side of the model's working grid, px.")
    preview_size: int = Field(description="Longest side of preview images, px.")
    precision: str
    limits: LimitsInfo


class HintIn(BaseModel):
    """One colour hint (documentation of the request bodies; they are parsed by polychrome.color.hints)."""

    x: float = Field(ge=0, description="Column in the ORIGINAL photo's pixels (0 = left edge), < width.")
    y: float = Field(ge=0, description="Row in the ORIGINAL photo's pixels (0 = top edge), < height.")
    color: str = Field(
        pattern=r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$",
        description="sRGB colour #rrggbb; only its chroma (Lab a, b) is used, the photo keeps its own L.",
    )


HINT_LIST_BODY = {
    "requestBody": {
        "required": True,
        "description": "Colour hints in the hint-file format, in ORIGINAL photo pixel coordinates; [] for none.",
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": HintIn.model_json_schema()},
                "example": [{"x": 120, "y": 45, "color": "#aa3322"}],
            }
        },
    }
}

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "No such photo (never uploaded, or dropped from memory: upload again)."},
    413: {"model": ErrorDetail, "description": "A body or file over its size limit, or a photo over the pixel limit."},
    422: {"model": ErrorDetail, "description": "Malformed or impossible hints or parameters."},
    429: {"model": ErrorDetail, "description": "All colourisation job slots are busy; retry after `Retry-After` s."},
    504: {"model": ErrorDetail, "description": "The model work took longer than the time limit."},
}


PhotoId = Annotated[str, PathParam(description="The id `POST /api/photos` returned.")]
PreviewFormat = Annotated[Literal["jpeg", "png"], Query(description="Image format of the preview.")]
FullFormat = Annotated[Literal["png", "jpeg"], Query(description="Image format of the result (JPEG at quality 95).")]


def _image_responses(description: str, media: tuple[str, ...] = ("image/jpeg", "image/png")) -> dict:
    return {200: {"content": {m: {} for m in media}, "description": description}}


# ----------------------------------------------------------------------------------------------------
# The photo store


@dataclass
class Photo:
    """One uploaded photo's lightness at three sizes, plus cached model outputs on the working grid."""

    id: str
    name: str
    L_full: torch.Tensor  # (1, 1, H, W) float32 L in [0, 100], the photo's own resolution
    L_work: torch.Tensor  # (1, 1, h, w) the model's input L on the working grid (Colorizer.working_l)
    L_preview: torch.Tensor  # (1, 1, ph, pw) the display L of previews
    ab_cache: OrderedDict = field(default_factory=OrderedDict)  # key -> (1, 2, h, w) ab, Lab units

    @property
    def hw(self) -> tuple[int, int]:
        return tuple(self.L_full.shape[-2:])

    def nbytes(self) -> int:
        tensors = [self.L_full, self.L_work, self.L_preview, *self.ab_cache.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def info(self) -> PhotoInfo:
        (H, W), (h, w), (ph, pw) = self.hw, self.L_work.shape[-2:], self.L_preview.shape[-2:]
        return PhotoInfo(
            id=self.id, name=self.name, width=W, height=H,
            working_width=w, working_height=h, preview_width=pw, preview_height=ph,
        )  # fmt: skip


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
# Jobs: model work in worker threads, bounded and timed


class JobGate:
    """At most ``jobs`` pieces of model work at once, each in a worker thread, each awaited with a timeout.

    A slot is freed when its thread finishes, not when its request gives up: a timed-out colourisation
    still occupies the CPU, so it still counts."""

    def __init__(self, jobs: int, timeout_s: float):
        self.jobs, self.timeout_s = jobs, timeout_s
        self._sem = threading.BoundedSemaphore(jobs)
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="polychrome-job")

    async def run(self, what: str, fn: Callable, *args):
        if not self._sem.acquire(blocking=False):
            raise HTTPException(
                429,
                f"server busy: {self.jobs} colourisation job(s) already running; retry in a moment",
                headers={"Retry-After": "1"},
            )
        try:
            fut: Future = self._pool.submit(fn, *args)
        except RuntimeError:  # pool shut down
            self._sem.release()
            raise HTTPException(503, "server is shutting down") from None
        # Released on completion, and also if the future is cancelled before its thread picks it up.
        fut.add_done_callback(lambda _: self._sem.release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout_s)
        except TimeoutError:
            raise HTTPException(504, f"{what} took longer than the {self.timeout_s:g} s limit") from None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# ----------------------------------------------------------------------------------------------------
# Small helpers


def _encode(rgb: torch.Tensor, fmt: str, quality: int = 90) -> bytes:
    """sRGB (1, 3, H, W) in [0, 1] -> encoded image bytes (``"png"`` or ``"jpeg"``)."""
    img = rgb_array_to_pil(rgb[0].permute(1, 2, 0).numpy())
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format="PNG", compress_level=1 if rgb.shape[-1] * rgb.shape[-2] < 2_000_000 else 3)
    return buf.getvalue()


MEDIA = {"png": "image/png", "jpeg": "image/jpeg"}


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _hints_key(hints: list[Hint]) -> tuple:
    return tuple((h.x, h.y, h.color) for h in hints)


def _stem(name: str) -> str:
    stem = Path(name).stem or "photo"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]


class _BodyLimit:
    """ASGI middleware: refuse a request body over its limit (413) before it is read into memory or disk.

    The photo upload may be ``upload_bytes`` plus a little multipart framing; every other body (hint
    lists) ``json_bytes``. Checked on Content-Length first, then on the bytes actually received."""

    FRAMING = 64 * 1024

    def __init__(self, app, upload_path: str, upload_bytes: int, json_bytes: int):
        self.app, self.upload_path = app, upload_path
        self.upload_bytes, self.json_bytes = upload_bytes, json_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        is_upload = scope["path"] == self.upload_path
        limit = self.upload_bytes + self.FRAMING if is_upload else self.json_bytes
        what = "upload" if is_upload else "request body"
        shown = self.upload_bytes if is_upload else self.json_bytes

        def too_big(n: int) -> str:
            return f"{what} too large: {_size(n)} > the {_size(shown)} limit"

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = JSONResponse({"detail": too_big(int(length))}, status_code=413, headers={"Connection": "close"})
            return await response(scope, receive, send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, too_big(seen))
            return message

        return await self.app(scope, counting_receive, send)


# ----------------------------------------------------------------------------------------------------
# The app


def _display_name(spec: str | nn.Module | Colorizer, model: Colorizer) -> str:
    """How the page names a model: a bundled name as is, a weight file by its file name, an object by its
    architecture."""
    if not isinstance(spec, str):
        return model.name
    return spec if os.sep not in spec and "." not in spec else Path(spec).name


def _default_auto_spec(model_spec) -> str | None:
    from polychrome.hub import bundled_names

    if "default" in bundled_names() and model_spec != "default":
        return "default"
    return None


def create_app(
    model_spec: str | nn.Module | Colorizer = "hints",
    auto_spec: str | nn.Module | Colorizer | None = None,
    limits: Limits = Limits(),
    size: int | None = None,
    preview_size: int = 640,
    precision: str = "fp32",
) -> FastAPI:
    """The web page and its API.

    Args:
        model_spec: the colourising model: a bundled name (``"hints"``), a weight path, a Colorizer or a
            loaded model (tests inject small ones). A hint model (its card's ``takes_hints``) is what the
            page is for; any other model still colourises automatically and answers 422 to hints.
        auto_spec: the automatic model whose colour at a spot is offered as a suggestion; None picks the
            bundled ``default`` model when there is one (and it is not ``model_spec``), ``""`` none.
        limits: see :class:`Limits`.
        size: the working size (longest side of the model's grid, px); None: the model card's.
        preview_size: longest side of the preview images, px (never above the photo's own).
        precision: ``"fp32"`` or ``"bf16"`` for the model call (:mod:`polychrome.pipeline.precision`); a
            Colorizer given in ``model_spec`` / ``auto_spec`` keeps its own.
    Raises:
        polychrome.hub.ModelLoadError for a model that cannot be loaded.
    """
    check_precision(precision)
    model = as_colorizer(model_spec, precision)
    if auto_spec is None:
        auto_spec = _default_auto_spec(model_spec)
    auto_model = as_colorizer(auto_spec, precision) if auto_spec not in (None, "") else None
    size = int(size or model.card.working_size)
    model_name = _display_name(model_spec, model)
    auto_name = None if auto_model is None else _display_name(auto_spec, auto_model)

    store = PhotoStore(limits.max_photos, limits.max_store_bytes)
    gate = JobGate(limits.jobs, limits.timeout_s)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        gate.shutdown()

    app = FastAPI(
        title="polychrome",
        version=_version(),
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN, which an offline machine cannot reach: /docs is
        # our own page rendering /openapi.json instead.
        docs_url=None,
        redoc_url=None,
        description=(
            "Colourise a black-and-white photo, automatically or guided by colour hints. Upload a photo once "
            "(`POST /api/photos`), then send hint lists `[{\"x\": 120, \"y\": 45, \"color\": \"#aa3322\"}]` in "
            "the ORIGINAL photo's pixel coordinates to get previews, colour suggestions for a spot, the "
            "full-resolution result and the hint file (the format `polychrome colorize --hints` reads). "
            "Errors are JSON `{\"detail\": \"one line\"}`."
        ),
    )
    def openapi() -> dict:
        """FastAPI's schema, with its default 422 body (a list of validation errors) replaced by what this
        app answers: every error here is ErrorDetail, one line."""
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for ops in spec["paths"].values():
                for op in ops.values():
                    r422 = op.get("responses", {}).get("422")
                    if r422 is not None:
                        r422["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
                        if r422.get("description") == "Validation Error":
                            r422["description"] = "Invalid parameters."
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            schemas.setdefault("ErrorDetail", ErrorDetail.model_json_schema())
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi
    app.state.store, app.state.gate, app.state.model, app.state.auto_model = store, gate, model, auto_model
    app.state.limits, app.state.size = limits, size
    app.add_middleware(
        _BodyLimit, upload_path="/api/photos", upload_bytes=limits.max_upload_bytes, json_bytes=limits.max_json_bytes
    )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return JSONResponse({"detail": _one_line("; ".join(parts)) or "invalid request"}, status_code=422)

    # ---- helpers bound to this app's model and limits

    def read_hints(photo: Photo, body: bytes) -> list[Hint]:
        if not body.strip():
            raise HTTPException(422, "request body is empty: expected a JSON list of hints ([] for none)")
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPException(422, f"request body is not valid JSON ({_one_line(e)})") from None
        try:
            hints = parse_hints(obj, "hints")
        except HintError as e:
            raise HTTPException(422, _one_line(e)) from None
        if len(hints) > limits.max_hints:
            raise HTTPException(422, f"too many hints: {len(hints)} > {limits.max_hints}")
        H, W = photo.hw
        for i, h in enumerate(hints):
            if not (h.x < W and h.y < H):
                raise HTTPException(422, f"hints: hint {i} at ({h.x:g}, {h.y:g}) lies outside the {W}x{H} photo")
        if hints and not model.card.takes_hints:
            raise HTTPException(422, f"model {model_name} cannot use colour hints; serve a hint model such as 'hints'")
        return hints

    def ab_work(photo: Photo, net: Colorizer, tag: str, hints: list[Hint]) -> torch.Tensor:
        """ab (1, 2, h, w) on the working grid for ``hints`` (full-resolution coordinates), cached."""
        key = (tag, _hints_key(hints))
        ab = store.cached_ab(photo, key)
        if ab is not None:
            return ab
        try:
            ab = net.predict_working(photo.L_work, hints or None, full_hw=photo.hw).ab
        except HintError as e:
            raise HTTPException(422, _one_line(e)) from None
        store.cache_ab(photo, key, ab)
        return ab

    def preview(photo: Photo, hints: list[Hint], fmt: str) -> tuple[bytes, float]:
        t0 = time.perf_counter()
        data = _encode(model.render(photo.L_preview, ab_work(photo, model, "model", hints)), fmt)
        return data, time.perf_counter() - t0

    def suggest(photo: Photo, x: float, y: float, hints: list[Hint]) -> list[Suggestion]:
        (H, W), (h, w) = photo.hw, tuple(photo.L_work.shape[-2:])
        col, row = min(int(x * w / W), w - 1), min(int(y * h / H), h - 1)
        r0, r1, c0, c1 = max(row - 1, 0), min(row + 2, h), max(col - 1, 0), min(col + 2, w)

        def at(ab: torch.Tensor) -> tuple[float, float]:  # mean over the 3x3 cells around the spot
            a, b = ab[0, :, r0:r1, c0:c1].mean(dim=(1, 2)).tolist()
            return a, b

        L_spot = float(photo.L_work[0, 0, r0:r1, c0:c1].mean())
        L_show = min(max(L_spot, 40.0), 80.0)
        found: list[tuple[str, str, tuple[float, float]]] = []
        if model.card.takes_hints:
            found.append(("hint-model-auto", "automatic, no hints", at(ab_work(photo, model, "model", []))))
            if hints:
                found.append(("current", "current result", at(ab_work(photo, model, "model", hints))))
        else:
            found.append(("current", "current result", at(ab_work(photo, model, "model", []))))
        if auto_model is not None:
            found.append(("auto-model", f"{auto_name} model", at(ab_work(photo, auto_model, "auto", []))))
        out: list[Suggestion] = []
        for source, label, (a, b) in found:
            if any(((a - s.ab[0]) ** 2 + (b - s.ab[1]) ** 2) ** 0.5 < 8.0 for s in out):
                continue
            hexed = ab_to_hex(L_show, a, b)
            ab = (round(a, 2), round(b, 2))
            out.append(Suggestion(color=hexed, ab=ab, lightness=round(L_show, 2), source=source, label=label))
        return out

    def full(photo: Photo, hints: list[Hint], fmt: str) -> bytes:
        # The working-grid ab of the preview, rendered onto the full-resolution L: polychrome colorize's path.
        return _encode(model.render(photo.L_full, ab_work(photo, model, "model", hints)), fmt, quality=95)

    def decode(path: str, name: str) -> Photo:
        _check_pixels(path, name, limits.max_pixels)
        try:
            img = open_image(path)
        except ImageError as e:
            raise HTTPException(422, _one_line(str(e).replace(path, name))) from None
        if img.width * img.height > limits.max_pixels:
            raise HTTPException(413, _too_many_pixels(name, img.width, img.height, limits.max_pixels))
        rgb, _alpha = pil_to_rgb_array(img)  # alpha is not kept: the page's results are opaque
        L = lightness(rgb)
        H, W = L.shape[-2:]
        L_work = model.working_l(L, size)
        L_preview = resize_l(L, working_shape(H, W, preview_size))
        return Photo(secrets.token_urlsafe(9), name, L, L_work.contiguous(), L_preview.contiguous())

    # ---- routes

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(STATIC_DIR / "api.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/info", response_model=ServerInfo, summary="Models, sizes and limits of this server")
    async def info() -> ServerInfo:
        return ServerInfo(
            model=model_name, uses_hints=model.card.takes_hints, auto_model=auto_name, working_size=size,
            preview_size=preview_size, precision=precision, limits=LimitsInfo(**asdict(limits)),
        )  # fmt: skip

    @app.post(
        "/api/photos",
        response_model=PhotoInfo,
        status_code=201,
        summary="Upload a photo",
        responses={k: ERRORS[k] for k in (413, 422, 429, 504)},
    )
    async def upload(
        file: Annotated[UploadFile, File(description="The photo (JPEG, PNG, WebP, TIFF, BMP; grey or colour).")],
    ) -> PhotoInfo:
        """Upload a photo once; the server keeps its lightness (full, working and preview size) in memory
        and returns its id. Colour in the photo is ignored: only its lightness is colourised.

        413: the file is over `max_upload_bytes` or the image over `max_pixels` (checked on the header,
        before decoding); 422: not an image PIL can read."""
        name = Path(file.filename or "photo").name
        fd, tmp = tempfile.mkstemp(prefix="polychrome-upload-", suffix=Path(name).suffix[:10])
        try:
            n = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := await file.read(1 << 20):
                    n += len(chunk)
                    if n > limits.max_upload_bytes:
                        raise HTTPException(413, f"upload too large: over the {_size(limits.max_upload_bytes)} limit")
                    out.write(chunk)
            if n == 0:
                raise HTTPException(422, f"{name}: the uploaded file is empty")
            photo = await gate.run("reading the photo", decode, tmp, name)
        finally:
            os.unlink(tmp)
        store.add(photo)
        return photo.info()

    @app.get(
        "/api/photos/{photo_id}", response_model=PhotoInfo, summary="A kept photo's sizes", responses={404: ERRORS[404]}
    )
    async def photo_info(photo_id: PhotoId) -> PhotoInfo:
        return store.get(photo_id).info()

    @app.delete("/api/photos/{photo_id}", status_code=204, summary="Forget a photo", responses={404: ERRORS[404]})
    async def delete_photo(photo_id: PhotoId) -> Response:
        store.remove(photo_id)
        return Response(status_code=204)

    @app.get(
        "/api/photos/{photo_id}/gray",
        summary="The grey input at preview size",
        response_class=Response,
        responses={**_image_responses("The photo's lightness as a grey image."), 404: ERRORS[404]},
    )
    async def gray(photo_id: PhotoId, format: PreviewFormat = "jpeg") -> Response:
        photo = store.get(photo_id)
        data = _encode(gray_rgb(photo.L_preview), format)
        return Response(data, media_type=MEDIA[format], headers={"Cache-Control": "no-store"})

    @app.post(
        "/api/photos/{photo_id}/colorize",
        summary="Preview: colourise with hints",
        response_class=Response,
        openapi_extra=HINT_LIST_BODY,
        responses={**_image_responses("The colourised photo at preview size (preview_width x height)."), **ERRORS},
    )
    async def colorize(request: Request, photo_id: PhotoId, format: PreviewFormat = "jpeg") -> Response:
        """Colourise the photo at the working size with the given hints and return it at preview size
        (the full-resolution L joined with upsampled ab, as `/full`, just smaller). `[]` gives the
        automatic result. Header `X-Elapsed-Ms`: the server's time for the model and encoding."""
        photo = store.get(photo_id)
        hints = read_hints(photo, await request.body())
        data, seconds = await gate.run("colourisation", preview, photo, hints, format)
        return Response(
            data,
            media_type=MEDIA[format],
            headers={"Cache-Control": "no-store", "X-Elapsed-Ms": f"{seconds * 1000:.0f}", "X-Hints": str(len(hints))},
        )

    @app.post(
        "/api/photos/{photo_id}/suggestions",
        response_model=Suggestions,
        summary="Colours the models propose at a spot",
        openapi_extra=HINT_LIST_BODY,
        responses=ERRORS,
    )
    async def suggestions(
        request: Request,
        photo_id: PhotoId,
        x: float = Query(ge=0, description="Column of the spot in ORIGINAL photo pixels."),
        y: float = Query(ge=0, description="Row of the spot in ORIGINAL photo pixels."),
    ) -> Suggestions:
        """A few distinct colours for the spot (x, y), each read from a model's output there (the mean ab
        over the 3x3 working-grid cells around the spot), in this order:

        1. `hint-model-auto`: the hint model's own automatic colour there (its output with NO hints);
        2. `current`: the colour the current result has there (the hint model's output with the hints in
           the body; send the other hints, without the one being edited); for a model that takes no
           hints, its automatic colour;
        3. `auto-model`: the bundled automatic model's (`default`) colour there.

        A colour within 8 Lab-chroma units of an earlier one is left out, so fewer than three may come
        back. The hex shows the chroma at the spot's lightness kept within 40..80 (dark and bright spots
        still show their hue); a hint uses only the chroma."""
        photo = store.get(photo_id)
        hints = read_hints(photo, await request.body())
        H, W = photo.hw
        if not (x < W and y < H):
            raise HTTPException(422, f"spot ({x:g}, {y:g}) lies outside the {W}x{H} photo")
        found = await gate.run("suggestions", suggest, photo, x, y, hints)
        return Suggestions(x=x, y=y, suggestions=found)

    @app.post(
        "/api/photos/{photo_id}/full",
        summary="The full-resolution result",
        response_class=Response,
        openapi_extra=HINT_LIST_BODY,
        responses={**_image_responses("The colourised photo at its full resolution (an attachment)."), **ERRORS},
    )
    async def full_result(request: Request, photo_id: PhotoId, format: FullFormat = "png") -> Response:
        """Colourise at the photo's full resolution with the given hints: the same Colorizer path as
        `polychrome colorize --hints`, at this server's working size."""
        photo = store.get(photo_id)
        hints = read_hints(photo, await request.body())
        data = await gate.run("full-resolution colourisation", full, photo, hints, format)
        ext = "png" if format == "png" else "jpg"
        return Response(
            data,
            media_type=MEDIA[format],
            headers={"Content-Disposition": f'attachment; filename="{_stem(photo.name)}-colour.{ext}"'},
        )

    @app.post(
        "/api/photos/{photo_id}/hints",
        summary="The hint file",
        response_class=JSONResponse,
        openapi_extra=HINT_LIST_BODY,
        responses={200: {"description": "The hint file (an attachment) for `colorize --hints FILE`."}, **ERRORS},
    )
    async def hint_file(request: Request, photo_id: PhotoId) -> JSONResponse:
        """Check the hints against the photo and return them as the canonical hint file
        (`polychrome.color.hints.hints_to_json`): the file `polychrome colorize PHOTO --hints FILE` reads."""
        photo = store.get(photo_id)
        hints = read_hints(photo, await request.body())
        return JSONResponse(
            hints_to_json(hints),
            headers={"Content-Disposition": f'attachment; filename="{_stem(photo.name)}.hints.json"'},
        )

    return app


def _size(n: int) -> str:
    """A byte count for a person: ``"25 MB"``, ``"1.5 KB"``."""
    for unit, scale in (("MB", MB), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _too_many_pixels(name: str, w: int, h: int, limit: int) -> str:
    return f"{name}: {w}x{h} pixels ({w * h / 1e6:.3g} MP) is over the {limit / 1e6:.3g} MP limit"


def _check_pixels(path: str, name: str, limit: int) -> None:
    """Refuse an over-large image from its header, before decoding it (a decompression bomb never unpacks).

    Anything the header read cannot make sense of is left to :func:`polychrome.io.open_image`, whose
    ImageError is the one reported."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise HTTPException(413, f"{name}: image is over the {limit / 1e6:.3g} MP limit") from None
    except Exception:  # noqa: BLE001 - open_image reports it properly
        return
    if w * h > limit:
        raise HTTPException(413, _too_many_pixels(name, w, h, limit))


def _version() -> str:
    from polychrome import __version__

    return __version__
