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
import io
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

from polychrome.color.hints import Hint
from polychrome.io import (
    FORMAT_EXTENSIONS,
    IMAGE_EXTENSIONS,
    ImageError,
    ImageWarning,
    encode_image,
    find_images,
    image_format,
    is_complete_image,
    is_image_path,
    is_inside,
    photo_format,
    photo_pixels,
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


def source_name(src) -> str:
    """How messages name a photo's source or destination: its path, or a binary file's ``name`` (standard
    input is ``<stdin>``, as ``sys.stdin.buffer`` names itself)."""
    return getattr(src, "name", "image") if hasattr(src, "read") or hasattr(src, "write") else os.fspath(src)


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
    fmt: str | None = None,
) -> Path | BinaryIO:
    """Read ``src``, colourise it at full resolution with ``colorizer``, write ``dst`` atomically (format from
    its extension).

    ``src`` may also be a binary file (a photo piped in: its ``name``, e.g. ``<stdin>``, names it in
    messages) and ``dst`` a binary file, written in Pillow format ``fmt`` (e.g. ``"PNG"``) and not seeked
    back: what is written there is what would be written into a file of that format.

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
    prepared = prepare_file(colorizer, src, size, hints, temperature, confidence_path, timer)
    pred = predict_files(colorizer, [prepared], hints, temperature, confidence_path is not None, timer)[0]
    return finish_file(colorizer, prepared, pred, dst, size, compare, temperature, confidence_path, timer, fmt)


# The three steps of colorize_file, apart so that a batch can decode and encode photos in threads around the
# model, and give the model several photos at once (colorize_batch's workers and batch_size): the very same
# code runs either way.
@dataclass
class PreparedFile:
    """A photo file read and made ready for the model (:func:`prepare_file`)."""

    src: Path | BinaryIO  # a path, or a binary file (standard input) named by its ``name``
    metadata: object  # polychrome.io.ArchiveMetadata, with the provenance note
    pages: int  # a TIFF's pages (1 for any other photo)
    pixels: object | None  # page 1 decoded (polychrome.io.PhotoPixels; None once rendered)
    L_work: object  # page 1's L on the working grid (1, 1, h, w), what the model is given

    def __post_init__(self) -> None:
        self.hw = (self.pixels.height, self.pixels.width)  # the photo's (height, width)

    @property
    def work_shape(self) -> tuple[int, ...]:
        """The working grid's shape: photos of one shape can share a model call."""
        return tuple(self.L_work.shape)


def prepare_file(colorizer, src, size=None, hints=None, temperature=None, confidence_path=None,
                 timer: Timer = no_timer) -> PreparedFile:  # fmt: skip
    """Check the request, read and decode ``src``, and put its L on the model's working grid."""
    colorizer.check_hints(hints)
    colorizer.decoding(temperature)
    if confidence_path is not None:
        colorizer.check_confidence()
        if hints:
            raise ValueError("a confidence map is for automatic colourisation; give hints or a confidence path, not both")
    name = source_name(src)
    src = src if hasattr(src, "read") else Path(src)
    with timer("decode"):
        img, metadata = read_image(src, name)
    metadata = replace(metadata, software=provenance(colorizer))
    pages = tiff_pages(src)
    with timer("to_float"):
        pixels = photo_pixels(img, name)
    return PreparedFile(src, metadata, pages, pixels, colorizer.working_pixels(pixels, size, timer))


def predict_files(colorizer, prepared: list[PreparedFile], hints=None, temperature=None, confidence=False,
                  timer: Timer = no_timer) -> list:  # fmt: skip
    """One model call for photos whose working grids have one shape (:attr:`PreparedFile.work_shape`), stacked
    into a batch; their predictions, one each (batch 1). Hints belong to one photo."""
    if len(prepared) > 1 and hints:
        raise ValueError("hints belong to one photo; predict a batch without hints")
    import torch

    from polychrome.pipeline.core import Prediction

    first = prepared[0]
    L_work = first.L_work if len(prepared) == 1 else torch.cat([p.L_work for p in prepared])
    pred = colorizer.predict_working(L_work, hints, first.hw, None, None, temperature, confidence, timer)
    if len(prepared) == 1:
        return [pred]
    conf = pred.confidence
    return [Prediction(pred.ab[i : i + 1], None if conf is None else conf[i : i + 1]) for i in range(len(prepared))]


