"""HTTP plumbing both sides' entry points share: the error envelope, bearer tokens, strict JSON."""

from __future__ import annotations

import email.message
import hmac
import json
import re
import unicodedata
from collections.abc import Callable, Coroutine, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import FastAPI, Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BeforeValidator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accrual.contract.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooManyAttempts,
    Unauthorized,
    Unavailable,
)


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


def too_many_attempts_response() -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of 429 ``too_many_attempts`` (sign-in throttling), with its
    ``Retry-After`` header."""
    return {429: {
        "description": "Too many failed sign-ins for this account or from this address: "
                       "refused without checking the password. Retry after `Retry-After` "
                       "seconds (also `retry_after_s` in the body)",
        "headers": {"Retry-After": {"description": "Seconds until the next attempt is "
                                                   "checked again",
                                    "schema": {"type": "integer", "minimum": 1}}},
        "content": {"application/json": {
            "schema": ERROR_SCHEMA,
            "example": {"error": {"code": "too_many_attempts",
                                  "message": "too many failed sign-ins; wait 15 minutes "
                                             "before trying again",
                                  "retry_after_s": 900}}}}}}


# Each kind of refusal and the status it answers with; services never see these.
STATUS_BY_KIND: dict[type[ServiceError], int] = {
    Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
    Invalid: 422, TooManyAttempts: 429, Unavailable: 503, ServiceError: 400}


def status_for(error: ServiceError) -> int:
    """The HTTP status of a refusal: that of its nearest kind in ``STATUS_BY_KIND``."""
    for kind in type(error).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 400


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        if isinstance(error, TooManyAttempts):
            response = error_response(429, error.code, error.message,
                                      retry_after_s=error.retry_after_s)
            response.headers["Retry-After"] = str(error.retry_after_s)
            return response
        return error_response(status_for(error), error.code, error.message)

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
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # A 400 from the framework itself means the JSON body could not be read (bad UTF-8).
        codes = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed",
                 401: "unauthorized", 413: "payload_too_large", 415: "unsupported_media_type"}
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Starlette names only the first route that matched the path; list them all.
            headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
        response = error_response(error.status_code, codes.get(error.status_code, "http_error"),
                                  str(error.detail))
        response.headers.update(headers)
        return response


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes at this request's path."""
    allowed = []
    for method in _METHODS:
        probe = {"type": "http", "path": request.scope["path"], "method": method,
                 "root_path": request.scope.get("root_path", ""), "headers": [],
                 "query_string": b""}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


# --- request bodies -------------------------------------------------------------------

# A JSON body the API takes is a small object (the largest, an admission request of
# 1,000 checks, is about 100 KB); 1 MiB leaves room for that and no more.
JSON_BODY_LIMIT = 1024 * 1024


class PayloadTooLarge(StarletteHTTPException):
    """Raised from ``receive`` once a body passes its limit (413 ``payload_too_large``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is too large; send at most {limit} bytes")


class BodyLimit:
    """Pure ASGI middleware bounding every request body.

    A declared ``Content-Length`` over the limit is refused before anything is read;
    a body without a length is counted as it streams, and reading stops with 413 at
    the first chunk that passes the limit, so no body larger than the limit (plus one
    chunk) is ever held in memory. ``limits`` maps exact paths to their own limit."""

    def __init__(self, app: ASGIApp, *, default_limit: int = JSON_BODY_LIMIT,
                 limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(limit)(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except PayloadTooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return error_response(413, "payload_too_large",
                          f"the request body is too large; send at most {limit} bytes")


def _json_content_type(value: str | None) -> bool:
    if not value:
        return False
    message = email.message.Message()
    message["content-type"] = value
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    charset = message.get_param("charset")
    return ((subtype == "json" or subtype.endswith("+json"))
            and (not isinstance(charset, str) or charset.lower() in ("utf-8", "utf8")))


class StrictJSONRequest(Request):
    """A request whose ``json()`` is :func:`strict_json` (400 ``malformed_json`` naming why)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            raw = await self.body()
            try:
                self._json = strict_json(raw, check_text=False)
            except UnicodeDecodeError:
                raise StarletteHTTPException(
                    400, "the request body is not valid JSON: it must be UTF-8") from None
            except RecursionError:
                raise StarletteHTTPException(
                    400, "the request body is not valid JSON: nested too deeply") from None
            except ValueError as error:
                raise StarletteHTTPException(
                    400, f"the request body is not valid JSON: {error}") from None
        return self._json


