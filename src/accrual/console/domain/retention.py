"""Retention policy changes (reference-billing.md §2.5).

The first change of a site day applies at once; later changes that day apply
from the next midnight, with the last value asked for. Data keeps the tier it
was written under, so a change never re-prices stored data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from accrual.catalog.items import RETENTION_DEFAULTS, RETENTION_OPTIONS, DataType
from accrual.clock import day_bounds, site_day

# Free workspaces keep 7 days of everything and may not change it (reference §7.2).
FREE_RETENTION = 7


@dataclass(frozen=True, slots=True)
class PolicyChange:
    effective_from: datetime
    retention_days: int
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class ChangePlan:
    effective_from: datetime
    applies: str  # "now" | "next_day"


def plan_change(history: list[PolicyChange], now: datetime, zone: ZoneInfo) -> ChangePlan:
    """When a change asked for ``now`` takes effect, given the data type's history."""
    today = site_day(now, zone)
    start_of_today, start_of_tomorrow = day_bounds(today, zone)
    changed_today = any(start_of_today <= c.changed_at < start_of_tomorrow for c in history)
    if changed_today:
        return ChangePlan(start_of_tomorrow, "next_day")
    return ChangePlan(now, "now")


def in_force(history: list[PolicyChange], data_type: DataType, at: datetime) -> int:
    retention = RETENTION_DEFAULTS[data_type]
    for change in sorted(history, key=lambda c: c.effective_from):
        if change.effective_from > at:
            break
        retention = change.retention_days
    return retention


def record_retention(free: bool, commercial_since: datetime | None,
                     changes: Iterable[tuple[datetime, int]], data_type: DataType,
                     at: datetime) -> int:
    """The retention tier a record written ``at`` is stored (and billed) under.

    Data of a free workspace, or from before its upgrade, keeps the free plan's
    FREE_RETENTION days (the type's default if the type does not offer it); otherwise
    the policy in force at ``at``: ``changes`` are the data type's (effective_from,
    retention_days), oldest first.
    """
    if free or (commercial_since is not None and at < commercial_since):
        return (FREE_RETENTION if FREE_RETENTION in RETENTION_OPTIONS[data_type]
                else RETENTION_DEFAULTS[data_type])
    retention = RETENTION_DEFAULTS[data_type]
    for effective_from, days in changes:
        if effective_from > at:
            break
        retention = days
    return retention


def check_option(data_type: DataType, retention_days: int) -> str | None:
    options = RETENTION_OPTIONS[data_type]
    if retention_days not in options:
        return (f"{data_type.value} retention must be one of "
                f"{', '.join(map(str, options))} days")
    return None