def finish_file(colorizer, prepared: PreparedFile, pred, dst, size=None, compare=False, temperature=None,
                confidence_path=None, timer: Timer = no_timer, fmt: str | None = None) -> Path | BinaryIO:  # fmt: skip
    """Render page 1 from its prediction at full resolution (and its confidence map), colourise a multi-page
    TIFF's other pages, and write ``dst`` atomically (or, a binary file, in format ``fmt``)."""
    src, metadata, pages, hw = prepared.src, prepared.metadata, prepared.pages, prepared.hw
    stream = hasattr(dst, "write")
    if stream and fmt is None:
        raise ValueError("a binary file to write into needs a format (fmt)")
    fmt = fmt if stream else image_format(dst)
    bits = 16 if fmt in DEEP_FORMATS else 8  # a 16-bit scan's colour stays 16-bit there
    pixels, prepared.pixels = prepared.pixels, None  # the decoded photo is not needed for writing
    out = colorizer.render_pixels(pixels, pred.ab, compare=compare, bits=bits, timer=timer)
    del pixels
    if confidence_path is not None:
        save_image_atomic(colorizer.confidence_image(pred.confidence, hw), confidence_path)
    extra, name = {}, source_name(src)
    if pages > 1 and fmt == "TIFF":
        kw = dict(size=size, compare=compare, temperature=temperature, timer=timer, bits=bits)
        extra = {"save_all": True, "append_images": [
            _colour_page(colorizer, _read_page(src, i, name), f"{name} (page {i + 1})", **kw) for i in range(1, pages)]}
    elif pages > 1:
        warnings.warn(ImageWarning(f"{name}: {pages} pages; only page 1 was written to {source_name(dst)} "
                                   "(a .tif output keeps every page)"), stacklevel=2)  # fmt: skip
    with timer("encode"):
        if stream:
            encode_image(out, dst, fmt, metadata, source_name(dst), **extra)
            return dst
        save_image_atomic(out, dst, metadata, **extra)
    return Path(dst)


def provenance(colorizer) -> str:
    """The note written into every colour file (EXIF Software; a PNG's Software text too)."""
    from polychrome import __version__

    return f"colourised by polychrome {__version__}, model {colorizer.name}"


def tiff_pages(src: str | os.PathLike | BinaryIO) -> int:
    """How many pages (images) a TIFF holds; 1 for any other photo."""
    try:
        with Image.open(src, formats=("TIFF",)) as im:
            return int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 -- not a TIFF (read_image has already reported a broken one)
        return 1


def _read_page(src: str | os.PathLike | BinaryIO, index: int, name: str) -> Image.Image:
    """Page ``index`` (from 0) of a multi-page TIFF, decoded and stood upright (``name`` names it in errors)."""
    try:
        with Image.open(src, formats=("TIFF",)) as im:
            im.seek(index)
            im.load()
            return ImageOps.exif_transpose(im.copy())
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name}: cannot read page {index + 1} ({e})") from None


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
    # The photo itself, for one that is no file (piped in on standard input); ``src`` then only names it.
    data: bytes | None = field(default=None, repr=False, compare=False)

    def source(self) -> Path | BinaryIO:
        """What to read: ``src``, or ``data`` as a binary file named ``src`` (``<stdin>``)."""
        if self.data is None:
            return self.src
        f = io.BytesIO(self.data)
        f.name = str(self.src)
        return f


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
            rel = Path(p.name)
            if not is_image_path(p):  # `scan`: written as scan.jpg, the extension of the format its bytes hold
                try:
                    with open(p, "rb") as f:
                        rel = Path(p.name + FORMAT_EXTENSIONS[photo_format(f, arg)])
                except ImageError as e:
                    problems.append(str(e))
                    continue
                except OSError as e:
                    problems.append(f"{arg}: cannot read image ({e.strerror or e})")
                    continue
            pairs = [(p, rel)]
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


