"""Billing accounts with their balances, and the billing center's jobs and backlogs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from accrual.billing.operator_pages.invoices import CenterDep, PagesDep
from accrual.billing.services.account_directory import accounts
from accrual.web import paging
from accrual.web.operator import OperatorDep
from accrual.web.rendering import PageRoute

router = APIRouter(prefix="/operator/billing", route_class=PageRoute, include_in_schema=False,
                   dependencies=[OperatorDep])


@router.get("/accounts")
def account_list(request: Request, center: CenterDep, pages: PagesDep) -> Response:
    search = request.query_params.get("q", "")[:200]
    found, total = accounts(center.engine, center.accounts, center.wallet, search)
    table = paging.table(found, request.query_params, {
        "username": lambda r: r.username, "created": lambda r: r.created_at,
        "cash": lambda r: r.balances.cash_minor, "arrears": lambda r: r.balances.arrears_minor},
        default_sort="created", default_descending=True)
    return pages.render(request, "operator/billing/accounts.html",
                        {"table": table, "search": search, "total": total})


@router.get("/jobs")
def jobs(request: Request, center: CenterDep, pages: PagesDep) -> Response:
    """Each job's last run, success and failing units; the relay, mail and marketplace
    reporter backlogs — what `/billing/v1/admin/jobs` and the reporter's backlog answer."""
    listed = sorted([center.inbox.job, center.arrears.job, center.mails.job,
                     center.marketplace_reporter.job, center.marketplace_reconciliation.job,
                     *([center.relay.job] if center.relay is not None else [])],
                    key=lambda job: job.name)
    return pages.render(request, "operator/billing/jobs.html", {
        "jobs": [{**job.view(), "last_success_at": job.last_success_at} for job in listed],
        "degraded": any(job.degraded for job in listed), "mails": center.mails.backlog(),
        "reporter": center.marketplace_reporter.backlog(),
        "relay": center.relay.backlog() if center.relay is not None else None})
