"""Invoice requests waiting for the operator: issue one with its number, or reject it
with a reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from starlette.responses import Response

from accrual.billing.wiring import BillingCenter
from accrual.contract.errors import ServiceError
from accrual.infra.http import status_for
from accrual.money import format_minor
from accrual.web.operator import OperatorDep
from accrual.web.rendering import FieldError, PageRoute, Pages, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/operator/billing", route_class=PageRoute, include_in_schema=False,
                   dependencies=[OperatorDep])
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
STATUSES = ("requested", "issued", "rejected")
DONE = {"issued", "rejected"}


def _center(request: Request) -> BillingCenter:
    center: BillingCenter = request.app.state.billing  # set by the app factory
    return center


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.billing_operator_pages  # set by the app factory
    return pages


CenterDep = Annotated[BillingCenter, Depends(_center)]
PagesDep = Annotated[Pages, Depends(_pages)]


def _page(request: Request, center: BillingCenter, pages: Pages, *,
          error: FieldError | None = None, failed_id: int | None = None,
          status: int = 200) -> Response:
    shown = request.query_params.get("status", "requested")
    shown = shown if shown in STATUSES else "requested"
    rows = [{"request": found, "amount": format_minor(found.amount_minor, found.currency)}
            for found in center.invoices.pending(shown)]
    done = request.query_params.get("done")
    return pages.render(request, "operator/billing/invoices.html",
                        {"rows": rows, "shown": shown, "statuses": STATUSES, "error": error,
                         "failed_id": failed_id, "done": done if done in DONE else None},
                        status=status)


@router.get("/invoices")
def invoices(request: Request, center: CenterDep, pages: PagesDep) -> Response:
    return _page(request, center, pages)


@router.post("/invoices/{invoice_id}/issue", dependencies=[Depends(check_csrf)])
def issue(request: Request, invoice_id: RowId, center: CenterDep, pages: PagesDep,
          invoice_number: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        center.invoices.issue(invoice_id, invoice_number)
    except ServiceError as error:
        return _page(request, center, pages, failed_id=invoice_id, status=status_for(error),
                     error=field_error(error, {"invalid_invoice_number": "invoice_number",
                                               "invoice_number_taken": "invoice_number"}))
    return redirect("/operator/billing/invoices?done=issued")


@router.post("/invoices/{invoice_id}/reject", dependencies=[Depends(check_csrf)])
def reject(request: Request, invoice_id: RowId, center: CenterDep, pages: PagesDep,
           reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    try:
        center.invoices.reject(invoice_id, reason)
    except ServiceError as error:
        return _page(request, center, pages, failed_id=invoice_id, status=status_for(error),
                     error=field_error(error, {"invalid_reason": "reason"}))
    return redirect("/operator/billing/invoices?done=rejected")
