"""Hostile input against the billing center: money bounds, calendar edges, cross-tenant probes.

Balances and postings stay exact integers inside their bounds (domain/bounds.py) on both
backends; every sum over postings is exact past 64 bits; dates and months outside the
billing window are a 422; another account's workspace is a 404 to Bind Workspace.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.domain import settlement
from accrual.billing.domain.bounds import (
    MAX_BALANCE_MINOR,
    MAX_MOVEMENT_MINOR,
    MAX_POSTING_MINOR,
    AmountLimitExceeded,
    BalanceLimitExceeded,
)
from accrual.billing.services import ledger, settling
from accrual.contract.messages import BILLING_DETAIL, BillingDetail, Envelope, detail_id
from accrual.infra.db import exact_sum, in_transaction
from tests.conftest import START
from tests.helpers import OPERATOR, billing_login, register

DAY = date(2026, 11, 25)


@pytest.fixture
def ada(client: TestClient) -> dict[str, Any]:
    reg = register(client)
    return {**reg, "account": reg["billing_account_id"], "session": billing_login(client)}


def post_directly(runtime: Runtime, owner: str, key: str, postings: settlement.Postings) -> None:
    """A journal entry written below the API (as a console's settlement or years of top-ups
    would leave it), through the ledger and its bounds."""
    in_transaction(runtime.billing.engine, lambda conn: ledger.post(
        conn, owner=owner, key=key, request_digest=ledger.digest(key), kind="recharge",
        reference=key, now=START, compute=lambda _held: postings))


def recharge(client: TestClient, account: str, amount: str, reference: str) -> Any:
    return client.post(f"/billing/v1/admin/accounts/{account}/recharges", headers=OPERATOR,
                       json={"amount": amount, "reference": reference})


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def entries(runtime: Runtime) -> int:
    with runtime.billing.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.journal_entries)).scalar_one())


def ledger_state(runtime: Runtime) -> list[tuple[Any, ...]]:
    with runtime.billing.engine.connect() as conn:
        rows = conn.execute(select(t.ledger_accounts.c.owner, t.ledger_accounts.c.kind,
                                   t.ledger_accounts.c.balance_minor)
                            .order_by(t.ledger_accounts.c.id)).all()
        if conn.dialect.name == "sqlite":
            # The defect: an overflowing balance was stored as an SQLite real.
            kinds = set(conn.execute(text("SELECT DISTINCT typeof(balance_minor) "
                                          "FROM ledger_accounts")).scalars())
            assert kinds == {"integer"}, kinds
    return [tuple(r) for r in rows]


def audit_ok(runtime: Runtime) -> bool:
    with runtime.billing.engine.connect() as conn:
        return ledger.audit(conn).ok


# -- defect 2: balances overflow into floating point ---------------------------


def test_maximal_recharges_are_refused_and_balances_stay_exact(
        client: TestClient, runtime: Runtime, ada: dict[str, Any]) -> None:
    account = ada["account"]
    # The report: about 94 recharges of 999,999,999,999,999.99 took the balance past 64 bits.
    for i in range(94):
        assert error(recharge(client, account, "999999999999999.99", f"max-{i}")) == \
            (422, "invalid_amount")
    order = client.post(f"/billing/v1/accounts/{account}/recharge-orders",
                        json={"amount": "999999999999999.99"},
                        headers={**ada["session"], "Idempotency-Key": "order-max"})
    assert error(order) == (422, "invalid_amount")
    assert entries(runtime) == 0
    # The largest movement the API takes is accepted.
    assert recharge(client, account, "1000000000000.00", "largest").status_code == 200
    assert error(recharge(client, account, "1000000000000.01", "too-large")) == \
        (422, "invalid_amount")
    # Years of such top-ups later, the cash balance is one movement short of its bound.
    cash_now = MAX_MOVEMENT_MINOR
    post_directly(runtime, account, "years-of-top-ups", {
        settlement.BANK_CLEARING: -(MAX_BALANCE_MINOR - MAX_MOVEMENT_MINOR + 1 - cash_now),
        settlement.CASH: MAX_BALANCE_MINOR - MAX_MOVEMENT_MINOR + 1 - cash_now})
    before, state = entries(runtime), ledger_state(runtime)
    refused = recharge(client, account, "1000000000000.00", "past-the-bound")
    assert error(refused) == (422, "balance_limit_exceeded")
    assert "1000000000000000.00" in refused.json()["error"]["message"]
    order = client.post(f"/billing/v1/accounts/{account}/recharge-orders",
                        json={"amount": "1000000000000.00"},
                        headers={**ada["session"], "Idempotency-Key": "order-past"})
    assert error(order) == (422, "balance_limit_exceeded")
    assert (entries(runtime), ledger_state(runtime)) == (before, state)  # nothing stored
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.recharge_orders)).scalar_one() == 0
    # Up to the bound exactly is fine, and shown exactly.
    assert recharge(client, account, "999999999999.99", "to-the-bound").status_code == 200
    overview = client.get(f"/billing/v1/accounts/{account}/overview", headers=ada["session"])
    assert overview.json()["cash"] == "1000000000000000.00"
    assert error(recharge(client, account, "0.01", "one-cent-more")) == \
        (422, "balance_limit_exceeded")
    ledger_state(runtime)
    assert audit_ok(runtime)


def test_a_notify_past_the_bound_credits_nothing(
        client: TestClient, runtime: Runtime, ada: dict[str, Any]) -> None:
    """An order opened in time, paid after other top-ups filled the balance: its notify is
    refused (the gateway retries; an operator sees the refusal), never clamped."""
    import json

    from accrual.billing.payments.gateway import sign
    account = ada["account"]
    order = client.post(f"/billing/v1/accounts/{account}/recharge-orders",
                        json={"amount": "5.00"},
                        headers={**ada["session"], "Idempotency-Key": "order-1"})
    assert order.status_code == 201, order.text
    post_directly(runtime, account, "filled", {settlement.BANK_CLEARING: -MAX_BALANCE_MINOR,
                                               settlement.CASH: MAX_BALANCE_MINOR})
    before = entries(runtime)
    body = json.dumps({"order_id": order.json()["order_id"], "transaction_id": "txn-1",
                       "amount": "5.00", "currency": "CNY", "status": "paid"}).encode()
    gateway = runtime.billing.payments.gateway
    signature = sign(gateway.secret, body, runtime.billing.clock.now())  # type: ignore[union-attr]
    answer = client.post("/billing/v1/payments/notify", content=body, headers={
        "Content-Type": "application/json", "Accrual-Signature": signature})
    assert error(answer) == (422, "balance_limit_exceeded")
    assert entries(runtime) == before
    assert client.get(f"/billing/v1/accounts/{account}/recharge-orders/"
                      f"{order.json()['order_id']}", headers=ada["session"]).json()["status"] \
        == "pending"


def test_center_accounts_sum_exactly_past_64_bits(runtime: Runtime) -> None:
    """The center's own accounts take every tenant's movements: their sums pass 2^63 and
    must stay exact (SQLite's SUM raised "integer overflow" here)."""
    tenants = 93  # 93 · 10^17 > 2^63 ≈ 9.22 · 10^18
    with runtime.billing.engine.begin() as conn:
        for n in range(tenants):
            ledger.open_accounts(conn, f"tenant-{n}", "CNY")
    for n in range(tenants):
        post_directly(runtime, f"tenant-{n}", f"full-{n}", {
            settlement.BANK_CLEARING: -MAX_BALANCE_MINOR, settlement.CASH: MAX_BALANCE_MINOR})
    with runtime.billing.engine.connect() as conn:
        report = ledger.audit(conn)
        clearing = conn.execute(select(t.ledger_accounts.c.id).where(
            t.ledger_accounts.c.owner == ledger.SYSTEM,
            t.ledger_accounts.c.kind == settlement.BANK_CLEARING)).scalar_one()
        total = conn.execute(select(exact_sum(t.postings.c.amount_minor))
                             .where(t.postings.c.ledger_account_id == clearing)).scalar_one()
        everything = conn.execute(select(exact_sum(t.postings.c.amount_minor))).scalar_one()
        nothing = conn.execute(select(exact_sum(t.postings.c.amount_minor))
                               .where(t.postings.c.ledger_account_id == -1)).scalar_one()
    assert report.ok and report.entries == tenants
    assert total == -tenants * MAX_BALANCE_MINOR and total < -(2**63)
    assert (everything, nothing) == (0, None)
    # Every tenant is full; one more cent to any of them is refused, and the center goes on.
    with pytest.raises(BalanceLimitExceeded):
        post_directly(runtime, "tenant-0", "one-more", {settlement.BANK_CLEARING: -1,
                                                        settlement.CASH: 1})
    with runtime.billing.engine.begin() as conn:
        ledger.open_accounts(conn, "tenant-new", "CNY")
    post_directly(runtime, "tenant-new", "first", {settlement.BANK_CLEARING: -MAX_BALANCE_MINOR,
                                                   settlement.CASH: MAX_BALANCE_MINOR})
    assert audit_ok(runtime)


def detail(workspace_id: str, amount: str, item: str = "logs", *, revision: int = 0,
           quantity: str = "1000000") -> Envelope:
    did = detail_id("cn1", workspace_id, DAY, item, 7, revision)
    body = BillingDetail(
        id=did, site="cn1", workspace_id=workspace_id, billing_account_id=None, day=DAY,
        item=item, retention_days=7, quantity=quantity, unit_size="1000000", unit_price="1",
        amount=amount, currency="CNY", price_book_version="current@2023-11-02",
        kind="charge" if revision == 0 else "adjustment", revision=revision,
        adjusts=None if revision == 0 else detail_id("cn1", workspace_id, DAY, item, 7, 0),
        created_at=START)
    return Envelope(id=did, type=BILLING_DETAIL, aggregate_id=workspace_id, occurred_at=START,
                    payload=body.model_dump(mode="json"))


def test_a_settlement_past_the_arrears_bound_fails_loudly_and_settles_nothing(
        client: TestClient, runtime: Runtime, ada: dict[str, Any]) -> None:
    account, workspace = ada["account"], ada["workspace_id"]
    owed = MAX_BALANCE_MINOR - 50
    post_directly(runtime, account, "deep-arrears", {settlement.REVENUE: owed,
                                                     settlement.PREPAID: -owed})
    engine, now = runtime.billing.engine, runtime.billing.clock.now()

    def settle(*messages: Envelope) -> set[str]:
        return in_transaction(engine, lambda conn: settling.settle(conn, list(messages), "CNY",
                                                                   now))

    def inbox() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.inbox)).scalar_one())

    before, state, applied = entries(runtime), ledger_state(runtime), inbox()
    with pytest.raises(BalanceLimitExceeded) as refused:
        settle(detail(workspace, "0.20", "trace"), detail(workspace, "1.00"))
    assert refused.value.code == "balance_limit_exceeded"
    assert refused.value.owner == account and refused.value.account == settlement.PREPAID
    with pytest.raises(AmountLimitExceeded):
        settle(detail(workspace, "1000000000000000.01", "sms"))
    assert (entries(runtime), ledger_state(runtime)) == (before, state)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.charges)).scalar_one() == 0
    assert inbox() == applied
    # The rest of the way to the bound settles, exactly.
    assert settle(detail(workspace, "0.50")) == {account}
    with engine.connect() as conn:
        assert ledger.balances(conn, account)[settlement.PREPAID] == -MAX_BALANCE_MINOR
    assert audit_ok(runtime)


