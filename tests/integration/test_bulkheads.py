"""Bulkheads: a failure stays in the workspace, message, account or mail that caused it.

The rest of the site closes, bills and settles in the same tick; the failing unit is
recorded (operator jobs views, counts per failure code), retried with backoff, and
``/healthz`` says ``degraded`` naming the job until it recovers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from accrual.app import Runtime
from accrual.billing.adapters import tables as bt
from accrual.billing.services import settling
from accrual.billing.services.arrears import COUNTDOWN, REMIND_BEFORE, Arrears
from accrual.catalog import PriceBook
from accrual.clock import ManualClock
from accrual.console.adapters import tables as ct
from accrual.contract.messages import BILLING_DETAIL, Envelope
from accrual.infra import credentials
from accrual.infra.mail import LogMailer, Mail, MailError
from tests.conftest import SHANGHAI, START
from tests.helpers import OPERATOR, register, send_usage

DAY = "2026-11-25"


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(credentials, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield


def tenants(client: TestClient, clock: ManualClock, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    clock.set(datetime(2026, 11, 25, 0, 1, tzinfo=SHANGHAI))
    found = {name: register(client, name) for name in names}
    clock.set(START)
    return found


def record(workspace_id: str, record_id: str, item: str, quantity: str) -> dict[str, object]:
    found: dict[str, object] = {"id": record_id, "workspace_id": workspace_id, "item": item,
                                "time": f"{DAY}T12:00:00+08:00", "quantity": quantity}
    if item == "logs":
        found["retention_days"] = 3
    return found


def charged(runtime: Runtime) -> dict[str, list[tuple[str, str, int]]]:
    """workspace → its (item, status, amount) charge lines in the billing center."""
    c = bt.charges
    found: dict[str, list[tuple[str, str, int]]] = {}
    with runtime.billing.engine.connect() as conn:
        for row in conn.execute(select(c.c.workspace_id, c.c.item, c.c.status, c.c.amount_minor)
                                .order_by(c.c.workspace_id, c.c.item)):
            found.setdefault(row.workspace_id, []).append((row.item, row.status, row.amount_minor))
    return found


def health(client: TestClient) -> dict[str, Any]:
    response = client.get("/healthz")
    assert response.status_code == 200, response.text
    return response.json()


def degraded_jobs(client: TestClient) -> set[str]:
    body = health(client)
    assert (body["status"] == "degraded") == bool(body["degraded"])
    return {d["job"] for d in body["degraded"]}


def job(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(j for j in view["jobs"] if j["job"] == name)


def test_a_workspace_that_cannot_be_priced_does_not_stop_the_site(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    regs = tenants(client, clock, ["ada", "bob", "cyd"])
    for reg in regs.values():
        send_usage(client, reg["ingest_key"], [record(reg["workspace_id"], "l", "logs", "2000000")])
    bob = regs["bob"]["workspace_id"]
    send_usage(client, regs["bob"]["ingest_key"], [record(bob, "t", "trigger", "20000")])
    # Only bob uses `trigger`; the price book in force has lost its price.
    complete = runtime.console.day_close.book
    runtime.console.day_close.book = PriceBook([r for r in complete.rows if r.item != "trigger"])

    runtime.scheduler.tick()
    lines = charged(runtime)
    others = {regs[n]["workspace_id"] for n in ("ada", "cyd")}
    assert set(lines) == others  # closed, billed and settled in the same tick
    assert all(lines[w] == [("logs", "settled", 200)] for w in others)
    with runtime.console.engine.connect() as conn:
        assert conn.execute(select(ct.closed_days.c.day)).scalars().all() == [date(2026, 11, 25)]
        assert conn.execute(select(ct.late_days.c.workspace_id)).scalars().all() == [bob]
    assert "cn1 day close" in degraded_jobs(client)
    view = client.get("/console/v1/admin/jobs", headers=OPERATOR).json()
    assert view["status"] == "degraded"
    close = job(view, "cn1 day close")
    assert close["failures"] == {"NoPrice": 1}
    assert [(f["unit"], f["code"], f["attempts"]) for f in close["failing"]] == [
        (f"workspace/{bob}/{DAY}", "NoPrice", 1)]
    assert "no price for trigger" in close["failing"][0]["error"]

    # Later ticks neither re-fail the site nor retry bob before his backoff.
    runtime.scheduler.tick()
    assert charged(runtime) == lines
    assert job(client.get("/console/v1/admin/jobs", headers=OPERATOR).json(),
               "cn1 day close")["failures"] == {"NoPrice": 1}

    runtime.console.day_close.book = complete  # the price is back
    clock.advance(timedelta(minutes=2))
    runtime.scheduler.tick()
    lines = charged(runtime)
    assert lines[bob] == [("logs", "settled", 200), ("trigger", "settled", 200)]
    assert all(lines[w] == [("logs", "settled", 200)] for w in others)
    with runtime.console.engine.connect() as conn:
        assert conn.execute(select(ct.late_days.c.workspace_id)).scalars().all() == []
    assert health(client)["status"] == "ok"
    close = job(client.get("/console/v1/admin/jobs", headers=OPERATOR).json(), "cn1 day close")
    assert close["failing"] == [] and close["failures"] == {"NoPrice": 1}
    assert close["last_success_at"] is not None


def test_the_operator_close_answers_the_failing_workspaces(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    regs = tenants(client, clock, ["ada", "bob"])
    for reg in regs.values():
        send_usage(client, reg["ingest_key"], [record(reg["workspace_id"], "l", "logs", "1000000")])
    bob = regs["bob"]["workspace_id"]
    send_usage(client, regs["bob"]["ingest_key"], [record(bob, "t", "trigger", "10000")])
    complete = runtime.console.day_close.book
    runtime.console.day_close.book = PriceBook([r for r in complete.rows if r.item != "trigger"])
    response = client.post("/console/v1/admin/close-day", json={"date": DAY}, headers=OPERATOR)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["charges"], body["delivered"], list(body["failed"])) == (1, 1, [bob])
    assert set(charged(runtime)) == {regs["ada"]["workspace_id"]}


def test_a_poison_message_does_not_hold_up_the_messages_behind_it(
        client: TestClient, runtime: Runtime, clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    regs = tenants(client, clock, ["ada", "bob", "cyd", "dan"])
    for reg in regs.values():
        send_usage(client, reg["ingest_key"], [record(reg["workspace_id"], "l", "logs", "3000000")])
    poisoned = regs["bob"]["workspace_id"]
    real = settling.settle
    broken = [True]

    def settle(conn: Any, messages: Sequence[Envelope], currency: str, now: datetime) -> set[str]:
        # The billing center cannot apply bob's detail (as one past a balance bound).
        if broken[0] and any(m.aggregate_id == poisoned for m in messages):
            raise ArithmeticError("the balance would pass its bound")
        return real(conn, messages, currency, now)

    monkeypatch.setattr(settling, "settle", settle)
    runtime.scheduler.tick()
    lines = charged(runtime)
    assert set(lines) == {r["workspace_id"] for n, r in regs.items() if n != "bob"}
    with runtime.console.engine.connect() as conn:
        row = conn.execute(select(ct.outbox).where(ct.outbox.c.sent_at.is_(None))).one()
    assert row.attempts == 1 and row.next_attempt_at > clock.now()
    assert row.last_error.startswith("ArithmeticError: the balance would pass its bound")
    assert {"cn1 relay", "billing inbox"} <= degraded_jobs(client)
    billing = client.get("/billing/v1/admin/jobs", headers=OPERATOR).json()
    assert job(billing, "billing inbox")["failures"] == {"ArithmeticError": 1}
    console = client.get("/console/v1/admin/jobs", headers=OPERATOR).json()
    assert [m["message_id"] for m in console["outbox"]["failing"]] == [row.message_id]
    assert job(console, "cn1 relay")["failing"][0]["unit"] == f"message/{row.message_id}"

    runtime.scheduler.tick()  # backing off: not offered again yet
    assert job(client.get("/billing/v1/admin/jobs", headers=OPERATOR).json(),
               "billing inbox")["failures"] == {"ArithmeticError": 1}
    broken[0] = False
    clock.advance(timedelta(minutes=1))
    runtime.scheduler.tick()
    assert charged(runtime)[poisoned] == [("logs", "settled", 300)]
    assert health(client)["status"] == "ok"


def test_a_malformed_message_fails_alone_in_the_billing_inbox(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    regs = tenants(client, clock, ["ada"])
    ws = regs["ada"]["workspace_id"]
    send_usage(client, regs["ada"]["ingest_key"], [record(ws, "l", "logs", "1000000")])
    bad = Envelope(id="bad-1", type=BILLING_DETAIL, aggregate_id=ws, occurred_at=START,
                   payload={"id": "bad-1", "amount": "1.00"})
    answer = runtime.billing.inbox.deliver([bad])
    assert list(answer) == [] and answer.failed["bad-1"].startswith("ValidationError")
    assert health(client)["status"] == "degraded"


class RefusingMailer(LogMailer):
    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse

    def send(self, mail: Mail) -> None:
        if mail.to == self.refuse:
            raise MailError(f"550 mailbox unavailable: {mail.to}")
        super().send(mail)


def test_one_failing_account_and_one_failing_mail_stay_alone(
        client: TestClient, runtime: Runtime, clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    regs = tenants(client, clock, ["ada", "bob", "cyd"])
    for reg in regs.values():
        send_usage(client, reg["ingest_key"], [record(reg["workspace_id"], "l", "logs", "1000000")])
    mailer = RefusingMailer("bob@example.com")
    runtime.billing.mails.mailer = mailer
    runtime.scheduler.tick()  # closed and settled: all three owe, countdowns open
    assert sorted(m.to for m in mailer.sent) == ["ada@example.com", "cyd@example.com"]
    assert "billing mails" in degraded_jobs(client)
    mails_job = job(client.get("/billing/v1/admin/jobs", headers=OPERATOR).json(),
                    "billing mails")
    assert mails_job["failures"] == {"MailError": 1}
    assert "550 mailbox unavailable" in mails_job["failing"][0]["error"]

    failing_account = regs["bob"]["billing_account_id"]
    real = Arrears._advance
    broken = [True]

    def advance(self: Arrears, conn: Any, case_id: int, now: datetime) -> dict[str, int]:
        account = conn.execute(select(bt.arrears_cases.c.account_id)
                               .where(bt.arrears_cases.c.id == case_id)).scalar()
        if broken[0] and account == failing_account:
            raise RuntimeError("this account's rows cannot be read")
        return real(self, conn, case_id, now)

    monkeypatch.setattr(Arrears, "_advance", advance)
    mailer.refuse = ""  # the mail server takes bob's mail again
    clock.advance(COUNTDOWN - REMIND_BEFORE + timedelta(minutes=1))
    runtime.scheduler.tick()
    with runtime.billing.engine.connect() as conn:
        reminded = dict(conn.execute(select(bt.arrears_cases.c.account_id,
                                            bt.arrears_cases.c.reminded_at)).all())
    assert reminded[failing_account] is None
    assert all(at is not None for account, at in reminded.items() if account != failing_account)
    assert degraded_jobs(client) == {"arrears tick"}  # the mail went out on its retry
    arrears = job(client.get("/billing/v1/admin/jobs", headers=OPERATOR).json(), "arrears tick")
    assert arrears["failures"] == {"RuntimeError": 1}
    assert arrears["failing"][0]["unit"] == f"account/{failing_account}"

    broken[0] = False
    clock.advance(timedelta(minutes=2))
    runtime.scheduler.tick()
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(bt.arrears_cases.c.reminded_at).where(
            bt.arrears_cases.c.account_id == failing_account)).scalar() is not None
    assert health(client)["status"] == "ok"


def test_the_console_inbox_applies_the_others_and_holds_the_workspace_behind_a_failure(
        client: TestClient, runtime: Runtime) -> None:
    from accrual.contract.messages import BINDING_CHANGED

    bad = Envelope(id="b-1", type=BINDING_CHANGED, aggregate_id="w1", occurred_at=START,
                   payload={"workspace_id": "w1"})
    behind = Envelope(id="b-2", type="workspace.note", aggregate_id="w1", occurred_at=START,
                      payload={})
    other = Envelope(id="b-3", type="workspace.note", aggregate_id="w2", occurred_at=START,
                     payload={})
    answer = runtime.console.inbox.deliver([bad, behind, other])
    assert list(answer) == ["b-3"]
    assert answer.failed["b-1"].startswith("ValidationError")
    assert answer.failed["b-2"] == "waits behind message b-1"
    assert "cn1 inbox" in degraded_jobs(client)
    view = job(client.get("/console/v1/admin/jobs", headers=OPERATOR).json(), "cn1 inbox")
    assert view["failures"] == {"ValidationError": 1, "waits_behind_failed": 1}
