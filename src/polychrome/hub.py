"""Loading trained colourisers: bundled names, exported weight folders/files, training checkpoints.

Release weights are a ``model.safetensors`` plus a ``config.json`` (or ``NAME.safetensors`` +
``NAME.json`` side by side). The JSON holds ``{"model": registry name, "model_kwargs": {...},
"infer_size": int, ...}``. Loading is strict: a missing or unexpected key is an error.
Training checkpoints (``.pt``) are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from polychrome.io import default_file_mode
from polychrome.models import create_model

#: Working size (longest side, px) used when a weight file does not say.
DEFAULT_INFER_SIZE = 256

#: Constructor arguments that only choose a model's starting weights (``pretrained=True`` reads the
#: ImageNet encoder weights). A trained model's file holds every weight and is loaded strictly over
#: them, so rebuilding it drops these: loading never needs, nor re-reads, the pretrained source.
INIT_ONLY_KWARGS = frozenset({"pretrained"})


class ModelLoadError(Exception):
    """A model name or weight file could not be loaded; the message says which and why."""


def _one_line(e: Exception, limit: int = 500) -> str:
    """An exception's message on one line. ``load_state_dict`` names the missing, unexpected and mis-shaped
    keys on the lines after its first, so keeping only the first line would hide what is wrong."""
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bundled_names() -> list[str]:
    """Names of the weight sets shipped inside the package (``polychrome/weights/NAME.safetensors``)."""
    root = resources.files("polychrome") / "weights"
    return sorted(p.name[: -len(".safetensors")] for p in root.iterdir() if p.name.endswith(".safetensors"))


def _weight_files(spec: str | os.PathLike) -> tuple[Path, Path] | None:
    """(safetensors, json) for a bundled name, an export folder or a .safetensors file; None otherwise."""
    p = Path(spec)
    if p.is_dir():
        return p / "model.safetensors", p / "config.json"
    if p.suffix == ".safetensors":
        side = p.with_suffix(".json")
        return p, side if side.exists() else p.parent / "config.json"
    if str(spec) in bundled_names():
        root = Path(str(resources.files("polychrome") / "weights"))
        return root / f"{spec}.safetensors", root / f"{spec}.json"
    return None


def architecture_kwargs(model_kwargs: dict) -> dict:
    """``model_kwargs`` without the :data:`INIT_ONLY_KWARGS`: what rebuilding a trained model takes."""
    return {k: v for k, v in model_kwargs.items() if k not in INIT_ONLY_KWARGS}


def build_from_meta(meta: dict) -> nn.Module:
    """Rebuild the architecture a weight file's metadata names (randomly initialised, for a strict load)."""
    if not isinstance(meta, dict) or "model" not in meta:
        raise ModelLoadError("weight metadata has no 'model' entry naming the architecture")
    model_kwargs = meta.get("model_kwargs", {})
    if not isinstance(model_kwargs, dict):
        raise ModelLoadError(f"weight metadata's model_kwargs must be a mapping, got {model_kwargs!r}")
    try:
        return create_model(meta["model"], **architecture_kwargs(model_kwargs))
    except KeyError as e:
        raise ModelLoadError(f"weight metadata names no known model: {e}") from None
    except (TypeError, ValueError) as e:  # model_kwargs the architecture does not take
        raise ModelLoadError(f"weight metadata does not fit {meta['model']}: {e}") from None


def load_model(spec: str | os.PathLike = "default", device: str | torch.device = "cpu") -> nn.Module:
    """Load a trained colouriser in eval mode.

    ``spec`` is a bundled name (``default``), an export folder, a ``.safetensors`` file with its JSON,
    or a training checkpoint ``.pt`` (its EMA weights). The model gets ``model.meta`` (the JSON dict,
    with at least ``model`` and ``infer_size``).
    """
    files = _weight_files(spec)
    if files is not None:
        st, js = files
        if not st.exists():
            raise ModelLoadError(f"{st}: weight file not found")
        if not js.exists():
            raise ModelLoadError(f"{js}: metadata file not found next to {st.name}")
        try:
            meta = json.loads(js.read_text())
        except json.JSONDecodeError as e:
            raise ModelLoadError(f"{js}: not valid JSON ({e})") from None
        model = build_from_meta(meta)
        try:
            model.load_state_dict(load_file(st), strict=True)
        except Exception as e:  # safetensors header errors and strict-load mismatches alike
            raise ModelLoadError(f"{st}: cannot load weights ({_one_line(e)})") from None
    elif Path(spec).suffix in (".pt", ".ckpt", ".pth") and Path(spec).is_file():
        model, meta = _load_checkpoint(Path(spec))
    else:
        from polychrome.models import list_models

        hint = (
            f"; {spec!r} is an architecture without trained weights (use create_model for a random one)"
            if str(spec) in list_models()
            else ""
        )
        raise ModelLoadError(
            f"{spec}: not a bundled model ({', '.join(bundled_names()) or 'none'}), weight file or checkpoint{hint}"
        )
    meta.setdefault("infer_size", DEFAULT_INFER_SIZE)
    apply_decoding(model, meta)
    model.meta = meta
    return model.to(device).eval()


