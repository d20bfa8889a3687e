"""16-bit RGB files: what Pillow can neither read nor write (its RGB images hold 8 bits a channel).

Reading: a 16-bit colour (RGB, RGBA) or grey-with-alpha PNG or TIFF -- a black-and-white print scanned in
48-bit colour -- is read by pypng or tifffile (:func:`read_16bit`), not by Pillow, which would keep 8 bits
of each sample. Its lightness is taken at 16-bit precision and kept, a band of rows at a time, as the
16-bit grey of the same L (2 bytes a pixel; an alpha channel 3 more), so it goes through the colouriser as
a 16-bit grey scan does. A TIFF compressed in a way tifffile cannot decode by itself (LZW, PackBits, JPEG:
they need the 26 MB imagecodecs package) is read at 8 bits by Pillow instead, with one
:class:`~polychrome.io.images.ImageWarning` naming the file.

Writing: a photo of more than 8 bits a sample (a 16-bit scan) is colourised at 16-bit precision and written
as 16-bit RGB where the format holds it: PNG through pypng, TIFF through tifffile. What the archive keeps
(:class:`~polychrome.io.images.ArchiveMetadata`) goes with it:

- PNG: the whole EXIF block (eXIf), the ICC profile (iCCP), the DPI (pHYs) and the Software text, as Pillow
  writes them into an 8-bit PNG.
- TIFF: the ICC profile, the DPI, the first IFD's descriptive tags (description, camera make and model,
  date, artist, copyright, Windows' XP tags) and Software; a compressed input's output is compressed with
  Deflate (tifffile encodes Deflate itself; LZW and PackBits need the 26 MB imagecodecs package, not
  installed). The EXIF and GPS sub-IFDs (exposure, DateTimeOriginal, position) cannot be written by
  tifffile: they are left out with one :class:`~polychrome.io.images.ImageWarning` naming the file when
  the photo had any beyond the layout tags a scanner writes there.
"""

from __future__ import annotations

import warnings
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image

from polychrome.io.images import ImageError, ImageWarning, PhotoPixels, to_uint8, to_uint16

#: Formats that take a 16-bit RGB result (Pillow's format names).
DEEP_FORMATS = ("PNG", "TIFF")

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
#: First-IFD tags of type ASCII kept in a 16-bit TIFF (Software is written from the provenance note) and the
#: Windows XP tags (UCS-2 in BYTE arrays).
_TIFF_ASCII_TAGS = (0x010E, 0x010F, 0x0110, 0x0132, 0x013B, 0x013C, 0x8298)
_TIFF_XP_TAGS = (0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F)
#: Exif sub-IFD tags about the file's layout, not the photo (a scanner writes them): not worth a warning.
_LAYOUT_EXIF_TAGS = {0x9000, 0xA000, 0xA001, 0xA002, 0xA003}
#: Lossless TIFF compressions of an input (Pillow's names) whose output is Deflate-compressed.
_COMPRESSED = ("tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits")


def _png_writer():
    import png  # pypng

    class Writer(png.Writer):
        """pypng's writer with chunks of our own (iCCP, eXIf, tEXt) right after its header chunks, before the
        image data, where PNG readers look for them."""

        def __init__(self, *args, chunks=(), **kwargs):
            super().__init__(*args, **kwargs)
            self.extra_chunks = list(chunks)

        def write_preamble(self, outfile):
            super().write_preamble(outfile)
            for tag, data in self.extra_chunks:
                png.write_chunk(outfile, tag, data)

    return Writer


def png16_chunks(kw: dict) -> tuple[list[tuple[bytes, bytes]], tuple[int, int] | None]:
    """Pillow's PNG save arguments (``exif``, ``icc_profile``, ``dpi``, ``pnginfo``, from
    :meth:`ArchiveMetadata.save_kwargs`) as PNG chunks, and the DPI as pixels per metre."""
    chunks = []
    icc = kw.get("icc_profile")
    if icc:
        chunks.append((b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))
    exif = kw.get("exif")
    if exif:
        exif = bytes(exif)
        chunks.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    info = kw.get("pnginfo")
    if info is not None:
        chunks += [(cid, data) for cid, data, *_ in info.chunks]
    dpi = kw.get("dpi")
    ppm = (int(dpi[0] / 0.0254 + 0.5), int(dpi[1] / 0.0254 + 0.5)) if dpi else None
    return chunks, ppm


