"""Marketplace activation and the subscription's life, against a fake vendor: the buyer's
arrival, registering or signing in with it, what each channel may settle by, the vendor's
notifications (cancellation locks) and the three ways to unlock."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.domain.marketplace import (
    Buyer,
    Entitlement,
    Notification,
    NotificationAction,
    NotificationRejected,
    ReportLimits,
    ReportResult,
    TokenRejected,
    Transient,
)
from accrual.billing.mail_texts import render
from accrual.billing.services import cloud_locks
from accrual.clock import ManualClock
from accrual.contract.errors import Conflict
from accrual.contract.messages import WORKSPACE_LOCK, Envelope
from tests.helpers import OPERATOR, billing_login, register
from tests.integration.test_settlement_batches import tenant

ACCOUNT = "123456789012"
SECRET = "vendor-signature"


@dataclass
class FakeMarketplace:
    """The vendor as the billing center sees it through the Marketplace seam: single-use
    tokens, entitlements per buyer account, notifications signed with SECRET."""

    vendor: str = "aws"
    limits: ReportLimits = field(default_factory=lambda: ReportLimits(
        25, 1_000_000, timedelta(hours=1), timedelta(hours=6), 0, 2**31 - 1))
    dimension: str = "usage"
    unit_minor: int = 1
    tokens: dict[str, str] = field(default_factory=dict)  # token → buyer account
    used: set[str] = field(default_factory=set)
    inactive: set[str] = field(default_factory=set)  # buyer accounts not entitled
    down: bool = False

    def issue(self, token: str, account: str = ACCOUNT) -> str:
        self.tokens[token] = account
        return token

    def resolve_buyer(self, token: str) -> Buyer:
        if self.down:
            raise Transient("throttled", "slow down", throttled=True)
        if token not in self.tokens:
            raise TokenRejected("invalid_token", "unknown registration token")
        if token in self.used:
            raise TokenRejected("expired_token", "the token was used already")
        self.used.add(token)
        account = self.tokens[token]
        return Buyer(self.vendor, account, "prod-1", customer_id=f"cust-{account}",
                     license_ref=f"arn:aws:license-manager::{account}:license/l-1")

    def entitlement(self, buyer: Buyer) -> Entitlement:
        return Entitlement(active=buyer.account_id not in self.inactive, expires_at=None)

    def report(self, reports: Any) -> list[ReportResult]:
        raise AssertionError("not used here")

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Notification:
        if headers.get("x-signature") != SECRET:
            raise NotificationRejected("invalid_signature", "the signature does not verify")
        data = json.loads(body)
        sent_at = datetime.fromisoformat(data["sent_at"])
        if now - sent_at > timedelta(hours=1):
            raise NotificationRejected("stale_notification", "sent more than an hour ago")
        return Notification(message_id=data["id"], vendor=self.vendor,
                            action=NotificationAction(data["action"]),
                            customer=data["customer"], product_code="prod-1", sent_at=sent_at)


@pytest.fixture
def aws(runtime: Runtime) -> FakeMarketplace:
    fake = FakeMarketplace()
    runtime.billing.marketplaces.by_vendor[fake.vendor] = fake
    return fake


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(runtime.app) as test_client:
        yield test_client


def fulfil(client: TestClient, token: str, vendor: str = "aws", **headers: str) -> Any:
    return client.post(f"/billing/v1/marketplaces/{vendor}/fulfillment",
                       content=f"x-amzn-marketplace-token={token}",
                       headers={"content-type": "application/x-www-form-urlencoded", **headers},
                       follow_redirects=False)


def activate(client: TestClient, aws: FakeMarketplace, token: str,
             account: str = ACCOUNT) -> dict[str, Any]:
    aws.issue(token, account)
    answer = fulfil(client, token, accept="application/json")
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def notify(client: TestClient, clock: ManualClock, message_id: str, action: str,
           customer: str = f"cust-{ACCOUNT}", *, signature: str = SECRET,
           sent_at: datetime | None = None, vendor: str = "aws") -> Any:
    body = {"id": message_id, "action": action, "customer": customer,
            "sent_at": (sent_at or clock.now()).isoformat()}
    return client.post(f"/billing/v1/marketplaces/{vendor}/notifications", content=json.dumps(body),
                       headers={"content-type": "application/json", "x-signature": signature})


def count(runtime: Runtime, table: Any) -> int:
    with runtime.billing.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def binding(runtime: Runtime, workspace_id: str, tomorrow: bool = False) -> Any:
    accounts = runtime.billing.accounts
    day = accounts.today() + timedelta(days=int(tomorrow))
    with runtime.billing.engine.connect() as conn:
        return accounts.binding_in_force(conn, workspace_id, day)


def cloud(runtime: Runtime, cloud_account_id: str) -> Any:
    c = t.cloud_accounts
    with runtime.billing.engine.connect() as conn:
        return conn.execute(select(c).where(c.c.id == cloud_account_id)).one()


def lock_messages(runtime: Runtime, workspace_id: str) -> list[tuple[int, str, str]]:
    with runtime.billing.engine.connect() as conn:
        bodies = conn.execute(select(t.outbox.c.body).where(
            t.outbox.c.type == WORKSPACE_LOCK).order_by(t.outbox.c.seq)).scalars().all()
    found = [Envelope.model_validate_json(b) for b in bodies]
    return [(e.aggregate_version or 0, e.payload["state"], e.payload["reason"])
            for e in found if e.aggregate_id == workspace_id]


def registered_through(client: TestClient, aws: FakeMarketplace, name: str,
                       token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    activation = activate(client, aws, token)
    return activation, register(client, name, activation_id=activation["id"])


# -- the buyer's arrival ----------------------------------------------------------------


def test_fulfilment_redirects_to_the_activation(runtime: Runtime, client: TestClient,
                                                aws: FakeMarketplace) -> None:
    aws.issue("tok-1")
    answer = fulfil(client, "tok-1")
    assert answer.status_code == 303
    page = client.get(answer.headers["location"])
    assert page.status_code == 200, page.text
    shown = page.json()
    assert shown["id"].startswith("act_") and shown["vendor"] == "aws"
    assert shown["buyer_account_id"] == ACCOUNT and shown["state"] == "open"
    assert shown["linked"] is False
    stored = cloud(runtime, shown["cloud_account_id"])
    assert (stored.status, stored.account_id, stored.product_code, stored.customer_ref) == \
        ("active", None, "prod-1", f"cust-{ACCOUNT}")
    assert stored.license_ref.startswith("arn:aws:")
    # The same buyer again: the same cloud account, a new activation.
    again = activate(client, aws, "tok-2")
    assert again["cloud_account_id"] == shown["cloud_account_id"] and again["id"] != shown["id"]
    assert count(runtime, t.cloud_accounts) == 1


def test_refused_tokens_store_nothing(runtime: Runtime, client: TestClient,
                                      aws: FakeMarketplace) -> None:
    activate(client, aws, "tok-1")
    before = (count(runtime, t.cloud_accounts), count(runtime, t.marketplace_activations))
    replayed = fulfil(client, "tok-1")
    assert replayed.status_code == 422 and replayed.json()["error"]["code"] == "expired_token"
    unknown = fulfil(client, "forged")
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "invalid_token"
    aws.down = True
    aws.issue("tok-2")
    down = fulfil(client, "tok-2")
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "marketplace_unavailable"
    aws.down = False
    aws.inactive.add("999")
    aws.issue("tok-3", "999")
    inactive = fulfil(client, "tok-3")
    assert inactive.status_code == 409
    assert inactive.json()["error"]["code"] == "subscription_inactive"
    no_form = client.post("/billing/v1/marketplaces/aws/fulfillment", json={"x": 1})
    assert no_form.status_code == 415
    assert (count(runtime, t.cloud_accounts), count(runtime, t.marketplace_activations)) \
        == before
    assert client.get("/billing/v1/marketplaces/activations/act_nope").status_code == 404


# -- registering with an activation -------------------------------------------------------


def test_registration_binds_the_first_workspace_through_the_activation(
        runtime: Runtime, client: TestClient, aws: FakeMarketplace) -> None:
    activation, reg = registered_through(client, aws, "ada", "tok-1")
    ws, account = reg["workspace_id"], reg["billing_account_id"]
    today = binding(runtime, ws)
    assert (today.account_id, today.settlement_method, today.cloud_account_id) == \
        (account, "aws", activation["cloud_account_id"])
    assert cloud(runtime, activation["cloud_account_id"]).account_id == account
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(t.workspaces.c.activated_via).where(
            t.workspaces.c.workspace_id == ws)).scalar() == "aws"
    shown = client.get(f"/billing/v1/marketplaces/activations/{activation['id']}").json()
    assert (shown["state"], shown["account_id"], shown["linked"]) == ("completed", account, True)
    runtime.billing_relay_drain()
    assert runtime.console.accounts.workspace(ws).settlement_method == "aws"  # type: ignore[union-attr]

    # A used activation refuses the next registration before anything is created.
    used = client.post("/console/v1/registrations", json={
        "email": "bob@example.com", "password": "correct horse battery", "username": "bob",
        "workspace_name": "Bob", "activation_id": activation["id"]})
    assert used.status_code == 409 and used.json()["error"]["code"] == "activation_used"
    # So does a new activation of a subscription another account holds.
    taken = activate(client, aws, "tok-2")
    refused = client.post("/console/v1/registrations", json={
        "email": "bob@example.com", "password": "correct horse battery", "username": "bob",
        "workspace_name": "Bob", "activation_id": taken["id"]})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "cloud_account_taken"
    assert runtime.billing.accounts.find_by_username("bob") is None
    assert runtime.console.accounts.count_accounts() == 1


def test_an_expired_or_unknown_activation_refuses_the_registration(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace) -> None:
    activation = activate(client, aws, "tok-1")
    clock.set(clock.now() + timedelta(hours=1, seconds=1))
    body = {"email": "ada@example.com", "password": "correct horse battery",
            "username": "ada", "workspace_name": "Ada", "activation_id": activation["id"]}
    expired = client.post("/console/v1/registrations", json=body)
    assert expired.status_code == 409 and expired.json()["error"]["code"] == "activation_expired"
    unknown = client.post("/console/v1/registrations", json={**body, "activation_id": "act_x"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "activation_not_found"
    assert count(runtime, t.accounts) == 0 and runtime.console.accounts.count_accounts() == 0


def test_a_failing_console_step_leaves_no_cloud_link(
        runtime: Runtime, client: TestClient, aws: FakeMarketplace,
        monkeypatch: pytest.MonkeyPatch) -> None:
    activation = activate(client, aws, "tok-1")
    accounts = runtime.console.accounts

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the console's database went away")

    monkeypatch.setattr(accounts, "_insert_workspace", broken)
    with pytest.raises(RuntimeError):
        accounts.register("ada@example.com", "correct horse battery", "ada", "Ada", "en",
                          activation["id"])
    assert cloud(runtime, activation["cloud_account_id"]).account_id is None
    assert count(runtime, t.bindings) == 0 and count(runtime, t.accounts) == 0
    assert client.get(f"/billing/v1/marketplaces/activations/{activation['id']}") \
        .json()["state"] == "open"
    monkeypatch.undo()
    # The buyer retries: the activation was given back.
    reg = accounts.register("ada@example.com", "correct horse battery", "ada", "Ada", "en",
                            activation["id"])
    assert binding(runtime, reg.workspace_id).settlement_method == "aws"


# -- what each channel may settle by ------------------------------------------------------


def test_a_marketplace_workspace_settles_only_through_its_vendor(
        runtime: Runtime, client: TestClient, aws: FakeMarketplace) -> None:
    _, reg = registered_through(client, aws, "ada", "tok-1")
    ws, account = reg["workspace_id"], reg["billing_account_id"]
    methods = runtime.billing.methods
    methods.link_cloud_account(account, "huawei", "hw-1")
    for method in ("billing_center", "huawei"):
        with pytest.raises(Conflict) as refused:
            methods.change(account, ws, method)
        assert refused.value.code == "channel_restricted"
    assert count(runtime, t.settlement_changes) == 0


def test_a_website_workspace_may_take_any_method(runtime: Runtime, clock: ManualClock,
                                                 client: TestClient,
                                                 aws: FakeMarketplace) -> None:
    ws, account = tenant(runtime, clock, "ada")
    methods = runtime.billing.methods
    methods.link_cloud_account(account, "huawei", "hw-1")
    assert methods.change(account, ws, "huawei").bound.settlement_method == "huawei"
    assert binding(runtime, ws, tomorrow=True).cloud_account_id is not None
    clock.set(clock.now() + timedelta(days=6))  # December
    assert methods.change(account, ws, "billing_center").bound.settlement_method \
        == "billing_center"


def test_several_cloud_accounts_of_a_vendor_need_a_choice(
        runtime: Runtime, clock: ManualClock, aws: FakeMarketplace) -> None:
    ws, account = tenant(runtime, clock, "ada")
    methods = runtime.billing.methods
    methods.link_cloud_account(account, "huawei", "hw-1")
    second, _ = methods.link_cloud_account(account, "huawei", "hw-2")
    with pytest.raises(Conflict) as refused:
        methods.change(account, ws, "huawei")
    assert refused.value.code == "cloud_account_ambiguous"
    methods.change(account, ws, "huawei", second.id)
    assert binding(runtime, ws, tomorrow=True).cloud_account_id == second.id


# -- signing in to an existing account ------------------------------------------------------


def test_an_existing_account_claims_and_binds_workspaces(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace) -> None:
    ws, account = tenant(runtime, clock, "ada")
    activation = activate(client, aws, "tok-1")
    base = f"/billing/v1/marketplaces/activations/{activation['id']}"
    session = billing_login(client, "ada")
    early = client.post(f"{base}/workspaces", headers=session, json={"workspace_ids": [ws]})
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "activation_not_claimed"
    assert client.post(f"{base}/claim").status_code == 401
    claimed = client.post(f"{base}/claim", headers=session)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["account_id"] == account and claimed.json()["state"] == "completed"
    assert client.post(f"{base}/claim", headers=session).status_code == 200  # repeatable
    bound = client.post(f"{base}/workspaces", headers=session, json={"workspace_ids": [ws]})
    assert bound.status_code == 200, bound.text
    assert bound.json()["workspaces"][0]["settlement_method"] == "aws"
    assert binding(runtime, ws).settlement_method == "billing_center"  # today as it began
    tomorrow = binding(runtime, ws, tomorrow=True)
    assert (tomorrow.settlement_method, tomorrow.cloud_account_id) == \
        ("aws", activation["cloud_account_id"])
    again = client.post(f"{base}/workspaces", headers=session, json={"workspace_ids": [ws]})
    assert again.json()["workspaces"] == [{"workspace_id": ws, "changed": False}]
    # A website workspace bound this way keeps its freedom of method.
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(t.workspaces.c.activated_via).where(
            t.workspaces.c.workspace_id == ws)).scalar() is None

    # Another account cannot take the same subscription.
    tenant(runtime, clock, "bob")
    second = activate(client, aws, "tok-2")
    taken = client.post(f"/billing/v1/marketplaces/activations/{second['id']}/claim",
                        headers=billing_login(client, "bob"))
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "cloud_account_taken"
    stolen = client.post(f"{base}/workspaces", headers=billing_login(client, "bob"),
                         json={"workspace_ids": [ws]})
    assert stolen.status_code == 409 and stolen.json()["error"]["code"] == "activation_used"


# -- the vendor's notifications ---------------------------------------------------------------


def test_unsubscription_locks_the_workspace_and_tells_its_console(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace) -> None:
    activation, reg = registered_through(client, aws, "ada", "tok-1")
    ws, ca = reg["workspace_id"], activation["cloud_account_id"]
    pending = notify(client, clock, "m-1", "unsubscribe-pending")
    assert pending.status_code == 200, pending.text
    assert pending.json()["status"] == "unsubscribing" and pending.json()["locked"] == []
    stored = cloud(runtime, ca)
    assert stored.status == "unsubscribing" and stored.unsubscribing_at == clock.now()
    clock.set(clock.now() + timedelta(minutes=50))
    done = notify(client, clock, "m-2", "unsubscribe-success")
    assert done.json()["outcome"] == "applied" and done.json()["locked"] == [ws]
    assert cloud(runtime, ca).status == "cancelled"
    assert lock_messages(runtime, ws)[-1][1:] == ("locked", "marketplace")
    runtime.billing_relay_drain()
    shown = runtime.console.accounts.workspace(ws)
    assert shown is not None and shown.status == "locked"
    # The binding is left as it is: the wallet settles meanwhile (see the lifecycle).
    assert binding(runtime, ws, tomorrow=True).cloud_account_id == ca
    with runtime.billing.engine.connect() as conn:
        mails = conn.execute(select(t.mail_outbox.c.template, t.mail_outbox.c.recipient)).all()
    assert ("cloud_locked", "ada@example.com") in mails


def test_forged_stale_and_replayed_notifications_change_nothing(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace,
        caplog: pytest.LogCaptureFixture) -> None:
    activation, _ = registered_through(client, aws, "ada", "tok-1")
    ca = activation["cloud_account_id"]
    forged = notify(client, clock, "m-1", "unsubscribe-success", signature="guess")
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "invalid_signature"
    assert "rejected" in caplog.text
    stale = notify(client, clock, "m-2", "unsubscribe-success",
                   sent_at=clock.now() - timedelta(hours=2))
    assert stale.status_code == 403
    assert stale.json()["error"]["code"] == "stale_notification"
    assert cloud(runtime, ca).status == "active"
    assert count(runtime, t.marketplace_notifications) == 0
    first = notify(client, clock, "m-3", "unsubscribe-pending")
    assert first.json()["outcome"] == "applied"
    notify(client, clock, "m-4", "subscribe-success")  # late: an unsubscribing one stays
    replay = notify(client, clock, "m-3", "unsubscribe-pending")
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "notification_replayed"
    assert count(runtime, t.marketplace_notifications) == 2
    unknown = notify(client, clock, "m-5", "unsubscribe-success", customer="nobody")
    assert unknown.json()["outcome"] == "unknown_customer"
    assert count(runtime, t.cloud_locks) == 0


# -- unlocking ---------------------------------------------------------------------------------


def cancelled(client: TestClient, clock: ManualClock, aws: FakeMarketplace,
              runtime: Runtime) -> tuple[str, str, str]:
    """A workspace registered through the marketplace whose subscription was cancelled:
    (workspace, billing account, its old cloud account)."""
    activation, reg = registered_through(client, aws, "ada", "tok-1")
    assert notify(client, clock, "m-1", "unsubscribe-success").json()["locked"] \
        == [reg["workspace_id"]]
    return reg["workspace_id"], reg["billing_account_id"], activation["cloud_account_id"]


def unlock_mails(runtime: Runtime) -> list[tuple[str, str, dict[str, Any]]]:
    """The queued ``cloud_unlocked`` mails: (recipient, language, values)."""
    m = t.mail_outbox
    with runtime.billing.engine.connect() as conn:
        rows = conn.execute(select(m.c.recipient, m.c.language, m.c.values_json)
                            .where(m.c.template == "cloud_unlocked").order_by(m.c.id)).all()
    return [(r.recipient, r.language, json.loads(r.values_json)) for r in rows]


def unlocked(runtime: Runtime, ws: str, reason: str) -> None:
    with runtime.billing.engine.connect() as conn:
        lock = conn.execute(select(t.cloud_locks).where(t.cloud_locks.c.workspace_id == ws)).one()
    assert lock.unlocked_at is not None and lock.unlock_reason == reason
    assert lock_messages(runtime, ws)[-1][1] == "clear"
    # Its owner is mailed once (the billing account's address is the same here).
    [(recipient, language, values)] = unlock_mails(runtime)
    assert (recipient, language) == ("ada@example.com", "en")
    assert (values["route"], values["vendor"], values["cloud_account"],
            values["still_locked"]) == (reason, "aws", ACCOUNT, False)
    runtime.billing_relay_drain()
    shown = runtime.console.accounts.workspace(ws)
    assert shown is not None and shown.status == "active"


def test_switching_to_the_billing_center_unlocks(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace) -> None:
    ws, account, _ = cancelled(client, clock, aws, runtime)
    methods = runtime.billing.methods
    methods.link_cloud_account(account, "huawei", "hw-1")
    with pytest.raises(Conflict) as other_vendor:
        methods.change(account, ws, "huawei")  # still only its vendor, or the wallet
    assert other_vendor.value.code == "channel_restricted"
    change = methods.change(account, ws, "billing_center")
    assert change.unlocked and change.bound.settlement_method == "billing_center"
    unlocked(runtime, ws, "billing_center")


def test_subscribing_again_unlocks(runtime: Runtime, client: TestClient, clock: ManualClock,
                                   aws: FakeMarketplace) -> None:
    ws, _, old = cancelled(client, clock, aws, runtime)
    again = activate(client, aws, "tok-2")
    assert again["cloud_account_id"] != old  # the ended subscription is not revived
    session = billing_login(client, "ada")
    base = f"/billing/v1/marketplaces/activations/{again['id']}"
    assert client.post(f"{base}/claim", headers=session).status_code == 200
    bound = client.post(f"{base}/workspaces", headers=session, json={"workspace_ids": [ws]})
    assert bound.status_code == 200, bound.text
    assert bound.json()["workspaces"][0]["unlocked"] is True
    assert binding(runtime, ws, tomorrow=True).cloud_account_id == again["cloud_account_id"]
    unlocked(runtime, ws, "resubscribed")


def test_another_cloud_account_unlocks_a_website_workspace(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace) -> None:
    ws, account = tenant(runtime, clock, "ada")
    activation = activate(client, aws, "tok-1")
    runtime.billing.activations.claim(activation["id"], account)
    runtime.billing.activations.bind_workspaces(activation["id"], account, [ws])
    assert notify(client, clock, "m-1", "unsubscribe-success").json()["locked"] == [ws]
    runtime.billing.methods.link_cloud_account(account, "huawei", "hw-1")
    change = runtime.billing.methods.change(account, ws, "huawei")  # changed this month too
    assert change.unlocked
    unlocked(runtime, ws, "cloud_account")


def test_operator_link_takes_an_unclaimed_cloud_account(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace) -> None:
    _, account = tenant(runtime, clock, "ada")
    activation = activate(client, aws, "tok-1")
    linked = client.post(f"/billing/v1/admin/accounts/{account}/cloud-accounts",
                         headers=OPERATOR, json={"vendor": "aws", "cloud_account_id": ACCOUNT})
    assert linked.status_code == 201 and linked.json()["id"] == activation["cloud_account_id"]


def test_an_alibaba_cancellation_switches_to_the_billing_center(
        runtime: Runtime, client: TestClient, clock: ManualClock) -> None:
    aliyun = FakeMarketplace(vendor="aliyun")
    runtime.billing.marketplaces.by_vendor["aliyun"] = aliyun
    aliyun.issue("tok-1")
    activation = fulfil(client, "tok-1", "aliyun", accept="application/json").json()
    reg = register(client, "ada", activation_id=activation["id"])
    ws = reg["workspace_id"]
    assert binding(runtime, ws).settlement_method == "aliyun"
    done = notify(client, clock, "m-1", "unsubscribe-success", vendor="aliyun")
    assert done.status_code == 200, done.text
    assert done.json()["switched"] == [ws] and done.json()["locked"] == []
    assert binding(runtime, ws, tomorrow=True).settlement_method == "billing_center"
    assert count(runtime, t.cloud_locks) == 0 and lock_messages(runtime, ws) == []
    with runtime.billing.engine.connect() as conn:
        mails = conn.execute(select(t.mail_outbox.c.template)).scalars().all()
    assert "cloud_switched" in mails


def test_an_unlock_mails_the_owner_and_the_billing_account_in_the_workspace_language(
        runtime: Runtime, client: TestClient, clock: ManualClock, aws: FakeMarketplace) -> None:
    ws, account, _ = cancelled(client, clock, aws, runtime)
    assert unlock_mails(runtime) == []  # the lock mailed, not an unlock
    with runtime.billing.engine.begin() as conn:
        conn.execute(update(t.workspaces).where(t.workspaces.c.workspace_id == ws)
                     .values(language="zh"))
        conn.execute(update(t.accounts).where(t.accounts.c.id == account)
                     .values(email="finance@example.com"))
    assert runtime.billing.methods.change(account, ws, "billing_center").unlocked
    mails = unlock_mails(runtime)
    assert [(to, language) for to, language, _ in mails] == \
        [("ada@example.com", "zh"), ("finance@example.com", "zh")]
    values = mails[0][2]
    assert (values["route"], values["username"], values["still_locked"]) == \
        ("billing_center", "ada", False)
    shown = render("cloud_unlocked", "zh", "ada@example.com", **values)
    assert shown.subject == "工作空间 ada's team 已解锁"
    assert "费用中心账号 ada 结算" in shown.body and ACCOUNT in shown.body
    # One mail per unlock and recipient: nothing is locked now, nothing more is queued.
    with runtime.billing.engine.begin() as conn:
        assert not cloud_locks.unlock(conn, ws, "billing_center", account, clock.now())
    assert len(unlock_mails(runtime)) == 2
    runtime.billing.mails.send_due()
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.mail_outbox).where(
            t.mail_outbox.c.template == "cloud_unlocked",
            t.mail_outbox.c.sent_at.is_(None))).scalar_one() == 0
