"""Prepaid card and voucher rules, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.billing.config import CNY_CARD_BONUSES
from accrual.billing.domain import instruments as rules
from accrual.contract.errors import Conflict, Invalid
from accrual.money import InvalidDecimal

NOW = datetime(2026, 11, 26, 8, tzinfo=UTC)


def test_bonus_is_the_largest_reached_threshold() -> None:
    assert rules.bonus_for(9_999_99, CNY_CARD_BONUSES) == 0
    assert rules.bonus_for(10_000_00, CNY_CARD_BONUSES) == 1_000_00
    assert rules.bonus_for(29_999_00, CNY_CARD_BONUSES) == 1_000_00
    assert rules.bonus_for(30_000_00, CNY_CARD_BONUSES) == 5_000_00
    assert rules.bonus_for(100_000_00, CNY_CARD_BONUSES) == 20_000_00
    assert rules.bonus_for(10**12, CNY_CARD_BONUSES) == 20_000_00
    assert rules.bonus_for(10**12, ()) == 0  # the USD center unless configured


@given(st.integers(0, 10**14), st.integers(0, 10**14))
def test_a_dearer_card_never_earns_a_smaller_bonus(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert rules.bonus_for(low, CNY_CARD_BONUSES) <= rules.bonus_for(high, CNY_CARD_BONUSES)


@given(st.integers(1, 10**6))
def test_card_face_values_are_whole_steps(units: int) -> None:
    step = 100_00
    assert rules.card_face_minor(str(units * 100), "CNY", step) == units * step
    with pytest.raises(Invalid) as refused:
        rules.card_face_minor(f"{units * 100}.01", "CNY", step)
    assert refused.value.code == "invalid_face_value"


def test_card_face_value_refusals() -> None:
    for bad in ("0", "-100", "abc", 1.5, "1000000000000.01"):
        with pytest.raises(InvalidDecimal):  # the API's 422 invalid_amount
            rules.card_face_minor(bad, "CNY", 100_00)
    with pytest.raises(Invalid, match=r"multiple of 100\.00"):
        rules.card_face_minor("50", "CNY", 100_00)


def test_a_card_costs_its_face_value_in_cash() -> None:
    rules.check_affordable(100_00, 100_00, "CNY")
    with pytest.raises(Conflict) as refused:
        rules.check_affordable(99_99, 100_00, "CNY")
    assert refused.value.code == "insufficient_balance"
    assert "(99.99)" in refused.value.message and "(100.00)" in refused.value.message


def test_validity_days() -> None:
    default = timedelta(days=90)
    assert rules.validity(None, default) == default
    assert rules.validity(1, default) == timedelta(days=1)
    assert rules.validity(rules.MAX_VALIDITY_DAYS, default).days == rules.MAX_VALIDITY_DAYS
    for bad in (0, -1, rules.MAX_VALIDITY_DAYS + 1, True, "30", 30.0):
        with pytest.raises(Invalid) as refused:
            rules.validity(bad, default)
        assert refused.value.code == "invalid_validity"


def test_references_kinds_and_counts() -> None:
    assert rules.check_reference("x" * 128) == "x" * 128
    for bad in ("", "x" * 129, None, 7):
        with pytest.raises(Invalid, match="reference"):
            rules.check_reference(bad)
    assert rules.check_voucher_kind("voucher_standard") == "voucher_standard"
    for kind in ("prepaid_card", "cash", None, ["voucher_standard"]):
        with pytest.raises(Invalid) as refused:
            rules.check_voucher_kind(kind)
        assert refused.value.code == "invalid_voucher_kind"
    assert rules.check_code_count(rules.MAX_CODES) == rules.MAX_CODES
    for count in (0, rules.MAX_CODES + 1, "3", 2.0):
        with pytest.raises(Invalid):
            rules.check_code_count(count)


@pytest.mark.parametrize(("expires_in", "balance", "written_off", "status"), [
    (1, 500, False, rules.Status.ACTIVE),
    (1, 0, False, rules.Status.USED_UP),
    (0, 500, False, rules.Status.EXPIRED),  # expired at its expiry, before the run writes it off
    (-1, 0, False, rules.Status.EXPIRED),
    (30, 500, True, rules.Status.EXPIRED),
])
def test_status_at(expires_in: int, balance: int, written_off: bool,
                   status: rules.Status) -> None:
    assert rules.status_at(written_off=written_off, expires_at=NOW + timedelta(days=expires_in),
                           balance_minor=balance, now=NOW) is status


@given(st.text(alphabet=rules.CODE_ALPHABET, min_size=rules.CODE_LENGTH,
               max_size=rules.CODE_LENGTH))
def test_a_shown_code_reads_back_as_itself(code: str) -> None:
    shown = rules.show_code(code)
    assert len(shown) == rules.CODE_LENGTH + 3 and shown.count("-") == 3
    assert rules.normalise_code(shown) == code
    assert rules.normalise_code(shown.lower().replace("-", " ")) == code


def test_codes_read_like_crockford() -> None:
    code = rules.new_code()
    assert len(code) == rules.CODE_LENGTH and set(code) <= set(rules.CODE_ALPHABET)
    assert rules.normalise_code("il-o0") == "1100"
    assert rules.code_hash("ABC") != rules.code_hash("ABD")
    assert len(rules.code_hash("ABC")) == 64
    for bad in ("", "x" * 65, None, 1234):
        with pytest.raises(Invalid) as refused:
            rules.normalise_code(bad)
        assert refused.value.code == "invalid_code"


def stored(**changes: object) -> rules.StoredCode:
    unused = rules.StoredCode(currency="CNY", redeem_by=NOW + timedelta(days=1),
                              redeemed_at=None, redeemed_by=None, voucher_id=None)
    return replace(unused, **changes)


def test_redemption() -> None:
    assert rules.redemption(stored(), "ba_1", "CNY", NOW) is None
    again = stored(redeemed_at=NOW, redeemed_by="ba_1", voucher_id="VC1")
    assert rules.redemption(again, "ba_1", "CNY", NOW + timedelta(days=9)) == "VC1"
    for code, account, when, expected in [
            (again, "ba_2", NOW, "code_already_used"),
            (stored(), "ba_1", NOW + timedelta(days=1), "code_expired"),
            (stored(currency="USD"), "ba_1", NOW, "currency_mismatch")]:
        with pytest.raises(Conflict) as refused:
            rules.redemption(code, account, "CNY", when)
        assert refused.value.code == expected
