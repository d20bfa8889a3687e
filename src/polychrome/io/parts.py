"""Temporary files of atomic writes, ``.NAME.XXXXXXXX.part`` beside ``NAME``: made while locked, and removed
when a killed process left them behind.

A writer makes its temporary file with :func:`locked_part` and holds an exclusive ``flock`` on it until the
file is renamed or removed; the kernel drops the lock when the process dies, ``kill -9`` included. A
temporary file is stale (:func:`remove_stale_parts`) when nobody holds its lock and it was last written
before this process started, so a concurrent writer's file (another worker on the same output folder) is
never taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the age test alone decides
    fcntl = None

log = logging.getLogger(__name__)

#: When this process started (close enough: the package is imported before any work).
PROCESS_START = time.time()

# ``.NAME.`` + tempfile's random characters + ``.part``
_PART = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.part$")


@contextlib.contextmanager
def locked_part(path: str | os.PathLike) -> Iterator[str]:
    """A new temporary file ``.NAME.XXXXXXXX.part`` in ``path``'s folder, locked while the block runs; the
    block writes it (by name) and renames it onto ``path``. Whatever is left of it afterwards is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield tmp
    finally:
        try:
            if os.path.exists(tmp):
                os.unlink(tmp)
        finally:
            os.close(fd)


def _in_use(path: Path) -> bool:
    """True when another open file holds ``path``'s lock (its writer is alive)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # gone or unreadable: leave it alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's own lock


def remove_stale_parts(
    folder: str | os.PathLike, is_ours: Callable[[str], bool], started: float | None = None
) -> list[Path]:
    """Delete the temporary files (``.NAME.XXXXXXXX.part``) in ``folder`` (not its sub-folders) whose ``NAME``
    ``is_ours`` accepts, that no live writer holds and that were last written before ``started`` (default:
    this process's start). Returns what was removed; a file that cannot be removed is left (logged)."""
    started = PROCESS_START if started is None else started
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _PART.match(entry.name)
        if m is None or not is_ours(m.group("name")):
            continue
        p = Path(entry.path)
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_mtime >= started:
                continue
            if _in_use(p):
                continue
            p.unlink()
        except OSError as e:
            log.warning("%s: could not remove this leftover temporary file (%s)", p, e.strerror or e)
            continue
        log.info("removed %s, left by an interrupted write", p)
        removed.append(p)
    return removed
