"""The settlement waterfall: vouchers, then cards by expiry, then cash, then arrears."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from accrual.billing.domain.waterfall import (
    CARD,
    CASH,
    DISCOUNT_VOUCHER,
    PREPAID,
    STANDARD_VOUCHER,
    Instrument,
    pay,
)

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def inst(id_: str, kind: str, balance: int, days: int = 30, created: int = 0) -> Instrument:
    return Instrument(id_, kind, balance, NOW + timedelta(days=days), NOW - timedelta(days=created))


def flow(amount: int, item: str, instruments: list[Instrument], cash: int) -> list[tuple[str, int]]:
    return [(s.source, s.amount_minor) for s in pay(amount, item, NOW, instruments, cash)]


def test_order_standard_then_discount_then_cards_by_expiry_then_cash_then_arrears() -> None:
    instruments = [inst("card-late", CARD, 100, days=300), inst("disc", DISCOUNT_VOUCHER, 100),
                   inst("card-soon", CARD, 100, days=10), inst("std", STANDARD_VOUCHER, 100)]
    assert flow(650, "logs", instruments, cash=100) == [
        ("std", 100), ("disc", 100), ("card-soon", 100), ("card-late", 100), (CASH, 100),
        (PREPAID, 150)]


def test_vouchers_never_pay_sms_or_synthetic_tests() -> None:
    instruments = [inst("std", STANDARD_VOUCHER, 1000), inst("card", CARD, 50)]
    assert flow(80, "sms", instruments, cash=10) == [("card", 50), (CASH, 10), (PREPAID, 20)]
    assert flow(80, "synthetic_test", instruments, cash=100) == [("card", 50), (CASH, 30)]
    assert flow(80, "trigger", instruments, cash=100) == [("std", 80)]


def test_expired_and_empty_instruments_pay_nothing() -> None:
    instruments = [inst("old", CARD, 500, days=-1), inst("empty", STANDARD_VOUCHER, 0),
                   Instrument("now", CARD, 500, NOW, NOW)]  # expiring this instant: expired
    assert flow(70, "logs", instruments, cash=0) == [(PREPAID, 70)]


def test_a_charge_larger_than_all_funds_splits_and_owes_the_rest() -> None:
    assert flow(10_000, "logs", [inst("c", CARD, 300)], cash=200) == [
        ("c", 300), (CASH, 200), (PREPAID, 9_500)]


def test_negative_cash_is_not_spent() -> None:
    assert flow(50, "logs", [], cash=-20) == [(PREPAID, 50)]


@given(amount=st.integers(1, 10**9), cash=st.integers(-10**6, 10**9),
       balances=st.lists(st.tuples(st.sampled_from([CARD, STANDARD_VOUCHER, DISCOUNT_VOUCHER]),
                                   st.integers(0, 10**7), st.integers(-5, 400)), max_size=6),
       item=st.sampled_from(["logs", "sms", "synthetic_test", "trace"]))
def test_splits_always_sum_to_the_charge_and_never_overdraw(
        amount: int, cash: int, balances: list[tuple[str, int, int]], item: str) -> None:
    instruments = [inst(f"i{n}", kind, balance, days) for n, (kind, balance, days) in enumerate(balances)]
    splits = pay(amount, item, NOW, instruments, cash)
    assert sum(s.amount_minor for s in splits) == amount
    assert all(s.amount_minor > 0 for s in splits)
    by_id = {i.id: i for i in instruments}
    for split in splits:
        if split.source in by_id:
            used = by_id[split.source]
            assert split.amount_minor <= used.balance_minor and used.expires_at > NOW
            assert not (used.kind != CARD and item in ("sms", "synthetic_test"))
        elif split.source == CASH:
            assert split.amount_minor <= cash
    # Arrears only when everything usable is spent.
    if splits[-1].source == PREPAID:
        usable = sum(i.balance_minor for i in instruments if i.usable(NOW, item))
        assert amount - splits[-1].amount_minor == usable + max(cash, 0)


# -- give_back: a negative correction --------------------------------------------

from accrual.billing.domain.waterfall import CLOUD, give_back  # noqa: E402


def back(amount: int, arrears: int, paid: dict[str, tuple[str, int]],
         rest: str = CASH) -> list[tuple[str, int]]:
    return [(s.source, s.amount_minor) for s in give_back(amount, arrears, paid, rest)]


def test_a_correction_pays_arrears_first_then_goes_back_in_reverse_order() -> None:
    paid = {"std": (STANDARD_VOUCHER, 100), "disc": (DISCOUNT_VOUCHER, 100),
            "card-a": (CARD, 100), "card-b": (CARD, 100), CASH: (CASH, 100)}
    assert back(30, 50, paid) == [(PREPAID, 30)]
    assert back(480, 50, paid) == [(PREPAID, 50), (CASH, 100), ("card-b", 100),
                                   ("card-a", 100), ("disc", 100), ("std", 30)]


def test_more_back_than_was_paid_goes_to_cash_or_the_cloud() -> None:
    assert back(70, 0, {"v": (STANDARD_VOUCHER, 50)}) == [("v", 50), (CASH, 20)]
    assert back(70, 0, {"v": (STANDARD_VOUCHER, 50), CLOUD: (CLOUD, 10)}, rest=CLOUD) == [
        (CLOUD, 20), ("v", 50)]
    assert back(5, 0, {}) == [(CASH, 5)]


@given(amount=st.integers(1, 10**7), arrears=st.integers(0, 10**7),
       paid=st.lists(st.tuples(st.sampled_from([CARD, STANDARD_VOUCHER, DISCOUNT_VOUCHER, CASH]),
                               st.integers(-100, 10**6)), max_size=5))
def test_give_back_sums_and_never_returns_more_than_a_source_paid(
        amount: int, arrears: int, paid: list[tuple[str, int]]) -> None:
    sources = {(CASH if kind == CASH else f"i{n}"): (kind, value)
               for n, (kind, value) in enumerate(paid)}
    splits = give_back(amount, arrears, sources)
    assert sum(s.amount_minor for s in splits) == amount
    assert all(s.amount_minor > 0 for s in splits)
    for split in splits:
        if split.source in sources and split.source != CASH:
            assert split.amount_minor <= sources[split.source][1]
        if split.source == PREPAID:
            assert split.amount_minor <= arrears
