"""ONNX export of a trained colouriser, static int8 quantisation, and running the graph with onnxruntime.

An export folder holds ``model.onnx`` and ``config.json`` (the model card, as beside safetensors, plus an
``"onnx"`` entry saying how the graph was made). The graph maps L in network units to ab in network units,
exactly the model's ``forward``:

    inputs  L_net (B, 1, h, w) float32 in [-1, 1]   [hint_ab_net (B, 2, h, w), hint_mask (B, 1, h, w): hint models]
    outputs ab_net (B, 2, h, w) float32 in (-1, 1)  [confidence (B, 1, h', w') logits: models that give one]

with the batch, height and width dynamic. A classification model (``effnet-cic``, ``cicgan``) decodes its bin
probabilities inside the graph, so its default temperature is baked in: the card records it
(``onnx.temperature_baked``), and a call asking for another temperature is an error naming it.

Why the dynamo exporter (``torch.onnx.export(..., dynamo=True)``): it traces with symbolic sizes, so the
pad-to-a-multiple-of-32 amounts and the crops stay expressions of the input size. The models decide whether
to pad with a Python ``if`` on the size; the branch taken for the example input is the one recorded, so the
example deliberately has odd sides (:data:`EXAMPLE_HW`), a multiple of no stride: the recorded graph always pads, by an
amount that is 0 at a multiple of 32, which is right at every size. (Traced at a multiple of 32 the graph
never pads and is silently wrong elsewhere.) Reflect padding needs the padding to be smaller than the side,
which holds for sides of 32 px and more; :class:`OnnxModel` pads a smaller working grid itself (close to
PyTorch there, not identical).

:class:`OnnxModel` is an ``nn.Module`` holding an onnxruntime session, so a
:class:`~polychrome.colorizer.Colorizer` runs it on its one path (resize L, model, upsample ab, join L) with
nothing else changed: the pipeline calls ``model(L_net, *hint_planes, **decoding)`` as for a PyTorch model.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polychrome.models.card import ModelCard

#: File name of the graph in an export folder.
ONNX_FILE = "model.onnx"
#: ONNX opset the graphs are written in (per-channel QDQ quantisation needs 13 or later).
OPSET = 18
#: (h, w) of the example input the exporter traces: odd, so neither side is a multiple of any stride (see the
#: module docstring).
EXAMPLE_HW = (75, 107)
#: Smallest working-grid side the graph takes as is (reflect padding to a multiple of 32 needs it).
MIN_SIDE = 32
#: Calibration photos read by default for int8.
CALIBRATION_PHOTOS = 32
#: Activation ranges for int8: this percentile of |activation| over the calibration photos. Mean |ab
#: difference| from the fp32 graph on 20 BSDS500 val photos (docs/issue-15/calibration_sweep.py; README,
#: "Deploy: ONNX and int8"), effnet-cic: min-max 1.12, percentile 99.99 0.97, 99.9 1.04, 99.5 1.70.
CALIBRATION_PERCENTILE = 99.9


class OnnxError(Exception):
    """An ONNX export, quantisation or graph that cannot be used; the message says which and why."""


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxError(f"ONNX support needs the {module} package: pip install 'polychrome[onnx]'") from None


# --------------------------------------------------------------------------- export
class _Exportable(nn.Module):
    """The model's forward with its decoding defaults fixed and plain tensor outputs, as the graph records it."""

    def __init__(self, model: nn.Module, card: ModelCard):
        super().__init__()
        self.model = model
        self.decoding = card.decoding()  # {} for a regressor; the default temperature for a classifier
        self.confidence = card.gives_confidence

    def forward(self, L_net: torch.Tensor, hint_ab_net: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None):
        hints = () if hint_ab_net is None else (hint_ab_net, hint_mask)
        if self.confidence:
            out = self.model(L_net, *hints, return_all=True, **self.decoding)
            return out.ab_net.float(), out.confidence.float()
        return self.model(L_net, *hints, **self.decoding).float()


def input_names(card: ModelCard) -> list[str]:
    return ["L_net", "hint_ab_net", "hint_mask"] if card.takes_hints else ["L_net"]


def output_names(card: ModelCard) -> list[str]:
    return ["ab_net", "confidence"] if card.gives_confidence else ["ab_net"]


