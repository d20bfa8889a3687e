"""A black-and-white print scanned in 48-bit colour (a 16-bit RGB or RGBA PNG or TIFF) is read at 16 bits
(pypng, tifffile: Pillow would keep 8 bits of each sample), its L taken at that precision, and written as
16-bit RGB where the format holds it, with its alpha and metadata, as a 16-bit grey scan is."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import png
import pytest
import tifffile
from _helpers import assert_archive_metadata, colorizer_of
from PIL import Image, ImageCms

from polychrome.io import ArchiveMetadata, ImageError, ImageWarning, PhotoPixels, open_image, read_image, to_uint8
from polychrome.io import deep
from polychrome.pipeline.batch import colorize_file

W, H = 64, 40
AB = (6.0, 12.0)  # a modest colour: every pixel of the ramp stays inside the sRGB gamut
DATE = "1931:06:01 12:00:00"


def _ramp_rgb16(alpha: bool = False) -> np.ndarray:
    """A sepia-toned 16-bit ramp from 10% to 90% (R > G > B, so L depends on all three), almost none of its
    values on the 8-bit grid (multiples of 257); with ``alpha`` a 16-bit alpha ramp as a fourth channel."""
    base = np.linspace(0.1 * 65535, 0.9 * 65535, W * H).reshape(H, W)
    planes = [base, base * 0.93 + 311, base * 0.82 + 577]
    if alpha:
        planes.append(np.linspace(65535, 1000, W * H).reshape(H, W)[::-1])
    return np.stack(planes, axis=-1).round().astype(np.uint16)


def _write16(path, a: np.ndarray, **tiff_kwargs) -> None:
    """A uint16 (H, W, 3|4) array as a 16-bit PNG (pypng) or TIFF (tifffile), as a scanner would write it."""
    h, w, c = a.shape
    if str(path).endswith(".png"):
        png.from_array(a.reshape(h, w * c), "RGBA;16" if c == 4 else "RGB;16").save(str(path))
    else:
        extra = {"extrasamples": ("unassalpha",)} if c == 4 else {}
        tifffile.imwrite(path, a, photometric="rgb", **extra, **tiff_kwargs)
    with Image.open(path) as im:  # what Pillow makes of it: an 8-bit image
        assert im.mode in ("RGB", "RGBA")


def _read16(path) -> np.ndarray:
    """A 16-bit file's pixels as uint16 (H, W, C), as pypng or tifffile read them."""
    if str(path).endswith(".png"):
        w, h, rows, info = png.Reader(filename=str(path)).read()
        assert info["bitdepth"] == 16, info
        return np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, info["planes"])
    return tifffile.imread(path)


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb", "rgba"])
@pytest.mark.parametrize("ext", ["png", "tif"])
def test_a_16bit_colour_scan_gives_a_16bit_output_whose_l_is_the_scans(tmp_path, constant_ab, lab, ext, alpha):
    src = tmp_path / f"scan.{ext}"
    scan = _ramp_rgb16(alpha)
    _write16(src, scan)
    dst = colorize_file(colorizer_of(constant_ab(*AB)), src, tmp_path / "out" / f"scan.{ext}")
    out = _read16(dst)
    assert out.dtype == np.uint16 and out.shape == (H, W, 4 if alpha else 3)
    assert np.count_nonzero(out[..., :3] % 257) > out[..., :3].size // 2  # not 8-bit values scaled up
    rgb = out[..., :3].astype(np.float32) / 65535.0
    L_in = lab(scan[..., :3].astype(np.float32) / 65535.0)[..., 0]
    err16 = np.abs(lab(rgb)[..., 0] - L_in).max()
    err8 = np.abs(lab((scan[..., :3] >> 8).astype(np.uint8))[..., 0] - L_in).max()  # the scan read at 8 bits
    assert err16 < 0.02 < 0.1 < err8, (err16, err8)
    assert np.abs(lab(rgb)[..., 1:].reshape(-1, 2).mean(0) - AB).max() < 0.2  # the model's colour, not sepia
    if alpha:
        assert np.array_equal(out[..., 3], scan[..., 3])  # the alpha, all 16 bits of it