def decoding_meta(model: nn.Module) -> dict:
    """A classification model's decoding defaults (``temperature``, ``decode_mode``) for its JSON; {} for others."""
    return {k: getattr(model, k) for k in ("temperature", "decode_mode") if hasattr(model, k)}


def apply_decoding(model: nn.Module, meta: dict) -> None:
    """Set the decoding defaults a weight file's JSON records (:func:`decoding_meta`) on the rebuilt model."""
    for key, kind in (("temperature", (int, float)), ("decode_mode", str)):
        if key not in meta:
            continue
        if not hasattr(model, key):
            raise ModelLoadError(f"weight metadata sets {key}, but {meta.get('model')} has no {key}")
        value = meta[key]
        from polychrome.color.quantize import DECODE_MODES

        if (isinstance(value, bool) or not isinstance(value, kind) or (key == "temperature" and not value > 0)
                or (key == "decode_mode" and value not in DECODE_MODES)):
            raise ModelLoadError(f"weight metadata's {key} is not valid: {value!r}")
        setattr(model, key, float(value) if key == "temperature" else value)


def _load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(f"{path}: not a readable polychrome checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or "model_name" not in ckpt or "ema" not in ckpt:
        raise ModelLoadError(f"{path}: not a polychrome training checkpoint (no model_name/ema)")
    meta = checkpoint_meta(ckpt)
    model = build_from_meta(meta)
    try:
        model.load_state_dict(ema_to_model_state(ckpt["ema"]), strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"{path}: weights do not fit {meta['model']} ({_one_line(e)})") from None
    return model, meta


def checkpoint_meta(ckpt: dict) -> dict:
    """The release metadata (config.json contents) of a training checkpoint."""
    cfg = ckpt.get("config", {})
    return {
        "model": ckpt["model_name"],
        "model_kwargs": architecture_kwargs(ckpt.get("model_kwargs", {})),
        "infer_size": cfg.get("infer_size", DEFAULT_INFER_SIZE),
        "train_config": cfg,
        "epoch": ckpt.get("epoch"),
        "step": ckpt.get("step"),
        "best_val_psnr": ckpt.get("best_val_psnr"),
    }


def ema_to_model_state(ema_state: dict) -> dict:
    """Map an ``AveragedModel`` state dict (``module.`` prefix, ``n_averaged``) to the plain model's keys."""
    return {k[len("module.") :]: v for k, v in ema_state.items() if k.startswith("module.")}


def export_checkpoint(
    ckpt_path: str | os.PathLike, out_dir: str | os.PathLike, half: bool = False, infer_size: int | None = None
) -> Path:
    """Write ``model.safetensors`` (EMA weights, fp16 if ``half``) and ``config.json`` from a checkpoint.

    ``infer_size`` replaces the working size recorded by the training config."""
    model, meta = _load_checkpoint(Path(ckpt_path))
    if infer_size is not None:
        meta["infer_size"] = int(infer_size)
    meta.update(decoding_meta(model))  # a classification model's default T travels with it (editable in the JSON)
    return save_weights(model, meta, out_dir, half=half)


def save_weights(model: nn.Module, meta: dict, out_dir: str | os.PathLike, half: bool = False, name: str = "model") -> Path:
    """Save ``model``'s state dict as ``out_dir/NAME.safetensors`` and ``meta`` as JSON beside it.

    With ``name="model"`` the JSON is ``config.json`` (an export folder); otherwise ``NAME.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{name}.safetensors"))
    os.chmod(out / f"{name}.safetensors", default_file_mode())  # safetensors writes 0600
    (out / ("config.json" if name == "model" else f"{name}.json")).write_text(json.dumps(meta, indent=2))
    return out
