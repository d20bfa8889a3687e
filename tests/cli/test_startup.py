"""Start-up: the command line answers --help and --version without loading PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polychrome

SRC = str(Path(polychrome.__file__).resolve().parents[1])


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


HEAVY = ("torch", "kornia", "numpy", "PIL")


def test_importing_the_cli_loads_no_torch():
    proc = _run(f"import sys, json, polychrome.cli; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_help_and_version_load_no_torch():
    code = (
        "import sys, json\n"
        "from polychrome.cli import main\n"
        "for args in (['--help'], ['--version'], ['colorize', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (args, e.code)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert f"polychrome {polychrome.__version__}" in proc.stdout
    assert "colorize" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_public_names_still_import_on_demand():
    proc = _run("import polychrome; print(polychrome.Colorizer.__name__, polychrome.colorize.__name__, "
                "polychrome.create_model.__name__, polychrome.load_model.__name__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Colorizer", "colorize", "create_model", "load_model"]
