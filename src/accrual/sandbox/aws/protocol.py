"""AWS JSON 1.1 as the metering and entitlement services speak it.

A call is ``POST /`` (here: the emulator's mount path) with ``X-Amz-Target:
<TargetPrefix>.<Operation>``, ``Content-Type: application/x-amz-json-1.1`` and a
SigV4 ``Authorization`` header. The emulator accepts any signature but refuses a
call without one. An error is ``{"__type": "<Name>", "message": "..."}``, HTTP
400, or 500 for ``InternalServiceErrorException``.

botocore 1.44 sends JSON 1.1 to the entitlement service too, although its model
lists ``smithy-rpc-v2-cbor`` first (a test pins what goes on the wire); CBOR
therefore is not spoken here.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from accrual.sandbox.aws.state import Fault

CONTENT_TYPE = "application/x-amz-json-1.1"
METERING_PREFIX = "AWSMPMeteringService"
ENTITLEMENT_PREFIX = "AWSMPEntitlementService"
# A body larger than this is refused before it is parsed (BatchMeterUsage's own limit,
# SandboxConfig.max_request_bytes, is checked by the operation).
MAX_BODY_BYTES = 4 * 1024 * 1024


class AwsError(Exception):
    """An AWS error answer: its ``__type`` name, message and HTTP status."""

    def __init__(self, name: str, message: str, status: int = 400) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.status = status


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def internal_error() -> AwsError:
    return AwsError("InternalServiceErrorException",
                    "An internal error has occurred. Retry your request.", 500)


def throttled() -> AwsError:
    return AwsError("ThrottlingException", "The calls to the API are throttled.")


def raise_fault(fault: Fault | None) -> None:
    """An injected throttling or internal error, as AWS answers it."""
    if fault is not None and fault.kind == "throttling":
        raise throttled()
    if fault is not None and fault.kind == "internal_error":
        raise internal_error()


# (the caller's access key id, the parsed body, the raw body size) -> the answer
Operation = Callable[[str, dict[str, Any], int], dict[str, Any]]


def handle(operations: Mapping[str, Operation], headers: Mapping[str, str],
           body: bytes) -> tuple[int, bytes, dict[str, str]]:
    """One call: the status, body and headers of the answer."""
    request_id = str(uuid.uuid4())
    try:
        status, answer = 200, _dispatch(operations, headers, body)
    except AwsError as error:
        status, answer = error.status, {"__type": error.name, "message": error.message}
    out_headers = {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id}
    if status != 200:
        out_headers["x-amzn-ErrorType"] = answer["__type"]
    return status, json.dumps(answer).encode(), out_headers


def _dispatch(operations: Mapping[str, Operation], headers: Mapping[str, str],
              body: bytes) -> dict[str, Any]:
    authorization = headers.get("authorization", "")
    if not authorization:
        raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    if not authorization.startswith("AWS4-HMAC-SHA256 ") or "Credential=" not in authorization:
        raise AwsError("IncompleteSignatureException",
                       "Authorization header requires a SigV4 Credential, SignedHeaders "
                       "and Signature", 400)
    access_key = authorization.split("Credential=", 1)[1].split("/", 1)[0]
    target = headers.get("x-amz-target", "")
    operation = operations.get(target)
    if operation is None:
        raise AwsError("UnknownOperationException", f"unknown operation {target!r}")
    content_type = headers.get("content-type", "").split(";")[0].strip()
    if content_type not in (CONTENT_TYPE, "application/x-amz-json-1.0", "application/json"):
        raise AwsError("SerializationException",
                       f"this service takes {CONTENT_TYPE}, not {content_type or 'nothing'}")
    if len(body) > MAX_BODY_BYTES:
        raise validation("Request is too large")
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise AwsError("SerializationException", "the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise AwsError("SerializationException", "the body must be a JSON object")
    return operation(access_key, parsed, len(body))


# --- members -------------------------------------------------------------------


def timestamp(value: object, member: str) -> datetime:
    """A timestamp member: epoch seconds on the wire (botocore's form), or ISO 8601."""
    if isinstance(value, bool):
        raise validation(f"{member} must be a timestamp")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < 32503680000:
            raise validation(f"{member} is out of range")
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise validation(f"{member} must be a timestamp") from None
        if parsed.tzinfo is None:
            raise validation(f"{member} needs a time zone")
        return parsed.astimezone(UTC)
    raise validation(f"{member} must be a timestamp")


def epoch(instant: datetime) -> int | float:
    seconds = instant.timestamp()
    return int(seconds) if seconds == int(seconds) else seconds


def string(body: Mapping[str, Any], member: str, *, required: bool = False, min_len: int = 0,
           max_len: int = 255, error: str = "ValidationException") -> str | None:
    value = body.get(member)
    if value is None:
        if required:
            raise AwsError(error, f"{member} is required")
        return None
    if not isinstance(value, str) or not min_len <= len(value) <= max_len:
        raise AwsError(error, f"{member} must be a string of {min_len} to {max_len} characters")
    return value
