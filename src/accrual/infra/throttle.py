"""Sign-in throttling policy: how many failed sign-ins an account or a client address may
have in a window, and how long it then waits. Pure rules, no storage: each side keeps the
counters in its own database (``accrual.infra.sign_in_failures``), so every process of a
horizontally scaled API sees the same counts.

A key (an account's identifier, or a client address) counts its failures in a window
that opens at its first failure. The failure that reaches the limit locks the key out
for a window; each further lockout within ``memory`` of the last doubles that, up to
``max_block``. While locked out, attempts are refused without checking the password and
are not counted. A success clears the account's count (not the address's: one's own
account must not reset the guesses made at others').
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Scope = Literal["account", "address"]


@dataclass(frozen=True)
class ThrottlePolicy:
    account_failures: int = 5  # per account (identifier) per window
    address_failures: int = 20  # per client address per window, across accounts
    window: timedelta = timedelta(minutes=15)
    max_block: timedelta = timedelta(hours=1)
    # How long a key's lockouts are remembered for the doubling.
    memory: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.account_failures < 1 or self.address_failures < 1:
            raise ValueError("a failure limit is at least 1")
        if self.window <= timedelta(0) or self.max_block < self.window:
            raise ValueError("the window is positive and max_block at least the window")

    def limit(self, scope: Scope) -> int:
        return self.account_failures if scope == "account" else self.address_failures


@dataclass(frozen=True)
class FailureCount:
    """One key's failures as stored."""

    failures: int  # in the window that opened at window_start
    window_start: datetime
    blocked_until: datetime | None
    lockouts: int  # lockouts remembered (for the doubling)
    keep_until: datetime  # when the row may be purged


def retry_after_s(blocked_until: datetime | None, now: datetime) -> int | None:
    """Whole seconds until a key blocked until then may try again; None when it may now."""
    if blocked_until is None or blocked_until <= now:
        return None
    return max(1, math.ceil((blocked_until - now).total_seconds()))


def after_failure(count: FailureCount | None, now: datetime, scope: Scope,
                  policy: ThrottlePolicy) -> FailureCount:
    """The key's count once one more failure is recorded at ``now``."""
    lockouts = count.lockouts if count is not None and count.keep_until > now else 0
    if count is None or now >= count.window_start + policy.window:
        failures, window_start = 1, now
    else:
        failures, window_start = count.failures + 1, count.window_start
    if failures < policy.limit(scope):
        blocked_until = count.blocked_until if count is not None else None
        keep_until = window_start + policy.window
        if lockouts:
            keep_until = max(keep_until, now + policy.memory)
        return FailureCount(failures, window_start, blocked_until, lockouts, keep_until)
    lockouts += 1
    block = min(policy.max_block, policy.window * (1 << min(lockouts - 1, 20)))
    # The lockout closes the window: after it the key starts counting afresh.
    return FailureCount(0, now, now + block, lockouts, now + block + policy.memory)


def address_key(host: str | None) -> str | None:
    """The key a client address counts under: an IPv6 address by its /64 (one subscriber
    is usually given a whole /64), any other text as it is; None without an address."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:255]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
