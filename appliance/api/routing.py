"""Route tables: each route declares its request and response models once, for validation and for OpenAPI.

A request flows: token check -> size and type checks -> pydantic model -> handler -> response model -> JSON.
Every failure leaves as `{"detail": ...}` with its status, through `error_response`.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import bottle
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from ..db import LISTING_AREAS
from ..errors import ApiError

log = logging.getLogger(__name__)


class Request(BaseModel):
    """Base of every request model: unknown fields are a client mistake worth telling about."""

    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    """Base of query-string models: browsers and proxies add parameters of their own, so extras pass."""

    model_config = ConfigDict(extra="ignore")


PathText = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
# SQLite's integers are 64-bit: a larger one would fail in the driver, not in validation.
MAX_SQL_INT = 2**63 - 1


class PathQuery(Query):
    path: PathText


class Message(BaseModel):
    message: str


class ErrorBody(BaseModel):
    detail: str


@dataclass
class Route:
    method: str
    path: str
    handler: Callable[..., Any]
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses, same body model
    errors: tuple[int, ...] = ()
    needs_token: bool = True
    content_types: tuple[str, ...] = ()  # what a non-JSON route answers (a file, a page)
    # A read whose rendered body is kept until a write to these areas (db.LISTING_AREAS); True: until any write.
    cached: bool | tuple[str, ...] = False

    def __post_init__(self) -> None:
        if isinstance(self.cached, tuple) and not set(self.cached) <= set(LISTING_AREAS):
            raise ValueError(f"{self.path}: cached by unknown areas {self.cached}")  # it would never be fresh

    @property
    def bottle_path(self) -> str:
        return re.sub(r"\{(\w+)\}", r"<\1>", self.path)


@dataclass
class RouteTable:
    routes: list[Route] = field(default_factory=list)

    def add(self, method: str, path: str, **options: Any) -> Callable:
        def register(handler: Callable) -> Callable:
            summary = (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            self.routes.append(Route(method, path, handler, summary, **options))
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable:
        return self.add("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable:
        return self.add("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable:
        return self.add("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable:
        return self.add("DELETE", path, **options)


def error_response(status: int, detail: str) -> bottle.HTTPResponse:
    return respond(status, ErrorBody(detail=detail))


def respond(status: int, model: BaseModel) -> bottle.HTTPResponse:
    """A response whose status differs from the route's usual one."""
    return bottle.HTTPResponse(
        model.model_dump_json(exclude_unset=True), status, headers={"Content-Type": "application/json"}
    )


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"])
        parts.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    return "Invalid request: " + "; ".join(parts) + "."


TOKEN_COOKIE = "appliance_token"


def check_token(expected: str | None, request: bottle.BaseRequest) -> None:
    """The token from the Authorization header; for GETs also from the web page's cookie, since an <img>
    cannot send a header (a cookie is never accepted for a write: no cross-site request forgery)."""
    if expected is None:
        return
    scheme, _, given = request.get_header("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" and request.method == "GET":
        given = urllib.parse.unquote(request.get_cookie(TOKEN_COOKIE) or "")  # the page URL-encodes it
    elif scheme.lower() != "bearer":
        given = ""
    if not given.strip():
        raise ApiError(401, "This route needs the appliance's API token: send it as 'Authorization: Bearer TOKEN'.")
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ApiError(401, "The API token sent is not this appliance's token; check it and send it again.")


def is_chunked(request: bottle.BaseRequest) -> bool:
    return "chunked" in request.environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def check_body_size(request: bottle.BaseRequest, max_bytes: int) -> None:
    """Refuse an oversize body from its Content-Length, before anything reads it."""
    if is_chunked(request):
        raise ApiError(411, "Send the request body with a Content-Length header, not chunked.")
    if request.content_length > max_bytes:
        raise ApiError(413, f"The request body is {request.content_length} bytes; the limit is {max_bytes}.")


def read_json_body(request: bottle.BaseRequest) -> bytes:
    media_type = request.content_type.split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "Send the request body as JSON with 'Content-Type: application/json'.")
    if request.content_length <= 0:
        raise ApiError(400, "The request body is empty; this route needs a JSON object.")
    return request.environ["wsgi.input"].read(request.content_length)


def parse_request(route: Route, request: bottle.BaseRequest, url_args: dict) -> list[Any]:
    """The handler's arguments after the context: the body model, then the query (and URL) model."""
    try:
        parsed = []
        if route.body is not None:
            parsed.append(route.body.model_validate_json(read_json_body(request)))
        if route.query is not None:
            parsed.append(route.query.model_validate({**request.query.decode(), **url_args}))
        return parsed
    except ValidationError as error:
        raise ApiError(400, describe_validation_error(error)) from None
    except UnicodeError:  # percent-escapes that are not UTF-8 (?x=%ff)
        raise ApiError(400, "The query string is not valid UTF-8.") from None


def render(result: Any) -> bytes:
    if isinstance(result, bytes):  # JSON SQLite already built
        return result
    # exclude_unset: optional fields a handler did not fill (e.g. "total" without paging) stay out.
    if isinstance(result, BaseModel):
        return result.model_dump_json(exclude_unset=True).encode()
    return json.dumps(result).encode()


@dataclass
class Flight:
    """A body being rendered: what the requests that wait for it get."""

    done: threading.Event = field(default_factory=threading.Event)
    body: bytes | None = None


