"""The Colorizer: the one object every front end holds to turn a photo into a colour photo.

    >>> c = Colorizer.from_pretrained("default")
    >>> out = c(pil_image).image                      # PIL in, PIL out; numpy in, numpy out
    >>> out = c(img, hints=[Hint(120, 45, "#aa3322")])  # with a hint model ("hints")
    >>> r = c(img, temperature=0.1, confidence=True)    # a classification model: decoding and confidence

It owns a model, its :class:`~polychrome.models.card.ModelCard`, a precision and a device, and runs the
tensor path of :mod:`polychrome.pipeline.core`. Decoding settings (``temperature``) and hints are call
arguments, never state on the model, so one Colorizer serves concurrent callers (threads of a web server)
with results identical to single calls.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from polychrome.color.hints import Hint, HintError, refine_base
from polychrome.io import PhotoPixels, photo_pixels, read_photo, to_uint8, to_uint16
from polychrome.models.card import CardError, ModelCard
from polychrome.pipeline.core import (
    Prediction,
    RowUpsampler,
    Timer,
    bands,
    gray8,
    gray_deep,
    lightness,
    lightness_rows,
    no_timer,
    predict,
    render,
    render8,
    render_deep,
    to_array,
    to_working_grid,
    upsample,
    working_lightness,
    working_shape,
)
from polychrome.pipeline.precision import check_precision, model_device, to_channels_last


@dataclass(frozen=True)
class ColorizeResult:
    """What :meth:`Colorizer.__call__` returns."""

    image: Any  # the colour photo in the input's own type, size and mode (see polychrome.io.arrays)
    confidence: np.ndarray | None = None  # (H, W) float32 in [0, 1] at the photo's size, white = confident
    ab: torch.Tensor | None = None  # (1, 2, h, w) float32 CIE ab at the working size


class Colorizer:
    """A trained colouriser ready to use: model + model card + precision + device.

    Args:
        model: the network (put in eval mode). Its forward takes L in network units (see
            :mod:`polychrome.pipeline.core`). An ONNX graph comes as :class:`polychrome.deploy.onnx.OnnxModel`,
            a module that runs onnxruntime and carries its card.
        card: what it is and can do; default: :meth:`ModelCard.for_model` (a model made by ``create_model``).
        precision: ``"fp32"`` or ``"bf16"`` (autocast + channels_last, applied once here).
        device: where the model runs; default: where its weights are.
    """

    def __init__(
        self,
        model: nn.Module,
        card: ModelCard | None = None,
        precision: str = "fp32",
        device: str | torch.device | None = None,
    ):
        self.precision = check_precision(precision)
        runtime_card = getattr(model, "card", None)  # a graph for another runtime carries its own card
        if runtime_card is not None and precision != "fp32":
            raise ValueError(f"an ONNX model runs in the precision it was exported in; use fp32, not {precision}")
        self.model = model.eval() if device is None else model.to(device).eval()
        self.device = model_device(self.model)
        self.card = card if card is not None else runtime_card or ModelCard.for_model(model)
        if precision == "bf16":  # once now, not racily inside two concurrent calls
            to_channels_last(self.model)

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike = "default", precision: str = "fp32", device: str | torch.device = "cpu"
    ) -> Colorizer:
        """Load trained weights: a bundled name (``"default"``, ``"hints"``), an export folder, a
        ``.safetensors`` file, a training checkpoint or an ONNX graph (``.onnx`` or an ONNX export folder) (:class:`polychrome.hub.WeightSource` tells them apart).
        Raises :class:`polychrome.hub.ModelLoadError`."""
        from polychrome.hub import load

        model, card = load(source, device=device)
        return cls(model, card, precision=precision)

    def __repr__(self) -> str:
        return f"Colorizer({self.card.architecture}, working_size={self.card.working_size}, precision={self.precision})"

    @property
    def name(self) -> str:
        """How messages name the model: its architecture."""
        return self.card.architecture

    # ------------------------------------------------------------------ checks with one-line errors
    def check_hints(self, hints) -> None:
        """HintError if ``hints`` are given (non-empty) to a model without hint inputs."""
        if hints and not self.card.takes_hints:
            raise self._hint_error()

    def _hint_error(self) -> HintError:
        return HintError(f"model {self.name} cannot use colour hints; use a hint model such as 'hints'")

    def check_confidence(self) -> None:
        """ValueError if the model predicts no confidence map."""
        if not self.card.gives_confidence:
            raise ValueError(
                f"model {self.name} predicts no confidence map; a confidence map needs a classification model "
                "such as cicgan"
            )

    def decoding(self, temperature: float | None) -> dict:
        """The model's forward keyword arguments for ``temperature`` (ValueError for a model without one or
        a value that is not a finite number > 0)."""
        try:
            kwargs = self.card.decoding(temperature)
        except CardError as e:
            raise ValueError(str(e)) from None
        fixed = getattr(self.model, "check_decoding", None)  # an exported graph: its decoding is baked in
        if fixed is not None:
            fixed(**kwargs)
        return kwargs

    # ------------------------------------------------------------------ the tensor path
    def working_shape(self, H: int, W: int, size: int | None = None) -> tuple[int, int]:
        """The (h, w) grid the model colourises an (H, W) photo on (longest side ``size``, default the card's)."""
        return working_shape(H, W, int(size or self.card.working_size))

    def working_l(self, L: torch.Tensor, size: int | None = None, timer: Timer = no_timer) -> torch.Tensor:
        """L (B, 1, H, W) resized to the working grid, as the model sees it."""
        return to_working_grid(L, int(size or self.card.working_size), timer)

    def predict_working(
        self,
        L_work: torch.Tensor,
        hints: list[Hint] | None = None,
        full_hw: tuple[int, int] | None = None,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        temperature: float | None = None,
        confidence: bool = False,
        timer: Timer = no_timer,
    ) -> Prediction:
        """One model call on L already on the working grid (:meth:`working_l`).

        ``hints`` are in pixel coordinates of the (H, W) = ``full_hw`` photo and painted onto the grid;
        ``hint_ab`` / ``hint_mask`` are given on the grid directly instead (what the hint evaluation samples).
        Raises HintError for hints the model cannot use or a hint outside the photo, ValueError for a
        temperature the model cannot take or confidence it does not give."""
        self.check_hints(hints)
        decoding = self.decoding(temperature)
        if confidence:
            self.check_confidence()
        try:
            return predict(
                self.model, L_work, precision=self.precision, takes_hints=self.card.takes_hints, hints=hints,
                full_hw=full_hw, hint_ab=hint_ab, hint_mask=hint_mask, decoding=decoding, confidence=confidence,
                flip_average=self.card.flip_average, guided_filter=self.card.guided_filter, timer=timer,
            )  # fmt: skip
        except HintError:
            if self.card.takes_hints:  # a hint outside the photo: its own message
                raise
            raise self._hint_error() from None  # hint planes holding a hint: the message names the model

    def render(self, L: torch.Tensor, ab_work: torch.Tensor, timer: Timer = no_timer) -> torch.Tensor:
        """ab on the working grid upsampled to L's size and joined with L: sRGB (B, 3, H, W) in [0, 1]."""
        return render(L, ab_work, timer)

    def confidence_at(self, confidence_work: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """A working-grid confidence map (B, 1, h, w) upsampled to ``hw``, in [0, 1]."""
        return upsample(confidence_work, hw).clamp(0, 1)

    def colorize_lightness(
        self,
        L: torch.Tensor,
        hints: list[Hint] | None = None,
        temperature: float | None = None,
        size: int | None = None,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        confidence: bool = False,
        timer: Timer = no_timer,
    ) -> tuple[torch.Tensor, Prediction]:
        """Full-resolution L (B, 1, H, W) in [0, 100] -> (sRGB (B, 3, H, W) in [0, 1], the working-grid
        :class:`~polychrome.pipeline.core.Prediction`). Arguments as in :meth:`predict_working`; ``size``
        overrides the card's working size."""
        self.check_hints(hints)
        work = self.working_l(L, size, timer)
        pred = self.predict_working(
            work, hints, tuple(L.shape[-2:]), hint_ab, hint_mask, temperature, confidence, timer
        )
        return self.render(L, pred.ab, timer), pred

    def predict_ab(
        self,
        L: torch.Tensor,
        size: int | None = None,
        hints: list[Hint] | None = None,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        temperature: float | None = None,
    ) -> torch.Tensor:
        """ab for full-resolution L (B, 1, H, W) in [0, 100]: predicted on the working grid, upsampled back:
        (B, 2, H, W) float32, CIE units. Arguments as in :meth:`predict_working`."""
        self.check_hints(hints)
        pred = self.predict_working(
            self.working_l(L, size), hints, tuple(L.shape[-2:]), hint_ab, hint_mask, temperature
        )
        return upsample(pred.ab, tuple(L.shape[-2:]))

    def predict_ab_confidence(
        self, L: torch.Tensor, size: int | None = None, temperature: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ab (B, 2, H, W) and the confidence map (B, 1, H, W) in [0, 1] of full-resolution L, from ONE model
        call (a model that gives confidence; else ValueError)."""
        pred = self.predict_working(self.working_l(L, size), temperature=temperature, confidence=True)
        hw = tuple(L.shape[-2:])
        return upsample(pred.ab, hw), self.confidence_at(pred.confidence, hw)

    # ------------------------------------------------------------------ photos at full resolution, in bounded memory
    def colorize_image(
        self,
        img: Image.Image | PhotoPixels,
        hints: list[Hint] | None = None,
        temperature: float | None = None,
        size: int | None = None,
        confidence: bool = False,
        compare: bool = False,
        name: str = "image",
        timer: Timer = no_timer,
        bits: int = 8,
    ) -> tuple[Image.Image | np.ndarray, Prediction]:
        """A decoded photo (PIL, any mode, or the :class:`~polychrome.io.PhotoPixels` that
        :func:`~polychrome.io.read_image` gives for a 16-bit colour scan) -> its colour version at full
        resolution, in memory that does not grow with the photo beyond the photo and the result (the path a
        file takes: :mod:`polychrome.pipeline.core`, "Full resolution in bounded memory").

        The result is an 8-bit PIL image: RGB, RGBA when the photo has alpha; ``compare`` puts the grey
        photo to its left. With ``bits=16``, a photo of more than 8 bits a sample (a 16-bit scan:
        :attr:`~polychrome.io.PhotoPixels.deep`) comes back as a uint16 (H, W, 3) array instead, joined
        with its own L at float precision (:meth:`render_pixels`). Returns (the image, the working-grid
        :class:`~polychrome.pipeline.core.Prediction`); other arguments as in :meth:`predict_working`.
        ``name`` names the photo in warnings."""
        self.check_hints(hints)
        self.decoding(temperature)
        if confidence:
            self.check_confidence()
        with timer("to_float"):
            pixels = photo_pixels(img, name)
        pred = self.predict_pixels(pixels, hints, temperature, size, confidence, timer)
        return self.render_pixels(pixels, pred.ab, compare=compare, bits=bits, timer=timer), pred

    def predict_pixels(
        self,
        pixels: PhotoPixels,
        hints: list[Hint] | None = None,
        temperature: float | None = None,
        size: int | None = None,
        confidence: bool = False,
        timer: Timer = no_timer,
    ) -> Prediction:
        """One model call on a decoded photo's L on the working grid (computed a band at a time)."""
        L_work = self.working_pixels(pixels, size, timer)
        return self.predict_working(L_work, hints, (pixels.height, pixels.width), None, None, temperature, confidence,
                                   timer)

    def working_pixels(self, pixels: PhotoPixels, size: int | None = None, timer: Timer = no_timer) -> torch.Tensor:
        """A decoded photo's L on the working grid (1, 1, h, w), computed a band at a time: what the model is
        given. Photos whose grids have one shape can go through :meth:`predict_working` together, stacked."""
        H, W = pixels.height, pixels.width
        with timer("resize"):
            return working_lightness(lightness_rows(pixels), (H, W), self.working_shape(H, W, size))

    def render_pixels(
        self, pixels: PhotoPixels, ab_work: torch.Tensor, compare: bool = False, bits: int = 8,
        timer: Timer = no_timer,
    ) -> Image.Image | np.ndarray:
        """Working-grid ab (1, 2, h, w) joined with a decoded photo's own L at full resolution, a band at a
        time: the 8-bit PIL image (alpha kept, ``compare``: the grey photo to its left) or, with ``bits=16``
        and a photo of more than 8 bits, the uint16 (H, W, 3) array (the float join quantised to 16 bits;
        (H, W, 4) with a 16-bit colour scan's alpha)."""
        H, W = pixels.height, pixels.width
        rows = lightness_rows(pixels)
        x0 = W if compare else 0
        if bits == 16 and pixels.deep:
            alpha16 = pixels.alpha16  # a 16-bit colour scan's alpha
            with timer("to_8bit"):
                deep = np.empty((H, x0 + W, 3 if alpha16 is None else 4), np.uint16)
            for r0, L, rgb in render_deep(rows, ab_work, (H, W), timer):
                with timer("to_8bit"):
                    deep[r0 : r0 + len(rgb), x0:, :3] = to_uint16(rgb)
                    if compare:
                        deep[r0 : r0 + len(rgb), :W, :3] = to_uint16(gray_deep(L))
            if alpha16 is not None:
                deep[:, x0:, 3] = alpha16
                if compare:
                    deep[:, :W, 3] = alpha16
            return deep
        with timer("to_8bit"):
            out = Image.new("RGB", (x0 + W, H))
        for r0, L, rgb in render8(rows, ab_work, (H, W), timer):
            with timer("to_8bit"):
                out.paste(Image.fromarray(rgb, "RGB"), (x0, r0))
                if compare:
                    out.paste(Image.fromarray(gray8(L), "RGB"), (0, r0))
        if pixels.alpha is not None:
            alpha = pixels.alpha
            if compare:
                alpha = Image.new("L", out.size)
                alpha.paste(pixels.alpha, (0, 0))
                alpha.paste(pixels.alpha, (W, 0))
            out.putalpha(alpha)
        return out

    def render_image(self, L: torch.Tensor, ab_work: torch.Tensor, timer: Timer = no_timer) -> Image.Image:
        """L (1, 1, H, W) in [0, 100] and working-grid ab -> the 8-bit colour photo (PIL RGB), a band at a time,
        as :meth:`colorize_image` writes it (a session that keeps L, such as the web page's, gets the file's
        pixels)."""
        H, W = L.shape[-2:]
        out = Image.new("RGB", (W, H))
        for r0, _, rgb in render8(lambda r0, r1: L[:1, :, r0:r1].float(), ab_work, (H, W), timer):
            out.paste(Image.fromarray(rgb, "RGB"), (0, r0))
        return out

    def confidence_image(self, confidence_work: torch.Tensor, hw: tuple[int, int]) -> Image.Image:
        """A working-grid confidence map (1, 1, h, w) at the photo's size ``hw`` as an 8-bit greyscale image
        (white = confident), upsampled a band at a time (:meth:`confidence_at`, quantised)."""
        H, W = hw
        up = RowUpsampler(confidence_work[:1].float(), hw)
        out = Image.new("L", (W, H))
        for r0, r1 in bands(H, W):
            out.paste(Image.fromarray(to_uint8(up.rows(r0, r1)[0, 0].clamp(0, 1).numpy()), "L"), (0, r0))
        return out

    # ------------------------------------------------------------------ photos
    def __call__(
        self,
        image,
        hints: list[Hint] | None = None,
        temperature: float | None = None,
        size: int | None = None,
        confidence: bool = False,
        return_ab: bool = False,
    ) -> ColorizeResult:
        """Colourise a photo at its full resolution.

        Args:
            image: a PIL image (any mode; EXIF orientation is not applied to an in-memory image) or a numpy
                array (H, W) or (H, W, 1|3|4): uint8, uint16, or float in [0, 1].
            hints: colour hints (:class:`~polychrome.color.hints.Hint`, x/y in pixels of this photo) for a
                hint model; HintError for another model or a hint outside the photo.
            temperature: annealed-mean temperature T > 0 of a classification model, for this call only.
            size: working size (longest side, px); default the card's.
            confidence: also return the confidence map (a model that gives one; else ValueError).
            return_ab: also return the ab on the working grid.
        Returns:
            :class:`ColorizeResult`; ``image`` in the input's own type (PIL RGB/RGBA of the same size, or an
            array of the same dtype, height and width, see :mod:`polychrome.io.arrays`).
        """
        self.check_hints(hints)  # before the Lab conversion: fail fast
        self.decoding(temperature)
        if confidence:
            self.check_confidence()
        u8 = _as_8bit_image(image)
        if u8 is not None:  # a PIL image, or an 8-bit array: the bounded-memory 8-bit path
            out, pred = self.colorize_image(u8, hints, temperature, size, confidence=confidence)
            conf = None
            if pred.confidence is not None:
                conf = self.confidence_at(pred.confidence, (u8.height, u8.width))[0, 0].numpy()
            result = out if isinstance(image, Image.Image) else np.asarray(out)
            return ColorizeResult(result, conf, pred.ab if return_ab else None)
        photo = read_photo(image)
        L = lightness(photo.rgb)
        rgb, pred = self.colorize_lightness(L, hints, temperature, size, confidence=confidence)
        conf = None
        if pred.confidence is not None:
            conf = self.confidence_at(pred.confidence, tuple(L.shape[-2:]))[0, 0].numpy()
        return ColorizeResult(photo.like_input(to_array(rgb)), conf, pred.ab if return_ab else None)

    def colorize_array(self, rgb: np.ndarray, hints=None, temperature=None, size=None) -> np.ndarray:
        """(H, W, 3) float RGB in [0, 1] -> the colour photo, (H, W, 3) float32 in [0, 1]."""
        self.check_hints(hints)
        return to_array(self.colorize_lightness(lightness(rgb), hints, temperature, size)[0])

    def colorize_uint8(self, rgb: np.ndarray, hints=None, temperature=None, size=None) -> np.ndarray:
        """:meth:`colorize_array` quantised as a saved 8-bit file is: (H, W, 3) uint8."""
        return to_uint8(self.colorize_array(rgb, hints, temperature, size))


class RefinedColorizer(Colorizer):
    """A hint model's hints applied on top of an automatic model's result: without hints the photo gets the
    ``base`` model's colours; with hints, the hint model's colour in their regions and the base colours
    elsewhere (:func:`~polychrome.color.hints.refine_base`). What the web page shows and downloads by
    default, and ``polychrome colorize --hints FILE --base default``.

    Everything but :meth:`predict_working` (the working size, rendering, the bounded-memory full-resolution
    path) is the hint model's Colorizer's; both models colourise the same working grid."""

    def __init__(self, hints: Colorizer, base: Colorizer):
        if not hints.card.takes_hints:
            raise ValueError(f"model {hints.name} takes no hints: a base result is refined by a hint model such as 'hints'")
        self.model, self.card, self.precision, self.device = hints.model, hints.card, hints.precision, hints.device
        self.hints, self.base = hints, base

    @property
    def name(self) -> str:
        return f"{self.hints.name} on {self.base.name}"

    def predict_working(
        self,
        L_work: torch.Tensor,
        hints: list[Hint] | None = None,
        full_hw: tuple[int, int] | None = None,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        temperature: float | None = None,
        confidence: bool = False,
        timer: Timer = no_timer,
    ) -> Prediction:
        """The base model's prediction, with the hint model's change for ``hints`` (or ``hint_ab`` /
        ``hint_mask``) refining it. Arguments as in :meth:`Colorizer.predict_working` (``temperature`` and
        ``confidence`` go to the base model)."""
        base = self.base.predict_working(L_work, None, full_hw, None, None, temperature, confidence, timer)
        if not hints and hint_ab is None:
            return base
        own0 = self.hints.predict_working(L_work, None, full_hw, timer=timer)
        own = self.hints.predict_working(L_work, hints, full_hw, hint_ab, hint_mask, timer=timer)
        return Prediction(refine_base(base.ab, own0.ab, own.ab), base.confidence)


def _as_8bit_image(image) -> Image.Image | None:
    """A PIL image as it is, and a uint8 array (H, W), (H, W, 1|3|4) as the PIL image of it; None otherwise."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
        if image.ndim == 2 or image.shape[2] == 1:
            return Image.fromarray(image.reshape(image.shape[:2]), "L")
        if image.shape[2] in (3, 4):
            return Image.fromarray(np.ascontiguousarray(image), "RGB" if image.shape[2] == 3 else "RGBA")
    return None


def as_colorizer(model, precision: str = "fp32", device: str | torch.device | None = None) -> Colorizer:
    """A Colorizer for what a front end was given: a Colorizer (as is), a loaded model (its own card), or
    anything :meth:`Colorizer.from_pretrained` takes."""
    if isinstance(model, Colorizer):
        return model
    if isinstance(model, nn.Module):
        return Colorizer(model, precision=precision, device=device)
    return Colorizer.from_pretrained(model, precision=precision, device=device or "cpu")


# --------------------------------------------------------------------------- the one-call API
_cache_lock = threading.Lock()


@lru_cache(maxsize=4)
def _cached(spec: str | os.PathLike) -> Colorizer:
    return Colorizer.from_pretrained(spec)


def _cached_colorizer(spec: str | os.PathLike) -> Colorizer:
    with _cache_lock:  # two first calls load the weights once
        return _cached(spec)


def colorize(img, model=None, size: int | None = None, hints=None, temperature: float | None = None):
    """Colourise a photo at its full resolution and return it in the type it came in.

    Args:
        img: a PIL image (any mode; EXIF orientation is not applied to an in-memory image), or a
            numpy array (H, W) or (H, W, 3|4): uint8 0-255, uint16 0-65535, or float in [0, 1].
        model: a Colorizer, a loaded model, a bundled name or a weight path. Default: ``"default"``, or
            the bundled hint model ``"hints"`` when ``hints`` are given. Names and paths are loaded once
            and cached.
        size: working size (longest side, px); default from the model's card.
        hints: colour hints for a hint model: a list of :class:`polychrome.color.hints.Hint`, the hint-file
            structure ``[{"x": 120, "y": 45, "color": "#aa3322"}, ...]``, or the path of a hint file;
            x, y in pixels of ``img`` (x right, y down). Only each colour's chroma is used; the photo's
            lightness is kept. A model that cannot use hints raises
            :class:`polychrome.color.hints.HintError`, as does a malformed hint or one outside the photo.
        temperature: annealed-mean temperature T > 0 for a classification model (cicgan): lower is more
            vivid, 1 is the plain mean. For this call only; a model without a temperature raises ValueError.
    Returns:
        PIL input: a PIL RGB (RGBA if it had alpha) image of the same size.
        Array input: an array of the same dtype, height and width; (H, W, 3|4) keeps its shape
        (alpha passed through), a grey (H, W) or (H, W, 1) array comes back as (H, W, 3).
    """
    hints = _hint_list(hints)
    if model is None:
        model = "default" if hints is None else "hints"
    if isinstance(model, (str, os.PathLike)):
        colorizer = _cached_colorizer(model)  # a Path stays a path, never a bundled name
    else:
        colorizer = as_colorizer(model)
    return colorizer(img, hints=hints, temperature=temperature, size=size).image


def _hint_list(hints):
    """``colorize``'s ``hints`` argument as a list of Hint (None stays None)."""
    from polychrome.color.hints import load_hint_file, parse_hints

    if hints is None:
        return None
    if isinstance(hints, (str, os.PathLike)):
        return load_hint_file(hints)
    hints = list(hints)
    return hints if all(isinstance(h, Hint) for h in hints) else parse_hints(hints)
