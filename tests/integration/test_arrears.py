"""Arrears: the case's state machine, what the consoles are told, and the mails queued.

Money moves through the real inbox (billing details) and wallet (recharges); the clock is
moved by hand and the tick and the relays are called as the scheduler would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import event, func, insert, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.services.arrears import COUNTDOWN, REMIND_BEFORE
from accrual.billing.services.mail_outbox import MAX_ATTEMPTS, MailOutbox
from accrual.clock import ManualClock
from accrual.console.adapters import tables as ct
from accrual.console.api.accounts import dissolved_json
from accrual.console.api.metering import admission_json
from accrual.contract.messages import (
    BILLING_DETAIL,
    WORKSPACE_LOCK,
    BillingDetail,
    Envelope,
    WorkspaceLock,
    detail_id,
    message_id,
)
from accrual.infra import credentials
from accrual.infra.mail import LogMailer, Mail, MailError
from tests.conftest import SHANGHAI, START

DAY = date(2026, 11, 25)


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(credentials, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield


def tenant(runtime: Runtime, clock: ManualClock, name: str, language: str = "en"
           ) -> tuple[str, str]:
    """(workspace id, billing account id), registered on DAY; the clock is left at START."""
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI))
    reg = runtime.console.accounts.register(f"{name}@example.com", "correct horse battery",
                                            name, f"{name}'s team", language)
    clock.set(START)
    return reg.workspace_id, reg.billing_account_id


def charge(runtime: Runtime, workspace_id: str, amount: str, item: str = "logs") -> None:
    """One billing detail for DAY, settled by the billing inbox as a delivery would."""
    did = detail_id("cn1", workspace_id, DAY, item, 7, 0)
    body = BillingDetail(
        id=did, site="cn1", workspace_id=workspace_id, billing_account_id=None, day=DAY,
        item=item, retention_days=7, quantity="1000000", unit_size="1000000", unit_price=amount,
        amount=amount, currency="CNY", price_book_version="current@2023-11-02", kind="charge",
        created_at=START)
    runtime.billing.wallet.deliver([Envelope(
        id=did, type=BILLING_DETAIL, aggregate_id=workspace_id, occurred_at=START,
        payload=body.model_dump(mode="json"))])


def mails(runtime: Runtime) -> list[tuple[str, str, str]]:
    """(template, recipient, language) of every queued mail, in order."""
    m = t.mail_outbox
    with runtime.billing.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(m.c.template, m.c.recipient, m.c.language).order_by(m.c.id))]


def lock_messages(runtime: Runtime) -> list[tuple[str, int, str]]:
    """(workspace, version, state) of every workspace.lock message the center wrote."""
    with runtime.billing.engine.connect() as conn:
        bodies = conn.execute(select(t.outbox.c.body).where(t.outbox.c.type == WORKSPACE_LOCK)
                              .order_by(t.outbox.c.seq)).scalars().all()
    envelopes = [Envelope.model_validate_json(b) for b in bodies]
    return [(e.aggregate_id, e.aggregate_version, e.payload["state"]) for e in envelopes]


def console_view(runtime: Runtime, workspace_id: str) -> tuple[str, str | None, datetime | None]:
    ws = runtime.console.accounts.workspace(workspace_id)
    assert ws is not None
    return ws.status, ws.lock_state, ws.lock_at


def case_row(runtime: Runtime, account_id: str) -> Any:
    c = t.arrears_cases
    with runtime.billing.engine.connect() as conn:
        return conn.execute(select(c).where(c.c.account_id == account_id)
                            .order_by(c.c.id.desc())).first()


def test_a_negative_settlement_opens_one_countdown(runtime: Runtime, clock: ManualClock) -> None:
    ws, account = tenant(runtime, clock, "ada")
    runtime.billing.wallet.recharge(account, "2.00", "t-1")
    charge(runtime, ws, "1.50")
    assert case_row(runtime, account) is None  # paid from cash: no arrears
    charge(runtime, ws, "3.00", item="trace")  # 0.50 cash, 2.50 owed

    case = case_row(runtime, account)
    assert case.open is True and case.started_at == START
    assert case.lock_at == START + COUNTDOWN
    assert lock_messages(runtime) == [(ws, 1, "countdown")]
    assert mails(runtime) == [("countdown", "ada@example.com", "en")]
    with runtime.billing.engine.connect() as conn:
        values = json.loads(conn.execute(select(t.mail_outbox.c.values_json)).scalar_one())
    assert values["amount"] == "2.50" and values["workspaces"] == ["ada's team"]
    assert values["lock_at"] == "2026-12-10 10:00 CST"

    # Deeper in arrears: still the one case, no second countdown.
    charge(runtime, ws, "1.00", item="rum_pv")
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.arrears_cases)).scalar_one() == 1
    assert len(mails(runtime)) == 1 and len(lock_messages(runtime)) == 1

    # The console shows the countdown once the relay has delivered it; data still flows.
    assert runtime.billing_relay_drain() == 1
    assert console_view(runtime, ws) == ("active", "countdown", START + COUNTDOWN)
    assert admission_json(runtime.console.admission.check([(ws, "logs")])[0])["allowed"] is True


def test_reminder_lock_and_unlock_at_once_on_top_up(runtime: Runtime, clock: ManualClock) -> None:
    ws, account = tenant(runtime, clock, "ada")
    charge(runtime, ws, "3.40")
    arrears = runtime.billing.arrears

    clock.set(START + COUNTDOWN - REMIND_BEFORE - timedelta(minutes=1))
    assert arrears.tick() == {"reminded": 0, "locked": 0, "workspaces_changed": 0}
    clock.advance(timedelta(minutes=1))
    assert arrears.tick() == {"reminded": 1, "locked": 0, "workspaces_changed": 0}
    assert arrears.tick()["reminded"] == 0  # once
    assert [m[0] for m in mails(runtime)] == ["countdown", "reminder"]

    clock.set(START + COUNTDOWN)
    assert arrears.tick() == {"reminded": 0, "locked": 1, "workspaces_changed": 1}
    assert arrears.tick() == {"reminded": 0, "locked": 0, "workspaces_changed": 0}
    assert [m[0] for m in mails(runtime)] == ["countdown", "reminder", "locked"]
    assert lock_messages(runtime) == [(ws, 1, "countdown"), (ws, 2, "locked")]
    runtime.billing_relay_drain()
    assert console_view(runtime, ws)[:2] == ("locked", "locked")
    assert admission_json(runtime.console.admission.check([(ws, "logs")])[0]) == {
        "workspace_id": ws, "item": "logs", "allowed": False, "reason": "locked"}
    record = {"id": "after-lock", "workspace_id": ws, "item": "logs", "quantity": "10",
              "time": clock.now().isoformat()}
    refused = runtime.console.ingestion.ingest([record])
    assert refused.accepted == 0 and [r.code for r in refused.rejected] == ["workspace_locked"]
    assert "top up" in refused.rejected[0].message

    # A top-up that leaves arrears changes nothing; the one that covers them unlocks.
    runtime.billing.wallet.recharge(account, "3.00", "t-1")
    assert case_row(runtime, account).open is True
    runtime.billing.wallet.recharge(account, "0.40", "t-2")
    case = case_row(runtime, account)
    assert (case.open, case.ended_at, case.end_reason) == (None, clock.now(), "settled")
    with runtime.billing.engine.connect() as conn:
        locks = conn.execute(select(t.arrears_locks)).all()
    assert [(r.workspace_id, r.locked_at, r.unlocked_at) for r in locks] == [
        (ws, START + COUNTDOWN, clock.now())]
    assert lock_messages(runtime)[-1] == (ws, 3, "clear")
    assert mails(runtime)[-1] == ("unlocked", "ada@example.com", "en")
    runtime.billing_relay_drain()
    assert console_view(runtime, ws) == ("active", None, None)
    assert runtime.console.ingestion.ingest([record]).accepted == 1
    assert arrears.tick() == {"reminded": 0, "locked": 0, "workspaces_changed": 0}


def test_paid_during_the_countdown_clears_it_and_says_so(runtime: Runtime,
                                                         clock: ManualClock) -> None:
    ws, account = tenant(runtime, clock, "ada")
    charge(runtime, ws, "1.00")
    clock.advance(timedelta(days=3))
    runtime.billing.wallet.recharge(account, "5.00", "t-1")
    assert case_row(runtime, account).end_reason == "settled"
    assert lock_messages(runtime) == [(ws, 1, "countdown"), (ws, 2, "clear")]
    assert [m[0] for m in mails(runtime)] == ["countdown", "settled"]
    clock.set(START + COUNTDOWN + timedelta(days=1))
    assert runtime.billing.arrears.tick()["locked"] == 0
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.arrears_locks)).scalar_one() == 0
    # Negative again later: a new case, a new countdown from then.
    charge(runtime, ws, "9.00", item="trace")
    case = case_row(runtime, account)
    assert case.open is True and case.lock_at == clock.now() + COUNTDOWN
    assert lock_messages(runtime)[-1] == (ws, 3, "countdown")


def test_mails_go_to_the_account_and_each_owner_once_in_their_language(
        runtime: Runtime, clock: ManualClock) -> None:
    ws, account = tenant(runtime, clock, "ada", language="en")
    bob_ws, _ = tenant(runtime, clock, "bob", language="zh")
    # Bob's second workspace, paid for by Ada's account (a first binding applies today).
    second = runtime.console.accounts.create_workspace(
        runtime.console.accounts.account_for_session(
            runtime.console.accounts.login("bob@example.com", "correct horse battery")) or "",
        "Bob's lab", "zh")
    runtime.console.nudge_relay()
    runtime.billing.accounts.bind(second.workspace_id, account)
    charge(runtime, ws, "2.00")
    assert sorted(mails(runtime)) == [("countdown", "ada@example.com", "en"),
                                      ("countdown", "bob@example.com", "zh")]
    with runtime.billing.engine.connect() as conn:
        values = {r.recipient: json.loads(r.values_json)["workspaces"]
                  for r in conn.execute(select(t.mail_outbox))}
    assert values == {"ada@example.com": ["Bob's lab", "ada's team"],
                      "bob@example.com": ["Bob's lab"]}
    assert {w for w, _, _ in lock_messages(runtime)} == {ws, second.workspace_id}
    assert bob_ws not in {w for w, _, _ in lock_messages(runtime)}


def test_a_tick_releases_a_workspace_that_left_and_locks_one_that_joined(
        runtime: Runtime, clock: ManualClock) -> None:
    ws, account = tenant(runtime, clock, "ada")
    bob_ws, bob_account = tenant(runtime, clock, "bob")
    charge(runtime, ws, "2.00")
    clock.set(START + COUNTDOWN)
    runtime.billing.arrears.tick()
    # A free workspace bound to the locked account now: locked by the next tick.
    session = runtime.console.accounts.login("ada@example.com", "correct horse battery")
    owner = runtime.console.accounts.account_for_session(session)
    assert owner is not None
    joined = runtime.console.accounts.create_workspace(owner, "Staging", "en").workspace_id
    runtime.console.nudge_relay()
    runtime.billing.accounts.bind(joined, account)
    assert runtime.billing.arrears.tick() == {"reminded": 0, "locked": 0, "workspaces_changed": 1}
    runtime.billing_relay_drain()
    assert console_view(runtime, joined)[:2] == ("locked", "locked")
    assert mails(runtime)[-1] == ("locked", "ada@example.com", "en") and len(
        [m for m in mails(runtime) if m[0] == "locked"]) == 1  # one per case and address

    # It moves to Bob's account. The change applies from the next billing day, but the
    # lock ends at once (decisions.md 18): the next tick releases it, and it stays so.
    runtime.billing.accounts.bind(joined, bob_account)
    assert runtime.billing.arrears.tick()["workspaces_changed"] == 1
    released_at = clock.now()
    clock.advance(timedelta(days=1))
    assert runtime.billing.arrears.tick()["workspaces_changed"] == 0
    runtime.billing_relay_drain()
    assert console_view(runtime, joined) == ("active", None, None)
    assert console_view(runtime, ws)[:2] == ("locked", "locked")
    with runtime.billing.engine.connect() as conn:
        locks = {r.workspace_id: r.unlocked_at for r in conn.execute(select(t.arrears_locks))}
    assert locks == {ws: None, joined: released_at}

    # Bob's own workspace moves to Ada's locked account: locked from the day it pays.
    runtime.billing.accounts.bind(bob_ws, account)
    assert runtime.billing.arrears.tick()["workspaces_changed"] == 0
    clock.advance(timedelta(days=1))
    assert runtime.billing.arrears.tick()["workspaces_changed"] == 1
    runtime.billing_relay_drain()
    assert console_view(runtime, bob_ws)[:2] == ("locked", "locked")
    # Ending the case unlocks what is still locked, and only that.
    before = len(lock_messages(runtime))
    runtime.billing.wallet.recharge(account, "2.00", "t-1")
    assert sorted(lock_messages(runtime)[before:]) == sorted([(ws, 3, "clear"),
                                                              (bob_ws, 2, "clear")])


def test_a_change_of_settlement_method_releases_the_workspace_at_once(
        runtime: Runtime, clock: ManualClock) -> None:
    ws, account = tenant(runtime, clock, "ada")
    charge(runtime, ws, "2.00")
    clock.set(START + COUNTDOWN)
    runtime.billing.arrears.tick()
    # What a change to a cloud marketplace does (from tomorrow), then asks in its transaction.
    tomorrow = runtime.billing.accounts.today() + timedelta(days=1)
    with runtime.billing.engine.begin() as conn:
        conn.execute(insert(t.bindings).values(
            workspace_id=ws, account_id=account, settlement_method="aws",
            effective_from=tomorrow, created_at=clock.now()))
        assert runtime.billing.arrears.release_workspace(conn, ws, "method_changed") is True
        assert runtime.billing.arrears.release_workspace(conn, ws, "method_changed") is False
    assert lock_messages(runtime)[-1] == (ws, 3, "clear")
    runtime.billing_relay_drain()
    assert console_view(runtime, ws) == ("active", None, None)
    for _ in range(2):  # neither today nor once the change is in force
        assert runtime.billing.arrears.tick()["workspaces_changed"] == 0
        clock.advance(timedelta(days=1))
    # The account still owes: the case stays open for whatever it pays for itself.
    assert case_row(runtime, account).open is True


def test_concurrent_ticks_lock_once(runtime: Runtime, clock: ManualClock) -> None:
    ws, _ = tenant(runtime, clock, "ada")
    charge(runtime, ws, "2.00")
    clock.set(START + COUNTDOWN + timedelta(hours=1))
    results: list[dict[str, int]] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            results.append(runtime.billing.arrears.tick())
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r["locked"] for r in results) == 1
    assert sum(r["workspaces_changed"] for r in results) == 1
    assert lock_messages(runtime) == [(ws, 1, "countdown"), (ws, 2, "locked")]
    assert [m[0] for m in mails(runtime)] == ["countdown", "locked"]
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.arrears_locks)).scalar_one() == 1


def test_movements_that_change_nothing_cost_one_query(runtime: Runtime,
                                                      clock: ManualClock) -> None:
    tenants = [tenant(runtime, clock, name) for name in ("ada", "bob", "cyd")]
    charge(runtime, tenants[0][0], "2.00")  # one in arrears already, the others paid up
    accounts = [account for _, account in tenants]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(runtime.billing.engine, "before_cursor_execute", count)
    try:
        with runtime.billing.engine.begin() as conn:
            runtime.billing.arrears.after_movement(conn, [*accounts, None])
    finally:
        event.remove(runtime.billing.engine, "before_cursor_execute", count)
    assert len([s for s in statements if "arrears_cases" in s]) == 1, statements
    assert not [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]


def test_the_console_never_applies_an_older_state(runtime: Runtime, clock: ManualClock) -> None:
    ws, _ = tenant(runtime, clock, "ada")
    lock_at = START + COUNTDOWN

    def message(version: int, state: str) -> Envelope:
        lock = WorkspaceLock(workspace_id=ws, state=state,  # type: ignore[arg-type]
                             lock_at=None if state == "clear" else lock_at)
        return Envelope(id=message_id(WORKSPACE_LOCK, ws, version), type=WORKSPACE_LOCK,
                        aggregate_id=ws, aggregate_version=version, occurred_at=START,
                        site="cn1", payload=lock.model_dump(mode="json"))

    inbox = runtime.console.inbox
    # Delivered out of order: the lock (3) before the countdown (1) it followed.
    assert inbox.deliver([message(3, "locked"), message(1, "countdown")]) == [
        message(3, "locked").id, message(1, "countdown").id]
    assert console_view(runtime, ws) == ("locked", "locked", lock_at)
    inbox.deliver([message(2, "clear")])  # older than the lock: ignored
    assert console_view(runtime, ws) == ("locked", "locked", lock_at)
    inbox.deliver([message(4, "clear")])
    assert console_view(runtime, ws) == ("active", None, None)
    inbox.deliver([message(4, "locked").model_copy(update={"id": "another id, same version"})])
    assert console_view(runtime, ws) == ("active", None, None)
    with runtime.console.engine.connect() as conn:
        assert conn.execute(select(ct.workspaces.c.lock_version)
                            .where(ct.workspaces.c.id == ws)).scalar_one() == 4


class FlakyMailer:
    """Fails the first ``failures`` sends, then delivers (to a LogMailer)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivered = LogMailer()

    def send(self, mail: Mail) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise MailError("421 try again later")
        self.delivered.send(mail)


