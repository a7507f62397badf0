"""The pay-per-use usage push, ``POST /api/mkp-openapi-public/global/v1/isv/usage-data``
(marketplaces.md §3.4), and the background validation that decides its records.

At the HTTP level a push is refused whole only when it is not provably the seller's
or not a batch at all:

* 401 ``missing_signature`` / ``stale_timestamp`` (``ts`` not Unix ms within
  ``usage_tolerance``) / ``replayed_nonce`` (1-64 characters, once) /
  ``invalid_signature`` (the body's keys must be in natural sort order: the
  signature is over the body as sent, sorted);
* 400 ``invalid_body`` (not a JSON object with a ``usage_records`` list of 1 to
  ``max_usage_records`` objects); 413 ``too_large`` (over 2 MiB);
* injected faults: 500 ``internal_error``, 429 ``throttled``.

Every other push is answered 200 and its records wait, ``pending``, for
:func:`validate` (the control API's ``validate`` and ``tick``), which marks each:
``rejected`` (unknown or non-active pay-per-use instance, a time not
``yyyyMMdd'T'HHmmss'Z'``, begin after end, ``usage_value`` not a decimal string > 0
with at most 4 places, no ``metering_sn``, no ``relate_pkg_instance`` for a package
product), ``duplicate`` (its ``metering_sn`` was billable already: never billed
twice) or ``billable``, with ``late`` when it came after the billing deadline (hourly:
2 h after the record's end; daily: 01:00 UTC the day after), which delays the
deduction but does not refuse it.

The success body (the real one was not retrieved) is ``{"request_id"}``; an error
is ``{"error_code", "error_msg", "request_id"}`` with our stable codes.
"""

from __future__ import annotations

import hmac
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from accrual.sandbox.huawei.signing import usage_signature
from accrual.sandbox.huawei.state import HOUR, Push, SandboxState, UsageRecord, millis

USAGE_PATH = "/api/mkp-openapi-public/global/v1/isv/usage-data"
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_NONCE = 64
MAX_SN = 64  # our bound; Huawei's was not retrieved
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_TIME = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
_VALUE = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$")


class PushRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def receive(state: SandboxState, key: str, headers: Mapping[str, str],
            body: bytes) -> tuple[int, dict[str, Any]]:
    """One push (``headers`` with lower-case names): the status and answer; kept either way."""
    request_id = str(uuid.uuid4())
    with state.lock:
        try:
            records = _check(state, key, headers, body)
            status, answer = 200, {"request_id": request_id}
        except PushRefused as refused:
            records = []
            status = refused.status
            answer = {"error_code": refused.code, "error_msg": refused.message,
                      "request_id": request_id}
        now = state.now()
        push = Push(id=len(state.pushes) + 1, received_at=now, headers=dict(headers),
                    body=body.decode("utf-8", "replace"), status=status, answer=answer,
                    records=len(records))
        state.pushes.append(push)
        state.usage += [UsageRecord(push.id, i, now, r, _status(state, r))
                        for i, r in enumerate(records)]
        return status, answer


def _check(state: SandboxState, key: str, headers: Mapping[str, str],
           body: bytes) -> list[dict[str, Any]]:
    fault = state.take_fault()
    if fault is not None and fault.kind == "throttling":
        raise PushRefused(429, "throttled", "too many requests; retry later")
    if fault is not None:
        raise PushRefused(500, "internal_error", "an internal error occurred; retry")
    if len(body) > MAX_BODY_BYTES:
        raise PushRefused(413, "too_large", f"a push is at most {MAX_BODY_BYTES} bytes")
    signature, ts, nonce = (headers.get(name, "") for name in ("signature", "ts", "nonce"))
    if not (signature and ts and nonce):
        raise PushRefused(401, "missing_signature", "signature, ts and nonce headers are required")
    now = state.now()
    tolerance = state.config.usage_tolerance
    if not ts.isdigit() or len(ts) > 16 or abs(millis(now) - int(ts)) > tolerance / timedelta(
            milliseconds=1):
        raise PushRefused(401, "stale_timestamp", f"ts must be Unix milliseconds within "
                                                  f"{tolerance.total_seconds():g} s of now")
    if len(nonce) > MAX_NONCE:
        raise PushRefused(401, "invalid_nonce", f"nonce is at most {MAX_NONCE} characters")
    for seen, at in list(state.usage_nonces.items()):
        if now - at > 2 * tolerance:  # older nonces would fail the ts check anyway
            del state.usage_nonces[seen]
    if nonce in state.usage_nonces:
        raise PushRefused(401, "replayed_nonce", "this nonce was used already")
    parsed = _sorted_json(body)
    expected = usage_signature(key, ts, nonce, body)
    if parsed is None or not _same(expected, signature):
        raise PushRefused(401, "invalid_signature", "the signature does not match: "
                          "HMAC-SHA256 over ts=&nonce=&body= with the body's keys sorted")
    state.usage_nonces[nonce] = now
    records = parsed.get("usage_records") if isinstance(parsed, dict) else None
    limit = state.config.max_usage_records
    if not isinstance(records, list) or not 1 <= len(records) <= limit or not all(
            isinstance(r, dict) for r in records):
        raise PushRefused(400, "invalid_body",
                          f"usage_records must be a list of 1 to {limit} record objects")
    return records


