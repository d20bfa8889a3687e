"""ONNX export (dynamic height and width), the onnxruntime path through the Colorizer, and static int8.

Tiny randomly initialised models (simple-unet, cicgan-small), exported once per module; each export takes
seconds. The numeric checks run at sizes that are multiples of no stride (200x136 and odd ones) as well as
256x256: a graph traced at a multiple of 32 would never pad and be wrong there.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnxruntime  # noqa: F401  (the test extra installs polychrome[onnx]: missing is a failure, not a skip)
import onnxscript  # noqa: F401
import pytest
import torch
from PIL import Image

from polychrome import create_model, hub
from polychrome.colorizer import Colorizer
from polychrome.deploy import onnx as deploy
from polychrome.models.card import ModelCard


WORK = 64  # the exports' working size: small grids keep each call fast


def _saved(tmp_path_factory, name: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    model = create_model(name, **kwargs).eval()
    card = ModelCard.for_model(model, working_size=WORK)
    folder = hub.save_weights(model, card, tmp_path_factory.mktemp(name))
    return model, card, folder


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """(model, card, safetensors folder, ONNX folder) of a seeded simple-unet."""
    model, card, folder = _saved(tmp_path_factory, "simple-unet")
    out = hub.export_onnx(folder, tmp_path_factory.mktemp("unet-onnx"))
    return model, card, folder, out


@pytest.fixture(scope="module")
def cic(tmp_path_factory):
    """The same for cicgan-small: a classification model with a temperature and a confidence head."""
    model, card, folder = _saved(tmp_path_factory, "cicgan-small")
    out = hub.export_onnx(folder, tmp_path_factory.mktemp("cic-onnx"))
    return model, card, folder, out


@pytest.fixture(scope="module")
def cic_border(tmp_path_factory):
    """The same with the input reflect-padded by 16 px on every side, as the bundled effnet-cic does: two more
    size-dependent branches (the border's reflect, the pad to a multiple of 32 of the bordered grid)."""
    model, card, folder = _saved(tmp_path_factory, "cicgan-small", border=16)
    assert model.border == 16 and card.kwargs == {"border": 16}
    out = hub.export_onnx(folder, tmp_path_factory.mktemp("cic-border-onnx"))
    return model, card, folder, out


@pytest.mark.parametrize("hw", [(136, 200), (256, 256), (97, 131), (32, 48)])
def test_graph_matches_pytorch_at_any_size(unet, hw):
    model, card, _, out = unet
    assert deploy.max_abs_diff(model, card, out / "model.onnx", hw) < 1e-4


@pytest.mark.parametrize("hw", [(136, 200), (256, 256), (75, 33), (255, 257)])
@pytest.mark.parametrize("which", ["cic", "cic_border"])
def test_classification_graph_matches_pytorch(which, hw, request):
    model, card, _, out = request.getfixturevalue(which)
    assert deploy.max_abs_diff(model, card, out / "model.onnx", hw) < 1e-4
    x = torch.rand(1, 1, *hw) * 2 - 1
    with torch.no_grad():
        ref = model(x, return_all=True, **card.decoding())
    got = deploy.OnnxModel(out / "model.onnx", card)(x, return_all=True, **card.decoding())
    assert got.confidence.shape == ref.confidence.shape
    assert (got.confidence - ref.confidence).abs().max() < 1e-3  # logits


@pytest.mark.parametrize("hw", [(12, 20), (31, 9), (40, 24)])
def test_small_grid_confidence_is_cropped_to_the_photo(cic_border, hw):
    # A side under 32 px is padded before the graph; the confidence map is cropped to the photo's own part.
    model, card, _, out = cic_border
    x = torch.rand(1, 1, *hw) * 2 - 1
    with torch.no_grad():
        ref = model(x, return_all=True, **card.decoding())
    got = deploy.OnnxModel(out / "model.onnx", card)(x, return_all=True, **card.decoding())
    assert got.ab_net.shape == ref.ab_net.shape and got.confidence.shape == ref.confidence.shape


def test_batch_is_dynamic_too(unet):
    model, card, _, out = unet
    x = torch.rand(3, 1, 40, 56) * 2 - 1
    got = deploy.OnnxModel(out / "model.onnx", card)(x)
    with torch.no_grad():
        assert (got - model(x)).abs().max() < 1e-4


def test_card_written_beside_the_graph(unet, cic):
    meta = json.loads((unet[3] / "config.json").read_text())
    assert meta["model"] == "simple-unet" and meta["infer_size"] == WORK and meta["format"] == "onnx"
    assert meta["onnx"]["inputs"] == ["L_net"] and meta["onnx"]["precision"] == "fp32"
    assert "temperature_baked" not in meta["onnx"]
    meta = json.loads((cic[3] / "config.json").read_text())
    assert meta["gives_confidence"] and meta["onnx"]["outputs"] == ["ab_net", "confidence"]
    assert meta["onnx"]["temperature_baked"] == pytest.approx(cic[1].temperature) == meta["temperature"]


def _photo(seed=0, w=200, h=136):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    grey = 0.5 + 0.3 * np.sin(x / 17.0) * np.cos(y / 11.0) + 0.05 * rng.standard_normal((h, w))
    return Image.fromarray((np.clip(grey, 0, 1) * 255).astype(np.uint8), "L")


@pytest.mark.parametrize("how", ["folder", "file"])
def test_colorizer_runs_the_graph_on_the_same_path(unet, how):
    _, _, folder, out = unet
    spec = out if how == "folder" else out / "model.onnx"
    onnx_c, torch_c = Colorizer.from_pretrained(spec), Colorizer.from_pretrained(folder)
    assert isinstance(onnx_c.model, deploy.OnnxModel) and onnx_c.card.working_size == WORK
    img = _photo()
    a = np.asarray(onnx_c(img).image, dtype=np.int16)
    b = np.asarray(torch_c(img).image, dtype=np.int16)
    assert a.shape == b.shape == (136, 200, 3)
    assert np.abs(a - b).max() <= 1


def test_classification_graph_through_the_colorizer(cic):
    _, _, folder, out = cic
    onnx_c, torch_c = Colorizer.from_pretrained(out), Colorizer.from_pretrained(folder)
    assert onnx_c.card.decodes and onnx_c.card.gives_confidence
    img = _photo(1, 90, 61)  # odd working grid: the half-resolution confidence grid is cropped alike
    r_onnx, r_torch = onnx_c(img, confidence=True), torch_c(img, confidence=True)
    assert np.abs(np.asarray(r_onnx.image, np.int16) - np.asarray(r_torch.image, np.int16)).max() <= 1
    assert np.abs(r_onnx.confidence - r_torch.confidence).max() < 1e-4
    same = onnx_c(img, temperature=onnx_c.card.temperature)  # the baked temperature, asked for: fine
    assert np.array_equal(np.asarray(same.image), np.asarray(r_onnx.image))
    with pytest.raises(ValueError, match="baked in"):
        onnx_c(img, temperature=0.1)
    with pytest.raises(ValueError, match="baked in"):  # checked before any work, as front ends do
        onnx_c.decoding(0.1)


def test_bf16_and_gpu_are_refused_in_one_line(unet):
    with pytest.raises(ValueError, match="fp32"):
        Colorizer.from_pretrained(unet[3], precision="bf16")
    with pytest.raises(hub.ModelLoadError, match="CPU"):
        hub.load(unet[3], device="meta")


def test_corrupt_graph_and_missing_card_are_one_line_errors(tmp_path, unet):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"this is not a protobuf")
    (bad / "config.json").write_text((unet[3] / "config.json").read_text())
    with pytest.raises(hub.ModelLoadError) as e:
        hub.load(bad)
    assert "not a usable ONNX graph" in str(e.value) and "\n" not in str(e.value)
    lone = tmp_path / "lone.onnx"
    lone.write_bytes((unet[3] / "model.onnx").read_bytes())
    with pytest.raises(hub.ModelLoadError, match="metadata file not found"):
        hub.load(lone)
    with pytest.raises(hub.ModelLoadError, match="not found"):
        hub.load(tmp_path / "missing.onnx")