def test_mails_are_retried_with_backoff_and_sent_once(runtime: Runtime,
                                                      clock: ManualClock) -> None:
    ws, _ = tenant(runtime, clock, "ada", language="zh")
    charge(runtime, ws, "2.00")
    mailer = FlakyMailer(failures=2)
    job = MailOutbox(runtime.billing.engine, clock, mailer)
    assert job.send_due() == {"sent": 0, "failed": 1}
    m = t.mail_outbox
    with runtime.billing.engine.connect() as conn:
        row = conn.execute(select(m)).one()
    assert (row.attempts, row.sent_at, row.last_error) == (1, None, "421 try again later")
    assert clock.now() + timedelta(seconds=30) <= row.next_attempt_at
    assert job.send_due() == {"sent": 0, "failed": 0}  # not due yet
    clock.set(row.next_attempt_at)
    assert job.send_due() == {"sent": 0, "failed": 1}
    with runtime.billing.engine.connect() as conn:
        second = conn.execute(select(m)).one()
    assert second.attempts == 2 and second.next_attempt_at - clock.now() > \
        (row.next_attempt_at - START) / 2  # backed off further
    clock.set(second.next_attempt_at)
    assert job.send_due() == {"sent": 1, "failed": 0}
    assert job.send_due() == {"sent": 0, "failed": 0}
    (sent,) = mailer.delivered.sent
    assert sent.to == "ada@example.com" and sent.subject.startswith("费用中心账号 ada 已欠费")
    assert "2.00 CNY" in sent.body and "2026-12-10 10:00 CST" in sent.body
    assert job.backlog()["pending"] == 0