def write_png16(rgb: np.ndarray, fp: BinaryIO, save_kwargs: dict) -> None:
    """A uint16 (H, W, 3|4) array as a 16-bit RGB(A) PNG into the binary file ``fp``, with the metadata of
    ``save_kwargs`` (Pillow's PNG arguments; ``compress_level`` 0-9 as Pillow's, default 6)."""
    h, w, c = rgb.shape
    chunks, ppm = png16_chunks(save_kwargs)
    phys = {"x_pixels_per_unit": ppm[0], "y_pixels_per_unit": ppm[1], "unit_is_meter": True} if ppm else {}
    writer = _png_writer()(
        w, h, greyscale=False, alpha=c == 4, bitdepth=16, compression=save_kwargs.get("compress_level", 6),
        chunks=chunks, **phys,
    )  # fmt: skip
    writer.write_packed(fp, (rgb[r].astype(">u2").tobytes() for r in range(h)))


def _tiff_tags(exif_bytes: bytes | None, name: str) -> list[tuple]:
    """The first IFD's descriptive tags of an EXIF block as tifffile ``extratags``; warns (naming ``name``)
    when its EXIF or GPS sub-IFD held more than layout tags, which tifffile cannot write."""
    if not exif_bytes:
        return []
    exif = Image.Exif()
    exif.load(exif_bytes)
    tags: list[tuple] = []
    for tag in _TIFF_ASCII_TAGS:
        value = exif.get(tag)
        if isinstance(value, str) and value:
            tags.append((tag, 2, 0, value.encode("utf-8"), False))
    for tag in _TIFF_XP_TAGS:
        value = exif.get(tag)
        if isinstance(value, str):
            value = value.encode("utf-16-le") + b"\0\0"
        if isinstance(value, (bytes, tuple)) and value:
            value = bytes(value)
            tags.append((tag, 1, len(value), value, False))
    lost = [t for t in exif.get_ifd(_EXIF_IFD) if t not in _LAYOUT_EXIF_TAGS] + list(exif.get_ifd(_GPS_IFD))
    if lost:
        warnings.warn(ImageWarning(
            f"{name}: {len(lost)} EXIF detail(s) (exposure, original date, GPS) not written into the 16-bit TIFF "
            "(tifffile cannot write EXIF sub-IFDs); its date, camera, description and copyright are kept, "
            "and a .png output keeps all of it"), stacklevel=4)  # fmt: skip
    return tags


def write_tiff16(pages: list[np.ndarray], fp: BinaryIO, metadata, name: str = "image") -> None:
    """uint16 or uint8 (H, W, 3|4) arrays as the pages of an RGB(A) TIFF in the binary file ``fp``, each with
    ``metadata``'s (:class:`ArchiveMetadata`) ICC profile, DPI, descriptive tags and provenance note (as
    Pillow puts them on every page of an 8-bit TIFF)."""
    import tifffile

    kw: dict = {"photometric": "rgb", "metadata": None, "software": False}
    extratags = []
    if metadata is not None:
        if metadata.compression in _COMPRESSED:
            kw.update(compression="adobe_deflate", predictor=True)
        if metadata.icc_profile:
            kw["iccprofile"] = metadata.icc_profile
        if metadata.dpi:
            kw.update(resolution=metadata.dpi, resolutionunit="INCH")
        extratags = _tiff_tags(metadata.exif, name)
        if metadata.software:
            extratags.append((0x0131, 2, 0, metadata.software.encode("utf-8"), False))
    with tifffile.TiffWriter(fp) as tif:
        for page in pages:
            extra = {"extrasamples": ("unassalpha",)} if page.shape[2] == 4 else {}
            tif.write(page, extratags=extratags, **kw, **extra)



