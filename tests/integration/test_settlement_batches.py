"""The billing inbox settles runs of billing details in one transaction (inbox.deliver).

The per-detail path (`_apply_once`: ledger.post, binding_for) is the reference. Each
test applies a sequence both ways on the same database: the reference inside a
transaction that is rolled back, then the batch for real; the ledger, the charge
lines and the inbox must come out the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Connection, insert, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.services import inbox, ledger, settling
from accrual.clock import ManualClock
from accrual.contract.messages import BILLING_DETAIL, BillingDetail, Envelope, detail_id
from accrual.infra import credentials
from tests.conftest import SHANGHAI, START

DAY = date(2026, 11, 25)


@pytest.fixture
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(credentials, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield


def tenant(runtime: Runtime, clock: ManualClock, name: str) -> tuple[str, str]:
    """(workspace id, billing account id), registered on DAY."""
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI))
    reg = runtime.console.accounts.register(f"{name}@example.com", "correct horse battery",
                                            name, f"{name}'s team", "en")
    clock.set(START)
    return reg.workspace_id, reg.billing_account_id


def detail(workspace_id: str, amount: str, *, day: date = DAY, item: str = "logs",
           revision: int = 0, account: str | None = None, currency: str = "CNY",
           message_id: str | None = None) -> Envelope:
    did = detail_id("cn1", workspace_id, day, item, 7, revision)
    body = BillingDetail(
        id=did, site="cn1", workspace_id=workspace_id, billing_account_id=account, day=day,
        item=item, retention_days=7, quantity="1000000", unit_size="1000000", unit_price="1",
        amount=amount, currency=currency, price_book_version="current@2023-11-02",
        kind="charge" if revision == 0 else "adjustment", revision=revision,
        adjusts=None if revision == 0 else detail_id("cn1", workspace_id, day, item, 7, 0),
        reason=None if revision == 0 else "late usage", created_at=START)
    return Envelope(id=message_id or did, type=BILLING_DETAIL, aggregate_id=workspace_id,
                    occurred_at=START, payload=body.model_dump(mode="json"))


def state(conn: Connection) -> dict[str, Any]:
    """The settlement's outcome, with database ids replaced by what they stand for."""
    keys = dict(conn.execute(select(t.journal_entries.c.id,
                                    t.journal_entries.c.idempotency_key)).all())
    accounts = {row.id: (row.owner, row.kind) for row in conn.execute(select(t.ledger_accounts))}
    postings: dict[str, list[tuple[str, str, int]]] = {}
    for row in conn.execute(select(t.postings)):
        postings.setdefault(keys[row.entry_id], []).append(
            (*accounts[row.ledger_account_id], row.amount_minor))
    return {
        "entries": sorted((r.idempotency_key, r.request_digest, r.kind, r.account_id, r.reference)
                          for r in conn.execute(select(t.journal_entries))),
        "postings": {key: sorted(rows) for key, rows in postings.items()},
        "balances": sorted((r.owner, r.kind, r.balance_minor)
                           for r in conn.execute(select(t.ledger_accounts))),
        "charges": sorted((r.detail_id, r.account_id, r.console_account_id, r.workspace_id,
                           r.status, r.amount_minor, keys.get(r.entry_id), r.kind, r.revision,
                           r.quantity) for r in conn.execute(select(t.charges))),
        "inbox": sorted(conn.execute(select(t.inbox.c.message_id, t.inbox.c.type)).all()),
        "audit_ok": ledger.audit(conn).ok,
    }


def reference_and_batch(runtime: Runtime, messages: list[Envelope]) -> tuple[Any, Any]:
    center = runtime.billing
    with center.engine.connect() as conn, conn.begin() as transaction:
        for message in messages:
            center.inbox._apply_once(conn, message)
        reference = state(conn)
        transaction.rollback()
    assert center.inbox.deliver(messages) == [m.id for m in messages]
    with center.engine.connect() as conn:
        return reference, state(conn)