def test_a_mail_that_keeps_failing_is_given_up_and_shown(runtime: Runtime,
                                                         clock: ManualClock) -> None:
    ws, _ = tenant(runtime, clock, "ada")
    charge(runtime, ws, "2.00")
    job = MailOutbox(runtime.billing.engine, clock, FlakyMailer(failures=10**6))
    for _ in range(MAX_ATTEMPTS + 2):
        job.send_due()
        clock.advance(timedelta(days=1))
    backlog = job.backlog()
    assert (backlog["pending"], backlog["given_up"]) == (0, 1)
    assert backlog["failing"][0]["attempts"] == MAX_ATTEMPTS


def test_bill_mail_tells_the_countdown(runtime: Runtime, clock: ManualClock) -> None:
    ws, account = tenant(runtime, clock, "ada")
    charge(runtime, ws, "13.40")
    clock.set(datetime(2026, 12, 3, 9, 0, tzinfo=SHANGHAI))
    assert runtime.billing.statements.generate_due() == 1
    runtime.billing.statements.generate(account, date(2026, 11, 1))  # again: no second mail
    assert [m[0] for m in mails(runtime)] == ["countdown", "bill_generated"]
    mailer = LogMailer()
    MailOutbox(runtime.billing.engine, clock, mailer).send_due()
    bill = mailer.sent[-1]
    assert bill.subject == "Your bill for 2026-11: 13.40 CNY"
    assert "owes 13.40 CNY" in bill.body and "paid by 2026-12-10 10:00 CST" in bill.body


