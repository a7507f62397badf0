"""A close prices its day in parts of whole workspaces, asking the price book once per
(currency, site group, item, tier, day): pure steps of rating, no database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from accrual.catalog.pricebook import Price
from accrual.console.domain.rating import Billed, RememberedPrices, StatKey, workspace_parts

DAY = date(2026, 11, 25)


@given(st.dictionaries(st.sampled_from([f"ws-{i}" for i in range(12)]),
                       st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=12),
       st.integers(1, 9))
def test_parts_hold_whole_workspaces_in_order_and_lose_nothing(
        shape: dict[str, tuple[int, int]], part_size: int) -> None:
    statistics = {w: {StatKey(w, DAY, f"i{n}", 0): Decimal(n) for n in range(s)}
                  for w, (s, _) in shape.items() if s}
    billed = {w: {StatKey(w, DAY, f"i{n}", 0): Billed(Decimal(n), n, 0, f"d{n}")
                  for n in range(b)} for w, (_, b) in shape.items() if b}
    parts = list(workspace_parts(statistics, billed, part_size))
    seen: list[str] = []
    for statistics_part, billed_part in parts:
        workspaces = sorted({k.workspace_id for k in (*statistics_part, *billed_part)})
        assert workspaces, "no empty part"
        seen.extend(workspaces)
        # a part is cut only once it reaches the size, so every part but the last does
        if (statistics_part, billed_part) != parts[-1]:
            assert len(statistics_part) + len(billed_part) >= part_size
    assert seen == sorted(statistics.keys() | billed.keys())  # each once, in order
    assert {k: v for s, _ in parts for k, v in s.items()} == {
        k: v for found in statistics.values() for k, v in found.items()}
    assert {k: v for _, b in parts for k, v in b.items()} == {
        k: v for found in billed.values() for k, v in found.items()}


class CountingBook:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, int, date]] = []

    def price(self, currency: str, site_group: str, item: str, tier: int, day: date) -> Price:
        self.asked.append((currency, site_group, item, tier, day))
        return Price(Decimal(len(self.asked)), f"v{len(self.asked)}")


def test_remembered_prices_ask_the_book_once_per_key() -> None:
    book = CountingBook()
    prices = RememberedPrices(book)
    first = prices.price("CNY", "cn", "logs", 7, DAY)
    assert prices.price("CNY", "cn", "logs", 7, DAY) is first
    other = prices.price("CNY", "cn", "logs", 14, DAY)
    assert other != first
    assert book.asked == [("CNY", "cn", "logs", 7, DAY), ("CNY", "cn", "logs", 14, DAY)]
