"""Hostile and broken inputs at the io layer and through a batch: each gets one line naming the file, the
rest of the batch is done, and nothing outside the photo formats' own decoders ever sees a file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from polychrome.io import ImageError, open_image
from polychrome.pipeline.batch import colorize_batch, plan

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\nnewpath 0 0 moveto 16 16 lineto stroke\n"


# ------------------------------------------------------------------ only photo formats are opened (item 12)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.mark.parametrize("content", [EPS, PDF], ids=["eps", "pdf"])
def test_a_document_named_like_a_photo_is_refused_before_any_decoder_runs(tmp_path, monkeypatch, content):
    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(self))
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(content)
    with pytest.raises(ImageError) as e:
        open_image(fake)
    msg = str(e.value)
    assert msg.startswith(f"{fake}: ") and "\n" not in msg and "JPEG" in msg, msg
    assert opened == []  # the PostScript parser (and so Ghostscript) never saw it


def test_a_batch_refuses_the_document_and_does_the_photos(tmp_path, make_photo, tiny_model):
    src = tmp_path / "in"
    make_photo(src / "good.png", 24, 20)
    (src / "photo.jpg").write_bytes(EPS)
    jobs, problems = plan([src], tmp_path / "out")
    report = colorize_batch(tiny_model, jobs)
    assert [j.dst.name for j in report.written] == ["good.png"]
    assert [f.src.name for f in report.failed] == ["photo.jpg"]
    assert "photo.jpg" in report.failed[0].message and "\n" not in report.failed[0].message


# ------------------------------------------------------------------ float TIFF: NaN, Inf, out of range (item 6)
def _float_tiff(path, broken: bool):
    """A float ("F") TIFF on [0, 1], a smooth ramp; ``broken`` puts one NaN, one +Inf, one -Inf and one 7.5 in."""
    a = np.tile(np.linspace(0.1, 0.9, 40, dtype=np.float32), (30, 1))
    if broken:
        a[0, 0], a[0, 1], a[0, 2], a[5, 5] = np.nan, np.inf, -np.inf, 7.5
    Image.fromarray(a, "F").save(path)
    return a


def test_float_tiff_with_nan_inf_and_out_of_range_pixels_is_mended_with_one_warning(tmp_path):
    from polychrome.io import ImageWarning, load_rgb

    clean = _float_tiff(tmp_path / "clean.tif", broken=False)
    _float_tiff(tmp_path / "scan.tif", broken=True)
    with pytest.warns(ImageWarning) as caught:
        rgb = load_rgb(tmp_path / "scan.tif")
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert msg.startswith(f"{tmp_path / 'scan.tif'}: ") and "\n" not in msg
    assert "3 NaN/Inf" in msg and "1 value(s) outside [0, 1]" in msg, msg
    assert np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    assert tuple(rgb[0, :3, 0]) == (0.0, 1.0, 0.0) and rgb[5, 5, 0] == 1.0
    rest = np.ones(clean.shape, bool)
    rest[0, :3] = rest[5, 5] = False
    np.testing.assert_array_equal(rgb[..., 0][rest], clean[rest])  # not darkened or rescaled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_rgb(tmp_path / "clean.tif")[..., 1], clean)  # a good one: no warning


def test_cli_colourises_a_broken_float_tiff_with_one_warning_line(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from polychrome.cli import app

    src = tmp_path / "scan.tif"
    _float_tiff(src, broken=True)
    r = CliRunner().invoke(app, ["colorize", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {src}: ") and "NaN/Inf" in lines[0], r.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "scan.tif").convert("L"), dtype=np.float32)
    assert out.mean() > 60  # not the black photo a NaN used to give (the ramp's mean is 50% grey)


# ------------------------------------------------------------------ what a user would try, in one batch (item 15)
def _png_claiming(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h pixels (a decompression bomb never needs its pixels)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_the_hostile_input_suite_in_one_batch(tmp_path, make_photo, tiny_model_dir):
    """Each file: the right output (size, upright) or exactly one line naming it; no traceback; no leftovers."""
    from typer.testing import CliRunner

    from polychrome.cli import app

    src = tmp_path / "in"
    good = {}  # name -> expected output size
    make_photo(src / "photo.jpg", 40, 30)
    good["photo.jpg"] = (40, 30)
    Image.fromarray((np.arange(30 * 20).reshape(20, 30) * 100).astype(np.uint16)).save(src / "deep16.png")
    good["deep16.png"] = (30, 20)
    import png  # pypng: Pillow writes no 16-bit colour

    rgb16 = (np.arange(30 * 20 * 3).reshape(20, 90) * 97 % 65536).astype(np.uint16)
    png.from_array(rgb16, "RGB;16").save(str(src / "deep16-colour.png"))  # a print scanned in 48-bit colour
    good["deep16-colour.png"] = (30, 20)
    Image.new("CMYK", (24, 16), (10, 50, 200, 30)).save(src / "cmyk.jpg")
    good["cmyk.jpg"] = (24, 16)
    pal = Image.new("P", (20, 12), 3)
    pal.info["transparency"] = 0
    pal.save(src / "palette-alpha.png", transparency=0)
    good["palette-alpha.png"] = (20, 12)
    exif = Image.Exif()
    exif[0x0112] = 6  # shot on its side: stands upright 16 x 32 after reading
    Image.fromarray(np.zeros((16, 32, 3), np.uint8) + 90).save(src / "rotated.jpg", exif=exif.tobytes())
    good["rotated.jpg"] = (16, 32)
    make_photo(src / "one.png", 1, 1)
    good["one.png"] = (1, 1)
    make_photo(src / "strip.png", 10000, 8)
    good["strip.png"] = (10000, 8)
    make_photo(src / "фото 1931 ☀.png", 20, 20)
    good["фото 1931 ☀.png"] = (20, 20)

    bad = {  # name -> what its line must say
        "corrupt.jpg": "not a photo", "truncated.png": "cannot read", "empty.jpg": "not a photo",
        "letter.png": "not a photo", "bomb.png": "150 MP limit", "anim.gif": "GIF",
    }  # fmt: skip
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    make_photo(src / "truncated.png", 64, 64)
    data = (src / "truncated.png").read_bytes()
    (src / "truncated.png").write_bytes(data[: len(data) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "letter.png").write_text("Dear Sir, this is a letter, not a photo.")
    (src / "bomb.png").write_bytes(_png_claiming(30000, 30000))
    frames = [Image.new("L", (8, 8), v) for v in (0, 255)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])

    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["colorize", str(src), "-o", str(out), "--model", str(tiny_model_dir)])
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit))
    assert r.exit_code == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    for name, says in bad.items():
        named = [ln for ln in lines if f"{src / name}:" in ln]
        assert len(named) == 1 and says in named[0], (name, r.stderr)
    assert len(lines) == len(bad), r.stderr
    assert f"{len(good)} written, 0 skipped, {len(bad)} failed" in r.stdout
    for name, size in good.items():
        with Image.open(out / name) as im:
            assert im.size == size, name
    assert not list(out.rglob("*.part"))