def test_operator_and_account_views(runtime: Runtime, clock: ManualClock) -> None:
    from fastapi.testclient import TestClient

    from tests.helpers import OPERATOR, billing_login

    ws, account = tenant(runtime, clock, "ada")
    charge(runtime, ws, "3.40")
    with TestClient(runtime.app) as client:
        assert client.get("/billing/v1/admin/arrears").status_code == 401
        overview = client.get("/billing/v1/admin/arrears", headers=OPERATOR).json()
        (case,) = overview["cases"]
        assert (case["account_id"], case["state"], case["owed"]) == (account, "countdown", "3.40")
        assert case["workspaces"] == [{"workspace_id": ws, "name": "ada's team", "site": "cn1",
                                       "state": "countdown"}]
        assert overview["mails"]["pending"] == 1
        own = client.get(f"/billing/v1/accounts/{account}/arrears",
                         headers=billing_login(client)).json()
        assert own["state"] == "countdown" and own["case"]["lock_at"] == case["lock_at"]
        runtime.billing.wallet.recharge(account, "3.40", "t-1")
        assert client.get(f"/billing/v1/accounts/{account}/arrears",
                          headers=OPERATOR).json() == {"account_id": account, "state": "none",
                                                       "case": None}


# -- dissolving a workspace ------------------------------------------------------------

