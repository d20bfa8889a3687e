"""Datasets over plain folders of photos, and their transforms."""

from polychrome.data.folder import GRAY_AB_THRESHOLD, ColorPhotoFolder, is_grayscale

__all__ = ["GRAY_AB_THRESHOLD", "ColorPhotoFolder", "is_grayscale"]