class ResponseCache:
    """Rendered bodies, each kept with the versions of what it shows, so a write elsewhere leaves it valid;
    at most `max_bytes` of them (least recently used go first)."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max_bytes
        self.size = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[tuple, bytes]] = OrderedDict()
        self._flights: dict[tuple[str, tuple], Flight] = {}
        # In every ETag: versions start again with a new database, and a restored backup repeats old ones.
        self._instance = secrets.token_hex(4)

    def get(self, key: str, versions: tuple) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] != versions:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: str, versions: tuple, body: bytes) -> bytes:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= len(old[1])
            if len(body) <= self.max_bytes:
                self._entries[key] = (versions, body)
                self.size += len(body)
            while self.size > self.max_bytes:
                self.size -= len(self._entries.popitem(last=False)[1][1])
        return body

    def render_once(self, key: str, versions: tuple, render_body: Callable[[], bytes]) -> bytes:
        """Render and keep a body; requests that miss the same body meanwhile wait for it instead of rendering
        it again (16 clients after one write: one render, not 16)."""
        with self._lock:
            flight = self._flights.get((key, versions))
            leading = flight is None
            if leading:
                flight = self._flights[key, versions] = Flight()
        if not leading:
            flight.done.wait()
            return flight.body if flight.body is not None else self.put(key, versions, render_body())  # it failed
        try:
            flight.body = self.put(key, versions, render_body())
            return flight.body
        finally:
            with self._lock:
                del self._flights[key, versions]
            flight.done.set()

    def rendering_other(self, key: str, versions: tuple) -> threading.Event | None:
        """When this body is being rendered for other versions: the event set once that render is done."""
        with self._lock:
            return next((f.done for (k, v), f in self._flights.items() if k == key and v != versions), None)

    def etag(self, key: str, versions: tuple, coding: str = "") -> str:
        digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
        return f'"{self._instance}-{digest}-{".".join(map(str, versions))}{coding}"'


def cache_key(route: Route, parsed: list[Any]) -> str:
    """The route and its validated query: parameters the route does not take do not make new entries."""
    query = parsed[-1].model_dump_json() if route.query is not None else ""
    return f"{route.method} {route.path} {query}"


# Smaller bodies fit in a few packets anyway. Level 1: level 6 saves 5% more for 4.5 times the CPU.
GZIP_MIN_BYTES = 4096
GZIP_LEVEL = 1


def accepts_gzip(request: bottle.BaseRequest) -> bool:
    for coding in request.get_header("Accept-Encoding", "").lower().split(","):
        name, _, params = coding.partition(";")
        if name.strip() in ("gzip", "x-gzip"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def matches(if_none_match: str, etag: str) -> bool:
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def cached_answer(route: Route, context: Any, parsed: list[Any], request: bottle.BaseRequest) -> bottle.HTTPResponse:
    """The body rendered for the versions of what it shows, from the cache when it is there; 304 without
    rendering when the client holds it. Versions and body are read in one transaction, so they agree."""
    cache, db, key = context.cache, context.db, cache_key(route, parsed)
    headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding", "Content-Type": "application/json"}
    body, waited = None, False
    while body is None:
        with db.snapshot():
            # db.generation is read before the transaction's first read, so the body is at least that new.
            versions = (db.generation,) if route.cached is True else db.listing_versions(route.cached)
            etag, packed_etag = cache.etag(key, versions), cache.etag(key, versions, "-gz")
            for held in (etag, packed_etag):
                if matches(request.get_header("If-None-Match", ""), held):
                    return bottle.HTTPResponse(status=304, headers={**headers, "ETag": held})
            body = cache.get(key, versions)
            rendering = None if body is not None or waited else cache.rendering_other(key, versions)
            if body is None and rendering is None:
                body = cache.render_once(key, versions, lambda: render(route.handler(context, *parsed)))
        if body is None:
            # An older version of this body is being rendered: wait for it once, then render (or join the
            # render of) what is current by then, with whoever waited too. During an ingest or with many
            # writing clients, a listing is rendered a few times at once at most, not once per request.
            rendering.wait()
            waited = True
    if accepts_gzip(request) and len(body) >= GZIP_MIN_BYTES:
        packed = cache.get(key + " gzip", versions)
        if packed is None:
            packed = cache.put(key + " gzip", versions, gzip.compress(body, GZIP_LEVEL, mtime=0))
        return bottle.HTTPResponse(
            packed, route.status, headers={**headers, "ETag": packed_etag, "Content-Encoding": "gzip"}
        )
    return bottle.HTTPResponse(body, route.status, headers={**headers, "ETag": etag})


def make_callback(route: Route, context: Any) -> Callable:
    settings = context.settings

    def callback(**url_args: str) -> Any:
        request = bottle.request
        try:
            check_body_size(request, settings.max_body_bytes)
            if route.needs_token:
                check_token(settings.api_token, request)
            parsed = parse_request(route, request, url_args)

            if route.cached:
                return cached_answer(route, context, parsed, request)
            result = route.handler(context, *parsed)
            if isinstance(result, bottle.HTTPResponse):
                return result
            body = render(result)
        except ApiError as error:
            refused = error_response(error.status, error.detail)
            if is_chunked(request):
                # Cheroot cannot skip an unread chunked body; the client must not reuse this connection.
                refused.set_header("Connection", "close")
            return refused
        bottle.response.status = route.status
        bottle.response.content_type = "application/json"
        return body

    return callback


def json_error_page(error: bottle.HTTPError) -> str:
    """Bottle's own errors (unknown route, wrong method, unexpected exception) in the contract's shape."""
    bottle.response.content_type = "application/json"
    if error.status_code >= 500:
        return json.dumps({"detail": "Internal server error; the appliance's log has the details."})
    if error.status_code == 404:
        return json.dumps({"detail": f"No such route: {bottle.request.path}."})
    if error.status_code == 405:
        return json.dumps({"detail": f"{bottle.request.method} is not allowed on {bottle.request.path}."})
    return json.dumps({"detail": str(error.body)})
