"""Rating: a day's statistics × the price book → billing details.

A statistic that was never billed becomes a ``charge`` detail. One that was
billed and has since changed (late usage, a re-rate) becomes an
``adjustment`` carrying only the difference, so a closed detail is never
rewritten (decisions.md 2, 10).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from accrual.catalog import ITEMS, PriceBook
from accrual.money import round_amount, to_minor


@dataclass(frozen=True, slots=True)
class StatKey:
    workspace_id: str
    day: date
    item: str
    retention_days: int


@dataclass(frozen=True, slots=True)
class Billed:
    """What has been billed so far for a key: Σ of its details."""

    quantity: Decimal
    amount_minor: int
    revision: int
    last_detail_id: str


@dataclass(frozen=True, slots=True)
class PlannedDetail:
    key: StatKey
    revision: int
    kind: str  # charge | adjustment
    total_quantity: Decimal  # the statistic after this detail
    quantity: Decimal  # this detail's own quantity (a delta for adjustments)
    unit_size: Decimal
    unit_price: Decimal
    total_amount_minor: int
    amount_minor: int
    price_book_version: str
    adjusts: str | None
    reason: str | None


def price_amount(quantity: Decimal, unit_size: Decimal, unit_price: Decimal, currency: str) -> int:
    """quantity / unit_size × unit_price, rounded once (half-up, 0.01), in minor units."""
    return to_minor(round_amount(quantity / unit_size * unit_price, currency), currency)


def plan_details(
    statistics: Mapping[StatKey, Decimal],
    billed: Mapping[StatKey, Billed],
    *,
    book: PriceBook,
    currency: str,
    site_group: str,
    reason: str = "late usage",
) -> list[PlannedDetail]:
    """The details that bring what was billed in line with the statistics."""
    planned: list[PlannedDetail] = []
    keys: Iterable[StatKey] = sorted(
        statistics.keys() | billed.keys(),
        key=lambda k: (k.workspace_id, k.day, k.item, k.retention_days))
    for key in keys:
        quantity = statistics.get(key, Decimal(0))
        previous = billed.get(key)
        item = ITEMS[key.item]
        price = book.price(currency, site_group, key.item, key.retention_days, key.day)
        total_minor = price_amount(quantity, item.unit_size, price.unit_price, currency)
        if previous is None:
            planned.append(PlannedDetail(
                key, 0, "charge", quantity, quantity, item.unit_size, price.unit_price,
                total_minor, total_minor, price.version, None, None))
            continue
        if previous.quantity == quantity and previous.amount_minor == total_minor:
            continue
        planned.append(PlannedDetail(
            key, previous.revision + 1, "adjustment", quantity, quantity - previous.quantity,
            item.unit_size, price.unit_price, total_minor, total_minor - previous.amount_minor,
            price.version, previous.last_detail_id, reason))
    return planned
