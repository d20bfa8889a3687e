"""Loading trained colourisers: bundled names, exported weight folders/files, training checkpoints.

Release weights are a ``model.safetensors`` plus a ``config.json`` (or ``NAME.safetensors`` +
``NAME.json`` side by side). The JSON is the model card (:mod:`polychrome.models.card`). Loading is
strict: a missing or unexpected key is an error.
Training checkpoints (``.pt``) are read through their schema, :mod:`polychrome.train.checkpoint`
(``torch.load(weights_only=True)`` only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from polychrome.io import default_file_mode
from polychrome.models import create_model
from polychrome.models.card import CardError, GuidedFilter, ModelCard
from polychrome.train.checkpoint import CHECKPOINT_SUFFIXES, checkpoint_card, ema_to_model_state, read_checkpoint
#: An ONNX graph (``polychrome export --format onnx``), run with onnxruntime.
ONNX_SUFFIX = ".onnx"


class ModelLoadError(Exception):
    """A model name or weight file could not be loaded; the message says which and why."""


def _one_line(e: Exception, limit: int = 500) -> str:
    """An exception's message on one line. ``load_state_dict`` names the missing, unexpected and mis-shaped
    keys on the lines after its first, so keeping only the first line would hide what is wrong."""
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _weights_root() -> Path:
    return Path(str(resources.files("polychrome") / "weights"))


def bundled_names() -> list[str]:
    """Names of the weight sets shipped inside the package (``polychrome/weights/NAME.safetensors``)."""
    root = resources.files("polychrome") / "weights"
    return sorted(p.name[: -len(".safetensors")] for p in root.iterdir() if p.name.endswith(".safetensors"))


@dataclass(frozen=True)
class WeightSource:
    """Where a model's weights come from, told apart without looking at the filesystem first:

    * ``"bundled"``: a bare name (no path separator, no weight-file suffix), e.g. ``"hints"``: always the
      weights shipped in the package, whatever folders the working directory holds;
    * ``"folder"``: an export folder (``model.safetensors`` + ``config.json``);
    * ``"safetensors"``: a ``.safetensors`` file with ``NAME.json`` (or ``config.json``) beside it;
    * ``"checkpoint"``: a training checkpoint (``.pt``, ``.pth``, ``.ckpt``; its EMA weights);
    * ``"onnx"``: an ONNX graph, a ``.onnx`` file with ``NAME.json`` (or ``config.json``) beside it, or an
      ONNX export folder (``model.onnx`` + ``config.json``, no ``model.safetensors``); run by onnxruntime.

    Anything given as a ``Path``, or a string with a path separator or a weight-file suffix, is a path; to
    load a folder whose name has neither, write it as ``./NAME``.
    """

    kind: str
    path: Path  # the weight file, folder or checkpoint
    name: str  # what was asked for, as given

    @classmethod
    def parse(cls, spec: str | os.PathLike) -> WeightSource:
        """Tell what ``spec`` names (see the class docstring). Raises :class:`ModelLoadError` naming what was
        looked for and how to ask for the other kind."""
        text = os.fspath(spec)
        is_path = isinstance(spec, os.PathLike) or "/" in text or os.sep in text or text in (".", "..") or (
            Path(text).suffix in (".safetensors", ONNX_SUFFIX, *CHECKPOINT_SUFFIXES)
        )
        if not is_path:
            if text in bundled_names():
                return cls("bundled", _weights_root() / f"{text}.safetensors", text)
            from polychrome.models import list_models

            why = ""
            if text in list_models():
                why = f"; {text!r} is an architecture without trained weights (use create_model for a random one)"
            elif Path(text).exists():
                why = f"; to load the folder or file {text!r} in the working directory, give it as a path: ./{text}"
            raise ModelLoadError(
                f"{text}: not a bundled model ({', '.join(bundled_names()) or 'none'}), and not a path "
                f"(a path names a folder, a .safetensors or .onnx file or a checkpoint){why}"
            )
        p = Path(text)
        if p.suffix in CHECKPOINT_SUFFIXES:
            if not p.is_file():
                raise ModelLoadError(f"{p}: checkpoint file not found")
            return cls("checkpoint", p, text)
        if p.suffix == ".safetensors":
            if not p.is_file():
                raise ModelLoadError(f"{p}: weight file not found")
            return cls("safetensors", p, text)
        if p.suffix == ONNX_SUFFIX:
            if not p.is_file():
                raise ModelLoadError(f"{p}: ONNX file not found")
            return cls("onnx", p, text)
        if p.is_dir():
            if (p / "model.onnx").is_file() and not (p / "model.safetensors").exists():
                return cls("onnx", p / "model.onnx", text)
            return cls("folder", p, text)
        raise ModelLoadError(
            f"{p}: {'not a folder' if p.exists() else 'no such folder'} (a weight path is an export folder, a "
            f".safetensors file or a checkpoint {'/'.join(CHECKPOINT_SUFFIXES)}){_bundled_hint(p)}"
        )

    def other_kind(self) -> str:
        """For an error about a path: how to ask for the bundled model of the same name, if there is one."""
        return "" if self.kind == "bundled" else _bundled_hint(self.path)

    def files(self) -> tuple[Path, Path]:
        """(weights, json) of a bundled name, folder, .safetensors or .onnx source."""
        if self.kind == "bundled":
            return self.path, self.path.with_suffix(".json")
        if self.kind == "folder":
            return self.path / "model.safetensors", self.path / "config.json"
        side = self.path.with_suffix(".json")
        return self.path, side if side.exists() else self.path.parent / "config.json"


def _bundled_hint(path: Path) -> str:
    name = path.stem if path.suffix == ".safetensors" else path.name
    return f"; for the bundled model {name!r}, give its bare name: {name}" if name in bundled_names() else ""


#: The most tensor elements building one model may allocate (its weights, buffers and the temporaries of its
#: constructor): several times the largest polychrome architecture, well below what would exhaust a machine.
MAX_MODEL_ELEMENTS = 500_000_000

#: Torch functions that allocate a new tensor of a size given in their arguments.
_FACTORIES = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint,
                        torch.empty_strided, torch.arange, torch.linspace, torch.logspace, torch.eye})  # fmt: skip


class _ModelTooLarge(Exception):
    pass


class _AllocationBudget(TorchFunctionMode):
    """Counts the elements every tensor factory is asked for, sized on the meta device first, and stops the
    construction before an allocation would pass ``limit``: a weight file's metadata cannot make polychrome
    allocate memory until the machine runs out."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.used = limit, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES:
            self.used += func(*args, **{**kwargs, "device": "meta"}).numel()
            if self.used > self.limit:
                raise _ModelTooLarge()
        return func(*args, **kwargs)


