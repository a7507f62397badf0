"""HTTP plumbing both sides' entry points share: the error envelope, bearer tokens, strict JSON."""

from __future__ import annotations

import hmac
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

from accrual.contract.errors import Invalid, ServiceError, Unauthorized


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status)


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "example": "invalid_request"},
        "message": {"type": "string"}}}},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error envelope at the given statuses."""
    return {status: {"description": "Error envelope with a stable code",
                     "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            for status in statuses}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        details = [{"field": ".".join(str(part) for part in p.get("loc", ())[1:]),
                    "problem": p.get("msg", "")} for p in problems]
        summary = "; ".join(f"{d['field'] or 'body'}: {d['problem']}" for d in details[:5])
        return error_response(422, "invalid_request", summary or "invalid request",
                              details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        # A 400 from the framework itself means the JSON body could not be read (bad UTF-8).
        codes = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed",
                 401: "unauthorized"}
        return error_response(error.status_code, codes.get(error.status_code, "http_error"),
                              str(error.detail))


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("unauthorized", "send 'Authorization: Bearer <token>'")
    return token.strip()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def plain_text(value: str) -> bool:
    """Text either database can store: no NUL character, no unpaired UTF-16 surrogate.

    JSON can carry both (as ``\\u0000`` and ``\\ud800`` escapes); PostgreSQL refuses
    NUL in text and no UTF-8 encoder takes a lone surrogate, so either would turn
    into a server error far from the request that brought it."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_plain_text(value: str) -> str:
    if not plain_text(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


# A request string field: refused (422 invalid_request) when it is not plain text.
Text = Annotated[str, AfterValidator(_check_plain_text)]


def plain_path_params(request: Request) -> None:
    """Router dependency: a path segment like ``%00`` never reaches a query."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and not plain_text(value):
            raise Invalid("invalid_request", f"{name}: must not contain NUL characters")


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent Decimal cannot hold, e.g. 1E+99999999999999999999
        raise ValueError(f"number {text[:40]!r} is out of range") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


# Where a \u escape could spell NUL or a surrogate; only then is the parsed body walked.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _all_plain_text(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not plain_text(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def strict_json(raw: bytes) -> Any:
    """Parse JSON exactly: UTF-8 only (RFC 8259), numbers with a fraction or exponent
    become Decimal; NaN/Infinity, duplicate keys, NUL characters and unpaired
    surrogates are refused. Raises ``ValueError`` (or ``RecursionError``)."""
    text = raw.decode("utf-8-sig")
    parsed = json.loads(text, parse_float=_decimal, parse_constant=_refuse_constant,
                        object_pairs_hook=_unique_keys)
    if _SUSPECT_ESCAPE.search(text) and not _all_plain_text(parsed):
        raise ValueError("strings must not contain NUL characters or unpaired surrogates")
    return parsed
