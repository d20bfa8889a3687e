"""``colorize_batch(workers=N, batch_size=B)``: decoding and encoding in threads around the model, and photos of
one working-grid shape batched through the model, keeping every rule of the one-worker path: the same bytes,
per-photo errors while the rest go on, re-runs that skip finished outputs, never overwriting an input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import colorizer_of
from PIL import Image

from polychrome import create_model
from polychrome.pipeline.batch import Job, colorize_batch, plan

SETTINGS = [(2, 1), (3, 1), (1, 3), (3, 2)]  # (workers, batch size); (1, 1) is the reference


@pytest.fixture
def album(tmp_path, make_photo):
    """Photos of several sizes, orientations and kinds (alpha, 16-bit grey, a 3-page TIFF), with broken files
    among them."""
    root = tmp_path / "album"
    for i in range(6):
        make_photo(root / f"land{i}.jpg", 60, 40, seed=i)  # one working grid: batched together
    make_photo(root / "port0.png", 40, 60, seed=7)
    make_photo(root / "port1.png", 40, 60, seed=8)
    make_photo(root / "sub" / "odd.webp", 33, 71, seed=9)
    rgba = Image.fromarray(np.random.default_rng(3).integers(0, 255, (30, 50, 4), dtype=np.uint8), "RGBA")
    rgba.save(root / "alpha.png")
    deep = (np.linspace(0, 65535, 45 * 35).reshape(35, 45)).astype(np.uint16)
    Image.fromarray(deep).save(root / "deep.png")
    pages = [Image.fromarray(np.full((20, 30), 40 * (k + 1), np.uint8)) for k in range(3)]
    pages[0].save(root / "scan.tif", save_all=True, append_images=pages[1:])
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    (root / "sub" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return root


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(model, album, out, workers=1, batch_size=1, **kw):
    jobs, problems = plan([album], out, **{k: kw.pop(k) for k in ("compare", "confidence") if k in kw})
    assert problems == []
    seen = []
    report = colorize_batch(model, jobs, workers=workers, batch_size=batch_size,
                            on_job=lambda job, outcome, failure: seen.append((job.src.name, outcome,
                                                                             failure and failure.message)), **kw)  # fmt: skip
    return report, seen


@pytest.mark.parametrize("workers,batch_size", SETTINGS)
def test_threads_and_batches_write_what_one_worker_writes(album, tmp_path, tiny_model, workers, batch_size):
    one, one_seen = _run(tiny_model, album, tmp_path / "one")
    many, many_seen = _run(tiny_model, album, tmp_path / "many", workers, batch_size)
    # Every job reported once, in the jobs' order, with the same outcome and the same error line.
    assert many_seen == one_seen
    assert sorted(o for _, o, _ in one_seen) == ["failed"] * 2 + ["written"] * 12
    assert {f.src.name for f in many.failed} == {"broken.jpg", "cut.png"}
    assert all("\n" not in f.message for f in many.failed)
    a, b = _files(tmp_path / "one"), _files(tmp_path / "many")
    assert a.keys() == b.keys() and len(a) == 12
    assert not any(".part" in name for name in b)  # atomic writes leave no temporary files
    if batch_size == 1:
        assert a == b  # byte for byte
    else:  # a batched model call may differ in the last float bits: a colour level, rarely
        for name in a:
            with Image.open(tmp_path / "one" / name) as x, Image.open(tmp_path / "many" / name) as y:
                assert x.size == y.size and x.mode == y.mode and getattr(x, "n_frames", 1) == getattr(y, "n_frames", 1)
                diff = np.abs(np.asarray(x, np.int32) - np.asarray(y, np.int32))
                assert diff.max() <= 1, name


def test_compare_and_confidence_maps_are_the_same_bytes_in_threads(album, tmp_path):
    torch.manual_seed(0)
    cic = colorizer_of(create_model("cicgan-small"))  # a model that gives a confidence map
    for kind in ("compare", "confidence"):
        one, _ = _run(cic, album, tmp_path / f"one-{kind}", **{kind: True})
        many, _ = _run(cic, album, tmp_path / f"many-{kind}", workers=3, **{kind: True})
        a, b = _files(tmp_path / f"one-{kind}"), _files(tmp_path / f"many-{kind}")
        suffix = ".compare." if kind == "compare" else ".confidence.png"
        assert a == b and sum(suffix in n for n in a) == 12


def test_a_rerun_in_threads_skips_finished_outputs_and_redoes_missing_and_broken_ones(album, tmp_path, tiny_model):
    out = tmp_path / "out"
    first, _ = _run(tiny_model, album, out, workers=3, batch_size=2)
    assert len(first.written) == 12
    before = _files(out)
    (out / "land3.jpg").unlink()  # never written (a killed run)
    (out / "sub" / "odd.webp").write_bytes(b"")  # cut off by a full disk
    (out / ".port0.png.abcd1234.part").write_bytes(b"half")  # a killed run's temporary file (not ours: kept)
    again, seen = _run(tiny_model, album, out, workers=3, batch_size=2)
    assert sorted(j.src.name for j in again.written) == ["land3.jpg", "odd.webp"]
    assert len(again.skipped) == 10 and [o for name, o, _ in seen if name == "broken.jpg"] == ["failed"]
    after = _files(out)
    del after[".port0.png.abcd1234.part"]
    assert after == before  # the redone photos are the same bytes as the first time


def test_threads_never_overwrite_an_input_and_refuse_collisions(album, tmp_path, tiny_model):
    a = album / "land0.jpg"
    before = a.read_bytes()
    out = tmp_path / "out"
    jobs = [Job(a, album / "sub" / ".." / "land0.jpg"), Job(a, out / "x.png"), Job(a, out / "x.png"),
            Job(album / "land1.jpg", out / "x.png"), Job(album / "land2.jpg", out / "y.png")]
    seen = []
    report = colorize_batch(tiny_model, jobs, overwrite=True, workers=2, batch_size=2,
                            on_job=lambda job, outcome, failure: seen.append(outcome))
    assert seen == ["failed", "written", "duplicate", "failed", "written"]
    assert "is an input photo; refusing to overwrite it" in report.failed[0].message
    assert "is already the output of" in report.failed[1].message
    assert a.read_bytes() == before


def test_photos_of_one_working_grid_share_a_model_call(album, tmp_path, constant_ab):
    model = constant_ab(10.0, -20.0, infer_size=32)
    one, _ = _run(colorizer_of(model), album, tmp_path / "one")
    model.seen.clear()
    many, _ = _run(colorizer_of(model), album, tmp_path / "many", workers=2, batch_size=4)
    shapes = model.seen
    # 6 landscape photos 60x40 -> 32x21: batches of up to 4; never two shapes in one call.
    assert max(s[0] for s in shapes) == 4 and sum(s[0] for s in shapes if s[2:] == (21, 32)) == 6
    assert sum(s[0] for s in shapes) == 12 + 2  # every photo once, the TIFF's two other pages alone
    assert _files(tmp_path / "one") == _files(tmp_path / "many")  # a constant colour: exact either way


class FailsOnBatches(torch.nn.Module):
    """A stand-in model that fails on a batch of more than one photo, and on photos 21 px high."""

    meta = {"model": "fails-on-batches", "infer_size": 32}

    def forward(self, L_net):
        if L_net.shape[0] > 1:
            raise RuntimeError("not enough memory for this batch")
        if L_net.shape[2] == 21:
            raise RuntimeError("this shape breaks the model")
        return torch.zeros(L_net.shape[0], 2, *L_net.shape[2:])


def test_a_failed_batch_is_retried_photo_by_photo_and_only_the_bad_ones_fail(album, tmp_path):
    report, seen = _run(colorizer_of(FailsOnBatches()), album, tmp_path / "out", workers=2, batch_size=4)
    failed = sorted(f.src.name for f in report.failed)
    assert failed == ["broken.jpg", "cut.png"] + [f"land{i}.jpg" for i in range(6)]
    assert all("this shape breaks the model" in f.message for f in report.failed if f.src.name.startswith("land"))
    assert len(report.written) == 6 and (tmp_path / "out" / "port1.png").is_file()


def test_bad_settings_are_refused(tiny_model):
    for workers, batch_size in ((0, 1), (1, 0)):
        with pytest.raises(ValueError, match="at least 1"):
            colorize_batch(tiny_model, [], workers=workers, batch_size=batch_size)
