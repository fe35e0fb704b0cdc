"""Decoding one photo file into the upright RGB image the models see, and the facts read on the way.

Memory is what a hostile or unusual file threatens on a 4 GB device: the native pixels are decoded under a
budget shared by every decode of the process, and reduced to the analysis size strip by strip, so no
full-size converted copy is ever made.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

import numpy as np
import pillow_heif
from PIL import ExifTags, Image, ImageMode, UnidentifiedImageError

# decode() checks the configured limit itself, from the header, before any pixel is decoded;
# Pillow's process-wide default would otherwise override the setting.
Image.MAX_IMAGE_PIXELS = None
# One decode thread per image: the ingest workers already decode several images at once.
pillow_heif.register_heif_opener(decode_threads=1)

# Only photo formats: Pillow would otherwise also open EPS (through Ghostscript), PSD, ICO and more.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "HEIF", "AVIF")
NOT_AN_IMAGE = (
    "Cannot decode the image: this file is not an image this appliance can read"
    " (JPEG, PNG, GIF, BMP, TIFF, WebP, HEIC or AVIF)."
)
DRAFT_FRACTION = 0.75
STRIP_PIXELS = 1 << 20  # per strip converted at a time: 4 MB as RGBA
# EXIF orientation -> the transpose that makes the stored pixels upright (as ImageOps.exif_transpose does).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class DecodeError(Exception):
    """The file is not an image this appliance can read; the message says why."""


@dataclass
class DecodedImage:
    pixels: Image.Image  # RGB, upright, longest side at most the analysis size
    width: int  # of the original, after EXIF orientation
    height: int
    taken_at: str | None


class DecodeBudget:
    """Bytes of decoded pixels that the decodes of one process may hold at once (`decode_budget_mib`)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_use = 0
        self._freed = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Wait until `size` bytes of the budget are free and hold them for the block."""
        if size > self.limit:
            raise DecodeError(
                f"Decoding this image takes {math.ceil(size / 2**20)} MiB, more than the {self.limit >> 20} MiB"
                " that all decodes may hold at once (setting decode_budget_mib)."
            )
        with self._freed:
            self._freed.wait_for(lambda: self.in_use + size <= self.limit)
            self.in_use += size
        try:
            yield
        finally:
            with self._freed:
                self.in_use -= size
                self._freed.notify_all()


def exif_taken_at(exif: Image.Exif) -> str | None:
    """DateTimeOriginal (else DateTime) as ISO 8601 local time, or None when absent or malformed."""
    raw = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def decoded_bytes(image: Image.Image) -> int:
    """What Pillow allocates for the pixels: one 4-byte word per pixel for every multi-band mode."""
    mode = ImageMode.getmode(image.mode)
    return image.width * image.height * (4 if len(mode.bands) > 1 else int(mode.typestr[-1]))


def depth_scale(image: Image.Image) -> float | None:
    """The factor bringing a deeper-than-8-bit single band to 0-255 (convert("L") would clip it), or None."""
    if image.mode.startswith("I;16"):
        return 255 / 65535
    if image.mode not in ("I", "F"):
        return None
    top = image.getextrema()[1]  # 32-bit ints and floats have no fixed range: take the one the values fit
    return 255 / next((limit for limit in (1.0, 255, 65535) if top <= limit), top)


def strip_to_rgb(strip: Image.Image, scale: float | None) -> Image.Image:
    """One strip as 8-bit RGB, any transparency composited onto white (transparent pixels are often black)."""
    if scale is not None:
        strip = Image.fromarray(np.clip(np.asarray(strip, np.float32) * scale + 0.5, 0, 255).astype(np.uint8))
    if strip.has_transparency_data:
        rgba = strip.convert("RGBA")
        strip = Image.new("RGB", rgba.size, (255, 255, 255))
        strip.paste(rgba, mask=rgba)
    return strip if strip.mode == "RGB" else strip.convert("RGB")


def reduce_to_rgb(image: Image.Image, analysis_size: int) -> Image.Image:
    """RGB at most `analysis_size` on its longest side, converted and box-reduced a strip at a time."""
    width, height = image.size
    factor = max(1, max(width, height) // analysis_size)
    if factor == 1 and image.mode == "RGB" and not image.has_transparency_data:
        reduced = image
    else:
        scale = depth_scale(image)
        rows = max(1, STRIP_PIXELS // (width * factor)) * factor  # whole blocks of the reduction per strip
        reduced = Image.new("RGB", (-(-width // factor), -(-height // factor)))
        for top in range(0, height, rows):
            strip = strip_to_rgb(image.crop((0, top, width, min(height, top + rows))), scale)
            reduced.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    if max(reduced.size) > analysis_size:
        reduced.thumbnail((analysis_size, analysis_size), Image.Resampling.BILINEAR)
    return reduced


def decode(file: BinaryIO, max_pixels: int, analysis_size: int, budget: DecodeBudget) -> DecodedImage:
    """Decode the open image file to RGB of about `analysis_size`, its native pixels held under `budget`."""
    try:
        image = Image.open(file, formats=FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise DecodeError(
                f"{width}x{height} is more than the {max_pixels} pixels allowed (decompression-bomb limit)."
            )
        exif = image.getexif()
        taken_at = exif_taken_at(exif)
        orientation = exif.get(ExifTags.Base.Orientation)
        # JPEG only: libjpeg decodes at 1/2, 1/4 or 1/8 scale. Asking for 3/4 of the analysis size lets a
        # 12 MP photo decode at 1/4 (1000 px) with no resize after, instead of at 1/2 and a resize; measured,
        # that resize was a fifth of all ingest CPU.
        scale = DRAFT_FRACTION * analysis_size / max(width, height)
        image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        with budget.hold(decoded_bytes(image)):
            image.load()
            pixels = reduce_to_rgb(image, analysis_size)
            del image  # the native pixels go before their share of the budget is given back
    except DecodeError:
        raise
    except UnidentifiedImageError:  # its message holds the file object's repr
        raise DecodeError(NOT_AN_IMAGE) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise DecodeError(f"Cannot decode the image: {str(error).strip()}") from None
    if orientation in UPRIGHT:  # turned upright at the analysis size: cheaper than at the native one
        pixels = pixels.transpose(UPRIGHT[orientation])
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(pixels, width, height, taken_at)
