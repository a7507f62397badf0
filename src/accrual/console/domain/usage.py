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
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from accrual.catalog import ITEMS, BillingItem
from accrual.catalog.items import NO_TIER, DataType
from accrual.catalog.rules import RuleError, record_units
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


class UsageRow(NamedTuple):
    """A storable record; the field order is the column order the ingestion writes."""

    workspace_id: str
    record_id: str
    item: str
    occurred_at: datetime
    day: date
    hour_start: datetime
    retention_days: int
    quantity: int  # billable units, after the item's counting rule
    companion: int  # spans (trace) or side events (rum_pv), for the daily post-rule
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


_FIELDS = frozenset({"id", "workspace_id", "item", "time", "quantity", "retention_days",
                     "attributes"})
# Item codes as JSON strings, for the digest's canonical form.
_ITEM_JSON = {code: json.dumps(code) for code in ITEMS}


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# What a time string means in a zone: (the instant in UTC, site day, site clock hour in
# UTC, the POSIX timestamp as the digest writes it), or None when it is not a valid
# time. Instants are kept in UTC: comparing or storing datetimes of two different
# zones costs some thirty times more than of one. Collectors send the same
# timestamps over and over (one flush per minute or hour), so the answers are
# memoised per zone; the bound keeps a stream of distinct timestamps from growing it.
_TimeFacts = tuple[datetime, date, datetime, str]
_TIMES: dict[ZoneInfo, dict[str, _TimeFacts | None]] = {}
_TIMES_MAX = 50_000


def _time_facts(value: str, zone: ZoneInfo) -> _TimeFacts | None:
    cache = _TIMES.get(zone)
    if cache is None:
        cache = _TIMES.setdefault(zone, {})
    try:
        return cache[value]
    except KeyError:
        pass
    occurred_at = parse_time(value)
    facts: _TimeFacts | None = None
    if occurred_at is not None:
        try:
            local = occurred_at.astimezone(zone)
            hour_start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
            facts = (occurred_at.astimezone(UTC), local.date(), hour_start,
                     repr(occurred_at.timestamp()))
        except OverflowError:
            # Within a day of year 1 or 9999: the horizons refuse it before the rest is needed.
            edge = datetime.max if occurred_at.year > 5000 else datetime.min
            facts = (edge.replace(tzinfo=UTC), date.min, datetime.min.replace(tzinfo=UTC), "0.0")
    if len(cache) >= _TIMES_MAX:
        cache.clear()
    cache[value] = facts
    return facts


def parse_quantity(value: object) -> int | str:
    """A whole, non-negative number of the item's counted things, or an error message."""
    # Fast paths for the forms collectors send: a plain int, or a short string of
    # ASCII digits (at most 15 digits, so never above MAX_QUANTITY).
    kind = type(value)
    if kind is int:
        if 0 <= value <= MAX_QUANTITY:  # type: ignore[operator]
            return value  # type: ignore[return-value]
    elif kind is str and 0 < len(value) <= 15 and value.isascii() and value.isdigit():  # type: ignore[arg-type]
        return int(value)  # type: ignore[call-overload,no-any-return]
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
    return _digest(item, repr(occurred_at.timestamp()), quantity, retention, attributes)


