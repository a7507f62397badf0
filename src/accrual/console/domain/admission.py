"""Admission: may a workspace take in usage now? Pure decisions on a workspace's state.

Locks and dissolution come before quotas; the free plan's daily quotas
(``plans.FREE_QUOTAS``) come before the day's limits (``usage.DayTotals``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accrual.console.domain.plans import FREE, FREE_QUOTAS, NEVER_REFUSED

ACTIVE = "active"
LOCKED = "locked"
DISSOLVED = "dissolved"


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    reason: str | None = None  # quota_exceeded | not_in_plan | locked | dissolved
    used: Decimal | None = None
    quota: int | None = None


def admit(plan: str, status: str, item: str, used: Decimal) -> Admission:
    """May a workspace ingest ``item`` now? Locks and dissolution come before quotas."""
    if status == DISSOLVED:
        return Admission(False, "dissolved")
    if status == LOCKED:
        return Admission(False, "locked")
    if plan != FREE or item in NEVER_REFUSED or item not in FREE_QUOTAS:
        return Admission(True, used=used)
    quota = FREE_QUOTAS[item]
    if quota == 0:
        return Admission(False, "not_in_plan", used, quota)
    if used >= quota:
        return Admission(False, "quota_exceeded", used, quota)
    return Admission(True, used=used, quota=quota)


def free_quota_exceeded(plan: str | None, quota: int, used: Decimal) -> bool:
    """Whether a workspace has used up a free-plan quota today (an item out of the plan,
    quota 0, counts as exceeded once anything was sent)."""
    return plan == FREE and ((quota == 0 and used > 0) or used >= quota > 0)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a usage record is refused, as the ingest answer carries it."""

    code: str
    message: str


UNKNOWN_WORKSPACE = Refusal("unknown_workspace",
                            "unknown workspace, or not one this key may write to")
WORKSPACE_DISSOLVED = Refusal("workspace_dissolved", "the workspace was dissolved")
WORKSPACE_LOCKED = Refusal(
    "workspace_locked",
    "the workspace is locked because its billing account is in arrears; top up the account "
    "or change the workspace's settlement method in the billing center, and it is unlocked "
    "at once")


def refuse_usage(status: str | None) -> Refusal | None:
    """The refusal of any usage for a workspace in ``status`` (None: no workspace this
    key may write to), or None when its records go on to be checked one by one."""
    if status is None:
        return UNKNOWN_WORKSPACE
    if status == DISSOLVED:
        return WORKSPACE_DISSOLVED
    if status == LOCKED:
        return WORKSPACE_LOCKED
    return None
