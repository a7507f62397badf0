"""Marketplace rules without a database: which methods each channel may settle by, a
subscription's statuses after each notification, what a cancellation does per vendor,
and who may take an activation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from accrual.billing.domain import methods as rules
from accrual.billing.domain import subscriptions as rule
from accrual.billing.domain.marketplace import NotificationAction as A
from accrual.billing.domain.methods import Binding
from accrual.billing.domain.subscriptions import CloudStatus as S
from accrual.billing.domain.subscriptions import OnCancel, Transition
from accrual.contract.errors import Conflict, NotFound

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
MINE = Binding("ba_1", "billing_center")


def test_a_website_workspace_may_take_any_offered_method() -> None:
    assert rules.allowed("CNY", None, False) == ("billing_center", "aws", "aliyun", "huawei")
    assert "azure" in rules.allowed("USD", None, False)


def test_a_vendor_workspace_only_that_vendor_until_released() -> None:
    assert rules.allowed("CNY", "aws", False) == ("aws",)
    assert rules.allowed("CNY", "aws", True) == ("billing_center", "aws")
    for method in ("billing_center", "aliyun"):
        with pytest.raises(Conflict) as refused:
            rules.check_channel(method, "CNY", "aws", False)
        assert refused.value.code == "channel_restricted"
    with pytest.raises(Conflict):
        rules.check_channel("aliyun", "CNY", "aws", True)  # released: the wallet, not another
    rules.check_channel("billing_center", "CNY", "aws", True)
    rules.check_channel("huawei", "CNY", None, False)


def test_picking_a_cloud_account() -> None:
    assert rules.pick_cloud_account("aws", ["ca_1"], None) == "ca_1"
    assert rules.pick_cloud_account("aws", ["ca_1", "ca_2"], "ca_2") == "ca_2"
    with pytest.raises(Conflict) as ambiguous:
        rules.pick_cloud_account("aws", ["ca_1", "ca_2"], None)
    assert ambiguous.value.code == "cloud_account_ambiguous"
    with pytest.raises(Conflict) as none:
        rules.pick_cloud_account("aws", [], None)
    assert none.value.code == "cloud_account_required"
    with pytest.raises(NotFound) as foreign:
        rules.pick_cloud_account("aws", ["ca_1"], "ca_9")
    assert foreign.value.code == "cloud_account_not_found"


def change(method: str, *, upcoming: Binding = MINE, cloud: str | None = None,
           activated_via: str | None = None, released: bool = False, locked: bool = False,
           changed: bool = False) -> None:
    rules.check_change(account_id="ba_1", workspace_id="ws_1", method=method,
                       today=date(2026, 11, 26), current=MINE, upcoming=upcoming,
                       cloud_account_linked=True, changed_this_month=changed,
                       cloud_account_id=cloud, currency="CNY", activated_via=activated_via,
                       released=released, locked_by_cloud=locked)


def test_a_locked_workspace_can_always_change() -> None:
    with pytest.raises(Conflict) as limit:
        change("billing_center", upcoming=Binding("ba_1", "aws", "ca_1"), changed=True)
    assert limit.value.code == "settlement_change_limit"
    change("billing_center", upcoming=Binding("ba_1", "aws", "ca_1"), changed=True,
           activated_via="aws", released=True, locked=True)
    # Another cloud account of the same vendor is a change (re-subscribing).
    change("aws", upcoming=Binding("ba_1", "aws", "ca_1"), cloud="ca_2", locked=True,
           changed=True)
    with pytest.raises(Conflict) as same:
        change("aws", upcoming=Binding("ba_1", "aws", "ca_1"), cloud="ca_1")
    assert same.value.code == "settlement_unchanged"


@pytest.mark.parametrize(("action", "status", "expected"), [
    (A.SUBSCRIBE_SUCCESS, S.PENDING, Transition(S.ACTIVE, False)),
    (A.SUBSCRIBE_SUCCESS, S.ACTIVE, None),
    (A.SUBSCRIBE_SUCCESS, S.CANCELLED, None),  # an ended subscription never comes back
    (A.SUBSCRIBE_FAIL, S.PENDING, Transition(S.FAILED, True)),
    (A.UNSUBSCRIBE_PENDING, S.ACTIVE, Transition(S.UNSUBSCRIBING, False)),
    (A.UNSUBSCRIBE_PENDING, S.UNSUBSCRIBING, None),
    (A.UNSUBSCRIBE_SUCCESS, S.UNSUBSCRIBING, Transition(S.CANCELLED, True)),
    (A.UNSUBSCRIBE_SUCCESS, S.ACTIVE, Transition(S.CANCELLED, True)),  # pending never came
    (A.UNSUBSCRIBE_SUCCESS, S.CANCELLED, None),
    (A.UNSUBSCRIBE_PENDING, S.FAILED, None),
    (A.ENTITLEMENT_UPDATED, S.ACTIVE, None),  # decided by after_entitlement
    (A.SUSPEND, S.ACTIVE, Transition(S.SUSPENDED, False, suspends=True)),
    (A.SUSPEND, S.SUSPENDED, None),
    (A.SUSPEND, S.CANCELLED, None),
    (A.REINSTATE, S.SUSPENDED, Transition(S.ACTIVE, False, resumes=True)),
    (A.REINSTATE, S.ACTIVE, None),
    (A.RENEW, S.SUSPENDED, Transition(S.ACTIVE, False, resumes=True)),
    (A.RENEW, S.ACTIVE, None),
    (A.UNSUBSCRIBE_SUCCESS, S.SUSPENDED, Transition(S.CANCELLED, True)),
    (A.SUBSCRIBE_SUCCESS, S.SUSPENDED, Transition(S.ACTIVE, False, resumes=True)),
    (A.PLAN_CHANGED, S.ACTIVE, None),  # the plan, not the status
])
def test_notifications_move_the_status(action: A, status: S, expected: Transition | None) -> None:
    assert rule.after_notification(action, status) == expected


def test_entitlement_updates() -> None:
    assert rule.after_entitlement(S.ACTIVE, False) == Transition(S.CANCELLED, True)
    assert rule.after_entitlement(S.PENDING, True) == Transition(S.ACTIVE, False)
    assert rule.after_entitlement(S.ACTIVE, True) is None
    assert rule.after_entitlement(S.CANCELLED, False) is None
    assert rule.after_entitlement(S.SUSPENDED, True) == Transition(S.ACTIVE, False, resumes=True)
    assert rule.after_entitlement(S.SUSPENDED, False) == Transition(S.CANCELLED, True)


def test_what_a_cancellation_does_per_vendor() -> None:
    # decisions.md 13: Alibaba switches to the billing center (and mails), the rest lock;
    # Huawei's then settle by the billing center (reference-billing.md §5.4).
    assert rule.on_cancellation("aliyun") is OnCancel.SWITCH_TO_BILLING_CENTER
    assert rule.on_cancellation("huawei") is OnCancel.LOCK_THEN_BILLING_CENTER
    for vendor in ("aws", "azure", "someday"):
        assert rule.on_cancellation(vendor) is OnCancel.LOCK


def test_who_may_take_an_activation() -> None:
    later = NOW + timedelta(hours=1)
    rule.check_activation(expires_at=later, taken_by=None, account_id=None, now=NOW)
    rule.check_activation(expires_at=later, taken_by=None, account_id="ba_1", now=NOW)
    # The account that took it comes back to it even after its hour.
    rule.check_activation(expires_at=NOW, taken_by="ba_1", account_id="ba_1",
                          now=later + timedelta(days=3))
    with pytest.raises(Conflict) as used:
        rule.check_activation(expires_at=later, taken_by="ba_1", account_id="ba_2", now=NOW)
    assert used.value.code == "activation_used"
    with pytest.raises(Conflict) as expired:
        rule.check_activation(expires_at=NOW, taken_by=None, account_id="ba_1", now=NOW)
    assert expired.value.code == "activation_expired"