def export_onnx(
    model: nn.Module,
    card: ModelCard,
    out_dir: str | os.PathLike,
    int8: bool = False,
    calibration: str | os.PathLike | None = None,
    calibration_photos: int = CALIBRATION_PHOTOS,
    fp32_tail: bool = True,
) -> Path:
    """Write ``out_dir/model.onnx`` (dynamic batch, height and width) and ``out_dir/config.json`` (the card).

    Args:
        model: the trained model (eval mode, CPU, fp32).
        card: its card; a classification model's default temperature is baked into the graph.
        int8: quantise statically (QDQ, int8 weights per output channel, uint8 activations) with photos from
            ``calibration`` (a folder, searched recursively; the first ``calibration_photos`` in name order).
        fp32_tail: with ``int8``, keep the decode after the last convolution in fp32 (:func:`tail_nodes`);
            False quantises the whole graph.
    Raises:
        OnnxError: int8 without calibration photos, an export or quantisation failure (one line).
    """
    if int8 and calibration is None:
        raise OnnxError("int8 quantisation needs calibration photos: give calibration=FOLDER")
    photos = calibration_files(calibration, calibration_photos) if int8 else []  # before the export's minutes
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().eval().cpu()
    wrapper = _Exportable(model, card).eval()
    h, w = EXAMPLE_HW
    example = [torch.zeros(1, 1, h, w)] + ([torch.zeros(1, 2, h, w), torch.zeros(1, 1, h, w)] if card.takes_hints else [])
    names = input_names(card)
    dynamic = torch.export.Dim.DYNAMIC
    dynamic_shapes = {name: {0: dynamic, 2: dynamic, 3: dynamic} for name in names}  # batch, height, width
    for needed in ("onnx", "onnxscript") + (("onnxruntime",) if int8 else ()):
        _require(needed)  # a missing package is its own one-line error, not an export failure
    with tempfile.TemporaryDirectory(prefix="polychrome-onnx-") as tmp:
        fp32 = Path(tmp) / ONNX_FILE
        try:
            _export_quietly(wrapper, tuple(example), fp32, names, output_names(card), dynamic_shapes)
        except Exception as e:  # the exporter's failures are long; one line names the model
            raise OnnxError(f"cannot export {card.architecture} to ONNX ({_first_line(e)})") from None
        about: dict = {"opset": OPSET, "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
                       "inputs": names, "outputs": output_names(card), "precision": "fp32"}
        if card.decodes:
            about["temperature_baked"] = card.temperature
            about["decode_mode_baked"] = card.decode_mode
        if int8:
            quantize_int8(fp32, out / ONNX_FILE, CalibrationReader(photos, card), fp32_tail=fp32_tail)
            about.update(precision="int8", quantization="static QDQ, weights int8 per output channel, activations "
                         f"uint8 (percentile {CALIBRATION_PERCENTILE} calibration)"
                         + ("; the decode after the last convolution in fp32" if fp32_tail else ""),
                         calibration=str(calibration), calibration_photos=len(photos))
        else:
            shutil.move(fp32, out / ONNX_FILE)
    os.chmod(out / ONNX_FILE, _file_mode())
    meta = card.to_json()
    meta.update(format="onnx", onnx=about)
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    return out


def _export_quietly(module, args, path, names, outputs, dynamic_shapes) -> None:
    """torch.onnx.export with the dynamo exporter, its progress chatter kept off the terminal."""
    import warnings

    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        level = logging.getLogger("torch").level
        logging.getLogger("torch").setLevel(logging.ERROR)
        try:
            torch.onnx.export(module, args, str(path), dynamo=True, input_names=names, output_names=outputs,
                              dynamic_shapes=dynamic_shapes, opset_version=OPSET, external_data=False,
                              verbose=False, report=False)
        finally:
            logging.getLogger("torch").setLevel(level)


def _file_mode() -> int:
    from polychrome.io import default_file_mode

    return default_file_mode()


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------- int8
def calibration_files(folder: str | os.PathLike, limit: int = CALIBRATION_PHOTOS) -> list[Path]:
    """The first ``limit`` photos (name order) under ``folder``; OnnxError if there are none."""
    from polychrome.io import find_images

    root = Path(folder)
    if not root.is_dir():
        raise OnnxError(f"{root}: not a folder of calibration photos")
    photos = sorted(find_images(root))[: max(1, int(limit))]
    if not photos:
        raise OnnxError(f"{root}: no calibration photos in it")
    return photos


