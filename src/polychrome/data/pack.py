"""Pack a seeded random subset of a folder of colour photos into a small folder: training data that travels.

A lent GPU machine takes a few MiB along with the code and no more (README, "Train on a GPU"). The pack is
the photos the trainer would use (greyscale ones skipped with its own test, :func:`~polychrome.data.is_grayscale`;
unreadable ones skipped with one :class:`~polychrome.io.ImageWarning` each), in an order drawn from ``seed``,
each made small (short side ``size`` px, never enlarged) and re-encoded as lossy WebP, added until the next
one would take the folder past its byte budget. Different seeds pick different photos, so later legs can see
new ones; a larger budget with the same seed gives a superset.

WebP rather than JPEG: on 300 training photos at short side 128 px and quality 85, WebP took 3.9 KB a photo
at 39.5 dB PSNR against the resized photo, JPEG (4:2:0, optimised) 5.1 KB at 36.6 dB -- smaller and closer.

Names are stable: a photo is packed as its path relative to the source folder with the suffix ``.webp``
(``imagenette/0a1b.jpg`` -> ``imagenette/0a1b.webp``); where two sources in one folder share a name but not
a suffix, both keep theirs before it (``x.png.webp``, ``x.jpg.webp``), whichever seed is drawn.

The pack is built in a hidden folder beside ``out`` and renamed onto it when complete, so ``out`` is either
absent, the previous pack or the whole new one. ``out/MANIFEST.json`` says what it holds: source, seed, size,
quality, count, bytes and the source paths (relative, in the seeded order).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from polychrome.data.folder import is_grayscale, to_rgb_pil
from polychrome.io import ImageError, ImageWarning, find_images, is_inside, open_image, write_json_atomic

#: The file in a pack that says what it holds (written last: a folder with it is a finished pack).
MANIFEST = "MANIFEST.json"
SUFFIX = ".webp"
MIB = 1 << 20


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack_photos` wrote."""

    folder: Path
    count: int  # photos packed
    photo_bytes: int  # their files' bytes
    bytes: int  # the whole pack: photos and MANIFEST.json
    looked_at: int  # source photos read, in the seeded order, to fill the budget
    skipped_grey: int
    skipped_unreadable: int
    sources: int  # photos in the source folder


def pack_name(rel: Path, keep_suffix: bool) -> Path:
    """The packed file's path for a source's relative path (see the module docstring)."""
    return rel.with_name(rel.name + SUFFIX) if keep_suffix else rel.with_suffix(SUFFIX)


def shrink(img: Image.Image, size: int) -> Image.Image:
    """8-bit RGB with the short side ``size`` px (Lanczos), or the photo's own size when it is not larger."""
    img = to_rgb_pil(img)
    w, h = img.size
    short = min(w, h)
    if short <= size:
        return img
    return img.resize((max(1, round(w * size / short)), max(1, round(h * size / short))), Image.Resampling.LANCZOS)


def encode_webp(img: Image.Image, quality: int) -> bytes:
    """Lossy WebP bytes at ``quality`` (method 6: the encoder's slowest, smallest; a 128 px photo takes ms)."""
    buf = io.BytesIO()
    img.save(buf, format="WEBP", quality=quality, method=6)
    return buf.getvalue()


def _prepare(path: Path, size: int, quality: int) -> tuple[str, bytes | str | None]:
    """("ok", webp bytes), ("grey", None) or ("unreadable", a one-line message naming ``path``)."""
    try:
        img = open_image(path)
        if is_grayscale(img):
            return "grey", None
        return "ok", encode_webp(shrink(img, size), quality)
    except ImageError as e:
        return "unreadable", str(e)
    except Exception as e:  # noqa: BLE001 -- Pillow raises many types for a broken file
        return "unreadable", f"{path}: cannot read image ({e})"


def _check_places(src: Path, out: Path, overwrite: bool) -> None:
    if not src.is_dir():
        raise ImageError(f"{src}: no such folder" if not src.exists() else f"{src}: not a folder of photos")
    if is_inside(out, src) or is_inside(src, out):
        raise ValueError(f"{out}: the pack must be neither inside the photos it packs ({src}) nor hold them")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: already exists; --overwrite replaces a pack made by pack-data")
        if not (out / MANIFEST).is_file():
            raise FileExistsError(f"{out}: not a pack made by pack-data (no {MANIFEST}); it is left alone: "
                                  "remove it yourself or pack elsewhere")  # fmt: skip