def build_model(card: ModelCard, origin: str | os.PathLike | None = None) -> nn.Module:
    """The architecture ``card`` names, randomly initialised (for a strict load). ModelLoadError (naming
    ``origin``, the file the card came from, when given) when its metadata names no registered model, arguments
    it does not take, or a model over :data:`MAX_MODEL_ELEMENTS` (found before that memory is allocated)."""
    try:
        return _build_model(card)
    except ModelLoadError as e:
        raise ModelLoadError(f"{origin}: {e}" if origin is not None else str(e)) from None


def _build_model(card: ModelCard) -> nn.Module:
    try:
        with _AllocationBudget(MAX_MODEL_ELEMENTS):
            return create_model(card.architecture, **card.kwargs)
    except _ModelTooLarge:
        raise ModelLoadError(
            f"weight metadata asks for a {card.architecture} over the {MAX_MODEL_ELEMENTS / 1e6:.0f} M-parameter "
            f"limit (model_kwargs {_one_line(json.dumps(card.kwargs))[:120]})"
        ) from None
    except KeyError as e:
        raise ModelLoadError(f"weight metadata names no known model: {e}") from None
    except (TypeError, ValueError) as e:  # model_kwargs the architecture does not take
        raise ModelLoadError(f"weight metadata does not fit {card.architecture}: {e}") from None