def test_an_8bit_output_of_a_16bit_colour_scan_and_open_image_still_give_8_bits(tmp_path, constant_ab, lab):
    src = tmp_path / "scan.png"
    scan = _ramp_rgb16(alpha=True)
    _write16(src, scan)
    with Image.open(colorize_file(colorizer_of(constant_ab(*AB)), src, tmp_path / "o.webp")) as im:
        assert im.mode == "RGBA" and im.size == (W, H)
        assert np.abs(np.asarray(im)[..., 3].astype(int) - to_uint8(scan[..., 3] / 65535.0)).max() == 0
    img = open_image(src)  # for evaluation and training: the photo's own colours, by Pillow
    assert isinstance(img, Image.Image) and img.mode == "RGBA" and img.size == (W, H)
    assert np.abs(np.asarray(img)[..., :3].astype(int) - (scan[..., :3] >> 8)).max() <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_16bit_colour_scan_stands_upright_as_pillow_turns_it(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    scan = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = orientation
    with open(tmp_path / "scan.png", "wb") as f:
        deep.write_png16(scan, f, {"exif": exif.tobytes()})
    pixels, _ = read_image(tmp_path / "scan.png")
    eight = np.asarray(open_image(tmp_path / "scan.png"))  # Pillow, 8 bits, stood upright by exif_transpose
    assert isinstance(pixels, PhotoPixels) and pixels.size == eight.shape[1::-1]
    want = deep.grey16_of_rgb16(eight.astype(np.uint16) * 257)
    assert np.abs(pixels.grey.astype(int) - want.astype(int)).max() < 1000  # the same pixels, within 8 bits


def test_the_grey_of_a_16bit_colour_pixel_has_its_l(lab):
    """The one number kept of a colour pixel, its 16-bit grey, has the pixel's L (kornia's) within 0.002."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65536, (200, 300, 3), dtype=np.uint16)
    rgb[0, :4] = [(0, 0, 0), (65535, 65535, 65535), (65535, 0, 0), (1, 2, 3)]
    grey = deep.grey16_of_rgb16(rgb).astype(np.float32) / 65535.0
    L_grey = lab(np.repeat(grey[..., None], 3, axis=2))[..., 0]
    assert np.abs(L_grey - lab(rgb.astype(np.float32) / 65535.0)[..., 0]).max() < 0.002


@pytest.mark.parametrize("layout", [
    {"compression": "adobe_deflate", "predictor": True, "rowsperstrip": 7},
    {"tile": (16, 16)},
    {"planarconfig": "separate"},
], ids=["deflate-strips", "tiles", "planar"])  # fmt: skip
def test_16bit_colour_tiffs_of_every_layout_tifffile_decodes(tmp_path, layout):
    scan = _ramp_rgb16()
    a = np.moveaxis(scan, -1, 0) if layout.get("planarconfig") == "separate" else scan
    tifffile.imwrite(tmp_path / "scan.tif", a, photometric="rgb", **layout)
    pixels, _ = read_image(tmp_path / "scan.tif")
    assert isinstance(pixels, PhotoPixels) and pixels.deep and pixels.size == (W, H)
    assert np.array_equal(pixels.grey, deep.grey16_of_rgb16(scan))  # Pillow reads the planar one wrongly


def _packbits_tiff(path, a: np.ndarray) -> None:
    """A 16-bit RGB TIFF compressed with PackBits, written here (tifffile encodes no PackBits without
    imagecodecs): one strip, each row as literal runs of at most 128 bytes."""
    h, w, c = a.shape
    data = bytearray()
    for row in a.astype("<u2"):
        raw = row.tobytes()
        for i in range(0, len(raw), 128):
            data += bytes([len(raw[i : i + 128]) - 1]) + raw[i : i + 128]
    bits, strip = 8, 8 + 2 * c
    ifd = strip + len(data) + len(data) % 2
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, c, bits), (259, 3, 1, 32773), (262, 3, 1, 2),
               (273, 4, 1, strip), (277, 3, 1, c), (278, 4, 1, h), (279, 4, 1, len(data)), (284, 3, 1, 1)]  # fmt: skip
    with open(path, "wb") as f:
        f.write(b"II*\0" + struct.pack("<I", ifd) + struct.pack(f"<{c}H", *[16] * c) + data + b"\0" * (len(data) % 2))
        f.write(struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4)


def test_a_compression_tifffile_cannot_decode_is_read_at_8_bits_with_one_warning(tmp_path, tiny_model):
    src = tmp_path / "scan.tif"
    scan = _ramp_rgb16()
    _packbits_tiff(src, scan)
    with Image.open(src) as im:  # a real PackBits file, which Pillow reads (at 8 bits)
        assert im.info["compression"] == "packbits" and np.array_equal(np.asarray(im), scan >> 8)
    with pytest.warns(ImageWarning) as caught:
        dst = colorize_file(tiny_model, src, tmp_path / "out.tif")
    msg = str(caught[0].message)
    assert len(caught) == 1 and msg.startswith(f"{src}: its 16-bit colour is read at 8 bits"), msg
    assert "PACKBITS" in msg and "imagecodecs" in msg and "\n" not in msg
    with Image.open(dst) as im:
        assert im.mode == "RGB" and im.size == (W, H)


def test_a_broken_16bit_colour_png_is_one_line_naming_it(tmp_path):
    src = tmp_path / "scan.png"
    _write16(src, _ramp_rgb16())
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ImageError) as e:
        warnings.simplefilter("always")
        read_image(src)
    assert str(e.value).startswith(f"{src}: cannot read image") and "\n" not in str(e.value)
    assert not caught  # the one line is the error


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_a_16bit_colour_scans_exif_icc_and_dpi_survive(tmp_path, tiny_model, ext):
    exif = Image.Exif()
    exif[0x010E], exif[0x010F], exif[0x0132], exif[0x8298] = "Grandma at the lake", "Epson", DATE, "(c) Miller"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    meta = ArchiveMetadata(exif=exif.tobytes(), icc_profile=icc, dpi=(1200.0, 1200.0))
    src = tmp_path / f"scan.{ext}"
    with open(src, "wb") as f:
        if ext == "png":
            deep.write_png16(_ramp_rgb16(), f, meta.save_kwargs("PNG"))
        else:
            deep.write_tiff16([_ramp_rgb16()], f, meta)
    dst = colorize_file(tiny_model, src, tmp_path / "out" / f"scan.{ext}")
    out = _read16(dst)
    assert out.dtype == np.uint16 and out.shape == (H, W, 3)
    assert_archive_metadata(dst, "Epson", icc, 1200, tiny_model.name)


def test_a_16bit_colour_upload_downloads_as_a_16bit_png(tmp_path, constant_ab):
    from fastapi.testclient import TestClient

    from polychrome.web import Limits, create_app

    buf = io.BytesIO()
    scan = _ramp_rgb16(alpha=True)
    png.from_array(scan.reshape(H, W * 4), "RGBA;16").write(buf)
    c = colorizer_of(constant_ab(*AB))
    with TestClient(create_app(c, auto_spec="", limits=Limits(), size=64, preview_size=64)) as client:
        r = client.post("/api/photos", files={"file": ("scan.png", buf.getvalue(), "application/octet-stream")})
        assert r.status_code == 201, r.text
        r = client.post(f"/api/photos/{r.json()['id']}/full?format=png", json=[])
        assert r.status_code == 200, r.text
    (tmp_path / "scan.png").write_bytes(buf.getvalue())
    colorize_file(c, tmp_path / "scan.png", tmp_path / "cli.png", size=64)
    (tmp_path / "got.png").write_bytes(r.content)
    got = _read16(tmp_path / "got.png")
    assert got.shape == (H, W, 4) and np.array_equal(got, _read16(tmp_path / "cli.png"))
    assert np.array_equal(got[..., 3], scan[..., 3])


# --------------------------------------------------------------------------- memory
#: Each photo's rise of the peak RSS over the RSS before it (the peak reset through /proc/self/clear_refs,
#: so that loading the model, which peaks higher than a 5 MP photo, does not hide it).
PEAKS = """
import json, sys
from pathlib import Path
from polychrome.colorizer import Colorizer
from polychrome.pipeline.batch import colorize_file
def rss(field):
    return [int(ln.split()[1]) * 1024 for ln in Path("/proc/self/status").read_text().splitlines()
            if ln.startswith(field + ":")][0]
c = Colorizer.from_pretrained(sys.argv[1])
rises = []
for src in sys.argv[2:]:
    before = rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    colorize_file(c, src, src + ".out" + src[-4:])  # scan.png -> scan.png.out.png
    rises.append(rss("VmHWM") - before)
print(json.dumps(rises))
"""


def _smooth_rgb16(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 0.5 + 0.3 * np.sin(x / 211.0) * np.cos(y / 157.0)
    return (np.stack([g, g * 0.93, g * 0.82], axis=-1) * 65535 + 0.5).astype(np.uint16)


def photo_rise(model_dir, warm_up, photo) -> int:
    """The rise of the peak RSS while ``photo`` is colourised, in a fresh process that has done ``warm_up``
    (a tiny photo of the same kind: first-use costs) before, with glibc's mmap threshold fixed so that a
    large array freed goes back to the system instead of staying resident for the next one to reuse."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import polychrome

    src = str(Path(polychrome.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536",
           "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", PEAKS, str(model_dir), str(warm_up), str(photo)], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])[-1]


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_a_16bit_colour_scan_costs_its_16bit_grey_and_result_not_its_samples(tiny_model_dir, tmp_path, ext):
    """Memory grows by the 16-bit grey of the photo (2 bytes a pixel) and the 16-bit RGB result (6), not by
    its 16-bit samples (6 more: measured 14-15 bytes a pixel with them kept, 7-10 without)."""
    kw = {} if ext == "png" else {"compression": "adobe_deflate", "predictor": True}
    sizes = {"tiny": (64, 40), "small": (1000, 1000), "large": (2600, 1925)}  # 1 MP and 5 MP
    for name, (w, h) in sizes.items():
        _write16(tmp_path / f"{name}.{ext}", _smooth_rgb16(w, h), **kw)
    small, large = (photo_rise(tiny_model_dir, tmp_path / f"tiny.{ext}", tmp_path / f"{name}.{ext}")
                    for name in ("small", "large"))  # fmt: skip
    assert _read16(tmp_path / f"large.{ext}.out.{ext}").shape == (1925, 2600, 3)
    per_pixel = (large - small) / (2600 * 1925 - 1000 * 1000)
    assert per_pixel < 12, per_pixel
