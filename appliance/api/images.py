"""/images routes: the index, adding files and folders to the queue, and job progress."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from .. import catalog, jobs
from ..errors import bad_request
from ..paths import is_image_name
from .routing import Message, PathQuery, PathText, Query, Request, RouteTable, respond

routes = RouteTable()


class PageQuery(Query):
    offset: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int | None, Field(ge=1, le=100_000)] = None


class JobQuery(Query):
    job_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


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
    job_id: str | None = Field(None, description="Absent when nothing was queued.")
    queued: int


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
    done: int
    failed: int
    progress: float = Field(description="Finished items over all items, 0 to 1.")
    finished: bool
    failures: list[JobFailure] = Field(description="The first 100 failed files with their reasons.")


@routes.get("/images/all-images", query=PageQuery, response=ImageList, cached=True)
def all_images(ctx, req: PageQuery) -> ImageList:
    """Every indexed image, sorted by path; paged with offset and limit."""
    paths, total = catalog.all_paths(ctx.db, req.offset, req.limit)
    return ImageList(images=paths) if total is None else ImageList(images=paths, total=total)


def indexed_image(ctx, raw: str):
    """The index row of the image a client named: 403 outside the roots, 404 when not indexed."""
    return catalog.image_row(ctx.db.read(), ctx.roots.resolve(raw))


def queue(ctx, kind: str, paths, source=None) -> str:
    job_id = jobs.enqueue(ctx.db, kind, paths, source)
    ctx.worker.notify()
    return job_id


@routes.post("/images/images", body=AddImages, response=Queued, status=202, errors=(403,))
def add_images(ctx, req: AddImages) -> Queued:
    """Queue image files for indexing and analysis in the background."""
    paths = ctx.roots.resolve_all(req.paths)
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise bad_request("These files do not exist: " + ", ".join(missing) + ".")
    unsupported = [str(path) for path in paths if not is_image_name(path)]
    if unsupported:
        raise bad_request("These are not supported image types: " + ", ".join(unsupported) + ".")
    job_id = queue(ctx, "images", paths)
    return Queued(message="Images are being processed in the background", job_id=job_id, queued=len(paths))


@routes.post("/images/add-folder", body=AddFolder, response=Queued, status=202, errors=(403,))
def add_folder(ctx, req: AddFolder):
    """Queue every new or changed image below a folder (recursive); 200 with queued 0 when none."""
    folder = ctx.roots.resolve(req.folder_path)
    if not folder.is_dir():
        raise bad_request(f"{req.folder_path} is not a folder.")
    paths = catalog.new_or_changed(ctx.db, folder, ctx.roots.images_under(folder))
    if not paths:
        return respond(200, Queued(message="No valid images found in the specified folder", queued=0))
    job_id = queue(ctx, "folder", paths, folder)
    return Queued(
        message=f"Processing {len(paths)} images from the folder in the background", job_id=job_id, queued=len(paths)
    )


@routes.delete("/images/delete-image", body=DeleteImage, response=Message, errors=(403, 404))
def delete_image(ctx, req: DeleteImage) -> Message:
    """Remove an image from the index, its albums, objects and faces; the file stays on disk."""
    path = ctx.roots.resolve(req.path)
    catalog.delete(ctx.db, ctx.faces, path)
    return Message(message=f"Image {path} removed from the index")


@routes.get("/images/all-image-objects", response=AllImageObjects, cached=True)
def all_image_objects(ctx) -> AllImageObjects:
    """The object classes of every analysed image."""
    return AllImageObjects(data=catalog.classes_by_image(ctx.db))


@routes.get("/images/class-ids", query=PathQuery, response=ImageObjects, errors=(403, 404))
def class_ids(ctx, req: PathQuery) -> ImageObjects:
    """The objects found in one image, with its analysis status."""
    return ImageObjects(**catalog.objects_of(ctx.db, ctx.roots.resolve(req.path)))


@routes.get("/images/jobs/{job_id}", query=JobQuery, response=JobProgress, errors=(404,))
def job_progress(ctx, req: JobQuery) -> JobProgress:
    """Progress of a queued job: counts per state and the reasons of failures."""
    return JobProgress(**jobs.progress(ctx.db, req.job_id))
