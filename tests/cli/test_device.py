"""``--device`` takes any torch device string (cpu, cuda, cuda:1, mps, ...), checked before any work with a
one-line error when PyTorch cannot use it here."""

from __future__ import annotations

import os

import pytest
import torch
from typer.testing import CliRunner

from polychrome.cli import app
from polychrome.cli.common import pick_device

runner = CliRunner()


def invoke(*args: str | os.PathLike):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result, *texts: str) -> str:
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    for text in texts:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def photo(tmp_path, make_photo):
    return make_photo(tmp_path / "p.png", 24, 20)


@pytest.fixture
def two_gpus(monkeypatch):
    """PyTorch sees two CUDA devices (nothing is put on them: only the check runs)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize("text", ["banana", "cuda:x", "CPU", ""])
def test_a_string_that_is_no_device_is_one_line(photo, tmp_path, tiny_model_dir, text):
    r = invoke("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model_dir, "--device", text)
    one_line(r, f"--device {text}: not a device PyTorch knows", "cuda:N", "mps")
    assert not (tmp_path / "out").exists()


def test_a_gpu_this_machine_lacks_is_one_line(photo, tmp_path, tiny_model_dir, two_gpus):
    r = invoke("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model_dir, "--device", "cuda:7")
    one_line(r, "--device cuda:7: PyTorch sees 2 CUDA devices here (cuda:0 to cuda:1)")
    assert pick_device("cuda:1") == "cuda:1" and pick_device("cuda") == "cuda" and pick_device("auto") == "cuda"


def test_no_cuda_no_mps_no_meta(photo, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for text, says in (("cuda", "no CUDA device is available"), ("cuda:1", "no CUDA device is available"),
                       ("mps", "Apple's Metal (MPS) is not available"), ("meta", "the meta device holds no data")):  # fmt: skip
        r = invoke("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model_dir, "--device", text)
        one_line(r, f"--device {text}: {says}")
    assert pick_device("auto") == "cpu"


def test_an_accelerator_torch_was_not_built_for_is_one_line(photo, tmp_path, tiny_model_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Torch not compiled with XPU enabled\nmore detail")

    monkeypatch.setattr(torch, "empty", refuse)
    r = invoke("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model_dir, "--device", "xpu:1")
    one_line(r, "--device xpu:1: PyTorch cannot use it here (Torch not compiled with XPU enabled)")


def test_cpu_as_a_string_colourises_and_demo_checks_its_device_too(photo, tmp_path, tiny_model_dir):
    r = invoke("colorize", photo, "-o", tmp_path / "out", "--model", tiny_model_dir, "--device", "cpu")
    assert r.exit_code == 0 and (tmp_path / "out" / "p.png").is_file(), r.output
    r = invoke("demo", tmp_path / "demo", "--model", tiny_model_dir, "--device", "banana")
    one_line(r, "--device banana: not a device PyTorch knows")


def test_a_worker_of_a_launched_run_gets_the_gpu_it_names(tmp_path, monkeypatch, photo, tiny_model_dir, two_gpus):
    """Under torchrun, ``cuda`` is spread over the GPUs by local rank; ``cuda:1`` is that GPU for every worker."""
    import polychrome.cli.archive as archive

    where = []
    monkeypatch.setattr(archive, "load_colorizer", lambda model, device, precision: where.append(device) or 1 / 0)
    from polychrome.pipeline.batch import plan
    from polychrome.pipeline.distributed import World, owner

    out = tmp_path / "out"
    rank = owner(plan([photo], out)[0][0], out, 4)  # the worker that owns the photo loads the model
    for device, local_rank, expect in (("cuda", 3, "cuda:1"), ("cuda:1", 0, "cuda:1"), ("cpu", 1, "cpu")):
        with pytest.raises(ZeroDivisionError):
            archive.colorize_archive([str(photo)], out, str(tiny_model_dir), None, False, None, ("", ""), False,
                                     device, "fp32", None, False, None, World(rank, 4, local_rank, "torchrun"))  # fmt: skip
        assert where[-1] == expect