#: How a photo read from standard input is named: in messages, and (its extension from its format) its output.
STDIN_NAME, STDIN_STEM = "<stdin>", "stdin"


def plan_stdin(data: bytes, out_dir: str | os.PathLike, compare: bool = False,
               confidence: bool = False) -> tuple[list[Job], list[str]]:  # fmt: skip
    """:func:`plan` for a photo piped in: ``data``, all of standard input. One job writing
    ``out_dir/stdin.EXT`` (EXT from the format the bytes hold: ``.jpg``, ``.png``, ``.webp``, ``.bmp``,
    ``.tif``), or no job and a problem naming ``<stdin>`` for empty input or bytes that are not a photo
    polychrome reads."""
    try:
        fmt = photo_format(io.BytesIO(data), STDIN_NAME)
    except ImageError as e:
        return [], [str(e)]
    dst = Path(out_dir) / f"{STDIN_STEM}{FORMAT_EXTENSIONS[fmt]}"
    if compare:
        dst = compare_path(dst)
    return [Job(Path(STDIN_NAME), dst, confidence_path(dst) if confidence else None, data=data)], []


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
    jobs: Iterable[Job],
    size: int | None = None,
    compare: bool = False,
    hints: list[Hint] | None = None,
    temperature: float | None = None,
    overwrite: bool = False,
    on_job: Callable[[Job, str, Failure | None], None] | None = None,
    timer: Timer = no_timer,
    other_inputs: Iterable[Path] = (),
    workers: int = 1,
    batch_size: int = 1,
) -> BatchReport:
    """Colourise planned ``jobs`` (:func:`plan`) with ``colorizer``.

    Temporary files a killed earlier run left in an output folder (``.NAME.XXXXXXXX.part``, NAME a photo) are
    removed the first time a job writes there (:func:`~polychrome.io.parts.remove_stale_parts`).

    Never writes over an input photo (found by file identity, so links and other spellings are caught),
    refuses a second photo whose output (or confidence map) is already another's, does a photo planned
    twice once, and skips a job whose outputs all exist and open (:func:`~polychrome.io.is_complete_image`)
    unless ``overwrite``. Each failure is collected,
    not raised. ``on_job(job, outcome, failure)`` is called after every job, in the jobs' order, with outcome
    ``"written"``, ``"skipped"``, ``"failed"`` or ``"duplicate"`` (for a progress display). ``other_inputs`` are
    input photos of the same run planned elsewhere (another worker's share): never overwritten either.

    Throughput: ``workers`` > 1 decodes and encodes photos in that many threads while this thread runs the
    model, so reading the next photos and writing the last ones overlap the model call. ``batch_size`` > 1
    gives the model up to that many photos at once whose working grids have one shape (photos of one size
    and orientation; hints belong to one photo, so a photo with hints goes alone). With workers 1 and batch
    size 1 (the defaults) each photo is done start to finish in turn. Every rule above holds either way, and
    with batch size 1 the files are byte-identical to those of one worker; a batched model call can differ
    in the last float bits (a few colour levels on a few pixels). At most ``2 * (workers + batch_size)``
    photos are held decoded at once.
    """
    if workers < 1 or batch_size < 1:
        raise ValueError(f"workers and batch_size must be at least 1, got {workers} and {batch_size}")
    jobs = list(jobs)
    rules = _Rules(jobs, other_inputs, overwrite)
    report = BatchReport()

    def emit(job: Job, outcome: str, failure: Failure | None) -> None:
        if outcome == "written":
            report.written.append(job)
        elif outcome == "skipped":
            report.skipped.append(job)
        elif outcome == "failed":
            report.failed.append(failure)
        if on_job is not None:
            on_job(job, outcome, failure)

    args = dict(size=size, compare=compare, hints=hints, temperature=temperature, timer=timer)
    if workers == 1 and batch_size == 1:
        for job in jobs:
            outcome, failure = "written", None
            rules.clean(job)
            try:
                outcome = rules.admit(job)
                if outcome is None:
                    colorize_file(colorizer, job.source(), job.dst, confidence_path=job.confidence, **args)
                    outcome = "written"
            except Exception as e:  # noqa: BLE001 -- one broken photo must not stop a batch of thousands
                outcome, failure = "failed", _failure(job, e)
            emit(job, outcome, failure)
        return report
    _Pipeline(colorizer, rules, emit, workers, batch_size if not hints else 1, args).run(jobs)
    return report


