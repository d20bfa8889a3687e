"""The speed benchmark's memory figure is its worker's own peak, not one inherited from its parent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import polychrome

SRC = str(Path(polychrome.__file__).resolve().parents[1])


def test_a_workers_peak_is_not_its_parents():
    big = np.ones(400 * 2**20, dtype=np.uint8)  # the parent's peak: 400 MiB more than the child ever holds
    big[::4096] = 2
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "from polychrome.diagnostics.speed import _peak_rss_mib; print(_peak_rss_mib())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip()) < 300, "the worker reported its parent's peak memory"
    del big
