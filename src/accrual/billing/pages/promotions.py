"""Administrator approvals: raises to administrator of the commercial workspaces this
account pays for, waiting for its answer (reference-billing.md 1.4)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from accrual.billing.pages.access import AccountDep, CenterDep, PagesDep
from accrual.contract.errors import ServiceError
from accrual.infra.http import status_for
from accrual.web.rendering import PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/billing/promotions", route_class=PageRoute,
                   include_in_schema=False)
CSRF = [Depends(check_csrf)]


def _page(request: Request, center: CenterDep, pages: PagesDep, account_id: str,
          error: ServiceError | None = None) -> Response:
    return pages.render(request, "billing/promotions.html", {
        "account": center.accounts.account(account_id),
        "requests": center.promotions.pending_for(account_id),
        "error": field_error(error, {}) if error else None,
        "done": request.query_params.get("done")},
        status=status_for(error) if error else 200)


@router.get("")
def promotions(request: Request, center: CenterDep, pages: PagesDep,
               account_id: AccountDep) -> Response:
    return _page(request, center, pages, account_id)


@router.post("/{request_id}/{decision}", dependencies=CSRF)
def decide(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
           request_id: str, decision: Literal["approve", "reject"]) -> Response:
    try:
        center.promotions.decide(account_id, request_id, decision == "approve")
    except ServiceError as error:
        return _page(request, center, pages, account_id, error)
    center.nudge_relay()
    return redirect("/billing/promotions?done=" + ("approved" if decision == "approve"
                                                   else "rejected"))
