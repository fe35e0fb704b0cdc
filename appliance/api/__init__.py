"""The Bottle application: the route tables of every area, mounted with one error path."""

from __future__ import annotations

from dataclasses import dataclass, field

import bottle

from .. import __version__
from ..catalog import ImageListings
from ..config import Settings
from ..db import Database
from ..decode import DecodeBudget
from ..faces import FaceIndex
from ..paths import LibraryRoots
from ..supervisor import Supervisor
from ..watch import LibraryWatch
from ..workers import IngestWorkers
from . import albums, browse, health, images, tag, web
from .guard import Guard
from .openapi import openapi_document
from .routing import ResponseCache, Route, json_error_page, make_callback

ROUTES: list[Route] = (
    health.routes.routes + albums.routes.routes + images.routes.routes + tag.routes.routes + web.routes.routes
)
ROUTES += browse.routes.routes  # the web page's timeline, search and viewer


@dataclass
class Context:
    """What a route handler may use."""

    settings: Settings
    db: Database
    roots: LibraryRoots
    supervisor: Supervisor
    worker: IngestWorkers
    watch: LibraryWatch
    faces: FaceIndex
    models: dict
    decode_budget: DecodeBudget  # shared with the ingest workers: thumbnails made again decode within it too
    openapi: dict = field(init=False)
    cache: ResponseCache = field(init=False)
    listings: ImageListings = field(init=False)

    def __post_init__(self) -> None:
        self.openapi = openapi_document(ROUTES, __version__, token_required=self.settings.api_token is not None)
        self.cache = ResponseCache(self.settings.listing_cache_mib << 20)
        self.listings = ImageListings()


def make_app(context: Context) -> Guard:
    """Every route, wrapped in the Host and CORS checks so they cover unknown routes and static files too."""
    app = bottle.Bottle(catchall=True)
    for route in ROUTES:
        app.route(route.bottle_path, route.method, make_callback(route, context))
    app.default_error_handler = json_error_page
    return Guard(app, context.settings)
