"""The OpenAPI 3.1 document, generated from the route tables and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic.json_schema import models_json_schema

from .routing import ErrorBody, Route

ERROR_MEANINGS = {
    400: "Malformed JSON, a missing or mistyped field, or a bad value.",
    401: "Missing or wrong API token.",
    403: "A path outside the library roots.",
    404: "The album, image or job does not exist.",
    409: "The album already exists.",
    411: "A body sent without Content-Length.",
    413: "The request body is over the limit.",
    415: "The body is not JSON.",
    421: "The Host header names no address of this appliance (see allowed_hosts).",
    507: "The appliance's disk is full; nothing was changed.",
}


def _json(ref: dict) -> dict:
    return {"content": {"application/json": {"schema": ref}}}


def _success(route: Route, schema: dict) -> dict:
    if route.content_types:  # a file, a page: not JSON
        return {"content": {media: {"schema": {"type": "string"}} for media in route.content_types}}
    return _json(schema)


def error_statuses(route: Route, token_required: bool) -> set[int]:
    """Every error status a route can answer, from what it takes and does."""
    statuses = {*route.errors, 421}
    if route.body is not None:
        statuses |= {400, 411, 413, 415}
    if route.query is not None:
        statuses.add(400)
    if route.method != "GET":
        statuses.add(507)
    if route.needs_token and token_required:
        statuses.add(401)
    return statuses


def _parameters(route: Route, schema: dict) -> list[dict]:
    in_path = set(re.findall(r"\{(\w+)\}", route.path))
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "path" if name in in_path else "query",
            "required": name in in_path or name in required,
            "schema": prop,
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def openapi_document(routes: Iterable[Route], version: str, token_required: bool) -> dict:
    """The document this appliance serves: bearer security appears only when it has a token."""
    routes = list(routes)
    wanted = [(ErrorBody, "serialization")]
    for route in routes:
        wanted += [(m, "validation") for m in (route.body, route.query) if m is not None]
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    refs, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}")
    schemas = definitions.get("$defs", {})
    paths: dict[str, dict] = {}
    for route in routes:
        operation: dict = {"operationId": route.handler.__name__, "summary": route.summary}
        if route.query is not None:
            operation["parameters"] = _parameters(route, route.query.model_json_schema())
        if route.body is not None:
            operation["requestBody"] = {"required": True, **_json(refs[(route.body, "validation")])}
        success = refs[(route.response, "serialization")] if route.response else {}
        operation["responses"] = {
            str(status): {"description": "Success", **_success(route, success)}
            for status in (route.status, *route.also)
        }
        if route.cached:
            operation["responses"]["304"] = {"description": "Not modified: If-None-Match holds the current ETag."}
        error_ref = refs[(ErrorBody, "serialization")]
        for status in sorted(error_statuses(route, token_required)):
            operation["responses"][str(status)] = {"description": ERROR_MEANINGS[status], **_json(error_ref)}
        if route.needs_token and token_required:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Photo-library appliance (PictoPy API)", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            **({"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}} if token_required else {}),
        },
    }