def test_a_daily_bill_adds_quantities_exactly(client: TestClient, runtime: Runtime,
                                              ada: dict[str, Any]) -> None:
    """The daily bill sums a line's revisions; 30 significant digits are kept, not rounded
    to the 28 of Python's default decimal context."""
    workspace = ada["workspace_id"]
    in_transaction(runtime.billing.engine, lambda conn: settling.settle(conn, [
        detail(workspace, "1.00", quantity="123456789012345678901234567890"),
        detail(workspace, "0.01", revision=1, quantity="0.5")], "CNY",
        runtime.billing.clock.now()))
    bill = client.get(f"/billing/v1/accounts/{ada['account']}/daily-bills",
                      params={"date": DAY.isoformat()}, headers=ada["session"]).json()
    (line,) = bill["lines"]
    assert (line["quantity"], line["amount"], bill["total"]) == \
        ("123456789012345678901234567890.5", "1.01", "1.01")


def test_check_constraints_are_the_last_line(runtime: Runtime) -> None:
    with runtime.billing.engine.begin() as conn:
        ledger.open_accounts(conn, "tenant", "CNY")
    a = t.ledger_accounts
    with pytest.raises(IntegrityError), runtime.billing.engine.begin() as conn:
        conn.execute(update(a).where(a.c.owner == "tenant", a.c.kind == settlement.CASH)
                     .values(balance_minor=MAX_BALANCE_MINOR + 1))
    with pytest.raises(IntegrityError), runtime.billing.engine.begin() as conn:
        conn.execute(update(a).where(a.c.owner == "tenant", a.c.kind == settlement.PREPAID)
                     .values(balance_minor=-MAX_BALANCE_MINOR - 1))
    with pytest.raises(IntegrityError), runtime.billing.engine.begin() as conn:
        entry = conn.execute(insert(t.journal_entries).values(
            idempotency_key="k", request_digest="d", kind="recharge", account_id="tenant",
            created_at=START).returning(t.journal_entries.c.id)).scalar_one()
        cash = conn.execute(select(a.c.id).where(a.c.owner == "tenant",
                                                 a.c.kind == settlement.CASH)).scalar_one()
        conn.execute(insert(t.postings).values(entry_id=entry, ledger_account_id=cash,
                                               amount_minor=MAX_POSTING_MINOR + 1))


