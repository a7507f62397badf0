"""What a workspace's members see of its money and usage (`/console/v1`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query

from accrual.clock import site_day
from accrual.console.api.deps import AccountDep, ConsoleDep, console_router
from accrual.console.queries import billing_details, consumption, period_bounds, usage
from accrual.console.wiring import Console
from accrual.contract.errors import Invalid
from accrual.infra.http import IsoDate, error_responses

router = console_router()


Period = Literal["today", "yesterday", "this_week", "last_week", "this_month", "last_month",
                 "this_year"]
FromQuery = Annotated[IsoDate | None, Query(alias="from", description="First day (site-local)")]
ToQuery = Annotated[IsoDate | None, Query(alias="to", description="Last day, inclusive")]
PeriodQuery = Annotated[Period | None, Query(description="Instead of from/to: a named period "
                                                         "(weeks start on Monday)")]


def _range(console: Console, start: date | None, end: date | None, period: str | None,
           default_days: int = 30) -> tuple[date, date, date]:
    today = site_day(console.clock.now(), console.config.zone)
    if period is not None:
        if start is not None or end is not None:
            raise Invalid("invalid_range", "give either a period or from/to, not both")
        start, end = period_bounds(period, today)
    end = end or today
    start = start or max(end, date.min + timedelta(days=default_days)) - timedelta(days=default_days)
    if start > end:
        raise Invalid("invalid_range", "'from' must not be after 'to'")
    if (end - start).days > 366:
        raise Invalid("invalid_range", "ask for at most 366 days at a time")
    return start, end, today


@router.get("/workspaces/{workspace_id}/billing-details", tags=["console: billing"],
            responses=error_responses(401, 404, 422))
def list_billing_details(workspace_id: str, console: ConsoleDep, account_id: AccountDep,
                         start: FromQuery = None, end: ToQuery = None,
                         period: PeriodQuery = None) -> dict[str, Any]:
    """The workspace's billing details (charges and adjustments) for a range of days or a
    named period (today, yesterday, this or last week, this or last month, this year)."""
    console.accounts.require_member(account_id, workspace_id)
    start, end, _ = _range(console, start, end, period)
    details = billing_details(console.engine, workspace_id, start, end)
    return {"workspace_id": workspace_id, "from": start.isoformat(), "to": end.isoformat(),
            "details": details}


@router.get("/workspaces/{workspace_id}/consumption", tags=["console: billing"],
            responses=error_responses(401, 404, 422))
def consumption_analysis(workspace_id: str, console: ConsoleDep, account_id: AccountDep,
                         start: FromQuery = None, end: ToQuery = None,
                         period: PeriodQuery = None) -> dict[str, Any]:
    """Consumption analysis: the amount per item with its share, and a daily series."""
    console.accounts.require_member(account_id, workspace_id)
    start, end, _ = _range(console, start, end, period)
    return consumption(console.engine, workspace_id, start, end, console.config.currency)


@router.get("/workspaces/{workspace_id}/usage", tags=["console: metering"],
            responses=error_responses(401, 404, 422))
def usage_view(workspace_id: str, console: ConsoleDep, account_id: AccountDep,
               start: FromQuery = None, end: ToQuery = None,
               period: PeriodQuery = None) -> dict[str, Any]:
    """Usage per item and retention tier per day (daily rule applied), up to yesterday and
    today so far (`complete: false`), for any plan; the series behind the usage charts."""
    console.accounts.require_member(account_id, workspace_id)
    start, end, today = _range(console, start, end, period, default_days=6)
    return usage(console.engine, workspace_id, start, end, today)
