"""/images routes: the index, adding files and folders to the queue, and job progress."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from .. import catalog, jobs
from ..errors import bad_request
from ..paths import is_image_name, is_utf8_name, kind_of
from ..thumbnails import forget
from ..words import plural
from .routing import MAX_SQL_INT, Message, PathQuery, PathText, Query, Request, RouteTable, respond

routes = RouteTable()


class PageQuery(Query):
    offset: Annotated[int, Field(ge=0, le=MAX_SQL_INT)] = 0
    limit: Annotated[int | None, Field(ge=1, le=100_000)] = None


class JobQuery(Query):
    job_id: Annotated[str, StringConstraints(max_length=64)]


class AddImages(Request):
    paths: Annotated[list[PathText], Field(min_length=1)]


class AddFolder(Request):
    folder_path: PathText


class DeleteImage(Request):
    path: PathText


class ImageList(BaseModel):
    images: list[str]
    total: int | None = Field(None, description="Present when offset or limit was given.")


class Queued(Message):
    job_id: str | None = Field(None, description="Absent when nothing was queued or skipped.")
    queued: int
    skipped: int | None = Field(None, description="Files that cannot be indexed; the job lists them with reasons.")


class DetectedObject(BaseModel):
    label: str
    score: float
    box: list[float] = Field(description="[x1, y1, x2, y2] as fractions of the width and height.")


class ImageObjects(BaseModel):
    classes: list[str]
    objects: list[DetectedObject]
    status: str = Field(description="done, pending or failed")
    error: str | None = Field(None, description="Why the analysis failed, when it did.")


class AllImageObjects(BaseModel):
    data: dict[str, list[str]]


class JobFailure(BaseModel):
    path: str
    error: str | None


class JobProgress(BaseModel):
    job_id: str
    kind: str
    source: str | None
    created_at: str
    total: int
    queued: int
    running: int
    done: int
    failed: int
    progress: float = Field(description="Finished items over all items, 0 to 1.")
    finished: bool
    failures: list[JobFailure] = Field(description="The first 100 failed files with their reasons.")


@routes.get("/images/all-images", query=PageQuery, response=ImageList, cached=("library",))
def all_images(ctx, req: PageQuery) -> bytes:
    """Every indexed image, sorted by path; paged with offset and limit."""
    return catalog.all_paths_json(ctx.db, ctx.listings, req.offset, req.limit)


def indexed_image(ctx, raw: str):
    """The index row of the image a client named: 403 outside the roots, 404 when not indexed."""
    return catalog.image_row(ctx.db.read(), ctx.roots.resolve(raw))


def queue(ctx, kind: str, paths, source=None, skipped=(), seen=None) -> jobs.Enqueued:
    enqueued = jobs.enqueue(ctx.db, kind, paths, source, skipped, seen)
    ctx.worker.notify()
    return enqueued


@routes.post("/images/images", body=AddImages, response=Queued, status=202, errors=(403,), also=(200,))
def add_images(ctx, req: AddImages) -> Queued:
    """Queue image files for indexing and analysis in the background; 200 with queued 0 when every one of
    them is already queued or being analysed."""
    paths = ctx.roots.resolve_all(req.paths)
    kinds = {path: kind_of(path) for path in paths}
    folders = [str(path) for path, kind in kinds.items() if kind == "folder"]
    if folders:
        raise bad_request("These are folders, not files: " + ", ".join(folders) + ". Use /images/add-folder.")
    missing = [str(path) for path, kind in kinds.items() if kind != "file"]
    if missing:
        raise bad_request("These files do not exist (or cannot be read): " + ", ".join(missing) + ".")
    unsupported = [str(path) for path in paths if not is_image_name(path)]
    if unsupported:
        raise bad_request("These are not supported image types: " + ", ".join(unsupported) + ".")
    enqueued = queue(ctx, "images", paths)
    if enqueued.job_id is None:
        return respond(200, Queued(message="These images are already queued or being analysed", queued=0))
    return Queued(
        message="Images are being processed in the background", job_id=enqueued.job_id, queued=enqueued.queued
    )


@routes.post("/images/add-folder", body=AddFolder, response=Queued, status=202, errors=(403,), also=(200,))
def add_folder(ctx, req: AddFolder):
    """Queue every new or changed image below a folder (recursive), skipping files already queued and failed
    files that did not change; 200 with queued 0 when none."""
    folder = ctx.roots.resolve(req.folder_path)
    if kind_of(folder) != "folder":
        raise bad_request(f"{req.folder_path} is not a folder (or cannot be read).")
    usable, skipped = [], []
    for path, info in ctx.roots.scan(folder):
        if is_utf8_name(path):
            usable.append((path, info))
        else:  # cannot be stored or named in JSON
            shown = os.fsencode(path).decode(errors="backslashreplace")
            skipped.append((shown, "The file name is not valid UTF-8; rename the file to index it."))
    changed = catalog.new_or_changed(ctx.db, folder, usable)
    enqueued = queue(ctx, "folder", changed, folder, skipped, seen=dict(usable))
    if not enqueued.queued:
        answer = Queued(message="No valid images found in the specified folder", queued=0)
        if enqueued.job_id:  # only skipped files: their reasons are in the job
            answer = Queued(message=answer.message, queued=0, job_id=enqueued.job_id, skipped=enqueued.skipped)
        return respond(200, answer)
    answer = Queued(
        message=f"Processing {plural(enqueued.queued, 'image')} from the folder in the background",
        job_id=enqueued.job_id,
        queued=enqueued.queued,
    )
    if enqueued.skipped:
        answer.skipped = enqueued.skipped
    return answer


@routes.delete("/images/delete-image", body=DeleteImage, response=Message, errors=(403, 404))
def delete_image(ctx, req: DeleteImage) -> Message:
    """Remove an image from the index, its albums, objects and faces; the file stays on disk."""
    path = ctx.roots.resolve(req.path)
    forget(ctx.settings.data_dir / "thumbnails", catalog.delete(ctx.db, ctx.faces, path))
    return Message(message=f"Image {path} removed from the index")


@routes.get("/images/all-image-objects", response=AllImageObjects, cached=("objects",))
def all_image_objects(ctx) -> bytes:
    """The object classes of every analysed image."""
    return catalog.classes_by_image_json(ctx.db, ctx.listings)


@routes.get("/images/class-ids", query=PathQuery, response=ImageObjects, errors=(403, 404))
def class_ids(ctx, req: PathQuery) -> ImageObjects:
    """The objects found in one image, with its analysis status."""
    return ImageObjects(**catalog.objects_of(ctx.db, ctx.roots.resolve(req.path)))


@routes.get("/images/jobs/{job_id}", query=JobQuery, response=JobProgress, errors=(404,))
def job_progress(ctx, req: JobQuery) -> JobProgress:
    """Progress of a queued job: counts per state and the reasons of failures."""
    return JobProgress(**jobs.progress(ctx.db, req.job_id))
