"""/albums routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, BaseModel, Field, StringConstraints

from .. import albums
from ..words import plural
from .routing import Message, PathText, Query, Request, RouteTable

routes = RouteTable()

AlbumName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Description = Annotated[str, StringConstraints(max_length=10_000)]


class CreateAlbum(Request):
    name: AlbumName
    description: Description | None = None


class AlbumRef(Request):
    name: AlbumName


class AddToAlbum(Request):
    album_name: AlbumName
    paths: Annotated[list[PathText], Field(min_length=1)]


class RemoveFromAlbum(Request):
    album_name: AlbumName
    path: PathText


class EditDescription(Request):
    name: AlbumName = Field(validation_alias=AliasChoices("name", "album_name"))
    description: Description


class ViewAlbumQuery(Query):
    album_name: AlbumName


class AddedMessage(Message):
    added: int


class AlbumPhotos(BaseModel):
    album_name: str
    description: str | None
    photos: list[str]


class AlbumSummary(BaseModel):
    album_name: str
    description: str | None
    image_paths: list[str]
    created_at: str


class AllAlbums(BaseModel):
    albums: list[AlbumSummary]


@routes.post("/albums/create-album", body=CreateAlbum, response=Message, status=201, errors=(409,))
def create_album(ctx, req: CreateAlbum) -> Message:
    """Create an album with a unique name and an optional description."""
    albums.create(ctx.db, req.name, req.description)
    return Message(message=f"Album '{req.name}' created successfully")


@routes.delete("/albums/delete-album", body=AlbumRef, response=Message, errors=(404,))
def delete_album(ctx, req: AlbumRef) -> Message:
    """Delete an album; its photos stay indexed."""
    albums.delete(ctx.db, req.name)
    return Message(message=f"Album '{req.name}' deleted successfully")


@routes.post("/albums/add-multiple-to-album", body=AddToAlbum, response=AddedMessage, errors=(403, 404))
def add_multiple_to_album(ctx, req: AddToAlbum) -> AddedMessage:
    """Append indexed images to an album, in order; all of them or none."""
    paths = ctx.roots.resolve_all(req.paths)
    added = albums.add_images(ctx.db, req.album_name, paths)
    return AddedMessage(message=f"Added {plural(added, 'image')} to album '{req.album_name}'", added=added)


@routes.delete("/albums/remove-from-album", body=RemoveFromAlbum, response=Message, errors=(403, 404))
def remove_from_album(ctx, req: RemoveFromAlbum) -> Message:
    """Remove one image from an album."""
    albums.remove_image(ctx.db, req.album_name, ctx.roots.resolve(req.path))
    return Message(message=f"Image removed from album '{req.album_name}'")


@routes.get("/albums/view-album", query=ViewAlbumQuery, response=AlbumPhotos, errors=(404,), cached=("albums",))
def view_album(ctx, req: ViewAlbumQuery) -> bytes:
    """An album's photos in the order they were added."""
    return albums.view_json(ctx.db, req.album_name)


@routes.put("/albums/edit-album-description", body=EditDescription, response=Message, errors=(404,))
def edit_album_description(ctx, req: EditDescription) -> Message:
    """Replace an album's description."""
    albums.set_description(ctx.db, req.name, req.description)
    return Message(message=f"Description of album '{req.name}' updated")


@routes.get("/albums/view-all", response=AllAlbums, cached=("albums",))
def view_all(ctx) -> bytes:
    """Every album with its photos."""
    return albums.view_all_json(ctx.db, ctx.cache)