def _status(state: SandboxState, raw: dict[str, Any]) -> str | None:
    # Validation runs later; the instance's state when the usage arrived is what counts.
    instance_id = raw.get("instance_id")
    order = state.by_instance(instance_id) if isinstance(instance_id, str) else None
    return order.status if order else None


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def _sorted_json(body: bytes) -> Any:
    """The body, or None when it is not JSON or any object's keys are out of order."""
    unsorted = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        if keys != sorted(keys):
            unsorted.append(keys)
        return dict(items)

    try:
        parsed = json.loads(body, object_pairs_hook=pairs)
    except ValueError:
        return None
    return None if unsorted else parsed


# --- background validation --------------------------------------------------------


def validate(state: SandboxState) -> dict[str, int]:
    """Decide every pending record, in the order received; how many of each result."""
    counts = {"billable": 0, "rejected": 0, "duplicate": 0}
    with state.lock:
        billed = {r.raw.get("metering_sn") for r in state.usage if r.validation == "billable"}
        for record in state.usage:
            if record.validation != "pending":
                continue
            problem, end = _problem(state, record)
            if problem:
                record.validation, record.reason = "rejected", problem
            elif record.raw["metering_sn"] in billed:
                record.validation = "duplicate"
                record.reason = "metering_sn was billed already"
            else:
                record.validation = "billable"
                billed.add(record.raw["metering_sn"])
                assert end is not None
                record.late = record.received_at > _deadline(state, record.raw, end)
            counts[record.validation] += 1
    return counts


def _problem(state: SandboxState,
             record: UsageRecord) -> tuple[str | None, datetime | None]:
    raw = record.raw
    instance_id = raw.get("instance_id")
    order = state.by_instance(instance_id) if isinstance(instance_id, str) else None
    if order is None or order.charging_mode != "ON_DEMAND":
        return f"instance_id {instance_id!r} is no pay-per-use instance", None
    times = {}
    for name in ("record_time", "begin_time", "end_time"):
        value = raw.get(name)
        parsed = _time(value)
        if parsed is None:
            return f"{name} {value!r} is not yyyyMMdd'T'HHmmss'Z'", None
        times[name] = parsed
    if times["begin_time"] > times["end_time"]:
        return "begin_time is after end_time", None
    if record.instance_status != "active" or times["end_time"] > order.expires_at:
        return (f"instance {instance_id} was {record.instance_status}, not active for this "
                "usage"), None
    value = raw.get("usage_value")
    if not isinstance(value, str) or not _VALUE.match(value) or Decimal(value) <= 0:
        return "usage_value must be a decimal string > 0 with at most 4 decimal places", None
    sn = raw.get("metering_sn")
    if not isinstance(sn, str) or not 1 <= len(sn) <= MAX_SN:
        return f"metering_sn is required, 1 to {MAX_SN} characters", None
    product = state.products.get(order.product_id)
    if product is not None and product.package and not raw.get("relate_pkg_instance"):
        return "relate_pkg_instance is required for a stop-when-used-up package", None
    return None, times["end_time"]


def _deadline(state: SandboxState, raw: dict[str, Any], end: datetime) -> datetime:
    order = state.by_instance(raw["instance_id"])
    product = state.products.get(order.product_id) if order else None
    if product is not None and product.billing == "daily":
        day_after = (end - timedelta(microseconds=1)).replace(
            hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        return day_after + HOUR
    return end + 2 * HOUR


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not _TIME.match(value):
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
