"""A marketplace subscription's life (marketplaces.md §1.5–1.6; reference-billing.md §5.4;
decisions.md 13).

A buyer sent by a marketplace becomes a *cloud account* (``cloud_accounts``) and an
*activation* (``marketplace_activations``): a short-lived ticket that a registration or
a signed-in billing account takes. The vendor's notifications then move the cloud
account between the statuses below. When a subscription ends (cancelled, or it never
started), what happens to the workspaces it settled is the vendor's rule
(:func:`on_cancellation`). Pure: the services load, ask here, then write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from accrual.billing.domain.marketplace import NotificationAction
from accrual.contract.errors import Conflict

# How long an activation waits for the buyer to register or sign in.
ACTIVATION_TTL = timedelta(hours=1)


class CloudStatus(StrEnum):
    PENDING = "pending"  # resolved, not yet confirmed by the vendor (unused for AWS)
    ACTIVE = "active"
    UNSUBSCRIBING = "unsubscribing"  # the vendor's final-usage window is open
    # Frozen by the vendor (expired, unpaid): it takes no usage, so nothing is reported
    # and the workspaces it settles are locked until it is reinstated or renewed.
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    FAILED = "failed"  # the subscription never started (subscribe-fail)


# The vendors that name each purchase by an instance of their own: a buyer's account can
# hold several, so a cloud account is the account *and* the instance (license_ref).
INSTANCE_VENDORS = frozenset({"aliyun", "huawei"})

# A subscription that has ended: it settles nothing more, and it releases the
# workspaces activated from its vendor (reference-billing.md §1.6 rule 7).
ENDED = frozenset({CloudStatus.CANCELLED, CloudStatus.FAILED})


def ended(status: str) -> bool:
    return status in ENDED


class OnCancel(StrEnum):
    """What a cancellation does to the workspaces the cloud account settled."""

    LOCK = "lock"  # locked at once; unlocked by re-subscribing or another method
    SWITCH_TO_BILLING_CENTER = "switch_to_billing_center"  # no lock; the owner is mailed
    # Locked, and the cloud link removed: the binding moves to the billing center, so
    # once unlocked the workspace settles there (reference-billing.md §5.4, Huawei).
    LOCK_THEN_BILLING_CENTER = "lock_then_billing_center"


# decisions.md 13: Alibaba Cloud switches to the billing center and mails the owner
# (its vendor page's own rule); AWS and Huawei lock, Huawei then defaulting to the
# billing center once unlocked; Azure behaves like AWS.
ON_CANCEL: dict[str, OnCancel] = {
    "aws": OnCancel.LOCK,
    "huawei": OnCancel.LOCK_THEN_BILLING_CENTER,
    "azure": OnCancel.LOCK,
    "aliyun": OnCancel.SWITCH_TO_BILLING_CENTER,
}


def on_cancellation(vendor: str) -> OnCancel:
    """The vendor's rule; a vendor not listed locks (the safe default)."""
    return ON_CANCEL.get(vendor, OnCancel.LOCK)


@dataclass(frozen=True)
class Transition:
    status: CloudStatus
    ends: bool  # the subscription ended with this: apply :func:`on_cancellation`
    suspends: bool = False  # lock the workspaces it settles (until it resumes)
    resumes: bool = False  # lift the locks its suspension set


def after_notification(action: NotificationAction, status: str) -> Transition | None:
    """The cloud account's new status after ``action``; None when it changes nothing
    (a late or repeated action: an ended subscription never comes back, a new
    activation makes a new cloud account). ``entitlement-updated`` is decided by
    :func:`after_entitlement` once the entitlement is read again; ``plan-changed``
    changes the plan, not the status."""
    if ended(status):
        return None
    suspended = status == CloudStatus.SUSPENDED
    if action is NotificationAction.SUBSCRIBE_SUCCESS:
        return None if status == CloudStatus.ACTIVE else \
            Transition(CloudStatus.ACTIVE, False, resumes=suspended)
    if action is NotificationAction.SUBSCRIBE_FAIL:
        return Transition(CloudStatus.FAILED, True)
    if action is NotificationAction.UNSUBSCRIBE_PENDING:
        return None if status == CloudStatus.UNSUBSCRIBING \
            else Transition(CloudStatus.UNSUBSCRIBING, False, resumes=suspended)
    if action is NotificationAction.UNSUBSCRIBE_SUCCESS:
        return Transition(CloudStatus.CANCELLED, True)
    if action is NotificationAction.SUSPEND:
        return None if suspended else Transition(CloudStatus.SUSPENDED, False, suspends=True)
    if action in (NotificationAction.REINSTATE, NotificationAction.RENEW):
        return Transition(CloudStatus.ACTIVE, False, resumes=True) if suspended else None
    return None


def after_entitlement(status: str, active: bool) -> Transition | None:
    """After ``entitlement-updated``: an entitlement no longer active (expired,
    cancelled) ends the subscription; an active one confirms a pending one."""
    if ended(status):
        return None
    if not active:
        return Transition(CloudStatus.CANCELLED, True)
    if status == CloudStatus.PENDING:
        return Transition(CloudStatus.ACTIVE, False)
    if status == CloudStatus.SUSPENDED:
        return Transition(CloudStatus.ACTIVE, False, resumes=True)
    return None


def check_activation(*, expires_at: datetime, taken_by: str | None, account_id: str | None,
                     now: datetime) -> None:
    """Whether ``account_id`` (None: a registration whose account does not exist yet)
    may take this activation. Refused: one taken by another account, or reserved by
    another registration (409 ``activation_used``); one past its time that nobody took
    (409 ``activation_expired``: the buyer comes back through the marketplace). The
    account that took it may come back to it (a retried registration, binding more
    workspaces after the claim)."""
    if taken_by is not None and taken_by != account_id:
        raise Conflict("activation_used", "this marketplace activation was used already; "
                                          "sign in to the billing account that took it")
    if taken_by is None and expires_at <= now:
        raise Conflict("activation_expired",
                       "this marketplace activation expired; open the product in the "
                       "marketplace again to be sent back here")
