"""Photo files: reading (EXIF orientation applied, float RGB and alpha), writing atomically, the 8-bit quantiser.

Errors a person can cause (missing file, not an image, truncated file) are raised as
:class:`ImageError` with a one-line message naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from polychrome.io.parts import locked_part

#: File extensions polychrome reads (lower case, with the dot).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

#: The only Pillow formats a photo is opened as, whatever its name says. Pillow knows about 40 formats;
#: some hand the file to outside programs (EPS/PostScript to Ghostscript) or are rarely-used parsers, so a
#: file that is not one of these is refused before any other decoder sees it. (A camera JPEG with extra
#: preview images opens as JPEG and comes back as Pillow's MPO.)
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")
_FORMAT_NAMES = "JPEG, PNG, WebP, BMP or TIFF"
#: The extension a photo of each of :data:`PHOTO_FORMATS` is written with when its source has no name to
#: keep (a photo piped in on standard input).
FORMAT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}

#: Photo formats polychrome does not read, by extension: a folder's files of these are named, one line
#: each, never passed over in silence (a person expects them colourised).
UNREAD_PHOTO_FORMATS = {
    ".gif": "GIF", ".avif": "AVIF", ".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".jp2": "JPEG 2000",
    ".j2k": "JPEG 2000", ".psd": "Photoshop", ".xcf": "GIMP", ".svg": "SVG", ".ico": "icon", ".tga": "TGA",
    ".pcx": "PCX", ".ppm": "PPM", ".pgm": "PGM", ".pbm": "PBM", ".pnm": "PNM", ".exr": "OpenEXR", ".hdr": "HDR",
    ".dng": "camera raw", ".cr2": "camera raw", ".cr3": "camera raw", ".nef": "camera raw", ".arw": "camera raw",
    ".orf": "camera raw", ".rw2": "camera raw", ".raf": "camera raw", ".pef": "camera raw", ".srw": "camera raw",
}  # fmt: skip

#: Bytes of memory a photo costs the colouriser per pixel at most, beyond the program and model: the decoded
#: photo (RGB as Pillow holds it: 4) and the 8-bit result (4) -- every full-resolution step in between works
#: a band of rows at a time (polychrome.pipeline.core); a --compare picture adds 4. (A 16-bit scan written
#: as a 16-bit PNG or TIFF: its 16-bit grey twice, as Pillow and as an array (4), and the result (6); a
#: 16-bit colour scan, read by pypng or tifffile, the 16-bit grey of its L once (2) and the result (6).)
BYTES_PER_PIXEL = 8
#: The largest photo read, in pixels: PIL's decompression-bomb guard, at what the bounded colourisation path
#: does in about 1.2 GB (a 16-bit scan needs a little more).
MAX_PIXELS = 150_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(Exception):
    """A photo could not be read or written; the message names the file and the problem."""


class ImageWarning(UserWarning):
    """A photo was read, but something in it had to be mended (the message names the file and what)."""


def finite_unit(a: np.ndarray, name: str) -> np.ndarray:
    """Float pixel values onto [0, 1]: NaN -> 0, +Inf -> 1, -Inf -> 0, values outside [0, 1] clipped, with
    one :class:`ImageWarning` naming ``name`` when anything was changed. One bad pixel must not turn the
    whole photo black (NaN spreads through every later step) or rescale it."""
    finite = np.isfinite(a)
    n_bad = int(a.size - np.count_nonzero(finite))
    n_out = int(np.count_nonzero(finite & ((a < 0) | (a > 1))))
    if n_bad or n_out:
        what = [f"{n_bad} NaN/Inf value(s) set to 0 or 1"] if n_bad else []
        what += [f"{n_out} value(s) outside [0, 1] clipped"] if n_out else []
        warnings.warn(ImageWarning(f"{name}: float pixels mended: {', '.join(what)}"), stacklevel=3)
        a = np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return a


def is_image_path(path: str | os.PathLike) -> bool:
    """True when the file name has one of :data:`IMAGE_EXTENSIONS`."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` resolves to somewhere under ``folder`` (symlinks followed)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def unread_photo_format(path: str | os.PathLike) -> str | None:
    """The name of the photo format ``path``'s extension says, when it is one polychrome does not read."""
    return UNREAD_PHOTO_FORMATS.get(Path(path).suffix.lower())


