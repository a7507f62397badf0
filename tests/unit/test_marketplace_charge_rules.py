"""The marketplace charge reporter's pure rules (decisions.md 23)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from accrual.billing.domain import marketplace_charges as rules
from accrual.billing.domain.marketplace import Buyer, ReportLimits, UsageReport

HOURLY = ReportLimits(batch_size=25, max_request_bytes=1_000_000, period=timedelta(hours=1),
                      lateness=timedelta(hours=6), min_quantity=0, max_quantity=2**31 - 1)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC))
minor = st.integers(min_value=-10**12, max_value=10**12)


@given(carried=minor, new=minor, unit=st.integers(1, 10_000),
       cap=st.integers(0, 10**9))
def test_a_cut_reports_whole_units_and_carries_the_rest(carried: int, new: int, unit: int,
                                                        cap: int) -> None:
    piece = rules.cut(carried, new, unit, cap)
    assert piece.quantity >= 0 and piece.quantity <= cap
    assert piece.amount_minor == piece.quantity * unit
    # Nothing is lost or made: what is reported plus what is carried is what was owed.
    assert piece.amount_minor + piece.carry_minor == carried + new
    if carried + new > 0 and piece.quantity < cap:
        assert 0 <= piece.carry_minor < unit
    if carried + new <= 0:
        assert piece.quantity == 0 and piece.carry_minor == carried + new


def test_cut_examples() -> None:
    assert rules.cut(0, 250, 100, 10) == rules.Cut(2, 200, 50)
    assert rules.cut(50, 60, 100, 10) == rules.Cut(1, 100, 10)
    assert rules.cut(30, -500, 100, 10) == rules.Cut(0, 0, -470)  # never negative
    assert rules.cut(-470, 600, 100, 10) == rules.Cut(1, 100, 30)
    assert rules.cut(0, 5_000, 100, 10) == rules.Cut(10, 1_000, 4_000)  # the vendor's cap


@given(now=instants, hourly=st.booleans())
def test_the_period_contains_now_and_starts_on_its_boundary(now: datetime, hourly: bool) -> None:
    period = timedelta(hours=1) if hourly else timedelta(days=1)
    start = rules.period_start(now, period)
    assert start <= now < start + period
    assert start.tzinfo is not None and start.minute == 0 and start.second == 0
    assert start.microsecond == 0 and (hourly or start.hour == 0)
    assert rules.period_start(start, period) == start


def test_the_deadline_is_the_vendors_lateness_after_the_period_start() -> None:
    start = datetime(2026, 11, 26, 2, tzinfo=UTC)
    assert rules.deadline(start, HOURLY) == datetime(2026, 11, 26, 8, tzinfo=UTC)


@given(attempts=st.integers(1, 100), draw=st.floats(0, 1), throttled=st.booleans())
def test_retries_back_off_with_full_jitter_under_a_cap(attempts: int, draw: float,
                                                       throttled: bool) -> None:
    delay = rules.retry_delay(attempts, throttled=throttled, random=lambda: draw)
    ceiling = min(rules.RETRY_CAP, rules.RETRY_BASE * 2 ** min(attempts - 1, 30))
    ceiling *= rules.THROTTLED_FACTOR if throttled else 1
    assert timedelta(0) <= delay <= ceiling
    assert delay == ceiling * draw


def test_retries_grow_and_throttling_waits_longer() -> None:
    top = [rules.retry_delay(n, random=lambda: 1.0) for n in range(1, 10)]
    assert top[:4] == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2),
                       timedelta(minutes=4)]
    assert top[-1] == rules.RETRY_CAP
    assert rules.retry_delay(3, throttled=True, random=lambda: 1.0) == timedelta(minutes=8)
    assert rules.retry_delay(3, random=lambda: 0.0) == timedelta(0)


@given(now=instants, delay=st.timedeltas(timedelta(0), timedelta(days=2)),
       left=st.timedeltas(timedelta(0), timedelta(days=2)))
def test_a_retry_never_waits_past_half_the_time_left(now: datetime, delay: timedelta,
                                                     left: timedelta) -> None:
    at = rules.next_attempt_at(now, delay, now + left)
    assert now <= at <= now + delay and at <= now + left / 2 + timedelta(microseconds=1)


def test_alerts_come_with_a_third_of_the_window_left_or_the_margin() -> None:
    start = datetime(2026, 11, 26, 2, tzinfo=UTC)
    end = start + timedelta(hours=6)
    assert rules.alert_at(start, end) == start + timedelta(hours=4)
    assert rules.alert_at(start, end, timedelta(minutes=90)) == end - timedelta(minutes=90)


def report(n: int, account: str = "123456789012") -> UsageReport:
    return UsageReport(str(n), Buyer("aws", account, "prod-1"), "usage", datetime(
        2026, 11, 26, tzinfo=UTC), n)


@given(count=st.integers(0, 200), batch_size=st.integers(1, 30),
       max_bytes=st.integers(600, 10_000))
def test_batches_keep_order_and_limits(count: int, batch_size: int, max_bytes: int) -> None:
    limits = ReportLimits(batch_size, max_bytes, timedelta(hours=1), timedelta(hours=6), 0, 10)
    reports = [report(n) for n in range(count)]
    found = rules.batches(reports, limits, rules.report_bytes)
    assert [r for batch in found for r in batch] == reports
    for batch in found:
        assert 1 <= len(batch) <= batch_size
        weight = rules.REQUEST_OVERHEAD_BYTES + sum(rules.report_bytes(r) for r in batch)
        assert weight <= max_bytes or len(batch) == 1  # a heavy one goes alone


def test_the_aws_batch_is_25() -> None:
    assert [len(b) for b in rules.batches([report(n) for n in range(60)], HOURLY,
                                          rules.report_bytes)] == [25, 25, 10]
