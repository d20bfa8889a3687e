"""The full-resolution download is what `polychrome colorize` writes, metadata included (the provenance note,
the upload's EXIF, ICC profile and DPI; 16 bits for a 16-bit scan), and a request waiting for its turn holds
only the uploaded file: the photo is decoded when the job runs."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import png
import torch
from _helpers import colorizer_of
from _web_helpers import GlowHints, grey_png
from fastapi import testclient as fastapi_testclient
from PIL import Image, ImageCms

from polychrome import __version__
from polychrome.color.hints import parse_hints
from polychrome.colorizer import RefinedColorizer
from polychrome.pipeline import colorize_file
from polychrome.web import Limits, create_app

W, H, SIZE = 241, 181, 96
HINTS = [{"x": 60, "y": 45, "color": "#2060e0"}]
DATE = "1931:06:01 12:00:00"
KEPT = {0x010E: "Grandma at the lake", 0x010F: "Kodak", 0x0132: DATE, 0x8298: "(c) the Miller family"}


def _client(model, auto=None, limits=None):
    auto = colorizer_of(auto) if isinstance(auto, torch.nn.Module) else ""
    app = create_app(colorizer_of(model), auto_spec=auto, limits=limits or Limits(), size=SIZE, preview_size=160)
    return fastapi_testclient.TestClient(app)


def _archive_jpeg(path) -> bytes:
    """A grey scan as a JPEG with the EXIF an archive cares about, a rotation, an sRGB profile and 300 DPI
    (stored 181 wide and 241 high; it stands upright as 241 x 181)."""
    exif = Image.Exif()
    for tag, value in KEPT.items():
        exif[tag] = value
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = DATE  # DateTimeOriginal
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    grey = Image.open(io.BytesIO(grey_png(W, H))).transpose(Image.Transpose.ROTATE_90)  # upright after orientation 6
    grey.save(path, exif=exif.tobytes(), icc_profile=icc, dpi=(300, 300), quality=95)
    return icc


def _full(c, data: bytes, name: str, fmt: str = "png", hints=HINTS) -> bytes:
    r = c.post("/api/photos", files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 201, r.text
    r = c.post(f"/api/photos/{r.json()['id']}/full?format={fmt}", json=hints)
    assert r.status_code == 200, r.text
    return r.content


def _metadata(im: Image.Image) -> dict:
    exif = im.getexif()
    return {
        "kept": {tag: exif.get(tag) for tag in KEPT}, "orientation": exif.get(0x0112, 1),
        "original date": exif.get_ifd(0x8769).get(0x9003), "software": exif.get(0x0131),
        "icc": im.info.get("icc_profile"), "dpi": tuple(round(d, 2) for d in im.info.get("dpi", ())),
    }  # fmt: skip


def test_the_download_carries_the_provenance_note_exif_icc_and_dpi_as_colorize_writes_them(tmp_path):
    model, auto = GlowHints(), GlowHints()
    auto.meta = {"model": "glow-auto", "infer_size": SIZE}
    src = tmp_path / "scan.jpg"
    icc = _archive_jpeg(src)
    data = src.read_bytes()
    refined = RefinedColorizer(colorizer_of(model), colorizer_of(auto))
    for server_auto, cli in ((None, colorizer_of(model)), (auto, refined)):
        with _client(model, server_auto) as c:
            as_png, as_jpeg = _full(c, data, "scan.jpg"), _full(c, data, "scan.jpg", "jpeg")
        dst = colorize_file(cli, src, tmp_path / "cli.png", size=SIZE, hints=parse_hints(HINTS))
        with Image.open(dst) as want, Image.open(io.BytesIO(as_png)) as got, Image.open(io.BytesIO(as_jpeg)) as jpeg:
            expected = _metadata(want)
            note = f"colourised by polychrome {__version__}, model {cli.name}"
            assert expected | {"software": note} == {
                "kept": KEPT, "orientation": 1, "original date": DATE, "software": note, "icc": icc, "dpi": (300, 300)}
            assert _metadata(got) == expected and got.text.get("Software") == note
            assert _metadata(jpeg) == expected
            assert got.size == jpeg.size == (W, H)  # upright
            assert np.array_equal(np.asarray(got), np.asarray(want))  # and pixel for pixel the file
    assert "glow-hints on glow-auto" in note  # the refined page names both models, as colorize --base does


def test_a_16bit_scan_downloads_as_the_16bit_png_colorize_writes(tmp_path):
    ramp = np.linspace(4000, 61000, W * H).reshape(H, W).round().astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    model = GlowHints()
    with _client(model) as c:
        got = _full(c, (tmp_path / "scan.png").read_bytes(), "scan.png")
    colorize_file(colorizer_of(model), tmp_path / "scan.png", tmp_path / "cli.png", size=SIZE, hints=parse_hints(HINTS))

    def read16(**source):
        w, h, rows, info = png.Reader(**source).read()
        return info["bitdepth"], np.vstack([np.asarray(r, np.uint16) for r in rows])

    bits, pixels = read16(bytes=got)
    assert bits == 16 and pixels.shape == (H, W * 3)
    want_bits, want = read16(filename=str(tmp_path / "cli.png"))
    assert want_bits == 16 and np.array_equal(pixels, want)


def test_a_queued_full_request_holds_only_the_upload_and_decodes_when_its_turn_comes(monkeypatch):
    from polychrome.web import session as session_module

    model = GlowHints()
    data = grey_png(W, H)
    with _client(model, limits=Limits(jobs=1, queue=4)) as c:
        r = c.post("/api/photos", files={"file": ("photo.png", data, "image/png")})
        pid = r.json()["id"]
        photo = c.app.state.session.store.get(pid)
        # What a waiting request holds of its photo: the uploaded file and two small grids of L, nothing
        # decoded at full resolution (a float L of the photo alone would be 4 * W * H bytes).
        assert photo.nbytes() == len(data) + 4 * (72 * 96 + 120 * 160) < 4 * W * H
        decoded: list[str] = []
        read_image = session_module.read_image

        def counted(source, name):
            decoded.append(name)
            return read_image(source, name)

        monkeypatch.setattr(session_module, "read_image", counted)
        model.hold = threading.Event()
        results: dict[str, object] = {}
        def post(key, endpoint, hints):
            results[key] = c.post(f"/api/photos/{pid}/{endpoint}", json=hints)

        busy = threading.Thread(target=post, args=("preview", "colorize", HINTS))
        waiting = threading.Thread(target=post, args=("full", "full", []))
        busy.start()
        try:
            assert model.entered.wait(10)  # a preview holds the only job slot
            waiting.start()
            deadline = time.monotonic() + 10
            while c.get(f"/api/queue?photo={pid}").json()["position"] != 1:
                assert time.monotonic() < deadline, "the full-resolution request never queued"
                time.sleep(0.02)
            time.sleep(0.1)
            assert decoded == []  # waiting: the photo is not decoded
        finally:
            model.hold.set()
            busy.join(20)
            if waiting.is_alive() or waiting.ident is not None:
                waiting.join(20)
        assert results["preview"].status_code == 200 and results["full"].status_code == 200
        assert decoded == ["photo.png"]  # decoded once, when its turn came
        assert Image.open(io.BytesIO(results["full"].content)).size == (W, H)