@dataclass
class FolderScan:
    """Every file under a folder, accounted for by :func:`scan_folder`. Each list is sorted."""

    photos: list[Path] = field(default_factory=list)  # what polychrome reads (by extension)
    unread: list[Path] = field(default_factory=list)  # photos in a format it does not read
    broken_links: list[Path] = field(default_factory=list)  # links to nothing
    others: list[Path] = field(default_factory=list)  # anything else: not photos, or hidden files
    unlisted: list[str] = field(default_factory=list)  # one line per sub-folder that could not be listed


def scan_folder(root: str | os.PathLike, exclude: str | os.PathLike | None = None) -> FolderScan:
    """Every file under ``root``, sorted into :class:`FolderScan`'s lists, the folder ``exclude`` (an output
    folder inside ``root``) left out. Linked sub-folders are followed, each real folder searched once (a link
    back up the tree cannot loop); paths keep the link's name, so outputs mirror the tree as a person sees it.
    Hidden files (``.name``) are "others"."""
    root = Path(root)
    scan = FolderScan()
    seen: set[str] = set()

    def unlisted(e: OSError) -> None:
        scan.unlisted.append(f"{e.filename}: cannot list this folder ({e.strerror or e}); its photos were not done")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlisted, followlinks=True):
        seen.add(os.path.realpath(dirpath))
        keep = []
        for d in sorted(dirnames):
            sub = os.path.join(dirpath, d)
            if os.path.realpath(sub) in seen or (exclude is not None and is_inside(sub, exclude)):
                continue
            seen.add(os.path.realpath(sub))
            keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            p = Path(dirpath, name)
            if not p.exists():
                scan.broken_links.append(p)
            elif exclude is not None and is_inside(p, exclude):
                continue
            elif name.startswith(".") or not p.is_file():
                scan.others.append(p)
            elif is_image_path(p):
                scan.photos.append(p)
            elif unread_photo_format(p):
                scan.unread.append(p)
            else:
                scan.others.append(p)
    for part in (scan.photos, scan.unread, scan.broken_links, scan.others):
        part.sort()
    return scan


def find_images(root: str | os.PathLike) -> list[Path]:
    """Photos under ``root``: a folder (searched recursively, linked sub-folders followed: :func:`scan_folder`),
    one image file, or a ``.txt`` list of paths (one per line, relative to the list's folder; blank lines and
    ``#`` comments ignored). Sorted."""
    root = Path(root)
    if root.is_dir():
        return scan_folder(root).photos
    if root.suffix.lower() == ".txt" and root.is_file():
        lines = [ln.strip() for ln in root.read_text().splitlines()]
        return [root.parent / ln for ln in lines if ln and not ln.startswith("#")]
    if root.is_file():
        return [root]
    raise ImageError(f"{root}: no such file or folder")


def is_complete_image(path: str | os.PathLike) -> bool:
    """True when ``path`` is a whole photo file, checked cheaply without decoding its pixels: its header
    opens as one of :data:`PHOTO_FORMATS`, Pillow's ``verify()`` passes (PNG: every chunk and its CRC up to
    the end) and a JPEG ends with its end-of-image marker. A zero-byte, foreign or cut-off file is not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a decompression-bomb warning is not "unfinished"
            with Image.open(path, formats=PHOTO_FORMATS) as im:
                fmt = im.format
                im.verify()
        if fmt in ("JPEG", "MPO"):
            with open(path, "rb") as f:
                f.seek(-2, os.SEEK_END)
                return f.read(2) == b"\xff\xd9"
        return True
    except Exception:  # noqa: BLE001 -- any failure to read it back means it is not finished
        return False


def pil_to_rgb_array(img: Image.Image, name: str = "image") -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL mode -> (RGB float32 array (H, W, 3) in [0, 1], alpha float32 (H, W) in [0, 1] or None).

    16-bit and 32-bit greyscale keep their precision; palette, CMYK, LA/RGBA are converted.
    Transparent pixels keep their colour values; the alpha is returned so a writer can put it back.
    A float ("F") image is taken to be on [0, 1]: NaN/Inf and values outside it are mended by
    :func:`finite_unit` (an :class:`ImageWarning` naming ``name``, the file a caller read).
    """
    alpha = None
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        if img.mode.startswith("I;16"):
            peak = 65535.0  # a 16-bit file is on the 16-bit scale even when it is dark (max <= 255)
        elif img.mode == "I":
            peak = 65535.0 if a.max() > 255 else 255.0  # 32-bit ints carry 8- or 16-bit data; guess from the range
        else:  # "F": 0..1 by convention; a stray bright or NaN pixel must not rescale the whole photo
            return np.repeat(finite_unit(a, name)[..., None], 3, axis=2), None
        g = np.clip(a / peak, 0.0, 1.0)
        return np.repeat(g[..., None], 3, axis=2), None
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0, alpha