def _usage(runtime: Runtime, ws: str, record_id: str, time: datetime) -> int:
    return runtime.console.ingestion.ingest([{
        "id": record_id, "workspace_id": ws, "item": "logs", "quantity": "1000000",
        "retention_days": 7, "time": time.isoformat()}]).accepted


def test_dissolve_rules_and_what_it_deletes(runtime: Runtime, clock: ManualClock) -> None:
    from fastapi.testclient import TestClient

    from tests.helpers import console_login

    ws, account = tenant(runtime, clock, "ada")
    with TestClient(runtime.app) as client:
        owner = console_login(client, "ada")
        url = f"/console/v1/workspaces/{ws}/dissolve"
        body = {"workspace_name": "ada's team"}
        assert _usage(runtime, ws, "a", datetime(2026, 11, 25, 9, tzinfo=SHANGHAI)) == 1
        runtime.console.day_close.close_day(DAY)
        runtime.console.nudge_relay()  # settles 1.20 from nothing: arrears

        refused = client.post(url, json=body, headers=owner)
        assert (refused.status_code, refused.json()["error"]["code"]) == (409,
                                                                         "dissolve_not_allowed")
        runtime.billing_relay_drain()  # the countdown reaches the console
        view = client.get(f"/console/v1/workspaces/{ws}", headers=owner).json()
        assert view["arrears"] == {"state": "countdown",
                                   "lock_at": (clock.now() + COUNTDOWN).isoformat()}

        # Only the owner, with the name typed right.
        tenant(runtime, clock, "bob")
        bob = console_login(client, "bob")
        assert client.post(url, json=body, headers=bob).status_code == 404
        with runtime.console.engine.begin() as conn:
            bob_id = conn.execute(select(ct.accounts.c.id).where(
                ct.accounts.c.email == "bob@example.com")).scalar_one()
            conn.execute(insert(ct.members).values(workspace_id=ws, account_id=bob_id,
                                                   role="admin"))
        refused = client.post(url, json=body, headers=bob)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "owner_only")
        refused = client.post(url, json={"workspace_name": "ada"}, headers=owner)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422,
                                                                         "confirmation_mismatch")

        assert _usage(runtime, ws, "b", clock.now()) == 1
        done = client.post(url, json=body, headers=owner)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "dissolved"
        assert done.json()["deleted"] == {"usage_records": 2, "daily_statistics": 1,
                                          "late_days": 0, "alert_rules": 0}
        with runtime.console.engine.connect() as conn:
            for table in (ct.usage_records, ct.daily_statistics):
                assert conn.execute(select(func.count()).select_from(table).where(
                    table.c.workspace_id == ws)).scalar_one() == 0
            # The bill is the account's: the details already produced stay.
            assert conn.execute(select(func.count()).select_from(ct.billing_details).where(
                ct.billing_details.c.workspace_id == ws)).scalar_one() == 1

        again = client.post(url, json=body, headers=owner)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "workspace_dissolved")
        assert admission_json(runtime.console.admission.check([(ws, "logs")])[0])["reason"] == "dissolved"
        refused_usage = runtime.console.ingestion.ingest([{
            "id": "c", "workspace_id": ws, "item": "logs", "quantity": "1",
            "time": clock.now().isoformat()}])
        assert [r.code for r in refused_usage.rejected] == ["workspace_dissolved"]
        # A re-rate of the closed day finds nothing to refund.
        assert runtime.console.day_close.close_day(DAY).adjustments == 0

        # The lock and its end still arrive; the workspace stays dissolved.
        clock.set(START + COUNTDOWN)
        runtime.billing.arrears.tick()
        runtime.billing_relay_drain()
        assert console_view(runtime, ws)[:2] == ("dissolved", "locked")
        runtime.billing.wallet.recharge(account, "5.00", "t-1")
        runtime.billing_relay_drain()
        assert console_view(runtime, ws) == ("dissolved", None, None)