def _failure(job: Job, error: Exception) -> Failure:
    # Without its traceback: the frames of a failed photo hold its arrays (the memory the next photo needs).
    return Failure(job.src, error.with_traceback(None))


class _Rules:
    """The batch's rules, applied to each job in order before any work on it (in the calling thread)."""

    def __init__(self, jobs: list[Job], other_inputs: Iterable[Path], overwrite: bool):
        self.input_ids = {i for i in (_file_id(j.src) for j in jobs if j.data is None) if i is not None}
        self.input_ids |= {i for i in map(_file_id, other_inputs) if i is not None}
        self.overwrite = overwrite
        self.claimed: dict[Path, Path] = {}
        self.seen: set[tuple[Path, Path]] = set()
        self.cleaned: set[Path] = set()

    def clean(self, job: Job) -> None:
        """Once per output folder, before anything is written there: a killed run's temporary files go."""
        if job.dst.parent not in self.cleaned:
            self.cleaned.add(job.dst.parent)
            remove_stale_parts(job.dst.parent, is_image_path)

    def admit(self, job: Job) -> str | None:
        """``"duplicate"`` (the same photo named twice: a folder and a file in it), ``"skipped"`` (finished
        outputs), None when the job is to be done; ImageError when it must not be (its output is an input or
        another photo's output)."""
        dst_key = job.dst.resolve()
        if (job.src.resolve(), dst_key) in self.seen:
            return "duplicate"
        self.seen.add((job.src.resolve(), dst_key))
        claimed, input_ids = self.claimed, self.input_ids
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
        if not self.overwrite and is_complete_image(job.dst) and (conf is None or is_complete_image(conf)):
            return "skipped"
        return None


class _Entry:
    """One job on its way through :class:`_Pipeline`."""

    __slots__ = ("job", "outcome", "failure", "prepared", "finished")

    def __init__(self, job: Job):
        self.job = job
        self.outcome: str | None = None  # set when the job is done (or needs no work)
        self.failure: Failure | None = None
        self.prepared = None  # Future of prepare_file while it waits for the model
        self.finished = None  # Future of finish_file after the model

    def fail(self, error: Exception) -> None:
        self.outcome, self.failure, self.prepared, self.finished = "failed", _failure(self.job, error), None, None