@dataclass
class PhotoPixels:
    """A decoded photo's pixels as the colouriser reads them: a band of rows at a time, without a
    full-resolution float copy of an 8-bit photo (:func:`photo_pixels` makes one).

    ``kind`` says what :meth:`rows` gives: ``"L"`` uint8 (n, W) grey levels, ``"RGB"`` uint8 (n, W, 3), or
    ``"F"`` float32 (n, W) grey in [0, 1] (a photo read as more than 8 bits: 16-bit, 32-bit or float).
    ``deep``: the photo holds more than 8 bits a sample (16-bit, 32-bit holding more than 8-bit values,
    float), so its colour version is worth 16 bits where the format takes them. A 16-bit colour scan
    (:func:`polychrome.io.deep.read_16bit`) is kind ``"F"`` too: the 16-bit grey of its lightness."""

    kind: str
    width: int
    height: int
    image: Image.Image | None = None  # "L" or "RGB" 8-bit, for kinds "L" and "RGB"
    grey: np.ndarray | None = None  # kind "F": float32 (H, W) in [0, 1], or a 16-bit photo's uint16 (H, W)
    alpha: Image.Image | None = None  # 8-bit "L" alpha channel, or None
    deep: bool = False
    alpha16: np.ndarray | None = None  # a 16-bit photo's uint16 (H, W) alpha (``alpha`` holds it at 8 bits)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as a PIL image's."""
        return self.width, self.height

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Rows ``r0`` to ``r1`` (exclusive) of the photo."""
        if self.grey is not None:
            g = self.grey[r0:r1]
            return g.astype(np.float32) / 65535.0 if g.dtype == np.uint16 else g
        return np.asarray(self.image.crop((0, r0, self.width, r1)))


def photo_pixels(img: Image.Image | PhotoPixels, name: str = "image") -> PhotoPixels:
    """Any PIL mode -> :class:`PhotoPixels`, read as :func:`pil_to_rgb_array` reads it (same scales, same
    alpha, same mending of float pixels), but an 8-bit photo is kept as its 8-bit image: grey stays grey
    ("L", one byte a pixel), anything else becomes "RGB". :class:`PhotoPixels` (what :func:`read_image`
    gives for a 16-bit colour scan) are returned as they are."""
    if isinstance(img, PhotoPixels):
        return img
    w, h = img.size
    if img.mode.startswith("I;16"):  # kept as uint16 (2 bytes a pixel), scaled a band at a time
        return PhotoPixels("F", w, h, grey=np.ascontiguousarray(np.asarray(img), dtype=np.uint16), deep=True)
    if img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float32)
        if img.mode == "I":
            deep = bool(a.max() > 255)
            g = np.clip(a / (65535.0 if deep else 255.0), 0.0, 1.0)
        else:
            deep, g = True, finite_unit(a, name)
        return PhotoPixels("F", w, h, grey=np.ascontiguousarray(g, dtype=np.float32), deep=deep)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA", "PA") else None
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode == "LA":
        img = img.getchannel("L")
    elif img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return PhotoPixels(img.mode, w, h, image=img, alpha=alpha)


# ------------------------------------------------------------------------ what an archive keeps

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
#: The first IFD's descriptive tags kept in an output (a TIFF's first IFD also holds its own layout --
#: strips, sizes, compression -- which must never be copied): ImageDescription, Make, Model, Software,
#: DateTime, Artist, HostComputer, Copyright and Windows' XP title/comment/author/keywords/subject.
#: Orientation is left out on purpose: the written pixels already stand upright.
_KEPT_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x013C, 0x8298, 0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F)
#: Exif sub-IFD tags dropped: MakerNote (vendor data with offsets into the original file) and the
#: interoperability pointer (an offset that would dangle).
_DROPPED_EXIF_TAGS = (0x927C, 0xA005)
#: What each output format can carry (Pillow's save arguments).
_FORMAT_METADATA = {
    "JPEG": ("exif", "icc_profile", "dpi"),
    "PNG": ("exif", "icc_profile", "dpi"),
    "TIFF": ("exif", "icc_profile", "dpi", "compression"),
    "WEBP": ("exif", "icc_profile", "lossless"),
    "BMP": ("dpi",),
}
_JPEG_EXIF_MAX = 65533  # one APP1 segment
#: A TIFF's lossless compressions that also suit an RGB output (CCITT group 3/4 are for 1-bit pictures).
_TIFF_COMPRESSIONS = ("tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits")


@dataclass(frozen=True)
class ArchiveMetadata:
    """What an archive keeps of a photo, to be written into its colour version: EXIF (date, camera,
    description, copyright, GPS; no orientation, maker notes or thumbnail), an RGB ICC profile, the DPI and
    a TIFF's lossless compression, and whether a WebP was lossless."""

    exif: bytes | None = None  # a TIFF-structured EXIF block, as Pillow's ``exif=`` takes it
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    compression: str | None = None  # a TIFF's lossless compression, for a TIFF output (an LZW scan stays LZW)
    software: str | None = None  # the provenance note: EXIF Software (and a PNG's tEXt Software)
    lossless: bool | None = None  # a lossless WebP (its image a VP8L chunk): a WebP output is lossless too

    def save_kwargs(self, fmt: str) -> dict:
        """Pillow ``save`` arguments for the parts ``fmt`` (a Pillow format name) can carry."""
        kw = {k: v for k, v in asdict(self).items() if v is not None and k in _FORMAT_METADATA.get(fmt, ())}
        if self.software and "exif" in _FORMAT_METADATA.get(fmt, ()):
            exif = Image.Exif()
            if self.exif:
                exif.load(self.exif)
            exif[0x0131] = self.software  # Software: the program that made these pixels
            kw["exif"] = exif.tobytes()
        if self.software and fmt == "PNG":
            from PIL.PngImagePlugin import PngInfo

            kw["pnginfo"] = PngInfo()
            kw["pnginfo"].add_text("Software", self.software)
        if fmt == "JPEG" and len(kw.get("exif", b"")) > _JPEG_EXIF_MAX:
            del kw["exif"]  # too large for a JPEG; the photo matters more than its EXIF
        return kw


