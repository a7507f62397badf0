"""The day's limits (console/domain/usage.py): every billing detail they allow fits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accrual.catalog import ITEMS, load_default_price_book
from accrual.catalog.pricebook import COLUMNS
from accrual.catalog.rules import daily_quantity
from accrual.console.domain.rating import price_amount
from accrual.console.domain.usage import (
    COMPANION_DIVISORS,
    MAX_DAY_UNITS,
    companion_limit,
    daily_unit_limits,
)
from accrual.money import MAX_AMOUNT, to_minor

BOOK = load_default_price_book()


@pytest.mark.parametrize("currency, site_group", COLUMNS)
def test_the_largest_day_each_limit_allows_bills_less_than_max_amount(
        currency: str, site_group: str) -> None:
    highest: dict[str, Decimal] = {}
    for row in BOOK.rows:
        if (row.currency, row.site_group) == (currency, site_group):
            highest[row.item] = max(highest.get(row.item, row.unit_price), row.unit_price)
    limits = daily_unit_limits(highest)
    assert set(limits) == set(ITEMS)
    for item, limit in limits.items():
        assert 0 < limit <= MAX_DAY_UNITS
        price = highest.get(item, Decimal(0))
        unit = ITEMS[item].unit_size
        # Priced (half-up to the cent) the way the day close prices it.
        assert price_amount(Decimal(limit), unit, price, currency) < to_minor(MAX_AMOUNT, currency)
        if limit < MAX_DAY_UNITS:  # the price bound: one more unit would reach MAX_AMOUNT − 1
            assert (limit + 1) * price / unit > MAX_AMOUNT - 1


def test_the_limit_is_floored_exactly_for_prices_that_do_not_divide() -> None:
    limits = daily_unit_limits({"network_host": Decimal("3"), "scheduled_report": Decimal("1.3")})
    assert limits["network_host"] == (10**15 - 1) // 3
    assert limits["scheduled_report"] == (10**15 - 1) * 10 // 13
    assert limits["logs"] == MAX_DAY_UNITS  # unpriced: the general limit


@pytest.mark.parametrize("item", sorted(COMPANION_DIVISORS))
def test_a_full_companion_count_bills_exactly_the_unit_limit(item: str) -> None:
    assert daily_quantity(item, 0, companion_limit(item, 12_345)) == 12_345
    assert companion_limit("logs", 12_345) == 0
