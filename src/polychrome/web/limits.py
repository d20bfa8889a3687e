"""What one server accepts and how much work it runs at once: size limits, the job gate, the body limit."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
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
    max_store_bytes: int = 1024 * MB  # memory for kept photos (the uploaded file, L at two small sizes, ab)
    max_hints: int = 500  # hints in one request (422 over it)
    max_json_bytes: int = 1 * MB  # a JSON request body (413 over it)
    jobs: int = 2  # colourisations (and photo decodes) running at once; more wait in the queue
    queue: int = 32  # requests waiting for a job slot; one more gets 503 with Retry-After
    job_pixels: int = 30_000_000  # pixels the running jobs may touch together (a job's memory follows them)
    timeout_s: float = 60.0  # a request's model work once it runs, seconds (504 past it)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0 and not (name == "queue" and value == 0):
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")


# ----------------------------------------------------------------------------------------------------
# Jobs: model work in worker threads, bounded by count and pixels, queued in order, timed


@dataclass
class _Job:
    what: str
    cost: int  # pixels
    ticket: str | None  # who asked (the photo id), for the page's position in the queue
    loop: asyncio.AbstractEventLoop | None = None
    admitted: asyncio.Future | None = None  # set (on the loop) when the job may start
    started: float = 0.0  # time.monotonic() it started running


class JobGate:
    """Model work in worker threads: at most ``jobs`` at once and at most ``job_pixels`` pixels among them (a
    job's memory is about proportional to the pixels it renders; a job alone always runs, ``max_pixels``
    bounds it), the rest waiting in first-come order, at most ``queue`` of them (503 past that). A running
    job is awaited for ``timeout_s`` (504 past it).

    A slot is freed when its thread finishes, not when its request gives up: a timed-out colourisation
    still occupies the CPU and its memory, so it still counts. A request that goes away while waiting
    leaves the queue."""

    #: Seconds per pixel a kind of job is first guessed to take, before one has been timed (for the ETA).
    FIRST_GUESS_S_PER_PIXEL = 2e-7

    def __init__(self, jobs: int, timeout_s: float, queue: int = 0, job_pixels: int | None = None):
        self.jobs, self.timeout_s, self.queue = jobs, timeout_s, queue
        self.job_pixels = job_pixels if job_pixels is not None else 1 << 62
        self._lock = threading.Lock()
        self._running: list[_Job] = []
        self._waiting: deque[_Job] = deque()
        self._rate: dict[str, float] = {}  # seconds per pixel, per kind of job (moving average)
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="polychrome-job")
        self._closed = False

    # ---- admission (under the lock)

    def _fits(self, job: _Job) -> bool:
        if len(self._running) >= self.jobs:
            return False
        return not self._running or sum(j.cost for j in self._running) + job.cost <= self.job_pixels

    def _admit_waiting(self) -> None:
        while self._waiting and self._fits(self._waiting[0]):  # first come, first served: no overtaking
            job = self._waiting.popleft()
            self._running.append(job)
            job.started = time.monotonic()
            job.loop.call_soon_threadsafe(_wake, job.admitted)

    def _finish(self, job: _Job) -> None:
        with self._lock:
            if job in self._running:
                self._running.remove(job)
                if job.started and job.cost:
                    rate = (time.monotonic() - job.started) / job.cost
                    old = self._rate.get(job.what)
                    self._rate[job.what] = rate if old is None else 0.7 * old + 0.3 * rate
            self._admit_waiting()

    # ---- the request side

    async def run(self, what: str, fn: Callable, *args, cost: int = 1, ticket: str | None = None):
        """``fn(*args)`` in a worker thread once a slot is free; ``cost``: the pixels it touches."""
        job = _Job(what, max(1, int(cost)), ticket)
        with self._lock:
            if self._closed:
                raise HTTPException(503, "server is shutting down")
            if not self._waiting and self._fits(job):
                self._running.append(job)
                job.started = time.monotonic()
            elif len(self._waiting) >= self.queue:
                wait = max(1, round(self._eta_locked(len(self._waiting)) or 1))
                raise HTTPException(
                    503,
                    f"server busy: {len(self._running)} job(s) running and {len(self._waiting)} waiting, the "
                    f"queue is full; retry in about {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            else:
                job.loop = asyncio.get_running_loop()
                job.admitted = job.loop.create_future()
                self._waiting.append(job)
        if job.admitted is not None:
            try:
                await job.admitted
            except asyncio.CancelledError:  # the request went away while waiting
                with self._lock:
                    if job in self._waiting:
                        self._waiting.remove(job)
                        self._admit_waiting()  # a large job leaving the head may let smaller ones start
                    queued_out = job not in self._running
                if not queued_out:
                    self._finish(job)
                raise
        try:
            fut: Future = self._pool.submit(fn, *args)
        except RuntimeError:  # pool shut down
            self._finish(job)
            raise HTTPException(503, "server is shutting down") from None
        # Freed on completion, and also if the future is cancelled before its thread picks it up.
        fut.add_done_callback(lambda _: self._finish(job))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout_s)
        except TimeoutError:
            raise HTTPException(504, f"{what} took longer than the {self.timeout_s:g} s limit") from None

    # ---- what the page is told

    def _guess_s(self, job: _Job) -> float:
        return job.cost * self._rate.get(job.what, self.FIRST_GUESS_S_PER_PIXEL)

    def _eta_locked(self, ahead: int) -> float:
        """Seconds until the job behind the first ``ahead`` waiting ones can start (a rough guess)."""
        now = time.monotonic()
        running = sum(max(0.0, self._guess_s(j) - (now - j.started)) for j in self._running)
        waiting = sum(self._guess_s(j) for j in list(self._waiting)[:ahead])
        return (running + waiting) / self.jobs

    def status(self, ticket: str | None = None) -> dict:
        """The queue as the page shows it: jobs running and waiting, and for ``ticket`` (a photo id) the
        position of its first waiting job (1 = next; 0 = none waiting) and about how long until it starts."""
        with self._lock:
            position = next((i + 1 for i, j in enumerate(self._waiting) if ticket is not None and j.ticket == ticket), 0)
            running = any(j.ticket == ticket for j in self._running) if ticket is not None else False
            eta = self._eta_locked(position - 1) if position else 0.0
            return {
                "jobs": self.jobs, "running": len(self._running), "waiting": len(self._waiting), "queue": self.queue,
                "position": position, "ticket_running": running, "eta_s": round(eta, 1),
            }  # fmt: skip

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
        for job in waiting:
            job.loop.call_soon_threadsafe(_refuse, job.admitted)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _refuse(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(HTTPException(503, "server is shutting down"))


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


def check_pixels(path: str, name: str, limit: int) -> int | None:
    """Refuse an over-large image from its header, before decoding it (a decompression bomb never unpacks);
    returns its pixel count (None when the header cannot be read).

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
        return None
    if w * h > limit:
        raise HTTPException(413, too_many_pixels(name, w, h, limit))
    return w * h