# ------------------------------------------------------------------------ reading 16-bit colour

#: TIFF compressions tifffile decodes without the imagecodecs package (TIFF codes): none and Deflate (Adobe's
#: and the older code). LZW, PackBits and JPEG need imagecodecs.
_TIFF_DECODED = {1: "none", 8: "Deflate", 32946: "Deflate"}
#: The Y row of kornia's RGB->XYZ matrix (D65), as :func:`polychrome.color.lab.linear_to_l` weighs linear RGB.
_Y_ROW = np.array((0.212671, 0.715160, 0.072169), np.float32)
#: Orientation (EXIF 2-8) -> the transposition of a (H, W) array that stands it upright, as Pillow's
#: ``ImageOps.exif_transpose`` does an image.
_UPRIGHT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.T,
    6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).T, 8: lambda a: np.rot90(a, 1),
}  # fmt: skip


def holds_16bit_samples(im: Image.Image) -> bool:
    """True when Pillow opened (not yet loaded) a PNG or TIFF of 16-bit colour (RGB, RGBA) or 16-bit grey
    with alpha as an 8-bit image -- it has no such 16-bit modes -- so :func:`read_16bit` should read it."""
    if im.format not in DEEP_FORMATS or im.mode not in ("RGB", "RGBA", "LA") or not im.tile:
        return False
    if im.format == "TIFF":  # from the tags: Pillow reads a 16-bit TIFF of one plane a sample as 8-bit planes
        bits, sample_format = im.tag_v2.get(258, ()), im.tag_v2.get(339, 1)
        formats = sample_format if isinstance(sample_format, tuple) else (sample_format,)
        return bool(bits) and set(np.atleast_1d(bits)) == {16} and set(formats) == {1}
    args = im.tile[0][3]
    rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
    return isinstance(rawmode, str) and ";16" in rawmode


