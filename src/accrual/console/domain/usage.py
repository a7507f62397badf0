"""Validation of usage records: raw JSON objects in, storable rows or rejections out.

Pure: the caller passes the current instant, the site's zone and a resolver
for the workspace's retention policy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from accrual.catalog import ITEMS, BillingItem
from accrual.catalog.items import NO_TIER, DataType
from accrual.money import InvalidDecimal, to_decimal

MAX_RECORD_ID = 128
MAX_QUANTITY = 10**15
MAX_ATTRIBUTES_BYTES = 4096


@dataclass(frozen=True, slots=True)
class UsageLimits:
    zone: ZoneInfo
    site_group: str
    currency: str
    late_horizon: timedelta = timedelta(days=35)
    future_tolerance: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class UsageRow:
    workspace_id: str
    record_id: str
    item: str
    occurred_at: datetime
    day: date
    hour_start: datetime
    retention_days: int
    quantity: int
    digest: str


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    code: str
    message: str


# (workspace_id, data type, instant) → retention days in force
RetentionResolver = Callable[[str, DataType, datetime], int]


def _reject(index: int, code: str, message: str) -> Rejection:
    return Rejection(index, code, message)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def parse_quantity(value: object) -> int | str:
    """A whole, non-negative number of the item's counted things, or an error message."""
    try:
        quantity = to_decimal(value)
    except InvalidDecimal as error:
        return error.reason
    if quantity < 0:
        return "must not be negative"
    if quantity != quantity.to_integral_value():
        return "must be a whole number (records, series, bytes, calls … are counted whole)"
    if quantity > MAX_QUANTITY:
        return f"must not exceed {MAX_QUANTITY}"
    return int(quantity)


def record_digest(item: str, occurred_at: datetime, quantity: int, retention: int | None,
                  attributes: Mapping[str, Any] | None) -> str:
    """A fingerprint of a record's payload: the same id with another digest is a conflict."""
    canonical = json.dumps(
        [item, occurred_at.timestamp(), quantity, retention, attributes or {}],
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def validate_record(
    index: int,
    raw: object,
    *,
    now: datetime,
    limits: UsageLimits,
    resolve_retention: RetentionResolver,
) -> UsageRow | Rejection:
    """Check one record; the workspace id must already be known to the caller."""
    if not isinstance(raw, dict):
        return _reject(index, "invalid_record", "each record must be a JSON object")
    unknown = set(raw) - {"id", "workspace_id", "item", "time", "quantity", "retention_days",
                          "attributes"}
    if unknown:
        return _reject(index, "invalid_record", f"unknown fields: {', '.join(sorted(unknown))}")
    record_id = raw.get("id")
    if not isinstance(record_id, str) or not 0 < len(record_id) <= MAX_RECORD_ID:
        return _reject(index, "invalid_id", f"id must be a string of 1 to {MAX_RECORD_ID} characters")
    workspace_id = raw.get("workspace_id")
    if not isinstance(workspace_id, str):
        return _reject(index, "unknown_workspace", "workspace_id must be a string")
    code = raw.get("item")
    item: BillingItem | None = ITEMS.get(code) if isinstance(code, str) else None
    if item is None:
        return _reject(index, "unknown_item", f"unknown billing item {code!r}; see GET /catalog/v1/items")
    if item.legacy:
        return _reject(index, "unknown_item", f"{item.code} is a retired item and takes no new usage")
    if limits.site_group not in item.site_groups or limits.currency not in item.currencies:
        return _reject(index, "item_not_available",
                       f"{item.code} is not offered on {limits.site_group} sites in {limits.currency}")
    occurred_at = parse_time(raw.get("time"))
    if occurred_at is None:
        return _reject(index, "invalid_time",
                       "time must be an ISO 8601 timestamp with a UTC offset, e.g. 2026-11-25T08:00:00Z")
    if occurred_at > now + limits.future_tolerance:
        return _reject(index, "time_in_future",
                       f"time is more than {limits.future_tolerance} ahead of the server clock")
    if occurred_at < now - limits.late_horizon:
        return _reject(index, "too_late",
                       f"time is older than the late-data horizon of {limits.late_horizon.days} days")
    quantity = parse_quantity(raw.get("quantity"))
    if isinstance(quantity, str):
        return _reject(index, "invalid_quantity", f"quantity {quantity}")
    attributes = raw.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            return _reject(index, "invalid_attributes", "attributes must be an object")
        if len(json.dumps(attributes, default=str)) > MAX_ATTRIBUTES_BYTES:
            return _reject(index, "invalid_attributes",
                           f"attributes must be under {MAX_ATTRIBUTES_BYTES} bytes")
    given_retention = raw.get("retention_days")
    if item.tiered:
        assert item.data_type is not None
        if given_retention is None:
            retention = resolve_retention(workspace_id, item.data_type, occurred_at)
        elif isinstance(given_retention, int) and not isinstance(given_retention, bool):
            retention = given_retention
        else:
            return _reject(index, "invalid_retention", "retention_days must be a whole number")
        if retention not in item.tiers:
            return _reject(index, "invalid_retention",
                           f"{item.code} offers retention of {', '.join(map(str, item.tiers))} days")
    else:
        if given_retention not in (None, NO_TIER):
            return _reject(index, "invalid_retention", f"{item.code} has no retention tiers")
        retention = NO_TIER
    local = occurred_at.astimezone(limits.zone)
    hour_start = local.replace(minute=0, second=0, microsecond=0)
    return UsageRow(
        workspace_id=workspace_id,
        record_id=record_id,
        item=item.code,
        occurred_at=occurred_at,
        day=local.date(),
        hour_start=hour_start.astimezone(UTC),
        retention_days=retention,
        quantity=quantity,
        digest=record_digest(item.code, occurred_at, quantity,
                             given_retention if isinstance(given_retention, int) else None,
                             attributes),
    )
