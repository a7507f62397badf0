"""Rating (console/domain/rating.py): statistics × price book → charge and adjustment details."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.catalog import ITEMS, PriceBook, PriceRow, load_default_price_book
from accrual.console.domain.rating import (
    Billed,
    PlannedDetail,
    StatKey,
    plan_details,
    price_amount,
)
from accrual.contract.messages import detail_id

DAY = date(2026, 11, 25)
WS = "ws-1"
BOOK = load_default_price_book()


def key(item: str, tier: int = 0, workspace: str = WS, day: date = DAY) -> StatKey:
    return StatKey(workspace, day, item, tier)


def plan(statistics: dict[StatKey, Decimal], billed: dict[StatKey, Billed] | None = None,
         *, currency: str = "CNY", site_group: str = "cn", book: PriceBook = BOOK,
         reason: str = "late usage") -> list[PlannedDetail]:
    return plan_details(statistics, billed or {}, book=book, currency=currency,
                        site_group=site_group, reason=reason)


def billed_after(details: list[PlannedDetail], before: dict[StatKey, Billed] | None = None
                 ) -> dict[StatKey, Billed]:
    """What day close records after storing the planned details."""
    billed = dict(before or {})
    for d in details:
        k = d.key
        billed[k] = Billed(d.total_quantity, d.total_amount_minor, d.revision,
                           detail_id("cn1", k.workspace_id, k.day, k.item, k.retention_days,
                                     d.revision))
    return billed


WORKED_EXAMPLE = {
    key("timeseries", 3): Decimal(6000),
    key("logs", 7): Decimal(2_000_000),
    key("trace", 3): Decimal(2_000_000),
    key("rum_pv", 3): Decimal(20_000),
    key("trigger"): Decimal(20_000),
}


def test_worked_example_amounts() -> None:
    details = plan(WORKED_EXAMPLE)
    assert {d.key.item: d.amount_minor for d in details} == {
        "timeseries": 360, "logs": 240, "trace": 400, "rum_pv": 140, "trigger": 200}
    assert sum(d.amount_minor for d in details) == 1340
    by_item = {d.key.item: d for d in details}
    assert by_item["timeseries"].unit_price == Decimal("0.6")
    assert by_item["timeseries"].unit_size == Decimal(1000)
    assert by_item["logs"].unit_price == Decimal("1.2")
    assert by_item["trigger"].unit_size == Decimal(10_000)


def test_first_close_gives_one_charge_per_statistic() -> None:
    details = plan(WORKED_EXAMPLE)
    assert len(details) == len(WORKED_EXAMPLE)
    assert {d.key for d in details} == set(WORKED_EXAMPLE)
    for d in details:
        assert d.kind == "charge"
        assert d.revision == 0
        assert d.adjusts is None and d.reason is None
        assert d.quantity == d.total_quantity == WORKED_EXAMPLE[d.key]
        assert d.amount_minor == d.total_amount_minor
        assert d.price_book_version.startswith("current@")


def test_details_come_out_in_a_stable_order() -> None:
    statistics = {key("logs", 7, workspace="b"): Decimal(1), key("trigger", workspace="a"): Decimal(1),
                  key("logs", 3, workspace="a"): Decimal(1), key("logs", 7, workspace="a"): Decimal(1)}
    order = [(d.key.workspace_id, d.key.item, d.key.retention_days) for d in plan(statistics)]
    assert order == [("a", "logs", 3), ("a", "logs", 7), ("a", "trigger", 0), ("b", "logs", 7)]


def test_the_same_statistics_again_give_nothing() -> None:
    first = plan(WORKED_EXAMPLE)
    assert plan(WORKED_EXAMPLE, billed_after(first)) == []
    # Also after an adjustment has been billed.
    grown = {**WORKED_EXAMPLE, key("logs", 7): Decimal(3_000_000)}
    second = plan(grown, billed_after(first))
    assert plan(grown, billed_after(second, billed_after(first))) == []


def test_a_bigger_statistic_gives_one_adjustment_with_only_the_delta() -> None:
    first = plan(WORKED_EXAMPLE)
    billed = billed_after(first)
    grown = {**WORKED_EXAMPLE, key("logs", 7): Decimal(2_500_000)}
    details = plan(grown, billed, reason="late usage")
    assert len(details) == 1
    (adjustment,) = details
    assert adjustment.kind == "adjustment"
    assert adjustment.key == key("logs", 7)
    assert adjustment.quantity == Decimal(500_000)
    assert adjustment.total_quantity == Decimal(2_500_000)
    assert adjustment.amount_minor == 60          # 0.5 M × 1.2 = 0.60
    assert adjustment.total_amount_minor == 300   # 2.5 M × 1.2 = 3.00
    assert adjustment.revision == 1
    assert adjustment.adjusts == detail_id("cn1", WS, DAY, "logs", 7, 0)
    assert adjustment.adjusts == billed[key("logs", 7)].last_detail_id
    assert adjustment.reason == "late usage"


def test_a_second_adjustment_points_to_the_first_one() -> None:
    billed = billed_after(plan({key("trigger"): Decimal(10_000)}))
    first = plan({key("trigger"): Decimal(15_000)}, billed)
    billed = billed_after(first, billed)
    (second,) = plan({key("trigger"): Decimal(40_000)}, billed, reason="re-rate")
    assert (second.revision, second.quantity, second.amount_minor) == (2, Decimal(25_000), 250)
    assert second.adjusts == detail_id("cn1", WS, DAY, "trigger", 0, 1)
    assert second.reason == "re-rate"


def test_a_statistic_that_disappears_is_adjusted_to_zero() -> None:
    billed = billed_after(plan({key("trigger"): Decimal(20_000), key("sms"): Decimal(30)}))
    (adjustment,) = plan({key("trigger"): Decimal(20_000)}, billed)
    assert adjustment.key == key("sms")
    assert (adjustment.quantity, adjustment.amount_minor) == (Decimal(-30), -300)
    assert (adjustment.total_quantity, adjustment.total_amount_minor) == (Decimal(0), 0)


def test_a_smaller_statistic_gives_a_negative_adjustment() -> None:
    billed = billed_after(plan({key("logs", 3): Decimal(3_000_000)}))
    (adjustment,) = plan({key("logs", 3): Decimal(1_000_000)}, billed)
    assert (adjustment.quantity, adjustment.amount_minor) == (Decimal(-2_000_000), -200)


def test_new_keys_next_to_billed_ones_are_charges() -> None:
    billed = billed_after(plan(WORKED_EXAMPLE))
    details = plan({**WORKED_EXAMPLE, key("logs", 30): Decimal(1_000_000)}, billed)
    assert [(d.kind, d.key, d.amount_minor) for d in details] == [
        ("charge", key("logs", 30), 200)]


def test_other_columns_use_their_own_prices() -> None:
    statistics = {key("logs", 7): Decimal(2_000_000)}
    assert plan(statistics, currency="CNY", site_group="intl")[0].amount_minor == 480
    assert plan(statistics, currency="USD", site_group="cn")[0].amount_minor == 34
    assert plan(statistics, currency="USD", site_group="intl")[0].amount_minor == 80


# -- rounding ------------------------------------------------------------------------


@pytest.mark.parametrize("quantity, unit_size, unit_price, minor", [
    ("5000", "1000000", "1", 1),       # 0.005 → 0.01
    ("4999", "1000000", "1", 0),       # 0.004999 → 0.00
    ("25000", "1000000", "1", 3),      # 0.025 → 0.03 (banker's would be 0.02)
    ("15000", "1000000", "1", 2),      # 0.015 → 0.02
    ("6000", "1000", "0.6", 360),
    ("1", "10000", "0.143", 0),        # 0.0000143
    ("35", "1", "0.007", 25),          # 0.245 → 0.25
    ("0", "1000", "7", 0),
    ("1000000000", "1000000000", "0.007", 1),   # 1 GB at 0.007 → 0.01
])
def test_price_amount_rounds_half_up_to_the_cent(quantity: str, unit_size: str, unit_price: str,
                                                 minor: int) -> None:
    assert price_amount(Decimal(quantity), Decimal(unit_size), Decimal(unit_price), "CNY") == minor
    assert price_amount(Decimal(quantity), Decimal(unit_size), Decimal(unit_price), "USD") == minor


def test_rounding_happens_once_per_detail_not_per_hour() -> None:
    # Two hourly increments of 5,000 log records at 1 CNY per million: rounding each
    # hour would give 0.01 + 0.01; rounding the detail once gives 0.01.
    (detail,) = plan({key("logs", 3): Decimal(10_000)})
    assert detail.amount_minor == 1
    assert price_amount(Decimal(5000), Decimal(10**6), Decimal(1), "CNY") * 2 == 2


def test_an_adjustment_is_the_difference_of_rounded_totals() -> None:
    # 5,000 records bill 0.005 → 0.01. Growing to 10,000 (0.01) changes the
    # quantity but not the rounded total: the adjustment carries the quantity
    # and an amount of 0.00, so the details still sum to the rounded total.
    billed = billed_after(plan({key("logs", 3): Decimal(5000)}))
    (adjustment,) = plan({key("logs", 3): Decimal(10_000)}, billed)
    assert (adjustment.quantity, adjustment.amount_minor, adjustment.total_amount_minor) == (
        Decimal(5000), 0, 1)
    # 14,000 → 0.014 → 0.01 still; 15,000 → 0.015 → 0.02.
    billed = billed_after([adjustment], billed)
    (again,) = plan({key("logs", 3): Decimal(15_000)}, billed)
    assert (again.quantity, again.amount_minor, again.total_amount_minor) == (Decimal(5000), 1, 2)


def test_a_price_change_for_the_same_quantity_is_an_adjustment() -> None:
    rows = [PriceRow("a", date(2026, 1, 1), "CNY", "cn", "trigger", 0, Decimal(1))]
    billed = billed_after(plan({key("trigger"): Decimal(10_000)}, book=PriceBook(rows)))
    repriced = PriceBook([*rows, PriceRow("b", DAY, "CNY", "cn", "trigger", 0, Decimal(2))])
    (adjustment,) = plan({key("trigger"): Decimal(10_000)}, billed, book=repriced, reason="re-rate")
    assert (adjustment.quantity, adjustment.amount_minor) == (Decimal(0), 100)
    assert adjustment.price_book_version == "b@2026-11-25"


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=8),
       st.sampled_from([("logs", 7), ("trace", 30), ("trigger", 0), ("sensitive_scan", 0),
                        ("timeseries", 3), ("rum_pv", 60)]))
def test_details_always_sum_to_the_rounded_total(quantities: list[int], item: tuple[str, int]) -> None:
    """Whatever sequence of statistics a key goes through, its details sum to
    the latest statistic priced and rounded once."""
    k = key(*item)
    billed: dict[StatKey, Billed] = {}
    amounts, quantities_billed = [], []
    for quantity in quantities:
        details = plan({k: Decimal(quantity)}, billed)
        assert len(details) <= 1
        amounts.extend(d.amount_minor for d in details)
        quantities_billed.extend(d.quantity for d in details)
        billed = billed_after(details, billed)
    unit_price = BOOK.price("CNY", "cn", k.item, k.retention_days, DAY).unit_price
    expected = price_amount(Decimal(quantities[-1]), ITEMS[k.item].unit_size, unit_price, "CNY")
    assert sum(amounts) == expected
    assert sum(quantities_billed) == quantities[-1]
    assert billed[k].revision == len(amounts) - 1
