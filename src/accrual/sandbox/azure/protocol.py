"""What every marketplace API call shares (marketplaces.md §4.1): the bearer token of
the offer's app, ``api-version=2018-08-31``, the echoed or generated
``x-ms-requestid`` and ``x-ms-correlationid``, and the error answers.

An access token that is missing, malformed, expired or not this emulator's gives 403,
as does a valid token of an app no offer is configured with (the docs give 403 for
both); a call on another app's subscription gives 403 too.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accrual.sandbox.azure.entra import Issuer, TokenInvalid
from accrual.sandbox.azure.state import API_VERSION, MARKETPLACE_RESOURCE, App, Fault, SandboxState

MAX_BODY_BYTES = 1024 * 1024


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON-able (Decimals allowed); None: an empty body
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """A refused call: its status and the body the marketplace answers."""

    def __init__(self, status: int, code: str, message: str, *, target: str | None = None,
                 details: list[dict[str, Any]] | None = None, flat: bool = False) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details
        self.flat = flat  # the metering API's flat shape, not {"error": {...}}

    def body(self) -> dict[str, Any]:
        inner: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            inner["target"] = self.target
        if self.details is not None:
            inner["details"] = self.details
        return inner if self.flat else {"error": inner}


def bad_request(message: str, *, target: str | None = None, flat: bool = False) -> ApiError:
    return ApiError(400, "BadArgument", message, target=target, flat=flat,
                    details=[{"code": "BadArgument", "message": message, "target": target}]
                    if flat else None)


def raise_fault(fault: Fault | None, *, flat: bool = False) -> None:
    if fault is not None and fault.kind == "throttling":
        raise ApiError(429, "TooManyRequests", "Too many requests; retry later", flat=flat)
    if fault is not None and fault.kind == "internal_error":
        raise ApiError(500, "InternalServerError", "An internal error occurred", flat=flat)


def request_ids(headers: Mapping[str, str]) -> dict[str, str]:
    """The ids echoed on every answer, generated when the caller sent none."""
    return {"x-ms-requestid": headers.get("x-ms-requestid") or str(uuid.uuid4()),
            "x-ms-correlationid": headers.get("x-ms-correlationid") or str(uuid.uuid4())}


def authorize(state: SandboxState, issuer: Issuer, headers: Mapping[str, str],
              query: Mapping[str, str], *, flat: bool = False) -> App:
    """The app calling, once its token and the api-version are right."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(403, "Forbidden", "A bearer token is required", flat=flat)
    try:
        claims = issuer.check(token.strip(), state.now())
    except TokenInvalid as error:
        raise ApiError(403, "Forbidden", f"The access token is not valid: {error}",
                       flat=flat) from None
    if claims.get("aud") not in (MARKETPLACE_RESOURCE, f"api://{MARKETPLACE_RESOURCE}"):
        raise ApiError(403, "Forbidden", "The token is not for the marketplace API", flat=flat)
    with state.lock:
        app = state.apps.get(str(claims.get("appid")))
        configured = app is not None and app.tenant_id == claims.get("tid") and any(
            offer.app is app for offer in state.offers.values())
    if app is None or not configured:
        raise ApiError(403, "Forbidden", "The token's app is not configured on any offer",
                       flat=flat)
    version = query.get("api-version")
    if version is None:
        raise ApiError(400, "BadArgument", "The api-version query parameter "
                                           "(?api-version=) is required for all requests",
                       flat=flat)
    if version != API_VERSION:
        raise ApiError(400, "BadArgument", f"Unsupported api-version '{version}'; the "
                                           f"supported version is '{API_VERSION}'", flat=flat)
    return app
