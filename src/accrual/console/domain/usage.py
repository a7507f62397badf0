"""Validation of usage records: raw JSON objects in, storable rows or rejections out.

Pure: the caller passes the current instant, the site's zone and a resolver
for the workspace's retention policy.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from accrual.catalog import ITEMS, BillingItem
from accrual.catalog.items import NO_TIER, DailyRule, DataType
from accrual.catalog.rules import RuleError, daily_quantity, record_units
from accrual.console.domain.admission import ACTIVE, admit
from accrual.console.domain.plans import FREE
from accrual.money import MAX_AMOUNT, InvalidDecimal, to_decimal

MAX_RECORD_ID = 128
MAX_QUANTITY = 10**15
MAX_ATTRIBUTES_BYTES = 4096
# The most billable units one (workspace, day, item, retention tier) may hold, for any
# item; an item whose highest price would bill more than MAX_AMOUNT for that holds fewer
# (see daily_unit_limits). A day's billing detail then always fits.
MAX_DAY_UNITS = 10**15
# The post-rules bill trace and rum_pv at max(companion / divisor, billable units)
# (catalog.rules.daily_quantity): a day's companion count may reach divisor × its limit.
COMPANION_DIVISORS: dict[str, int] = {"trace": 10, "rum_pv": 100}
MAX_DAY_COMPANION = MAX_DAY_UNITS * max(COMPANION_DIVISORS.values())


def daily_unit_limits(highest_prices: Mapping[str, Decimal]) -> dict[str, int]:
    """Per item, the most billable units a (workspace, day, item, tier) may hold.

    The smaller of MAX_DAY_UNITS and the units whose price at the item's highest unit
    price (``highest_prices``: any tier, any day of the book) stays below MAX_AMOUNT:
    ``limit / unit_size × price <= MAX_AMOUNT − 1``, so that the detail's amount, even
    after rounding half-up to the cent, is less than MAX_AMOUNT. Worked out in
    integers (no decimal context can round the floor up).
    """
    ceiling = int(MAX_AMOUNT) - 1
    limits: dict[str, int] = {}
    for code, item in ITEMS.items():
        limit = MAX_DAY_UNITS
        price = highest_prices.get(code)
        if price is not None and price > 0:
            price_num, price_den = price.as_integer_ratio()
            unit_num, unit_den = item.unit_size.as_integer_ratio()
            limit = min(limit, ceiling * unit_num * price_den // (unit_den * price_num))
        limits[code] = limit
    return limits


def companion_limit(item: str, unit_limit: int) -> int:
    """The most companion counts (spans, RUM side events) a day may hold: as many as
    the post-rule turns into ``unit_limit`` billable units; none for other items."""
    return unit_limit * COMPANION_DIVISORS.get(item, 0)


@dataclass(frozen=True, slots=True)
class UsageLimits:
    zone: ZoneInfo
    site_group: str
    currency: str
    late_horizon: timedelta = timedelta(days=35)
    future_tolerance: timedelta = timedelta(minutes=5)
    # Item → daily_unit_limits(); an item not named may hold MAX_DAY_UNITS.
    day_units: Mapping[str, int] = field(default_factory=dict)

    def day_limit(self, item: str) -> int:
        return self.day_units.get(item, MAX_DAY_UNITS)


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
            # The naive extremes get the UTC zone on the next line.
            edge = datetime.max if occurred_at.year > 5000 else datetime.min  # noqa: DTZ901
            facts = (edge.replace(tzinfo=UTC), date.min, datetime.min.replace(tzinfo=UTC), "0.0")
    if len(cache) >= _TIMES_MAX:
        cache.clear()
    cache[value] = facts
    return facts


# The quantity grammar: the API's number grammar (money.NUMBER_GRAMMAR) without a sign.
# No exponent in strings ("1e3"); a JSON number with one arrives as a Decimal.
_DECIMAL_STRING = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)


def parse_quantity(value: object) -> int | str:
    """A whole, non-negative number of the item's counted things, or an error message."""
    # Fast paths for the forms collectors send: a plain int, or a short string of
    # ASCII digits (at most 15 digits, so never above MAX_QUANTITY). `type(x) is int` is
    # cheaper than isinstance and refuses bool, but mypy does not narrow on it: hence the
    # ignores on these lines.
    kind = type(value)
    if kind is int:
        if 0 <= value <= MAX_QUANTITY:  # type: ignore[operator]
            return value  # type: ignore[return-value]
    elif kind is str and 0 < len(value) <= 15 and value.isascii() and value.isdigit():  # type: ignore[arg-type, attr-defined]
        return int(value)  # type: ignore[call-overload,no-any-return]
    if kind is str and not _DECIMAL_STRING.fullmatch(value):  # type: ignore[call-overload]
        # Decimal() would also take other scripts' digits, "1_000", " 7 ", "+5".
        return "must be a decimal string of ASCII digits, e.g. \"2000000\""
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

    __slots__ = (
        "day_limits",
        "earliest",
        "latest",
        "limits",
        "offered",
        "resolve_retention",
        "times",
    )

    def __init__(self, *, now: datetime, limits: UsageLimits,
                 resolve_retention: RetentionResolver) -> None:
        self.limits = limits
        self.resolve_retention = resolve_retention
        # In UTC, as the time facts hold the instants.
        self.latest = (now + limits.future_tolerance).astimezone(UTC)
        self.earliest = (now - limits.late_horizon).astimezone(UTC)
        self.offered = _offered(limits.site_group, limits.currency)
        self.day_limits = {code: (limits.day_limit(code),
                                  companion_limit(code, limits.day_limit(code)))
                           for code in ITEMS}
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
        # The fast paths of parse_quantity inline; its note says why the ignores.
        kind = type(raw_quantity)
        if kind is int and 0 <= raw_quantity <= MAX_QUANTITY:  # type: ignore[operator]
            quantity: int | str = raw_quantity  # type: ignore[assignment]
        elif (kind is str
              and 0 < len(raw_quantity) <= 15  # type: ignore[arg-type]
              and raw_quantity.isascii() and raw_quantity.isdigit()):  # type: ignore[union-attr]
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
            # attributes is a dict or None here (checked above, not narrowed by mypy).
            units = record_units(item.code, quantity, attributes)  # type: ignore[arg-type]
        except RuleError as error:
            return _reject(index, "invalid_attributes", str(error))
        if item.code == "synthetic_test" and attributes and attributes.get("node") == "self_built":
            # Tests run from the customer's own nodes are log data (reference §2.3).
            item = ITEMS["logs"]
        # The counting rules multiply (log splits, trigger weights, window surcharges):
        # the bound is on what the record counts, not on what it says.
        limit, most_companion = self.day_limits[item.code]
        if units.billable > limit:
            return _reject(index, "daily_limit_exceeded",
                           f"this record counts {units.billable} billable units of {item.code}; "
                           f"a workspace's day holds at most {limit}")
        if units.companion > most_companion:
            return _reject(index, "daily_limit_exceeded",
                           f"this record reports {units.companion} "
                           f"{'spans' if item.code == 'trace' else 'RUM side events'}; "
                           f"a workspace's day holds at most {most_companion}")
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
            # quantity is an int once the string case returned; not narrowed by mypy.
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


