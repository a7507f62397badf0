"""Prepaid cards and vouchers, and the waterfall that spends them, on a real database.

Every test ends with the ledger audit: each entry sums to zero and every cached
balance (cash, prepaid, each card and voucher) equals the sum of its postings.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accrual.app import Runtime, create_app
from accrual.billing.adapters import tables as t
from accrual.billing.api.instruments import (
    card_issued_json,
    card_json,
    voucher_issued_json,
    voucher_json,
)
from accrual.billing.api.wallet import overview_json
from accrual.billing.exports import transaction_row
from accrual.billing.services import ledger
from accrual.clock import ManualClock
from accrual.contract.errors import Conflict, Invalid, NotFound
from accrual.money import InvalidDecimal
from tests.helpers import bearer
from tests.integration.test_settlement_batches import cheap_passwords, detail, tenant

__all__ = ["cheap_passwords"]


@pytest.fixture
def ada(runtime: Runtime, clock: ManualClock, cheap_passwords: None) -> tuple[str, str]:
    return tenant(runtime, clock, "ada")


def audit(runtime: Runtime) -> None:
    with runtime.billing.engine.connect() as conn:
        report = ledger.audit(conn)
    assert report.ok, report


def overview(runtime: Runtime, account: str) -> dict[str, str]:
    return overview_json(runtime.billing.wallet.overview(account))


def spent(runtime: Runtime, detail_id: str) -> dict[str, int]:
    """What paid one billing detail: {ledger account owner or kind: amount taken}."""
    c, p, a = t.charges, t.postings, t.ledger_accounts
    with runtime.billing.engine.connect() as conn:
        rows = conn.execute(select(a.c.owner, a.c.kind, p.c.amount_minor)
                            .join(p, p.c.ledger_account_id == a.c.id)
                            .join(c, c.c.entry_id == p.c.entry_id)
                            .where(c.c.detail_id == detail_id)).all()
    return {(kind if owner == ledger.SYSTEM or kind in ("cash", "prepaid") else owner):
            -int(amount) for owner, kind, amount in rows if kind != "revenue"}


def test_a_card_is_bought_from_cash_once_per_key(runtime: Runtime, ada: tuple[str, str]) -> None:
    _, account = ada
    instruments = runtime.billing.instruments
    runtime.billing.wallet.recharge(account, "350.00", "t-1")
    card = card_issued_json(instruments.buy_card(account, "300", "key-1"))
    assert card["created"] and card["face_value"] == "300.00" and card["balance"] == "300.00"
    assert card["status"] == "active" and card["paid_with_cash"] == "300.00"
    assert card["bonus_voucher"] is None
    again = card_issued_json(instruments.buy_card(account, "300.00", "key-1"))
    assert again["number"] == card["number"] and not again["created"]
    with pytest.raises(Conflict) as conflict:
        instruments.buy_card(account, "200", "key-1")
    assert conflict.value.code == "idempotency_conflict"
    assert overview(runtime, account) == {"currency": "CNY", "cash": "50.00", "vouchers": "0.00",
                                          "prepaid_cards": "300.00", "arrears": "0.00"}
    assert [c.number for c in instruments.cards(account)] == [card["number"]]
    audit(runtime)


@pytest.mark.parametrize("face", ["150", "99.99", "0", "-100", "100.001", 1.5])
def test_a_card_is_a_multiple_of_100(runtime: Runtime, ada: tuple[str, str], face: object) -> None:
    _, account = ada
    runtime.billing.wallet.recharge(account, "1000", "t-1")
    with pytest.raises((Invalid, InvalidDecimal)):
        runtime.billing.instruments.buy_card(account, face, "k")
    assert runtime.billing.instruments.cards(account) == []


def test_too_little_cash_buys_nothing(runtime: Runtime, ada: tuple[str, str]) -> None:
    _, account = ada
    runtime.billing.wallet.recharge(account, "99.99", "t-1")
    with pytest.raises(Conflict) as refused:
        runtime.billing.instruments.buy_card(account, "100", "k")
    assert refused.value.code == "insufficient_balance"
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.instruments)).scalar_one() == 0
        # Nothing half-stored: not even the card's ledger account.
        assert conn.execute(select(func.count()).select_from(t.ledger_accounts).where(
            t.ledger_accounts.c.kind == "card")).scalar_one() == 0
    assert overview(runtime, account)["cash"] == "99.99"
    # The refusal stays bound to its key, even once there is cash enough.
    runtime.billing.wallet.recharge(account, "0.01", "t-2")
    with pytest.raises(Conflict) as again:
        runtime.billing.instruments.buy_card(account, "100", "k")
    assert again.value.code == "insufficient_balance" and "new key" in again.value.message
    with pytest.raises(Conflict) as other:
        runtime.billing.instruments.buy_card(account, "200", "k")
    assert other.value.code == "idempotency_conflict"
    assert runtime.billing.instruments.buy_card(account, "100", "k-2").created
    audit(runtime)


@pytest.mark.parametrize(("face", "bonus"), [("9900", None), ("10000", "1000.00"),
                                             ("29900", "1000.00"), ("30000", "5000.00"),
                                             ("100000", "20000.00")])
def test_big_cash_purchases_bring_a_discount_voucher(runtime: Runtime, ada: tuple[str, str],
                                                      face: str, bonus: str | None) -> None:
    _, account = ada
    runtime.billing.wallet.recharge(account, face, "t-1")
    card = card_issued_json(runtime.billing.instruments.buy_card(account, face, "k"))
    vouchers = [voucher_json(v) for v in runtime.billing.instruments.vouchers(account)]
    if bonus is None:
        assert card["bonus_voucher"] is None and vouchers == []
        return
    [voucher] = vouchers
    assert card["bonus_voucher"] == voucher["number"]
    assert voucher["kind"] == "voucher_discount" and voucher["source"] == "bonus"
    assert voucher["face_value"] == bonus and voucher["origin"] == card["number"]
    assert overview(runtime, account)["vouchers"] == bonus
    audit(runtime)


def test_a_partner_card_brings_no_bonus(runtime: Runtime, ada: tuple[str, str]) -> None:
    _, account = ada
    card = card_issued_json(runtime.billing.instruments.grant_card(
        account, "100000", "partner-1", validity_days=30))
    assert card["source"] == "partner" and card["paid_with_cash"] == "0.00"
    assert card["bonus_voucher"] is None and runtime.billing.instruments.vouchers(account) == []
    assert overview(runtime, account)["cash"] == "0.00"


def test_the_waterfall_spends_vouchers_then_cards_then_cash_then_owes(
        runtime: Runtime, clock: ManualClock, ada: tuple[str, str]) -> None:
    ws, account = ada
    billing = runtime.billing
    billing.wallet.recharge(account, "250", "t-1")
    late = billing.instruments.buy_card(account, "100", "late").card.number
    billing.instruments.grant_card(account, "100", "soon", validity_days=30)
    soon = next(c.number for c in billing.instruments.cards(account) if c.source == "partner")
    disc = billing.instruments.issue_voucher(account, "voucher_discount", "30", "d").voucher.number
    std = billing.instruments.issue_voucher(account, "voucher_standard", "20", "s").voucher.number
    # Cash left: 150. Charges: 420 for logs, then 60 SMS.
    logs, sms = detail(ws, "420.00"), detail(ws, "60.00", item="sms")
    billing.inbox.deliver([logs, sms])
    assert spent(runtime, logs.id) == {std: 2000, disc: 3000, soon: 10000, late: 10000,
                                       "cash": 15000, "prepaid": 2000}
    assert spent(runtime, sms.id) == {"prepaid": 6000}
    assert overview(runtime, account) == {"currency": "CNY", "cash": "0.00", "vouchers": "0.00",
                                          "prepaid_cards": "0.00", "arrears": "80.00"}
    assert {card_json(c)["status"] for c in billing.instruments.cards(account)} == {"used_up"}
    audit(runtime)


def test_vouchers_never_pay_sms_or_synthetic_tests(runtime: Runtime,
                                                   ada: tuple[str, str]) -> None:
    ws, account = ada
    billing = runtime.billing
    voucher = billing.instruments.issue_voucher(account, "voucher_standard", "1000", "v").voucher.number
    billing.wallet.recharge(account, "10", "t")
    sms = detail(ws, "3.00", item="sms")
    synthetic = detail(ws, "9.00", item="synthetic_test")
    logs = detail(ws, "5.00", item="logs")
    billing.inbox.deliver([sms, synthetic, logs])
    assert spent(runtime, sms.id) == {"cash": 300}
    assert spent(runtime, synthetic.id) == {"cash": 700, "prepaid": 200}
    assert spent(runtime, logs.id) == {voucher: 500}
    assert overview(runtime, account)["vouchers"] == "995.00"
    audit(runtime)


def test_expired_cards_pay_nothing_and_are_written_off(
        runtime: Runtime, clock: ManualClock, ada: tuple[str, str]) -> None:
    ws, account = ada
    billing = runtime.billing
    card = billing.instruments.grant_card(account, "200", "p", validity_days=1).card.number
    billing.inbox.deliver([detail(ws, "50.00")])
    clock.advance(timedelta(days=1))
    late = detail(ws, "10.00", day=date(2026, 11, 26))
    billing.inbox.deliver([late])
    assert spent(runtime, late.id) == {"prepaid": 1000}  # the card had expired: arrears
    assert overview(runtime, account)["prepaid_cards"] == "0.00"
    assert billing.instruments.expire_due() == 1
    assert billing.instruments.expire_due() == 0
    [shown] = [card_json(c) for c in billing.instruments.cards(account)]
    assert shown["status"] == "expired" and shown["balance"] == "0.00"
    with billing.engine.connect() as conn:
        write_off = conn.execute(
            select(t.postings.c.amount_minor).join(
                t.ledger_accounts, t.ledger_accounts.c.id == t.postings.c.ledger_account_id)
            .where(t.ledger_accounts.c.kind == "breakage")).scalars().all()
    assert write_off == [15000] and card
    audit(runtime)


def test_a_correction_goes_back_the_way_it_was_paid(runtime: Runtime,
                                                    ada: tuple[str, str]) -> None:
    ws, account = ada
    billing = runtime.billing
    voucher = billing.instruments.issue_voucher(account, "voucher_standard", "30", "v").voucher.number
    billing.wallet.recharge(account, "50", "t")
    billing.inbox.deliver([detail(ws, "70.00")])  # voucher 30, cash 40
    fix = detail(ws, "-45.00", revision=1)
    billing.inbox.deliver([fix])
    # Back to cash what cash paid (40), the rest to the voucher: never voucher money as cash.
    assert spent(runtime, fix.id) == {"cash": -4000, voucher: -500}
    assert overview(runtime, account)["cash"] == "50.00"
    assert overview(runtime, account)["vouchers"] == "5.00"
    audit(runtime)


def test_what_goes_back_to_an_expired_voucher_is_written_off_and_counted_returned(
        runtime: Runtime, clock: ManualClock, ada: tuple[str, str]) -> None:
    ws, account = ada
    billing = runtime.billing
    voucher = billing.instruments.issue_voucher(account, "voucher_standard", "100", "v",
                                                validity_days=1).voucher.number
    billing.inbox.deliver([detail(ws, "100.00")])  # all from the voucher
    clock.advance(timedelta(days=2))
    assert billing.instruments.expire_due() == 1  # nothing left on it: a zero write-off
    first, second = detail(ws, "-60.00", revision=1), detail(ws, "-60.00", revision=2)
    billing.inbox.deliver([first])
    assert spent(runtime, first.id) == {voucher: -6000}
    billing.inbox.deliver([second])
    # 40.00 of the voucher's share was left; the other 20.00 was never paid: cash.
    assert spent(runtime, second.id) == {voucher: -4000, "cash": -2000}
    shown = overview(runtime, account)
    assert shown["vouchers"] == "0.00" and shown["cash"] == "20.00"
    with billing.engine.connect() as conn:
        written_off = conn.execute(
            select(t.journal_entries.c.idempotency_key, t.postings.c.amount_minor)
            .join(t.postings, t.postings.c.entry_id == t.journal_entries.c.id)
            .join(t.ledger_accounts, t.ledger_accounts.c.id == t.postings.c.ledger_account_id)
            .where(t.ledger_accounts.c.kind == "breakage")
            .order_by(t.journal_entries.c.id)).all()
    assert [tuple(r) for r in written_off] == [(f"expiry/{voucher}/{first.id}", 6000),
                                               (f"expiry/{voucher}/{second.id}", 4000)]
    audit(runtime)


def test_a_correction_pays_arrears_first(runtime: Runtime, ada: tuple[str, str]) -> None:
    ws, account = ada
    billing = runtime.billing
    voucher = billing.instruments.issue_voucher(account, "voucher_standard", "30", "v").voucher.number
    billing.inbox.deliver([detail(ws, "50.00")])  # voucher 30, arrears 20
    billing.inbox.deliver([detail(ws, "-25.00", revision=1)])
    assert overview(runtime, account)["arrears"] == "0.00"
    assert overview(runtime, account)["vouchers"] == "5.00"
    assert overview(runtime, account)["cash"] == "0.00"
    assert voucher
    audit(runtime)


def test_activation_codes_are_single_use(runtime: Runtime, clock: ManualClock,
                                         cheap_passwords: None) -> None:
    _, ada = tenant(runtime, clock, "ada")
    _, bob = tenant(runtime, clock, "bob")
    instruments = runtime.billing.instruments
    made = instruments.create_codes("voucher_standard", "50", 2, validity_days=10,
                                    redeem_within_days=5)
    first, second = made.codes
    voucher = voucher_issued_json(instruments.activate(ada, first.lower().replace("-", " ")))
    assert voucher["face_value"] == "50.00" and voucher["source"] == "code"
    assert instruments.activate(ada, first).voucher.number == voucher["number"]  # same account: same
    with pytest.raises(Conflict) as used:
        instruments.activate(bob, first)
    assert used.value.code == "code_already_used"
    with pytest.raises(NotFound):
        instruments.activate(bob, "0000-0000-0000-0000")
    clock.advance(timedelta(days=5))
    with pytest.raises(Conflict) as expired:
        instruments.activate(bob, second)
    assert expired.value.code == "code_expired"
    assert instruments.vouchers(bob) == []
    audit(runtime)


def test_statements_show_card_and_voucher_movements(runtime: Runtime,
                                                    ada: tuple[str, str]) -> None:
    ws, account = ada
    billing = runtime.billing
    billing.wallet.recharge(account, "100", "t")
    card = billing.instruments.buy_card(account, "100", "k").card.number
    billing.inbox.deliver([detail(ws, "30.00")])
    moves = [transaction_row(m) for m in
             billing.statements.transactions(account, date(2026, 11, 1), date(2026, 11, 30))]
    assert [(m["kind"], m["balance"], m["instrument"], m["amount"]) for m in moves] == [
        ("recharge", "cash", None, "100.00"),
        ("card_purchase", "card", card, "100.00"), ("card_purchase", "cash", None, "-100.00"),
        ("charge", "card", card, "-30.00")]
    # The whole story adds up: what is held now is the sum of the movements.
    held = sum(Decimal(m["amount"]) for m in moves)
    assert held == Decimal("70.00")


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def test_cards_and_vouchers_over_http(runtime: Runtime, client: TestClient,
                                      ada: tuple[str, str]) -> None:
    _, account = ada
    operator = bearer(runtime.admin_token)
    runtime.billing.wallet.recharge(account, "10000", "t")
    base = f"/billing/v1/accounts/{account}"
    bought = client.post(f"{base}/cards", json={"face_value": "10000"},
                         headers={**operator, "Idempotency-Key": "k-1"})
    assert bought.status_code == 201, bought.text
    assert bought.json()["bonus_voucher"]
    replay = client.post(f"{base}/cards", json={"face_value": "10000"},
                         headers={**operator, "Idempotency-Key": "k-1"})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["number"] == bought.json()["number"]
    for body, code in [({"face_value": "150"}, "invalid_face_value"),
                       ({"face_value": "abc"}, "invalid_amount"),
                       ({"face_value": 100.0}, "invalid_request")]:
        refused = client.post(f"{base}/cards", json=body,
                              headers={**operator, "Idempotency-Key": "k-2"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == code
    poor = client.post(f"{base}/cards", json={"face_value": "100"},
                       headers={**operator, "Idempotency-Key": "k-3"})
    assert poor.status_code == 409 and poor.json()["error"]["code"] == "insufficient_balance"
    assert len(client.get(f"{base}/cards", headers=operator).json()) == 1
    issued = client.post(f"/billing/v1/admin/accounts/{account}/vouchers", headers=operator,
                         json={"kind": "voucher_standard", "amount": "20", "reference": "r"})
    assert issued.status_code == 201, issued.text
    codes = client.post("/billing/v1/admin/voucher-codes", headers=operator,
                        json={"kind": "voucher_discount", "amount": "5", "count": 1})
    assert codes.status_code == 201
    activated = client.post(f"{base}/vouchers/activate", headers=operator,
                            json={"code": codes.json()["codes"][0]})
    assert activated.status_code == 201 and activated.json()["kind"] == "voucher_discount"
    assert len(client.get(f"{base}/vouchers", headers=operator).json()) == 3
    unauthenticated = client.post("/billing/v1/admin/voucher-codes",
                                  json={"kind": "voucher_discount", "amount": "5", "count": 1})
    assert unauthenticated.status_code == 401


MIXES = [frozenset(m) for m in (
    set(), {"std"}, {"disc"}, {"card"}, {"expired"}, {"cash"}, {"std", "disc"},
    {"std", "card"}, {"disc", "card", "cash"}, {"std", "disc", "card", "expired", "cash"},
    {"expired", "cash"}, {"std", "expired"}, {"disc", "card"}, {"card", "cash"},
    {"std", "disc", "cash"}, {"std", "disc", "card", "cash"})]


@pytest.mark.parametrize("mix", MIXES, ids=lambda m: "+".join(sorted(m)) or "nothing")
def test_every_instrument_mix_pays_sms_synthetic_and_the_rest_by_the_waterfall(
        runtime: Runtime, clock: ManualClock, cheap_passwords: None, mix: frozenset[str]) -> None:
    """SMS and synthetic tests with vouchers present, an expired card, and a detail larger
    than all funds, for each mix; amounts are literal (12 of each instrument, 12 cash)."""
    ws, account = tenant(runtime, clock, "mix")
    billing = runtime.billing
    held: dict[str, str] = {}
    if "std" in mix:
        held["std"] = billing.instruments.issue_voucher(account, "voucher_standard", "12", "s").voucher.number
    if "disc" in mix:
        held["disc"] = billing.instruments.issue_voucher(
            account, "voucher_discount", "12", "d").voucher.number
    if "card" in mix:
        held["card"] = billing.instruments.grant_card(account, "100", "c", validity_days=30).card.number
    if "expired" in mix:
        held["expired"] = billing.instruments.grant_card(account, "100", "e", validity_days=1).card.number
    if "cash" in mix:
        billing.wallet.recharge(account, "12", "t")
    clock.advance(timedelta(days=1, minutes=1))  # the "expired" card is past its end
    sms = detail(ws, "5.00", item="sms")
    synthetic = detail(ws, "6.00", item="synthetic_test")
    logs = detail(ws, "1000.00", item="logs")  # more than every fund together
    billing.inbox.deliver([sms, synthetic, logs])
    paid = {d.id: spent(runtime, d.id) for d in (sms, synthetic, logs)}
    by = {key: held.get(key) for key in ("std", "disc", "card", "expired")}
    # Vouchers and the expired card never pay SMS or synthetic tests.
    for item in (sms.id, synthetic.id):
        assert not {by["std"], by["disc"], by["expired"]} & set(paid[item]) - {None}
    # SMS then synthetic tests come out of the card (100), then cash (12), then arrears.
    card_left = 100_00 if "card" in mix else 0
    cash_left = 12_00 if "cash" in mix else 0
    expected: dict[str, dict[str, int]] = {}
    for name, amount in ((sms.id, 5_00), (synthetic.id, 6_00)):
        split: dict[str, int] = {}
        from_card = min(card_left, amount)
        if from_card:
            split[by["card"] or ""] = from_card
            card_left -= from_card
        from_cash = min(cash_left, amount - from_card)
        if from_cash:
            split["cash"] = from_cash
            cash_left -= from_cash
        if amount - from_card - from_cash:
            split["prepaid"] = amount - from_card - from_cash
        expected[name] = split
    logs_split: dict[str, int] = {}
    for key in ("std", "disc"):
        if by[key]:
            logs_split[by[key] or ""] = 12_00
    if card_left:
        logs_split[by["card"] or ""] = card_left
    if cash_left:
        logs_split["cash"] = cash_left
    logs_split["prepaid"] = 1000_00 - sum(logs_split.values())
    expected[logs.id] = logs_split
    assert paid == expected
    shown = overview(runtime, account)
    assert shown["cash"] == "0.00" and shown["vouchers"] == "0.00"
    assert shown["prepaid_cards"] == "0.00"  # the expired card is not counted as held
    audit(runtime)
