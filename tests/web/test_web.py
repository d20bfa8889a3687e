"""The web page's API (polychrome.web), driven with FastAPI's TestClient the way the page and scripts drive it.

A fixture hint model (GlowHints: a fixed tint without hints, each hint's colour spreading around it) stands
in for the trained one, so these tests need no bundled weights; the last test checks the bundled `hints`
model when the package has it.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading

import numpy as np
import pytest
import torch
from _helpers import colorizer_of
from fastapi import testclient as fastapi_testclient
from _web_helpers import DoubtfulAB, GlowHints, PatchAB, grey_png
from PIL import Image

from polychrome import hub
from polychrome.color.hints import hex_to_ab, load_hint_file, parse_hints
from polychrome.io.images import jpeg_quality
from polychrome.pipeline import colorize_file
from polychrome.web import Limits, create_app

W, H = 241, 181  # odd sizes: nothing divides evenly into the working and preview grids
SIZE = 96  # working size of these tests
BLUE = "#2060e0"


def _wrapped(model, precision: str):
    """Stand-in modules become Colorizers with their test names and sizes; names and paths stay as they are."""
    return colorizer_of(model, precision) if isinstance(model, torch.nn.Module) else model


def client(model=None, limits: Limits | None = None, auto_spec="", **kw):
    precision = kw.get("precision", "fp32")
    model, auto_spec = _wrapped(model if model is not None else GlowHints(), precision), _wrapped(auto_spec, precision)
    app = create_app(model, auto_spec=auto_spec, limits=limits or Limits(),
                     size=kw.pop("size", SIZE), preview_size=kw.pop("preview_size", 160), **kw)  # fmt: skip
    return fastapi_testclient.TestClient(app)


def upload(c, data: bytes | None = None, name: str = "photo.png"):
    r = c.post("/api/photos", files={"file": (name, grey_png(W, H) if data is None else data, "image/png")})
    return r


def photo_id(c) -> str:
    r = upload(c)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def image(r) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def ab_at(rgb: np.ndarray, fx: float, fy: float, lab) -> np.ndarray:
    """Mean Lab (a, b) over a 3x3 patch at the fractional position (fx, fy) of an RGB image."""
    h, w = rgb.shape[:2]
    r, c = int(fy * h), int(fx * w)
    return lab(rgb[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2])[..., 1:].reshape(-1, 2).mean(0)


def one_line(r) -> str:
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail, r.text
    return detail


# ------------------------------------------------------------------------------------------ the happy path


def test_upload_keeps_the_photo_and_reports_its_sizes():
    with client() as c:
        r = upload(c, name="grandma 1931.png")
        assert r.status_code == 201
        info = r.json()
        assert (info["width"], info["height"], info["name"]) == (W, H, "grandma 1931.png")
        assert max(info["working_width"], info["working_height"]) == SIZE
        assert (info["preview_width"], info["preview_height"]) == (160, 120)
        assert c.get(f"/api/photos/{info['id']}").json() == info
        gray = c.get(f"/api/photos/{info['id']}/gray?format=png")
        assert gray.headers["content-type"] == "image/png" and image(gray).shape == (120, 160, 3)
        assert c.delete(f"/api/photos/{info['id']}").status_code == 204
        assert c.get(f"/api/photos/{info['id']}").status_code == 404


def test_colorize_without_hints_is_the_automatic_result(lab):
    with client() as c:
        pid = photo_id(c)
        r = c.post(f"/api/photos/{pid}/colorize?format=png", json=[])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert int(r.headers["x-elapsed-ms"]) >= 0 and r.headers["x-hints"] == "0"
        rgb = image(r)
        assert rgb.shape == (120, 160, 3)
        a, b = ab_at(rgb, 0.5, 0.5, lab)
        assert abs(a - 12) < 3 and abs(b - 24) < 3  # GlowHints' tint, everywhere


def test_a_hint_moves_the_colour_at_its_spot_toward_it(lab):
    target = np.array(hex_to_ab(BLUE))
    with client() as c:
        pid = photo_id(c)
        before = image(c.post(f"/api/photos/{pid}/colorize?format=png", json=[]))
        hints = [{"x": 60, "y": 45, "color": BLUE}]
        r = c.post(f"/api/photos/{pid}/colorize", json=hints)  # JPEG, the page's format
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.headers["x-hints"] == "1"
        after = image(r)
    d_before = np.linalg.norm(ab_at(before, 60 / W, 45 / H, lab) - target)
    d_after = np.linalg.norm(ab_at(after, 60 / W, 45 / H, lab) - target)
    assert d_before > 60 and d_after < 0.35 * d_before, (d_before, d_after)
    far = np.linalg.norm(ab_at(after, 0.9, 0.9, lab) - ab_at(before, 0.9, 0.9, lab))
    assert far < 4  # a hint colours its region, not the whole photo


def test_full_resolution_download_is_the_cli_pipeline(tmp_path):
    """/full gives the photo's own size, pixel for pixel what `polychrome colorize --hints` writes."""
    model = GlowHints()
    hints = [{"x": 60, "y": 45, "color": BLUE}, {"x": 200.5, "y": 150, "color": "#c03020"}]
    data = grey_png(W, H)
    with client(model) as c:
        pid = photo_id(c)
        r = c.post(f"/api/photos/{pid}/full", json=hints)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["content-disposition"] == 'attachment; filename="photo-colour.png"'
        full = image(r)
        jpeg = c.post(f"/api/photos/{pid}/full?format=jpeg", json=hints)
        assert jpeg.headers["content-disposition"].endswith('photo-colour.jpg"') and image(jpeg).shape == (H, W, 3)
        preview = image(c.post(f"/api/photos/{pid}/colorize?format=png", json=hints))
    assert full.shape == (H, W, 3)
    (tmp_path / "photo.png").write_bytes(data)
    colorize_file(colorizer_of(model), tmp_path / "photo.png", tmp_path / "cli.png", size=SIZE, hints=parse_hints(hints))
    cli = np.asarray(Image.open(tmp_path / "cli.png").convert("RGB"))
    assert np.array_equal(full, cli)
    # The preview is the same result, smaller: the model saw the same working-size input and hints.
    small = np.asarray(Image.fromarray(full).resize((160, 120), Image.BILINEAR), dtype=np.float32)
    assert np.abs(small - preview.astype(np.float32)).mean() < 3.0


