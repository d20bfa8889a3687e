"""``polychrome pack-data``: a small, seeded subset of the training photos that travels (to a lent GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polychrome.cli.common import app, fail, out_console, warnings_as_lines


@app.command("pack-data")
def pack_data(
    source: Annotated[Path, typer.Argument(help="Folder of colour photos (searched recursively).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the pack into (made whole, then "
                                         "renamed into place).", show_default=False)],  # fmt: skip
    size: Annotated[int, typer.Option(min=16, help="Short side of the packed photos, px (never enlarged).")] = 128,
    budget_mb: Annotated[float, typer.Option(min=0.001, help="Size of the whole pack, photos and MANIFEST.json, in "
                                             "MiB (2^20 bytes).")] = 16.0,  # fmt: skip
    seed: Annotated[int, typer.Option(help="Seed of the order photos are drawn in: another seed, other photos.")] = 0,
    quality: Annotated[int, typer.Option(min=1, max=100, help="WebP quality.")] = 85,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier pack in OUTPUT.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Threads reading and encoding photos.")] = 2,
) -> None:
    """Pack a seeded random subset of SOURCE's colour photos into OUTPUT, at most --budget-mb: each made small
    (short side --size) and encoded as WebP, greyscale photos skipped as training skips them, unreadable ones
    skipped with a warning each. OUTPUT/MANIFEST.json lists the source photos packed."""
    from polychrome.data.pack import MIB, pack_photos
    from polychrome.io import ImageError

    try:
        with warnings_as_lines():
            result = pack_photos(source, output, size=size, budget_bytes=int(budget_mb * MIB), seed=seed,
                                 quality=quality, overwrite=overwrite, workers=workers)  # fmt: skip
    except (ImageError, FileExistsError, ValueError) as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"{output}: cannot write the pack ({e.strerror or e})", code=1) from None
    mib = result.bytes / MIB
    out_console().print(
        f"{result.folder}: {result.count} photos, {mib:.2f} MiB ({result.count / mib:.0f} a MiB), short side "
        f"{size} px, WebP q{quality}, seed {seed}; {result.looked_at} of {result.sources} drawn from {source} "
        f"({result.skipped_grey} greyscale and {result.skipped_unreadable} unreadable skipped)",
        soft_wrap=True,
    )
