"""A new workspace for an existing console account through a marketplace activation that
a billing account claimed: commercial and bound through the vendor from its first day, or
nothing made at all (reference-billing.md §1.6 rule 4, §6.1)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.clock import ManualClock
from accrual.console.adapters import tables as console_tables
from accrual.contract.errors import Conflict
from accrual.contract.http import HttpBillingCenter
from accrual.contract.messages import (
    BINDING_CHANGED,
    ActivatedWorkspace,
    ActivationCheck,
    ActivationGrant,
    BindingChanged,
    Envelope,
)
from accrual.contract.ports import BillingCenterPort, PeerRefused, PeerUnavailable
from tests.conftest import ADMIN, make_runtime
from tests.helpers import billing_login, console_login, register
from tests.integration.test_marketplace_activation import (
    FakeMarketplace,
    activate,
    binding,
    count,
)


class Flaky:
    """The billing center's transport, with the new workspace's calls failing on demand."""

    def __init__(self, real: BillingCenterPort) -> None:
        self.real = real
        self.down: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def check_activation(self, request: ActivationCheck) -> ActivationGrant:
        if "check" in self.down:
            raise PeerUnavailable("check: connection refused")
        return self.real.check_activation(request)

    def bind_activated_workspace(self, workspace: ActivatedWorkspace) -> BindingChanged:
        if "bind" in self.down:
            raise PeerUnavailable("bind: connection reset")
        return self.real.bind_activated_workspace(workspace)

    def deliver(self, messages: Sequence[Envelope]) -> list[str]:
        if "deliver" in self.down:
            raise PeerUnavailable("deliver: connection refused")
        return self.real.deliver(messages)


@pytest.fixture
def flaky_runtime(tmp_path: Path, pg_databases: tuple[str, str] | None,
                  clock: ManualClock) -> Iterator[tuple[Runtime, Flaky]]:
    holder: list[Flaky] = []

    def wrap(real: BillingCenterPort) -> BillingCenterPort:
        holder.append(Flaky(real))
        return holder[0]  # type: ignore[return-value]

    runtime = make_runtime(tmp_path, pg_databases, clock, wrap_billing_port=wrap)
    yield runtime, holder[0]
    runtime.console.engine.dispose()
    runtime.billing.engine.dispose()


def with_aws(runtime: Runtime) -> FakeMarketplace:
    fake = FakeMarketplace()
    runtime.billing.marketplaces.by_vendor[fake.vendor] = fake
    return fake


@pytest.fixture
def aws(runtime: Runtime) -> FakeMarketplace:
    return with_aws(runtime)


def claimed(client: TestClient, aws: FakeMarketplace, token: str = "tok-1",
            name: str = "ada") -> dict[str, Any]:
    """An activation the billing account ``name`` claimed."""
    activation = activate(client, aws, token)
    answer = client.post(f"/billing/v1/marketplaces/activations/{activation['id']}/claim",
                         headers=billing_login(client, name))
    assert answer.status_code == 200, answer.text
    return activation


def new_workspace(client: TestClient, activation_id: str, name: str = "Staging",
                  account: str = "ada") -> Any:
    return client.post("/console/v1/workspaces", headers=console_login(client, account),
                       json={"name": name, "language": "en", "activation_id": activation_id})


def made(runtime: Runtime) -> tuple[int, int]:
    """(console workspaces, billing bindings)."""
    with runtime.console.engine.connect() as conn:
        workspaces = conn.execute(select(func.count())
                                  .select_from(console_tables.workspaces)).scalar_one()
    return int(workspaces), count(runtime, t.bindings)


def activated_via(runtime: Runtime, workspace_id: str) -> str | None:
    with runtime.billing.engine.connect() as conn:
        return conn.execute(select(t.workspaces.c.activated_via).where(
            t.workspaces.c.workspace_id == workspace_id)).scalar()


def binding_messages(runtime: Runtime, workspace_id: str) -> list[str]:
    with runtime.billing.engine.connect() as conn:
        bodies = conn.execute(select(t.outbox.c.body).where(
            t.outbox.c.type == BINDING_CHANGED)).scalars().all()
    found = [Envelope.model_validate_json(b) for b in bodies]
    return [e.payload["settlement_method"] for e in found if e.aggregate_id == workspace_id]


def test_a_claimed_activation_makes_a_commercial_workspace_settling_through_the_vendor(
        runtime: Runtime, client: TestClient, aws: FakeMarketplace) -> None:
    account = register(client, "ada")["billing_account_id"]
    activation = claimed(client, aws)
    answer = new_workspace(client, activation["id"])
    assert answer.status_code == 201, answer.text
    body = answer.json()
    ws = body["workspace_id"]
    assert (body["plan"], body["billing_account_id"], body["settlement_method"]) == \
        ("commercial", account, "aws")
    assert body["ingest_key"].startswith("ik_")
    today = binding(runtime, ws)
    assert (today.account_id, today.settlement_method, today.cloud_account_id) == \
        (account, "aws", activation["cloud_account_id"])
    assert today.effective_from == runtime.billing.accounts.today()
    assert activated_via(runtime, ws) == "aws"
    assert binding_messages(runtime, ws) == ["aws"]
    runtime.billing_relay_drain()
    shown = runtime.console.accounts.workspace(ws)
    assert shown is not None
    assert (shown.plan, shown.status, shown.billing_account_id, shown.settlement_method) == \
        ("commercial", "active", account, "aws")
    paid = {w.workspace_id for w in runtime.billing.accounts.workspaces_of(account)}
    assert ws in paid

    # The channel rule: only through that vendor.
    methods = runtime.billing.methods
    methods.link_cloud_account(account, "huawei", "hw-1")
    for method in ("billing_center", "huawei"):
        with pytest.raises(Conflict) as refused:
            methods.change(account, ws, method)
        assert refused.value.code == "channel_restricted"

    # The same activation makes another workspace while it lasts.
    second = new_workspace(client, activation["id"], "Production")
    assert second.status_code == 201, second.text
    assert binding(runtime, second.json()["workspace_id"]).cloud_account_id == \
        activation["cloud_account_id"]


def test_an_unclaimed_activation_is_refused(runtime: Runtime, client: TestClient,
                                            aws: FakeMarketplace) -> None:
    register(client, "ada")
    activation = activate(client, aws, "tok-1")
    before = made(runtime)
    refused = new_workspace(client, activation["id"])
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "activation_not_claimed" and "claim" in error["message"]
    assert made(runtime) == before
    # Held by a registration in progress: refused as used.
    bob = register(client, "bob")["billing_account_id"]
    with runtime.billing.engine.begin() as conn:
        conn.execute(t.marketplace_activations.update().values(account_id=bob))
    held = new_workspace(client, activation["id"])
    assert held.status_code == 409 and held.json()["error"]["code"] == "activation_used"


def test_only_the_claiming_accounts_person_makes_workspaces_through_it(
        runtime: Runtime, client: TestClient, aws: FakeMarketplace) -> None:
    register(client, "ada")
    register(client, "eve")
    activation = claimed(client, aws)  # claimed by ada's billing account
    before = made(runtime)
    # Eve saw the activation id: she cannot bill ada's account for a workspace of hers.
    refused = new_workspace(client, activation["id"], account="eve")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "activation_not_yours"
    assert made(runtime) == before
    assert new_workspace(client, activation["id"]).status_code == 201


def test_an_expired_or_unknown_activation_creates_nothing(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace) -> None:
    register(client, "ada")
    activation = claimed(client, aws)
    unknown = new_workspace(client, "act_unknown")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "activation_not_found"
    too_long = new_workspace(client, "act_" + "0" * 40)
    assert too_long.status_code == 422
    before = made(runtime)
    clock.set(clock.now() + timedelta(hours=1, seconds=1))
    expired = new_workspace(client, activation["id"])
    assert expired.status_code == 409
    assert expired.json()["error"]["code"] == "activation_expired"
    open_one = activate(client, aws, "tok-2")
    clock.set(clock.now() + timedelta(hours=1, seconds=1))
    assert new_workspace(client, open_one["id"]).json()["error"]["code"] == "activation_expired"
    assert made(runtime) == before


@pytest.mark.db
def test_billing_center_unreachable_creates_nothing_and_a_retry_succeeds(
        flaky_runtime: tuple[Runtime, Flaky]) -> None:
    runtime, flaky = flaky_runtime
    aws = with_aws(runtime)
    with TestClient(runtime.app) as client:
        register(client, "ada")
        activation = claimed(client, aws)
        before = made(runtime)
        flaky.down = {"check"}
        refused = new_workspace(client, activation["id"])
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "billing_unavailable"
        assert made(runtime) == before
        flaky.down = set()
        created = new_workspace(client, activation["id"])
        assert created.status_code == 201, created.text
        assert made(runtime) == (before[0] + 1, before[1] + 1)
        assert binding(runtime, created.json()["workspace_id"]).settlement_method == "aws"


@pytest.mark.db
def test_a_lost_binding_call_is_completed_by_the_message_and_repeats_change_nothing(
        flaky_runtime: tuple[Runtime, Flaky], clock: ManualClock) -> None:
    runtime, flaky = flaky_runtime
    aws = with_aws(runtime)
    with TestClient(runtime.app) as client:
        account = register(client, "ada")["billing_account_id"]
        activation = claimed(client, aws)
        flaky.down = {"bind", "deliver"}
        answer = new_workspace(client, activation["id"])
        assert answer.status_code == 201, answer.text
        ws = answer.json()["workspace_id"]
        # Committed on the console as the check answered; not bound yet.
        shown = runtime.console.accounts.workspace(ws)
        assert shown is not None
        assert (shown.plan, shown.billing_account_id, shown.settlement_method) == \
            ("commercial", account, "aws")
        assert binding(runtime, ws) is None

        # The activation expires meanwhile: the workspace was made while it was valid.
        clock.advance(timedelta(hours=2))
        flaky.down = set()
        runtime.console.relay.drain()
        bound = binding(runtime, ws)
        assert (bound.account_id, bound.settlement_method, bound.cloud_account_id) == \
            (account, "aws", activation["cloud_account_id"])
        assert activated_via(runtime, ws) == "aws"

        # The direct call repeated (a retry) answers the same binding and writes nothing.
        again = runtime.billing.activated_workspaces.bind(ActivatedWorkspace(
            activation_id=activation["id"], workspace_id=ws, site="cn1",
            workspace_name="Staging", owner_email="ada@example.com", language="en",
            day=bound.effective_from, created_at=clock.now()))
        assert (again.settlement_method, again.billing_account_id) == ("aws", account)
        with runtime.billing.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(t.bindings)
                                .where(t.bindings.c.workspace_id == ws)).scalar_one()
        assert rows == 1 and binding_messages(runtime, ws) == ["aws"]


def test_a_subscription_ended_since_the_check_binds_by_the_billing_center(
        runtime: Runtime, client: TestClient, aws: FakeMarketplace) -> None:
    account = register(client, "ada")["billing_account_id"]
    activation = claimed(client, aws)
    grant = runtime.billing.activated_workspaces.check(
        ActivationCheck(activation_id=activation["id"], email="ada@example.com"))
    assert (grant.billing_account_id, grant.settlement_method) == (account, "aws")
    with runtime.billing.engine.begin() as conn:
        conn.execute(t.cloud_accounts.update().values(status="cancelled"))
    workspace = ActivatedWorkspace(
        activation_id=activation["id"], workspace_id="ws_late", site="cn1",
        workspace_name="Late", owner_email="ada@example.com", language="en",
        day=runtime.billing.accounts.today(), created_at=runtime.billing.clock.now())
    change = runtime.billing.activated_workspaces.bind(workspace)
    assert (change.billing_account_id, change.settlement_method) == (account, "billing_center")
    assert binding(runtime, "ws_late").cloud_account_id is None
    assert activated_via(runtime, "ws_late") is None
    refused = client.post("/console/v1/workspaces", headers=console_login(client, "ada"),
                          json={"name": "Another", "activation_id": activation["id"]})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "subscription_ended"


def test_the_console_reaches_the_check_and_the_binding_over_http(
        runtime: Runtime, client: TestClient, aws: FakeMarketplace) -> None:
    account = register(client, "ada")["billing_account_id"]
    over_http = HttpBillingCenter(client, ADMIN)  # type: ignore[arg-type]
    open_one = activate(client, aws, "tok-1")
    with pytest.raises(PeerRefused) as refused:
        over_http.check_activation(ActivationCheck(activation_id=open_one["id"], email="ada@example.com"))
    assert refused.value.code == "activation_not_claimed"
    activation = claimed(client, aws, "tok-2")
    grant = over_http.check_activation(ActivationCheck(activation_id=activation["id"],
                                                       email="ada@example.com"))
    assert (grant.billing_account_id, grant.settlement_method, grant.cloud_account_id) == \
        (account, "aws", activation["cloud_account_id"])
    workspace = ActivatedWorkspace(
        activation_id=activation["id"], workspace_id="ws_http", site="cn1",
        workspace_name="Over HTTP", owner_email="ada@example.com", language="en",
        day=runtime.billing.accounts.today(), created_at=runtime.billing.clock.now())
    change = over_http.bind_activated_workspace(workspace)
    assert (change.billing_account_id, change.settlement_method) == (account, "aws")
    assert over_http.bind_activated_workspace(workspace) == change
    assert binding(runtime, "ws_http").cloud_account_id == activation["cloud_account_id"]
    without_token = client.post("/billing/v1/internal/activated-workspaces/check",
                                json={"activation_id": activation["id"]})
    assert without_token.status_code == 401
