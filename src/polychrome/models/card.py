"""The model card: what a trained colouriser is and what it can do, in one frozen record.

Front ends never ask a model object what it can do; they ask its card. The card travels as the JSON beside
release weights (``config.json`` / ``NAME.json``) and inside training checkpoints (``ckpt["card"]``, written
by the trainer, read by :func:`polychrome.train.checkpoint.checkpoint_card`), in the keys below, so a weight
file written before the card existed reads the same way:

    {"model": "cicgan", "model_kwargs": {...}, "infer_size": 256, "guided_filter": {"radius": 5, "eps": 100},
     "takes_hints": false, "gives_confidence": true, "temperature": 0.38, "decode_mode": "annealed",
     ...provenance: "train_config", "training", "epoch", "step", "best_val_psnr", ...}

What the architecture can do (hints, confidence, a decoding temperature) is a fact of its code, so a loaded
card takes it from the rebuilt model (:func:`capabilities`); the JSON's copy is for people reading the file.
A model family declares it once, on its class: ``uses_hints = True`` (``forward(L_net, hint_ab_net,
hint_mask)``), ``gives_confidence = True`` (``forward(..., return_all=True).confidence``), and a
classification model takes ``temperature`` / ``decode_mode`` as ``forward`` keyword arguments.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from polychrome.color.quantize import DECODE_MODES

#: Working size (longest side, px) of a model whose card does not say.
DEFAULT_WORKING_SIZE = 256

#: Constructor arguments that only choose a model's starting weights (``pretrained=True`` reads ImageNet
#: encoder weights). A trained model's file holds every weight, so its card drops them.
INIT_ONLY_KWARGS = frozenset({"pretrained"})

#: JSON keys the card itself reads and writes; every other key is provenance (``about``).
CARD_KEYS = (
    "model", "model_kwargs", "infer_size", "flip_average", "guided_filter", "takes_hints", "gives_confidence",
    "temperature", "decode_mode",
)


class CardError(ValueError):
    """A model card (weight metadata) that is missing something or holds a value of the wrong kind."""


@dataclass(frozen=True)
class GuidedFilter:
    """The guided filter (He et al. 2010) a model's working-grid ab goes through, with the working-grid L as
    the guide (:func:`polychrome.pipeline.core.guided_ab`): in each (2 radius + 1)^2 window, ab is fitted as
    a linear function of L, so colour is smoothed within regions of even lightness and its edges follow the
    lightness edges. ``radius`` in working-grid pixels; ``eps`` in squared L units (L in 0..100): where the
    local variance of L is well below ``eps`` the window is smoothed flat, well above it the fit follows L."""

    radius: int
    eps: float

    def __post_init__(self):
        if isinstance(self.radius, bool) or not isinstance(self.radius, int) or self.radius < 1:
            raise CardError(f"guided_filter radius must be a whole number >= 1, got {self.radius!r}")
        if isinstance(self.eps, bool) or not _positive(self.eps):
            raise CardError(f"guided_filter eps must be a finite number > 0, got {self.eps!r}")

    def to_json(self) -> dict:
        return {"radius": self.radius, "eps": self.eps}

    @classmethod
    def from_json(cls, meta: Any) -> GuidedFilter:
        """Read ``{"radius": R, "eps": E}``; CardError (one line) for anything else."""
        if not isinstance(meta, dict) or set(meta) != {"radius", "eps"}:
            raise CardError(f"weight metadata's guided_filter must be {{\"radius\": R, \"eps\": E}}, got {meta!r}")
        return cls(meta["radius"], meta["eps"])

    @classmethod
    def parse(cls, text: str) -> GuidedFilter:
        """``"R,EPS"`` (the command line's form, e.g. ``5,100``) -> GuidedFilter; CardError otherwise."""
        try:
            r, e = text.split(",")
            radius, eps = int(r), float(e)
        except ValueError:
            raise CardError(f"a guided filter is RADIUS,EPS (e.g. 5,100), got {text!r}") from None
        return cls(radius, eps)


@dataclass(frozen=True)
class ModelCard:
    """What a trained colouriser is (architecture, working size) and can do (hints, confidence, decoding)."""

    architecture: str  # registry name: create_model(architecture, **kwargs) rebuilds the model
    kwargs: dict = field(default_factory=dict)  # architecture arguments (init-only ones dropped)
    working_size: int = DEFAULT_WORKING_SIZE  # longest side (px) of the grid the model colourises on
    flip_average: bool = False  # colourise the mirror image too and average the two (pipeline.core.predict)
    guided_filter: GuidedFilter | None = None  # edge-aware smoothing of the working-grid ab, guided by L
    takes_hints: bool = False  # forward(L_net, hint_ab_net, hint_mask): colour hints guide it
    gives_confidence: bool = False  # forward(L_net, return_all=True).confidence: a per-pixel confidence map
    temperature: float | None = None  # default annealed-mean temperature; None: the model regresses ab
    decode_mode: str | None = None  # default decoding of a classification model (one of DECODE_MODES)
    about: dict = field(default_factory=dict, compare=False)  # provenance: training config, step, ...

    @property
    def decodes(self) -> bool:
        """Whether the model decodes bin probabilities and so takes a ``temperature``."""
        return self.temperature is not None

    def decoding(self, temperature: float | None = None) -> dict[str, Any]:
        """The ``forward`` keyword arguments for one call: the card's defaults, or annealed decoding at
        ``temperature``. {} for a model that regresses ab and is given no temperature.

        Raises CardError (one line) for a temperature given to a model without one, or one that is not a
        finite number > 0."""
        if temperature is None:
            return {"temperature": self.temperature, "decode_mode": self.decode_mode} if self.decodes else {}
        if not self.decodes:
            raise CardError(
                f"model {self.architecture} has no decoding temperature (it regresses ab); a temperature applies "
                "to classification models such as cicgan"
            )
        return {"temperature": check_temperature(temperature), "decode_mode": "annealed"}

    def to_json(self) -> dict:
        """The card as the JSON stored beside weights and in checkpoints (provenance keys after the card's)."""
        out: dict[str, Any] = {
            "model": self.architecture,
            "model_kwargs": dict(self.kwargs),
            "infer_size": self.working_size,
            **({"flip_average": True} if self.flip_average else {}),
            **({"guided_filter": self.guided_filter.to_json()} if self.guided_filter else {}),
            "takes_hints": self.takes_hints,
            "gives_confidence": self.gives_confidence,
        }
        if self.decodes:
            out.update(temperature=self.temperature, decode_mode=self.decode_mode)
        out.update({k: v for k, v in self.about.items() if k not in CARD_KEYS})
        return out

    @classmethod
    def from_json(cls, meta: dict) -> ModelCard:
        """Read a card from weight metadata (old files without the capability keys included).

        Raises CardError naming the key that is missing or wrong."""
        if not isinstance(meta, dict) or "model" not in meta:
            raise CardError("weight metadata has no 'model' entry naming the architecture")
        kwargs = meta.get("model_kwargs", {})
        if not isinstance(kwargs, dict):
            raise CardError(f"weight metadata's model_kwargs must be a mapping, got {kwargs!r}")
        size = meta.get("infer_size", DEFAULT_WORKING_SIZE)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise CardError(f"weight metadata's infer_size is not valid: {size!r}")
        flip = meta.get("flip_average", False)
        if not isinstance(flip, bool):
            raise CardError(f"weight metadata's flip_average must be true or false, got {flip!r}")
        guided = meta.get("guided_filter")
        temperature, mode = meta.get("temperature"), meta.get("decode_mode")
        if temperature is not None and (isinstance(temperature, bool) or not _positive(temperature)):
            raise CardError(f"weight metadata's temperature is not valid: {temperature!r}")
        if mode is not None and mode not in DECODE_MODES:
            raise CardError(f"weight metadata's decode_mode is not valid: {mode!r}")
        return cls(
            architecture=str(meta["model"]),
            kwargs=architecture_kwargs(kwargs),
            working_size=size,
            flip_average=flip,
            guided_filter=None if guided is None else GuidedFilter.from_json(guided),
            takes_hints=bool(meta.get("takes_hints", False)),
            gives_confidence=bool(meta.get("gives_confidence", False)),
            temperature=None if temperature is None else float(temperature),
            decode_mode=mode if mode is not None else ("annealed" if temperature is not None else None),
            about={k: v for k, v in meta.items() if k not in CARD_KEYS},
        )

    def fitted_to(self, model: nn.Module) -> ModelCard:
        """This card with the capabilities of ``model``, the architecture it names, rebuilt: hints and
        confidence from its class, decoding defaults from the card where it sets them, else the model's.

        Raises CardError for decoding settings on a model that regresses ab."""
        caps = capabilities(model)
        if self.decodes and caps["temperature"] is None:
            raise CardError(f"weight metadata sets temperature, but {self.architecture} has no temperature")
        if self.decodes:
            caps.update(temperature=self.temperature, decode_mode=self.decode_mode or "annealed")
        return replace(self, **caps)

    @classmethod
    def for_model(cls, model: nn.Module, working_size: int | None = None, about: dict | None = None) -> ModelCard:
        """The card of a model object: its registry name and arguments (``create_model`` records them, else
        the class name) and its capabilities."""
        return cls(
            architecture=str(getattr(model, "registry_name", None) or type(model).__name__),
            kwargs=architecture_kwargs(getattr(model, "registry_kwargs", None) or {}),
            working_size=int(working_size or DEFAULT_WORKING_SIZE),
            about=dict(about or {}),
            **capabilities(model),
        )


def capabilities(model: nn.Module) -> dict[str, Any]:
    """What ``model``'s code can do: ``takes_hints``, ``gives_confidence``, and for a classification model
    (``forward`` takes ``temperature``) its default ``temperature`` / ``decode_mode`` (else None)."""
    kind = type(model)
    forward = inspect.signature(model.forward).parameters
    temperature = mode = None
    if "temperature" in forward:
        temperature = getattr(model, "temperature", None) or forward["temperature"].default
        mode = getattr(model, "decode_mode", None) or "annealed"
        if not _positive(temperature):
            raise CardError(f"{kind.__name__} takes a temperature but declares no default")
        temperature = float(temperature)
    return {
        "takes_hints": bool(getattr(kind, "uses_hints", False)),
        "gives_confidence": bool(getattr(kind, "gives_confidence", False)),
        "temperature": temperature,
        "decode_mode": mode,
    }


def architecture_kwargs(model_kwargs: dict) -> dict:
    """``model_kwargs`` without the :data:`INIT_ONLY_KWARGS`: what rebuilding a trained model takes."""
    return {k: v for k, v in model_kwargs.items() if k not in INIT_ONLY_KWARGS}


def check_temperature(value: Any) -> float:
    """``value`` as a float if it is a finite number > 0; else CardError (one line)."""
    if isinstance(value, bool) or not _positive(value):
        raise CardError(f"temperature must be a finite number > 0, got {value!r}")
    return float(value)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
