"""The local web page (static files, no build step) and the few routes it needs beyond the contract."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import bottle
from PIL import Image
from pydantic import StringConstraints

from ..catalog import gone_from_disk
from ..decode import DecodeError, decode
from ..disk import full_error
from ..errors import not_found
from ..source import MAX_FILE_BYTES, SourceError, open_source
from ..thumbnails import thumbnail_path, write_thumbnail
from .images import indexed_image
from .routing import PathQuery, Query, RouteTable

routes = RouteTable()
STATIC = Path(__file__).resolve().parent.parent / "web"
# What bottle's static_file says an original is, by its suffix (mimetypes), for OpenAPI.
ORIGINAL_TYPES = (
    "image/jpeg",
    "image/png",
    "image/bmp",
    "image/gif",
    "image/webp",
    "image/tiff",
    "image/heic",
    "image/heif",
    "image/avif",
    "application/octet-stream",
)


class StaticQuery(Query):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z]+\.(js|css|html)$")]


@routes.get("/", needs_token=False, content_types=("text/html",))
def index(ctx):
    """The web page."""
    return bottle.static_file("index.html", root=STATIC)


@routes.get(
    "/static/{name}",
    query=StaticQuery,
    needs_token=False,
    errors=(404,),
    content_types=("text/javascript", "text/css", "text/html"),
)
def static(ctx, req: StaticQuery):
    """The web page's script and style."""
    return bottle.static_file(req.name, root=STATIC)


def on_disk_image(ctx, raw: str):
    """The index row of an image whose file is still there; one that is gone is 404 and leaves the listings
    (the watch loop marks it missing) instead of being served from the cache."""
    image = indexed_image(ctx, raw)
    if not os.path.isfile(image["path"]):
        ctx.watch.gone(image["path"])
        raise gone_from_disk(image["path"])
    return image


@routes.get("/images/thumbnail", query=PathQuery, errors=(403, 404, 507), content_types=("image/jpeg",))
def thumbnail(ctx, req: PathQuery):
    """A JPEG thumbnail of an indexed image, made now if it is missing (after a restore, say)."""
    image = on_disk_image(ctx, req.path)
    if image["status"] == "failed":
        raise not_found(f"{req.path} has no thumbnail: its analysis failed ({image['error']})")
    if image["content_hash"] is None:
        raise not_found(f"{req.path} has not been analysed yet.")
    path = thumbnail_path(ctx.settings.data_dir / "thumbnails", image["content_hash"])
    if not path.exists():
        pixels = decoded_original(ctx, image, ctx.settings.thumbnail_size)
        with disk_full_as_507(ctx):
            write_thumbnail(pixels, path, ctx.settings.thumbnail_size)
    return cached_jpeg(path)


def decoded_original(ctx, image, size: int) -> Image.Image:
    """The analysed file decoded again (longest side about `size`), for a thumbnail made on demand; 404 when
    it changed since its analysis (the picture would not be of what was analysed) or cannot be read."""
    try:
        with open_source(image["path"], ctx.roots, MAX_FILE_BYTES) as source:
            if source.digest != image["content_hash"]:
                raise SourceError("The file has changed since it was analysed.")
            return decode(source.file, ctx.settings.max_image_pixels, size, ctx.decode_budget).pixels
    except (SourceError, DecodeError) as error:
        raise not_found(f"No thumbnail for {image['path']}: {error}") from None


@contextmanager
def disk_full_as_507(ctx) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise full_error(ctx.settings.data_dir) from None
        raise


def cached_jpeg(path: Path) -> bottle.HTTPResponse:
    response = bottle.static_file(path.name, root=path.parent, mimetype="image/jpeg")
    response.set_header("Cache-Control", "private, max-age=86400")
    return response


@routes.get("/images/original", query=PathQuery, errors=(403, 404), content_types=ORIGINAL_TYPES)
def original(ctx, req: PathQuery):
    """The photo file itself, for an indexed image only."""
    path = Path(on_disk_image(ctx, req.path)["path"])
    return bottle.static_file(path.name, root=path.parent)
