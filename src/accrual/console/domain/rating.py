"""Rating: a day's statistics × the price book → billing details.

A statistic that was never billed becomes a ``charge`` detail. One that was
billed and has since changed (late usage, a re-rate) becomes an
``adjustment`` carrying only the difference, so a closed detail is never
rewritten (decisions.md 2, 10).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from accrual.catalog import ITEMS
from accrual.catalog.pricebook import Price
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


class Prices(Protocol):
    """What rating asks of a price book."""

    def price(self, currency: str, site_group: str, item: str, tier: int, day: date
              ) -> Price: ...


class RememberedPrices:
    """A price book's answers, remembered for one close (asked once per statistic)."""

    def __init__(self, book: Prices) -> None:
        self.book = book
        self.known: dict[tuple[str, str, str, int, date], Price] = {}

    def price(self, currency: str, site_group: str, item: str, tier: int, day: date) -> Price:
        key = (currency, site_group, item, tier, day)
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self.book.price(currency, site_group, item, tier, day)
        return found


# Statistics priced and written per part, so that on PostgreSQL one part is stored while
# the next is priced.
PART_SIZE = 20_000


def workspace_parts(statistics: Mapping[str, Mapping[StatKey, Decimal]],
                    billed: Mapping[str, Mapping[StatKey, Billed]], part_size: int = PART_SIZE,
                    ) -> Iterator[tuple[dict[StatKey, Decimal], dict[StatKey, Billed]]]:
    """The statistics and billed amounts (both by workspace) in parts of about
    ``part_size`` keys, whole workspaces in sorted order."""
    statistics_part: dict[StatKey, Decimal] = {}
    billed_part: dict[StatKey, Billed] = {}
    size = 0
    for workspace_id in sorted(statistics.keys() | billed.keys()):
        found = statistics.get(workspace_id)
        if found is not None:
            statistics_part.update(found)
            size += len(found)
        done = billed.get(workspace_id)
        if done is not None:
            billed_part.update(done)
            size += len(done)
        if size >= part_size:
            yield statistics_part, billed_part
            statistics_part, billed_part, size = {}, {}, 0
    if size:
        yield statistics_part, billed_part


def price_amount(quantity: Decimal, unit_size: Decimal, unit_price: Decimal, currency: str) -> int:
    """quantity / unit_size × unit_price, rounded once (half-up, 0.01), in minor units."""
    return to_minor(round_amount(quantity / unit_size * unit_price, currency), currency)


def plan_details(
    statistics: Mapping[StatKey, Decimal],
    billed: Mapping[StatKey, Billed],
    *,
    book: Prices,
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
