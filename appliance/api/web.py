"""The local web page (static files, no build step) and the few routes it needs beyond the contract."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Annotated

import bottle
from pydantic import BaseModel, Field, StringConstraints

from ..catalog import ANALYSED, gone_from_disk
from ..decode import DecodeError, decode
from ..disk import full_error
from ..errors import not_found
from ..source import MAX_FILE_BYTES, SourceError, open_source
from ..thumbnails import thumbnail_path, write_thumbnail
from .images import indexed_image
from .routing import MAX_SQL_INT, Message, PathQuery, Query, Request, RouteTable

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


class PersonPath(Query):
    person_id: Annotated[int, Field(ge=1, le=MAX_SQL_INT)]


class Rename(Request):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)]


class FaceBox(BaseModel):
    person_id: int
    score: float
    box: list[float] = Field(description="[x1, y1, x2, y2] as fractions of the width and height.")


class ImageFaces(BaseModel):
    faces: list[FaceBox]


class Person(BaseModel):
    person_id: int
    name: str | None
    photos: int
    cover: str = Field(description="The path of one photo showing this person.")


class People(BaseModel):
    people: list[Person]


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
        try:
            with open_source(image["path"], ctx.roots, MAX_FILE_BYTES) as source:
                if source.digest != image["content_hash"]:  # its thumbnail would not be of the analysed content
                    raise SourceError("The file has changed since it was analysed.")
                settings = ctx.settings
                decoded = decode(source.file, settings.max_image_pixels, settings.thumbnail_size, ctx.decode_budget)
        except (SourceError, DecodeError) as error:
            raise not_found(f"No thumbnail for {req.path}: {error}") from None
        try:
            write_thumbnail(decoded.pixels, path, ctx.settings.thumbnail_size)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise full_error(ctx.settings.data_dir) from None
            raise
    response = bottle.static_file(path.name, root=path.parent, mimetype="image/jpeg")
    response.set_header("Cache-Control", "private, max-age=86400")
    return response


@routes.get("/images/original", query=PathQuery, errors=(403, 404), content_types=ORIGINAL_TYPES)
def original(ctx, req: PathQuery):
    """The photo file itself, for an indexed image only."""
    path = Path(on_disk_image(ctx, req.path)["path"])
    return bottle.static_file(path.name, root=path.parent)


@routes.get("/tag/faces", query=PathQuery, response=ImageFaces, errors=(403, 404))
def image_faces(ctx, req: PathQuery) -> ImageFaces:
    """The faces found in one image, with the person each belongs to."""
    rows = ctx.db.read().execute(
        "SELECT cluster_id, score, x1, y1, x2, y2 FROM faces WHERE image_id = ? ORDER BY x1",
        (indexed_image(ctx, req.path)["id"],),
    )
    return ImageFaces(faces=[FaceBox(person_id=r[0], score=r[1], box=[r[2], r[3], r[4], r[5]]) for r in rows])


@routes.get("/tag/people", response=People, cached=True)
def people(ctx) -> People:
    """Every person (face cluster) with a name if given, a photo count and a cover photo; largest first."""
    rows = ctx.db.read().execute(
        "SELECT faces.cluster_id, people.name, count(DISTINCT faces.image_id), min(images.path)"
        " FROM faces JOIN images ON images.id = faces.image_id LEFT JOIN people ON people.id = faces.cluster_id"
        f" WHERE {ANALYSED} GROUP BY faces.cluster_id ORDER BY 3 DESC, 1"
    )
    return People(people=[Person(person_id=r[0], name=r[1], photos=r[2], cover=r[3]) for r in rows])


@routes.put("/tag/people/{person_id}", query=PersonPath, body=Rename, response=Message, errors=(404,))
def rename_person(ctx, req: Rename, person: PersonPath) -> Message:
    """Name a person (an empty name clears it)."""
    with ctx.db.write() as conn:
        if conn.execute("UPDATE people SET name = ? WHERE id = ?", (req.name or None, person.person_id)).rowcount == 0:
            raise not_found(f"There is no person {person.person_id}.")
    return Message(message=f"Person {person.person_id} renamed")
