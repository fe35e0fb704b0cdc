"""Route tables: each route declares its request and response models once, for validation and for OpenAPI.

A request flows: token check -> size and type checks -> pydantic model -> handler -> response model -> JSON.
Every failure leaves as `{"detail": ...}` with its status, through `error_response`.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import bottle
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

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
    cached: bool = False  # a read whose rendered body can be reused until the next database write

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


def render(result: Any) -> str:
    # exclude_unset: optional fields a handler did not fill (e.g. "total" without paging) stay out.
    if isinstance(result, BaseModel):
        return result.model_dump_json(exclude_unset=True)
    return json.dumps(result)


class ResponseCache:
    """Rendered bodies of read-only routes, valid until the database's next write, at most `max_bytes` of them
    (least recently used go first)."""

    def __init__(self, db: Any, max_bytes: int = 8 << 20):
        self.db = db
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._generation = -1
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._size = 0

    def get_or_render(self, key: str, render_body: Callable[[], str]) -> str:
        generation = self.db.generation
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._size, self._generation = 0, generation
            body = self._entries.get(key)
            if body is not None:
                self._entries.move_to_end(key)
                return body
        body = render_body()
        with self._lock:
            # A write committed while rendering may have made this body stale: keep it only if none did.
            if self.db.generation == generation == self._generation and key not in self._entries:
                self._entries[key] = body
                self._size += len(body)
                while self._size > self.max_bytes:
                    self._size -= len(self._entries.popitem(last=False)[1])
        return body


def cache_key(route: Route, parsed: list[Any]) -> str:
    """The route and its validated query: parameters the route does not take do not make new entries."""
    query = parsed[-1].model_dump_json() if route.query is not None else ""
    return f"{route.method} {route.path} {query}"


def make_callback(route: Route, context: Any) -> Callable:
    settings = context.settings

    def callback(**url_args: str) -> Any:
        request = bottle.request
        try:
            check_body_size(request, settings.max_body_bytes)
            if route.needs_token:
                check_token(settings.api_token, request)
            parsed = parse_request(route, request, url_args)

            def run() -> Any:
                return route.handler(context, *parsed)

            if route.cached:
                body = context.cache.get_or_render(cache_key(route, parsed), lambda: render(run()))
            else:
                result = run()
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
