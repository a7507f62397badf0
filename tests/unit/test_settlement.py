"""The settlement rules (billing/domain/settlement.py): balanced postings, cash first, arrears."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.billing.domain.arrears import owed_minor
from accrual.billing.domain.settlement import (
    BANK_CLEARING,
    CASH,
    PREPAID,
    REVENUE,
    charge,
    recharge,
    refund,
)

# -- charge ------------------------------------------------------------------------


@pytest.mark.parametrize("amount, cash, postings", [
    # Enough cash: all from cash.
    (300, 500, {CASH: -300, REVENUE: 300}),
    (500, 500, {CASH: -500, REVENUE: 500}),
    # Not enough: cash first, the rest goes on the prepaid balance (arrears).
    (800, 500, {CASH: -500, PREPAID: -300, REVENUE: 800}),
    (1340, 1000, {CASH: -1000, PREPAID: -340, REVENUE: 1340}),   # the worked example
    # No cash at all (or a negative reading): all on prepaid.
    (250, 0, {PREPAID: -250, REVENUE: 250}),
    (250, -100, {PREPAID: -250, REVENUE: 250}),
])
def test_charge(amount: int, cash: int, postings: dict[str, int]) -> None:
    assert charge(amount, cash) == postings


# -- refund ------------------------------------------------------------------------------


@pytest.mark.parametrize("amount, prepaid, postings", [
    # No arrears: back to cash.
    (200, 0, {CASH: 200, REVENUE: -200}),
    # Arrears first, the rest to cash.
    (500, -300, {PREPAID: 300, CASH: 200, REVENUE: -500}),
    (300, -300, {PREPAID: 300, REVENUE: -300}),
    (100, -300, {PREPAID: 100, REVENUE: -100}),
    # A positive prepaid balance is not arrears.
    (100, 400, {CASH: 100, REVENUE: -100}),
])
def test_refund(amount: int, prepaid: int, postings: dict[str, int]) -> None:
    assert refund(amount, prepaid) == postings


# -- recharge ------------------------------------------------------------------------------


@pytest.mark.parametrize("amount, prepaid, postings", [
    (1000, 0, {BANK_CLEARING: -1000, CASH: 1000}),
    # A top-up pays the arrears first: 3.40 owed, 5.00 paid → 1.60 cash (the worked example).
    (500, -340, {BANK_CLEARING: -500, PREPAID: 340, CASH: 160}),
    (340, -340, {BANK_CLEARING: -340, PREPAID: 340}),
    (100, -340, {BANK_CLEARING: -100, PREPAID: 100}),
    (100, 50, {BANK_CLEARING: -100, CASH: 100}),
])
def test_recharge(amount: int, prepaid: int, postings: dict[str, int]) -> None:
    assert recharge(amount, prepaid) == postings


@pytest.mark.parametrize("rule", [charge, refund, recharge])
@pytest.mark.parametrize("amount", [0, -1])
def test_amounts_must_be_positive(rule, amount: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError):
        rule(amount, 0)


@pytest.mark.parametrize("prepaid, owed", [(-340, 340), (0, 0), (120, 0), (-1, 1)])
def test_arrears(prepaid: int, owed: int) -> None:
    assert owed_minor(prepaid) == owed


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=-(10**12), max_value=10**12))
def test_postings_always_sum_to_zero_and_carry_no_zero_lines(amount: int, balance: int) -> None:
    for postings in (charge(amount, balance), refund(amount, balance), recharge(amount, balance)):
        assert sum(postings.values()) == 0
        assert all(value != 0 for value in postings.values())
        assert set(postings) <= {CASH, PREPAID, REVENUE, BANK_CLEARING}


# -- a wallet driven by the rules ---------------------------------------------------------------

operations = st.lists(
    st.tuples(st.sampled_from(["charge", "refund", "recharge"]),
              st.integers(min_value=1, max_value=10**9)),
    max_size=40)


@given(operations)
def test_money_is_conserved_over_any_sequence(ops: list[tuple[str, int]]) -> None:
    balances: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for kind, amount in ops:
        if kind == "charge":
            postings = charge(amount, balances[CASH])
        elif kind == "refund":
            postings = refund(amount, balances[PREPAID])
        else:
            postings = recharge(amount, balances[PREPAID])
        assert sum(postings.values()) == 0
        balances.update(postings)
        totals[kind] += amount

        # The customer's side: cash is never negative, prepaid never positive,
        # and there is never cash on hand while arrears are open.
        assert balances[CASH] >= 0
        assert balances[PREPAID] <= 0
        assert balances[CASH] == 0 or balances[PREPAID] == 0
        assert owed_minor(balances[PREPAID]) == -balances[PREPAID]

    assert balances[CASH] + balances[PREPAID] == (
        totals["recharge"] - totals["charge"] + totals["refund"])
    assert balances[REVENUE] == totals["charge"] - totals["refund"]
    assert balances[BANK_CLEARING] == -totals["recharge"]
    assert sum(balances.values()) == 0


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=10**9))
def test_a_top_up_after_a_charge_pays_the_arrears_first(charged: int, paid: int) -> None:
    balances: Counter[str] = Counter()
    balances.update(charge(charged, balances[CASH]))
    assert balances[PREPAID] == -charged
    balances.update(recharge(paid, balances[PREPAID]))
    assert owed_minor(balances[PREPAID]) == max(charged - paid, 0)
    assert balances[CASH] == max(paid - charged, 0)
