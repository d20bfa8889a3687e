"""Helpers of the web tests (plain helpers, not a conftest): a fixture hint model, a live server, Chromium."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class GlowHints(nn.Module):
    """A deterministic stand-in hint model (``uses_hints = True``).

    Without hints: a fixed warm tint (a, b) = (12, 24) CIE units, so the automatic result is not grey
    and the page has something to show. Each hint's ab spreads over a box of ``reach`` working-grid cells
    around it (normalised box filter, twice, so it fades smoothly); the output blends from the hints'
    colour at the hints to the tint away from them. So the colour near a hint moves to the hint's colour.

    ``hold``: an Event; when given, each forward first sets ``entered`` and waits for ``hold`` (the
    busy and time-limit tests keep a job running this way).
    """

    uses_hints = True

    def __init__(self, infer_size: int = 96, reach: int = 15):
        super().__init__()
        self.tint = nn.Parameter(torch.tensor([12.0, 24.0]) / 128.0, requires_grad=False)
        self.reach = reach
        self.meta = {"model": "glow-hints", "infer_size": infer_size}
        self.hold: threading.Event | None = None
        self.entered = threading.Event()
        self.calls = 0

    def forward(self, L_net, hint_ab_net=None, hint_mask=None):
        self.calls += 1
        if self.hold is not None:
            self.entered.set()
            self.hold.wait(30)
        B, _, H, W = L_net.shape
        tint = self.tint.view(1, 2, 1, 1).expand(B, 2, H, W)
        if hint_mask is None or not bool(hint_mask.any()):
            return tint.clone()
        k = self.reach

        def blur(x):
            for _ in range(2):
                x = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
            return x

        num, den = blur(hint_ab_net * hint_mask), blur(hint_mask)
        colour = num / den.clamp(min=1e-8)
        weight = (den * k * k / 2).clamp(max=1.0)  # 1 near a hint, fading to 0 a box or two away
        return weight * colour + (1 - weight) * tint


class DoubtfulAB(nn.Module):
    """An automatic stand-in with a confidence head: grey everywhere, sure of it except in one box (given in
    fractions of the grid: x0, y0, x1, y1), where its confidence is low."""

    gives_confidence = True

    def __init__(self, box=(0.6, 0.55, 0.9, 0.9), infer_size: int = 96):
        super().__init__()
        self.box = box
        self.meta = {"model": "doubtful", "infer_size": infer_size}

    def forward(self, L_net, return_all: bool = False):
        B, _, h, w = L_net.shape
        ab = torch.zeros(B, 2, h, w)
        if not return_all:
            return ab
        hc, wc = (h + 1) // 2, (w + 1) // 2
        logits = torch.full((B, 1, hc, wc), 6.0)
        x0, y0, x1, y1 = self.box
        logits[..., int(y0 * hc) : int(y1 * hc), int(x0 * wc) : int(x1 * wc)] = -6.0
        return SimpleNamespace(ab_net=ab, confidence=logits)


class PatchAB(nn.Module):
    """An automatic stand-in whose colour is GlowHints' tint except in one box, where it is green."""

    def __init__(self, box=(0.1, 0.1, 0.35, 0.4), infer_size: int = 96):
        super().__init__()
        self.box = box
        self.meta = {"model": "patch", "infer_size": infer_size}

    def forward(self, L_net):
        B, _, h, w = L_net.shape
        ab = torch.tensor([12.0, 24.0]).view(1, 2, 1, 1).repeat(B, 1, h, w) / 128.0
        x0, y0, x1, y1 = self.box
        ab[..., int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)] = torch.tensor([-40.0, 40.0]).view(2, 1, 1) / 128.0
        return ab


def grey_png(w: int = 240, h: int = 180, seed: int = 0) -> bytes:
    """A grey test photo (PNG bytes): smooth shapes plus a little noise, like a scanned print."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 0.45 + 0.25 * np.sin(x / w * 5.0) * np.cos(y / h * 4.0) + 0.2 * (np.hypot(x - w * 0.3, y - h * 0.6) < h * 0.25)
    g = np.clip(g + rng.normal(0, 0.02, g.shape), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((g * 255 + 0.5).astype(np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


class LiveServer:
    """``app`` served by uvicorn in a thread on a free 127.0.0.1 port; ``url``; ``stop()``."""

    def __init__(self, app):
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def chromium_missing() -> str | None:
    """Why the browser test cannot run here, or None when Chromium, chromedriver and selenium are present."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def chrome(user_data_dir: str, download_dir: str, width: int = 1360, height: int = 860):
    """A headless Chromium driven by Selenium, kept off the network (the machines have none: without the
    background-networking flags Chromium keeps trying) and downloading into ``download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
        "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
        "--force-color-profile=srgb", f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}",
    ):  # fmt: skip
        opts.add_argument(flag)
    opts.add_experimental_option(
        "prefs",
        {"download.default_directory": download_dir, "download.prompt_for_download": False},
    )
    service = Service(executable_path=CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": download_dir})
    return driver
