"""Registration spans both systems: all three (console account, billing account,
workspace) exist and are bound, or none does, and the same request can be retried."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as billing_tables
from accrual.clock import ManualClock
from accrual.console.adapters import tables as console_tables
from accrual.console.services.accounts import Accounts
from accrual.contract.messages import (
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    RegistrationResult,
)
from accrual.contract.ports import BillingCenterPort, PeerUnavailable
from tests.conftest import make_runtime
from tests.helpers import billing_login

BODY = {"email": "Ada@Example.com", "password": "correct horse battery", "username": "ada",
        "workspace_name": "Ada's team", "language": "en"}


class Flaky:
    """A billing-center transport whose calls can be made to fail on demand."""

    def __init__(self, real: BillingCenterPort) -> None:
        self.real = real
        self.down: set[str] = set()

    def _check(self, call: str) -> None:
        if call in self.down:
            raise PeerUnavailable(f"{call}: connection refused")

    def register_account(self, request: RegistrationRequest) -> RegistrationResult:
        self._check("register")
        return self.real.register_account(request)

    def confirm_registration(self, key: str, confirmation: RegistrationConfirmation) -> None:
        self._check("confirm")
        self.real.confirm_registration(key, confirmation)

    def cancel_registration(self, key: str) -> None:
        self._check("cancel")
        self.real.cancel_registration(key)

    def deliver(self, messages: Sequence[Envelope]) -> list[str]:
        self._check("deliver")
        return self.real.deliver(messages)


@pytest.fixture
def flaky_runtime(tmp_path: Path, pg_databases: tuple[str, str] | None,
                  clock: ManualClock) -> Iterator[tuple[Runtime, Flaky]]:
    holder: list[Flaky] = []

    def wrap(real: BillingCenterPort) -> BillingCenterPort:
        holder.append(Flaky(real))
        return holder[0]

    runtime = make_runtime(tmp_path, pg_databases, clock, wrap_billing_port=wrap)
    yield runtime, holder[0]
    runtime.console.engine.dispose()
    runtime.billing.engine.dispose()


def _crash(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("the console database went away mid-registration")


def counts(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.console.engine.connect() as conn:
        accounts = conn.execute(select(func.count()).select_from(console_tables.accounts)).scalar_one()
        workspaces = conn.execute(select(func.count()).select_from(console_tables.workspaces)).scalar_one()
    with runtime.billing.engine.connect() as conn:
        billing = conn.execute(select(func.count()).select_from(billing_tables.accounts)).scalar_one()
    return accounts, workspaces, billing


@pytest.mark.db
def test_billing_center_unreachable_leaves_nothing_and_retry_succeeds(
        flaky_runtime: tuple[Runtime, Flaky]) -> None:
    runtime, flaky = flaky_runtime
    with TestClient(runtime.app) as client:
        flaky.down = {"register"}
        refused = client.post("/console/v1/registrations", json=BODY)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "billing_unavailable"
        assert counts(runtime) == (0, 0, 0)

        flaky.down = set()
        created = client.post("/console/v1/registrations", json=BODY)
        assert created.status_code == 201, created.text
        assert counts(runtime) == (1, 1, 1)
        ws = created.json()
        bill = client.get(f"/billing/v1/accounts/{ws['billing_account_id']}",
                          headers=billing_login(client)).json()
        assert [w["workspace_id"] for w in bill["workspaces"]] == [ws["workspace_id"]]


@pytest.mark.db
def test_console_failure_after_billing_account_cancels_it(
        flaky_runtime: tuple[Runtime, Flaky], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, _ = flaky_runtime

    with monkeypatch.context() as patch:
        patch.setattr(Accounts, "_insert_workspace", _crash)
        with pytest.raises(RuntimeError):
            runtime.console.accounts.register(BODY["email"], BODY["password"], BODY["username"],
                                              BODY["workspace_name"], "en")
    assert counts(runtime) == (0, 0, 0)
    again = runtime.console.accounts.register(BODY["email"], BODY["password"], BODY["username"],
                                              BODY["workspace_name"], "en")
    assert again.billing_account_id
    assert counts(runtime) == (1, 1, 1)


@pytest.mark.db
def test_retry_after_lost_cancel_reuses_the_pending_billing_account(
        flaky_runtime: tuple[Runtime, Flaky], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, flaky = flaky_runtime
    flaky.down = {"cancel"}
    with monkeypatch.context() as patch:
        patch.setattr(Accounts, "_insert_workspace", _crash)
        with pytest.raises(RuntimeError):
            runtime.console.accounts.register(BODY["email"], BODY["password"], BODY["username"],
                                              BODY["workspace_name"], "en")
    assert counts(runtime) == (0, 0, 1)  # a pending billing account is left behind
    with runtime.billing.engine.connect() as conn:
        pending_id = conn.execute(select(billing_tables.accounts.c.id)).scalar_one()
    result = runtime.console.accounts.register(BODY["email"], BODY["password"], BODY["username"],
                                               BODY["workspace_name"], "en")
    assert result.billing_account_id == pending_id
    assert counts(runtime) == (1, 1, 1)


@pytest.mark.db
def test_unconfirmed_pending_account_is_reaped_and_frees_the_username(
        flaky_runtime: tuple[Runtime, Flaky], clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, flaky = flaky_runtime
    flaky.down = {"cancel"}
    with monkeypatch.context() as patch:
        patch.setattr(Accounts, "_insert_workspace", _crash)
        with pytest.raises(RuntimeError):
            runtime.console.accounts.register(BODY["email"], BODY["password"], BODY["username"],
                                              BODY["workspace_name"], "en")
    assert runtime.billing.accounts.reap_pending() == 0  # not yet expired
    clock.advance(timedelta(hours=2))
    assert runtime.billing.accounts.reap_pending() == 1
    assert counts(runtime) == (0, 0, 0)
    # Another person may now take the username.
    other = runtime.console.accounts.register("bob@example.com", BODY["password"], "ada",
                                              "Bob's team", "en")
    assert other.billing_account_id


@pytest.mark.db
def test_lost_confirmation_is_completed_by_the_outbox(flaky_runtime: tuple[Runtime, Flaky],
                                                      clock: ManualClock) -> None:
    runtime, flaky = flaky_runtime
    with TestClient(runtime.app) as client:
        flaky.down = {"confirm", "deliver"}
        created = client.post("/console/v1/registrations", json=BODY)
        assert created.status_code == 201, created.text
        account_id = created.json()["billing_account_id"]
        # Not confirmed yet: the billing login is refused, nothing is bound.
        assert client.post("/billing/v1/sessions", json={
            "username": "ada", "password": BODY["password"]}).status_code == 401

        flaky.down = set()
        clock.advance(timedelta(minutes=5))  # past the relay's back-off
        assert runtime.console.relay.drain() >= 1
        account = client.get(f"/billing/v1/accounts/{account_id}", headers=billing_login(client))
        assert account.status_code == 200
        assert [w["workspace_id"] for w in account.json()["workspaces"]] == [
            created.json()["workspace_id"]]


@pytest.mark.db
def test_email_is_unique_case_insensitively_and_username_too(client: TestClient) -> None:
    assert client.post("/console/v1/registrations", json=BODY).status_code == 201
    taken = client.post("/console/v1/registrations", json={**BODY, "email": "ADA@example.COM",
                                                           "username": "other"})
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "email_taken")
    taken = client.post("/console/v1/registrations", json={**BODY, "email": "x@example.com",
                                                           "username": "ADA"})
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "username_taken")
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.post("/console/v1/sessions", json={"email": "ada@EXAMPLE.com",
                                                     "password": BODY["password"]}).status_code == 200
