"""How the model call runs: ``"fp32"`` (plain eager float32) or ``"bf16"`` (autocast + ``channels_last``).

Only the model call changes: the full-resolution Lab conversion, the ab upsampling and the join stay
float32, and the model's output comes back as float32. oneDNN's bf16 convolutions run in NHWC, so bf16
also puts the input and the weights in ``channels_last`` (NCHW tensors would be reordered at every layer);
speed figures are in the README with the ``benchmark-speed`` command that measured them.
"""

from __future__ import annotations

import torch
from torch import nn

#: Values of every ``precision`` argument.
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; else a ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` runs: its first parameter's device; the CPU for a model without parameters (an
    onnxruntime graph, :class:`polychrome.deploy.onnx.OnnxModel`)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert ``model``'s 4-D weights to ``channels_last`` in place, unless they already are; returns it.

    Results are unchanged but for float rounding (fp32 calls afterwards differ by about 1e-7)."""
    if any(p.dim() == 4 and not p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters()):
        model.to(memory_format=torch.channels_last)
    return model


def call_model(model: nn.Module, x: torch.Tensor, precision: str = "fp32", extra: tuple = (), **kwargs):
    """``model(x, *extra, **kwargs)`` in ``precision``; the output as the model returns it.

    ``extra`` are further NCHW inputs of x's height and width (a hint model's hint planes); they get the
    same memory format as ``x``. ``"bf16"`` converts the model to ``channels_last`` on first use (a
    :class:`~polychrome.colorizer.Colorizer` does it once when built, so concurrent calls never race on it).
    """
    if check_precision(precision) == "fp32":
        return model(x, *extra, **kwargs)
    to_channels_last(model)
    x, *extra = (t.contiguous(memory_format=torch.channels_last) for t in (x, *extra))
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        return model(x, *extra, **kwargs)


def run_model(model: nn.Module, x: torch.Tensor, precision: str = "fp32", *extra: torch.Tensor) -> torch.Tensor:
    """``model(x, *extra)`` in ``precision`` (see :func:`call_model`), as contiguous float32."""
    return call_model(model, x, precision, extra).float().contiguous()