class _InlineExecutor:
    """``submit`` runs the call now (one worker: batching without threads)."""

    def submit(self, fn, *args, **kwargs):
        from concurrent.futures import Future

        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 -- the job's failure, read from the future
            future.set_exception(e)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class _Pipeline:
    """Decode and encode in a thread pool, the model in the calling thread (batched by working-grid shape),
    and every job reported in order. Jobs are admitted by :class:`_Rules` in order, in the calling thread,
    before their work is handed to the pool, so two threads never write one output."""

    def __init__(self, colorizer, rules: _Rules, emit, workers: int, batch_size: int, args: dict):
        self.colorizer, self.rules, self.emit = colorizer, rules, emit
        self.workers, self.batch_size, self.args = workers, batch_size, args
        self.ahead = workers + batch_size  # photos being decoded or waiting for the model
        self.held = 2 * (workers + batch_size)  # photos not yet reported (decoded, at the model or encoding)
        self.window: deque[_Entry] = deque()  # every job not yet reported, in order
        self.waiting: deque[_Entry] = deque()  # decoding or decoded, before the model

    def run(self, jobs: list[Job]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(self.workers, "polychrome-io") if self.workers > 1 else _InlineExecutor()
        self.pool = pool
        try:
            for job in jobs:
                self._admit(job)
                while len(self.waiting) >= self.ahead:
                    self._model_step()
                self._report(block=False)
                while len(self.window) > self.held:
                    if self.waiting and self.window[0].finished is None and self.window[0].outcome is None:
                        self._model_step()  # the oldest is still before the model
                    else:
                        self._report(block=True, one=True)
            while self.waiting:
                self._model_step()
            self._report(block=True)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _admit(self, job: Job) -> None:
        entry = _Entry(job)
        self.window.append(entry)
        self.rules.clean(job)
        try:
            entry.outcome = self.rules.admit(job)
        except Exception as e:  # noqa: BLE001 -- reported in its turn, like any failure
            entry.fail(e)
            return
        if entry.outcome is None:
            a = self.args
            entry.prepared = self.pool.submit(prepare_file, self.colorizer, job.source(), a["size"], a["hints"],
                                              a["temperature"], job.confidence, a["timer"])  # fmt: skip
            self.waiting.append(entry)

    def _ready(self, entry: _Entry):
        """``entry``'s PreparedFile (waiting for its decoding), or None when that failed."""
        try:
            return entry.prepared.result()
        except Exception as e:  # noqa: BLE001
            entry.fail(e)
            return None

    def _model_step(self) -> None:
        """One model call: the oldest waiting photo with up to batch_size - 1 later ones of its shape."""
        first = self.waiting.popleft()
        prepared = self._ready(first)
        if prepared is None:
            return
        group = [(first, prepared)]
        if self.batch_size > 1:
            rest = deque()
            while self.waiting and len(group) < self.batch_size:
                entry = self.waiting.popleft()
                p = self._ready(entry)
                if p is None:
                    continue
                same_kind = (entry.job.confidence is None) == (first.job.confidence is None)
                if p.work_shape == prepared.work_shape and same_kind:
                    group.append((entry, p))
                else:
                    rest.append(entry)
            self.waiting.extendleft(reversed(rest))  # the others keep their order, first in line next time
        self._predict(group)

    def _predict(self, group) -> None:
        a = self.args
        conf = group[0][0].job.confidence is not None
        try:
            preds = predict_files(self.colorizer, [p for _, p in group], a["hints"], a["temperature"], conf, a["timer"])
        except Exception as e:  # noqa: BLE001
            if len(group) == 1:
                group[0][0].fail(e)
                return
            for item in group:  # one photo's problem (or a batch too large for memory) must not fail the others
                self._predict([item])
            return
        for (entry, p), pred in zip(group, preds):
            entry.prepared = None
            entry.finished = self.pool.submit(
                finish_file, self.colorizer, p, pred, entry.job.dst, a["size"], a["compare"], a["temperature"],
                entry.job.confidence, a["timer"],
            )  # fmt: skip

    def _report(self, block: bool, one: bool = False) -> None:
        """Report the jobs at the front of the window that are done, in order (``block``: wait for them)."""
        while self.window:
            entry = self.window[0]
            if entry.outcome is None:
                if entry.finished is None:
                    return  # before the model: a model step comes first
                if not block and not entry.finished.done():
                    return
                try:
                    entry.finished.result()
                    entry.outcome = "written"
                except Exception as e:  # noqa: BLE001
                    entry.fail(e)
                entry.finished = None
            self.window.popleft()
            self.emit(entry.job, entry.outcome, entry.failure)
            if one:
                return
