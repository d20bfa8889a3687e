"""data/pack.py and ``polychrome pack-data``: a seeded subset of colour photos, made small, within a byte budget,
written whole or not at all, with a manifest of what it holds."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from _helpers import colour_photo, grey_photo, save
from PIL import Image
from typer.testing import CliRunner

import polychrome.data.pack as pack
from polychrome.cli import app, main
from polychrome.data import ColorPhotoFolder
from polychrome.data.pack import MANIFEST, pack_photos
from polychrome.io import ImageWarning

N_COLOUR = 24


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """24 colour photos in two folders (large ones to shrink, small ones to leave), 2 grey ones, 1 broken
    file, and two sources sharing a name in one folder (same.png, same.jpg)."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(N_COLOUR - 2):
        w, h = (200, 150) if i % 2 else (60, 90)
        save(colour_photo(i, w, h), root / f"set{i % 2}" / f"p{i:02d}.{'jpg' if i % 3 else 'png'}")
    save(colour_photo(100, 160, 160), root / "set0" / "same.png")
    save(colour_photo(101, 160, 160), root / "set0" / "same.jpg")
    save(grey_photo(7, 150, 150), root / "set1" / "grey.png")
    save(grey_photo(8, 150, 150), root / "grey2.jpg")
    (root / "set1" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def _pack(source, out, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pack_photos(source, out, **kw)
    return result, [str(w.message) for w in caught if issubclass(w.category, ImageWarning)]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_pack_holds_the_colour_photos_made_small_with_a_manifest(source, tmp_path):
    out = tmp_path / "pack"
    result, warned = _pack(source, out, size=64, budget_bytes=10 << 20, seed=3, quality=80)
    assert (result.count, result.skipped_grey, result.skipped_unreadable) == (N_COLOUR, 2, 1)
    assert result.looked_at == result.sources == N_COLOUR + 3
    assert len(warned) == 1 and "broken.jpg" in warned[0] and warned[0].endswith("skipped")
    files = _files(out)
    assert result.bytes == sum(map(len, files.values())) <= 10 << 20
    manifest = json.loads(files.pop(MANIFEST))
    assert {k: manifest[k] for k in ("seed", "size", "quality", "format", "count", "budget_bytes")} == {
        "seed": 3, "size": 64, "quality": 80, "format": "webp", "count": N_COLOUR, "budget_bytes": 10 << 20}
    assert manifest["source"] == str(source)
    assert manifest["bytes"] == result.photo_bytes == sum(map(len, files.values()))
    # Stable names: the source's relative path with .webp; two sources sharing a name keep their suffixes.
    expected = {pack.pack_name(Path(s), Path(s).stem == "same").as_posix() for s in manifest["sources"]}
    assert set(files) == expected and {"set0/same.png.webp", "set0/same.jpg.webp", "set1/p01.webp"} <= expected
    assert len(manifest["sources"]) == N_COLOUR and all((source / s).is_file() for s in manifest["sources"])
    for name in files:
        with Image.open(out / name) as im:
            src = next(source.glob(name.removesuffix(".webp") if "same" in name else name.replace(".webp", ".*")))
            with Image.open(src) as orig:
                w, h = orig.size
            assert im.format == "WEBP" and im.mode == "RGB"
            assert min(im.size) == min(64, w, h)  # shrunk to 64 px, never enlarged (60 x 90 becomes 60 x 90)
            assert abs(im.size[0] / im.size[1] - w / h) < 0.03
    # The trainer reads the pack as it is: every photo colour, none unreadable.
    data = ColorPhotoFolder(out, 32, train=True)
    assert len(data) == N_COLOUR and data.skipped_gray == 0 and not data.skipped_unreadable
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the hidden build folder is gone


def test_the_budget_takes_photos_in_seeded_order_and_seeds_differ(source, tmp_path):
    full, _ = _pack(source, tmp_path / "full", size=64, budget_bytes=10 << 20, seed=5)
    order = json.loads((tmp_path / "full" / MANIFEST).read_text())["sources"]
    budget = full.bytes // 2
    half, _ = _pack(source, tmp_path / "half", size=64, budget_bytes=budget, seed=5)
    sources = json.loads((tmp_path / "half" / MANIFEST).read_text())["sources"]
    assert 0 < half.count < full.count and half.bytes <= budget
    assert sources == order[: half.count]  # a smaller budget: the first photos of the same seeded order
    assert sum(len(b) for b in _files(tmp_path / "half").values()) == half.bytes
    # Stopped because the next photo would not fit (not early): with it, the pack would pass the budget.
    next_photo = tmp_path / "full" / pack.pack_name(Path(order[half.count]), "same" in order[half.count])
    assert half.bytes + next_photo.stat().st_size > budget
    # The same seed gives the same pack byte for byte; another seed, other photos.
    again, _ = _pack(source, tmp_path / "again", size=64, budget_bytes=budget, seed=5)
    assert _files(tmp_path / "again") == _files(tmp_path / "half")
    _pack(source, tmp_path / "other", size=64, budget_bytes=budget, seed=6)
    other = json.loads((tmp_path / "other" / MANIFEST).read_text())["sources"]
    assert other != sources and set(other) != set(sources)


def test_what_is_in_the_way_is_refused_and_a_pack_is_replaced_whole(source, tmp_path, monkeypatch):
    out = tmp_path / "pack"
    out.mkdir()
    (out / "mine.txt").write_text("a person's file")
    with pytest.raises(FileExistsError, match="already exists"):
        pack_photos(source, out, size=32, budget_bytes=1 << 20)
    with pytest.raises(FileExistsError, match="not a pack made by pack-data"):
        pack_photos(source, out, size=32, budget_bytes=1 << 20, overwrite=True)
    assert _files(out) == {"mine.txt": b"a person's file"}
    with pytest.raises(ValueError, match="inside the photos"):
        pack_photos(source, source / "pack", size=32, budget_bytes=1 << 20)
    with pytest.raises(ValueError, match="holds no photo"):
        pack_photos(source, tmp_path / "tiny", size=32, budget_bytes=100)
    from polychrome.io import ImageError

    with pytest.raises(ImageError, match="no such folder"):
        pack_photos(tmp_path / "nowhere", tmp_path / "p", size=32)

    first = tmp_path / "first"
    _pack(source, first, size=32, budget_bytes=1 << 20, seed=0)
    before = _files(first)
    # A run that dies half-way leaves the earlier pack as it was, and no hidden build folder.
    calls = []

    def dies(img, quality):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return real(img, quality)

    real = pack.encode_webp
    monkeypatch.setattr(pack, "encode_webp", dies)
    with pytest.raises(KeyboardInterrupt):
        pack_photos(source, first, size=32, budget_bytes=1 << 20, seed=1, overwrite=True, workers=1)
    monkeypatch.undo()
    assert _files(first) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    _pack(source, first, size=32, budget_bytes=1 << 20, seed=1, overwrite=True)
    assert json.loads((first / MANIFEST).read_text())["seed"] == 1 and _files(first) != before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_pack_data_command(source, tmp_path, capsys):
    runner = CliRunner()
    out = tmp_path / "pack"
    r = runner.invoke(app, ["pack-data", str(source), "-o", str(out), "--size", "48", "--budget-mb", "1",
                            "--seed", "2", "--quality", "70"])  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "broken.jpg" in lines[0]
    assert f"{out}: {N_COLOUR} photos" in r.stdout and "2 greyscale and 1 unreadable skipped" in r.stdout
    manifest = json.loads((out / MANIFEST).read_text())
    assert (manifest["seed"], manifest["size"], manifest["quality"], manifest["count"]) == (2, 48, 70, N_COLOUR)
    # Mistakes: one line, exit 2, nothing written.
    for args, words in (
        ([str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")], "no such folder"),
        ([str(source), "-o", str(out)], "--overwrite"),
        ([str(source), "-o", str(tmp_path / "y"), "--budget-mb", "0.00001"], "--budget-mb"),
        ([str(source), "-o", str(tmp_path / "y"), "--quality", "101"], "--quality"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["pack-data", *args])  # as the console script runs it: usage mistakes in one line too
        err = capsys.readouterr().err
        assert e.value.code == 2 and "Traceback" not in err
        errors = [ln for ln in err.splitlines() if ln.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: ") and words in errors[0], err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
