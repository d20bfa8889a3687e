"""The hint page end to end in headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

A person's path: open a photo, wait for the automatic result, click a spot, pick a colour, see the result
there move toward it, undo, download the full-resolution photo and the hint file, peek at the grey input,
and get a readable error for a file that is not a photo. The server is uvicorn in a thread; the model is
the fixture hint model of the API tests (the last test uses the bundled `hints` model when it exists).

Without Chromium these tests skip, except under CI (the CI environment variable set), where they fail:
.ci/run installs chromium and chromium-driver.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import colorizer_of
from _web_helpers import GlowHints, LiveServer, chrome, chromium_missing, grey_png
from PIL import Image

from polychrome.color.hints import hex_to_ab
from polychrome.web import create_app

pytestmark = pytest.mark.slow

W, H = 300, 200
BLUE = "#1f5fe0"
GREEN = "#2fa34a"


@pytest.fixture(scope="module")
def browser_ready():
    reason = chromium_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the browser test: {reason}")
        pytest.skip(reason)


@pytest.fixture
def page(browser_ready, tmp_path):
    """``open_page(model=None, **create_app_kwargs) -> (driver, server, download folder)``: a fresh app served
    by uvicorn and a fresh Chromium on its page; both closed after the test."""
    servers, drivers = [], []

    def open_page(model=None, window=(1360, 860), **kw):
        kw.setdefault("auto_spec", "")
        kw.setdefault("size", 96)
        model = model if model is not None else GlowHints()
        if isinstance(model, torch.nn.Module):  # a stand-in: its test name and working size
            model = colorizer_of(model, kw.get("precision", "fp32"))
        app = create_app(model, **kw)
        server = LiveServer(app)
        servers.append(server)
        downloads = tmp_path / "downloads"
        downloads.mkdir(exist_ok=True)
        driver = chrome(str(tmp_path / f"profile{len(drivers)}"), str(downloads), *window)
        drivers.append(driver)
        driver.get(server.url + "/")
        wait(driver, lambda d: d.execute_script("return !!window.fetch && document.readyState === 'complete'"))
        return driver, server, downloads

    yield open_page
    for d in drivers:
        d.quit()
    for s in servers:
        s.stop()


def wait(driver, cond, timeout=20.0, what="condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(cond, f"timed out waiting for {what}")


def el(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def renders(driver) -> int:
    return int(el(driver, "resultImg").get_attribute("data-renders") or 0)


def wait_render(driver, after: int, hints: list | None = None):
    """Wait until the page shows a preview newer than ``after`` (made with ``hints``, if given) and is idle."""

    def done(d):
        img = el(d, "resultImg")
        if renders(d) <= after or d.execute_script("return document.body.dataset.busy") != "0":
            return False
        return hints is None or json.loads(img.get_attribute("data-hints")) == hints

    wait(driver, done, what="the preview to update")


def shown_ab(driver, fx: float, fy: float, lab) -> np.ndarray:
    """Lab (a, b) the page shows at the fractional position (fx, fy): the displayed image's pixels, read
    back through a canvas (3x3 mean)."""
    rgb = driver.execute_script(
        """
        const img = document.getElementById('resultImg');
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d');
        g.drawImage(img, 0, 0);
        const x = Math.floor(arguments[0] * c.width), y = Math.floor(arguments[1] * c.height);
        return Array.from(g.getImageData(Math.max(x - 1, 0), Math.max(y - 1, 0), 3, 3).data);
        """,
        fx,
        fy,
    )
    px = np.array(rgb, dtype=np.uint8).reshape(-1, 4)[:, :3].reshape(1, -1, 3)
    return lab(px)[0, :, 1:].mean(0)


def click_photo(driver, fx: float, fy: float) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    img = el(driver, "resultImg")
    r = img.rect
    dx, dy = int((fx - 0.5) * r["width"]), int((fy - 0.5) * r["height"])
    ActionChains(driver).move_to_element_with_offset(img, dx, dy).click().perform()


def pick_colour(driver, colour: str) -> None:
    """What a person's colour-picker choice does: set the input's value and fire input + change."""
    driver.execute_script(
        """
        const c = document.getElementById('colorInput');
        c.value = arguments[0];
        c.dispatchEvent(new Event('input', {bubbles: true}));
        c.dispatchEvent(new Event('change', {bubbles: true}));
        """,
        colour,
    )


def open_photo(driver, path: Path) -> None:
    before = renders(driver)
    el(driver, "fileInput").send_keys(str(path))
    wait_render(driver, before, [])


def save_screenshot(driver, path) -> None:
    """The page as a PNG small enough for a README (well under 300 KB): 256 colours, median cut refined by
    k-means, Floyd-Steinberg dithered; the markers and swatches keep their colours."""
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    pal = shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT, kmeans=3, dither=Image.Dither.FLOYDSTEINBERG)
    pal.save(path, optimize=True)


def hints_on_page(driver) -> list:
    return driver.execute_script("return JSON.parse(document.getElementById('resultImg').dataset.hints || '[]')")


def test_place_a_hint_and_download(page, tmp_path, lab):
    from selenium.webdriver.common.by import By

    driver, _server, downloads = page()
    photo = tmp_path / "family.png"
    photo.write_bytes(grey_png(W, H))
    open_photo(driver, photo)
    assert el(driver, "dropZone").get_attribute("hidden") is not None and el(driver, "viewer").is_displayed()
    assert "family.png" in el(driver, "status").text and f"{W}×{H}" in el(driver, "status").text

    spot = (0.3, 0.4)
    target = np.array(hex_to_ab(BLUE))
    before = shown_ab(driver, *spot, lab)

    n = renders(driver)
    click_photo(driver, *spot)
    pick_colour(driver, BLUE)
    x, y = int(spot[0] * W), int(spot[1] * H)
    assert len(driver.find_elements(By.CSS_SELECTOR, ".marker")) == 1
    hint = hints_on_page_after(driver, n, 1)[0]
    assert abs(hint["x"] - x) <= 2 and abs(hint["y"] - y) <= 2 and hint["color"] == BLUE
    after = shown_ab(driver, *spot, lab)
    d_before, d_after = np.linalg.norm(before - target), np.linalg.norm(after - target)
    assert d_after < 0.35 * d_before, (before, after, target)

    # Suggestions for the spot arrive from the model (GlowHints' own colour there, without hints).
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .swatch"), what="suggestions")
    swatch = driver.find_elements(By.CSS_SELECTOR, "#suggestions .swatch")[0]
    assert "no hints" in swatch.text

    # A second hint, then undo: back to the one blue hint.
    n = renders(driver)
    click_photo(driver, 0.8, 0.7)
    pick_colour(driver, GREEN)
    assert len(hints_on_page_after(driver, n, 2)) == 2
    n = renders(driver)
    el(driver, "undoBtn").click()  # undoes the colour pick
    el(driver, "undoBtn").click()  # undoes the placing
    hints_on_page_after(driver, n, 1)
    assert len(driver.find_elements(By.CSS_SELECTOR, ".marker")) == 1

    # The grey input, and back.
    el(driver, "grayToggle").click()
    wait(driver, lambda d: np.abs(shown_ab(d, *spot, lab)).max() < 2.5, what="the grey input")
    el(driver, "grayToggle").click()
    wait(driver, lambda d: np.linalg.norm(shown_ab(d, *spot, lab) - target) < 0.35 * d_before, what="the result")

    # Downloads: the full-resolution result (the photo's size, blue at the spot) and the hint file.
    el(driver, "downloadBtn").click()
    result = downloads / "family-colour.png"
    wait(driver, lambda d: result.exists() and not list(downloads.glob("*.crdownload")), what="the download")
    full = Image.open(result).convert("RGB")
    assert full.size == (W, H)
    full_ab = lab(np.asarray(full)[y - 1 : y + 2, x - 1 : x + 2])[..., 1:].reshape(-1, 2).mean(0)
    assert np.linalg.norm(full_ab - target) < 0.35 * d_before
    el(driver, "downloadHintsBtn").click()
    hint_file = downloads / "family.hints.json"
    wait(driver, lambda d: hint_file.exists() and hint_file.stat().st_size > 0, what="the hint file")
    assert json.loads(hint_file.read_text()) == hints_on_page(driver)

    # Drag the marker: the hint moves and the result follows.
    from selenium.webdriver.common.action_chains import ActionChains

    n = renders(driver)
    marker = driver.find_element(By.CSS_SELECTOR, ".marker")
    ActionChains(driver).click_and_hold(marker).move_by_offset(20, 0).move_by_offset(20, 0).release().perform()
    moved = hints_on_page_after(driver, n, 1)[0]
    assert moved["x"] > hint["x"] + 10 and abs(moved["y"] - hint["y"]) <= 3 and moved["color"] == BLUE

    assert el(driver, "errorBox").get_attribute("hidden") is not None  # no error along the way


def hints_on_page_after(driver, n: int, count: int) -> list:
    """The hints of the first preview newer than ``n`` that has ``count`` hints (waits for it)."""
    def done(d):
        idle = d.execute_script("return document.body.dataset.busy") == "0"
        return idle and renders(d) > n and len(hints_on_page(d)) == count

    wait(driver, done, what=f"a preview with {count} hints")
    return hints_on_page(driver)


def test_errors_are_shown_on_the_page(page, tmp_path):
    driver, _server, _downloads = page()
    bad = tmp_path / "letter.jpg"
    bad.write_bytes(b"Dear Sir, this is not a photograph.")
    el(driver, "fileInput").send_keys(str(bad))
    wait(driver, lambda d: el(d, "errorBox").is_displayed(), what="the error banner")
    assert el(driver, "errorText").text == "letter.jpg: not a photo polychrome reads (JPEG, PNG, WebP, BMP or TIFF)"
    el(driver, "errorClose").click()
    assert not el(driver, "errorBox").is_displayed()


def test_the_page_shows_its_place_in_the_queue(page, tmp_path):
    import threading

    import httpx2

    from polychrome.web import Limits

    model = GlowHints()
    driver, server, downloads = page(model, limits=Limits(jobs=1))
    photo = tmp_path / "queued.png"
    photo.write_bytes(grey_png(W, H))
    open_photo(driver, photo)
    # Someone else's job holds the only slot (inside the model) ...
    other = httpx2.post(f"{server.url}/api/photos", files={"file": ("o.png", grey_png(W, H, seed=1), "image/png")})
    model.hold, model.entered = threading.Event(), threading.Event()
    t = threading.Thread(target=httpx2.post, args=(f"{server.url}/api/photos/{other.json()['id']}/full",),
                         kwargs={"json": [], "timeout": 60})
    t.start()
    try:
        assert model.entered.wait(10)
        el(driver, "downloadBtn").click()  # ... so the page's full-resolution request waits, and says where
        wait(driver, lambda d: "next in the queue" in el(d, "busyText").text, what="the queue place")
        assert el(driver, "busy").is_displayed()
    finally:
        model.hold.set()
        t.join(30)
    wait(driver, lambda d: d.execute_script("return document.body.dataset.lastDownload") == "queued-colour.png",
         what="the download")
    assert "queue" not in el(driver, "busyText").text or not el(driver, "busy").is_displayed()


# POLYCHROME_TEST_HINTS_MODEL=PATH runs these checks on a weight file or checkpoint before it is bundled.
HINTS_SPEC = os.environ.get("POLYCHROME_TEST_HINTS_MODEL", "hints")


def test_bundled_model_on_a_photo(page, tmp_path, lab):
    """The shipped hint model behind the page: a hint pulls the colour at its spot toward it.

    With POLYCHROME_SCREENSHOT=PATH it also saves the page; the README's picture is made so:

        POLYCHROME_SCREENSHOT=docs/web.png \\
        POLYCHROME_SCREENSHOT_PHOTO=../shared/data/historical/1860girls.jpg \\
        POLYCHROME_SCREENSHOT_HINTS='[[0.85,0.12,"#5f86ad"],[0.2,0.6,"#a3283a"],[0.44,0.31,"#e6b494"],[0.78,0.75,"#f3c2cc"]]' \\
        .venv/bin/python -m pytest -q tests/web/test_browser.py -k bundled

    (hints: [x / width, y / height, colour], the first one checked)."""
    from selenium.webdriver.common.by import By

    shot = os.environ.get("POLYCHROME_SCREENSHOT")
    # As `polychrome serve` runs it; for the picture also with the automatic model's suggestions.
    driver, _server, _downloads = page(HINTS_SPEC, window=(1200, 760), size=None, auto_spec=None if shot else "")
    src = os.environ.get("POLYCHROME_SCREENSHOT_PHOTO")
    photo = tmp_path / (Path(src).stem + ".png" if src else "scene.png")
    if src:
        Image.open(src).convert("L").save(photo)
    else:
        photo.write_bytes(grey_png(480, 320))
    open_photo(driver, photo)
    spots = json.loads(os.environ.get("POLYCHROME_SCREENSHOT_HINTS", "null")) or [[0.3, 0.6, BLUE]]
    fx, fy, colour = spots[0]
    target = np.array(hex_to_ab(colour))
    before = shown_ab(driver, fx, fy, lab)
    for i, (sx, sy, c) in enumerate(spots):
        n = renders(driver)
        click_photo(driver, sx, sy)
        pick_colour(driver, c)
        hints_on_page_after(driver, n, i + 1)
    after = shown_ab(driver, fx, fy, lab)
    if shot:
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .swatch"), what="suggestions")
        time.sleep(0.3)
        save_screenshot(driver, shot)
    # A modest bar, as in test_web's check of the same model: a fifth of the way toward the hint at least.
    assert np.linalg.norm(after - target) < 0.8 * np.linalg.norm(before - target), (before, after, target)