def archive_metadata(img: Image.Image, name: str = "image") -> ArchiveMetadata:
    """The :class:`ArchiveMetadata` of a photo as opened (before any transpose: a TIFF's tags live in the
    file's own IFD). Unreadable EXIF is left out with an :class:`ImageWarning` naming ``name``."""
    exif_bytes = None
    try:
        src = img.getexif()
        out = Image.Exif()
        for tag in _KEPT_TAGS:
            if tag in src:
                out[tag] = src[tag]
        for ifd in (_EXIF_IFD, _GPS_IFD):
            sub = {k: v for k, v in src.get_ifd(ifd).items() if k not in _DROPPED_EXIF_TAGS}
            if sub:
                out.get_ifd(ifd).update(sub)
        data = out.tobytes()
        exif_bytes = data if len(out) or out.get_ifd(_EXIF_IFD) or out.get_ifd(_GPS_IFD) else None
    except Exception as e:  # noqa: BLE001 -- broken EXIF must not cost the photo
        warnings.warn(ImageWarning(f"{name}: EXIF not copied, it cannot be read ({type(e).__name__})"), stacklevel=2)
    icc = img.info.get("icc_profile")
    # Only an RGB profile describes the colour output; a grey or CMYK input's profile would mislabel it.
    icc = icc if isinstance(icc, bytes) and icc[16:20] == b"RGB " else None
    dpi = img.info.get("dpi")
    ok = isinstance(dpi, tuple) and len(dpi) == 2 and all(np.isfinite(float(d)) and float(d) > 0 for d in dpi)
    compression = img.info.get("compression") if img.format == "TIFF" else None
    compression = compression if compression in _TIFF_COMPRESSIONS else None
    return ArchiveMetadata(exif_bytes, icc, (float(dpi[0]), float(dpi[1])) if ok else None, compression)


