"""The invoiceable amount and how a request takes it, without a database."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.billing.domain import invoicing
from accrual.billing.domain.invoicing import BillParts
from accrual.contract.errors import Conflict, Invalid

amounts = st.integers(-10**9, 10**9)


@given(amounts, amounts, st.integers(0, 10**9))
def test_invoiceable_is_cash_paid_plus_cards_less_taken_never_negative(
        cash: int, cards: int, taken: int) -> None:
    parts = BillParts(consumption_paid_in_cash_minor=cash,
                      card_purchases_paid_in_cash_minor=cards, requested_minor=taken)
    assert parts.invoiceable_minor == max(cash + cards - taken, 0)
    assert parts.invoiceable_minor >= 0


def test_a_refund_of_cash_lowers_what_may_be_invoiced() -> None:
    assert BillParts(300, 0, 0).invoiceable_minor == 300
    assert BillParts(300, 500, 200).invoiceable_minor == 600
    assert BillParts(-100, 50, 0).invoiceable_minor == 0


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=12), st.data())
def test_a_request_takes_oldest_bills_first_and_exactly_its_amount(
        available: list[int], data: st.DataObject) -> None:
    total = data.draw(st.integers(0, sum(available)))
    bills = list(enumerate(available, start=1))
    taken = invoicing.allocate(total, bills)
    assert sum(take for _, take in taken) == total
    assert all(0 < take <= dict(bills)[bill] for bill, take in taken)
    # Oldest first: every bill before the last one touched is taken whole.
    if taken:
        last = taken[-1][0]
        assert [t for t in taken if t[0] != last] == [(b, a) for b, a in bills
                                                      if b < last and a > 0]


def test_allocating_more_than_available_is_a_bug() -> None:
    with pytest.raises(ValueError, match="more than"):
        invoicing.allocate(11, [(1, 5), (2, 5)])


def test_request_total() -> None:
    assert invoicing.request_total(None, 700, "CNY") == 700
    assert invoicing.request_total(200, 700, "CNY") == 200
    with pytest.raises(Invalid) as refused:
        invoicing.request_total(None, 0, "CNY")
    assert refused.value.code == "nothing_to_invoice"
    with pytest.raises(Invalid) as refused:
        invoicing.request_total(701, 700, "CNY")
    assert refused.value.code == "amount_exceeds_invoiceable"
    assert "at most 7.00" in refused.value.message


def test_months_named_once_and_bounded() -> None:
    nov, oct_ = date(2026, 11, 1), date(2026, 10, 1)
    assert invoicing.check_months([nov, oct_, nov]) == [nov, oct_]
    with pytest.raises(Invalid) as refused:
        invoicing.check_months([])
    assert refused.value.code == "no_bills"
    many = [date(2020 + n // 12, n % 12 + 1, 1) for n in range(invoicing.MAX_MONTHS + 1)]
    assert len(invoicing.check_months(many[:-1])) == invoicing.MAX_MONTHS
    with pytest.raises(Invalid) as refused:
        invoicing.check_months(many)
    assert refused.value.code == "too_many_bills"


def test_invoice_numbers_and_reasons() -> None:
    assert invoicing.check_invoice_number("  31002600000012345678 ") == "31002600000012345678"
    assert invoicing.check_invoice_number("A/1_2.3-4") == "A/1_2.3-4"
    for bad in ("", "-A1", "A" * 65, "A 1", None, 7):
        with pytest.raises(Invalid) as refused:
            invoicing.check_invoice_number(bad)
        assert refused.value.code == "invalid_invoice_number"
    assert invoicing.check_reject_reason(" late ") == "late"
    for bad in ("  ", "x" * 501, None):
        with pytest.raises(Invalid, match="the reason must be 1 to 500"):
            invoicing.check_reject_reason(bad)


def test_a_decision_is_written_once() -> None:
    assert invoicing.needs_decision("requested", repeated=False)
    assert not invoicing.needs_decision("issued", repeated=True)
    with pytest.raises(Conflict) as refused:
        invoicing.needs_decision("rejected", repeated=False)
    assert refused.value.code == "invoice_already_decided"