class CalibrationReader:
    """onnxruntime's ``CalibrationDataReader`` over photos, one per batch: each photo's grey L, its centre
    square resized (the pipeline's own resize) to one grid of side ``min(working size, the smallest photo's
    shorter side)`` (the percentile calibrator needs one shape; never upscaled, as the pipeline never
    upscales), in network units. A hint model sees empty hint planes (automatic colourisation)."""

    def __init__(self, photos: list[Path], card: ModelCard):
        from PIL import Image

        self.photos = list(photos)
        self.card = card
        with_sides = []
        for p in self.photos:
            with Image.open(p) as im:
                with_sides.append(min(im.size))
        self.side = max(1, min([card.working_size, *with_sides]))
        self._it = iter(self.photos)

    def get_next(self) -> dict | None:
        from polychrome.color.lab import l_to_net
        from polychrome.io import load_rgb
        from polychrome.pipeline.core import lightness, resize_l

        path = next(self._it, None)
        if path is None:
            return None
        L = lightness(load_rgb(path))  # (1, 1, H, W)
        H, W = L.shape[-2:]
        n = min(H, W)
        top, left = (H - n) // 2, (W - n) // 2
        L = _pad_small(resize_l(L[..., top : top + n, left : left + n], (self.side, self.side)))
        feeds = {"L_net": l_to_net(L).numpy()}
        if self.card.takes_hints:
            h, w = L.shape[-2:]
            feeds.update(hint_ab_net=np.zeros((1, 2, h, w), np.float32), hint_mask=np.zeros((1, 1, h, w), np.float32))
        return feeds

    def rewind(self) -> None:
        self._it = iter(self.photos)


def tail_nodes(path: str | os.PathLike) -> list[str]:
    """Names of the nodes of the graph at ``path`` that compute from its last convolution's output on: the
    decode (a classification model's bin softmax, annealed mean, residual, upsampling and crops; a
    regressor's output activation and crop). Empty for a graph without convolutions."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    if not convs:
        return []
    reached = set(convs[-1].output)
    names = []
    for node in graph.node:  # topologically sorted: a node comes after the nodes it reads
        if reached.intersection(node.input):
            reached.update(node.output)
            names.append(node.name)
    return names


def quantize_int8(fp32_path: Path, out_path: Path, reader: CalibrationReader, fp32_tail: bool = True) -> None:
    """Static int8 quantisation of the fp32 graph (QDQ format, per-channel int8 weights, uint8 activations with
    ranges from the :data:`CALIBRATION_PERCENTILE` percentile over ``reader``: min-max ranges let a few
    outliers stretch them), after onnxruntime's pre-processing (shape inference, graph optimisation), written
    to ``out_path``. Batch norms are already folded into the convolutions by the exporter.

    ``fp32_tail``: leave the :func:`tail_nodes` unquantised, so a classification model's logits, bin
    probabilities and decoded ab are not rounded to 8 bits (one uint8 scale shared by every head channel,
    probabilities in steps of 1/255). On effnet-cic that moved the colours less from the fp32 graph and
    was faster, the quantise/dequantise pairs around the decode costing more than they saved (README,
    "Deploy: ONNX and int8")."""
    q = _require("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="polychrome-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantise the graph as exported if it fails
            pre = fp32_path
        exclude = tail_nodes(pre) if fp32_tail else []
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs a warning per batch-norm weight the exporter folded away
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
                q.quantize_static(
                    str(pre), str(out_path), reader, quant_format=q.QuantFormat.QDQ, per_channel=True,
                    activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                    calibrate_method=q.CalibrationMethod.Percentile, nodes_to_exclude=exclude,
                    extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
                )
        except Exception as e:
            raise OnnxError(f"int8 quantisation failed ({_first_line(e)})") from None
        finally:
            root.setLevel(level)


# --------------------------------------------------------------------------- runtime
def _pad_small(x: torch.Tensor) -> torch.Tensor:
    """A (B, C, h, w) grid with a side under :data:`MIN_SIDE` padded at the bottom/right to a multiple of it,
    as the stride-32 models pad their own input (:func:`polychrome.layers.pad_to_multiple`), since the graph,
    traced with reflect padding, cannot pad a side by more than its length. Results on such tiny grids are
    close to PyTorch's, not identical (the graph sees an already padded input)."""
    from polychrome.layers import pad_to_multiple

    if min(x.shape[-2:]) >= MIN_SIDE:
        return x
    return pad_to_multiple(x, MIN_SIDE)