def grey16_of_rgb16(rgb: np.ndarray) -> np.ndarray:
    """16-bit sRGB (..., 3) -> the 16-bit grey (...) of the same lightness: the luminance Y of its linear RGB
    (kornia's sRGB curve and Y row, as :mod:`polychrome.color.lab` computes L), put back on the sRGB curve,
    where a grey R = G = B of that value has that Y (the Y row sums to 1), so that L."""
    x = rgb.astype(np.float32) / np.float32(65535.0)
    lin = np.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    y = lin @ _Y_ROW
    return to_uint16(np.where(y > 0.0031308, 1.055 * np.maximum(y, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * y))


class _Deep:
    """A 16-bit photo's grey (and alpha) filled a block of rows (or a tile) at a time."""

    def __init__(self, width: int, height: int, channels: int):
        self.grey = np.empty((height, width), np.uint16)
        self.alpha = np.empty((height, width), np.uint16) if channels in (2, 4) else None

    def put(self, r0: int, x0: int, block: np.ndarray) -> None:
        """``block`` (n, w, channels) uint16 at row ``r0``, column ``x0``."""
        n, w, c = block.shape
        self.grey[r0 : r0 + n, x0 : x0 + w] = block[..., 0] if c < 3 else grey16_of_rgb16(block[..., :3])
        if self.alpha is not None:
            self.alpha[r0 : r0 + n, x0 : x0 + w] = block[..., c - 1]


def _rows_per_block(width: int) -> int:
    return max(1, 2**20 // max(width, 1))  # about a megapixel: tens of MB of float work, whatever the width


def _png16(fp: BinaryIO, width: int, height: int) -> tuple[_Deep | None, str]:
    import png  # pypng

    w, h, rows, info = png.Reader(file=fp).read()
    planes = info["planes"]
    if info["bitdepth"] != 16 or planes not in (2, 3, 4) or (w, h) != (width, height):
        return None, f"pypng reads it as {w}x{h}, {planes} samples of {info['bitdepth']} bits"
    deep, block, r0 = _Deep(w, h, planes), [], 0
    n = _rows_per_block(w)
    for row in rows:
        block.append(np.frombuffer(row, np.uint16))
        if len(block) == n:
            deep.put(r0, 0, np.stack(block).reshape(n, w, planes))
            r0, block = r0 + n, []
    if block:
        deep.put(r0, 0, np.stack(block).reshape(len(block), w, planes))
    return deep, ""


def _tiff16(fp: BinaryIO, width: int, height: int) -> tuple[_Deep | None, str]:
    import tifffile

    with tifffile.TiffFile(fp) as tif:
        page = tif.pages.first
        c = int(page.samplesperpixel)
        if int(page.compression) not in _TIFF_DECODED:
            name = getattr(page.compression, "name", str(page.compression))
            return None, f"tifffile cannot decode its {name} compression without the imagecodecs package"
        if page.dtype != np.uint16 or c not in (2, 3, 4) or (page.imagewidth, page.imagelength) != (width, height):
            return None, f"tifffile reads it as {page.imagewidth}x{page.imagelength}, {c} samples of {page.dtype}"
        deep = _Deep(width, height, c)
        if int(page.planarconfig) == 1:  # samples of a pixel together: strip by strip (or tile by tile)
            for segment, index, _ in page.segments():
                y, x = index[2], index[3]
                deep.put(y, x, segment[0, : height - y, : width - x])
        else:  # one plane a sample: decoded whole (6-8 bytes a pixel for a moment), then in blocks
            a = page.asarray()
            n = _rows_per_block(width)
            for r0 in range(0, height, n):
                deep.put(r0, 0, np.moveaxis(a[:, r0 : r0 + n], 0, -1))
            del a
    return deep, ""


def read_16bit(source, fmt: str, size: tuple[int, int], orientation: int, name: str) -> PhotoPixels | None:
    """A 16-bit colour or grey+alpha PNG or TIFF (:func:`holds_16bit_samples`; ``source`` a path or a binary
    file, ``fmt``/``size``/``orientation`` as Pillow read its header) -> its :class:`PhotoPixels`, stood
    upright: kind ``"F"`` with the 16-bit grey of the photo's lightness (:func:`grey16_of_rgb16`), its 16-bit
    alpha (``alpha16``, and ``alpha`` at 8 bits), ``deep``. Decoded strip by strip (a PNG row by row), so the
    16-bit samples are never all held (a TIFF of one plane a sample is). None, with one
    :class:`ImageWarning` naming ``name``, for a file the 16-bit reader does not take (the caller reads it at
    8 bits); raises :class:`ImageError` for a broken one."""
    width, height = size
    try:
        if hasattr(source, "read"):
            source.seek(0)
            deep, why = (_png16 if fmt == "PNG" else _tiff16)(source, width, height)
        else:
            with open(source, "rb") as f:
                deep, why = (_png16 if fmt == "PNG" else _tiff16)(f, width, height)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 -- pypng and tifffile have errors of their own; all mean "broken"
        raise ImageError(f"{name}: cannot read image ({type(e).__name__}: {e})".replace("\n", " ")) from None
    if deep is None:
        warnings.warn(ImageWarning(f"{name}: its 16-bit colour is read at 8 bits ({why})"), stacklevel=3)
        return None
    turn = _UPRIGHT.get(orientation, lambda a: a)
    grey = np.ascontiguousarray(turn(deep.grey))
    alpha16 = None if deep.alpha is None else np.ascontiguousarray(turn(deep.alpha))
    del deep
    alpha = None
    if alpha16 is not None:
        alpha8 = np.empty(alpha16.shape, np.uint8)
        n = _rows_per_block(alpha16.shape[1])
        for r0 in range(0, alpha16.shape[0], n):
            alpha8[r0 : r0 + n] = to_uint8(alpha16[r0 : r0 + n] / np.float32(65535.0))
        alpha = Image.fromarray(alpha8, "L")
    return PhotoPixels("F", grey.shape[1], grey.shape[0], grey=grey, alpha=alpha, alpha16=alpha16, deep=True)