# -- defect 3: dates at the edge of the calendar ------------------------------


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1999-12-31", "2100-01-01"])
def test_days_outside_the_window_are_refused(client: TestClient, ada: dict[str, Any],
                                             day: str) -> None:
    base, session = f"/billing/v1/accounts/{ada['account']}", ada["session"]
    for view in ("transactions", "consumption"):
        for fmt in ("json", "csv", "xlsx"):
            for params in ({"from": day, "to": day}, {"from": "2026-11-01", "to": day},
                           {"from": day, "to": "2026-11-01"}):
                answer = client.get(f"{base}/{view}", headers=session,
                                    params={**params, "format": fmt})
                assert error(answer) == (422, "date_out_of_range"), (view, fmt, params)
                assert "2000-01-01" in answer.json()["error"]["message"]
    assert error(client.get(f"{base}/daily-bills", params={"date": day}, headers=session)) == \
        (422, "date_out_of_range")


def test_the_edges_of_the_window_are_served(client: TestClient, ada: dict[str, Any]) -> None:
    base, session = f"/billing/v1/accounts/{ada['account']}", ada["session"]
    for day in ("2000-01-01", "2099-12-31"):
        for fmt in ("json", "csv", "xlsx"):
            for view in ("transactions", "consumption"):
                answer = client.get(f"{base}/{view}", headers=session,
                                    params={"from": day, "to": day, "format": fmt})
                assert answer.status_code == 200, (view, fmt, answer.text)
        assert client.get(f"{base}/daily-bills", params={"date": day},
                          headers=session).status_code == 200


