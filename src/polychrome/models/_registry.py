"""A tiny timm-style model registry: ``@register_model`` on a factory, then ``create_model(name)``."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name with ``_`` turned into ``-`` (``unet_32`` -> ``unet-32``)."""
    name = fn.__name__.replace("_", "-")
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture with random weights; ``kwargs`` override the variant's defaults."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    model = _MODELS[name](**kwargs)
    # The name travels with the model so checkpoints and exports can rebuild it.
    model.registry_name = name
    model.registry_kwargs = dict(kwargs)
    return model
