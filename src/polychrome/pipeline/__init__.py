"""The colourisation path: tensors (:mod:`~polychrome.pipeline.core`), how the model call runs
(:mod:`~polychrome.pipeline.precision`) and files and batches (:mod:`~polychrome.pipeline.batch`).
Front ends reach it through :class:`polychrome.Colorizer`."""

from polychrome.pipeline.batch import BatchReport, Failure, Job, colorize_batch, colorize_file, confidence_path, plan
from polychrome.pipeline.core import (
    STAGES,
    Prediction,
    gray_array,
    gray_rgb,
    join_lab,
    lightness,
    no_timer,
    predict,
    resize_l,
    to_array,
    upsample,
    working_shape,
)
from polychrome.pipeline.precision import PRECISIONS, call_model, check_precision, run_model, to_channels_last

__all__ = [
    "PRECISIONS", "STAGES", "BatchReport", "Failure", "Job", "Prediction", "call_model", "check_precision",
    "colorize_batch", "colorize_file", "confidence_path", "gray_array", "gray_rgb", "join_lab", "lightness",
    "no_timer", "plan", "predict", "resize_l", "run_model", "to_array", "to_channels_last", "upsample",
    "working_shape",
]
