"""The sign-in throttle's rules, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accrual.contract.errors import TooManyAttempts
from accrual.infra.throttle import ThrottlePolicy, address_key, after_failure, retry_after_s

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(account_failures=3, address_failures=5, window=timedelta(minutes=10),
                        max_block=timedelta(minutes=25), memory=timedelta(hours=1))


def test_the_failure_reaching_the_limit_locks_out_for_a_window() -> None:
    count = None
    for minute in (0, 4, 8):
        assert count is None or retry_after_s(count.blocked_until, T0 + timedelta(minutes=minute)) is None
        count = after_failure(count, T0 + timedelta(minutes=minute), "account", POLICY)
    assert count is not None
    assert count.blocked_until == T0 + timedelta(minutes=18)
    assert retry_after_s(count.blocked_until, T0 + timedelta(minutes=8)) == 600
    assert retry_after_s(count.blocked_until, T0 + timedelta(minutes=17, seconds=59.5)) == 1
    assert retry_after_s(count.blocked_until, T0 + timedelta(minutes=18)) is None


def test_failures_spread_wider_than_the_window_never_lock() -> None:
    count = None
    for n in range(10):
        count = after_failure(count, T0 + n * timedelta(minutes=5, seconds=1), "account", POLICY)
        assert count.blocked_until is None
    assert count is not None and count.lockouts == 0


def test_lockouts_double_to_the_maximum_and_are_forgotten_after_memory() -> None:
    count, now, blocks = None, T0, []
    for _ in range(4):
        for _ in range(3):
            count = after_failure(count, now, "account", POLICY)
        assert count is not None and count.blocked_until is not None
        blocks.append(count.blocked_until - now)
        now = count.blocked_until
    assert blocks == [timedelta(minutes=10), timedelta(minutes=20), timedelta(minutes=25),
                      timedelta(minutes=25)]
    now += POLICY.memory + POLICY.max_block
    for _ in range(3):
        count = after_failure(count, now, "account", POLICY)
    assert count is not None and count.lockouts == 1
    assert count.blocked_until == now + timedelta(minutes=10)


def test_the_address_has_its_own_limit() -> None:
    count = None
    for _ in range(4):
        count = after_failure(count, T0, "address", POLICY)
    assert count is not None and count.blocked_until is None
    assert after_failure(count, T0, "address", POLICY).blocked_until is not None


def test_address_keys() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("testclient") == "testclient"
    assert address_key(None) is None and address_key("") is None


def test_a_policy_is_sane() -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(account_failures=0)
    with pytest.raises(ValueError):
        ThrottlePolicy(window=timedelta(minutes=30), max_block=timedelta(minutes=10))


def test_the_refusal_says_how_long_to_wait() -> None:
    assert TooManyAttempts(900).message.endswith("wait 15 minutes before trying again")
    assert "wait 1 second " in TooManyAttempts(0).message
    assert "wait 2 minutes" in TooManyAttempts(61).message