def test_months_are_strict_and_bounded(client: TestClient, ada: dict[str, Any]) -> None:
    account, session = ada["account"], ada["session"]
    generate = f"/billing/v1/admin/accounts/{account}/monthly-bills"
    for month, code in (("9999-12", "date_out_of_range"), ("0001-01", "date_out_of_range"),
                        ("1999-12", "date_out_of_range"), ("2100-01", "date_out_of_range"),
                        ("1-01", "invalid_month"), ("2026-1", "invalid_month"),
                        ("2026-13", "invalid_month"), ("2026-00", "invalid_month"),
                        ("２０２６-10", "invalid_month"), ("2026-10\n", "invalid_month"),
                        (" 2026-10", "invalid_month"), ("2026-10-01", "invalid_month")):
        assert error(client.post(generate, json={"month": month}, headers=OPERATOR)) == \
            (422, code), month
        assert error(client.get(f"/billing/v1/accounts/{account}/monthly-bills/{quote(month)}",
                                headers=session)) == (422, code), month
    assert error(client.post(generate, json={"month": "2099-12"}, headers=OPERATOR)) == \
        (422, "month_not_due")
    made = client.post(generate, json={"month": "2026-10"}, headers=OPERATOR)
    assert made.status_code == 200 and made.json()["month"] == "2026-10"
    assert client.get(f"/billing/v1/accounts/{account}/monthly-bills",
                      headers=session).json()["bills"][0]["month"] == "2026-10"