def _digest(item: str, timestamp: str, quantity: int, retention: object,
            attributes: Mapping[str, Any] | None) -> str:
    """``timestamp`` is ``repr(occurred_at.timestamp())``, as JSON writes the float."""
    item_json = _ITEM_JSON.get(item)
    if (not attributes and item_json is not None and type(quantity) is int
            and (retention is None or type(retention) is int)):
        # The canonical JSON below, written out directly for the common shape.
        canonical = (f"[{item_json},{timestamp},{quantity},"
                     f"{'null' if retention is None else retention},{{}}]")
    else:
        canonical = json.dumps(
            [item, float(timestamp), quantity, retention, attributes or {}],
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
    return RecordChecker(now=now, limits=limits, resolve_retention=resolve_retention).check(index, raw)


_OFFERED: dict[tuple[str, str], dict[str, BillingItem]] = {}
_new_row = tuple.__new__


def _offered(site_group: str, currency: str) -> dict[str, BillingItem]:
    """The items a site group and currency take usage for, by code."""
    offered = _OFFERED.get((site_group, currency))
    if offered is None:
        offered = _OFFERED[(site_group, currency)] = {
            code: item for code, item in ITEMS.items()
            if not item.legacy and site_group in item.site_groups and currency in item.currencies}
    return offered


class RecordChecker:
    """:func:`validate_record` for the records of one batch.

    What is the same for every record (the horizons, the items on offer, the
    zone's time cache) is worked out once; ``check`` runs the checks in their
    documented order and answers exactly as ``validate_record`` does.
    """

    __slots__ = ("limits", "resolve_retention", "latest", "earliest", "offered", "times")

    def __init__(self, *, now: datetime, limits: UsageLimits,
                 resolve_retention: RetentionResolver) -> None:
        self.limits = limits
        self.resolve_retention = resolve_retention
        # In UTC, as the time facts hold the instants.
        self.latest = (now + limits.future_tolerance).astimezone(UTC)
        self.earliest = (now - limits.late_horizon).astimezone(UTC)
        self.offered = _offered(limits.site_group, limits.currency)
        times = _TIMES.get(limits.zone)
        self.times = times if times is not None else _TIMES.setdefault(limits.zone, {})

    def check(self, index: int, raw: object) -> UsageRow | Rejection:
        if not isinstance(raw, dict):
            return _reject(index, "invalid_record", "each record must be a JSON object")
        if not raw.keys() <= _FIELDS:
            unknown = set(raw) - _FIELDS
            return _reject(index, "invalid_record", f"unknown fields: {', '.join(sorted(unknown))}")
        record_id = raw.get("id")
        if not isinstance(record_id, str) or not 0 < len(record_id) <= MAX_RECORD_ID \
                or "\x00" in record_id:  # PostgreSQL text cannot hold NUL
            return _reject(index, "invalid_id",
                           f"id must be a string of 1 to {MAX_RECORD_ID} characters, without NUL")
        workspace_id = raw.get("workspace_id")
        if not isinstance(workspace_id, str):
            return _reject(index, "unknown_workspace", "workspace_id must be a string")
        code = raw.get("item")
        item = self.offered.get(code) if isinstance(code, str) else None
        if item is None:
            return self._item_refused(index, code)
        time_value = raw.get("time")
        facts = None
        if isinstance(time_value, str):
            facts = self.times.get(time_value)
            if facts is None:
                facts = _time_facts(time_value, self.limits.zone)
        if facts is None:
            return _reject(index, "invalid_time",
                           "time must be an ISO 8601 timestamp with a UTC offset, "
                           "e.g. 2026-11-25T08:00:00Z")
        occurred_at, day, hour_start, timestamp = facts
        if occurred_at > self.latest:
            return _reject(index, "time_in_future",
                           f"time is more than {self.limits.future_tolerance} ahead of the "
                           "server clock")
        if occurred_at < self.earliest:
            return _reject(index, "too_late",
                           "time is older than the late-data horizon of "
                           f"{self.limits.late_horizon.days} days")
        raw_quantity = raw.get("quantity")
        kind = type(raw_quantity)
        if kind is int and 0 <= raw_quantity <= MAX_QUANTITY:  # type: ignore[operator]
            quantity: int | str = raw_quantity  # type: ignore[assignment]
        elif kind is str and 0 < len(raw_quantity) <= 15 and raw_quantity.isascii() \
                and raw_quantity.isdigit():  # type: ignore[union-attr,arg-type]
            quantity = int(raw_quantity)  # type: ignore[arg-type]
        else:
            quantity = parse_quantity(raw_quantity)
            if isinstance(quantity, str):
                return _reject(index, "invalid_quantity", f"quantity {quantity}")
        attributes = raw.get("attributes")
        if attributes is not None:
            if not isinstance(attributes, dict):
                return _reject(index, "invalid_attributes", "attributes must be an object")
            if len(json.dumps(attributes, default=str)) > MAX_ATTRIBUTES_BYTES:
                return _reject(index, "invalid_attributes",
                               f"attributes must be under {MAX_ATTRIBUTES_BYTES} bytes")
        try:
            units = record_units(item.code, quantity, attributes)  # type: ignore[arg-type]
        except RuleError as error:
            return _reject(index, "invalid_attributes", str(error))
        if item.code == "synthetic_test" and attributes and attributes.get("node") == "self_built":
            # Tests run from the customer's own nodes are log data (reference §2.3).
            item = ITEMS["logs"]
        given_retention = raw.get("retention_days")
        if item.tiers:
            assert item.data_type is not None
            if given_retention is None:
                retention = self.resolve_retention(workspace_id, item.data_type, occurred_at)
                if retention not in item.tiers:
                    # A policy longer than the item offers (APM 30 days for profiles):
                    # the item's longest tier not above it.
                    retention = max((t for t in item.tiers if t <= retention), default=retention)
            elif isinstance(given_retention, int) and not isinstance(given_retention, bool):
                retention = given_retention
            else:
                return _reject(index, "invalid_retention", "retention_days must be a whole number")
            if retention not in item.tiers:
                return _reject(index, "invalid_retention",
                               f"{item.code} offers retention of "
                               f"{', '.join(map(str, item.tiers))} days")
        else:
            if isinstance(given_retention, bool) or given_retention not in (None, NO_TIER):
                return _reject(index, "invalid_retention", f"{item.code} has no retention tiers")
            retention = NO_TIER
        return _new_row(UsageRow, (  # UsageRow(...) without the keyword-handling __new__
            workspace_id, record_id, item.code, occurred_at, day, hour_start, retention,
            units.billable, units.companion,
            _digest(item.code, timestamp, quantity,  # type: ignore[arg-type]
                    given_retention if isinstance(given_retention, int) else None, attributes),
        ))

    def _item_refused(self, index: int, code: object) -> Rejection:
        item: BillingItem | None = ITEMS.get(code) if isinstance(code, str) else None
        if item is None:
            return _reject(index, "unknown_item",
                           f"unknown billing item {code!r}; see GET /catalog/v1/items")
        if item.legacy:
            return _reject(index, "unknown_item",
                           f"{item.code} is a retired item and takes no new usage")
        limits = self.limits
        return _reject(index, "item_not_available",
                       f"{item.code} is not offered on {limits.site_group} sites in {limits.currency}")
