"""Every item × column × tier rated end to end by the console's rating, against amounts
derived by hand from the reference's literal prices: 1,000 units of an item cost 1,000 ×
its unit price, and 2.5 units cost 2.5 × it rounded half-up to the cent."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest

from accrual.catalog import ITEMS, load_default_price_book
from accrual.console.domain.rating import StatKey, plan_details
from tests.unit.test_price_book import COLUMNS, CURRENT

DAY = date(2026, 11, 25)
BOOK = load_default_price_book()
CASES = [(item, tier, currency, group, prices[n])
         for item, tiers in CURRENT.items() for tier, prices in tiers.items()
         for n, (currency, group) in enumerate(COLUMNS)]


def shifted(price: str, places: int) -> str:
    """The literal times 10**places, by moving the decimal point (no arithmetic under test)."""
    whole, _, fraction = price.partition(".")
    fraction = fraction.ljust(places, "0")
    digits = (whole + fraction[:places]).lstrip("0") or "0"
    rest = fraction[places:]
    return f"{digits}.{rest.ljust(2, '0')[:2]}" if rest else f"{digits}.00"


@pytest.mark.parametrize(("item", "tier", "currency", "group", "price"), CASES)
def test_every_price_rates_as_the_reference_says(item: str, tier: int, currency: str, group: str,
                                                 price: str) -> None:
    unit = ITEMS[item].unit_size
    key = StatKey("ws", DAY, item, tier)
    (thousand,) = plan_details({key: unit * 1000}, {}, book=BOOK, currency=currency,
                               site_group=group)
    assert str(Decimal(thousand.amount_minor).scaleb(-2).quantize(Decimal("0.01"))) == \
        shifted(price, 3)
    (two_and_a_half,) = plan_details({key: unit * Decimal("2.5")}, {}, book=BOOK,
                                     currency=currency, site_group=group)
    expected = (Decimal(price) * Decimal("2.5")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert Decimal(two_and_a_half.amount_minor).scaleb(-2) == expected


def test_the_table_covers_every_current_item_column_and_tier() -> None:
    offered = {(code, tier, currency, group)
               for code, item in ITEMS.items() if not item.legacy and code != "sms"
               for tier in item.price_tiers() for currency, group in COLUMNS
               if item.offered(group, currency)}
    assert {(i, t, c, g) for i, t, c, g, _ in CASES} == offered
