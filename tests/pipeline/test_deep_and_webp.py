"""What an archive keeps of a photo's encoding: a 16-bit grey scan comes out as 16-bit RGB where the format
holds it (PNG, TIFF), its colour joined with its own L at better than 8-bit precision, with its EXIF, ICC and
DPI; a lossless WebP stays lossless, a lossy one lossy."""

from __future__ import annotations

import io

import numpy as np
import png
import pytest
import tifffile
from _helpers import assert_archive_metadata, colorizer_of
from PIL import Image, ImageCms

from polychrome.io import ImageWarning, is_complete_image, to_uint8
from polychrome.pipeline.batch import colorize_file

W, H = 64, 40
AB = (6.0, 12.0)  # a modest colour: every pixel of the ramp stays inside the sRGB gamut
DATE = "1931:06:01 12:00:00"


def _ramp16() -> np.ndarray:
    """A 16-bit grey ramp from 10% to 90%, almost none of its values on the 8-bit grid (multiples of 257)."""
    return np.linspace(0.1 * 65535, 0.9 * 65535, W * H).reshape(H, W).round().astype(np.uint16)


def _read16(path) -> np.ndarray:
    """A 16-bit RGB file's pixels as uint16 (H, W, C): pypng for a PNG, tifffile for a TIFF (Pillow reads
    both as 8-bit)."""
    if str(path).endswith(".png"):
        w, h, rows, info = png.Reader(filename=str(path)).read()
        assert info["bitdepth"] == 16, info
        return np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, info["planes"])
    return tifffile.imread(path)


def _archive16(path, compression=None) -> bytes:
    """A 16-bit grey scan with EXIF (description, camera, date, copyright), an RGB ICC profile and 300 DPI."""
    exif = Image.Exif()
    exif[0x010E], exif[0x010F], exif[0x0132], exif[0x8298] = "Grandma at the lake", "Nikon", DATE, "(c) Miller"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    kw = {"compression": compression} if compression else {}
    Image.fromarray(_ramp16()).save(path, exif=exif.tobytes(), icc_profile=icc, dpi=(300, 300), **kw)
    with Image.open(path) as im:
        assert im.mode.startswith("I;16")  # really 16-bit on disk
    return icc


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_a_16bit_grey_scan_gives_a_16bit_rgb_output_whose_l_is_the_scans(tmp_path, constant_ab, lab, ext):
    src = tmp_path / f"scan.{ext}"
    Image.fromarray(_ramp16()).save(src)
    dst = colorize_file(colorizer_of(constant_ab(*AB)), src, tmp_path / "out" / f"scan.{ext}")
    out = _read16(dst)
    assert out.dtype == np.uint16 and out.shape == (H, W, 3)
    assert np.count_nonzero(out % 257) > out.size // 2  # not 8-bit values scaled up
    rgb = out.astype(np.float32) / 65535.0
    g = _ramp16().astype(np.float32) / 65535.0
    L_in = lab(np.repeat(g[..., None], 3, axis=2))[..., 0]
    err16 = np.abs(lab(rgb)[..., 0] - L_in).max()
    err8 = np.abs(lab(to_uint8(rgb))[..., 0] - L_in).max()  # what the same colours give in 8 bits
    assert err16 < 0.02 < 0.1 < err8, (err16, err8)
    assert np.abs(lab(rgb)[..., 1:].reshape(-1, 2).mean(0) - AB).max() < 0.2  # the model's colour
    with Image.open(dst) as im:  # an ordinary reader opens it
        assert im.size == (W, H) and im.format == {"png": "PNG", "tif": "TIFF"}[ext]
    assert is_complete_image(dst)  # so a re-run counts it as finished


