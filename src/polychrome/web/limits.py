"""What one server accepts and how much work it runs at once: size limits, the job gate, the body limit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from fastapi import HTTPException
from fastapi.responses import JSONResponse

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


class BodyLimit:
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
            return f"{what} too large: {size_text(n)} > the {size_text(shown)} limit"

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


def size_text(n: int) -> str:
    """A byte count for a person: ``"25 MB"``, ``"1.5 KB"``."""
    for unit, scale in (("MB", MB), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def too_many_pixels(name: str, w: int, h: int, limit: int) -> str:
    return f"{name}: {w}x{h} pixels ({w * h / 1e6:.3g} MP) is over the {limit / 1e6:.3g} MP limit"


def check_pixels(path: str, name: str, limit: int) -> None:
    """Refuse an over-large image from its header, before decoding it (a decompression bomb never unpacks).

    Anything the header read cannot make sense of is left to :func:`polychrome.io.open_image`, whose
    ImageError is the one reported."""
    from PIL import Image

    from polychrome.io.images import PHOTO_FORMATS

    try:
        with Image.open(path, formats=PHOTO_FORMATS) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise HTTPException(413, f"{name}: image is over the {limit / 1e6:.3g} MP limit") from None
    except Exception:  # noqa: BLE001 - open_image reports it properly
        return
    if w * h > limit:
        raise HTTPException(413, too_many_pixels(name, w, h, limit))
