"""The interactive hint page's server: a FastAPI app over a :class:`polychrome.Colorizer`.

A person uploads a photo once; the server keeps the uploaded file and the photo's lightness at two small
sizes in memory and answers every later request from them:

    POST /api/photos                     multipart photo -> id and size (the photo is kept, LRU)
    POST /api/photos/{id}/colorize       hint list -> preview image (long side ``preview_size``)
    POST /api/photos/{id}/suggestions    ?x=&y= + hint list -> colours the models propose at that spot
    POST /api/photos/{id}/doubt          hint list -> up to 5 spots where the models are least sure
    POST /api/photos/{id}/full           hint list -> the full-resolution result (the CLI's path)
    POST /api/photos/{id}/hints          hint list -> the canonical hint file (for `colorize --hints`)
    GET  /api/photos/{id}/gray           the grey input at preview size
    GET  /api/info                       the models, sizes and limits
    GET  /api/queue?photo=ID             jobs running and waiting, and that photo's place in the queue

Every request body is the hint file's structure, ``[{"x": 120, "y": 45, "color": "#aa3322"}, ...]``, in
pixel coordinates of the ORIGINAL photo (:mod:`polychrome.color.hints`); ``[]`` is automatic colourisation.

Why the preview is both fast and faithful: at upload the server computes, once, the model's input L on
the working grid and a display-size L, a band of rows at a time from the decoded photo, as ``polychrome
colorize`` does; it keeps the uploaded file, not the decoded photo. Every request runs the model once on
the working-grid L (:meth:`Colorizer.predict_working`, cached per hint list) and renders that ab onto an
L: the display L for a preview (:meth:`Colorizer.render`), and for the download the photo's own L,
decoded from the upload when the job runs (:meth:`Colorizer.render_pixels`, the CLI's path: its pixels,
16 bits for a 16-bit scan as PNG, its EXIF, ICC profile, DPI and provenance note). So the download is the
CLI's file and the preview is it at display size, and a request waiting in the queue holds only the
uploaded bytes.

Model calls run in worker threads (never on the event loop), at most ``Limits.jobs`` at a time and at most
``Limits.job_pixels`` pixels among them (a full-resolution job's memory is about proportional to its
pixels); later requests wait in first-come order, up to ``Limits.queue`` of them (503 with Retry-After
past that), and the page polls ``/api/queue`` to show its place. A job that runs past ``Limits.timeout_s``
is answered 504 (its thread finishes in the background and only then frees its slot).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from torch import nn

from polychrome.color.hints import hints_to_json
from polychrome.colorizer import Colorizer, as_colorizer
from polychrome.pipeline import check_precision, gray_rgb
from polychrome.web.limits import BodyLimit, JobGate, Limits, check_pixels, size_text
from polychrome.web.origin import SameOrigin
from polychrome.web.schemas import (
    ERRORS,
    HINT_LIST_BODY,
    MEDIA,
    DoubtfulSpots,
    ErrorDetail,
    FullFormat,
    LimitsInfo,
    PhotoId,
    QueueStatus,
    PhotoInfo,
    PreviewFormat,
    ServerInfo,
    Suggestions,
    image_responses,
)
from polychrome.web.session import Session, encode, one_line, stem

STATIC_DIR = Path(str(resources.files("polychrome") / "web" / "static"))


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
    allowed_hosts: list[str] | None = None,
    start_from_auto: bool = True,
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
        allowed_hosts: the host names requests may name in their Host header (400 otherwise; ``"*"``: any);
            None accepts any (``polychrome serve`` passes its listen address:
            :func:`~polychrome.web.origin.serve_hosts`).
            A write (POST, DELETE) from another site's page (its ``Origin``) is refused (403) either way.
        start_from_auto: with a hint model and an automatic model, the result without hints is the automatic
            model's and hints refine it (:func:`~polychrome.color.hints.refine_base`); False: the hint
            model's own result, with or without hints.
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

    session = Session(model, auto_model, model_name, auto_name, limits, size, preview_size, start_from_auto)
    gate = JobGate(limits.jobs, limits.timeout_s, limits.queue, limits.job_pixels)

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
    app.state.session, app.state.gate, app.state.model, app.state.auto_model = session, gate, model, auto_model
    app.state.limits, app.state.size = limits, size
    app.add_middleware(
        BodyLimit, upload_path="/api/photos", upload_bytes=limits.max_upload_bytes, json_bytes=limits.max_json_bytes
    )
    app.add_middleware(SameOrigin, allowed_hosts=allowed_hosts)  # added last: runs first, before a body is read

    @app.exception_handler(RequestValidationError)
    async def _validation(_request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return JSONResponse({"detail": one_line("; ".join(parts)) or "invalid request"}, status_code=422)

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
            model=model_name, uses_hints=model.card.takes_hints, auto_model=auto_name,
            starts_from_auto=session.refines, working_size=size,
            preview_size=preview_size, precision=model.precision, limits=LimitsInfo(**asdict(limits)),
        )  # fmt: skip

    @app.get("/api/queue", response_model=QueueStatus, summary="The job queue, and a photo's place in it")
    async def queue(
        photo: str | None = Query(None, max_length=64, description="A photo id: where its request waits."),
    ) -> QueueStatus:
        """Jobs running and waiting; with `photo`, the place of that photo's first waiting request (1 =
        next, 0 = none waiting) and about how many seconds until it starts. The page polls this while it
        waits for an answer."""
        return QueueStatus(**gate.status(photo))

    @app.post(
        "/api/photos",
        response_model=PhotoInfo,
        status_code=201,
        summary="Upload a photo",
        responses={k: ERRORS[k] for k in (413, 422, 503, 504)},
    )
    async def upload(
        file: Annotated[UploadFile, File(description="The photo (JPEG, PNG, WebP, TIFF, BMP; grey or colour).")],
    ) -> PhotoInfo:
        """Upload a photo once; the server keeps the file and its lightness (working and preview size) in
        memory and returns its id. Colour in the photo is ignored: only its lightness is colourised.

        413: the file is over `max_upload_bytes` or the image over `max_pixels` (checked on the header,
        before decoding); 422: not a photo in a format polychrome reads (JPEG, PNG, WebP, BMP, TIFF)."""
        name = Path(file.filename or "photo").name
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise HTTPException(422, f"upload's file name {name!r} holds a control character (NUL, newline...); rename it")
        fd, tmp = tempfile.mkstemp(prefix="polychrome-upload-", suffix=Path(name).suffix[:10])
        try:
            n = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := await file.read(1 << 20):
                    n += len(chunk)
                    if n > limits.max_upload_bytes:
                        raise HTTPException(413, f"upload too large: over the {size_text(limits.max_upload_bytes)} limit")
                    out.write(chunk)
            if n == 0:
                raise HTTPException(422, f"{name}: the uploaded file is empty")
            pixels = check_pixels(tmp, name, limits.max_pixels)  # from the header: what decoding will hold
            photo = await gate.run("reading the photo", session.decode, tmp, name, cost=pixels or 1)
        finally:
            os.unlink(tmp)
        session.store.add(photo)
        return photo.info()

    @app.get(
        "/api/photos/{photo_id}", response_model=PhotoInfo, summary="A kept photo's sizes", responses={404: ERRORS[404]}
    )
    async def photo_info(photo_id: PhotoId) -> PhotoInfo:
        return session.store.get(photo_id).info()

    @app.delete("/api/photos/{photo_id}", status_code=204, summary="Forget a photo", responses={404: ERRORS[404]})
    async def delete_photo(photo_id: PhotoId) -> Response:
        session.store.remove(photo_id)
        return Response(status_code=204)

    @app.get(
        "/api/photos/{photo_id}/gray",
        summary="The grey input at preview size",
        response_class=Response,
        responses={**image_responses("The photo's lightness as a grey image."), 404: ERRORS[404]},
    )
    async def gray(photo_id: PhotoId, format: PreviewFormat = "jpeg") -> Response:
        photo = session.store.get(photo_id)
        data = encode(gray_rgb(photo.L_preview), format)
        return Response(data, media_type=MEDIA[format], headers={"Cache-Control": "no-store"})

    @app.post(
        "/api/photos/{photo_id}/colorize",
        summary="Preview: colourise with hints",
        response_class=Response,
        openapi_extra=HINT_LIST_BODY,
        responses={**image_responses("The colourised photo at preview size (preview_width x height)."), **ERRORS},
    )
    async def colorize(request: Request, photo_id: PhotoId, format: PreviewFormat = "jpeg") -> Response:
        """Colourise the photo at the working size with the given hints and return it at preview size
        (the photo's L joined with upsampled ab, as `/full`, just smaller). `[]` gives the
        automatic result. Header `X-Elapsed-Ms`: the server's time for the model and encoding."""
        photo = session.store.get(photo_id)
        hints = session.read_hints(photo, await request.body())
        cost = photo.L_preview.numel() + photo.L_work.numel()
        data, seconds = await gate.run("colourisation", session.preview, photo, hints, format, cost=cost, ticket=photo.id)
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
        photo = session.store.get(photo_id)
        hints = session.read_hints(photo, await request.body())
        H, W = photo.hw
        if not (x < W and y < H):
            raise HTTPException(422, f"spot ({x:g}, {y:g}) lies outside the {W}x{H} photo")
        found = await gate.run("suggestions", session.suggest, photo, x, y, hints, cost=photo.L_work.numel(),
                               ticket=photo.id)
        return Suggestions(x=x, y=y, suggestions=found)

    @app.post(
        "/api/photos/{photo_id}/doubt",
        response_model=DoubtfulSpots,
        summary="Where a hint would help most",
        openapi_extra=HINT_LIST_BODY,
        responses=ERRORS,
    )
    async def doubt(
        request: Request,
        photo_id: PhotoId,
        count: int = Query(5, ge=1, le=20, description="At most this many spots."),
    ) -> DoubtfulSpots:
        """The spots where the models are least sure of their colour, away from the hints in the body:
        the confidence head of a model that has one (the page's, else the automatic model's), else the
        disagreement between the hint model's automatic result and the automatic model's. `source`
        says which; `none` (and no spots) when the server has neither."""
        photo = session.store.get(photo_id)
        hints = session.read_hints(photo, await request.body())
        source, label, spots = await gate.run("finding doubtful spots", session.doubtful_spots, photo, hints, count)
        return DoubtfulSpots(source=source, label=label, spots=spots)

    @app.post(
        "/api/photos/{photo_id}/full",
        summary="The full-resolution result",
        response_class=Response,
        openapi_extra=HINT_LIST_BODY,
        responses={**image_responses("The colourised photo at its full resolution (an attachment)."), **ERRORS},
    )
    async def full_result(request: Request, photo_id: PhotoId, format: FullFormat = "png") -> Response:
        """Colourise at the photo's full resolution with the given hints: the same Colorizer path as
        `polychrome colorize --hints` (with `--base` on a page that starts from the automatic model), at
        this server's working size, and the same file: the upload's EXIF (orientation reset), ICC profile
        and DPI, the note "colourised by polychrome VERSION, model NAME" (EXIF Software), alpha kept in a
        PNG, and a 16-bit PNG for a 16-bit scan. The upload is decoded when the job runs."""
        photo = session.store.get(photo_id)
        hints = session.read_hints(photo, await request.body())
        data = await gate.run("full-resolution colourisation", session.full, photo, hints, format,
                              cost=photo.pixels, ticket=photo.id)
        ext = "png" if format == "png" else "jpg"
        return Response(
            data,
            media_type=MEDIA[format],
            headers={"Content-Disposition": f'attachment; filename="{stem(photo.name)}-colour.{ext}"'},
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
        photo = session.store.get(photo_id)
        hints = session.read_hints(photo, await request.body())
        return JSONResponse(
            hints_to_json(hints),
            headers={"Content-Disposition": f'attachment; filename="{stem(photo.name)}.hints.json"'},
        )

    return app



def _version() -> str:
    from polychrome import __version__

    return __version__
