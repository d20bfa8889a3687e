"""Hostile and broken inputs at the io layer and through a batch: each gets one line naming the file, the
rest of the batch is done, and nothing outside the photo formats' own decoders ever sees a file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from polychrome.io import ImageError, open_image
from polychrome.pipeline.batch import colorize_batch, plan

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n"


# ------------------------------------------------------------------ only photo formats are opened (item 12)
@pytest.mark.parametrize("content", [EPS, b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"], ids=["eps", "pdf"])
def test_a_document_named_like_a_photo_is_refused_before_any_decoder_runs(tmp_path, monkeypatch, content):
    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(self))
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(content)
    with pytest.raises(ImageError) as e:
        open_image(fake)
    msg = str(e.value)
    assert msg.startswith(f"{fake}: ") and "\n" not in msg and "JPEG" in msg, msg
    assert opened == []  # the PostScript parser (and so Ghostscript) never saw it


def test_a_batch_refuses_the_document_and_does_the_photos(tmp_path, make_photo, tiny_model):
    src = tmp_path / "in"
    make_photo(src / "good.png", 24, 20)
    (src / "photo.jpg").write_bytes(EPS)
    jobs, problems = plan([src], tmp_path / "out")
    report = colorize_batch(tiny_model, jobs)
    assert [j.dst.name for j in report.written] == ["good.png"]
    assert [f.src.name for f in report.failed] == ["photo.jpg"]
    assert "photo.jpg" in report.failed[0].message and "\n" not in report.failed[0].message