def test_graph_of_another_model_is_refused(tmp_path, unet, cic):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "model.onnx").write_bytes((unet[3] / "model.onnx").read_bytes())
    (mixed / "config.json").write_text((cic[3] / "config.json").read_text())  # card says: confidence output
    with pytest.raises(hub.ModelLoadError, match="do not fit its card"):
        hub.load(mixed)


def test_exporting_a_graph_again_is_refused(unet, tmp_path):
    with pytest.raises(hub.ModelLoadError, match="already an ONNX graph"):
        hub.export_onnx(unet[3], tmp_path / "again")


# --------------------------------------------------------------------------- int8
@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    for i in range(8):
        _photo(10 + i, 80 + 7 * i, 60 + 5 * i).save(root / f"p{i}.png")  # various sizes and aspects
    return root


def test_int8_needs_calibration():
    # Library words (the CLI says --calibration): checked before anything is loaded.
    with pytest.raises(hub.ModelLoadError, match="^int8 quantisation needs calibration photos: give calibration="):
        hub.export_onnx("whatever-not-loaded", "/nonexistent", int8=True)


def test_int8_runs_and_stays_close_to_fp32(unet, calibration, tmp_path):
    model, card, folder, fp32 = unet
    out = hub.export_onnx(folder, tmp_path / "int8", int8=True, calibration=calibration, calibration_photos=6)
    meta = json.loads((out / "config.json").read_text())
    assert meta["onnx"]["precision"] == "int8" and meta["onnx"]["calibration_photos"] == 6
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = torch.nn.functional.interpolate(torch.rand(1, 1, 17, 25) * 2 - 1, size=(68, 100), mode="bilinear")
    with torch.no_grad():
        ref = model(x)
    got = deploy.OnnxModel(out / "model.onnx", card)(x)
    assert got.shape == ref.shape and torch.isfinite(got).all()
    err = (got - ref).abs()
    assert err.mean() < 0.05 and err.max() < 0.3  # network units: ab/110; int8 is close, not exact
    c = Colorizer.from_pretrained(out)
    assert c(_photo()).image.size == (200, 136)


