"""Colourising files: one photo file to one colour file, and batches of them with the rules a batch needs.

:func:`plan` turns inputs (files, folders searched recursively, globs, ``.txt`` lists) into (source,
output) pairs; :func:`colorize_batch` runs them and never overwrites an input, refuses two photos writing
one output, does a photo named twice once, skips outputs that already exist and open (so re-running
finishes an interrupted batch, and redoes a zero-byte or cut-off output) unless ``overwrite``, writes every
file atomically and collects per-photo errors instead of stopping: one broken photo must not stop a batch
of thousands.
"""

from __future__ import annotations

import codecs
import glob
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image, ImageOps

from polychrome.color.hints import Hint
from polychrome.io import (
    IMAGE_EXTENSIONS,
    ImageError,
    ImageWarning,
    find_images,
    is_complete_image,
    is_image_path,
    image_format,
    is_inside,
    read_image,
    save_image_atomic,
    scan_folder,
    unread_photo_format,
)
from polychrome.io.deep import DEEP_FORMATS
from polychrome.io.parts import remove_stale_parts
from polychrome.pipeline.core import Timer, no_timer

_GLOB_CHARS = set("*?[")


def _unread(path) -> str:
    return (f"{path}: {unread_photo_format(path)} photos are not read by polychrome "
            "(it reads JPEG, PNG, WebP, BMP and TIFF; convert it to one of those)")  # fmt: skip


def confidence_path(dst: str | os.PathLike) -> Path:
    """Where a photo's confidence map goes: ``<stem>.confidence.png`` beside ``dst``."""
    dst = Path(dst)
    return dst.with_name(f"{dst.stem}.confidence.png")


def compare_path(dst: str | os.PathLike) -> Path:
    """Where a grey | colour side-by-side picture goes: ``<stem>.compare.<ext>`` beside ``dst``."""
    dst = Path(dst)
    return dst.with_name(f"{dst.stem}.compare{dst.suffix}")


def colorize_file(
    colorizer,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    size: int | None = None,
    compare: bool = False,
    hints: list[Hint] | None = None,
    temperature: float | None = None,
    confidence_path: str | os.PathLike | None = None,
    timer: Timer = no_timer,
) -> Path:
    """Read ``src``, colourise it at full resolution with ``colorizer``, write ``dst`` atomically (format from
    its extension).

    EXIF orientation is applied on reading, so the written pixels stand upright; an alpha channel is kept
    when the output format has one, and so are the EXIF (orientation reset), an RGB ICC profile, the DPI and
    a TIFF's compression (:class:`~polychrome.io.ArchiveMetadata`) as far as the format can carry them, and
    a provenance note (:func:`provenance`) as EXIF Software (BMP has no place for it). A photo of more than
    8 bits (a 16-bit grey scan) written as PNG or TIFF comes out as 16-bit RGB (:mod:`polychrome.io.deep`).
    Every page of a multi-page TIFF is colourised into a multi-page TIFF ``dst`` (hints and the confidence
    map are page 1's); another format takes page 1, with an :class:`~polychrome.io.ImageWarning` saying so.
    ``compare`` writes grey | colour side by side. ``hints`` are in pixel
    coordinates of the upright photo (as a viewer shows it), for a hint model only. ``confidence_path``
    (a model that gives confidence) also writes the confidence map from the same model call, as an 8-bit
    greyscale image of the photo's size (white = the model expects its colour to be right), before ``dst``,
    so a photo that exists has its map.

    Raises :class:`polychrome.io.ImageError` for an unreadable input or unwritable output,
    :class:`~polychrome.color.hints.HintError` for hints the model cannot use or a hint outside the photo,
    ValueError for a temperature or confidence map the model cannot give.
    """
    colorizer.check_hints(hints)
    colorizer.decoding(temperature)
    if confidence_path is not None:
        colorizer.check_confidence()
        if hints:
            raise ValueError("a confidence map is for automatic colourisation; give hints or a confidence path, not both")
    with timer("decode"):
        img, metadata = read_image(src)
    metadata = replace(metadata, software=provenance(colorizer))
    pages = tiff_pages(src)
    bits = 16 if image_format(dst) in DEEP_FORMATS else 8  # a 16-bit scan's colour stays 16-bit there
    kw = dict(size=size, compare=compare, temperature=temperature, timer=timer, bits=bits)
    out = _colour_page(colorizer, img, str(src), hints=hints, confidence_path=confidence_path, **kw)
    del img  # the decoded photo is not needed for writing
    extra = {}
    if pages > 1 and Image.registered_extensions().get(Path(dst).suffix.lower()) == "TIFF":
        extra = {"save_all": True, "append_images": [
            _colour_page(colorizer, _read_page(src, i), f"{src} (page {i + 1})", **kw) for i in range(1, pages)]}
    elif pages > 1:
        warnings.warn(ImageWarning(f"{src}: {pages} pages; only page 1 was written to {dst} "
                                   "(a .tif output keeps every page)"), stacklevel=2)  # fmt: skip
    with timer("encode"):
        save_image_atomic(out, dst, metadata, **extra)
    return Path(dst)


