"""Subscriptions the vendor pushes to us (Alibaba SPI, Huawei activities, Azure webhook),
through the vendor-neutral core: a buyer announced by the vendor, repeated
announcements, notifications applied once, suspension and reinstatement, Huawei's
cancellation (locked, then the billing center) and plan changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.domain.marketplace import Buyer, Notification, NotificationAction
from accrual.billing.mail_texts import render
from accrual.billing.services.marketplace_lifecycle import NotificationOutcome
from accrual.clock import ManualClock
from tests.helpers import register
from tests.integration.test_marketplace_activation import (
    FakeMarketplace,
    binding,
    cloud,
    count,
    lock_messages,
)

UID = "1234567890"


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(runtime.app) as test_client:
        yield test_client


@pytest.fixture
def huawei(runtime: Runtime) -> FakeMarketplace:
    fake = FakeMarketplace(vendor="huawei")
    runtime.billing.marketplaces.by_vendor[fake.vendor] = fake
    return fake


def buyer(instance: str, vendor: str = "huawei", account: str = UID) -> Buyer:
    return Buyer(vendor=vendor, account_id=account, product_code="prod-1",
                 license_ref=instance)


def note(runtime: Runtime, message_id: str, action: NotificationAction, instance: str, *,
         vendor: str = "huawei", customer: str = UID, product_code: str = "") -> Notification:
    return Notification(message_id=message_id, vendor=vendor, action=action,
                        customer=customer, product_code=product_code,
                        sent_at=runtime.billing.clock.now(), license_ref=instance)


def apply(runtime: Runtime, *args: Any, **kwargs: Any) -> NotificationOutcome:
    return runtime.billing.lifecycle.apply(note(runtime, *args, **kwargs))


def mails(runtime: Runtime, template: str) -> list[dict[str, Any]]:
    o = t.mail_outbox
    with runtime.billing.engine.connect() as conn:
        rows = conn.execute(select(o.c.values_json).where(o.c.template == template)
                            .order_by(o.c.id)).scalars().all()
    return [json.loads(row) for row in rows]


def registered(runtime: Runtime, client: TestClient, instance: str,
               name: str = "ada") -> tuple[str, str, str]:
    activation = runtime.billing.activations.announce(buyer(instance))
    reg = register(client, name, activation_id=activation.id)
    return reg["workspace_id"], reg["billing_account_id"], activation.cloud_account_id


def test_an_announced_buyer_is_one_cloud_account_per_instance(
        runtime: Runtime, clock: ManualClock, huawei: FakeMarketplace) -> None:
    activations = runtime.billing.activations
    first = activations.announce(buyer("inst-1"))
    assert (first.vendor, first.buyer_account_id, first.state) == ("huawei", UID, "open")
    # The vendor retries its call: the same cloud account and the same open activation.
    again = activations.announce(buyer("inst-1"))
    assert (again.id, again.cloud_account_id) == (first.id, first.cloud_account_id)
    # Another purchase of the same buyer is a cloud account of its own.
    other = activations.announce(buyer("inst-2"))
    assert other.cloud_account_id != first.cloud_account_id
    assert cloud(runtime, other.cloud_account_id).license_ref == "inst-2"
    # Once the activation expired, a retry makes a fresh one for the same cloud account.
    clock.set(clock.now() + timedelta(hours=1, seconds=1))
    later = activations.announce(buyer("inst-1"))
    assert later.id != first.id and later.cloud_account_id == first.cloud_account_id
    assert count(runtime, t.cloud_accounts) == 2


def test_a_repeated_notification_is_a_duplicate_and_changes_nothing(
        runtime: Runtime, client: TestClient, huawei: FakeMarketplace) -> None:
    ws, _, cloud_id = registered(runtime, client, "inst-1")
    first = apply(runtime, "huawei:freeze:inst-1:1", NotificationAction.SUSPEND, "inst-1")
    assert (first.outcome, first.status, first.locked) == ("applied", "suspended", (ws,))
    again = apply(runtime, "huawei:freeze:inst-1:1", NotificationAction.SUSPEND, "inst-1")
    assert again.outcome == "duplicate"
    assert len(lock_messages(runtime, ws)) == 1 and count(runtime, t.cloud_locks) == 1
    assert cloud(runtime, cloud_id).status == "suspended"


def test_suspension_locks_and_reinstatement_unlocks(
        runtime: Runtime, client: TestClient, huawei: FakeMarketplace) -> None:
    ws, _, cloud_id = registered(runtime, client, "inst-1")
    # A renewal of a subscription in force changes nothing.
    renewed = apply(runtime, "m-renew", NotificationAction.RENEW, "inst-1")
    assert (renewed.outcome, renewed.status) == ("unchanged", "active")
    suspended = apply(runtime, "m-freeze", NotificationAction.SUSPEND, "inst-1")
    assert suspended.locked == (ws,)
    assert lock_messages(runtime, ws)[-1][1:] == ("locked", "marketplace")
    assert [m["workspace_name"] for m in mails(runtime, "cloud_suspended")] == ["ada's team"]
    shown = render("cloud_suspended", "en", "ada@example.com", **mails(runtime, "cloud_suspended")[0])
    assert "suspended" in shown.subject and "renewed or reinstated" in shown.body
    # Suspended, the subscription takes no usage: the reporter cuts nothing for it.
    assert cloud(runtime, cloud_id).status == "suspended"
    back = apply(runtime, "m-unfreeze", NotificationAction.REINSTATE, "inst-1")
    assert (back.outcome, back.status, back.unlocked) == ("applied", "active", (ws,))
    assert lock_messages(runtime, ws)[-1][1] == "clear"
    unlocked = mails(runtime, "cloud_unlocked")
    assert unlocked and unlocked[0]["route"] == "reinstated"
    assert "back in force" in render("cloud_unlocked", "en", "x@example.com", **unlocked[0]).body
    assert binding(runtime, ws, tomorrow=True).cloud_account_id == cloud_id


def test_a_renewal_brings_a_suspended_subscription_back(
        runtime: Runtime, client: TestClient, huawei: FakeMarketplace) -> None:
    ws, _, _ = registered(runtime, client, "inst-1")
    apply(runtime, "m-1", NotificationAction.SUSPEND, "inst-1")
    renewed = apply(runtime, "m-2", NotificationAction.RENEW, "inst-1")
    assert (renewed.status, renewed.unlocked) == ("active", (ws,))


def test_a_huawei_release_locks_and_moves_to_the_billing_center(
        runtime: Runtime, client: TestClient, huawei: FakeMarketplace) -> None:
    ws, _, cloud_id = registered(runtime, client, "inst-1")
    released = apply(runtime, "m-release", NotificationAction.UNSUBSCRIBE_SUCCESS, "inst-1")
    assert (released.status, released.locked, released.switched) == ("cancelled", (ws,), (ws,))
    assert binding(runtime, ws).settlement_method == "huawei"  # today's stays
    tomorrow = binding(runtime, ws, tomorrow=True)
    assert (tomorrow.settlement_method, tomorrow.cloud_account_id) == ("billing_center", None)
    assert lock_messages(runtime, ws)[-1][1] == "locked"
    sent = mails(runtime, "cloud_locked")
    assert sent[0]["then_billing_center"] is True
    body = render("cloud_locked", "en", "ada@example.com", **sent[0]).body
    assert "billing center account ada" in body
    assert cloud(runtime, cloud_id).status == "cancelled"


def test_calls_name_the_purchase_by_its_instance(
        runtime: Runtime, client: TestClient, huawei: FakeMarketplace) -> None:
    ws1, _, first = registered(runtime, client, "inst-1")
    second = runtime.billing.activations.announce(buyer("inst-2")).cloud_account_id
    # Alibaba's and Huawei's later calls carry the instance, often nothing else.
    done = apply(runtime, "m-1", NotificationAction.SUSPEND, "inst-2", customer="inst-2")
    assert done.cloud_account_id == second
    assert cloud(runtime, first).status == "active" and done.locked == ()
    unknown = apply(runtime, "m-2", NotificationAction.SUSPEND, "inst-9")
    assert unknown.outcome == "unknown_customer"
    assert binding(runtime, ws1, tomorrow=True).cloud_account_id == first


def test_a_plan_change_is_kept_for_vendors_that_meter_by_plan(
        runtime: Runtime, client: TestClient) -> None:
    aws = FakeMarketplace(vendor="aws")
    runtime.billing.marketplaces.by_vendor["aws"] = aws
    aws.issue("tok-1")
    activation = runtime.billing.activations.fulfil("aws", "tok-1")
    changed = runtime.billing.lifecycle.apply(Notification(
        message_id="op-1", vendor="aws", action=NotificationAction.PLAN_CHANGED,
        customer="cust-123456789012", product_code="prod-1",
        sent_at=runtime.billing.clock.now(), license_ref="plan-gold"))
    assert changed.outcome == "applied"
    assert cloud(runtime, activation.cloud_account_id).license_ref == "plan-gold"
    # An instance vendor's plan change keeps the instance as its reference.
    huawei = FakeMarketplace(vendor="huawei")
    runtime.billing.marketplaces.by_vendor["huawei"] = huawei
    announced = runtime.billing.activations.announce(buyer("inst-1"))
    same = apply(runtime, "m-up", NotificationAction.PLAN_CHANGED, "inst-1")
    assert same.outcome == "unchanged"
    assert cloud(runtime, announced.cloud_account_id).license_ref == "inst-1"


def test_a_notification_of_an_unconfigured_vendor_or_malformed_is_refused(
        runtime: Runtime, huawei: FakeMarketplace) -> None:
    from accrual.contract.errors import Forbidden
    with pytest.raises(Forbidden):
        apply(runtime, "m-1", NotificationAction.SUSPEND, "inst-1", vendor="aliyun")
    with pytest.raises(Forbidden):
        apply(runtime, "x" * 129, NotificationAction.SUSPEND, "inst-1")
    assert count(runtime, t.marketplace_notifications) == 0


def test_a_protocol_message_the_adapter_answered_is_acknowledged_and_stores_nothing(
        runtime: Runtime, client: TestClient) -> None:
    from accrual.billing.domain.marketplace import Acknowledged

    class Confirming(FakeMarketplace):
        def verify_notification(self, headers: Any, body: bytes, now: Any) -> Notification:
            raise Acknowledged("subscription_confirmed", "subscribed", message_id="m-confirm")

    runtime.billing.marketplaces.by_vendor["aws"] = Confirming()
    answer = client.post("/billing/v1/marketplaces/aws/notifications", content=b"{}")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["outcome"], answer.json()["action"]) == \
        ("acknowledged", "subscription_confirmed")
    assert count(runtime, t.marketplace_notifications) == 0


def test_deliveries_of_one_purchase_at_once_make_one_cloud_account(
        runtime: Runtime, huawei: FakeMarketplace) -> None:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: runtime.billing.activations.announce(buyer("inst-1")),
                             range(8)))
    assert len({a.cloud_account_id for a in made}) == 1
    assert count(runtime, t.cloud_accounts) == 1

