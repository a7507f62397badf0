"""Plans and the free plan's daily quotas (reference-billing.md §7.2, decisions.md 22)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

FREE = "free"
COMMERCIAL = "commercial"

# Billing item → daily quota for free workspaces, in billable units. 0 means
# the item is not available on the free plan at all. Items not listed have no
# quota. Time series count the day's active series (decisions.md 22).
FREE_QUOTAS: dict[str, int] = {
    "timeseries": 3_000,
    "logs": 1_000_000,
    "trace": 8_000,
    "profile": 60,
    "rum_pv": 2_000,
    "session_replay": 1_000,
    "synthetic_test": 200_000,
    "trigger": 100_000,
    "sms": 0,
    "forward_external": 0,
    "forward_internal": 0,
}

# What collectors may also ask about that is never refused for quota reasons.
NEVER_REFUSED = ("infrastructure", "events")


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    reason: str | None = None  # quota_exceeded | not_in_plan | locked | dissolved
    used: Decimal | None = None
    quota: int | None = None


def admit(plan: str, status: str, item: str, used: Decimal) -> Admission:
    """May a workspace ingest ``item`` now? Locks and dissolution come before quotas."""
    if status == "dissolved":
        return Admission(False, "dissolved")
    if status == "locked":
        return Admission(False, "locked")
    if plan != FREE or item in NEVER_REFUSED or item not in FREE_QUOTAS:
        return Admission(True, used=used)
    quota = FREE_QUOTAS[item]
    if quota == 0:
        return Admission(False, "not_in_plan", used, quota)
    if used >= quota:
        return Admission(False, "quota_exceeded", used, quota)
    return Admission(True, used=used, quota=quota)
