"""The outer ring keeps its shape: only pipeline/ (and io/ for files) resizes L for a model, rasterises hints,
joins Lab and quantises to 8 bits; only the model card asks a model what it can do; nothing patches modules."""

from __future__ import annotations

import re
from pathlib import Path

import polychrome

SRC = Path(polychrome.__file__).parent
#: The inner core works on tensors of its own (colour maths, models, losses at training size); training
#: validation joins Lab through the pipeline, as the Colorizer does.
INNER = ("models/", "layers/", "color/", "losses/")


def _sources(skip: tuple[str, ...]) -> dict[str, str]:
    files = {p.relative_to(SRC).as_posix(): p.read_text() for p in SRC.rglob("*.py")}
    return {name: text for name, text in files.items() if not name.startswith(skip)}


def test_only_the_pipeline_resizes_rasterises_joins_and_quantises():
    patterns = {
        "resizes L for a model": r"antialias=True",
        "rasterises hints": r"\brasterize_hints\(",
        "joins Lab": r"\blab_to_rgb\(|torch\.cat\(\[L,",
        "quantises to 8 bits": r"\*\s*255(\.0)?\s*\+\s*0\.5\)\.astype",
    }
    found = [
        f"{name}: {what}"
        for name, text in _sources(("pipeline/", "io/", *INNER)).items()
        for what, pattern in patterns.items()
        if re.search(pattern, text)
    ]
    assert found == []


def test_capabilities_are_read_from_the_card_only():
    pattern = r"getattr\([^)]*[\"'](uses_hints|gives_confidence|temperature|decode_mode|meta|registry_name)[\"']"
    found = [name for name, text in _sources(("models/card.py",)).items() if re.search(pattern, text)]
    assert found == []


def test_no_module_is_patched_at_run_time():
    found = [name for name, text in _sources(()).items() if re.search(r"(?<![.\w])setattr\(", text)]
    assert found == []
