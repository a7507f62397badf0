"""Counting rules at and around their boundaries (reference-billing.md §2.3, decisions.md 4–6).

Expected values are worked out by hand from the rules' text, not by the code under test.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from accrual.catalog.rules import (
    CountingSettings,
    RuleError,
    daily_quantity,
    record_units,
    split_count,
    trigger_calls,
    window_surcharge,
)

KB = 1024


@pytest.mark.parametrize(("size", "storage", "expected"), [
    (0, "es", 1), (1, "es", 1), (10 * KB - 1, "es", 1), (10 * KB, "es", 1),
    (20 * KB - 1, "es", 1), (20 * KB, "es", 2), (25 * KB, "es", 2), (100 * KB, "es", 10),
    (2 * KB - 1, "sls", 1), (2 * KB, "sls", 1), (4 * KB, "sls", 2), (5 * KB, "sls", 2),
    (15 * KB, "sls", 7),
])
def test_log_split(size: int, storage: str, expected: int) -> None:
    assert record_units("logs", 1, {"size_bytes": size, "storage": storage}).billable == expected
    assert record_units("logs", 3, {"size_bytes": size, "storage": storage}).billable == 3 * expected


@pytest.mark.parametrize(("size", "expected"), [
    (300 * KB - 1, 1), (300 * KB, 1), (600 * KB - 1, 1), (600 * KB, 2), (1000 * KB, 3)])
def test_profile_split(size: int, expected: int) -> None:
    assert record_units("profile", 1, {"size_bytes": size}).billable == expected


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, 1), (4 * 3600 - 1, 1), (4 * 3600, 1), (8 * 3600 - 1, 1), (8 * 3600, 2), (13 * 3600, 3)])
def test_session_replay_split(seconds: int, expected: int) -> None:
    assert record_units("session_replay", 1, {"duration_seconds": seconds}).billable == expected


def test_kilobyte_is_a_setting() -> None:
    decimal_kb = CountingSettings(kilobyte=1000)
    assert record_units("logs", 1, {"size_bytes": 20_000}, decimal_kb).billable == 2
    assert record_units("logs", 1, {"size_bytes": 20_000}).billable == 1


@pytest.mark.parametrize(("kind", "weight"), [
    ("mutation", 5), ("interval", 5), ("outlier", 5), ("log", 5),
    ("intelligent_host", 10), ("intelligent_log", 10), ("intelligent_apm", 10),
    ("intelligent_rum", 100), ("query", 1), ("generate_metrics", 1), ("func", 1), ("other", 1)])
def test_trigger_weights(kind: str, weight: int) -> None:
    assert record_units("trigger", 1, {"kind": kind}).billable == weight
    assert record_units("trigger", 7, {"kind": kind}).billable == 7 * weight


@pytest.mark.parametrize(("window", "extra"), [
    (0, 0), (1, 0), (15, 0), (16, 1), (30, 1), (31, 2), (45, 2), (60, 3), (61, 4)])
def test_window_surcharge(window: int, extra: int) -> None:
    assert window_surcharge(window) == extra


def test_reference_trigger_examples() -> None:
    assert trigger_calls("mutation", None) == 5
    assert trigger_calls("outlier", 30) == 6
    # decisions.md 6: the surcharge applies once per run, so two interval runs with a
    # 60-minute window weigh 2 × (5 + 3) = 16 (the reference's "13" counts it once).
    assert record_units("trigger", 2, {"kind": "interval", "window_minutes": 60}).billable == 16


def test_post_rules() -> None:
    assert daily_quantity("trace", 100, 999) == Decimal(100)
    assert daily_quantity("trace", 100, 1000) == Decimal(100)
    assert daily_quantity("trace", 100, 1010) == Decimal(101)
    assert daily_quantity("trace", 100, 1005) == Decimal("100.5")
    assert daily_quantity("rum_pv", 20_000, 1_999_900) == Decimal(20_000)
    assert daily_quantity("rum_pv", 20_000, 2_000_100) == Decimal(20_001)
    assert daily_quantity("logs", 5, 10**9) == Decimal(5)


def test_companion_counts() -> None:
    assert record_units("trace", 10, {"spans": 250}).companion == 250
    assert record_units("rum_pv", 10, {"resource": 50, "long_task": 5, "error": 3,
                                       "action": 42}).companion == 100
    assert record_units("rum_pv", 10, None).companion == 0


def test_split_count_minimum_one() -> None:
    assert split_count(0, 10) == 1 and split_count(9, 10) == 1 and split_count(29, 10) == 2


@pytest.mark.parametrize("attributes", [
    {"size_bytes": -1}, {"size_bytes": "ten"}, {"size_bytes": True}, {"size_bytes": 1.5},
    {"size_bytes": 10, "storage": "s3"}, {"size_bytes": 10**16},
])
def test_bad_attributes_are_refused(attributes: dict[str, object]) -> None:
    with pytest.raises(RuleError):
        record_units("logs", 1, attributes)
