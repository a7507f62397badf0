"""The contract's fast billing-detail serialisation is its models' JSON, byte for byte.

A day close writes envelopes with ``BillingDetailJson`` instead of building
``BillingDetail``/``Envelope`` models; the receiver parses them with the models. These
tests hold the two to the same bytes over every detail field, edge values included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from accrual.contract.messages import (
    BillingDetail,
    BillingDetailJson,
    Envelope,
    KeyJson,
    PriceJson,
    WorkspaceJson,
    billing_detail_envelope,
    detail_id,
    message_id,
)
from accrual.money import format_decimal

# Text as it can reach a detail: any code point a database stores (no NUL, no lone
# surrogates), so quotes, backslashes, control characters, DEL, U+2028 and astral planes.
text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
               min_size=1, max_size=40)
edgy = st.sampled_from(['"', "\\", "\n\r\t\b\f", "\x01\x1f\x7f", "\u2028\u2029", "价格",
                        "😀", "\ufeff", "é", "</script>"])
names = st.one_of(text, edgy)
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal(-10**27),
                max_value=Decimal(10**27), places=6),
    st.sampled_from([Decimal(0), Decimal("-0"), Decimal("1E+15"), Decimal(10**28 - 1),
                     Decimal("0.000001"), Decimal("1.5E+6"), Decimal("-99999999999999.99")]))
instants = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)),
                                            timezone(timedelta(hours=-9, minutes=-30))])),
    st.sampled_from([datetime(2026, 11, 26, tzinfo=UTC),
                     datetime(2026, 11, 26, 2, 0, 0, 123456, tzinfo=UTC)]))
ints = st.one_of(st.integers(min_value=0, max_value=2**63 - 1), st.sampled_from([0, 1, 2**63 - 1]))


@st.composite
def details(draw: st.DrawFn) -> tuple[BillingDetail, datetime]:
    site = draw(names)
    workspace_id = draw(st.one_of(st.text(min_size=1, max_size=64), edgy))
    day = draw(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
    item = draw(names)
    tier, revision = draw(ints), draw(ints)
    created_at = draw(instants)
    return BillingDetail(
        id=detail_id(site, workspace_id, day, item, tier, revision), site=site,
        workspace_id=workspace_id, billing_account_id=draw(st.none() | names), day=day,
        item=item, retention_days=tier, quantity=format_decimal(draw(decimals)),
        unit_size=format_decimal(draw(decimals)), unit_price=format_decimal(draw(decimals)),
        amount=format_decimal(draw(decimals)), currency=draw(names),
        price_book_version=draw(names), kind=draw(st.sampled_from(["charge", "adjustment"])),
        revision=revision, adjusts=draw(st.none() | names), reason=draw(st.none() | names),
        created_at=created_at), created_at


def fast_json(detail: BillingDetail, created_at: datetime) -> tuple[str, str]:
    writer = BillingDetailJson(detail.site, detail.currency, created_at)
    return writer.envelope(
        detail.workspace_id, detail.billing_account_id, detail.day, detail.item,
        detail.retention_days, detail.revision, quantity=detail.quantity,
        unit_size=detail.unit_size, unit_price=detail.unit_price, amount=detail.amount,
        price_book_version=detail.price_book_version, kind=detail.kind,
        adjusts=detail.adjusts, reason=detail.reason)


@settings(max_examples=500, deadline=None)
@given(details())
def test_the_fast_envelope_is_the_models_json_byte_for_byte(
        found: tuple[BillingDetail, datetime]) -> None:
    detail, created_at = found
    did, body = fast_json(detail, created_at)
    reference = billing_detail_envelope(detail, created_at)
    assert did == detail.id
    assert body == reference.model_dump_json()
    # and the receiver reads back exactly the detail that was sent
    received = Envelope.model_validate_json(body)
    assert received == reference
    assert BillingDetail.model_validate(received.payload) == detail


@settings(max_examples=100, deadline=None)
@given(st.lists(details(), min_size=2, max_size=8), names, names, instants)
def test_parts_made_once_and_composed_give_each_detail_its_own_json(
        found: list[tuple[BillingDetail, datetime]], site: str, currency: str,
        created_at: datetime) -> None:
    # As a close uses it: the workspace, key and price parts made once and kept by the
    # caller, then composed for every detail that shares them.
    writer = BillingDetailJson(site, currency, created_at)
    workspaces: dict[tuple[str, str | None], WorkspaceJson] = {}
    keys: dict[tuple[date, str, int], KeyJson] = {}
    prices: dict[tuple[str, str, str], PriceJson] = {}
    for detail, _ in found + found[::-1]:
        d = detail.model_copy(update={
            "site": site, "currency": currency, "created_at": created_at,
            "id": detail_id(site, detail.workspace_id, detail.day, detail.item,
                            detail.retention_days, detail.revision)})
        ws = workspaces.setdefault((d.workspace_id, d.billing_account_id),
                                   writer.workspace(d.workspace_id, d.billing_account_id))
        k = keys.setdefault((d.day, d.item, d.retention_days),
                            writer.key(d.day, d.item, d.retention_days))
        p = prices.setdefault((d.unit_size, d.unit_price, d.price_book_version),
                              writer.price(d.unit_size, d.unit_price, d.price_book_version))
        assert writer.compose(ws, k, p, d.revision, d.quantity, d.amount, d.kind, d.adjusts,
                              d.reason) == (
            d.id, billing_detail_envelope(d, created_at).model_dump_json())


def test_the_detail_id_is_the_uuid5_message_id_of_its_parts() -> None:
    day = date(2026, 11, 25)
    assert detail_id("cn1", "0f" * 16, day, "logs", 7, 2) == message_id(
        "cn1", "0f" * 16, day, "logs", 7, 2)
    assert detail_id("cn1", "w", day, "logs", 7, 2) != detail_id("cn1", "w", day, "logs", 7, 3)


def test_the_fast_serialiser_knows_every_field_of_the_contract() -> None:
    # A field added to the contract must be added to BillingDetailJson too: the byte
    # comparison above catches a missing one, this names the cause.
    assert tuple(BillingDetail.model_fields) == (
        "id", "site", "workspace_id", "billing_account_id", "day", "item", "retention_days",
        "quantity", "unit_size", "unit_price", "amount", "currency", "price_book_version",
        "kind", "revision", "adjusts", "reason", "created_at")
    assert tuple(Envelope.model_fields) == (
        "id", "type", "schema_version", "aggregate_id", "aggregate_version", "site",
        "occurred_at", "payload")