def read_card(meta: dict, origin: str | os.PathLike | None = None) -> ModelCard:
    """:meth:`ModelCard.from_json` with its errors as :class:`ModelLoadError` (naming ``origin`` when given)."""
    try:
        return ModelCard.from_json(meta)
    except CardError as e:
        raise ModelLoadError(f"{origin}: {e}" if origin is not None else str(e)) from None


def load(spec: str | os.PathLike = "default", device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Load a trained colouriser in eval mode, and its model card.

    ``spec`` is a bundled name (``"default"``), or a path: an export folder, a ``.safetensors`` file with its
    JSON, or a training checkpoint (its EMA weights); see :class:`WeightSource`.
    """
    source = WeightSource.parse(spec)
    if source.kind == "onnx":
        return _load_onnx(source, device)
    if source.kind == "checkpoint":
        model, card = _load_checkpoint(source.path)
    else:
        st, js = source.files()
        if not st.exists():
            raise ModelLoadError(f"{st}: weight file not found{source.other_kind()}")
        if not js.exists():
            raise ModelLoadError(f"{js}: metadata file not found next to {st.name}{source.other_kind()}")
        try:
            meta = json.loads(js.read_text())
        except json.JSONDecodeError as e:
            raise ModelLoadError(f"{js}: not valid JSON ({e})") from None
        card = read_card(meta, js)
        model = build_model(card, js)
        try:
            model.load_state_dict(load_file(st), strict=True)
        except Exception as e:  # safetensors header errors and strict-load mismatches alike
            raise ModelLoadError(f"{st}: cannot load weights ({_one_line(e)})") from None
    try:
        card = card.fitted_to(model)
    except CardError as e:
        raise ModelLoadError(str(e)) from None
    return model.to(device).eval(), card


def _read_meta(js: Path, weights: Path, source: WeightSource) -> dict:
    if not js.exists():
        raise ModelLoadError(f"{js}: metadata file not found next to {weights.name}{source.other_kind()}")
    try:
        return json.loads(js.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{js}: not valid JSON ({e})") from None


def _load_onnx(source: WeightSource, device: str | torch.device) -> tuple[nn.Module, ModelCard]:
    """An ONNX graph and its card. The graph has no Python code to ask what it can do, so its card is the
    JSON written beside it at export (checked against the graph's inputs and outputs)."""
    from polychrome.deploy.onnx import OnnxError, OnnxModel

    if torch.device(device).type != "cpu":
        raise ModelLoadError(f"{source.path}: ONNX models run on the CPU here (onnxruntime), not {device}")
    onnx_file, js = source.files()
    card = read_card(_read_meta(js, onnx_file, source), js)
    try:
        return OnnxModel(onnx_file, card).eval(), card
    except OnnxError as e:
        raise ModelLoadError(str(e)) from None


def load_model(spec: str | os.PathLike = "default", device: str | torch.device = "cpu") -> nn.Module:
    """The model of :func:`load` (its card: ``polychrome.Colorizer.from_pretrained(spec).card``)."""
    return load(spec, device)[0]


def _load_checkpoint(path: Path) -> tuple[nn.Module, ModelCard]:
    """The EMA weights of a training checkpoint in the architecture its card names, and the card."""
    try:
        ckpt = read_checkpoint(path)
    except ValueError as e:  # names the file
        raise ModelLoadError(str(e)) from None
    try:
        card = checkpoint_card(ckpt)
    except CardError as e:
        raise ModelLoadError(f"{path}: {e}") from None
    model = build_model(card, path)
    try:
        model.load_state_dict(ema_to_model_state(ckpt["ema"]), strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"{path}: weights do not fit {card.architecture} ({_one_line(e)})") from None
    return model, card


def export_checkpoint(
    ckpt_path: str | os.PathLike, out_dir: str | os.PathLike, half: bool = False, infer_size: int | None = None,
    flip_average: bool | None = None, guided_filter: GuidedFilter | bool | None = None,
) -> Path:
    """Write ``model.safetensors`` (EMA weights, fp16 if ``half``) and ``config.json`` (the model card, with a
    classification model's default temperature, editable there) from a checkpoint.

    ``infer_size`` replaces the working size recorded by the training config; ``flip_average`` (not None)
    sets the card's flip averaging; ``guided_filter`` (not None) its guided filter (False: none)."""
    model, card = _load_checkpoint(Path(ckpt_path))
    card = card_with_inference(card.fitted_to(model), infer_size, flip_average, guided_filter)
    return save_weights(model, card, out_dir, half=half)


def card_with_inference(
    card: ModelCard, infer_size: int | None, flip_average: bool | None, guided_filter: GuidedFilter | bool | None = None
) -> ModelCard:
    """``card`` with the inference settings an export or a ``colorize`` call was given (None: keep the card's;
    ``guided_filter`` False: drop the card's filter)."""
    if guided_filter is not None:
        card = replace(card, guided_filter=guided_filter or None)
    if infer_size is not None:
        card = replace(card, working_size=int(infer_size))
    if flip_average is not None:
        card = replace(card, flip_average=bool(flip_average))
    return card


def save_weights(
    model: nn.Module, card: ModelCard | dict, out_dir: str | os.PathLike, half: bool = False, name: str = "model"
) -> Path:
    """Save ``model``'s state dict as ``out_dir/NAME.safetensors`` and its card (or a metadata dict) as JSON
    beside it. With ``name="model"`` the JSON is ``config.json`` (an export folder); otherwise ``NAME.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = card.to_json() if isinstance(card, ModelCard) else card
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{name}.safetensors"))
    os.chmod(out / f"{name}.safetensors", default_file_mode())  # safetensors writes 0600
    (out / ("config.json" if name == "model" else f"{name}.json")).write_text(json.dumps(meta, indent=2))
    return out


def export_onnx(
    spec: str | os.PathLike,
    out_dir: str | os.PathLike,
    int8: bool = False,
    calibration: str | os.PathLike | None = None,
    infer_size: int | None = None,
    calibration_photos: int | None = None,
    fp32_tail: bool = True,
    flip_average: bool | None = None,
    guided_filter: GuidedFilter | bool | None = None,
) -> Path:
    """Write ``out_dir/model.onnx`` + ``config.json`` for a trained model (anything :func:`load` takes but an
    ONNX graph): dynamic batch, height and width; a classification model's default temperature baked in;
    static int8 with photos from ``calibration`` if ``int8``, the decode after the last convolution left in fp32
    unless ``fp32_tail`` is False (see :mod:`polychrome.deploy.onnx`).

    Raises :class:`ModelLoadError` (one line) for a model that cannot be loaded or exported."""
    from polychrome.deploy import onnx as deploy

    if int8 and calibration is None:  # before the load and the export, which take a while
        raise ModelLoadError("int8 quantisation needs calibration photos: give calibration=FOLDER")
    if WeightSource.parse(spec).kind == "onnx":
        raise ModelLoadError(f"{spec}: already an ONNX graph; export from the PyTorch weights")
    model, card = load(spec)
    card = card_with_inference(card, infer_size, flip_average, guided_filter)
    extra = {} if calibration_photos is None else {"calibration_photos": calibration_photos}
    try:
        return deploy.export_onnx(model, card, out_dir, int8=int8, calibration=calibration, fp32_tail=fp32_tail, **extra)
    except deploy.OnnxError as e:
        raise ModelLoadError(str(e)) from None
