"""/health and /openapi.json: the server describing itself."""

from __future__ import annotations

import hmac
import platform

import bottle
from pydantic import BaseModel, Field

from .. import __version__, catalog, disk, jobs, reanalysis
from ..datadir import TOKEN_FILE
from ..errors import ApiError
from .routing import RouteTable, check_token

routes = RouteTable()


class Health(BaseModel):
    status: str = Field(description="ok, or degraded while something is failing (see problems).")
    token_file: str | None = Field(
        None,
        description="Without the token: the file on the appliance that holds it (DATA_DIR/api-token), so that its"
        " owner can find it; absent when the token was given in the settings.",
    )
    problems: list[str] | None = Field(None, description="What is failing now, in words; only with the token.")
    version: str | None = None
    python: str | None = None
    storage: dict[str, str] | None = None
    disk: dict | None = Field(None, description="Free bytes on the data dir's disk; ingest pauses when it is full.")
    images: dict[str, int] | None = None
    queue: dict[str, int] | None = None
    worker: dict | None = None
    reanalysis: dict | None = Field(None, description="Progress of analysing again after a model change.")
    watch: dict | None = Field(None, description="How the library is followed: inotify, or the reconcile scan only.")
    background: list[dict] | None = Field(None, description="Background threads failing now, with their errors.")
    models: dict | None = None


def problems_in_words(background: list[dict], watch: dict) -> list[str]:
    words = [
        f"{problem['thread']} is failing ({problem['failures']} times in a row): {problem['error']}"
        for problem in background
    ]
    if watch["problem"]:
        words.append(watch["problem"])
    words += [
        f"library root {root} shows no photos although the index has some (unplugged or unmounted?): left as it is"
        for root in watch["unavailable_roots"]
    ]
    return words


@routes.get("/health", response=Health, needs_token=False)
def health(ctx) -> Health:
    """ok or degraded; with the token (or when none is needed) also versions, disk, counts and what the
    background threads are doing."""
    background = ctx.supervisor.problems()
    watch = ctx.watch.status()
    status = "degraded" if background or watch["problem"] or watch["unavailable_roots"] else "ok"
    try:
        check_token(ctx.settings.api_token, bottle.request)
    except ApiError:
        return Health(status=status, **token_file(ctx))  # without the token: no counts, only where it is
    room = disk.room(ctx.db.path.parent)
    return Health(
        status=status,
        problems=problems_in_words(background, watch),
        version=__version__,
        python=platform.python_version(),
        storage=ctx.db.versions(),
        disk={
            "path": str(ctx.db.path.parent),
            "free_bytes": room.free_bytes,
            "free_inodes": room.free_inodes,
            "full": room.full,
        },
        images=catalog.status_counts(ctx.db),
        queue=jobs.queue_counts(ctx.db),
        worker=ctx.worker.status(),
        watch=watch,
        reanalysis=reanalysis.progress(ctx.db),
        background=background,
        models=ctx.models,
    )


def token_file(ctx) -> dict:
    """Where the token in use is kept, when it is the one in DATA_DIR/api-token (not --api-token or the config).
    The path is told without the token: reading the file takes a login on the appliance itself."""
    path = ctx.settings.data_dir / TOKEN_FILE
    try:
        kept = hmac.compare_digest(path.read_text().strip().encode(), ctx.settings.api_token.encode())
    except (OSError, UnicodeDecodeError):
        kept = False
    return {"token_file": str(path)} if kept else {}


@routes.get("/openapi.json", needs_token=False)
def openapi(ctx) -> dict:
    """This document: every route with its request and response schemas."""
    return ctx.openapi