def webp_is_lossless(fp: BinaryIO) -> bool:
    """True when the WebP file ``fp`` (a binary file, read from its start) holds a lossless image: its first
    image chunk is ``VP8L`` (lossy is ``VP8 ``; an extended file's ``VP8X`` header, ICC, alpha and metadata
    chunks come before it, an animation's first frame holds it). Pillow does not say; the RIFF chunk
    headers do, without decoding anything. False for anything else."""
    head = fp.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return False
    for _ in range(64):  # a real file reaches its image within a few chunks
        chunk = fp.read(8)
        if len(chunk) < 8:
            return False
        fourcc, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        if fourcc == b"ANMF":  # a frame: 16 bytes of position and timing, then its own chunks
            fp.read(16)
            continue
        fp.seek(size + (size & 1), os.SEEK_CUR)
    return False


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open a photo with its EXIF orientation applied, fully decoded (by Pillow: a 16-bit colour photo at 8
    bits, its own colours). Raises :class:`ImageError`."""
    return read_image(path, deep=False)[0]


def read_image(
    path: str | os.PathLike | BinaryIO, name: str | None = None, deep: bool = True
) -> tuple[Image.Image | PhotoPixels, ArchiveMetadata]:
    """:func:`open_image`, and the photo's :class:`ArchiveMetadata` for its colour version. ``path`` may also
    be a binary file (an upload held in memory); ``name`` names it in messages (default: the path).

    A 16-bit colour (or grey+alpha) PNG or TIFF, which Pillow would read at 8 bits, comes back as its
    :class:`PhotoPixels` instead (:func:`polychrome.io.deep.read_16bit`: its lightness at 16 bits, stood
    upright), what the colouriser takes (:func:`photo_pixels`); ``deep=False`` reads it with Pillow, at
    8 bits, as a PIL image (:func:`open_image` does, for callers that want the photo's own colours)."""
    if not hasattr(path, "read"):
        path = Path(path)
        if not path.exists():
            raise ImageError(f"{path}: no such file")
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image")
    if name is None:
        name = str(path) if isinstance(path, Path) else "image"
    from polychrome.io import deep as deep16

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PHOTO_FORMATS) as im:
                if deep and deep16.holds_16bit_samples(im):  # decoded below, by pypng or tifffile
                    if im.format == "PNG":  # a broken file fails here, in one line; its EXIF may follow its pixels
                        im.load()
                    meta = archive_metadata(im, name)
                    header = (im.format, im.size, im.getexif().get(0x0112, 1))
                else:
                    im.load()
                    meta = archive_metadata(im, name)
                    if im.format == "WEBP":
                        meta = replace(meta, lossless=_webp_lossless(path))
                    return ImageOps.exif_transpose(im), meta
            pixels = deep16.read_16bit(path, *header, name)  # Pillow's image closed first: its memory freed
            return (pixels, meta) if pixels is not None else read_image(path, name, deep=False)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a photo polychrome reads ({_FORMAT_NAMES})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: {too_many_pixels(e)}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: cannot read image ({e})") from None


def _webp_lossless(path: Path | BinaryIO) -> bool:
    """:func:`webp_is_lossless` of a path or a binary file (read from its start, its position kept)."""
    if isinstance(path, Path):
        with open(path, "rb") as f:
            return webp_is_lossless(f)
    pos = path.tell()
    try:
        path.seek(0)
        return webp_is_lossless(path)
    finally:
        path.seek(pos)


