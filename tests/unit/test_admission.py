"""Admission decisions on a workspace's state, the retention a record is stored under and
when a high-consumption alert fires: pure rules, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.catalog.items import RETENTION_DEFAULTS, RETENTION_OPTIONS, DataType
from accrual.console.domain.admission import (
    UNKNOWN_WORKSPACE,
    WORKSPACE_DISSOLVED,
    WORKSPACE_LOCKED,
    admit,
    free_quota_exceeded,
    refuse_usage,
)
from accrual.console.domain.alerts import AlertStep, alert_step
from accrual.console.domain.plans import FREE_QUOTAS, NEVER_REFUSED
from accrual.console.domain.retention import FREE_RETENTION, record_retention

T0 = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.parametrize(("status", "refusal"), [
    (None, UNKNOWN_WORKSPACE), ("dissolved", WORKSPACE_DISSOLVED), ("locked", WORKSPACE_LOCKED),
    ("active", None)])
def test_usage_of_a_workspace_is_refused_by_its_status(status: str | None, refusal: object
                                                        ) -> None:
    assert refuse_usage(status) == refusal


def test_refusals_say_what_to_do() -> None:
    assert WORKSPACE_LOCKED.code == "workspace_locked"
    assert "top up" in WORKSPACE_LOCKED.message
    assert WORKSPACE_DISSOLVED.code == "workspace_dissolved"
    assert UNKNOWN_WORKSPACE.code == "unknown_workspace"


@given(plan=st.sampled_from(["free", "commercial"]), status=st.sampled_from(["locked", "dissolved"]),
       item=st.sampled_from([*FREE_QUOTAS, *NEVER_REFUSED, "logs"]),
       used=st.decimals(min_value=0, max_value=10**9, places=0))
def test_locks_and_dissolution_come_before_quotas(plan: str, status: str, item: str,
                                                  used: Decimal) -> None:
    decision = admit(plan, status, item, used)
    assert not decision.allowed
    assert decision.reason == status


@given(item=st.sampled_from(sorted(FREE_QUOTAS)), used=st.integers(min_value=0, max_value=10**7))
def test_free_quotas(item: str, used: int) -> None:
    quota = FREE_QUOTAS[item]
    decision = admit("free", "active", item, Decimal(used))
    if quota == 0:
        assert (decision.allowed, decision.reason) == (False, "not_in_plan")
    else:
        assert decision.allowed == (used < quota)
        assert decision.reason == (None if used < quota else "quota_exceeded")
        assert decision.quota == quota
    assert admit("commercial", "active", item, Decimal(used)).allowed
    # what the quota overview shows agrees with what admission refuses
    assert free_quota_exceeded("free", quota, Decimal(used)) == (
        not decision.allowed and (quota > 0 or used > 0))
    assert not free_quota_exceeded("commercial", quota, Decimal(used))


@given(item=st.sampled_from(NEVER_REFUSED), used=st.integers(min_value=0, max_value=10**9))
def test_some_items_are_never_refused_for_quotas(item: str, used: int) -> None:
    assert admit("free", "active", item, Decimal(used)).allowed


@given(data_type=st.sampled_from(list(DataType)), minutes=st.integers(-10_000, 10_000))
def test_free_data_keeps_the_free_retention(data_type: DataType, minutes: int) -> None:
    at = T0 + timedelta(minutes=minutes)
    expected = (FREE_RETENTION if FREE_RETENTION in RETENTION_OPTIONS[data_type]
                else RETENTION_DEFAULTS[data_type])
    changes = [(T0 - timedelta(days=30), max(RETENTION_OPTIONS[data_type]))]
    assert record_retention(True, None, changes, data_type, at) == expected
    # data from before an upgrade stays free data
    assert record_retention(False, T0, changes, data_type, at) == (
        expected if at < T0 else max(RETENTION_OPTIONS[data_type]))


@given(data_type=st.sampled_from(list(DataType)),
       offsets=st.lists(st.integers(-100, 100), min_size=0, max_size=5, unique=True),
       at_offset=st.integers(-120, 120), data=st.data())
def test_the_policy_in_force_when_the_record_was_written(
        data_type: DataType, offsets: list[int], at_offset: int, data: st.DataObject) -> None:
    options = RETENTION_OPTIONS[data_type]
    changes = [(T0 + timedelta(hours=o), data.draw(st.sampled_from(options)))
               for o in sorted(offsets)]
    at = T0 + timedelta(hours=at_offset)
    before = [days for effective_from, days in changes if effective_from <= at]
    assert record_retention(False, None, changes, data_type, at) == (
        before[-1] if before else RETENTION_DEFAULTS[data_type])


# -- high-consumption alerts -------------------------------------------------------------


@given(armed=st.booleans(), amount=st.integers(-10**6, 10**6), threshold=st.integers(1, 10**6))
def test_an_alert_fires_once_over_its_threshold_and_rearms_at_or_below_it(
        armed: bool, amount: int, threshold: int) -> None:
    step = alert_step(armed, amount, threshold)
    if amount > threshold:
        assert step is (AlertStep.FIRE if armed else AlertStep.HOLD)
    else:
        assert step is AlertStep.REARM
    assert alert_step(armed, threshold, threshold) is AlertStep.REARM  # at the threshold
