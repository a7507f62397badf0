"""The seam: outbox → relay → billing inbox, over HTTP too, with failures and late data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as billing_tables
from accrual.billing.services import ledger
from accrual.clock import ManualClock
from accrual.console.adapters import tables as console_tables
from accrual.contract.http import HttpBillingCenter
from accrual.contract.messages import (
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    RegistrationResult,
)
from accrual.contract.ports import BillingCenterPort, PeerUnavailable
from tests.conftest import ADMIN, SHANGHAI, START, make_runtime
from tests.helpers import OPERATOR, close_day, console_login, register, send_usage

YESTERDAY = "2026-11-25"


def logs(workspace_id: str, record_id: str, quantity: str, day: str = YESTERDAY) -> dict[str, object]:
    return {"id": record_id, "workspace_id": workspace_id, "item": "logs",
            "time": f"{day}T12:00:00+08:00", "quantity": quantity, "retention_days": 3}


def registered_yesterday(client: TestClient, clock: ManualClock, name: str = "ada") -> dict[str, str]:
    clock.set(datetime(2026, 11, 25, 0, 1, tzinfo=SHANGHAI))
    reg = register(client, name)
    clock.set(START)
    return reg


def pending_outbox(runtime: Runtime) -> int:
    with runtime.console.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(console_tables.outbox)
                            .where(console_tables.outbox.c.sent_at.is_(None))).scalar_one()


def charges(runtime: Runtime) -> list[tuple[str, int]]:
    with runtime.billing.engine.connect() as conn:
        return [(r.kind, r.amount_minor) for r in conn.execute(
            select(billing_tables.charges).order_by(billing_tables.charges.c.revision))]


class LosesAcks:
    """Delivers for real, then reports a failure, as when the answer is lost."""

    def __init__(self, real: BillingCenterPort) -> None:
        self.real = real
        self.lose_acks = False
        self.down = False

    def register_account(self, request: RegistrationRequest) -> RegistrationResult:
        return self.real.register_account(request)

    def confirm_registration(self, key: str, confirmation: RegistrationConfirmation) -> None:
        self.real.confirm_registration(key, confirmation)

    def cancel_registration(self, key: str) -> None:
        self.real.cancel_registration(key)

    def deliver(self, messages: Sequence[Envelope]) -> list[str]:
        if self.down:
            raise PeerUnavailable("billing center down")
        applied = self.real.deliver(messages)
        if self.lose_acks:
            raise PeerUnavailable("connection reset after the request was sent")
        return applied


@pytest.mark.db
def test_redelivery_after_lost_acks_settles_each_detail_once(
        tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock) -> None:
    holder: list[LosesAcks] = []
    runtime = make_runtime(tmp_path, pg_databases, clock,
                           wrap_billing_port=lambda real: holder.append(LosesAcks(real)) or holder[0])
    port = holder[0]
    try:
        with TestClient(runtime.app) as client:
            reg = registered_yesterday(client, clock)
            send_usage(client, reg["ingest_key"], [logs(reg["workspace_id"], "a", "3000000")])

            port.down = True
            closed = close_day(client, YESTERDAY)
            assert closed["charges"] == 1 and closed["delivered"] == 0
            jobs = client.get("/console/v1/admin/jobs", headers=OPERATOR).json()
            assert jobs["outbox"]["pending"] == 1 and jobs["outbox"]["failed_batches"] == 1
            assert charges(runtime) == []

            port.down, port.lose_acks = False, True
            assert runtime.console.relay.drain() == 0  # backing off: nothing due yet
            clock.advance(timedelta(minutes=15))
            runtime.console.relay.drain()
            assert pending_outbox(runtime) == 1  # applied, but the relay could not know
            port.lose_acks = False
            clock.advance(timedelta(minutes=15))
            assert runtime.console.relay.drain() == 1
            assert pending_outbox(runtime) == 0

            assert charges(runtime) == [("charge", 300)]
            overview = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/overview",
                                  headers=OPERATOR).json()
            assert overview["arrears"] == "3.00"
            with runtime.billing.engine.connect() as conn:
                report = ledger.audit(conn)
                assert report.ok and report.entries == 1
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


@pytest.mark.db
def test_console_reaches_billing_over_http(tmp_path: Path, pg_databases: tuple[str, str] | None,
                                           clock: ManualClock) -> None:
    clients: list[TestClient] = []

    class OverHttp:
        """The app exists only once the runtime is built: connect on first use."""

        def __getattr__(self, name: str) -> object:
            return lambda *args: getattr(HttpBillingCenter(clients[0], ADMIN), name)(*args)  # type: ignore[arg-type]

    runtime = make_runtime(tmp_path, pg_databases, clock,
                           wrap_billing_port=lambda _real: OverHttp())  # type: ignore[arg-type,return-value]
    try:
        with TestClient(runtime.app) as client:
            clients.append(client)
            reg = registered_yesterday(client, clock)
            taken = client.post("/console/v1/registrations", json={
                "email": "other@example.com", "password": "correct horse battery",
                "username": "ada", "workspace_name": "x", "language": "en"})
            assert (taken.status_code, taken.json()["error"]["code"]) == (409, "username_taken")
            send_usage(client, reg["ingest_key"], [logs(reg["workspace_id"], "a", "1000000")])
            closed = close_day(client, YESTERDAY)
            assert closed["delivered"] == 1
            bill = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/daily-bills",
                              params={"date": YESTERDAY}, headers=OPERATOR).json()
            assert bill["total"] == "1.00"
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


def test_scheduler_closes_yesterday_after_midnight_plus_grace(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    reg = registered_yesterday(client, clock)
    send_usage(client, reg["ingest_key"], [logs(reg["workspace_id"], "a", "2000000")])
    clock.set(datetime(2026, 11, 26, 0, 20, tzinfo=SHANGHAI))  # inside the grace: not yet
    runtime.scheduler.tick()
    assert charges(runtime) == []
    clock.set(datetime(2026, 11, 26, 0, 31, tzinfo=SHANGHAI))
    runtime.scheduler.tick()
    assert charges(runtime) == [("charge", 200)]
    runtime.scheduler.tick()  # nothing new
    assert charges(runtime) == [("charge", 200)]


def test_late_usage_for_a_closed_day_becomes_one_adjustment(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    reg = registered_yesterday(client, clock)
    ws = reg["workspace_id"]
    send_usage(client, reg["ingest_key"], [logs(ws, "a", "2000000")])
    close_day(client, YESTERDAY)
    first = client.get(f"/console/v1/workspaces/{ws}/billing-details",
                       params={"from": YESTERDAY, "to": YESTERDAY},
                       headers=console_login(client)).json()["details"]
    assert [(d["kind"], d["amount"]) for d in first] == [("charge", "2.00")]

    # Two late records, sent twice: one adjustment with the delta, dated to its day.
    late = [logs(ws, "b", "500000"), logs(ws, "c", "1000000")]
    send_usage(client, reg["ingest_key"], late)
    send_usage(client, reg["ingest_key"], late)
    runtime.scheduler.tick()
    runtime.scheduler.tick()
    assert charges(runtime) == [("charge", 200), ("adjustment", 150)]
    with runtime.console.engine.connect() as conn:
        rows = conn.execute(select(console_tables.billing_details)
                            .order_by(console_tables.billing_details.c.revision)).all()
    assert [(r.kind, r.quantity, r.amount_minor, r.day.isoformat()) for r in rows] == [
        ("charge", "2000000", 200, YESTERDAY), ("adjustment", "1500000", 150, YESTERDAY)]
    assert rows[1].adjusts == rows[0].id and rows[1].reason == "late usage"
    overview = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/overview",
                          headers=OPERATOR).json()
    assert overview["arrears"] == "3.50"
