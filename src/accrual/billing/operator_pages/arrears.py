"""Open arrears cases, soonest lock first, as the operator API lists them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from accrual.billing.operator_pages.invoices import CenterDep, PagesDep
from accrual.money import format_minor
from accrual.web.operator import OperatorDep
from accrual.web.rendering import PageRoute

router = APIRouter(prefix="/operator/billing", route_class=PageRoute, include_in_schema=False,
                   dependencies=[OperatorDep])


@router.get("/arrears")
def arrears(request: Request, center: CenterDep, pages: PagesDep) -> Response:
    cases = [{"case": case, "owed": format_minor(case.owed_minor, case.currency)}
             for case in center.arrears.cases()]
    return pages.render(request, "operator/billing/arrears.html", {"cases": cases})
