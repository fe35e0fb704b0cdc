"""Decoding one photo file into the upright RGB image the models see, and the facts read on the way.

Memory is what a hostile or unusual file threatens on a 4 GB device: each decode first holds, in a budget shared
by every decode of the process, what its decoder and the reduction to the analysis size will allocate, counted
from the header before any pixel is decoded. The native pixels are reduced strip by strip, so no full-size
converted copy is ever made.
"""

from __future__ import annotations

import math
import os
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
# Peak memory of each decoder as a multiple of the pixels it decodes, measured as VmHWM growth on 4000x4000 files
# (Pillow 13, libjpeg-turbo 3.2, libwebp 1.6, libavif 1.4 with dav1d, libheif 1.23 with libde265, libtiff 4.7);
# about 2 MiB of each measurement is fixed cost.
DECODER_FACTORS = {
    "JPEG": 1,  # a few rows at a time, at the draft scale (progressive and multi-scan: jpeg_coefficient_bytes)
    "MPO": 1,  # a JPEG with more frames after it, decoded as one
    "PNG": 1,  # inflated straight into the image, interlaced or not, 8 or 16 bits: 1.03x
    "GIF": 1,  # the first frame only, straight into the image: 1.1x
    "BMP": 3,  # RLE is expanded in Python into a bytearray and a bytes copy beside the image: 3.0x
    "TIFF": 3,  # libtiff's buffer of one strip, the whole image if one strip holds it: 2.05x 8-bit, 3.0x 16-bit RGBA
    # (anonymous memory: libtiff maps the file, so the compressed strips are page cache the kernel can drop)
    # These three decode through RGBA buffers of their own, so theirs are multiples of 4 bytes per pixel:
    "WEBP": 4,  # WebPAnimDecoder's canvas and previous canvas, the frame as bytes, the image: 4.1x, lossy or not
    "AVIF": 4.4,  # YUV planes, RGB out, the image: 2.4x 8-bit 4:2:0, 3.0x with alpha, 4.35x 10/12-bit 4:4:4 + alpha
    "HEIF": 5.2,  # the same in libheif: 2.4x 8-bit 4:4:4, 3.9x 10-bit 4:4:4, 5.2x 10/12-bit 4:4:4 + alpha
}
HEIF_8BIT_420_FACTOR = 2.2  # phones' HEIC (pillow_heif says so in its info): 1.9x, 2.1x with alpha
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
    """Bytes that the decodes of one process may allocate at once (`decode_budget_mib`)."""

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


def decoder_bytes(image: Image.Image) -> int:
    """What the image's decoder allocates at its peak, counted from the header: its pixels times its format's factor."""
    pixels = decoded_bytes(image)
    if image.format in ("WEBP", "AVIF", "HEIF"):
        pixels = 4 * image.width * image.height  # whatever Pillow's mode, their decoders work in RGBA
    factor = DECODER_FACTORS[image.format]
    if image.format == "HEIF" and (image.info.get("bit_depth"), image.info.get("chroma")) == (8, 420):
        factor = HEIF_8BIT_420_FACTOR
    return math.ceil(pixels * factor)


def first_scan_has_every_component(file: BinaryIO, components: int) -> bool:
    """Whether a JPEG's first scan codes all its components, read by walking its marker segments as libjpeg does;
    anything unusual on the way is a no."""
    file.seek(2)  # past SOI; Pillow seeks back to the image data itself when it loads
    while len(segment := file.read(4)) == 4 and segment[0] == 0xFF and 0xC0 <= segment[1] <= 0xFE:
        if segment[1] == 0xDA:  # SOS: its length, then the number of components it codes
            return file.read(1) == bytes([components])
        if 0xD0 <= segment[1] <= 0xD9:  # RSTn, SOI and EOI have no length
            return False
        file.seek(int.from_bytes(segment[2:], "big") - 2, os.SEEK_CUR)
    return False


