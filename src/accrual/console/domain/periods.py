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