# -- a day's running totals --------------------------------------------------------

# (workspace_id, day, item, retention_days): the key of a day's running total.
TotalKey = tuple[str, date, str, int]
_total_key: Callable[[UsageRow], TotalKey] = itemgetter(0, 4, 2, 6)
_MAX_ITEMS = frozenset(code for code, item in ITEMS.items() if item.rule is DailyRule.MAX)


class DayTotals:
    """Running totals of stored usage per (workspace, day, item, tier), as the
    ``usage_day_totals`` table keeps them: billable units (summed, or the day's
    maximum for max-type items) and companion counts (summed).

    :meth:`admit` decides, record by record in the order they were sent, whether a
    freshly stored record may count: the day's limits (every workspace) and the
    free plan's daily quotas (``free`` workspaces). Admitted records are added.
    :meth:`count` does that for a batch, adding up per key first and going record
    by record only where a limit or a quota could bind.
    """

    __slots__ = ("_tiers", "created", "free", "limits", "totals", "touched")

    def count(self, rows: Sequence[UsageRow], fresh: Iterable[int],
              positions: Sequence[int]) -> dict[int, Rejection]:
        """Count ``rows[p]`` for each p of ``fresh`` (ascending); answer the refused ones
        by p (their index in the request is ``positions[p]``)."""
        added: dict[TotalKey, list[int]] = {}  # key → [Σ quantity, Σ companion, max quantity]
        get = added.get
        for p in fresh:
            row = rows[p]
            key = _total_key(row)
            sums = get(key)
            quantity = row[7]
            if sums is None:
                added[key] = [quantity, row[8], quantity]
            else:
                sums[0] += quantity
                sums[1] += row[8]
                if quantity > sums[2]:
                    sums[2] = quantity
        totals, free, limits = self.totals, self.free, self.limits
        risky: set[TotalKey] = set()
        for key, (quantity, companion, highest) in added.items():
            workspace_id, _, item, _ = key
            total = totals.get(key) or (0, 0)
            limit = limits.day_limit(item)
            new = total[0] + quantity if item not in _MAX_ITEMS else max(total[0], highest)
            if (workspace_id in free or new > limit
                    or total[1] + companion > companion_limit(item, limit)):
                risky.add(key)
                continue
            if key not in totals:
                totals[key] = [0, 0]
                self.created.add(key)
                self._tiers.setdefault(key[:3], []).append(key)
            elif new == total[0] and not companion:
                continue  # a max-type item below the day's maximum so far
            totals[key][0], totals[key][1] = new, total[1] + companion
            self.touched.add(key)
        refused: dict[int, Rejection] = {}
        if risky:
            for p in fresh:
                row = rows[p]
                if _total_key(row) in risky:
                    rejection = self.admit(positions[p], row)
                    if rejection is not None:
                        refused[p] = rejection
        return refused

    def __init__(self, totals: dict[TotalKey, list[int]], limits: UsageLimits,
                 free: set[str]) -> None:
        self.totals = totals  # key → [quantity, companion]
        self.limits = limits
        self.free = free
        self.touched: set[TotalKey] = set()  # keys whose total an admitted record changed
        self.created: set[TotalKey] = set()  # keys that had no total before
        # (workspace, day, item) → its tiers' keys, for the quotas (which count all tiers)
        self._tiers: dict[tuple[str, date, str], list[TotalKey]] = {}
        for key in totals:
            self._tiers.setdefault(key[:3], []).append(key)

    def used(self, workspace_id: str, day: date, item: str) -> Decimal:
        """The day's quantity of an item, all tiers, after the post-rules (what quotas read)."""
        return sum((daily_quantity(item, q, c) for q, c in
                    (self.totals[k] for k in self._tiers.get((workspace_id, day, item), ()))),
                   Decimal(0))

    def admit(self, index: int, row: UsageRow) -> Rejection | None:
        key: TotalKey = (row.workspace_id, row.day, row.item, row.retention_days)
        total = self.totals.get(key)
        if total is None:
            total = self.totals[key] = [0, 0]
            self.created.add(key)
            self._tiers.setdefault(key[:3], []).append(key)
        if row.workspace_id in self.free:
            decision = admit(FREE, ACTIVE, row.item,
                             self.used(row.workspace_id, row.day, row.item))
            if not decision.allowed:
                if decision.reason == "not_in_plan":
                    return _reject(index, "not_in_plan",
                                   f"{row.item} is not part of the free plan; upgrade the "
                                   "workspace to send it")
                return _reject(index, "quota_exceeded",
                               f"the free plan's daily quota of {decision.quota} {row.item} "
                               f"units for {row.day.isoformat()} is used up; the quota resets at "
                               "the site's midnight, or upgrade the workspace to send more")
        limit = self.limits.day_limit(row.item)
        quantity = (max(total[0], row.quantity) if row.item in _MAX_ITEMS
                    else total[0] + row.quantity)
        companion = total[1] + row.companion
        if quantity > limit or companion > companion_limit(row.item, limit):
            held = f" and {total[1]} companion counts" if total[1] else ""
            return _reject(index, "daily_limit_exceeded",
                           f"{row.item} on {row.day.isoformat()} already holds {total[0]} "
                           f"billable units{held} at {row.retention_days} days' retention; with "
                           f"this record it would pass the day's limit of {limit}")
        if (quantity, companion) != (total[0], total[1]) or key in self.created:
            total[0], total[1] = quantity, companion
            self.touched.add(key)
        return None