def test_calibration_folder_errors(tmp_path):
    with pytest.raises(deploy.OnnxError, match="nope: not a folder of calibration photos"):
        deploy.calibration_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(deploy.OnnxError, match="empty: no calibration photos"):
        deploy.calibration_files(tmp_path / "empty")


@pytest.mark.slow
def test_hint_model_graph_takes_hints(tmp_path_factory):
    """A hint model (icolorit-tiny, a Vision Transformer; ~30 s to export) exports with its hint inputs, and
    the Colorizer paints hints onto the working grid for the graph as it does for PyTorch."""
    from polychrome.color.hints import Hint

    model, card, folder = _saved(tmp_path_factory, "icolorit-tiny")
    out = hub.export_onnx(folder, tmp_path_factory.mktemp("hints-onnx"))
    assert json.loads((out / "config.json").read_text())["onnx"]["inputs"] == ["L_net", "hint_ab_net", "hint_mask"]
    assert deploy.max_abs_diff(model, card, out / "model.onnx", (136, 200)) < 1e-4
    onnx_c, torch_c = Colorizer.from_pretrained(out), Colorizer.from_pretrained(folder)
    assert onnx_c.card.takes_hints
    img, hints = _photo(2), [Hint(120, 45, "#aa3322"), Hint(30, 100, "#22aa33")]
    a = np.asarray(onnx_c(img, hints=hints).image, np.int16)
    b = np.asarray(torch_c(img, hints=hints).image, np.int16)
    assert np.abs(a - b).max() <= 1
    assert not np.array_equal(a, np.asarray(onnx_c(img).image, np.int16))  # the hints change the colours