def _manifest(src: Path, seed: int, size: int, quality: int, budget: int, count: int, photo_bytes: int,
              looked_at: int, grey: int, unreadable: int, sources: list[str]) -> dict:  # fmt: skip
    return {
        "tool": "polychrome pack-data",
        "source": str(src),
        "seed": seed,
        "size": size,
        "quality": quality,
        "format": "webp",
        "naming": "each source's relative path with the suffix .webp (its own suffix kept before it where two "
                  "sources in a folder share a name)",
        "budget_bytes": budget,
        "count": count,
        "bytes": photo_bytes,
        "looked_at": looked_at,
        "skipped_grey": grey,
        "skipped_unreadable": unreadable,
        "sources": sources,
    }


def pack_photos(src: str | os.PathLike, out: str | os.PathLike, size: int = 128, budget_bytes: int = 16 * MIB,
                seed: int = 0, quality: int = 85, overwrite: bool = False, workers: int | None = None) -> PackResult:
    """Pack a seeded random subset of the colour photos under ``src`` into ``out`` (module docstring), the whole
    folder (photos and MANIFEST.json) at most ``budget_bytes``. ``overwrite`` replaces an earlier pack (a
    folder holding MANIFEST.json; any other existing folder is refused). ``workers``: threads reading and
    encoding (default: up to 4).

    Raises ImageError (``src`` is not a folder), FileExistsError (``out`` is in the way), ValueError (nothing
    to pack, or a budget too small for one photo)."""
    src, out = Path(src), Path(out)
    if size < 1 or not 1 <= quality <= 100 or budget_bytes < 1:
        raise ValueError(f"need size >= 1, quality 1-100 and a budget above 0; got {size}, {quality}, {budget_bytes}")
    _check_places(src, out, overwrite)
    paths = find_images(src)
    if not paths:
        raise ValueError(f"{src}: no photos found")
    rels = [p.relative_to(src) for p in paths]
    shared = Counter((r.parent, r.stem) for r in rels)  # names two sources in one folder share
    order = list(range(len(paths)))
    random.Random(seed).shuffle(order)

    # The manifest's size bound: its fixed part with numbers as wide as they can get, and each listed source
    # as it is written (indent=2: four spaces, the quoted path, a comma and a newline).
    fixed = len(json.dumps(_manifest(src, seed, size, quality, budget_bytes, 10**9, 10**15, 10**9, 10**9, 10**9,
                                     [""]), indent=2)) + 1  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    workers = workers or min(4, os.cpu_count() or 1)
    listed: list[str] = []
    photo_bytes = listed_bytes = looked_at = grey = unreadable = 0
    first_size = None
    try:
        with ThreadPoolExecutor(workers) as pool:
            full = False
            chunk = 16 * workers
            for start in range(0, len(order), chunk):
                batch = order[start : start + chunk]
                for i, (verdict, data) in zip(batch, pool.map(lambda i: _prepare(paths[i], size, quality), batch)):
                    looked_at += 1
                    if verdict == "grey":
                        grey += 1
                        continue
                    if verdict == "unreadable":
                        unreadable += 1
                        warnings.warn(ImageWarning(f"{data}; skipped"), stacklevel=2)
                        continue
                    rel = rels[i]
                    entry = len(json.dumps(rel.as_posix())) + 6
                    first_size = first_size or len(data) + fixed + entry
                    if photo_bytes + len(data) + fixed + listed_bytes + entry > budget_bytes:
                        full = True
                        break
                    name = tmp / pack_name(rel, shared[(rel.parent, rel.stem)] > 1)
                    name.parent.mkdir(parents=True, exist_ok=True)
                    name.write_bytes(data)
                    listed.append(rel.as_posix())
                    photo_bytes += len(data)
                    listed_bytes += entry
                if full:
                    break
        if not listed:
            if first_size is None:
                raise ValueError(f"{src}: no usable colour photos ({grey} greyscale, {unreadable} unreadable)")
            raise ValueError(f"a budget of {budget_bytes} bytes holds no photo (the first drawn takes {first_size} "
                             "with the manifest)")  # fmt: skip
        manifest = _manifest(src, seed, size, quality, budget_bytes, len(listed), photo_bytes, looked_at, grey,
                             unreadable, listed)  # fmt: skip
        write_json_atomic(manifest, tmp / MANIFEST)
        total = photo_bytes + (tmp / MANIFEST).stat().st_size
        assert total <= budget_bytes, (total, budget_bytes)  # the bound above is an upper bound
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; a pack is an ordinary folder
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".part", dir=out.parent))
            os.rename(out, old / out.name)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return PackResult(out, len(listed), photo_bytes, total, looked_at, grey, unreadable, len(paths))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

