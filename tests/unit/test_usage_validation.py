"""validate_record (console/domain/usage.py): one raw record → a storable row or a rejection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from accrual.catalog.items import DataType
from accrual.console.domain.usage import (
    Rejection,
    UsageLimits,
    UsageRow,
    validate_record,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI)
CN = UsageLimits(zone=SHANGHAI, site_group="cn", currency="CNY")


class Policy:
    """A retention resolver that records its calls and answers from a table."""

    def __init__(self, **days: int) -> None:
        self.days = {DataType(k): v for k, v in days.items()}
        self.calls: list[tuple[str, DataType, datetime]] = []

    def __call__(self, workspace_id: str, data_type: DataType, at: datetime) -> int:
        self.calls.append((workspace_id, data_type, at))
        return self.days.get(data_type, {DataType.METRICS: 7, DataType.LOGS: 14, DataType.APM: 14,
                                         DataType.RUM: 14, DataType.BACKUP: 180}[data_type])


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "r-1", "workspace_id": "ws-1", "item": "logs",
                            "time": "2026-11-25T09:15:00+08:00", "quantity": "500000",
                            "retention_days": 7}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def check(raw: object, *, now: datetime = NOW, limits: UsageLimits = CN,
          policy: Policy | None = None, index: int = 0) -> UsageRow | Rejection:
    return validate_record(index, raw, now=now, limits=limits,
                           resolve_retention=policy if policy is not None else Policy())


def rejected(raw: object, **kwargs: Any) -> str:
    result = check(raw, **kwargs)
    assert isinstance(result, Rejection), result
    assert result.message
    return result.code


def accepted(raw: object, **kwargs: Any) -> UsageRow:
    result = check(raw, **kwargs)
    assert isinstance(result, UsageRow), result
    return result


# -- an accepted record ------------------------------------------------------------


def test_a_valid_record_becomes_a_row() -> None:
    row = accepted(record())
    assert row.workspace_id == "ws-1" and row.record_id == "r-1" and row.item == "logs"
    assert row.occurred_at == datetime(2026, 11, 25, 1, 15, tzinfo=UTC)
    assert row.day == date(2026, 11, 25)
    assert row.hour_start == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert row.hour_start.utcoffset() == timedelta(0)
    assert row.retention_days == 7
    assert row.quantity == 500000 and isinstance(row.quantity, int)
    assert len(row.digest) == 32


@pytest.mark.parametrize("quantity, expected", [
    ("500000", 500000), (500000, 500000), ("0", 0), (0, 0), (Decimal("1E+3"), 1000),
    ("12.000", 12), (Decimal("7.0"), 7), (10**15, 10**15), (Decimal("1E+15"), 10**15),
])
def test_whole_quantities_in_any_exact_form_are_accepted(quantity: object, expected: int) -> None:
    assert accepted(record(quantity=quantity)).quantity == expected


def test_the_z_suffix_and_other_offsets_are_accepted() -> None:
    assert accepted(record(time="2026-11-25T01:15:00Z")).occurred_at == datetime(
        2026, 11, 25, 1, 15, tzinfo=UTC)
    assert accepted(record(time="2026-11-24T12:15:00-05:00")).day == date(2026, 11, 25)


def test_the_digest_tells_payloads_apart_and_ignores_the_id() -> None:
    row = accepted(record())
    assert accepted(record(id="other")).digest == row.digest
    assert accepted(record(time="2026-11-25T01:15:00Z")).digest == row.digest  # the same instant
    assert accepted(record(quantity="500001")).digest != row.digest
    assert accepted(record(retention_days=3)).digest != row.digest
    assert accepted(record(item="trace", retention_days=7)).digest != row.digest
    assert accepted(record(attributes={"host": "a"})).digest != row.digest
    assert accepted(record(time="2026-11-25T09:16:00+08:00")).digest != row.digest


# -- rejections, one code each -----------------------------------------------------------


@pytest.mark.parametrize("raw", [
    None, "record", 42, ["r-1"], record(colour="red"), record(Id="r-1"),
])
def test_invalid_record(raw: object) -> None:
    assert rejected(raw) == "invalid_record"


def test_rejections_carry_the_record_index() -> None:
    result = check(None, index=17)
    assert isinstance(result, Rejection) and result.index == 17


@pytest.mark.parametrize("record_id", [DROP, None, "", 7, ["a"], "x" * 129])
def test_invalid_id(record_id: object) -> None:
    assert rejected(record(id=record_id)) == "invalid_id"


def test_ids_up_to_128_characters_are_fine() -> None:
    assert accepted(record(id="x" * 128)).record_id == "x" * 128


@pytest.mark.parametrize("workspace_id", [DROP, None, 7, ["ws-1"]])
def test_a_workspace_id_that_is_not_a_string(workspace_id: object) -> None:
    assert rejected(record(workspace_id=workspace_id)) == "unknown_workspace"


@pytest.mark.parametrize("item", [DROP, None, "", "log", "LOGS", 3, "datakit"])
def test_unknown_item(item: object) -> None:
    assert rejected(record(item=item, retention_days=DROP)) == "unknown_item"


@pytest.mark.parametrize("site_group, currency", [("intl", "CNY"), ("cn", "USD"), ("intl", "USD")])
def test_sms_is_not_available_outside_china_sites_in_cny(site_group: str, currency: str) -> None:
    limits = UsageLimits(zone=SHANGHAI, site_group=site_group, currency=currency)
    sms = record(item="sms", retention_days=DROP, quantity="30")
    assert rejected(sms, limits=limits) == "item_not_available"
    assert accepted(sms).quantity == 30
    # Other items are available in that column.
    assert accepted(record(), limits=limits).item == "logs"


@pytest.mark.parametrize("time", [
    DROP, None, 1764033300, "", "yesterday", "2026-11-25", "2026-11-25T09:15:00",  # naive
    "2026-11-25 09:15", "2026-13-25T09:15:00Z", "2026-11-25T25:00:00+08:00",
    "2026-11-25T09:15:00+08:00" + " " * 30,
])
def test_invalid_time(time: object) -> None:
    assert rejected(record(time=time)) == "invalid_time"


def test_time_in_future_beyond_five_minutes() -> None:
    ahead = NOW + timedelta(minutes=5)
    assert accepted(record(time=ahead.isoformat())).occurred_at == ahead
    assert rejected(record(time=(ahead + timedelta(seconds=1)).isoformat())) == "time_in_future"
    assert rejected(record(time=(NOW + timedelta(days=1)).isoformat())) == "time_in_future"


def test_too_late_beyond_35_days() -> None:
    horizon = NOW - timedelta(days=35)
    assert accepted(record(time=horizon.isoformat())).day == date(2026, 10, 22)
    assert rejected(record(time=(horizon - timedelta(seconds=1)).isoformat())) == "too_late"
    assert rejected(record(time="2025-11-25T09:15:00+08:00")) == "too_late"


def test_the_horizons_are_settings() -> None:
    limits = UsageLimits(zone=SHANGHAI, site_group="cn", currency="CNY",
                         late_horizon=timedelta(days=2), future_tolerance=timedelta(0))
    assert rejected(record(time="2026-11-24T09:59:59+08:00"), limits=limits) == "too_late"
    assert rejected(record(time="2026-11-26T10:00:01+08:00"), limits=limits) == "time_in_future"
    assert accepted(record(time="2026-11-26T10:00:00+08:00"), limits=limits).day == date(2026, 11, 26)


@pytest.mark.parametrize("quantity", [
    DROP, None, "-1", -1, "1.5", "0.1", "NaN", "Infinity", "-0.5", 1.0, 2.5, True,
    Decimal("2.5"), Decimal("NaN"), "abc", "", [1], {"n": 1},
    10**15 + 1, "1000000000000001", "1E+16", "1" * 40, "1E+999999",
    # Outside the number grammar, though Python's Decimal reads them:
    "1e3", "1E+15", "\u0661\u0662\u0663", "\uff17", "1_000", " 7 ", "7\n", "+7",
])
def test_invalid_quantity(quantity: object) -> None:
    assert rejected(record(quantity=quantity)) == "invalid_quantity"


@pytest.mark.parametrize("item, retention", [
    ("logs", 180), ("logs", 1), ("logs", 0), ("timeseries", 60), ("profile", 30),
    ("forward_internal", 14), ("logs", "7"), ("logs", 7.0), ("logs", Decimal("7")),
    ("logs", True),
])
def test_invalid_retention_for_tiered_items(item: str, retention: object) -> None:
    assert rejected(record(item=item, retention_days=retention)) == "invalid_retention"


@pytest.mark.parametrize("item", ["trigger", "sms", "network_host", "session_replay"])
@pytest.mark.parametrize("retention", [7, 14, 180, "7"])
def test_invalid_retention_on_an_untiered_item(item: str, retention: object) -> None:
    assert rejected(record(item=item, retention_days=retention)) == "invalid_retention"


@pytest.mark.parametrize("attributes", ["host=a", ["a"], 7, {"blob": "x" * 5000}])
def test_invalid_attributes(attributes: object) -> None:
    assert rejected(record(attributes=attributes)) == "invalid_attributes"


def test_attributes_that_are_small_objects_are_accepted() -> None:
    assert isinstance(check(record(attributes={"host": "web-1", "n": 3})), UsageRow)
    assert isinstance(check(record(attributes={})), UsageRow)
    assert isinstance(check(record(attributes=None)), UsageRow)


def test_checks_run_in_a_stable_order() -> None:
    # A record wrong in every way reports the first problem only.
    everything_wrong = {"id": "", "workspace_id": 1, "item": "nope", "time": "x", "quantity": "-1"}
    assert rejected(everything_wrong) == "invalid_id"
    assert rejected({**everything_wrong, "id": "a", "workspace_id": "w"}) == "unknown_item"
    assert rejected({**everything_wrong, "id": "a", "workspace_id": "w", "item": "logs"}) == "invalid_time"


# -- retention tiers --------------------------------------------------------------------


@pytest.mark.parametrize("item, data_type, policy_days", [
    ("logs", DataType.LOGS, 30),
    ("timeseries", DataType.METRICS, 180),
    ("trace", DataType.APM, 60),
    ("profile", DataType.APM, 3),
    ("rum_pv", DataType.RUM, 7),
    ("forward_internal", DataType.BACKUP, 720),
])
def test_the_default_tier_is_the_workspace_policy_at_the_records_time(
        item: str, data_type: DataType, policy_days: int) -> None:
    policy = Policy(**{data_type.value: policy_days})
    row = accepted(record(item=item, retention_days=DROP), policy=policy)
    assert row.retention_days == policy_days
    assert policy.calls == [("ws-1", data_type, datetime(2026, 11, 25, 1, 15, tzinfo=UTC))]


def test_an_explicit_tier_wins_over_the_policy() -> None:
    policy = Policy(logs=30)
    assert accepted(record(retention_days=3), policy=policy).retention_days == 3
    assert policy.calls == []


def test_none_retention_means_the_policy() -> None:
    assert accepted(record(retention_days=None), policy=Policy(logs=60)).retention_days == 60


def test_a_policy_tier_the_item_does_not_offer_falls_back_to_its_longest_tier_below() -> None:
    # APM kept 30 days: traces have that tier, profiles stop at 14 days.
    assert accepted(record(item="profile", retention_days=DROP),
                    policy=Policy(apm=30)).retention_days == 14
    assert accepted(record(item="trace", retention_days=DROP),
                    policy=Policy(apm=30)).retention_days == 30
    assert accepted(record(retention_days=DROP), policy=Policy(logs=45)).retention_days == 30
    # Given explicitly, a tier the item does not offer is still refused.
    assert rejected(record(item="profile", retention_days=30)) == "invalid_retention"


@pytest.mark.parametrize("item", ["trigger", "synthetic_test", "network_host", "session_replay",
                                  "forward_external", "sensitive_scan", "scheduled_report",
                                  "central_pipeline", "sms"])
def test_untiered_items_get_tier_zero_without_asking_the_policy(item: str) -> None:
    policy = Policy()
    assert accepted(record(item=item, retention_days=DROP), policy=policy).retention_days == 0
    assert accepted(record(item=item, retention_days=0), policy=policy).retention_days == 0
    assert policy.calls == []


# -- billing day and hour bucket ----------------------------------------------------------


@pytest.mark.parametrize("time, day, hour_start", [
    ("2026-11-24T16:00:00Z", date(2026, 11, 25), datetime(2026, 11, 24, 16, tzinfo=UTC)),
    ("2026-11-24T15:59:59Z", date(2026, 11, 24), datetime(2026, 11, 24, 15, tzinfo=UTC)),
    ("2026-11-25T00:00:00+08:00", date(2026, 11, 25), datetime(2026, 11, 24, 16, tzinfo=UTC)),
    ("2026-11-24T23:59:59.999999+08:00", date(2026, 11, 24), datetime(2026, 11, 24, 15, tzinfo=UTC)),
    ("2026-11-25T23:30:00+08:00", date(2026, 11, 25), datetime(2026, 11, 25, 15, tzinfo=UTC)),
    ("2026-11-25T16:10:00Z", date(2026, 11, 26), datetime(2026, 11, 25, 16, tzinfo=UTC)),
])
def test_day_and_hour_on_the_shanghai_day_boundary(time: str, day: date, hour_start: datetime) -> None:
    row = accepted(record(time=time))
    assert (row.day, row.hour_start) == (day, hour_start)


def test_hour_buckets_follow_the_site_zone_not_utc() -> None:
    # Kolkata is UTC+5:30: its clock hours start at :30 UTC.
    limits = UsageLimits(zone=ZoneInfo("Asia/Kolkata"), site_group="intl", currency="USD")
    row = accepted(record(time="2026-11-25T10:10:00Z"), limits=limits)
    assert row.hour_start == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert row.day == date(2026, 11, 25)


@pytest.mark.parametrize("day, buckets", [(date(2026, 3, 8), 23), (date(2026, 11, 1), 25)])
def test_dst_days_in_new_york_have_23_or_25_hour_buckets(day: date, buckets: int) -> None:
    limits = UsageLimits(zone=NEW_YORK, site_group="intl", currency="USD")
    now = datetime.combine(day + timedelta(days=2), datetime.min.time(), tzinfo=NEW_YORK)
    start = datetime.combine(day, datetime.min.time(), tzinfo=NEW_YORK).astimezone(UTC)
    hours, instant = set(), start - timedelta(hours=3)
    while instant < start + timedelta(hours=28):
        row = accepted(record(time=instant.isoformat()), now=now, limits=limits)
        if row.day == day:
            hours.add(row.hour_start)
        instant += timedelta(minutes=15)
    assert len(hours) == buckets
    assert min(hours) == start
