"""accrual.clock: billing days in the site's zone, DST days, the manual clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.clock import ManualClock, SystemClock, day_bounds, site_day

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- site_day ------------------------------------------------------------------


@pytest.mark.parametrize("instant, zone, expected", [
    # Shanghai is UTC+8 all year: its day starts at 16:00 UTC the day before.
    (utc(2026, 11, 24, 16, 0), SHANGHAI, date(2026, 11, 25)),
    (utc(2026, 11, 24, 15, 59, 59, 999999), SHANGHAI, date(2026, 11, 24)),
    (utc(2026, 11, 25, 15, 59, 59), SHANGHAI, date(2026, 11, 25)),
    (utc(2026, 11, 25, 16, 0), SHANGHAI, date(2026, 11, 26)),
    (datetime(2026, 11, 25, 0, 0, tzinfo=SHANGHAI), SHANGHAI, date(2026, 11, 25)),
    # New York: EST (UTC-5) before 2026-03-08 02:00, EDT (UTC-4) after.
    (utc(2026, 3, 8, 4, 59, 59), NEW_YORK, date(2026, 3, 7)),
    (utc(2026, 3, 8, 5, 0), NEW_YORK, date(2026, 3, 8)),
    (utc(2026, 3, 9, 3, 59, 59), NEW_YORK, date(2026, 3, 8)),
    (utc(2026, 3, 9, 4, 0), NEW_YORK, date(2026, 3, 9)),
    (utc(2026, 11, 2, 4, 59, 59), NEW_YORK, date(2026, 11, 1)),
    (utc(2026, 11, 2, 5, 0), NEW_YORK, date(2026, 11, 2)),
    # The same instant is on different days in different zones.
    (utc(2026, 11, 25, 20, 0), SHANGHAI, date(2026, 11, 26)),
    (utc(2026, 11, 25, 20, 0), NEW_YORK, date(2026, 11, 25)),
    (utc(2026, 11, 25, 20, 0), ZoneInfo("UTC"), date(2026, 11, 25)),
])
def test_site_day(instant: datetime, zone: ZoneInfo, expected: date) -> None:
    assert site_day(instant, zone) == expected


def test_site_day_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        site_day(datetime(2026, 11, 25, 12, 0), SHANGHAI)


# -- day_bounds ------------------------------------------------------------------


@pytest.mark.parametrize("day, zone, start, end, hours", [
    (date(2026, 11, 25), SHANGHAI, utc(2026, 11, 24, 16), utc(2026, 11, 25, 16), 24),
    (date(2026, 3, 8), SHANGHAI, utc(2026, 3, 7, 16), utc(2026, 3, 8, 16), 24),
    (date(2026, 11, 25), ZoneInfo("UTC"), utc(2026, 11, 25), utc(2026, 11, 26), 24),
    # Spring forward: 02:00 EST becomes 03:00 EDT, the day has 23 hours.
    (date(2026, 3, 8), NEW_YORK, utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), 23),
    # Fall back: 02:00 EDT becomes 01:00 EST, the day has 25 hours.
    (date(2026, 11, 1), NEW_YORK, utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 25),
    (date(2026, 3, 7), NEW_YORK, utc(2026, 3, 7, 5), utc(2026, 3, 8, 5), 24),
    (date(2026, 3, 9), NEW_YORK, utc(2026, 3, 9, 4), utc(2026, 3, 10, 4), 24),
    (date(2026, 11, 2), NEW_YORK, utc(2026, 11, 2, 5), utc(2026, 11, 3, 5), 24),
])
def test_day_bounds(day: date, zone: ZoneInfo, start: datetime, end: datetime, hours: int) -> None:
    got_start, got_end = day_bounds(day, zone)
    assert (got_start, got_end) == (start, end)
    assert got_start.utcoffset() == timedelta(0) and got_end.utcoffset() == timedelta(0)
    assert got_end - got_start == timedelta(hours=hours)


def test_day_bounds_agree_with_site_day() -> None:
    for zone in (SHANGHAI, NEW_YORK):
        for day in (date(2026, 3, 8), date(2026, 11, 1), date(2026, 11, 25)):
            start, end = day_bounds(day, zone)
            assert site_day(start, zone) == day
            assert site_day(end - timedelta(microseconds=1), zone) == day
            assert site_day(start - timedelta(microseconds=1), zone) == day - timedelta(days=1)
            assert site_day(end, zone) == day + timedelta(days=1)


def test_hourly_buckets_of_dst_days_in_new_york() -> None:
    """Hour buckets are the zone's clock hours: 23 on the spring day, 25 in autumn."""
    for day, expected in ((date(2026, 3, 8), 23), (date(2026, 11, 1), 25), (date(2026, 7, 1), 24)):
        start, end = day_bounds(day, NEW_YORK)
        buckets = set()
        instant = start
        while instant < end:
            local = instant.astimezone(NEW_YORK)
            buckets.add(local.replace(minute=0, second=0, microsecond=0).astimezone(UTC))
            instant += timedelta(minutes=10)
        assert len(buckets) == expected


@pytest.mark.parametrize("zone", [NEW_YORK, SHANGHAI, ZoneInfo("Europe/Berlin"),
                                  ZoneInfo("America/Santiago")])  # DST at midnight
def test_a_years_days_tile_the_timeline(zone: ZoneInfo) -> None:
    day, lengths = date(2026, 1, 1), []
    previous_end = None
    while day.year == 2026:
        start, end = day_bounds(day, zone)
        if previous_end is not None:
            assert start == previous_end
        lengths.append((end - start) // HOUR)
        previous_end = end
        day += timedelta(days=1)
    assert sum(lengths) == 365 * 24
    if zone is SHANGHAI:
        assert set(lengths) == {24}
    else:
        assert sorted(lengths).count(23) == 1 and sorted(lengths).count(25) == 1


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)),
       st.sampled_from([SHANGHAI, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/Santiago"),
                                    ZoneInfo("UTC")]))
def test_every_instant_lies_within_the_bounds_of_its_day(instant: datetime, zone: ZoneInfo) -> None:
    start, end = day_bounds(site_day(instant, zone), zone)
    assert start <= instant < end


# -- clocks ------------------------------------------------------------------------


def test_manual_clock_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 11, 25, 10, 0))
    clock = ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI))
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 11, 26, 10, 0))
    # The refused instant did not move the clock.
    assert clock.now() == utc(2026, 11, 25, 2, 0)


def test_manual_clock_reads_set_and_advances_in_utc() -> None:
    clock = ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI))
    assert clock.now() == utc(2026, 11, 25, 2, 0)
    assert clock.now().utcoffset() == timedelta(0)
    clock.advance(timedelta(hours=3, minutes=30))
    assert clock.now() == utc(2026, 11, 25, 5, 30)
    clock.set(datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK))  # the second 01:30 (EST)
    assert clock.now() == utc(2026, 11, 1, 6, 30)
    assert clock.now().utcoffset() == timedelta(0)


def test_system_clock_is_aware_utc() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    after = datetime.now(UTC)
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= after
