"""The named periods of the console's filters (today, last week, this month …)."""

from __future__ import annotations

from datetime import date, timedelta

PERIODS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month", "this_year")


def period_bounds(period: str, today: date) -> tuple[date, date]:
    """[first, last] day of a named period, weeks starting on Monday."""
    if period == "today":
        return today, today
    if period == "yesterday":
        day = today - timedelta(days=1)
        return day, day
    if period == "this_week":
        return today - timedelta(days=today.weekday()), today
    if period == "last_week":
        end = today - timedelta(days=today.weekday() + 1)
        return end - timedelta(days=6), end
    if period == "this_month":
        return today.replace(day=1), today
    if period == "last_month":
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end
    if period == "this_year":
        return today.replace(month=1, day=1), today
    raise ValueError(period)


class RangeRefused(ValueError):
    """A report range the console does not answer (the API and the pages say why)."""


MAX_RANGE_DAYS = 366


def report_range(today: date, start: date | None, end: date | None, period: str | None,
                 default_days: int = 30) -> tuple[date, date]:
    """The days a report covers: a named period, or from/to (each defaulting: to today,
    from ``default_days`` before the end), at most a year."""
    if period is not None:
        if start is not None or end is not None:
            raise RangeRefused("give either a period or from/to, not both")
        start, end = period_bounds(period, today)
    end = end or today
    start = start or max(end, date.min + timedelta(days=default_days)) - timedelta(days=default_days)
    if start > end:
        raise RangeRefused("'from' must not be after 'to'")
    if (end - start).days > MAX_RANGE_DAYS:
        raise RangeRefused(f"ask for at most {MAX_RANGE_DAYS} days at a time")
    return start, end