def provenance(colorizer) -> str:
    """The note written into every colour file (EXIF Software; a PNG's Software text too)."""
    from polychrome import __version__

    return f"colourised by polychrome {__version__}, model {colorizer.name}"


def tiff_pages(src: str | os.PathLike) -> int:
    """How many pages (images) a TIFF holds; 1 for any other photo."""
    try:
        with Image.open(src, formats=("TIFF",)) as im:
            return int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 -- not a TIFF (read_image has already reported a broken one)
        return 1


def _read_page(src: str | os.PathLike, index: int) -> Image.Image:
    """Page ``index`` (from 0) of a multi-page TIFF, decoded and stood upright."""
    try:
        with Image.open(src, formats=("TIFF",)) as im:
            im.seek(index)
            im.load()
            return ImageOps.exif_transpose(im.copy())
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{src}: cannot read page {index + 1} ({e})") from None


def _colour_page(colorizer, img, name, size, compare, hints=None, temperature=None, confidence_path=None,
                 timer=no_timer, bits=8):
    """One decoded photo (a file's page) -> its colour version as an 8-bit PIL image (alpha kept), or with
    ``bits=16`` a deep photo's uint16 array, through :meth:`Colorizer.colorize_image` (bounded memory)."""
    out, pred = colorizer.colorize_image(img, hints, temperature, size, confidence=confidence_path is not None,
                                         compare=compare, name=name, timer=timer, bits=bits)  # fmt: skip
    if confidence_path is not None:
        save_image_atomic(colorizer.confidence_image(pred.confidence, (img.height, img.width)), confidence_path)
    return out


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Job:
    """One photo of a batch: its source and where its colour version goes."""

    src: Path
    dst: Path
    confidence: Path | None = None  # where its confidence map goes, if one is asked for


