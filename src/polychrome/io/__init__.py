"""Photos in and out: files (:mod:`~polychrome.io.images`) and in-memory images (:mod:`~polychrome.io.arrays`).
The only place that knows about PIL and files, and the one 8-bit quantiser (:func:`to_uint8`)."""

from polychrome.io.arrays import Photo, read_photo
from polychrome.io.images import (
    BYTES_PER_PIXEL,
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    UNREAD_PHOTO_FORMATS,
    ArchiveMetadata,
    FolderScan,
    ImageError,
    ImageWarning,
    archive_metadata,
    check_writable_folder,
    default_file_mode,
    encode_image,
    find_images,
    finite_unit,
    grey_to_pil,
    image_format,
    is_complete_image,
    is_image_path,
    is_inside,
    load_rgb,
    open_image,
    PhotoPixels,
    photo_pixels,
    pil_to_rgb_array,
    read_image,
    rgb_array_to_pil,
    save_image_atomic,
    scan_folder,
    to_uint8,
    to_uint16,
    too_many_pixels,
    unread_photo_format,
    webp_is_lossless,
    write_json_atomic,
)

__all__ = [
    "BYTES_PER_PIXEL", "IMAGE_EXTENSIONS", "MAX_PIXELS", "UNREAD_PHOTO_FORMATS", "ArchiveMetadata", "FolderScan",
    "ImageError", "ImageWarning", "Photo", "archive_metadata", "check_writable_folder", "default_file_mode",
    "encode_image", "find_images", "finite_unit", "grey_to_pil", "image_format", "is_complete_image",
    "is_image_path", "is_inside", "load_rgb", "open_image", "PhotoPixels", "photo_pixels", "pil_to_rgb_array",
    "read_image", "read_photo", "rgb_array_to_pil", "save_image_atomic", "scan_folder", "to_uint8", "to_uint16",
    "too_many_pixels", "unread_photo_format", "webp_is_lossless", "write_json_atomic",
]