def _mean_ab(rgb: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(rgb[y0:y1, x0:x1])[..., 1:].reshape(-1, 2).mean(0)


def test_the_page_starts_from_the_automatic_result_and_hints_refine_it(constant_ab):
    auto = constant_ab(-30.0, 40.0)
    hint = [{"x": 60, "y": 45, "color": BLUE}]
    with client(auto_spec=auto) as c:
        assert c.get("/api/info").json()["starts_from_auto"] is True
        pid = photo_id(c)
        start = image(c.post(f"/api/photos/{pid}/full", json=[]))
        hinted = image(c.post(f"/api/photos/{pid}/full", json=hint))
        preview = image(c.post(f"/api/photos/{pid}/colorize?format=png", json=hint))
    with client(model=auto) as c:
        auto_alone = image(c.post(f"/api/photos/{photo_id(c)}/full", json=[]))
    with client(auto_spec=auto, start_from_auto=False) as c:
        assert c.get("/api/info").json()["starts_from_auto"] is False
        pid = photo_id(c)
        own_start = image(c.post(f"/api/photos/{pid}/full", json=[]))
        own_hinted = image(c.post(f"/api/photos/{pid}/full", json=hint))
    assert np.array_equal(start, auto_alone)  # no hints: exactly the automatic model's result
    near, far = (40, 50, 55, 65), (160, 181, 200, 241)
    assert np.abs(_mean_ab(hinted, *near) - _mean_ab(own_hinted, *near)).max() < 1.0  # the hint lands as the hint model puts it
    assert np.abs(_mean_ab(hinted, *far) - _mean_ab(start, *far)).max() < 1.0  # far away the automatic colour stays
    assert np.abs(_mean_ab(own_start, *far) - (12, 24)).max() < 2.0  # --hints-only: the hint model's own tint
    small = np.asarray(Image.fromarray(hinted).resize((160, 120), Image.BILINEAR), dtype=np.float32)
    assert np.abs(small - preview.astype(np.float32)).mean() < 3.0  # the preview shows the same result


def test_the_pages_refined_download_is_colorize_with_base(tmp_path, constant_ab):
    """/full on a page that starts from the automatic model is, pixel for pixel, what `polychrome colorize
    --hints FILE --base AUTO` writes (RefinedColorizer)."""
    from polychrome.colorizer import RefinedColorizer

    model, auto = GlowHints(), constant_ab(-30.0, 40.0)
    hints = [{"x": 60, "y": 45, "color": BLUE}]
    with client(model, auto_spec=auto) as c:
        full = image(c.post(f"/api/photos/{photo_id(c)}/full", json=hints))
    (tmp_path / "photo.png").write_bytes(grey_png(W, H))
    refined = RefinedColorizer(colorizer_of(model), colorizer_of(auto))
    colorize_file(refined, tmp_path / "photo.png", tmp_path / "cli.png", size=SIZE, hints=parse_hints(hints))
    assert np.array_equal(full, np.asarray(Image.open(tmp_path / "cli.png").convert("RGB")))
    with pytest.raises(ValueError, match="takes no hints"):
        RefinedColorizer(colorizer_of(auto), colorizer_of(model))


def test_refine_base_keeps_the_base_without_hints_and_the_hint_models_colour_in_its_region():
    from polychrome.color.hints import REFINE_TAU, refine_base

    base, own0 = torch.full((1, 2, 4, 4), 20.0), torch.zeros(1, 2, 4, 4)
    assert torch.equal(refine_base(base, own0, own0.clone()), base)
    own = own0.clone()
    own[..., 0, 0] = torch.tensor([-50.0, 30.0])  # a hint's region: changed by far more than tau
    own[..., 3, 3] = torch.tensor([REFINE_TAU / 4, 0.0])  # a small leak elsewhere
    out = refine_base(base, own0, own)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([-50.0, 30.0]))
    torch.testing.assert_close(out[0, :, 3, 3], torch.tensor([0.25 * 2.5 + 0.75 * 22.5, 0.75 * 20.0]))
    torch.testing.assert_close(out[0, :, 1, 2], torch.tensor([20.0, 20.0]))