def _glob_base(pattern: str) -> Path:
    """The folder a glob is anchored at: its leading path parts without wildcards."""
    parts = Path(pattern).parts
    base = []
    for part in parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _is_text(path: Path) -> bool:
    """True when the file's first 4 KB are non-empty UTF-8 text without NUL bytes: a list, never a photo
    (every photo format's header has a NUL or a byte that is not UTF-8)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except (OSError, UnicodeDecodeError):
        return False
    return bool(head) and b"\0" not in head


def plan(
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    compare: bool = False,
    confidence: bool = False,
    notes: list[str] | None = None,
) -> tuple[list[Job], list[str]]:
    """Expand inputs into jobs, and one-line problems for inputs (or files in them) that give none.

    A folder is searched recursively (linked sub-folders followed) and mirrored under ``out_dir``; every
    file in it is accounted for: a photo in a format polychrome does not read (:data:`UNREAD_PHOTO_FORMATS`)
    or a link to nothing is a problem naming it, and the count of other files (not photos, hidden) is
    appended to ``notes`` when a list is given; a file lands as ``out_dir/NAME``; a
    ``.txt`` list keeps its entries' paths below the list's folder; a glob (one the shell left alone) keeps
    the path below its first wildcard. A text file that is not named ``.txt`` is refused with a line that
    says what a list is, not read as a photo. Photos already inside ``out_dir`` (when it sits inside an input
    folder) are earlier outputs, not inputs. ``compare`` names outputs ``NAME.compare.EXT`` (side-by-side
    pictures never stand in for, or skip, real outputs); ``confidence`` adds ``NAME.confidence.png``.
    """
    out_dir = Path(out_dir)
    jobs: list[Job] = []
    problems: list[str] = []
    for arg in inputs:
        arg = os.fspath(arg)
        p = Path(arg)
        if p.is_dir():
            if p.resolve() == out_dir.resolve():
                problems.append(f"{arg}: the output folder is this input folder; outputs would replace the photos")
                continue
            scan = scan_folder(p, exclude=out_dir)
            pairs = [(f, f.relative_to(p)) for f in scan.photos]
            problems += [_unread(f) for f in scan.unread]
            problems += [f"{f}: a link to nothing; skipped" for f in scan.broken_links] + scan.unlisted
            if scan.others and notes is not None:
                names = ", ".join(f.name for f in scan.others[:5]) + (", ..." if len(scan.others) > 5 else "")
                notes.append(f"{arg}: {len(scan.others)} other file(s) left alone, not photos or hidden ({names})")
            if not pairs and not scan.unread and not scan.broken_links and not scan.unlisted:
                problems.append(f"{arg}: no photos found (looked for {', '.join(IMAGE_EXTENSIONS)})")
        elif p.is_file() and p.suffix.lower() == ".txt" and not is_image_path(p):
            try:
                listed = find_images(p)
            except ImageError as e:
                problems.append(str(e))
                continue
            pairs = [(f, f.relative_to(p.parent) if is_inside(f, p.parent) else Path(f.name)) for f in listed]
            if not pairs:
                problems.append(f"{arg}: the list names no photos")
        elif p.is_file() and unread_photo_format(p):
            problems.append(_unread(arg))
            continue
        elif p.is_file() and not is_image_path(p) and _is_text(p):
            problems.append(f"{arg}: a text file, not a photo; a list of photos must be named *.txt "
                            "(one photo path per line, relative to the list's folder; # starts a comment)")  # fmt: skip
            continue
        elif p.is_file():  # a photo (also one without a photo extension: its decoder decides)
            pairs = [(p, Path(p.name))]
        elif _GLOB_CHARS & set(arg):
            base = _glob_base(arg)
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
            matches = [m for m in matches if m.is_file() and not is_inside(m, out_dir)]
            pairs = [(m, m.relative_to(base)) for m in matches if is_image_path(m)]
            unread = [m for m in matches if unread_photo_format(m)]
            problems += [_unread(m) for m in unread]
            if not pairs and not unread:
                problems.append(f"{arg}: no photos match this pattern")
        else:
            problems.append(f"{arg}: no such file or folder")
            continue
        for src, rel in pairs:
            dst = out_dir / rel
            if compare:
                dst = compare_path(dst)
            jobs.append(Job(src, dst, confidence_path(dst) if confidence else None))
    return jobs, problems


def iter_plan(
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    problems: list[str],
    compare: bool = False,
    confidence: bool = False,
    notes: list[str] | None = None,
) -> Iterator[Job]:
    """:func:`plan` as a stream, for archives: the same jobs in the same order, yielded one at a time, and a
    ``.txt`` list read a line at a time, so a list of millions of paths is never held whole in memory (every
    other input is planned by :func:`plan`). Problems are appended to ``problems`` as they are met."""
    for arg in inputs:
        p = Path(arg)
        if not (p.is_file() and p.suffix.lower() == ".txt" and not is_image_path(p)):
            jobs, found = plan([arg], out_dir, compare=compare, confidence=confidence, notes=notes)
            problems += found
            yield from jobs
            continue
        n_problems, empty = len(problems), True
        for src in _stream_list(p, problems):
            empty = False
            dst = Path(out_dir) / (src.relative_to(p.parent) if is_inside(src, p.parent) else Path(src.name))
            if compare:
                dst = compare_path(dst)
            yield Job(src, dst, confidence_path(dst) if confidence else None)
        if empty and len(problems) == n_problems:  # an unreadable list said so already
            problems.append(f"{os.fspath(arg)}: the list names no photos")


def _stream_list(path: Path, problems: list[str]) -> Iterator[Path]:
    """The photos a ``.txt`` list names (one per line, relative to the list's folder; blank lines and ``#``
    comments ignored, as :func:`~polychrome.io.find_images` reads them), read a line at a time."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    yield path.parent / line
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}: cannot read the list ({e})")


# --------------------------------------------------------------------------- running
def is_out_of_memory(error: BaseException) -> bool:
    """True for an allocation that failed: Python's and NumPy's MemoryError, or PyTorch's allocator error."""
    if isinstance(error, MemoryError):
        return True
    return isinstance(error, RuntimeError) and any(
        s in str(error) for s in ("can't allocate memory", "not enough memory", "out of memory")
    )


@dataclass(frozen=True)
class Failure:
    """A photo that could not be done: its source and the error."""

    src: Path
    error: Exception

    @property
    def message(self) -> str:
        """One line: an ImageError names its file already; anything else gets the source and the error kind."""
        if isinstance(self.error, ImageError):
            return str(self.error)
        if is_out_of_memory(self.error):
            return (f"{self.src}: not enough memory to colourise this photo ({type(self.error).__name__}); "
                    "the rest of the batch goes on")  # fmt: skip
        text = str(self.error).splitlines()[0] if str(self.error) else ""
        return f"{self.src}: failed ({type(self.error).__name__}: {text})"