def photo_format(fp: BinaryIO, name: str) -> str:
    """The format of the photo in the binary file ``fp`` (one of :data:`PHOTO_FORMATS`; a camera JPEG with
    preview images is ``"JPEG"``), from its header; its pixels are not decoded. Raises :class:`ImageError`
    naming ``name`` for an empty file or one that is not such a photo."""
    if not fp.read(1):
        raise ImageError(f"{name}: empty, no photo in it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # read_image says it, once
            with Image.open(fp, formats=PHOTO_FORMATS) as im:
                return "JPEG" if im.format == "MPO" else im.format
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a photo polychrome reads ({_FORMAT_NAMES})") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: {too_many_pixels(e)}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: cannot read image ({e})") from None


def too_many_pixels(error: Exception | None = None) -> str:
    """The one-line reason a photo over :data:`MAX_PIXELS` is refused (its size from Pillow's ``error``)."""
    found = re.search(r"\((\d+) pixels\)", str(error or ""))
    size = f"{int(found.group(1)) / 1e6:.0f} MP, " if found else ""
    limit = Image.MAX_IMAGE_PIXELS or MAX_PIXELS
    gb = limit * BYTES_PER_PIXEL / 1e9
    return (f"too many pixels ({size}over the {limit / 1e6:.0f} MP limit: polychrome colourises photos up to "
            f"{limit / 1e6:.0f} MP, which take up to about {gb:.1f} GB of memory; a decompression bomb?)")  # fmt: skip


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """A photo as RGB float32 (H, W, 3) in [0, 1], EXIF orientation applied. Raises :class:`ImageError`."""
    return pil_to_rgb_array(open_image(path), str(path))[0]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """THE 8-bit quantiser: float in [0, 1] (any shape) -> uint8, clipped and rounded half up, as every
    written file, served image and scored prediction is."""
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_uint16(x: np.ndarray) -> np.ndarray:
    """The 16-bit counterpart of :func:`to_uint8`: float in [0, 1] -> uint16, clipped, rounded half up."""
    return (np.clip(x, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def rgb_array_to_pil(rgb: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """RGB float (H, W, 3) in [0, 1] (and optional alpha (H, W)) -> 8-bit PIL image."""
    img = Image.fromarray(to_uint8(rgb), "RGB")
    if alpha is not None:
        img.putalpha(Image.fromarray(to_uint8(alpha), "L"))
    return img


def grey_to_pil(x: np.ndarray) -> Image.Image:
    """A float map (H, W) in [0, 1] -> an 8-bit greyscale PIL image (white = 1)."""
    return Image.fromarray(to_uint8(x), "L")


def default_file_mode() -> int:
    """The mode an ordinary new file gets under the current umask (temp files are 0600: outputs should not be)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format name a file's extension says (``"PNG"``, ``"JPEG"``...). Raises :class:`ImageError`."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image extension {Path(path).suffix!r}")
    return fmt


def encode_image(
    img: Image.Image | np.ndarray, fp, fmt: str, metadata: ArchiveMetadata | None = None, name: str = "image",
    **save_kwargs,
) -> None:
    """Write ``img`` in format ``fmt`` (a Pillow format name) to ``fp`` (a path or a binary file), with
    ``metadata`` (a source photo's, from :func:`read_image`) where the format can carry it.

    ``img`` is an 8-bit PIL image, or a uint16 (H, W, 3|4) array for a 16-bit file: a PNG (pypng) or TIFF
    (tifffile) -- :mod:`polychrome.io.deep`, which also writes a multi-page TIFF whose ``append_images``
    holds such an array. ``name`` names the photo in warnings. JPEG defaults to quality 95."""
    from polychrome.io import deep

    meta = metadata.save_kwargs(fmt) if metadata is not None else {}
    pages = save_kwargs.pop("append_images", []) if save_kwargs.get("save_all") else []
    if fmt in deep.DEEP_FORMATS and any(isinstance(p, np.ndarray) for p in [img, *pages]):
        if not hasattr(fp, "write"):
            with open(fp, "wb") as f:
                return encode_image(img, f, fmt, metadata, name, **save_kwargs, append_images=pages)
        if fmt == "PNG":
            deep.write_png16(img, fp, {**meta, **save_kwargs})
        else:
            arrays = [p if isinstance(p, np.ndarray) else np.asarray(p.convert("RGBA" if "A" in p.mode else "RGB"))
                      for p in [img, *pages]]  # fmt: skip
            deep.write_tiff16(arrays, fp, metadata, name)
        return
    if isinstance(img, np.ndarray):
        f = img.astype(np.float32) / 65535.0  # a 16-bit result for an 8-bit format: quantised to 8 bits
        img = rgb_array_to_pil(f[..., :3], f[..., 3] if f.shape[2] == 4 else None)
    if pages:
        save_kwargs["append_images"] = pages
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # JPEG has no alpha
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", 95)
    for key, value in meta.items():
        save_kwargs.setdefault(key, value)
    img.save(fp, format=fmt, **save_kwargs)


def save_image_atomic(
    img: Image.Image | np.ndarray, path: str | os.PathLike, metadata: ArchiveMetadata | None = None, **save_kwargs
) -> None:
    """Write ``img`` to ``path`` so that ``path`` is either absent or complete: write a temporary file in
    the same folder, then rename it. The format follows the extension; ``metadata`` (a source photo's, from
    :func:`read_image`) is written where the format can carry it; ``img`` as :func:`encode_image` takes it
    (a uint16 array: a 16-bit PNG or TIFF). Raises :class:`ImageError`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = image_format(path)
    try:
        with locked_part(path) as tmp:  # a killed run's leftover is found by remove_stale_parts
            with open(tmp, "w+b") as f:  # w+: Pillow reads a multi-page TIFF back as it appends
                encode_image(img, f, fmt, metadata, str(path), **save_kwargs)
            os.chmod(tmp, default_file_mode())
            os.replace(tmp, path)
    except OSError as e:
        raise ImageError(f"{path}: cannot write image ({e})") from None


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Make sure photos can be written into ``folder`` without creating it: an existing folder must take a
    temporary file (made and removed, the way :func:`save_image_atomic` writes); for a missing one, its
    nearest existing parent must be a folder that takes a new sub-folder. Raises :class:`ImageError`
    naming ``folder``, so a batch stops before any work instead of failing once per photo after it."""
    folder = Path(folder)
    try:
        probe = folder
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{probe} is not a folder")
        if probe == folder:
            fd, tmp = tempfile.mkstemp(prefix=".polychrome-write-test.", suffix=".part", dir=folder)
            os.close(fd)
            os.unlink(tmp)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".polychrome-write-test.", dir=probe))
    except OSError as e:
        raise ImageError(f"{folder}: cannot write photos there ({e.strerror or e})") from None


def write_json_atomic(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as strict JSON (no NaN/Infinity) to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600 files; outputs get ordinary permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


#: The luminance quantisation table of the JPEG standard (ITU-T T.81, Annex K.1), row by row; libjpeg (and
#: so Pillow) scales it by the ``quality`` setting.
_JPEG_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def _libjpeg_table(quality: int) -> list[int]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(max((q * scale + 50) // 100, 1), 255) for q in _JPEG_LUMA_TABLE]


def jpeg_quality(path: str | os.PathLike | BinaryIO) -> int | None:
    """The quality (1-100, libjpeg's scale) a JPEG file (a path or a binary file) was saved at, or None for a
    file that is not a JPEG.

    Read from the header only: the quality whose libjpeg luminance table is closest to the file's (the sum
    of absolute differences; the order of the 64 entries does not matter for it). Exact for files written
    by libjpeg, Pillow and most tools built on them; for a camera's own tables, the nearest libjpeg quality."""
    try:
        with Image.open(path) as img:
            if img.format not in ("JPEG", "MPO"):
                return None
            table = (getattr(img, "quantization", None) or {}).get(0)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    if not table or len(table) != 64:
        return None
    got = sorted(int(v) for v in table)
    return min(range(1, 101), key=lambda q: (sum(abs(a - b) for a, b in zip(got, sorted(_libjpeg_table(q)))), -q))