def test_suggestions_come_from_the_models_at_that_spot(constant_ab):
    auto = constant_ab(-30.0, 40.0)  # an "automatic model" whose colour is known exactly
    with client(auto_spec=auto) as c:
        pid = photo_id(c)
        other = [{"x": 62, "y": 44, "color": BLUE}]
        r = c.post(f"/api/photos/{pid}/suggestions?x=60&y=45", json=other)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["x"], body["y"]) == (60, 45)
        got = {s["source"]: s for s in body["suggestions"]}
        assert list(got) == ["hint-model-auto", "current", "auto-model"]
        assert np.allclose(got["hint-model-auto"]["ab"], (12, 24), atol=0.5)  # the hint model without hints
        assert np.linalg.norm(np.subtract(got["current"]["ab"], hex_to_ab(BLUE))) < 15  # next to the blue hint
        assert np.allclose(got["auto-model"]["ab"], (-30, 40), atol=0.5)
        labels = [s["label"] for s in body["suggestions"]]
        assert labels == ["automatic, no hints", "current result", "constant-ab model"]
        assert all(s["color"].startswith("#") and len(s["color"]) == 7 for s in body["suggestions"])
        assert all(40 <= s["lightness"] <= 80 for s in body["suggestions"])
        # Far from every hint the current colour IS the automatic model's (the page starts from it and hints
        # refine it): only distinct colours come back.
        far = c.post(f"/api/photos/{pid}/suggestions?x=230&y=170", json=other).json()["suggestions"]
        assert [s["source"] for s in far] == ["hint-model-auto", "current"]
        assert np.allclose(far[1]["ab"], (-30, 40), atol=1.0)
        assert c.post(f"/api/photos/{pid}/suggestions?x=241&y=10", json=[]).status_code == 422
        assert c.post(f"/api/photos/{pid}/suggestions?x=ten&y=10", json=[]).status_code == 422


