"""The API's request and response models and documented errors (they are the OpenAPI documentation)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import BaseModel, Field

MEDIA = {"png": "image/png", "jpeg": "image/jpeg"}


class ErrorDetail(BaseModel):
    detail: str = Field(description="One line naming the problem.", examples=["upload too large: 31.4 MB > 25 MB"])


class PhotoInfo(BaseModel):
    id: str = Field(description="Photo id for the other endpoints; valid while the photo is kept (LRU).")
    name: str = Field(description="The uploaded file's name.")
    width: int = Field(description="Width of the photo in pixels (EXIF orientation applied); hint x is in 0..width.")
    height: int = Field(description="Height of the photo in pixels; hint y is in 0..height.")
    working_width: int = Field(description="Width of the grid the model colourises on.")
    working_height: int = Field(description="Height of the grid the model colourises on.")
    preview_width: int = Field(description="Width of preview images (colorize, gray).")
    preview_height: int = Field(description="Height of preview images.")
    jpeg_quality: int | None = Field(
        default=None,
        description="The upload's JPEG quality (libjpeg's 1-100 scale, read from its quantisation table); None "
        "when it is not a JPEG. A JPEG result (`/full?format=jpeg`) is written at this quality, else at 92.",
    )


class Suggestion(BaseModel):
    color: str = Field(description="#rrggbb: the proposed chroma shown at the spot's lightness (see `lightness`).")
    ab: tuple[float, float] = Field(description="The proposed Lab chroma (a, b), CIE units; what a hint uses.")
    lightness: float = Field(description="Lab L at which `color` is written: the spot's own L, kept within 40..80.")
    source: Literal["hint-model-auto", "current", "auto-model"] = Field(description="Which model output it is.")
    label: str = Field(description="A short human label for the source.")


class Suggestions(BaseModel):
    x: float
    y: float
    suggestions: list[Suggestion] = Field(description="Distinct colours (Lab chroma at least 8 apart), best first.")


class DoubtSpot(BaseModel):
    x: int = Field(description="Column of the spot in ORIGINAL photo pixels.")
    y: int = Field(description="Row of the spot in ORIGINAL photo pixels.")
    radius: float = Field(description="About how far the doubtful region reaches around it, in photo pixels.")
    doubt: float = Field(description="How unsure: 1 - confidence (0..1), or the models' disagreement (Lab ab).")


class DoubtfulSpots(BaseModel):
    source: Literal["confidence", "disagreement", "none"] = Field(
        description="What was measured: a model's confidence head, or the ab distance between the hint model's "
        "automatic result and the automatic model's; none when the server has neither."
    )
    label: str = Field(description="A short human description of the source.")
    spots: list[DoubtSpot] = Field(description="Where a hint would help most, most doubtful first.")


class LimitsInfo(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    max_photos: int
    max_store_bytes: int
    max_hints: int
    max_json_bytes: int
    jobs: int
    queue: int
    job_pixels: int
    timeout_s: float


class QueueStatus(BaseModel):
    jobs: int = Field(description="Jobs that may run at once.")
    running: int = Field(description="Jobs running now.")
    waiting: int = Field(description="Requests waiting for a slot.")
    queue: int = Field(description="The most requests that may wait; one more is answered 503.")
    position: int = Field(description="Place of the photo's first waiting request (1 = next); 0: none waiting.")
    ticket_running: bool = Field(description="Whether a request about the photo is running now.")
    eta_s: float = Field(description="About how many seconds until that request starts (a rough guess); 0 if none.")


class ServerInfo(BaseModel):
    model: str = Field(description="The model that colourises (a hint model unless told otherwise).")
    uses_hints: bool = Field(description="Whether that model takes colour hints; if not, any hint is a 422.")
    auto_model: str | None = Field(description="The automatic model asked for suggestions, if any.")
    starts_from_auto: bool = Field(
        False, description="Whether the result without hints is the automatic model's, with hints refining it.")
    working_size: int = Field(description="Longest side of the model's working grid, px.")
    preview_size: int = Field(description="Longest side of preview images, px.")
    precision: str
    limits: LimitsInfo


class HintIn(BaseModel):
    """One colour hint (documentation of the request bodies; they are parsed by polychrome.color.hints)."""

    x: float = Field(ge=0, description="Column in the ORIGINAL photo's pixels (0 = left edge), < width.")
    y: float = Field(ge=0, description="Row in the ORIGINAL photo's pixels (0 = top edge), < height.")
    color: str = Field(
        pattern=r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$",
        description="sRGB colour #rrggbb; only its chroma (Lab a, b) is used, the photo keeps its own L.",
    )


HINT_LIST_BODY = {
    "requestBody": {
        "required": True,
        "description": "Colour hints in the hint-file format, in ORIGINAL photo pixel coordinates; [] for none.",
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": HintIn.model_json_schema()},
                "example": [{"x": 120, "y": 45, "color": "#aa3322"}],
            }
        },
    }
}

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "No such photo (never uploaded, or dropped from memory: upload again)."},
    413: {"model": ErrorDetail, "description": "A body or file over its size limit, or a photo over the pixel limit."},
    422: {"model": ErrorDetail, "description": "Malformed or impossible hints or parameters."},
    503: {"model": ErrorDetail, "description": "Every job slot is busy and the queue is full; retry after `Retry-After` s."},
    504: {"model": ErrorDetail, "description": "The model work took longer than the time limit."},
}


PhotoId = Annotated[str, PathParam(description="The id `POST /api/photos` returned.")]
PreviewFormat = Annotated[Literal["jpeg", "png"], Query(description="Image format of the preview.")]
FullFormat = Annotated[Literal["png", "jpeg"], Query(description="Image format of the result (JPEG at the upload's own quality, or 92).")]


def image_responses(description: str, media: tuple[str, ...] = ("image/jpeg", "image/png")) -> dict:
    return {200: {"content": {m: {} for m in media}, "description": description}}
