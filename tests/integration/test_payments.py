"""Online recharge through the sandbox gateway: redirect → pay page → signed notify → credit."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.api.payments import notify_answer
from accrual.billing.payments.gateway import sign
from accrual.billing.payments.sandbox import SandboxGateway, http_sender
from accrual.billing.services import ledger
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI, START, make_runtime
from tests.helpers import OPERATOR, billing_login, close_day, register, send_usage

NOTIFY = "/billing/v1/payments/notify"


@pytest.fixture
def ada(client: TestClient) -> dict[str, Any]:
    reg = register(client)
    return {**reg, "account": reg["billing_account_id"], "session": billing_login(client)}


def orders_url(account: str) -> str:
    return f"/billing/v1/accounts/{account}/recharge-orders"


def create_order(client: TestClient, ada: dict[str, Any], amount: object = "5.00",
                 key: str | bytes = "key-1", **extra: Any) -> Any:
    return client.post(orders_url(ada["account"]), json={"amount": amount, **extra},
                       headers={**ada["session"], "Idempotency-Key": key})


def overview(client: TestClient, ada: dict[str, Any]) -> tuple[str, str]:
    body = client.get(f"/billing/v1/accounts/{ada['account']}/overview",
                      headers=ada["session"]).json()
    return body["cash"], body["arrears"]


def gateway_of(runtime: Runtime) -> SandboxGateway:
    gateway = runtime.billing.payments.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway


def notify(client: TestClient, runtime: Runtime, clock: ManualClock, order_id: str,
           secret: str | None = None, **fields: str) -> tuple[dict[str, str], bytes]:
    """A notify as the gateway would sign it now: (headers, body)."""
    body = json.dumps({"order_id": order_id, "transaction_id": "txn-1", "amount": "5.00",
                       "currency": "CNY", "status": "paid", **fields}).encode()
    signature = sign(secret or gateway_of(runtime).secret, body, clock.now())
    return {"Content-Type": "application/json", "Accrual-Signature": signature}, body


def post_notify(client: TestClient, headers: dict[str, str], body: bytes) -> Any:
    return client.post(NOTIFY, content=body, headers=headers)


def online_entries(runtime: Runtime) -> int:
    with runtime.billing.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.journal_entries).where(
            t.journal_entries.c.kind == "online_recharge")).scalar_one())


def audit_ok(runtime: Runtime) -> bool:
    with runtime.billing.engine.connect() as conn:
        return ledger.audit(conn).ok


def test_the_full_redirect_pay_notify_flow_settles_arrears_first(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    # 2.00 of arrears: a day of task calls billed with no cash.
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI))
    reg = register(client)
    ada = {**reg, "account": reg["billing_account_id"], "session": billing_login(client)}
    clock.set(START)
    send_usage(client, reg["ingest_key"], [
        {"id": "t-1", "workspace_id": reg["workspace_id"], "item": "trigger",
         "time": "2026-11-25T02:15:00+08:00", "quantity": "20000"}])
    close_day(client, "2026-11-25")
    assert overview(client, ada) == ("0.00", "2.00")

    created = create_order(client, ada, "5.00", return_url="/billing/recharge/done?from=topup")
    assert created.status_code == 201, created.text
    order = created.json()
    assert (order["status"], order["amount"], order["currency"]) == ("pending", "5.00", "CNY")
    assert order["redirect_url"].startswith("/sandbox/pay/")

    # The browser follows the redirect URL to the gateway's pay page...
    page = client.get(order["redirect_url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "5.00 CNY" in page.text and order["order_id"] in page.text
    form = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert form is not None
    # ...and submits the form: the sandbox sends the signed notify, then sends the browser back.
    paid = client.post(html.unescape(form.group(1)), data={"decision": "pay"},
                       follow_redirects=False)
    assert paid.status_code == 303, paid.text
    back = urlsplit(paid.headers["location"])
    assert back.path == "/billing/recharge/done"
    assert parse_qs(back.query) == {"from": ["topup"], "order_id": [order["order_id"]],
                                    "status": ["paid"]}

    # 5.00 paid the 2.00 owed first; 3.00 is cash.
    assert overview(client, ada) == ("3.00", "0.00")
    seen = client.get(f"{orders_url(ada['account'])}/{order['order_id']}", headers=ada["session"])
    assert seen.status_code == 200
    assert seen.json()["status"] == "paid" and seen.json()["transaction_id"].startswith("sbx_")
    assert seen.json()["paid_at"] is not None
    transactions = client.get(f"/billing/v1/accounts/{ada['account']}/transactions",
                              params={"from": "2026-11-26", "to": "2026-11-26"},
                              headers=ada["session"])
    assert transactions.status_code == 200
    moves = {(m["balance"], m["amount"], m["reference"])
             for m in transactions.json()["transactions"] if m["kind"] == "online_recharge"}
    assert moves == {("cash", "3.00", order["order_id"]), ("prepaid", "2.00", order["order_id"])}

    # Paying the same page again (a double submit) sends the same transaction: credited once.
    again = client.post(html.unescape(form.group(1)), data={"decision": "pay"},
                        follow_redirects=False)
    assert again.status_code == 303
    assert overview(client, ada) == ("3.00", "0.00")
    assert online_entries(runtime) == 1
    assert runtime.billing.payments.counts() == {"credited": 1, "duplicate": 1}
    assert audit_ok(runtime)


def test_cancelling_on_the_pay_page_credits_nothing(client: TestClient, runtime: Runtime,
                                                    ada: dict[str, Any]) -> None:
    order = create_order(client, ada, return_url="https://shop.example/back").json()
    cancelled = client.post(order["redirect_url"], data={"decision": "cancel"},
                            follow_redirects=False)
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == (
        f"https://shop.example/back?order_id={order['order_id']}&status=cancelled")
    assert overview(client, ada) == ("0.00", "0.00")
    assert client.get(f"{orders_url(ada['account'])}/{order['order_id']}",
                      headers=ada["session"]).json()["status"] == "pending"


def test_without_a_return_url_the_sandbox_shows_its_own_page(client: TestClient,
                                                             ada: dict[str, Any]) -> None:
    order = create_order(client, ada, "12.34").json()
    assert order["return_url"] is None
    paid = client.post(order["redirect_url"], data={"decision": "pay"}, follow_redirects=False)
    assert paid.status_code == 200 and "paid" in paid.text
    assert overview(client, ada) == ("12.34", "0.00")


def test_an_altered_pay_link_pays_nothing(client: TestClient, runtime: Runtime,
                                          ada: dict[str, Any]) -> None:
    order = create_order(client, ada).json()
    token = order["redirect_url"].rsplit("/", 1)[1]
    altered = "/sandbox/pay/" + token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(altered).status_code == 404
    assert client.post(altered, data={"decision": "pay"}).status_code == 404
    assert client.get("/sandbox/pay/nothing").status_code == 404
    assert overview(client, ada) == ("0.00", "0.00")
    assert runtime.billing.payments.counts() == {}


def test_creating_an_order_is_idempotent_per_key(client: TestClient, runtime: Runtime,
                                                 ada: dict[str, Any]) -> None:
    first = create_order(client, ada, "5.00", key="same")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    replay = create_order(client, ada, "5", key="same")  # the same amount, written differently
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()

    conflict = create_order(client, ada, "6.00", key="same")
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "idempotency_conflict")
    conflict = create_order(client, ada, "5.00", key="same", return_url="/elsewhere")
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "idempotency_conflict")

    other = create_order(client, ada, "5.00", key="another")
    assert other.status_code == 201 and other.json()["order_id"] != first.json()["order_id"]
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.recharge_orders)).scalar_one() == 2

    # Paid, a replayed creation still answers the same order, now paid.
    client.post(first.json()["redirect_url"], data={"decision": "pay"})
    again = create_order(client, ada, "5.00", key="same")
    assert (again.json()["order_id"], again.json()["status"]) == (first.json()["order_id"], "paid")


@pytest.mark.parametrize("amount", ["0", "-1", "1.001", "abc", "NaN", "1E+999999", 1.5, True, None])
def test_a_bad_amount_opens_no_order(client: TestClient, runtime: Runtime, ada: dict[str, Any],
                                     amount: object) -> None:
    response = create_order(client, ada, amount)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("invalid_amount", "invalid_request")
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.recharge_orders)).scalar_one() == 0


def test_key_return_url_and_access_are_checked(client: TestClient, ada: dict[str, Any]) -> None:
    missing = client.post(orders_url(ada["account"]), json={"amount": "5"}, headers=ada["session"])
    assert (missing.status_code, missing.json()["error"]["code"]) == (422, "invalid_request")
    for key in ("x" * 256, "with space", "ключ".encode()):
        bad = create_order(client, ada, key=key)
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_idempotency_key")
    for url in ("javascript:alert(1)", "//evil.example/", "/\\evil.example", "ftp://x/",
                "https://", "/a b", "/a\tb"):
        bad = create_order(client, ada, return_url=url)
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_return_url"), url
    for url in ("/a\x00", "/" + "a" * 500):  # refused by the request model itself
        bad = create_order(client, ada, return_url=url)
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")
    anonymous = client.post(orders_url(ada["account"]), json={"amount": "5"},
                            headers={"Idempotency-Key": "k"})
    assert anonymous.status_code == 401
    by_operator = client.post(orders_url(ada["account"]), json={"amount": "5"},
                              headers={**OPERATOR, "Idempotency-Key": "op"})
    assert by_operator.status_code == 201
    unknown = client.post(orders_url("nobody"), json={"amount": "5"},
                          headers={**OPERATOR, "Idempotency-Key": "op"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "account_not_found")


def test_another_accounts_session_cannot_see_the_order(client: TestClient,
                                                       ada: dict[str, Any]) -> None:
    order = create_order(client, ada).json()
    register(client, "bob")
    bob = billing_login(client, "bob")
    bob_account = client.post("/billing/v1/sessions", json={
        "username": "bob", "password": "correct horse battery"}).json()["account_id"]
    seen = client.get(f"{orders_url(ada['account'])}/{order['order_id']}", headers=bob)
    assert (seen.status_code, seen.json()["error"]["code"]) == (403, "forbidden")
    made = client.post(orders_url(ada["account"]), json={"amount": "5"},
                       headers={**bob, "Idempotency-Key": "bob-1"})
    assert made.status_code == 403
    # Under bob's own account, ada's order does not exist.
    hidden = client.get(f"{orders_url(bob_account)}/{order['order_id']}", headers=bob)
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "order_not_found")


def test_a_replayed_notify_credits_once_and_a_stale_replay_is_refused(
        client: TestClient, runtime: Runtime, clock: ManualClock, ada: dict[str, Any]) -> None:
    order = create_order(client, ada).json()
    headers, body = notify(client, runtime, clock, order["order_id"])
    first = post_notify(client, headers, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "outcome": "credited"}
    for _ in range(3):
        replay = post_notify(client, headers, body)
        assert replay.json() == {"received": True, "outcome": "duplicate"}
    clock.advance(timedelta(seconds=301))
    late = post_notify(client, headers, body)
    assert (late.status_code, late.json()["error"]["code"]) == (400, "stale_notify")
    assert overview(client, ada) == ("5.00", "0.00")
    assert online_entries(runtime) == 1
    assert runtime.billing.payments.counts() == {
        "credited": 1, "duplicate": 3, "refused": 1, "refused.stale_notify": 1}

    # The same order paid by another transaction is not credited again.
    headers, body = notify(client, runtime, clock, order["order_id"], transaction_id="txn-2")
    twice = post_notify(client, headers, body)
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "order_already_paid")
    # Nor does one transaction pay two orders.
    second = create_order(client, ada, key="key-2").json()
    headers, body = notify(client, runtime, clock, second["order_id"])
    reused = post_notify(client, headers, body)
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "transaction_conflict")
    assert overview(client, ada) == ("5.00", "0.00")
    assert online_entries(runtime) == 1
    assert audit_ok(runtime)


def test_forged_stale_and_mismatched_notifies_credit_nothing(
        client: TestClient, runtime: Runtime, clock: ManualClock, ada: dict[str, Any]) -> None:
    order_id = create_order(client, ada).json()["order_id"]

    def refused(headers: dict[str, str], body: bytes) -> str:
        response = post_notify(client, headers, body)
        assert response.status_code == 400, response.text
        return str(response.json()["error"]["code"])

    # Forged: signed with a guessed secret, unsigned, or a signed body altered afterwards.
    assert refused(*notify(client, runtime, clock, order_id, secret="whsec_guess")) == (
        "invalid_signature")
    _, body = notify(client, runtime, clock, order_id)
    assert refused({"Content-Type": "application/json"}, body) == "invalid_signature"
    headers, body = notify(client, runtime, clock, order_id)
    assert refused(headers, body.replace(b'"5.00"', b'"500.00"')) == "invalid_signature"
    # Stale: signed more than 300 s before it arrives.
    headers, body = notify(client, runtime, clock, order_id)
    clock.advance(timedelta(seconds=301))
    assert refused(headers, body) == "stale_notify"
    # Authentic but not matching the order: wrong amount, wrong currency, unknown order.
    assert refused(*notify(client, runtime, clock, order_id, amount="50.00")) == "amount_mismatch"
    assert refused(*notify(client, runtime, clock, order_id, amount="5.001")) == "amount_mismatch"
    assert refused(*notify(client, runtime, clock, order_id, currency="USD")) == "currency_mismatch"
    assert refused(*notify(client, runtime, clock, "ro_unknown")) == "unknown_order"
    headers, _ = notify(client, runtime, clock, order_id)
    assert refused({**headers, "Accrual-Signature": sign(gateway_of(runtime).secret, b"{}",
                                                         clock.now())}, b"{}") == "malformed_notify"

    assert overview(client, ada) == ("0.00", "0.00")
    assert online_entries(runtime) == 0
    assert client.get(f"{orders_url(ada['account'])}/{order_id}",
                      headers=ada["session"]).json()["status"] == "pending"
    assert runtime.billing.payments.counts() == {
        "refused": 9, "refused.invalid_signature": 3, "refused.stale_notify": 1,
        "refused.amount_mismatch": 2, "refused.currency_mismatch": 1, "refused.unknown_order": 1,
        "refused.malformed_notify": 1}

    # The genuine notify still credits afterwards, exactly once.
    assert post_notify(client, *notify(client, runtime, clock, order_id)).status_code == 200
    assert overview(client, ada) == ("5.00", "0.00")


def test_a_notify_that_is_not_a_payment_is_acknowledged_and_credits_nothing(
        client: TestClient, runtime: Runtime, clock: ManualClock, ada: dict[str, Any]) -> None:
    order_id = create_order(client, ada).json()["order_id"]
    closed = post_notify(client, *notify(client, runtime, clock, order_id, status="closed"))
    assert closed.json() == {"received": True, "outcome": "ignored"}
    assert overview(client, ada) == ("0.00", "0.00")


def test_an_oversized_notify_is_413(client: TestClient) -> None:
    response = client.post(NOTIFY, content=b" " * (64 * 1024 + 1),
                           headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")


def test_the_sandbox_can_send_its_notify_over_http(client: TestClient, runtime: Runtime,
                                                   ada: dict[str, Any]) -> None:
    order = create_order(client, ada).json()
    gateway = gateway_of(runtime)
    token = order["redirect_url"].rsplit("/", 1)[1]
    payment = gateway._payment(token)
    assert payment is not None
    send = http_sender(client, NOTIFY)
    headers, body = gateway.notify_for(token, payment)
    assert send(headers, body) == 200
    assert send(headers, body) == 200
    assert overview(client, ada) == ("5.00", "0.00")
    assert online_entries(runtime) == 1


@pytest.fixture
def runtime_without_gateway(tmp_path: Path, pg_databases: tuple[str, str] | None,
                            clock: ManualClock) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path, pg_databases, clock, payment_gateway="off")
    yield runtime
    runtime.console.engine.dispose()
    runtime.billing.engine.dispose()


@pytest.mark.db
def test_with_the_gateway_off_there_is_no_sandbox_and_no_online_recharge(
        runtime_without_gateway: Runtime, tmp_path: Path) -> None:
    with TestClient(runtime_without_gateway.app) as client:
        reg = register(client)
        ada = {**reg, "account": reg["billing_account_id"], "session": billing_login(client)}
        response = create_order(client, ada)
        assert (response.status_code, response.json()["error"]["code"]) == (
            503, "payments_unavailable")
        assert client.get("/sandbox/pay/anything").status_code == 404
        refused = client.post(NOTIFY, content=b"{}", headers={"Accrual-Signature": "t=1,v1=00"})
        assert refused.status_code == 503
    assert not (tmp_path / "payment_secret").exists()


def test_the_payment_secret_is_generated_once_into_the_data_dir(runtime: Runtime,
                                                               tmp_path: Path) -> None:
    stored = tmp_path / "payment_secret"
    assert stored.read_text().strip() == gateway_of(runtime).secret
    assert stored.stat().st_mode & 0o777 == 0o600
    assert runtime.settings.resolve_payment_secret() == gateway_of(runtime).secret


def test_concurrent_notifies_and_creations_with_one_key_make_one_of_each(
        client: TestClient, runtime: Runtime, clock: ManualClock, ada: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    payments = runtime.billing.payments
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: payments.create_order(ada["account"], "5.00", "race"),
                             range(8)))
    assert len({order.order_id for order, _ in made}) == 1
    assert sum(created for _, created in made) == 1
    assert len({order.redirect_url for order, _ in made}) == 1

    headers, body = notify(client, runtime, clock, made[0][0].order_id)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: notify_answer(payments, headers, body), range(8)))
    assert [status for status, _ in answers] == [200] * 8
    assert sorted(answer["outcome"] for _, answer in answers) == ["credited"] + ["duplicate"] * 7
    assert overview(client, ada) == ("5.00", "0.00")
    assert online_entries(runtime) == 1
    assert audit_ok(runtime)
