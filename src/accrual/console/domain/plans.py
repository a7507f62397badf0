"""Plans and the free plan's daily quotas (reference-billing.md §7.2, decisions.md 22)."""

from __future__ import annotations

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