def test_jpeg_quality_is_read_from_the_file():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8))
    for q in (12, 50, 71, 92, 100):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        buf.seek(0)
        assert jpeg_quality(buf) == q
    buf = io.BytesIO()
    img.save(buf, "PNG")
    buf.seek(0)
    assert jpeg_quality(buf) is None


def test_a_jpeg_result_keeps_the_uploads_quality():
    rgb = np.asarray(Image.open(io.BytesIO(grey_png(W, H))).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=71)
    with client() as c:
        r = upload(c, buf.getvalue(), name="scan.jpg")
        assert r.json()["jpeg_quality"] == 71
        out = c.post(f"/api/photos/{r.json()['id']}/full?format=jpeg", json=[])
        assert out.headers["content-type"] == "image/jpeg" and jpeg_quality(io.BytesIO(out.content)) == 71
        png = upload(c)
        assert png.json()["jpeg_quality"] is None  # not a JPEG: its JPEG result is written at 92
        out = c.post(f"/api/photos/{png.json()['id']}/full?format=jpeg", json=[])
        assert jpeg_quality(io.BytesIO(out.content)) == 92


def _inside(spot, box, slack=0.04):
    x0, y0, x1, y1 = box
    return x0 - slack <= spot["x"] / W <= x1 + slack and y0 - slack <= spot["y"] / H <= y1 + slack


def test_doubtful_spots_lie_where_the_confidence_head_is_low():
    box = (0.6, 0.55, 0.9, 0.9)
    with client(auto_spec=DoubtfulAB(box)) as c:
        pid = photo_id(c)
        r = c.post(f"/api/photos/{pid}/doubt", json=[])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == "confidence" and "doubtful" in body["label"]
        spots = body["spots"]
        assert 1 <= len(spots) <= 5 and all(_inside(s, box) for s in spots), spots
        assert all(s["doubt"] > 0.9 and s["radius"] > 0 for s in spots)
        # A hint on the first spot: no spot is suggested next to it any more.
        first = spots[0]
        hint = [{"x": first["x"], "y": first["y"], "color": BLUE}]
        again = c.post(f"/api/photos/{pid}/doubt", json=hint).json()["spots"]
        assert all(np.hypot(s["x"] - first["x"], s["y"] - first["y"]) >= W / 8 - 2 for s in again), again
        assert len(c.post(f"/api/photos/{pid}/doubt?count=1", json=[]).json()["spots"]) == 1
        assert c.post(f"/api/photos/{pid}/doubt?count=0", json=[]).status_code == 422


def test_doubtful_spots_from_the_models_disagreement_or_none():
    box = (0.1, 0.1, 0.35, 0.4)
    with client(auto_spec=PatchAB(box)) as c:
        body = c.post(f"/api/photos/{photo_id(c)}/doubt", json=[]).json()
    assert body["source"] == "disagreement" and body["spots"]
    assert all(_inside(s, box) for s in body["spots"]), body["spots"]
    with client() as c:  # no automatic model and no confidence head: nothing to measure doubt with
        body = c.post(f"/api/photos/{photo_id(c)}/doubt", json=[]).json()
    assert body["source"] == "none" and body["spots"] == []


def test_hint_file_round_trip(tmp_path):
    hints = [{"x": 60, "y": 45.5, "color": "#2060E0"}, {"x": 0, "y": 0, "color": "#F00"}]
    with client() as c:
        pid = photo_id(c)
        r = c.post(f"/api/photos/{pid}/hints", json=hints)
        assert r.status_code == 200
        assert r.headers["content-disposition"] == 'attachment; filename="photo.hints.json"'
        saved = r.json()
        assert saved == [{"x": 60, "y": 45.5, "color": "#2060e0"}, {"x": 0, "y": 0, "color": "#ff0000"}]
        path = tmp_path / "photo.hints.json"
        path.write_bytes(r.content)
        assert load_hint_file(path) == parse_hints(hints)  # what `polychrome colorize --hints` reads
        again = c.post(f"/api/photos/{pid}/colorize?format=png", json=json.loads(path.read_text()))
        first = c.post(f"/api/photos/{pid}/colorize?format=png", json=hints)
        assert np.array_equal(image(again), image(first))