def test_missing_runtime_is_one_line(unet, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(hub.ModelLoadError, match=r"polychrome\[onnx\]"):
        hub.load(unet[3])


def _dequantized_inputs(path) -> dict[str, bool]:
    """Per node name of the graph at ``path``: whether any of its inputs comes out of a DequantizeLinear."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    return {n.name: any(producer.get(i) == "DequantizeLinear" for i in n.input) for n in graph.node}


def test_tail_nodes_are_the_decode_after_the_last_convolution(cic_border):
    import onnx

    path = cic_border[3] / "model.onnx"
    nodes = onnx.load(str(path)).graph.node
    tail = deploy.tail_nodes(path)
    ops = {n.op_type for n in nodes if n.name in tail}
    assert {"Softmax", "Einsum", "Tanh", "Resize"} <= ops and "Conv" not in ops  # bin decode, residual, upsampling
    last_conv = max(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    assert all(i > last_conv for i, n in enumerate(nodes) if n.name in tail)
    outputs = {o for n in nodes if n.name in tail for o in n.output}
    assert {"ab_net", "confidence"} <= outputs


@pytest.mark.parametrize("fp32_tail", [True, False])
def test_int8_keeps_the_decode_in_fp32_by_default(cic_border, calibration, tmp_path, fp32_tail):
    model, card, folder, _ = cic_border
    kw = {} if fp32_tail else {"fp32_tail": False}
    out = hub.export_onnx(folder, tmp_path / "int8", int8=True, calibration=calibration, calibration_photos=4, **kw)
    graph = out / "model.onnx"
    dq = _dequantized_inputs(graph)
    import onnx

    nodes = onnx.load(str(graph)).graph.node
    softmax = [n.name for n in nodes if n.op_type == "Softmax"][-1]  # the bin softmax (the last one)
    assert dq[softmax] is not fp32_tail
    assert sum(dq[n.name] for n in nodes if n.op_type == "Conv") >= 10  # the body is int8 either way
    meta = json.loads((out / "config.json").read_text())
    assert ("decode after the last convolution in fp32" in meta["onnx"]["quantization"]) is fp32_tail
    x = torch.rand(1, 1, 70, 90) * 2 - 1
    got = deploy.OnnxModel(graph, card)(x, return_all=True, **card.decoding())
    with torch.no_grad():
        ref = model(x, return_all=True, **card.decoding())
    assert got.ab_net.shape == ref.ab_net.shape and torch.isfinite(got.ab_net).all()


def test_bench_compares_several_int8_graphs(unet, tmp_path, capsys):
    import shutil

    from polychrome.deploy import bench

    _, _, folder, out = unet
    second = shutil.copytree(out, tmp_path / "other")  # any two graphs: the rows are what is checked
    bench.main(["--model", str(folder), "--onnx", str(out), "--int8", str(out), "--int8", str(second),
                "--size", "48", "--repeats", "1", "--warmup", "0", "--json", str(tmp_path / "b.json")])
    printed = capsys.readouterr().out
    assert f"onnx int8 {out}" in printed and f"onnx int8 {second}" in printed
    res = json.loads((tmp_path / "b.json").read_text())["results"]
    assert set(res) == {"pytorch fp32", "pytorch bf16", "onnx fp32", f"onnx int8 {out}", f"onnx int8 {second}"}


def test_flip_average_carries_into_the_graph_export(cic, tmp_path):
    """An ONNX export of a flip-averaging card keeps it, and the Colorizer runs the graph on the mirror too."""
    _, _, folder, _ = cic
    out = hub.export_onnx(folder, tmp_path / "flip", flip_average=True)
    onnx_c = Colorizer.from_pretrained(out)
    assert onnx_c.card.flip_average
    torch_c = Colorizer.from_pretrained(folder)
    flip_c = Colorizer(torch_c.model, replace(torch_c.card, flip_average=True))
    img = _photo(2, 90, 61)
    r_onnx, r_flip, r_once = onnx_c(img, confidence=True), flip_c(img, confidence=True), torch_c(img, confidence=True)
    assert np.abs(np.asarray(r_onnx.image, np.int16) - np.asarray(r_flip.image, np.int16)).max() <= 1
    assert np.abs(r_onnx.confidence - r_flip.confidence).max() < 1e-4
    assert np.abs(np.asarray(r_once.image, np.int16) - np.asarray(r_flip.image, np.int16)).max() > 1


def test_guided_filter_carries_into_the_graph_export_and_off_drops_it(cic, tmp_path):
    """An ONNX export given a guided filter records it and the Colorizer filters the graph's colours the same
    way as the PyTorch model's; guided_filter=False drops a card's filter, None keeps it."""
    from polychrome.models.card import GuidedFilter

    _, _, folder, _ = cic
    gf = GuidedFilter(2, 50.0)
    out = hub.export_onnx(folder, tmp_path / "gf", guided_filter=gf)
    onnx_c = Colorizer.from_pretrained(out)
    assert onnx_c.card.guided_filter == gf
    torch_c = Colorizer.from_pretrained(folder)
    gf_c = Colorizer(torch_c.model, replace(torch_c.card, guided_filter=gf))
    img = _photo(3, 90, 61)
    r_onnx, r_gf, r_plain = onnx_c(img), gf_c(img), torch_c(img)
    assert np.abs(np.asarray(r_onnx.image, np.int16) - np.asarray(r_gf.image, np.int16)).max() <= 1
    assert np.abs(np.asarray(r_plain.image, np.int16) - np.asarray(r_gf.image, np.int16)).max() > 1
    assert hub.card_with_inference(onnx_c.card, None, None, False).guided_filter is None  # --guided-filter off
    assert hub.card_with_inference(onnx_c.card, None, None, None).guided_filter == gf  # not given: kept
