"""The workspace's Billing module ("Plans & Billing"): settlement account overview, usage
statistics, bill details, consumption analysis, free-plan quota and the jump into the
billing center. Alerts are in ``alerts.py``."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.clock import site_day
from accrual.console.domain.periods import PERIODS, RangeRefused, report_range
from accrual.console.domain.roles import Action, refusal_for
from accrual.console.pages.access import ConsoleDep, PagesDep, WorkspaceAccess, WorkspaceDep
from accrual.console.pages.labels import LABELS
from accrual.console.services.reports import billing_details, consumption, usage
from accrual.console.wiring import Console
from accrual.contract.errors import Forbidden, Invalid
from accrual.contract.messages import SignInDestination, SignInTicketRequest
from accrual.contract.ports import PeerRefused, PeerUnavailable
from accrual.web import paging
from accrual.web.rendering import FieldError, PageRoute, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/console/workspaces/{workspace_id}/billing", route_class=PageRoute,
                   include_in_schema=False)
CSRF = [Depends(check_csrf)]


def billing_access(access: WorkspaceDep) -> WorkspaceAccess:
    """The Billing module is for the owner, administrators and roles given billing."""
    if not access.billing_view:
        refusal = refusal_for(Action.VIEW_BILLING)
        raise Forbidden(refusal.code, refusal.message)
    return access


BillingDep = Annotated[WorkspaceAccess, Depends(billing_access)]


def _item(code: str) -> str:
    return LABELS["item"].get(code, code)


def today_of(console: Console) -> date:
    return site_day(console.clock.now(), console.config.zone)


def _day(text: str | None, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text) if len(text) == 10 and text.isascii() else _bad(field)
    except ValueError:
        return _bad(field)


def _bad(field: str) -> date:
    raise Invalid("invalid_date", f"'{field}' must be a day written YYYY-MM-DD")


def chosen_range(console: Console, query: Mapping[str, str], default_period: str | None,
                 default_days: int = 30) -> tuple[date, date, str | None, FieldError | None]:
    """The filter's range from ?period= or ?from=&to=; a refused filter falls back to the
    default range and says why beside the filter."""
    today = today_of(console)
    period = query.get("period") or None
    try:
        if period is not None and period not in PERIODS:
            raise Invalid("invalid_period", "pick one of the listed periods")
        start, end = _day(query.get("from"), "from"), _day(query.get("to"), "to")
        if period is None and start is None and end is None:
            period = default_period
        try:
            first, last = report_range(today, start, end, period, default_days)
        except RangeRefused as refused:
            raise Invalid("invalid_range", str(refused)) from None
        return first, last, period, None
    except Invalid as refused:
        first, last = report_range(today, None, None, default_period, default_days)
        return first, last, default_period, FieldError(refused.code, refused.message, "from")


@router.get("/")
def overview(request: Request, console: ConsoleDep, pages: PagesDep,
             access: BillingDep) -> Response:
    """Settlement account overview: the bound billing account's wallet, the buttons."""
    workspace = access.membership.workspace
    wallet, problem = None, None
    if workspace.billing_account_id is not None:
        try:
            wallet = console.billing.wallet_overview(workspace.billing_account_id)
        except PeerRefused as refused:
            problem = refused.message
        except PeerUnavailable:
            _ = pages.gettext(request)
            problem = _(
                "The billing center cannot be reached right now; the balances will show again "
                "when it answers.")
    return pages.render(request, "console/billing_overview.html",
                        {"access": access, "wallet": wallet, "problem": problem,
                         "currency": console.config.currency})


def billing_center_path(console: Console, access: WorkspaceAccess, destination: str) -> str:
    """Where the owner's browser goes to enter the billing center without a password (a
    one-time ticket); refused to anyone else, and for a workspace with no billing account."""
    workspace = access.membership.workspace
    if not access.owner:
        raise Forbidden("owner_only", "only the workspace owner opens the billing center from "
                                      "here; others sign in there with their username")
    if workspace.billing_account_id is None:
        raise Forbidden("not_bound", "this workspace has no billing account yet: upgrade it first")
    if destination not in get_args(SignInDestination):
        raise Invalid("invalid_destination", "open the overview, recharge, workspaces or "
                                             "change binding")
    try:
        ticket = console.billing.sign_in_ticket(SignInTicketRequest(
            billing_account_id=workspace.billing_account_id, workspace_id=workspace.id,
            destination=destination))
    except PeerRefused as refused:
        raise Forbidden(refused.code, refused.message) from None
    except PeerUnavailable:
        raise Forbidden("billing_center_unavailable",
                        "the billing center cannot be reached right now; try again shortly") from None
    return ticket.path


@router.post("/open", dependencies=CSRF)
def open_billing_center(console: ConsoleDep, access: BillingDep,
                        destination: Annotated[str, Form(max_length=16)] = "overview") -> Response:
    """The owner's password-less jump into the billing center (overview, recharge or
    workspace management)."""
    return redirect(billing_center_path(console, access, destination))