# -- defect 8: the schema and the server say the same; cross-tenant probes --------


def test_binding_another_accounts_workspace_is_not_found(client: TestClient,
                                                         ada: dict[str, Any]) -> None:
    register(client, "bob")
    bob = billing_login(client, "bob")
    bob_account = client.post("/billing/v1/sessions", json={
        "username": "bob", "password": "correct horse battery"}).json()["account_id"]
    url = f"/billing/v1/accounts/{bob_account}/workspace-bindings"
    theirs = client.post(url, json={"workspace_id": ada["workspace_id"]}, headers=bob)
    unknown = client.post(url, json={"workspace_id": "0" * 32}, headers=bob)
    assert error(theirs) == error(unknown) == (404, "workspace_not_found")
    assert theirs.json()["error"]["message"].replace(ada["workspace_id"], "W") == \
        unknown.json()["error"]["message"].replace("0" * 32, "W")


def test_idempotency_keys_are_documented_and_enforced_alike(
        client: TestClient, runtime: Runtime, ada: dict[str, Any]) -> None:
    doc = client.get("/openapi.json").json()
    account, session = ada["account"], ada["session"]
    for path in ("/billing/v1/accounts/{account_id}/cards",
                 "/billing/v1/accounts/{account_id}/recharge-orders"):
        (header,) = [p for p in doc["paths"][path]["post"]["parameters"]
                     if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header" and header["required"] is True
        assert (header["schema"]["minLength"], header["schema"]["maxLength"]) == (1, 255)
        assert header["schema"]["pattern"] == "^[\\x21-\\x7e]{1,255}$"
    assert recharge(client, account, "100.00", "for-cards").status_code == 200
    cards = f"/billing/v1/accounts/{account}/cards"
    for key in ("x" * 256, "with space", "tab\tkey", "ключ".encode()):
        answer = client.post(cards, json={"face_value": "100"},
                             headers={**session, "Idempotency-Key": key})  # type: ignore[dict-item]
        assert error(answer) == (422, "invalid_idempotency_key"), key
    longest = "~" * 255  # the longest key the schema allows is stored and replayed
    first = client.post(cards, json={"face_value": "100"},
                        headers={**session, "Idempotency-Key": longest})
    assert first.status_code == 201, first.text
    again = client.post(cards, json={"face_value": "100"},
                        headers={**session, "Idempotency-Key": longest})
    assert again.status_code == 201 and again.json()["number"] == first.json()["number"]
    assert again.headers["Idempotent-Replayed"] == "true"


def test_month_and_username_grammars_are_in_the_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    month = "^[0-9]{4}-(0[1-9]|1[0-2])$"
    bill = doc["paths"]["/billing/v1/accounts/{account_id}/monthly-bills/{month}"]["get"]
    (param,) = [p for p in bill["parameters"] if p["name"] == "month"]
    assert param["schema"]["pattern"] == month
    schemas = doc["components"]["schemas"]
    assert schemas["GenerateIn"]["properties"]["month"]["pattern"] == month
    assert schemas["InvoiceRequestIn"]["properties"]["months"]["items"]["pattern"] == month
    assert schemas["MoveIn"]["properties"]["to_username"]["pattern"] == \
        "^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"
    for view in ("consumption", "transactions"):
        content = doc["paths"][f"/billing/v1/accounts/{{account_id}}/{view}"]["get"][
            "responses"]["200"]["content"]
        assert {"application/json", "text/csv; charset=utf-8",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"} <= \
            set(content)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/billing/") and "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)  # malformed_json