def test_an_8bit_photo_stays_8bit_and_a_16bit_scan_to_jpeg_is_8bit(tmp_path, constant_ab):
    c = colorizer_of(constant_ab(*AB))
    Image.fromarray((_ramp16() // 257).astype(np.uint8)).save(tmp_path / "grey8.png")
    _, _, _, info = png.Reader(filename=str(colorize_file(c, tmp_path / "grey8.png", tmp_path / "o8.png"))).read()
    assert info["bitdepth"] == 8 and info["planes"] == 3
    Image.fromarray(_ramp16()).save(tmp_path / "scan.png")
    with Image.open(colorize_file(c, tmp_path / "scan.png", tmp_path / "o.jpg")) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (W, H)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_a_16bit_output_keeps_the_scans_exif_icc_and_dpi(tmp_path, tiny_model, ext):
    src = tmp_path / f"scan.{ext}"
    icc = _archive16(src, compression="tiff_lzw" if ext == "tif" else None)
    dst = colorize_file(tiny_model, src, tmp_path / "out" / f"scan.{ext}")
    assert _read16(dst).dtype == np.uint16
    assert_archive_metadata(dst, "Nikon", icc, 300, tiny_model.name)
    with Image.open(dst) as im:
        if ext == "tif":  # compressed stays compressed: Deflate (tifffile does not encode LZW)
            assert im.info["compression"] == "tiff_adobe_deflate"
        else:
            assert im.text.get("Software") == im.getexif().get(0x0131)


def test_a_16bit_tiffs_exif_details_it_cannot_write_are_named_and_a_png_keeps_them(tmp_path, tiny_model):
    exif = Image.Exif()
    exif[0x010F] = "Nikon"
    exif.get_ifd(0x8769)[0x9003] = DATE  # DateTimeOriginal: in the EXIF sub-IFD
    Image.fromarray(_ramp16()).save(tmp_path / "scan.tif", exif=exif.tobytes())
    with pytest.warns(ImageWarning, match=r"scan.tif: 1 EXIF detail\(s\) .* not written into the 16-bit TIFF"):
        tif = colorize_file(tiny_model, tmp_path / "scan.tif", tmp_path / "out" / "scan.tif")
    with Image.open(tif) as im:
        assert im.getexif().get(0x010F) == "Nikon"
    with Image.open(colorize_file(tiny_model, tmp_path / "scan.tif", tmp_path / "out" / "scan.png")) as im:
        assert im.getexif().get_ifd(0x8769).get(0x9003) == DATE


def test_a_16bit_compare_picture_and_multi_page_tiff(tmp_path, constant_ab, lab):
    c = colorizer_of(constant_ab(*AB))
    Image.fromarray(_ramp16()).save(tmp_path / "scan.png")
    both = _read16(colorize_file(c, tmp_path / "scan.png", tmp_path / "cmp.png", compare=True))
    assert both.shape == (H, 2 * W, 3) and both.dtype == np.uint16
    grey, colour = both[:, :W].astype(np.float32) / 65535, both[:, W:].astype(np.float32) / 65535
    assert np.abs(lab(grey)[..., 1:]).max() < 0.05 and np.abs(lab(grey)[..., 0] - lab(colour)[..., 0]).max() < 0.02
    pages = [Image.fromarray(_ramp16()), Image.fromarray(_ramp16()[::-1].copy())]
    pages[0].save(tmp_path / "two.tif", save_all=True, append_images=pages[1:])
    dst = colorize_file(c, tmp_path / "two.tif", tmp_path / "two-out.tif")
    with tifffile.TiffFile(dst) as t:
        got = [p.asarray() for p in t.pages]
    assert [p.dtype for p in got] == [np.uint16] * 2 and [p.shape for p in got] == [(H, W, 3)] * 2
    assert np.abs(got[1][::-1].astype(int) - got[0].astype(int)).max() <= 1  # page 2 is page 1 upside down


# --------------------------------------------------------------------------- WebP
def _webp_image_chunk(path) -> bytes:
    """The FourCC of a WebP file's image chunk (VP8L lossless, "VP8 " lossy): the first of them in the file
    (a simple file has it at byte 12, an extended one after its VP8X, ICC, EXIF and alpha chunks)."""
    data = open(path, "rb").read()
    found = {fourcc: data.find(fourcc, 12) for fourcc in (b"VP8L", b"VP8 ")}
    found = {k: v for k, v in found.items() if v >= 0}
    assert found, f"{path}: no image chunk"
    return min(found, key=found.get)


def _pixels(path_or_file) -> np.ndarray:
    return np.asarray(Image.open(path_or_file).convert("RGB"))


def test_a_lossless_webp_stays_lossless_and_a_lossy_one_lossy(tmp_path, make_photo, tiny_model):
    make_photo(tmp_path / "lossless.webp", 48, 36, lossless=True)
    make_photo(tmp_path / "lossy.webp", 48, 36, quality=80)
    assert _webp_image_chunk(tmp_path / "lossless.webp") == b"VP8L"
    assert _webp_image_chunk(tmp_path / "lossy.webp") == b"VP8 "
    out = tmp_path / "out"
    webp = colorize_file(tiny_model, tmp_path / "lossless.webp", out / "lossless.webp")
    assert _webp_image_chunk(webp) == b"VP8L"
    # Lossless: the file holds exactly the colours written to a PNG from the same photo.
    assert np.array_equal(_pixels(webp), _pixels(colorize_file(tiny_model, tmp_path / "lossless.webp", out / "a.png")))
    # Lossy stays lossy, at the quality used before (Pillow's default, 80): the same pixels as those colours
    # encoded so.
    lossy = colorize_file(tiny_model, tmp_path / "lossy.webp", out / "lossy.webp")
    assert _webp_image_chunk(lossy) == b"VP8 "
    buf = io.BytesIO()
    Image.open(colorize_file(tiny_model, tmp_path / "lossy.webp", out / "b.png")).save(buf, "WEBP", quality=80)
    assert np.array_equal(_pixels(lossy), _pixels(buf))


def test_webp_with_metadata_and_alpha_is_still_recognised(tmp_path, make_photo):
    """An extended WebP (VP8X header, ICC and EXIF chunks, alpha) holds its image chunk further in."""
    from polychrome.io import webp_is_lossless

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010E] = "x" * 300
    rgba = Image.new("RGBA", (20, 10), (10, 200, 30, 128))
    for lossless in (True, False):
        buf = io.BytesIO()
        rgba.save(buf, "WEBP", lossless=lossless, icc_profile=icc, exif=exif.tobytes())
        assert buf.getvalue()[12:16] == b"VP8X"
        buf.seek(0)
        assert webp_is_lossless(buf) is lossless
    for path, lossless in ((tmp_path / "a.webp", True), (tmp_path / "b.webp", False)):
        make_photo(path, 30, 20, lossless=lossless)
        with open(path, "rb") as f:
            assert webp_is_lossless(f) is lossless
    assert not webp_is_lossless(io.BytesIO(b"RIFF\0\0\0\0WEBP"))
    assert not webp_is_lossless(io.BytesIO(b"\x89PNG\r\n\x1a\n"))
