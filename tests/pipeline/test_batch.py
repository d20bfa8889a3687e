"""Batch colourisation as a library function: planning outputs, never overwriting an input, collisions,
duplicates, skip-finished, overwrite, atomic writes and per-photo errors, called from Python."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from polychrome.io import ImageError
from polychrome.pipeline.batch import Job, colorize_batch, plan


@pytest.fixture
def album(tmp_path, make_photo) -> Path:
    root = tmp_path / "album"
    make_photo(root / "a.png", 30, 20)
    make_photo(root / "sub" / "b.jpg", 24, 32, seed=1)
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_plan_mirrors_folders_globs_and_lists(album, tmp_path):
    out = tmp_path / "out"
    jobs, problems = plan([album], out)
    assert {(j.src.relative_to(album).as_posix(), j.dst.relative_to(out).as_posix()) for j in jobs} == {
        ("a.png", "a.png"), ("sub/b.jpg", "sub/b.jpg"), ("broken.jpg", "broken.jpg")}
    assert problems == []
    jobs, _ = plan([str(album / "**" / "*.jpg")], out, compare=True, confidence=True)
    assert sorted(j.dst.relative_to(out).as_posix() for j in jobs) == ["broken.compare.jpg", "sub/b.compare.jpg"]
    assert all(j.confidence == j.dst.with_name(f"{j.dst.stem}.confidence.png") for j in jobs)
    (tmp_path / "list.txt").write_text("# photos\nalbum/a.png\n\nalbum/sub/b.jpg\n")
    jobs, _ = plan([tmp_path / "list.txt"], out)
    assert [j.dst.relative_to(out).as_posix() for j in jobs] == ["album/a.png", "album/sub/b.jpg"]
    _, problems = plan([album, tmp_path / "nowhere", str(tmp_path / "*.gif")], album)
    assert problems == [f"{album}: the output folder is this input folder; outputs would replace the photos",
                        f"{tmp_path / 'nowhere'}: no such file or folder",
                        f"{tmp_path / '*.gif'}: no photos match this pattern"]


def test_batch_writes_skips_overwrites_and_collects_errors(album, tmp_path, tiny_model):
    out = tmp_path / "out"
    jobs, _ = plan([album], out)
    seen = []
    report = colorize_batch(tiny_model, jobs, on_job=lambda job, outcome, failure: seen.append(outcome))
    assert sorted(j.dst.name for j in report.written) == ["a.png", "b.jpg"]
    assert [f.src.name for f in report.failed] == ["broken.jpg"] and isinstance(report.failed[0].error, ImageError)
    assert "broken.jpg" in report.failed[0].message and "\n" not in report.failed[0].message
    assert sorted(seen) == ["failed", "written", "written"]
    assert not list(out.rglob("*.part"))  # atomic writes leave no temporary files
    again = colorize_batch(tiny_model, jobs)
    assert sorted(j.dst.name for j in again.skipped) == ["a.png", "b.jpg"] and not again.written
    forced = colorize_batch(tiny_model, jobs, overwrite=True)
    assert sorted(j.dst.name for j in forced.written) == ["a.png", "b.jpg"]


def test_batch_never_overwrites_an_input_and_refuses_collisions(album, tmp_path, tiny_model):
    a = album / "a.png"
    before = a.read_bytes()
    into_itself = colorize_batch(tiny_model, [Job(a, album / "sub" / ".." / "a.png")], overwrite=True)
    assert "is an input photo; refusing to overwrite it" in into_itself.failed[0].message
    assert a.read_bytes() == before
    out = tmp_path / "out"
    twice = colorize_batch(tiny_model, [Job(a, out / "x.png"), Job(a, out / "x.png")])  # the same photo named twice
    assert len(twice.written) == 1 and not twice.failed
    clash = colorize_batch(tiny_model, [Job(a, out / "y.png"), Job(album / "sub" / "b.jpg", out / "y.png")])
    assert len(clash.written) == 1 and "is already the output of" in clash.failed[0].message


def test_an_output_that_does_not_open_is_not_finished_and_is_redone(tmp_path, make_photo, tiny_model):
    src = tmp_path / "in"
    for name in ("empty.png", "junk.jpg", "cut.png", "cut.jpg", "good.png", "good.jpg"):
        make_photo(src / name, 40, 30)
    out = tmp_path / "out"
    jobs, _ = plan([src], out)
    assert len(colorize_batch(tiny_model, jobs).written) == 6
    (out / "empty.png").write_bytes(b"")  # a full disk, a crashed copy, another tool
    (out / "junk.jpg").write_bytes(b"this is not a jpeg")
    for name in ("cut.png", "cut.jpg"):
        data = (out / name).read_bytes()
        (out / name).write_bytes(data[: len(data) // 2])
    again = colorize_batch(tiny_model, jobs)
    assert sorted(j.dst.name for j in again.written) == ["cut.jpg", "cut.png", "empty.png", "junk.jpg"]
    assert sorted(j.dst.name for j in again.skipped) == ["good.jpg", "good.png"] and not again.failed
    for name in ("empty.png", "junk.jpg", "cut.png", "cut.jpg"):
        with Image.open(out / name) as im:
            im.load()
            assert im.size == (40, 30)



def test_a_glob_names_the_photos_it_cannot_read(tmp_path, make_photo):
    make_photo(tmp_path / "in" / "a.png", 10, 10)
    (tmp_path / "in" / "b.heic").write_bytes(b"a HEIC photo")
    (tmp_path / "in" / "notes.md").write_text("not a photo")
    jobs, problems = plan([str(tmp_path / "in" / "*")], tmp_path / "out")
    assert [j.src.name for j in jobs] == ["a.png"]
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'in' / 'b.heic'}: HEIC photos are not read")


# --------------------------------------------------------------------------- archive metadata
DATE = "1931:06:01 12:00:00"
KEPT = {0x010E: "Grandma at the lake", 0x010F: "Kodak", 0x0110: "Brownie No. 2", 0x8298: "(c) the Miller family",
        0x0132: DATE}  # fmt: skip


def _archive_photo(path, w: int = 30, h: int = 20, orientation: int = 6):
    """A photo with the EXIF an archive cares about (and a rotation), an sRGB ICC profile and 300 DPI."""
    import numpy as np
    from PIL import ImageCms

    exif = Image.Exif()
    for tag, value in KEPT.items():
        exif[tag] = value
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = DATE  # DateTimeOriginal
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = (np.random.default_rng(0).random((h, w, 3)) * 255).astype("uint8")
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), icc_profile=icc, dpi=(300, 300))
    return icc


@pytest.mark.parametrize("src_ext", ["jpg", "tif", "png"])
@pytest.mark.parametrize("dst_ext", ["jpg", "tif", "png"])
def test_exif_icc_and_dpi_survive_colourisation(tmp_path, tiny_model, src_ext, dst_ext):
    from polychrome.pipeline.batch import colorize_file

    src = tmp_path / f"scan.{src_ext}"
    icc = _archive_photo(src)
    dst = colorize_file(tiny_model, src, tmp_path / "out" / f"scan.{dst_ext}")
    with Image.open(dst) as im:
        exif = im.getexif()
        assert im.size == (20, 30)  # stood upright on reading ...
        assert exif.get(0x0112, 1) == 1  # ... so the orientation is reset, not applied twice
        assert {tag: exif.get(tag) for tag in KEPT} == KEPT
        assert exif.get_ifd(0x8769).get(0x9003) == DATE
        assert im.info.get("icc_profile") == icc
        assert im.info.get("dpi") == pytest.approx((300, 300), abs=0.01)


@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_adobe_deflate", "packbits"])
def test_a_compressed_tiff_stays_compressed(tmp_path, make_photo, tiny_model, compression):
    from polychrome.pipeline.batch import colorize_file

    src = make_photo(tmp_path / "scan.tif", 40, 30, compression=compression)
    with Image.open(colorize_file(tiny_model, src, tmp_path / "out" / "scan.tif")) as im:
        assert im.info["compression"] == compression
    with Image.open(colorize_file(tiny_model, src, tmp_path / "out" / "scan.png")) as im:
        assert im.format == "PNG"  # another format takes no TIFF compression


def test_a_grey_or_cmyk_icc_profile_is_not_put_on_a_colour_output(tmp_path, tiny_model):
    from polychrome.pipeline.batch import colorize_file

    src = tmp_path / "grey.png"
    icc = bytearray(_archive_photo(src))
    icc[16:20] = b"GRAY"  # a scanned black-and-white photo's profile
    Image.open(src).save(src, icc_profile=bytes(icc))
    with Image.open(colorize_file(tiny_model, src, tmp_path / "out.png")) as im:
        assert "icc_profile" not in im.info


def test_a_sub_folder_that_cannot_be_listed_is_named(tmp_path, make_photo, monkeypatch):
    make_photo(tmp_path / "in" / "a.png", 10, 10)
    locked = make_photo(tmp_path / "in" / "locked" / "b.png", 10, 10).parent
    real = os.scandir

    def scandir(path="."):  # as a folder without read permission answers (chmod does not stop root)
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    jobs, problems = plan([tmp_path / "in"], tmp_path / "out")
    assert [j.src.name for j in jobs] == ["a.png"]
    assert len(problems) == 1 and problems[0].startswith(f"{locked}: cannot list this folder")


# --------------------------------------------------------------------------- leftovers of a killed run
_WRITER = """
import importlib.util, os, signal, sys, time
spec = importlib.util.spec_from_file_location("parts", sys.argv[3])  # the module alone: no torch to import
parts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parts)
with parts.locked_part(sys.argv[1]) as tmp:
    with open(tmp, "wb") as f:
        f.write(b"half a photo")
    print(tmp, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
"""


def _writer(dst, how):
    import subprocess
    import sys

    from polychrome.io import parts

    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(dst), how, parts.__file__], stdout=subprocess.PIPE, text=True)
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_runs_temporary_files_are_removed_by_the_next_run_and_a_live_writers_are_not(
    tmp_path, make_photo, tiny_model, monkeypatch
):
    import time

    from polychrome.io import parts

    src = make_photo(tmp_path / "in" / "a.png", 30, 20)
    make_photo(tmp_path / "in" / "sub" / "b.png", 20, 20)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    killed, stale = _writer(out / "a.png", "kill")  # kill -9 in the middle of writing a.png
    assert killed.wait(30) == -9 and stale.exists()
    _, stale_sub = _writer(out / "sub" / "b.png", "kill")
    live, held = _writer(out / "c.png", "hold")  # another worker still writing into the same folder
    other = out / ".notes.txt.abcdefgh.part"  # not a photo's: someone else's file
    other.write_bytes(b"x")
    try:
        monkeypatch.setattr(parts, "PROCESS_START", time.time() + 1)  # the next run starts after the crash
        jobs, _ = plan([src.parent], out)
        report = colorize_batch(tiny_model, jobs)
        assert sorted(j.dst.name for j in report.written) == ["a.png", "b.png"]
        assert not stale.exists() and not stale_sub.exists()
        assert held.exists() and other.exists()
    finally:
        live.kill()
        live.wait()
    # Its writer gone, the held file is stale too; one written after this run started is not.
    fresh = out / ".d.png.zzzzzzzz.part"
    fresh.write_bytes(b"y")
    os.utime(fresh, (time.time() + 5, time.time() + 5))
    assert parts.remove_stale_parts(out, lambda name: name.endswith(".png")) == [held]
    assert fresh.exists()


def test_every_page_of_a_multi_page_tiff_is_colourised(tmp_path, tiny_model, lab):
    import numpy as np

    from polychrome.io import ImageWarning
    from polychrome.pipeline.batch import colorize_file

    greys = [40, 128, 220]
    pages = [Image.fromarray(np.full((20 + 4 * i, 30, 3), g, np.uint8)) for i, g in enumerate(greys)]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    dst = colorize_file(tiny_model, tmp_path / "scan.tif", tmp_path / "out" / "scan.tif")
    with Image.open(dst) as im:
        assert im.n_frames == 3
        for i, g in enumerate(greys):
            im.seek(i)
            assert im.size == (30, 20 + 4 * i) and im.mode == "RGB"
            L_in = lab(np.full((1, 1, 3), g, np.uint8))[0, 0, 0]
            assert np.abs(lab(im.convert("RGB"))[..., 0] - L_in).max() < 1.0  # each page keeps its own L
    with pytest.warns(ImageWarning, match=r"scan.tif: 3 pages; only page 1 was written to .*scan.png"):
        png = colorize_file(tiny_model, tmp_path / "scan.tif", tmp_path / "out" / "scan.png")
    with Image.open(png) as im:
        assert im.size == (30, 20)


@pytest.mark.parametrize("ext", ["jpg", "png", "tif", "webp"])
def test_every_output_says_it_was_colourised_by_polychrome_and_which_model(tmp_path, tiny_model, ext):
    from polychrome import __version__
    from polychrome.pipeline.batch import colorize_file

    src = tmp_path / f"scan.{ext}"
    _archive_photo(src)
    note = f"colourised by polychrome {__version__}, model {tiny_model.name}"
    with Image.open(colorize_file(tiny_model, src, tmp_path / "out" / f"scan.{ext}")) as im:
        exif = im.getexif()
        assert exif.get(0x0131) == note
        assert exif.get(0x010E) == KEPT[0x010E] and exif.get_ifd(0x8769).get(0x9003) == DATE  # the rest is kept
        if ext == "png":
            assert im.text.get("Software") == note
