"""Pricing a close part by part: the day's statistics cut into parts of whole workspaces,
and the price book's answers remembered across the parts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

from accrual.catalog import PriceBook
from accrual.catalog.pricebook import Price
from accrual.console.domain.rating import Billed, StatKey

# Statistics priced and written per part, so that on PostgreSQL one part is stored while
# the next is priced.
PART_SIZE = 20_000


class _Prices:
    """The price book's answers, remembered for one close (asked once per statistic)."""

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        self.known: dict[tuple[str, str, str, int, date], Price] = {}

    def price(self, currency: str, site_group: str, item: str, tier: int, day: date) -> Price:
        key = (currency, site_group, item, tier, day)
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self.book.price(currency, site_group, item, tier, day)
        return found


def _parts(statistics: dict[str, dict[StatKey, Decimal]], billed: dict[str, dict[StatKey, Billed]]
           ) -> Iterator[tuple[dict[StatKey, Decimal], dict[StatKey, Billed]]]:
    """The statistics and billed amounts in parts of about PART_SIZE keys, whole workspaces
    in sorted order."""
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
        if size >= PART_SIZE:
            yield statistics_part, billed_part
            statistics_part, billed_part, size = {}, {}, 0
    if size:
        yield statistics_part, billed_part
