"""/health and /openapi.json: the server describing itself."""

from __future__ import annotations

import platform

from pydantic import BaseModel

from .. import __version__, catalog, jobs
from .routing import RouteTable

routes = RouteTable()


class Health(BaseModel):
    status: str
    version: str
    python: str
    storage: dict[str, str]
    images: dict[str, int]
    queue: dict[str, int]
    worker: dict
    models: dict


@routes.get("/health", response=Health, needs_token=False)
def health(ctx) -> Health:
    """Versions, image and queue counts, and what the ingest worker is doing; no token needed."""
    return Health(
        status="ok",
        version=__version__,
        python=platform.python_version(),
        storage=ctx.db.versions(),
        images=catalog.status_counts(ctx.db),
        queue=jobs.queue_counts(ctx.db),
        worker=ctx.worker.status(),
        models=ctx.models,
    )


@routes.get("/openapi.json", needs_token=False)
def openapi(ctx) -> dict:
    """This document: every route with its request and response schemas."""
    return ctx.openapi
