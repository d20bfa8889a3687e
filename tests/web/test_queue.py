"""The server's job queue: requests beyond the job slots wait in order (bounded; 503 past it), the page can
ask where its request stands, running jobs stay within a pixel budget, and many users at once all get
their full-resolution result (a real uvicorn server, real HTTP)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from _helpers import colorizer_of
from _web_helpers import GlowHints, LiveServer, grey_png
from fastapi import HTTPException
from fastapi import testclient as fastapi_testclient
from PIL import Image

from polychrome.web import Limits, create_app
from polychrome.web.limits import JobGate


def _app(model, limits: Limits):
    return create_app(colorizer_of(model), auto_spec="", limits=limits, size=96, preview_size=160)


def _upload(c, w=241, h=181) -> str:
    r = c.post("/api/photos", files={"file": ("p.png", grey_png(w, h), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _wait_for(what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_requests_beyond_the_slots_wait_in_order_and_the_page_sees_their_place():
    model = GlowHints()
    with fastapi_testclient.TestClient(_app(model, Limits(jobs=1, queue=2))) as c:
        a, b, d = _upload(c), _upload(c), _upload(c)
        model.hold = threading.Event()
        results: dict[str, object] = {}

        def post(pid, endpoint):
            results[pid] = c.post(f"/api/photos/{pid}/{endpoint}", json=[])

        threads = [threading.Thread(target=post, args=(a, "colorize"))]
        threads[0].start()
        assert model.entered.wait(10)  # a runs (and is held inside the model)
        for pid, endpoint in ((b, "full"), (d, "colorize")):
            threads.append(threading.Thread(target=post, args=(pid, endpoint)))
            threads[-1].start()
            _wait_for(lambda n=len(threads) - 1: c.get("/api/queue").json()["waiting"] == n)
        try:
            q = {pid: c.get(f"/api/queue?photo={pid}").json() for pid in (a, b, d)}
            assert q[a]["position"] == 0 and q[a]["ticket_running"] is True
            assert q[b]["position"] == 1 and q[d]["position"] == 2 and q[b]["eta_s"] <= q[d]["eta_s"]
            assert q[b] | {"position": 0, "eta_s": 0, "ticket_running": False} == {
                "jobs": 1, "running": 1, "waiting": 2, "queue": 2, "position": 0, "eta_s": 0, "ticket_running": False}
            r = c.post(f"/api/photos/{a}/full", json=[])  # a fourth: the queue is full
            assert r.status_code == 503 and "queue is full" in r.json()["detail"]
            assert int(r.headers["retry-after"]) >= 1
        finally:
            model.hold.set()
            for t in threads:
                t.join(20)
        assert [results[p].status_code for p in (a, b, d)] == [200, 200, 200]
        with Image.open(io.BytesIO(results[b].content)) as im:
            assert im.size == (241, 181)  # the full-resolution result
        assert c.get("/api/queue").json()["waiting"] == 0


def test_running_jobs_stay_within_the_pixel_budget_in_first_come_order():
    events = {k: threading.Event() for k in "abcd"}
    started: list[str] = []

    def work(name):
        started.append(name)
        events[name].wait(10)
        return name

    async def scenario():
        gate = JobGate(jobs=3, timeout_s=20, queue=5, job_pixels=100)
        ta = asyncio.create_task(gate.run("full", work, "a", cost=60))
        await asyncio.sleep(0.05)
        tb = asyncio.create_task(gate.run("full", work, "b", cost=60, ticket="B"))  # 120 > 100: waits, a slot free
        await asyncio.sleep(0.02)
        tc = asyncio.create_task(gate.run("preview", work, "c", cost=10))  # would fit, but does not overtake b
        await asyncio.sleep(0.02)
        tx = asyncio.create_task(gate.run("preview", work, "x", cost=10))  # goes away while waiting
        await asyncio.sleep(0.1)
        assert started == ["a"] and gate.status("B")["position"] == 1 and gate.status()["waiting"] == 3
        tx.cancel()
        await asyncio.sleep(0.05)
        assert gate.status()["waiting"] == 2
        events["a"].set()
        assert await ta == "a"
        await asyncio.sleep(0.1)
        assert sorted(started) == ["a", "b", "c"]  # b (60) and c (10) fit together
        events["b"].set(), events["c"].set()
        assert (await tb, await tc) == ("b", "c")
        # A job over the whole budget still runs when it is alone.
        events["d"].set()
        assert await gate.run("full", work, "d", cost=1000) == "d"
        gate.shutdown()
        with pytest.raises(HTTPException) as e:
            await gate.run("full", work, "d")
        assert e.value.status_code == 503

    asyncio.run(scenario())


def test_twenty_users_at_once_all_get_their_full_resolution_result():
    """20 clients over real HTTP, each uploading its own photo and asking for the full result at once: every
    one succeeds (they queue), and the running jobs never hold more than the pixel budget."""
    W, H, USERS = 400, 300, 20
    limits = Limits(jobs=2, queue=40, job_pixels=int(1.5 * W * H))  # two uploads, or one full job and a preview
    app = _app(GlowHints(), limits)
    session = app.state.session
    lock, now, peak = threading.Lock(), [0], [0]
    full = session.full

    def counted_full(photo, hints, fmt):
        with lock:
            now[0] += photo.pixels
            peak[0] = max(peak[0], now[0])
        try:
            time.sleep(0.02)  # long enough for the jobs to overlap if the gate let them
            return full(photo, hints, fmt)
        finally:
            with lock:
                now[0] -= photo.pixels

    session.full = counted_full
    server = LiveServer(app)
    try:
        import httpx2

        def user(i):
            with httpx2.Client(base_url=server.url, timeout=60) as h:
                r = h.post("/api/photos", files={"file": (f"u{i}.png", grey_png(W, H, seed=i), "image/png")})
                if r.status_code != 201:
                    return r.status_code
                r = h.post(f"/api/photos/{r.json()['id']}/full", json=[])
                ok = r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (W, H)
                return 200 if ok else r.status_code

        with ThreadPoolExecutor(USERS) as pool:
            codes = list(pool.map(user, range(USERS)))
    finally:
        server.stop()
    assert codes == [200] * USERS
    assert 0 < peak[0] <= limits.job_pixels < 2 * W * H  # never two full jobs at once
