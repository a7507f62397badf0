"""What a workspace's members see of its money and usage (`/console/v1`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Query

from accrual.clock import site_day
from accrual.console.api.deps import AccountDep, ConsoleDep, console_router
from accrual.console.domain.periods import RangeRefused, report_range
from accrual.console.domain.roles import Action
from accrual.console.services.permissions import require
from accrual.console.services.reports import (
    Consumption,
    DetailLine,
    Usage,
    billing_details,
    consumption,
    usage,
)
from accrual.console.wiring import Console
from accrual.contract.errors import Invalid
from accrual.infra.http import IsoDate, error_responses
from accrual.money import format_decimal

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
    try:
        start, end = report_range(today, start, end, period, default_days)
    except RangeRefused as refused:
        raise Invalid("invalid_range", str(refused)) from None
    return start, end, today


@router.get("/workspaces/{workspace_id}/billing-details", tags=["console: billing"],
            responses=error_responses(401, 403, 404, 422))
def list_billing_details(workspace_id: str, console: ConsoleDep, account_id: AccountDep,
                         start: FromQuery = None, end: ToQuery = None,
                         period: PeriodQuery = None) -> dict[str, Any]:
    """The workspace's billing details (charges and adjustments) for a range of days or a
    named period (today, yesterday, this or last week, this or last month, this year).
    For the owner, administrators and roles with the billing permission (403
    `billing_permission_required` for others)."""
    require(console.accounts, account_id, workspace_id, Action.VIEW_BILLING)
    start, end, _ = _range(console, start, end, period)
    details = billing_details(console.engine, workspace_id, start, end)
    return {"workspace_id": workspace_id, "from": start.isoformat(), "to": end.isoformat(),
            "details": [detail_json(d) for d in details]}


@router.get("/workspaces/{workspace_id}/consumption", tags=["console: billing"],
            responses=error_responses(401, 403, 404, 422))
def consumption_analysis(workspace_id: str, console: ConsoleDep, account_id: AccountDep,
                         start: FromQuery = None, end: ToQuery = None,
                         period: PeriodQuery = None) -> dict[str, Any]:
    """Consumption analysis: the amount per item with its share, and a daily series."""
    require(console.accounts, account_id, workspace_id, Action.VIEW_BILLING)
    start, end, _ = _range(console, start, end, period)
    return consumption_json(consumption(console.engine, workspace_id, start, end,
                                        console.config.currency))


@router.get("/workspaces/{workspace_id}/usage", tags=["console: metering"],
            responses=error_responses(401, 403, 404, 422))
def usage_view(workspace_id: str, console: ConsoleDep, account_id: AccountDep,
               start: FromQuery = None, end: ToQuery = None,
               period: PeriodQuery = None) -> dict[str, Any]:
    """Usage per item and retention tier per day (daily rule applied), up to yesterday and
    today so far (`complete: false`), for any plan; the series behind the usage charts."""
    require(console.accounts, account_id, workspace_id, Action.VIEW_BILLING)
    start, end, today = _range(console, start, end, period, default_days=6)
    return usage_json(usage(console.engine, workspace_id, start, end, today))


def detail_json(d: DetailLine) -> dict[str, Any]:
    return {"id": d.id, "day": d.day.isoformat(), "item": d.item,
            "retention_days": d.retention_days, "kind": d.kind, "revision": d.revision,
            "quantity": d.quantity, "unit_size": d.unit_size, "unit_price": d.unit_price,
            "amount": str(d.amount), "currency": d.currency,
            "price_book_version": d.price_book_version,
            "billing_account_id": d.billing_account_id, "adjusts": d.adjusts,
            "reason": d.reason, "created_at": d.created_at.isoformat()}


def consumption_json(c: Consumption) -> dict[str, Any]:
    return {"workspace_id": c.workspace_id, "from": c.start.isoformat(), "to": c.end.isoformat(),
            "currency": c.currency, "total": str(c.total),
            "items": [{"item": i.item, "amount": str(i.amount), "share": str(i.share)}
                      for i in c.items],
            "daily": [{"day": d.day.isoformat(), "amount": str(d.amount)} for d in c.daily]}


def usage_json(u: Usage) -> dict[str, Any]:
    return {"workspace_id": u.workspace_id, "from": u.start.isoformat(), "to": u.end.isoformat(),
            "today": u.today.isoformat(),
            "items": [{"item": s.item, "retention_days": s.retention_days,
                       "days": [{"day": p.day.isoformat(), "quantity": format_decimal(p.quantity),
                                 "complete": p.complete} for p in s.days]}
                      for s in u.items]}
