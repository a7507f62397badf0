"""Re-rates: price closed days again after a price book correction, and their audit."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.console.operator_pages.days import ConsoleDep, PagesDep
from accrual.contract.errors import Invalid, ServiceError
from accrual.infra.http import status_for
from accrual.web.operator import OperatorDep
from accrual.web.rendering import PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/operator/console", route_class=PageRoute, include_in_schema=False,
                   dependencies=[OperatorDep])
FIELDS = {"reason_required": "reason", "invalid_range": "end", "invalid_start": "start",
          "invalid_end": "end", "actor_required": "actor"}


def _day(value: str, code: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(code, "give the day as YYYY-MM-DD") from None


@router.get("/rerates")
def rerates(request: Request, console: ConsoleDep, pages: PagesDep) -> Response:
    return _page(request, console, pages, {"start": "", "end": "", "reason": "", "actor": ""})


def _page(request: Request, console: ConsoleDep, pages: PagesDep, form: dict[str, str],
          error: ServiceError | None = None) -> Response:
    return pages.render(request, "operator/console/rerates.html", {
        "form": form, "records": console.rerates.history(), "currency": console.config.currency,
        "done": request.query_params.get("done") == "rerated",
        "error": field_error(error, FIELDS) if error else None},
        status=status_for(error) if error else 200)


@router.post("/rerates", dependencies=[Depends(check_csrf)])
def start(request: Request, console: ConsoleDep, pages: PagesDep,
          start: Annotated[str, Form(max_length=40)] = "",
          end: Annotated[str, Form(max_length=40)] = "",
          reason: Annotated[str, Form(max_length=500)] = "",
          actor: Annotated[str, Form(max_length=320)] = "") -> Response:
    form = {"start": start, "end": end, "reason": reason, "actor": actor}
    try:
        if not actor.strip():
            raise Invalid("actor_required", "say who is re-rating: it is audited")
        console.rerates.run(_day(start, "invalid_start"), _day(end, "invalid_end"),
                            reason=reason, actor=actor.strip())
    except ServiceError as error:
        return _page(request, console, pages, form, error)
    console.nudge_relay()
    return redirect("/operator/console/rerates?done=rerated")