def test_page_and_openapi_are_served():
    with client() as c:
        page = c.get("/")
        assert page.status_code == 200 and "polychrome" in page.text and "/static/app.js" in page.text
        for name in ("app.js", "style.css"):
            assert c.get(f"/static/{name}").status_code == 200
        docs = c.get("/docs")  # our own page over /openapi.json: Swagger UI would need a CDN
        assert docs.status_code == 200 and "/openapi.json" in docs.text
        for text in (page.text, docs.text):  # nothing loaded from elsewhere: the machines are offline
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
        spec = c.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/info", "/api/queue", "/api/photos", "/api/photos/{photo_id}"):
        assert path in paths, path
    for op in ("colorize", "suggestions", "doubt", "full", "hints", "gray"):
        assert f"/api/photos/{{photo_id}}/{op}" in paths, op
    upload_op = paths["/api/photos"]["post"]
    assert "multipart/form-data" in upload_op["requestBody"]["content"]
    assert {"413", "422", "503"} <= set(upload_op["responses"])
    colorize = paths["/api/photos/{photo_id}/colorize"]["post"]
    schema = colorize["requestBody"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array" and set(schema["items"]["required"]) == {"x", "y", "color"}
    assert "image/jpeg" in colorize["responses"]["200"]["content"]
    assert {"404", "413", "422", "503", "504"} <= set(colorize["responses"])
    assert "hint-model-auto" in paths["/api/photos/{photo_id}/suggestions"]["post"]["description"]
    assert {"PhotoInfo", "Suggestions", "DoubtfulSpots", "ServerInfo", "ErrorDetail"} <= set(spec["components"]["schemas"])


def test_info_names_the_model_and_limits():
    limits = Limits(max_upload_bytes=1234567, jobs=3)
    with client(limits=limits) as c:
        info = c.get("/api/info").json()
    assert info["model"] == "glow-hints" and info["uses_hints"] is True and info["auto_model"] is None
    assert info["working_size"] == SIZE
    assert info["limits"]["max_upload_bytes"] == 1234567 and info["limits"]["jobs"] == 3


# ------------------------------------------------------------------------------------------ limits and errors


def test_too_big_upload_is_413():
    limits = Limits(max_upload_bytes=20_000)
    with client(limits=limits) as c:
        # Far over: refused on Content-Length, before the body is read.
        r = upload(c, b"\0" * 200_000, name="huge.png")
        assert r.status_code == 413 and one_line(r).startswith("upload too large")
        # Just over (within the multipart framing allowance): refused while the file is read.
        r = upload(c, b"\0" * 20_001, name="big.png")
        assert r.status_code == 413 and "19.5 KB limit" in one_line(r)
        assert len(c.app.state.session.store) == 0


def test_json_body_over_its_limit_is_413():
    with client(limits=Limits(max_json_bytes=2000)) as c:
        pid = photo_id(c)
        hints = [{"x": 1, "y": 1, "color": "#ffffff"}] * 100
        r = c.post(f"/api/photos/{pid}/colorize", json=hints)
        assert r.status_code == 413 and one_line(r).startswith("request body too large")


def test_too_many_pixels_is_413_before_decoding():
    with client(limits=Limits(max_pixels=200 * 150)) as c:
        r = upload(c, grey_png(W, H), name="scan.png")
        assert r.status_code == 413
        assert one_line(r) == "scan.png: 241x181 pixels (0.0436 MP) is over the 0.03 MP limit"


@pytest.mark.parametrize(
    "data, expect",
    [
        (b"this is not an image", "notes.png: not a photo polychrome reads (JPEG, PNG, WebP, BMP or TIFF)"),
        (grey_png(W, H)[:300], "notes.png: cannot read image"),  # truncated
        (b"", "notes.png: the uploaded file is empty"),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_unreadable_upload_is_422(data, expect):
    with client() as c:
        r = upload(c, data, name="notes.png")
        assert r.status_code == 422 and one_line(r).startswith(expect), r.text


@pytest.mark.parametrize(
    "body, expect",
    [
        ("[{", "request body is not valid JSON"),
        ("", "request body is empty"),
        ('{"x": 1}', "hints: expected a JSON list of hints, got dict"),
        ('[{"x": 1, "y": 2}]', "hints: hint 0: missing color"),
        ('[{"x": 1, "y": 2, "color": "red"}]', "hints: hint 0: colour 'red' is not a #rrggbb hex colour"),
        ('[{"x": -1, "y": 2, "color": "#ff0000"}]', "hints: hint 0: x and y must be >= 0"),
        ('[{"x": "1", "y": 2, "color": "#ff0000"}]', "hints: hint 0: x must be a finite number"),
        ('[{"x": 241, "y": 2, "color": "#ff0000"}]', "hints: hint 0 at (241, 2) lies outside the 241x181 photo"),
        (json.dumps([{"x": 1, "y": 1, "color": "#ffffff"}] * 501), "too many hints: 501 > 500"),
    ],
    ids=["json", "empty", "not-list", "missing", "colour", "negative", "string", "outside", "too-many"],
)
def test_malformed_hints_are_422(body, expect):
    with client() as c:
        pid = photo_id(c)
        for endpoint in ("colorize", "full", "hints", "suggestions?x=1&y=1"):
            r = c.post(f"/api/photos/{pid}/{endpoint}", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422 and one_line(r).startswith(expect), (endpoint, r.text)


def test_a_model_without_hint_inputs_refuses_hints(constant_ab):
    with client(constant_ab(5.0, 5.0)) as c:
        pid = photo_id(c)
        assert c.post(f"/api/photos/{pid}/colorize", json=[]).status_code == 200
        r = c.post(f"/api/photos/{pid}/colorize", json=[{"x": 1, "y": 1, "color": "#ff0000"}])
        assert r.status_code == 422 and "cannot use colour hints" in one_line(r)
        assert c.get("/api/info").json()["uses_hints"] is False


def test_unknown_photo_is_404():
    with client() as c:
        r = c.post("/api/photos/nope/colorize", json=[])
        assert r.status_code == 404 and "upload it again" in one_line(r)


def test_store_drops_the_least_recently_used_photo():
    with client(limits=Limits(max_photos=2)) as c:
        a, b = photo_id(c), photo_id(c)
        assert c.get(f"/api/photos/{a}").status_code == 200  # a is now the most recently used
        c3 = photo_id(c)
        assert c.get(f"/api/photos/{b}").status_code == 404
        assert c.get(f"/api/photos/{a}").status_code == 200 and c.get(f"/api/photos/{c3}").status_code == 200
    one_photo = len(grey_png(W, H)) + 4 * (96 * 72 + 160 * 120)  # the upload, float32 L at two small sizes
    with client(limits=Limits(max_store_bytes=int(2.5 * one_photo))) as c:
        ids = [photo_id(c) for _ in range(3)]
        assert [c.get(f"/api/photos/{i}").status_code for i in ids] == [404, 200, 200]
        assert c.app.state.session.store.nbytes() <= 2.5 * one_photo + 3 * 2 * 4 * 96 * 72


def _hold_one_job(c, model, pid, results: list):
    """Start a colourisation that blocks inside the model; returns its thread once the model is entered."""
    model.hold = threading.Event()
    t = threading.Thread(target=lambda: results.append(c.post(f"/api/photos/{pid}/colorize", json=[])))
    t.start()
    assert model.entered.wait(10), "the first job never reached the model"
    return t


def test_a_busy_server_with_no_queue_answers_503_with_retry_after():
    model = GlowHints()
    with client(model, limits=Limits(jobs=1, queue=0)) as c:
        pid = photo_id(c)
        results: list = []
        t = _hold_one_job(c, model, pid, results)
        try:
            for endpoint in ("colorize", "full", "suggestions?x=1&y=1"):
                r = c.post(f"/api/photos/{pid}/{endpoint}", json=[])
                assert r.status_code == 503 and one_line(r).startswith("server busy"), r.text
                assert "queue is full" in one_line(r) and int(r.headers["retry-after"]) >= 1
            assert c.get("/api/info").status_code == 200  # the server itself still answers
        finally:
            model.hold.set()
            t.join(10)
        assert results[0].status_code == 200
        model.hold = None
        assert c.post(f"/api/photos/{pid}/colorize", json=[{"x": 5, "y": 5, "color": BLUE}]).status_code == 200


def test_work_past_the_time_limit_is_504_and_frees_its_slot_when_done():
    model = GlowHints()
    with client(model, limits=Limits(jobs=1, queue=0, timeout_s=0.3)) as c:
        pid = photo_id(c)
        model.hold = threading.Event()
        r = c.post(f"/api/photos/{pid}/colorize", json=[])
        assert r.status_code == 504 and one_line(r) == "colourisation took longer than the 0.3 s limit"
        # The abandoned job still runs, so it still holds the only slot ...
        assert c.post(f"/api/photos/{pid}/colorize", json=[]).status_code == 503
        model.hold.set()
        model.hold = None
        # ... until it finishes.
        for _ in range(100):
            r = c.post(f"/api/photos/{pid}/colorize", json=[])
            if r.status_code != 503:
                break
            threading.Event().wait(0.05)
        assert r.status_code == 200


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="Limits.jobs must be positive"):
        Limits(jobs=0)
    with pytest.raises(ValueError, match="Limits.queue must be positive"):
        Limits(queue=-1)
    assert Limits(queue=0).queue == 0  # no queue: refuse at once


# ------------------------------------------------------------------------------------------ the serve command


def test_serve_command_help_and_bad_model():
    from typer.testing import CliRunner

    from polychrome.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for option in ("--model", "--host", "--port", "--size", "--max-upload-mb", "--max-pixels", "--jobs", "--timeout"):
        assert option in r.output
    assert "127.0.0.1" in r.output
    r = runner.invoke(app, ["serve", "--model", "no/such/model.safetensors"])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output


def test_serve_command_serves_the_page_on_localhost(tmp_path):
    """`polychrome serve` for real, in a subprocess on a free port, with a tiny exported hint model."""
    import subprocess
    import sys
    import urllib.request

    from polychrome import create_model

    torch.manual_seed(0)
    tiny = create_model("icolorit-tiny", dim=32, depth=1, heads=1, img_size=32)
    folder = hub.save_weights(tiny, {"model": "icolorit-tiny", "model_kwargs": {"dim": 32, "depth": 1, "heads": 1,
                                     "img_size": 32}, "infer_size": 64}, tmp_path / "tiny-hints")  # fmt: skip
    cmd = [sys.executable, "-m", "polychrome", "serve", "--model", str(folder), "--port", "0", "--auto-model", "",
           "--size", "64", "--max-upload-mb", "3", "--jobs", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + proc.stdout.read() if proc.poll() is not None else line
        url = match.group(1)
        info = json.loads(urllib.request.urlopen(url + "api/info", timeout=20).read())
        assert info["model"] == "tiny-hints" and info["uses_hints"] and info["working_size"] == 64
        assert info["limits"]["max_upload_bytes"] == 3 * 1024 * 1024 and info["limits"]["jobs"] == 1
        assert b"polychrome" in urllib.request.urlopen(url, timeout=20).read()
    finally:
        proc.terminate()
        proc.wait(20)


# ------------------------------------------------------------------------------------------ the real model


# POLYCHROME_TEST_HINTS_MODEL=PATH runs these checks on a weight file or checkpoint before it is bundled.
HINTS_SPEC = os.environ.get("POLYCHROME_TEST_HINTS_MODEL", "hints")


def test_bundled_hints_model_moves_colour_toward_a_hint(lab):
    """The shipped hint model, through the API at `polychrome serve`'s working size: one saturated hint in a
    smooth region pulls the colour at its spot toward it (a fifth of the way at least, and in its direction).

    The bar is modest on purpose: a model trained with L1 on ab keeps colours muted, and one 2 x 2 hint on
    a 320 px grid is a small nudge (the step-7000 model: blue 0.49-0.73, orange 0.43-0.65 of the distance
    left; green barely moves)."""
    with fastapi_testclient.TestClient(create_app(HINTS_SPEC, auto_spec="")) as c:
        pid = c.post("/api/photos", files={"file": ("p.png", grey_png(320, 240), "image/png")}).json()["id"]
        before = image(c.post(f"/api/photos/{pid}/colorize?format=png", json=[]))
        for colour in (BLUE, "#e0a020"):
            hint = [{"x": 96, "y": 144, "color": colour}]
            after = image(c.post(f"/api/photos/{pid}/colorize?format=png", json=hint))
            target = np.array(hex_to_ab(colour))
            ab0, ab1 = ab_at(before, 0.3, 0.6, lab), ab_at(after, 0.3, 0.6, lab)
            d_before, d_after = np.linalg.norm(ab0 - target), np.linalg.norm(ab1 - target)
            cosine = np.dot(ab1 - ab0, target - ab0) / (np.linalg.norm(ab1 - ab0) * d_before + 1e-9)
            assert d_after < 0.8 * d_before and cosine > 0.7, (colour, d_before, d_after, cosine)


# ------------------------------------------------------------------------------------------ who may ask


def test_a_host_the_server_does_not_answer_to_is_refused():
    """DNS rebinding: a foreign name that resolves to 127.0.0.1 names itself in the Host header."""
    with client(allowed_hosts=["127.0.0.1", "localhost", "::1"]) as c:
        r = c.get("/api/info", headers={"host": "attacker.example:8000"})
        assert r.status_code == 400 and "attacker.example" in one_line(r)
        assert c.get("/", headers={"host": "rebound.example"}).status_code == 400
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST"):
            assert c.get("/api/info", headers={"host": host}).status_code == 200, host
        photo = {"file": ("p.png", grey_png(W, H), "image/png")}
        r = c.post("/api/photos", headers={"host": "127.0.0.1:8000"}, files=photo)
        assert r.status_code == 201, r.text


def test_a_write_from_another_sites_page_is_refused():
    with client() as c:  # TestClient's Host is "testserver"
        for origin in ("http://evil.example", "http://testserver.evil.example", "null", "https://testserver:444"):
            photo = {"file": ("p.png", grey_png(W, H), "image/png")}
            r = c.post("/api/photos", headers={"origin": origin}, files=photo)
            assert r.status_code == 403 and "cross-origin" in one_line(r), (origin, r.text)
        pid = photo_id(c)  # no Origin (a script, curl): allowed
        r = c.post(f"/api/photos/{pid}/colorize", headers={"origin": "http://testserver"}, content=b"[]")
        assert r.status_code == 200, r.text  # the page itself
        r = c.delete(f"/api/photos/{pid}", headers={"origin": "http://evil.example"})
        assert r.status_code == 403
        assert c.get(f"/api/photos/{pid}", headers={"origin": "http://evil.example"}).status_code == 200  # reads: CORS


def test_serve_answers_to_its_listen_address():
    from polychrome.web.origin import serve_hosts

    assert set(serve_hosts("127.0.0.1")) == {"127.0.0.1", "localhost", "::1"}
    assert set(serve_hosts("::1")) == {"127.0.0.1", "localhost", "::1"}
    assert serve_hosts("192.168.1.20", ["photos.lan"]) == ["192.168.1.20", "photos.lan"]
    assert serve_hosts("0.0.0.0") is None and serve_hosts("::", ["photos.lan"]) == ["photos.lan"]


# ------------------------------------------------------------------------------------------ hostile requests


def test_a_nul_byte_in_the_uploads_file_name_is_a_clean_422():
    # Written by hand: an HTTP client would escape the NUL (%00); an attacker's raw request does not.
    body = (b'--XX\r\nContent-Disposition: form-data; name="file"; filename="photo\x00.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + grey_png(W, H) + b"\r\n--XX--\r\n")
    with client() as c:
        r = c.post("/api/photos", content=body, headers={"Content-Type": "multipart/form-data; boundary=XX"})
        assert r.status_code == 422 and "control character" in one_line(r), r.text
        assert upload(c, name="photo.png").status_code == 201  # the server is still fine


def test_hints_nested_100000_deep_are_a_clean_422():
    with client() as c:
        pid = photo_id(c)
        for body in ("[" * 100_000 + "]" * 100_000, '[{"x": ' + "[" * 100_000):
            r = c.post(f"/api/photos/{pid}/colorize", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422 and one_line(r).startswith(("request body: JSON nested too deeply",
                                                                     "request body is not valid JSON")), r.text
