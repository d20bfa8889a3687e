"""16-bit RGB files: what Pillow cannot write (its RGB images hold 8 bits a channel).

A photo of more than 8 bits a sample (a 16-bit grey scan) is colourised at 16-bit precision and written
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
        from polychrome.io.images import ImageWarning

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