class OnnxModel(nn.Module):
    """An exported graph run by onnxruntime, called like the PyTorch model it came from:
    ``forward(L_net, [hint_ab_net, hint_mask], return_all=False, temperature=None, decode_mode=None)``.

    A classification graph has its temperature baked in: ``temperature`` / ``decode_mode`` equal to the baked
    ones (the card's defaults, which the Colorizer passes) are accepted, any other is a ValueError.
    It has no parameters and runs on the CPU (onnxruntime's CPU execution provider).
    """

    def __init__(self, path: str | os.PathLike, card: ModelCard, threads: int | None = None):
        super().__init__()
        ort = _require("onnxruntime")
        self.path = Path(path)
        self.card = card
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads is None:
            threads = torch.get_num_threads()  # the same budget as torch (OMP_NUM_THREADS, set_num_threads)
        opts.intra_op_num_threads = max(1, int(threads))
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise OnnxError(f"{self.path}: not a usable ONNX graph ({_first_line(e)})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        if self.inputs != input_names(card) or self.outputs[:1] != ["ab_net"] or (
            card.gives_confidence and "confidence" not in self.outputs
        ):
            raise OnnxError(
                f"{self.path}: the graph's inputs {self.inputs} / outputs {self.outputs} do not fit its card "
                f"({card.architecture}: expected {input_names(card)} / {output_names(card)})"
            )

    def extra_repr(self) -> str:
        return f"{self.path.name}, inputs={self.inputs}, outputs={self.outputs}"

    def check_decoding(self, temperature: float | None = None, decode_mode: str | None = None) -> None:
        """ValueError unless these decoding settings are the graph's own (None: the graph's)."""
        if temperature is None and decode_mode is None:
            return
        if not self.card.decodes:
            raise ValueError(f"model {self.card.architecture} has no decoding temperature")
        if (temperature is not None and abs(float(temperature) - self.card.temperature) > 1e-9) or (
            decode_mode is not None and decode_mode != self.card.decode_mode
        ):
            raise ValueError(
                f"this ONNX export of {self.card.architecture} has temperature {self.card.temperature:g} "
                f"({self.card.decode_mode}) baked in; export again from the PyTorch weights for another"
            )

    def forward(self, L_net: torch.Tensor, *hints: torch.Tensor, return_all: bool = False,
                temperature: float | None = None, decode_mode: str | None = None):
        self.check_decoding(temperature, decode_mode)
        if return_all and not self.card.gives_confidence:
            raise ValueError(f"model {self.card.architecture} predicts no confidence map")
        h, w = L_net.shape[-2:]
        tensors = [_pad_small(t.float()) for t in (L_net, *hints)]
        feeds = {name: np.ascontiguousarray(t.detach().cpu().numpy()) for name, t in zip(self.inputs, tensors)}
        outs = self.session.run(None, feeds)
        ab_net = torch.from_numpy(outs[0])[..., :h, :w]
        if not return_all:
            return ab_net
        conf = torch.from_numpy(outs[self.outputs.index("confidence")])
        # The confidence grid covers the graph's input (padded where small) at its own stride (2 for cicgan):
        # keep the part over the photo, ceil(h * ch / hp) rows, as the model's own crop does.
        (hp, wp), (ch, cw) = tensors[0].shape[-2:], conf.shape[-2:]
        hc, wc = -(-h * ch // hp), -(-w * cw // wp)
        return SimpleNamespace(ab_net=ab_net, confidence=conf[..., :hc, :wc])


def load_onnx(path: str | os.PathLike, card: ModelCard) -> OnnxModel:
    """The graph at ``path`` as an :class:`OnnxModel` for ``card`` (OnnxError for a corrupt file)."""
    return OnnxModel(path, card)


# --------------------------------------------------------------------------- numerical check
@torch.no_grad()
def max_abs_diff(model: nn.Module, card: ModelCard, onnx_path: str | os.PathLike, hw: tuple[int, int],
                 seed: int = 0) -> float:
    """Largest |ab_net difference| between ``model`` (PyTorch, fp32) and the graph at ``onnx_path`` on a random
    smooth L of size ``hw`` (network units; hint models: no hints)."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(1, 1, max(2, hw[0] // 8), max(2, hw[1] // 8), generator=g) * 2 - 1, size=hw,
                      mode="bilinear", align_corners=False)
    extra = (torch.zeros(1, 2, *hw), torch.zeros(1, 1, *hw)) if card.takes_hints else ()
    ref = model.eval()(x, *extra, **card.decoding())
    got = OnnxModel(onnx_path, card)(x, *extra, **card.decoding())
    return float((ref.float() - got).abs().max())
