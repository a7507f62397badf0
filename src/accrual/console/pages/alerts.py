"""High-consumption alerts: an item's daily threshold, mailed once when exceeded."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.catalog import ITEMS
from accrual.console.pages.access import ConsoleDep, PagesDep
from accrual.console.pages.billing import BillingDep
from accrual.contract.errors import ServiceError
from accrual.infra.http import status_for
from accrual.web.rendering import PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/console/workspaces/{workspace_id}/billing/alerts",
                   route_class=PageRoute, include_in_schema=False)
CSRF = [Depends(check_csrf)]
# The alert service's refusals, beside the field they are about.
FIELDS = {"unknown_item": "item", "invalid_threshold": "threshold",
          "threshold_out_of_range": "threshold", "invalid_amount": "threshold"}


def _page(request: Request, console: ConsoleDep, pages: PagesDep, access: BillingDep,
          error: ServiceError | None = None, item: str = "", threshold: str = "") -> Response:
    # A role granted Plans & Billing reads the rules; owners and admins change them.
    rules = console.alerts.list(access.account_id, access.workspace_id)
    items = [code for code, i in ITEMS.items() if not i.legacy]
    return pages.render(request, "console/billing_alerts.html", {
        "access": access, "rules": rules, "items": items, "item": item, "threshold": threshold,
        "error": field_error(error, FIELDS) if error else None,
        "currency": console.config.currency, "done": request.query_params.get("done")},
        status=status_for(error) if error else 200)


@router.get("")
def alerts(request: Request, console: ConsoleDep, pages: PagesDep, access: BillingDep) -> Response:
    return _page(request, console, pages, access)


@router.post("", dependencies=CSRF)
def set_alert(request: Request, console: ConsoleDep, pages: PagesDep, access: BillingDep,
              item: Annotated[str, Form(max_length=64)],
              threshold: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        console.alerts.set(access.account_id, access.workspace_id, item, threshold)
    except ServiceError as error:
        return _page(request, console, pages, access, error, item, threshold)
    return redirect(f"/console/workspaces/{access.workspace_id}/billing/alerts?done=saved")


@router.post("/{item}/delete", dependencies=CSRF)
def delete_alert(console: ConsoleDep, access: BillingDep, item: str) -> Response:
    console.alerts.remove(access.account_id, access.workspace_id, item)
    return redirect(f"/console/workspaces/{access.workspace_id}/billing/alerts?done=removed")