def test_a_run_of_details_settles_as_the_per_detail_path_does(
        runtime: Runtime, clock: ManualClock, cheap_passwords: None,
        caplog: pytest.LogCaptureFixture) -> None:
    ws_a, account_a = tenant(runtime, clock, "ada")
    ws_b, _ = tenant(runtime, clock, "bob")
    ws_c, account_c = tenant(runtime, clock, "cyd")
    runtime.billing.wallet.recharge(account_a, "10.00", "transfer-1")
    # From the next day cyd's workspace is paid by ada's account.
    with runtime.billing.engine.begin() as conn:
        conn.execute(insert(t.bindings).values(
            workspace_id=ws_c, account_id=account_a, settlement_method="billing_center",
            effective_from=DAY + timedelta(days=1), created_at=START))
    already = detail(ws_a, "1.00", item="trace")
    runtime.billing.inbox.deliver([already])  # settled before: reused, not posted again
    first = detail(ws_a, "3.00")
    messages = [
        first,
        detail(ws_a, "9.00", item="rum_pv"),  # 6.00 of cash left: 3.00 goes into arrears
        detail(ws_a, "-2.50", revision=1),  # pays the arrears back first
        detail(ws_b, "0.00"),  # routed, nothing to post
        detail("no-such-workspace", "4.00"),  # unrouted
        detail(ws_c, "1.00", account="someone-else"),  # the binding decides
        detail(ws_c, "1.00", day=DAY + timedelta(days=1)),  # ada pays from that day
        first,  # the same message again in the run
        detail(ws_a, "5.00", item="sms", currency="USD"),  # wrong center: unrouted
        already,
        detail(ws_a, "0.70", item="trigger", message_id="envelope-id-not-the-detail-id"),
    ]
    caplog.clear()
    reference, batch = reference_and_batch(runtime, messages)
    assert batch == reference
    assert batch["audit_ok"]
    statuses = {c[0]: c[4] for c in batch["charges"]}
    assert statuses[messages[4].id] == "unrouted" and statuses[messages[8].id] == "unrouted"
    routed = {c[0]: c[1] for c in batch["charges"]}
    assert routed[messages[5].id] == account_c and routed[messages[6].id] == account_a
    assert "binding says" in caplog.text and "left unrouted" in caplog.text
    # Delivered again: nothing changes.
    runtime.billing.inbox.deliver(messages)
    with runtime.billing.engine.connect() as conn:
        assert state(conn) == batch


def test_binding_history_is_read_as_binding_for_reads_it(
        runtime: Runtime, clock: ManualClock, cheap_passwords: None) -> None:
    ws, first_account = tenant(runtime, clock, "ada")
    _, second = tenant(runtime, clock, "bob")
    _, third = tenant(runtime, clock, "cyd")
    with runtime.billing.engine.begin() as conn:
        conn.execute(insert(t.bindings), [
            {"workspace_id": ws, "account_id": second, "settlement_method": "billing_center",
             "effective_from": DAY + timedelta(days=3), "created_at": START},
            {"workspace_id": ws, "account_id": third, "settlement_method": "billing_center",
             "effective_from": DAY + timedelta(days=7), "created_at": START},
            {"workspace_id": "bound-late", "account_id": third,
             "settlement_method": "billing_center", "effective_from": DAY, "created_at": START},
        ])
    days = [DAY + timedelta(days=n) for n in range(-5, 12)]
    wanted = {(w, d) for w in (ws, "bound-late", "never-bound") for d in days}
    with runtime.billing.engine.connect() as conn:
        found = settling.bindings_in_force(conn, wanted)
        for w, d in sorted(wanted):
            row = runtime.billing.accounts.binding_in_force(conn, w, d)
            assert found.get((w, d)) == (None if row is None else
                                         (row.account_id, row.settlement_method, None)), (w, d)
    # The first binding covers the days before it.
    assert found[(ws, DAY - timedelta(days=5))] == (first_account, "billing_center", None)


def test_a_detail_that_cannot_be_applied_fails_alone(
        runtime: Runtime, clock: ManualClock, cheap_passwords: None) -> None:
    ws, account = tenant(runtime, clock, "ada")
    poisoned = detail(ws, "2.00", item="trace")
    with runtime.billing.engine.begin() as conn:  # its key was used for another amount
        ledger.post(conn, owner=account, key=f"detail/{poisoned.id}",
                    request_digest=ledger.digest(999), kind="charge", reference=None, now=START,
                    compute=lambda b: {"prepaid": -999, "revenue": 999})
    before, after = detail(ws, "1.00"), detail(ws, "3.00", item="rum_pv")
    answer = runtime.billing.inbox.deliver([before, poisoned, after])
    # The others of the delivery are applied; the poisoned one is answered as failed.
    assert list(answer) == [before.id, after.id]
    assert list(answer.failed) == [poisoned.id]
    assert answer.failed[poisoned.id].startswith("Conflict:")
    with runtime.billing.engine.connect() as conn:
        applied = set(conn.execute(select(t.inbox.c.message_id)).scalars())
    assert before.id in applied and poisoned.id not in applied and after.id in applied
    job = runtime.billing.inbox.job.view()
    assert job["failing_count"] == 1 and job["failures"] == {"idempotency_conflict": 1}


def test_runs_are_cut_at_the_batch_size(runtime: Runtime, clock: ManualClock,
                                        cheap_passwords: None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ws, account = tenant(runtime, clock, "ada")
    monkeypatch.setattr(inbox, "SETTLE_BATCH", 3)
    messages = [detail(ws, f"{n}.00", item=item)
                for n, item in enumerate(["logs", "trace", "rum_pv", "trigger", "sms", "profile",
                                          "timeseries"], start=1)]
    reference, batch = reference_and_batch(runtime, messages)
    assert batch == reference
    assert [b for b in batch["balances"] if b[0] == account] == [
        (account, "cash", 0), (account, "prepaid", -2800)]
