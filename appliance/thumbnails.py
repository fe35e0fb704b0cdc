"""The thumbnail cache: one JPEG per content hash under DATA_DIR/thumbnails, written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

FACE_SIZE = 160  # pixels a side of a face crop
FACE_MARGIN = 0.3  # of the face box, around it: the hair and chin that make a face recognisable


def thumbnail_path(thumbnails_dir: Path, content_hash: str) -> Path:
    return thumbnails_dir / content_hash[:2] / f"{content_hash}.jpg"


def face_path(thumbnails_dir: Path, content_hash: str, face_id: int) -> Path:
    """Beside its image's thumbnail, so that forgetting the content forgets its faces' crops too."""
    return thumbnails_dir / content_hash[:2] / f"{content_hash}-face-{face_id}.jpg"


def write_thumbnail(pixels: Image.Image, path: Path, size: int) -> None:
    if path.exists():
        return
    scale = min(1.0, size / max(pixels.size))
    target = (max(1, round(pixels.width * scale)), max(1, round(pixels.height * scale)))
    # reducing_gap: a fast box reduction first, then a short bicubic step (a third of LANCZOS's cost).
    write_jpeg(pixels.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0), path)


def write_face_crop(pixels: Image.Image, box: tuple[float, float, float, float], path: Path) -> None:
    """A square crop around a face (box: fractions of the image), FACE_SIZE pixels a side."""
    width, height = pixels.size
    x1, y1, x2, y2 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    side = max(x2 - x1, y2 - y1) * (1 + 2 * FACE_MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    crop = pixels.crop((round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)))
    write_jpeg(crop.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BICUBIC, reducing_gap=2.0), path)


def write_jpeg(image: Image.Image, path: Path) -> None:
    """Temp file, fsync, rename: a crash or power cut never leaves half a picture (or an empty one, which a
    rename committed before its data would)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, "JPEG", quality=82)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def forget(thumbnails_dir: Path, content_hashes: Iterable[str]) -> None:
    """Delete the thumbnails (and face crops) of content no image has any more."""
    for content_hash in content_hashes:
        thumbnail_path(thumbnails_dir, content_hash).unlink(missing_ok=True)
        for crop in thumbnails_dir.glob(f"{content_hash[:2]}/{content_hash}-face-*.jpg"):
            crop.unlink(missing_ok=True)