def test_a_locked_workspace_can_be_dissolved(runtime: Runtime, clock: ManualClock) -> None:
    ws, _ = tenant(runtime, clock, "ada")
    charge(runtime, ws, "1.00")
    clock.set(START + COUNTDOWN)
    runtime.billing.arrears.tick()
    runtime.billing_relay_drain()
    owner = runtime.console.accounts.account_for_session(
        runtime.console.accounts.login("ada@example.com", "correct horse battery"))
    from accrual.console.services.dissolve import Dissolution

    dissolution = Dissolution(runtime.console.engine, clock, runtime.console.day_close)
    assert dissolved_json(dissolution.dissolve(owner or "", ws, "ada's team"))["status"] == "dissolved"
    # The billing center learns it (console → billing message): the account no longer
    # counts it, the case stops telling it anything, and what was owed stays owed.
    runtime.console.relay.drain()
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(t.workspaces.c.dissolved_at)
                            .where(t.workspaces.c.workspace_id == ws)).scalar() is not None
    account = runtime.billing.accounts.find_by_username("ada")
    assert account is not None
    assert runtime.billing.accounts.workspaces_of(account) == []
    [case] = runtime.billing.arrears.cases(account_id=account)
    assert case["workspaces"] == [] and case["owed"] == "1.00"
    assert runtime.billing.arrears.tick() == {"reminded": 0, "locked": 0,
                                              "workspaces_changed": 0}