def jpeg_coefficient_bytes(image: Image.Image, file: BinaryIO) -> int:
    """libjpeg's buffer of every DCT coefficient of a progressive or multi-scan JPEG, else 0. It is allocated at full
    size whatever the draft scale: 64 coefficients of 2 bytes per 8x8 block of each component (measured: exact)."""
    if image.format not in ("JPEG", "MPO") or (
        not image.info.get("progressive") and first_scan_has_every_component(file, len(image.layer))
    ):
        return 0
    h_max = max([1, *(h for _, h, _, _ in image.layer)])
    v_max = max([1, *(v for _, _, v, _ in image.layer)])
    blocks_per_mcu = sum(h * v for _, h, v, _ in image.layer)
    return 128 * -(-image.width // (8 * h_max)) * -(-image.height // (8 * v_max)) * blocks_per_mcu


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


def reduction_plan(image: Image.Image, analysis_size: int) -> tuple[int, int, bool]:
    """The box-reduction factor to about `analysis_size`, the rows converted per strip (whole blocks of the
    reduction), and whether strips are needed at all (not for an RGB image that only needs the final resize)."""
    width, height = image.size
    factor = max(1, max(width, height) // analysis_size)
    rows = max(1, STRIP_PIXELS // (width * factor)) * factor
    return factor, rows, factor > 1 or image.mode != "RGB" or image.has_transparency_data


def reduction_bytes(image: Image.Image, analysis_size: int) -> int:
    """What reduce_to_rgb allocates beside the native pixels: the reduced RGB image, up to four 4-byte copies of a
    strip while it is converted (cropped, as floats or RGBA, as RGB), and the final resize (summed: the allocator
    keeps what the strips freed)."""
    width, height = image.size
    factor, rows, in_strips = reduction_plan(image, analysis_size)
    columns, lines = -(-width // factor), -(-height // factor)
    resized = 0
    if max(columns, lines) > analysis_size:  # Pillow resizes across first, into a temporary image as tall as before
        resized = min(columns, analysis_size) * lines + min(columns * lines, analysis_size**2)
    if not in_strips:
        return 4 * resized
    return 4 * (columns * lines + 4 * width * min(rows, height) + resized)


def reduce_to_rgb(image: Image.Image, analysis_size: int) -> Image.Image:
    """RGB at most `analysis_size` on its longest side, converted and box-reduced a strip at a time."""
    width, height = image.size
    factor, rows, in_strips = reduction_plan(image, analysis_size)
    if not in_strips:
        reduced = image
    else:
        scale = depth_scale(image)
        reduced = Image.new("RGB", (-(-width // factor), -(-height // factor)))
        for top in range(0, height, rows):
            strip = strip_to_rgb(image.crop((0, top, width, min(height, top + rows))), scale)
            reduced.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    if max(reduced.size) > analysis_size:
        reduced.thumbnail((analysis_size, analysis_size), Image.Resampling.BILINEAR)
    return reduced


def decode(file: BinaryIO, max_pixels: int, analysis_size: int, budget: DecodeBudget) -> DecodedImage:
    """Decode the open image file to RGB of about `analysis_size`, what it allocates held under `budget`."""
    try:
        image = Image.open(file, formats=FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise DecodeError(
                f"{width}x{height} is more than the {max_pixels} pixels allowed (decompression-bomb limit)."
            )
        coefficients = jpeg_coefficient_bytes(image, file)  # before draft(), which changes image.size
        # JPEG only: libjpeg decodes at 1/2, 1/4 or 1/8 scale. Asking for 3/4 of the analysis size lets a
        # 12 MP photo decode at 1/4 (1000 px) with no resize after, instead of at 1/2 and a resize; measured,
        # that resize was a fifth of all ingest CPU.
        scale = DRAFT_FRACTION * analysis_size / max(width, height)
        image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        with budget.hold(coefficients + decoder_bytes(image) + reduction_bytes(image, analysis_size)):
            image.load()
            exif = image.getexif()  # only now: a PNG's getexif() decodes all its pixels to look for an eXIf chunk
            taken_at = exif_taken_at(exif)
            orientation = exif.get(ExifTags.Base.Orientation)
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
