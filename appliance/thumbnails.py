"""The thumbnail cache: one JPEG per content hash under DATA_DIR/thumbnails, written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image


def thumbnail_path(thumbnails_dir: Path, content_hash: str) -> Path:
    return thumbnails_dir / content_hash[:2] / f"{content_hash}.jpg"


def write_thumbnail(pixels: Image.Image, path: Path, size: int) -> None:
    """Temp file, fsync, rename: a crash or power cut never leaves half a thumbnail (or an empty one, which a
    rename committed before its data would)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = min(1.0, size / max(pixels.size))
    target = (max(1, round(pixels.width * scale)), max(1, round(pixels.height * scale)))
    # reducing_gap: a fast box reduction first, then a short bicubic step (a third of LANCZOS's cost).
    thumbnail = pixels.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            thumbnail.save(f, "JPEG", quality=82)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def forget(thumbnails_dir: Path, content_hashes: Iterable[str]) -> None:
    """Delete the thumbnails of content no image has any more."""
    for content_hash in content_hashes:
        thumbnail_path(thumbnails_dir, content_hash).unlink(missing_ok=True)
