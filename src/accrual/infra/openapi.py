"""The OpenAPI document, completed with what the shared plumbing answers.

FastAPI documents what each route declares. Some answers come from plumbing every
route shares instead: the JSON body reader (400 ``malformed_json``), the body-size
and content-type guards (413 ``payload_too_large``, 415 ``unsupported_media_type``),
request validation (422 ``invalid_request``) and the bearer-token check (401
``unauthorized``). :func:`install` adds those statuses, with the error envelope, to
every operation they can reach, and names the bearer scheme on every operation that
takes a token, so that a client generator or a fuzzer sees every status the server
can give without each router repeating them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from accrual.infra.http import ERROR_SCHEMA

BEARER = "bearer"
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
_JSON = "application/json"

# Status → what the shared plumbing means by it (the description in the document).
_SHARED: dict[str, str] = {
    "400": "`malformed_json`: the body is not JSON (bad syntax, bad UTF-8, duplicate keys, "
           "NaN or Infinity)",
    "401": "`unauthorized`: no bearer token, or not one this operation takes",
    "413": "`payload_too_large`: the body is larger than this operation accepts",
    "415": "`unsupported_media_type`: the body is not `application/json` (UTF-8)",
    "422": "`invalid_request` (or a more precise code): a parameter or the body breaks the "
           "documented schema or a documented bound",
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {_JSON: {"schema": copy.deepcopy(ERROR_SCHEMA)}}}


def _takes_json_body(operation: dict[str, Any]) -> bool:
    content = operation.get("requestBody", {}).get("content", {})
    return any(media.split(";")[0].strip().endswith("json") for media in content)


def _issues_token(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    """Whether a success answer carries a ``token``: opening a session takes none."""
    for status, response in operation.get("responses", {}).items():
        if not status.startswith("2"):
            continue
        schema = response.get("content", {}).get(_JSON, {}).get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = document.get("components", {}).get("schemas", {}).get(
                ref.rsplit("/", 1)[1], {})
        if "token" in schema.get("properties", {}):
            return True
    return False


def _authenticated(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    # Every route that checks a bearer token declares its 401 (the error_responses of
    # its decorator); a login declares 401 too, for a wrong password, but answers a token.
    return "401" in operation.get("responses", {}) and not _issues_token(document, operation)


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the shared statuses and the bearer scheme to ``document`` (in place); return it."""
    for item in document.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            shared: list[str] = []
            if _takes_json_body(operation):
                shared += ["400", "413", "415", "422"]
            if operation.get("parameters") or item.get("parameters"):
                shared.append("422")
            if _authenticated(document, operation):
                shared.append("401")
                operation.setdefault("security", [{BEARER: []}])
            for status in shared:
                responses.setdefault(status, _error_response(_SHARED[status]))
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault(BEARER, {
        "type": "http", "scheme": "bearer",
        "description": "The operator token, a console or billing session token, or a "
                       "workspace's ingest key, as each operation says"})
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, on first use)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
