"""The billing center's bounds (domain/bounds.py) and the exact SQL sum, without HTTP."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from accrual.billing.domain import bounds
from accrual.billing.domain.bounds import (
    MAX_BALANCE_MINOR,
    MAX_MOVEMENT_MINOR,
    MAX_POSTING_MINOR,
    AmountLimitExceeded,
    BalanceLimitExceeded,
)
from accrual.contract.errors import Invalid
from accrual.infra.db import exact_sum, make_engine
from accrual.infra.http import status_for
from accrual.money import InvalidDecimal


def test_the_bounds_keep_every_sum_of_two_inside_64_bits() -> None:
    assert MAX_MOVEMENT_MINOR == 10**14 and MAX_BALANCE_MINOR == MAX_POSTING_MINOR == 10**17
    assert MAX_BALANCE_MINOR + MAX_POSTING_MINOR < 2**63 - 1


def test_movements_are_bounded_before_any_arithmetic() -> None:
    assert bounds.movement_minor("1000000000000.00", "CNY") == MAX_MOVEMENT_MINOR
    # A JSON number arrives as a Decimal and may carry an exponent; strings may not.
    for value in ("1000000000000.01", "999999999999999.99", Decimal("1E+13")):
        with pytest.raises(InvalidDecimal, match=r"at most 1000000000000\.00"):
            bounds.movement_minor(value, "CNY")


def test_balances_are_bounded_in_both_directions() -> None:
    bounds.check_balance("a", "cash", MAX_BALANCE_MINOR - 1, 1, "CNY")
    bounds.check_balance("a", "prepaid", -MAX_BALANCE_MINOR + 1, -1, "CNY")
    with pytest.raises(BalanceLimitExceeded) as up:
        bounds.check_balance("a", "cash", MAX_BALANCE_MINOR, 1, "CNY")
    with pytest.raises(BalanceLimitExceeded):
        bounds.check_balance("a", "prepaid", -MAX_BALANCE_MINOR, -1, "CNY")
    assert (status_for(up.value), up.value.code, up.value.owner, up.value.account) == \
        (422, "balance_limit_exceeded", "a", "cash")
    # Only cached balances are bounded: the center's own accounts are left out.
    bounds.check_movement("a", {"cash": 0}, {"bank_clearing": -MAX_POSTING_MINOR,
                                             "cash": MAX_POSTING_MINOR}, "CNY")
    with pytest.raises(AmountLimitExceeded):
        bounds.check_movement("a", {"cash": 0}, {"bank_clearing": -MAX_POSTING_MINOR - 1,
                                                 "cash": MAX_POSTING_MINOR + 1}, "CNY")


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-10", date(2026, 10, 1)), ("2000-01", date(2000, 1, 1)),
    ("2099-12", date(2099, 12, 1))])
def test_months_in_the_window(text: str, expected: date) -> None:
    assert bounds.parse_month(text) == expected


@pytest.mark.parametrize(("text", "code"), [
    ("1999-12", "date_out_of_range"), ("2100-01", "date_out_of_range"),
    ("9999-12", "date_out_of_range"), ("0001-01", "date_out_of_range"), ("0000-01", "date_out_of_range"),
    ("1-01", "invalid_month"), ("2026-13", "invalid_month"), ("2026-00", "invalid_month"),
    ("٢٠٢٦-10", "invalid_month"), ("2026-10\n", "invalid_month"), ("", "invalid_month"),
    (202610, "invalid_month")])
def test_months_outside_the_grammar_or_window(text: object, code: str) -> None:
    with pytest.raises(Invalid) as refused:
        bounds.parse_month(text)
    assert refused.value.code == code


def test_days_outside_the_window() -> None:
    assert bounds.check_day("to", date(2099, 12, 31)) == date(2099, 12, 31)
    for day in (date(1, 1, 1), date(1999, 12, 31), date(2100, 1, 1), date(9999, 12, 31)):
        with pytest.raises(Invalid, match="2000-01-01 to 2099-12-31"):
            bounds.check_day("from", day)


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\t", "ключ", "new\nline"])
def test_idempotency_keys_outside_the_grammar(key: str) -> None:
    with pytest.raises(Invalid, match="printable ASCII"):
        bounds.check_idempotency_key(key)


def test_exact_sum_on_sqlite_past_64_bits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'sums.db'}")
    numbers = Table("numbers", MetaData(), Column("id", Integer, primary_key=True),
                    Column("n", Integer), Column("g", Integer))
    numbers.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(numbers), [{"n": 2**62, "g": 1} for _ in range(10)]
                     + [{"n": -(2**62), "g": 2} for _ in range(10)] + [{"n": 5, "g": 3}])
        sums = dict(conn.execute(select(numbers.c.g, exact_sum(numbers.c.n))
                                 .group_by(numbers.c.g)).all())
        total = conn.execute(select(exact_sum(numbers.c.n))).scalar_one()
        empty = conn.execute(select(exact_sum(numbers.c.n)).where(numbers.c.g == 9)).scalar_one()
    engine.dispose()
    assert sums == {1: 10 * 2**62, 2: -10 * 2**62, 3: 5}
    assert (total, empty) == (5, None)
