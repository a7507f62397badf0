"""The hot paths of ingestion and day close give exactly what the plain code gives.

Usage digests, detail ids, amounts and billing-detail envelopes are written by
hand-rolled fast paths (bench/README.md); these tests pin them to the reference
implementations, so a change to either side shows up here.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accrual.console.domain.rating import PlannedDetail, StatKey
from accrual.console.domain.usage import parse_quantity, record_digest
from accrual.console.services.day_close import rows as day_close
from accrual.contract.messages import (
    BillingDetail,
    Envelope,
    billing_detail_envelope,
    detail_id,
    message_id,
)
from accrual.money import format_decimal, format_minor, to_decimal


def reference_digest(item: str, occurred_at: datetime, quantity: int, retention: object,
                     attributes: dict[str, object] | None) -> str:
    canonical = json.dumps([item, occurred_at.timestamp(), quantity, retention, attributes or {}],
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@settings(max_examples=500, deadline=None)
@given(micros=st.integers(min_value=0, max_value=10**16),
       offset=st.integers(min_value=-14 * 60, max_value=14 * 60),
       quantity=st.integers(min_value=0, max_value=10**15),
       retention=st.sampled_from([None, 0, 3, 7, 360, True, False]),
       item=st.sampled_from(["logs", "trace", "timeseries", "sms", "not-an-item"]),
       attributes=st.sampled_from([None, {}, {"host": "a"}, {"n": 1, "é": "\"x\""}]))
def test_the_usage_digest_equals_the_canonical_json_digest(
        micros: int, offset: int, quantity: int, retention: object, item: str,
        attributes: dict[str, object] | None) -> None:
    at = (datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)).astimezone(
        timezone(timedelta(minutes=offset)))
    assert record_digest(item, at, quantity, retention, attributes) == reference_digest(
        item, at, quantity, retention, attributes)


def reference_quantity(value: object) -> int | str:
    from accrual.money import InvalidDecimal

    if isinstance(value, str):
        # The API's grammar: ASCII digits, an optional fraction, an optional exponent.
        mantissa, e, exponent = value.lower().partition("e")
        whole, point, fraction = mantissa.partition(".")
        digits = set("0123456789")
        if not (whole and set(whole) <= digits and (not point or (fraction and set(fraction) <= digits))
                and (not e or (exponent.lstrip("+-") and set(exponent.lstrip("+-")) <= digits
                     and len(exponent) - len(exponent.lstrip("+-")) <= 1))):
            return "not in the grammar"
    try:
        quantity = to_decimal(value)
    except InvalidDecimal as error:
        return error.reason
    if quantity < 0:
        return "must not be negative"
    if quantity != quantity.to_integral_value():
        return "must be a whole number (records, series, bytes, calls … are counted whole)"
    if quantity > 10**15:
        return f"must not exceed {10**15}"
    return int(quantity)


@pytest.mark.parametrize("value", [
    "0", "00", "007", "1", "999999999999999", "1000000000000000", "1000000000000001",
    "9" * 15, "9" * 16, " 12", "12 ", "+5", "-5", "1_000", "١٢", "²", "", 0, 5, -1, 10**15,
    10**15 + 1, True, False, 1.0, Decimal("3"), "1e3", "1E+15", "12.000", "1.5", "1e", "1e+-3",
    ".5", "5.", "1.2.3",
])
def test_quantity_fast_paths_agree_with_the_decimal_parser(value: object) -> None:
    got, expected = parse_quantity(value), reference_quantity(value)
    if isinstance(expected, str):  # refused, each with its own message
        assert isinstance(got, str) and got
    else:
        assert got == expected


@settings(max_examples=300, deadline=None)
@given(workspace=st.text(min_size=1, max_size=40), item=st.sampled_from(["logs", "trace"]),
       tier=st.integers(min_value=0, max_value=720), revision=st.integers(min_value=0, max_value=99),
       days=st.integers(min_value=0, max_value=4000))
def test_the_fast_detail_id_is_the_uuid5_of_its_parts(workspace: str, item: str, tier: int,
                                                      revision: int, days: int) -> None:
    day = date(2020, 1, 1) + timedelta(days=days)
    # message_id is uuid.uuid5 over the parts joined by "/": the reference implementation
    assert detail_id("cn1", workspace, day, item, tier, revision) == message_id(
        "cn1", workspace, day.isoformat(), item, tier, revision)


def test_minor_units_as_text_match_format_minor() -> None:
    rng = random.Random(3)
    values = [0, 1, -1, 9, 10, 99, 100, -100, 101, 1340, -1340, 10**12 + 7]
    values += [rng.randrange(-10**15, 10**15) for _ in range(5000)]
    for value in values:
        assert day_close.minor_text(value, 2) == format_minor(value, "CNY"), value


def planned_details() -> list[PlannedDetail]:
    def key(workspace: str, item: str, tier: int) -> StatKey:
        return StatKey(workspace, date(2026, 11, 25), item, tier)

    return [
        PlannedDetail(key("ws-1", "logs", 7), 0, "charge", Decimal(2000000), Decimal(2000000),
                      Decimal(1000000), Decimal("1.2"), 240, 240, "current@2023-11-02", None,
                      None),
        PlannedDetail(key("ws-1", "trigger", 0), 0, "charge", Decimal(0), Decimal(0),
                      Decimal(10000), Decimal("1"), 0, 0, "current@2023-11-02", None, None),
        PlannedDetail(key("ws-\"2", "timeseries", 3), 2, "adjustment", Decimal("6000"),
                      Decimal("-500"), Decimal(1000), Decimal("0.6"), 360, -30,
                      "current@2023-11-02", "6f1d2c1e-55b8-4f5e-9d0c-2a4f7a1b0c11",
                      're-rate: "fix" of the 价格 book\n\\'),
        PlannedDetail(key("ws-3", "logs", 14), 1, "adjustment", Decimal("1.5E+6"),
                      Decimal("0"), Decimal(1000000), Decimal("1.25"), 188, -2, "fixed@2026-01-01",
                      "x", None),
    ]


def test_the_rows_of_a_close_are_those_the_pydantic_path_writes() -> None:
    now = datetime(2026, 11, 26, 2, 0, 0, 123456, tzinfo=UTC)
    accounts = {"ws-1": "acct-1", "ws-\"2": None, "ws-3": "acct-3"}
    fast = day_close.CloseRows('cn"1', "CNY", now, accounts)
    fast.add(planned_details())
    plain_details, plain_messages = [], []
    for p in planned_details():
        k = p.key
        did = detail_id('cn"1', k.workspace_id, k.day, k.item, k.retention_days, p.revision)
        quantity = format_decimal(p.quantity)
        detail = BillingDetail(
            id=did, site='cn"1', workspace_id=k.workspace_id,
            billing_account_id=accounts[k.workspace_id], day=k.day, item=k.item,
            retention_days=k.retention_days, quantity=quantity,
            unit_size=format_decimal(p.unit_size), unit_price=format_decimal(p.unit_price),
            amount=format_minor(p.amount_minor, "CNY"), currency="CNY",
            price_book_version=p.price_book_version, kind=p.kind,  # type: ignore[arg-type]
            revision=p.revision, adjusts=p.adjusts, reason=p.reason, created_at=now)
        plain_details.append((
            did, k.workspace_id, accounts[k.workspace_id], k.day, k.item, k.retention_days,
            p.revision, p.kind, quantity, detail.unit_size, detail.unit_price, p.amount_minor,
            "CNY", p.price_book_version, p.adjusts, p.reason, now))
        plain_messages.append((did, "billing_detail",
                               billing_detail_envelope(detail, now).model_dump_json()))
    assert fast.details == plain_details
    assert [m[:2] for m in fast.messages] == [m[:2] for m in plain_messages]
    for (_, _, body), (_, _, reference) in zip(fast.messages, plain_messages, strict=True):
        assert body == reference  # byte for byte
        assert Envelope.model_validate_json(body) == Envelope.model_validate_json(reference)
    assert fast.new_stats == [
        (p.key.workspace_id, p.key.day, p.key.item, p.key.retention_days,
         format_decimal(p.total_quantity), p.total_amount_minor, p.revision, now)
        for p in planned_details() if p.kind == "charge"]
    assert fast.changed_stats == [
        {"k_workspace_id": p.key.workspace_id, "k_day": p.key.day, "k_item": p.key.item,
         "k_retention_days": p.key.retention_days,
         "v_quantity": format_decimal(p.total_quantity),
         "v_amount_minor": p.total_amount_minor, "v_revision": p.revision}
        for p in planned_details() if p.kind == "adjustment"]
    # and the reference path is the contract's own serialisation
    first = plain_details[0]
    assert first[0] == detail_id('cn"1', "ws-1", date(2026, 11, 25), "logs", 7, 0)
    assert json.loads(plain_messages[0][2])["payload"]["amount"] == "2.40"


@pytest.mark.parametrize("value", ["0", "-0", "5", "1.5E+6", "1E+3", "12.50", "-3", "0.000",
                                   "123456789012345678901234567890"])
def test_decimal_text_is_format_decimal(value: str) -> None:
    def outcome(text: Callable[[Decimal], str]) -> object:
        try:
            return text(Decimal(value))
        except ArithmeticError as error:
            return type(error)

    assert outcome(day_close.decimal_text) == outcome(format_decimal)