@router.get("/usage")
def usage_statistics(request: Request, console: ConsoleDep, pages: PagesDep,
                     access: BillingDep) -> Response:
    """Per item and tier: yesterday's (complete) and today's so far, and the last week."""
    today = today_of(console)
    found = usage(console.engine, access.workspace_id, today - timedelta(days=6), today, today)
    days = [today - timedelta(days=n) for n in range(6, -1, -1)]
    _ = pages.gettext(request)
    rows = []
    for series in found.items:
        by_day = {p.day: p.quantity for p in series.days}
        rows.append({"item": series.item, "retention_days": series.retention_days,
                     "yesterday": by_day.get(today - timedelta(days=1), Decimal(0)),
                     "today": by_day.get(today, Decimal(0)),
                     "chart": {"labels": [d.isoformat() for d in days],
                               "datasets": [{"label": _(_item(series.item)),
                                             "data": [by_day.get(d, Decimal(0)) for d in days]}]}})
    return pages.render(request, "console/billing_usage.html",
                        {"access": access, "rows": rows, "today": today})


def _details_of(console: Console, access: WorkspaceAccess, query: Mapping[str, str]
                ) -> tuple[date, date, str | None, FieldError | None, list[Any]]:
    start, end, period, error = chosen_range(console, query, "this_month")
    return start, end, period, error, billing_details(console.engine, access.workspace_id,
                                                      start, end)


@router.get("/details")
def details(request: Request, console: ConsoleDep, pages: PagesDep,
            access: BillingDep) -> Response:
    """Bill details for a quick range or from/to: total, daily spend per item, the lines."""
    query = request.query_params
    start, end, period, error, lines = _details_of(console, access, query)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    items = sorted({line.item for line in lines})
    spend: dict[tuple[date, str], Decimal] = {}
    for line in lines:
        spend[line.day, line.item] = spend.get((line.day, line.item), Decimal(0)) + line.amount
    _ = pages.gettext(request)
    chart = {"labels": [d.isoformat() for d in days],
             "datasets": [{"label": _(_item(item)), "stack": "spend",
                           "data": [spend.get((d, item), Decimal(0)) for d in days]}
                          for item in items]}
    table = paging.table(lines, query, {
        "day": lambda d: d.day, "item": lambda d: d.item, "amount": lambda d: d.amount,
        "kind": lambda d: d.kind}, default_sort="day", default_descending=True)
    return pages.render(request, "console/billing_details.html", {
        "access": access, "start": start, "end": end, "period": period, "error": error,
        "periods": PERIODS, "table": table, "chart": chart, "items": items,
        "total": sum((line.amount for line in lines), Decimal(0)),
        "currency": console.config.currency,
        "csv_query": f"from={start.isoformat()}&to={end.isoformat()}"}, status=422 if error else 200)


@router.get("/details.csv")
def details_csv(request: Request, console: ConsoleDep, access: BillingDep) -> Response:
    """The shown range's details as CSV (one row per detail, amounts as decimal text)."""
    start, end, _period, error, lines = _details_of(console, access, request.query_params)
    if error is not None:
        raise Invalid(error.code, error.message)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "item", "retention_days", "kind", "quantity", "unit_size",
                     "unit_price", "amount", "currency", "id"])
    for line in sorted(lines, key=lambda d: (d.day, d.item, d.retention_days, d.revision)):
        writer.writerow([line.day.isoformat(), line.item, line.retention_days, line.kind,
                         line.quantity, line.unit_size, line.unit_price, str(line.amount),
                         line.currency, line.id])
    name = f"billing-details-{access.workspace_id}-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


@router.get("/consumption")
def consumption_analysis(request: Request, console: ConsoleDep, pages: PagesDep,
                         access: BillingDep) -> Response:
    """Yesterday's spend, the range's total (default this month), per item with its share,
    and a daily chart."""
    start, end, period, error = chosen_range(console, request.query_params, "this_month")
    found = consumption(console.engine, access.workspace_id, start, end,
                        console.config.currency)
    _ = pages.gettext(request)
    yesterday = today_of(console) - timedelta(days=1)
    spent_yesterday = consumption(console.engine, access.workspace_id, yesterday, yesterday,
                                  console.config.currency).total
    chart = {"labels": [d.day.isoformat() for d in found.daily],
             "datasets": [{"label": _("Amount"),
                           "data": [d.amount for d in found.daily]}]}
    return pages.render(request, "console/billing_consumption.html", {
        "access": access, "found": found, "start": start, "end": end, "period": period,
        "error": error, "periods": PERIODS, "chart": chart, "yesterday": spent_yesterday,
        "currency": console.config.currency}, status=422 if error else 200)


@router.get("/quota")
def quota(request: Request, console: ConsoleDep, pages: PagesDep,
          access: BillingDep) -> Response:
    """Today's use against the free plan's daily quotas."""
    return pages.render(request, "console/billing_quota.html", {
        "access": access, "quota": console.admission.quota_usage(access.workspace_id)})