@dataclass
class BatchReport:
    """What :func:`colorize_batch` did."""

    written: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)  # outputs already there (not overwritten)
    failed: list[Failure] = field(default_factory=list)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def colorize_batch(
    colorizer,
    jobs: list[Job],
    size: int | None = None,
    compare: bool = False,
    hints: list[Hint] | None = None,
    temperature: float | None = None,
    overwrite: bool = False,
    on_job: Callable[[Job, str, Failure | None], None] | None = None,
    timer: Timer = no_timer,
    other_inputs: Iterable[Path] = (),
) -> BatchReport:
    """Colourise planned ``jobs`` (:func:`plan`) with ``colorizer``.

    Temporary files a killed earlier run left in an output folder (``.NAME.XXXXXXXX.part``, NAME a photo) are
    removed the first time a job writes there (:func:`~polychrome.io.parts.remove_stale_parts`).

    Never writes over an input photo (found by file identity, so links and other spellings are caught),
    refuses a second photo whose output (or confidence map) is already another's, does a photo planned
    twice once, and skips a job whose outputs all exist and open (:func:`~polychrome.io.is_complete_image`)
    unless ``overwrite``. Each failure is collected,
    not raised. ``on_job(job, outcome, failure)`` is called after every job with outcome ``"written"``,
    ``"skipped"``, ``"failed"`` or ``"duplicate"`` (for a progress display). ``other_inputs`` are input
    photos of the same run planned elsewhere (another worker's share): never overwritten either.
    """
    report = BatchReport()
    input_ids = {i for i in (_file_id(j.src) for j in jobs) if i is not None}
    input_ids |= {i for i in map(_file_id, other_inputs) if i is not None}
    claimed: dict[Path, Path] = {}
    seen: set[tuple[Path, Path]] = set()
    cleaned: set[Path] = set()
    for job in jobs:
        outcome, failure = "written", None
        if job.dst.parent not in cleaned:  # once per output folder, before anything is written there
            cleaned.add(job.dst.parent)
            remove_stale_parts(job.dst.parent, is_image_path)
        try:
            dst_key = job.dst.resolve()
            if (job.src.resolve(), dst_key) in seen:
                outcome = "duplicate"  # the same photo named twice (a folder and a file in it)
            else:
                seen.add((job.src.resolve(), dst_key))
                outcome = _run_job(colorizer, job, dst_key, claimed, input_ids, size, compare, hints, temperature,
                                   overwrite, timer)
        except Exception as e:  # noqa: BLE001 -- one broken photo must not stop a batch of thousands
            # Without its traceback: the frames of a failed photo hold its arrays (the memory the next photo needs).
            outcome, failure = "failed", Failure(job.src, e.with_traceback(None))
            report.failed.append(failure)
        if outcome == "written":
            report.written.append(job)
        elif outcome == "skipped":
            report.skipped.append(job)
        if on_job is not None:
            on_job(job, outcome, failure)
    return report


def _run_job(colorizer, job, dst_key, claimed, input_ids, size, compare, hints, temperature, overwrite, timer) -> str:
    if dst_key in claimed:
        raise ImageError(f"{job.src}: its output {job.dst} is already the output of {claimed[dst_key]}")
    claimed[dst_key] = job.src
    conf = job.confidence
    if conf is not None:
        if conf.resolve() in claimed:
            raise ImageError(f"{job.src}: its confidence map {conf} is already the output of {claimed[conf.resolve()]}")
        claimed[conf.resolve()] = job.src
        if conf.exists() and _file_id(conf) in input_ids:
            raise ImageError(f"{job.src}: its confidence map {conf} is an input photo; refusing to overwrite it")
    if job.dst.exists() and _file_id(job.dst) in input_ids:
        raise ImageError(f"{job.src}: output {job.dst} is an input photo; refusing to overwrite it")
    # Finished means readable: a zero-byte or cut-off file (a full disk, another tool) is redone.
    if not overwrite and is_complete_image(job.dst) and (conf is None or is_complete_image(conf)):
        return "skipped"
    colorize_file(colorizer, job.src, job.dst, size=size, compare=compare, hints=hints, temperature=temperature,
                  confidence_path=conf, timer=timer)
    return "written"