class StrictJSONRoute(APIRoute):
    """Every JSON body through :func:`strict_json`; a body in another media type is 415."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_json = self.body_field is not None and not _is_form(self)

        async def strict_handler(request: Request) -> Response:
            request = StrictJSONRequest(request.scope, request.receive)
            if takes_json and await request.body() \
                    and not _json_content_type(request.headers.get("content-type")):
                raise StarletteHTTPException(
                    415, "send the body as JSON with 'Content-Type: application/json' (UTF-8)")
            return await handler(request)

        return strict_handler


def _is_form(route: APIRoute) -> bool:
    return isinstance(getattr(route.body_field, "field_info", None), params.Form)


def client_address(request: Request) -> str | None:
    """The address the request came from, as the ASGI server reports it. Behind a reverse
    proxy that is the proxy's, unless the server takes the forwarded address from proxies
    it trusts (``ACCRUAL_FORWARDED_ALLOW_IPS``)."""
    return request.client.host if request.client is not None else None


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


# Unicode categories no human-entered name may hold: controls (Cc), format characters
# (Cf: bidi overrides and isolates, zero-width space/joiners, BOM, ...), surrogates (Cs),
# private use (Co), unassigned code points (Cn), line and paragraph separators (Zl, Zp).
_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


# Letters and marks that draw nothing: the combining grapheme joiner, the Hangul and
# half-width fillers, the Khmer inherent vowels (Unicode's default-ignorable code points
# outside Cf) and the blank Braille pattern. A name of them looks empty or like another.
_BLANK_CHARACTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name a person reads, or None when it can."""
    for char in value:
        category = unicodedata.category(char)
        if category in _NOT_IN_NAMES:
            return (f"must not contain control, format (bidi, zero-width), private-use or "
                    f"unassigned characters; found U+{ord(char):04X} ({category})")
        if char in _BLANK_CHARACTERS:
            return f"must not contain characters that draw nothing; found U+{ord(char):04X}"
    return None


def _check_name(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A human-entered name (workspace, display name, title): 422 invalid_request naming the
# field when it holds a character that is not visible text.
Name = Annotated[str, AfterValidator(_check_name)]


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WHOLE = re.compile(r"-?[0-9]+")


def _iso_date(value: object) -> object:
    # Without this, pydantic reads a number (or a numeric string, as every query value
    # is) as a Unix timestamp: "to=0" would be 1970-01-01.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value  # the date validator then refuses 2026-02-30 and the like
    raise ValueError("must be a date written YYYY-MM-DD")


# A date in a query or a body: exactly YYYY-MM-DD (422 invalid_request otherwise).
IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def _whole(value: object) -> object:
    # pydantic would read " 7 ", "+7", "1_000" and "7.0" as 7 from text.
    if isinstance(value, str) and not _WHOLE.fullmatch(value):
        raise ValueError("must be a whole number written in ASCII digits, e.g. 30")
    return value


# A whole number in a query, a path or a body: JSON ints, or text in ASCII digits only.
Whole = Annotated[int, BeforeValidator(_whole)]


def plain_path_params(request: Request) -> None:
    """Router dependency: a path segment like ``%00`` never reaches a query."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and not plain_text(value):
            raise Invalid("invalid_request", f"{name}: must not contain NUL characters")


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


# The widest JSON number a body may hold: at most 100 digits, magnitude 1e-100 to 1e+100.
# Nothing the API takes comes near (amounts stay below 10^15 with 2 places, quantities and
# attributes at most 10^15, money.MAX_DIGITS is 30), and past it a number is refused as it
# is parsed (400 malformed_json), before a lax int field or a counting rule makes an int of
# it: int(Decimal("1E+99999999")) runs for minutes, and an int of more than 4,300 digits
# cannot even be written into an error message.
JSON_NUMBER_MAX_DIGITS = 100
JSON_NUMBER_MAX_EXPONENT = 100


def _out_of_range(text: str) -> ValueError:
    return ValueError(f"number {text[:40]!r}{'…' if len(text) > 40 else ''} is out of range: "
                      f"at most {JSON_NUMBER_MAX_DIGITS} digits, magnitude "
                      f"1e-{JSON_NUMBER_MAX_EXPONENT} to 1e+{JSON_NUMBER_MAX_EXPONENT}")


def _decimal(text: str) -> Decimal:
    # Any text of this length with fewer digits pads its exponent with zeros.
    if len(text) > 2 * JSON_NUMBER_MAX_DIGITS:
        raise _out_of_range(text)
    try:
        value = Decimal(text)
    except InvalidOperation:  # an exponent Decimal cannot hold, e.g. 1E+99999999999999999999
        raise _out_of_range(text) from None
    if len(value.as_tuple().digits) > JSON_NUMBER_MAX_DIGITS \
            or abs(value.adjusted()) > JSON_NUMBER_MAX_EXPONENT:
        raise _out_of_range(text)
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > JSON_NUMBER_MAX_DIGITS:
        raise _out_of_range(text)
    return int(text)


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


def strict_json(raw: bytes, *, check_text: bool = True) -> Any:
    """Parse JSON exactly: UTF-8 only (RFC 8259), numbers with a fraction or exponent
    become Decimal; NaN/Infinity, numbers past :data:`JSON_NUMBER_MAX_DIGITS` digits or
    :data:`JSON_NUMBER_MAX_EXPONENT` in magnitude, duplicate keys, NUL characters and
    unpaired surrogates are refused. Raises ``ValueError`` (or ``RecursionError``).

    ``check_text=False`` leaves NUL and surrogates to the fields' own ``Text`` checks
    (422 naming the field) where a typed model reads the body."""
    text = raw.decode("utf-8-sig")
    parsed = json.loads(text, parse_float=_decimal, parse_int=_integer,
                        parse_constant=_refuse_constant,
                        object_pairs_hook=_unique_keys)
    if check_text and _SUSPECT_ESCAPE.search(text) and not _all_plain_text(parsed):
        raise ValueError("strings must not contain NUL characters or unpaired surrogates")
    return parsed
