"""The marketplace charge reporter's rules (decisions.md 23), pure.

What vouchers and cards leave unpaid on a cloud-settled day is owed by the cloud
account; the reporter cuts it into reports of whole units of the listing's money
dimension, one per cloud account and period (an hour or a day, as the vendor
allows), and sends each before the vendor's lateness limit. What is below one unit,
and a total that corrections made negative, is carried to the next cut: a quantity
is never negative.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from accrual.billing.domain.marketplace import ReportLimits, UsageReport

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Retries: exponential backoff with full jitter, from BASE, capped at CAP; a throttled
# vendor waits THROTTLED_FACTOR times longer. Never later than half the time left before
# the deadline, so that a charge still gets tries as its deadline nears.
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=30)
THROTTLED_FACTOR = 4
# What a report weighs in a request besides its strings (JSON keys, quantity, timestamp).
REPORT_OVERHEAD_BYTES = 256
REQUEST_OVERHEAD_BYTES = 512

T = TypeVar("T")


@dataclass(frozen=True)
class Cut:
    quantity: int  # whole units to report now, never negative
    amount_minor: int  # quantity × the unit
    carry_minor: int  # what is left for the next cut: a remainder, or a negative total


def cut(carried_minor: int, new_minor: int, unit_minor: int, max_quantity: int) -> Cut:
    """What to report of a cloud account's ``new_minor`` (the signed sum of its lines not
    reported yet) with ``carried_minor`` from before: whole units of ``unit_minor``, at
    most ``max_quantity``; the rest is carried."""
    assert unit_minor > 0 and max_quantity >= 0
    total = carried_minor + new_minor
    quantity = min(total // unit_minor, max_quantity) if total > 0 else 0
    amount = quantity * unit_minor
    return Cut(quantity, amount, total - amount)


def period_start(now: datetime, period: timedelta) -> datetime:
    """The start of the period (an hour, a day, in UTC) that contains ``now``."""
    assert now.tzinfo is not None and timedelta(0) < period <= timedelta(days=1)
    assert timedelta(days=1) % period == timedelta(0), "a period divides the day"
    return _EPOCH + ((now - _EPOCH) // period) * period


def deadline(start: datetime, limits: ReportLimits) -> datetime:
    """When the vendor stops taking a report of the period starting at ``start``."""
    return start + limits.lateness


def retry_delay(attempts: int, *, throttled: bool = False,
                random: Callable[[], float], base: timedelta = RETRY_BASE,
                cap: timedelta = RETRY_CAP) -> timedelta:
    """How long to wait after the ``attempts``-th failed send: uniformly between zero
    and base × 2^(attempts−1), capped (full jitter, so that many charges failing
    together do not come back together); ``THROTTLED_FACTOR`` times that when the
    vendor throttled us."""
    assert attempts >= 1
    ceiling = min(cap, base * (1 << min(attempts - 1, 30)))
    if throttled:
        ceiling *= THROTTLED_FACTOR
    return ceiling * min(max(random(), 0.0), 1.0)


def next_attempt_at(now: datetime, delay: timedelta, deadline_at: datetime) -> datetime:
    """``now + delay``, but no later than half-way to the deadline (and never before now)."""
    return max(now, min(now + delay, now + (deadline_at - now) / 2))


def alert_at(start: datetime, deadline_at: datetime, margin: timedelta | None = None) -> datetime:
    """When a charge still unsent deserves an alert: ``margin`` before its deadline, by
    default when a third of its window is left."""
    return deadline_at - (margin if margin is not None else (deadline_at - start) / 3)


def report_bytes(report: UsageReport) -> int:
    """An upper estimate of what one report weighs in a vendor's request."""
    buyer = report.buyer
    strings = (report.key, report.dimension, buyer.account_id, buyer.product_code,
               buyer.customer_id or "", buyer.license_ref or "")
    return REPORT_OVERHEAD_BYTES + sum(len(s.encode()) for s in strings)


def batches(items: Iterable[T], limits: ReportLimits, weight: Callable[[T], int]
            ) -> list[list[T]]:
    """``items`` in order, in batches of at most ``limits.batch_size`` whose weights add up
    to at most ``limits.max_request_bytes`` (a request's overhead included); an item too
    heavy on its own still goes, alone."""
    assert limits.batch_size >= 1
    found: list[list[T]] = []
    current: list[T] = []
    size = REQUEST_OVERHEAD_BYTES
    for item in items:
        heavy = weight(item)
        if current and (len(current) >= limits.batch_size
                        or size + heavy > limits.max_request_bytes):
            found.append(current)
            current, size = [], REQUEST_OVERHEAD_BYTES
        current.append(item)
        size += heavy
    if current:
        found.append(current)
    return found

