"""Close a day and watch the console's jobs, as the operator API does."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.console.wiring import Console
from accrual.web.i18n import N_
from accrual.web.operator import OperatorDep
from accrual.web.rendering import FieldError, PageRoute, Pages
from accrual.web.security import check_csrf

BAD_DAY = N_("Give the day as YYYY-MM-DD.")
router = APIRouter(prefix="/operator/console", route_class=PageRoute, include_in_schema=False,
                   dependencies=[OperatorDep])


def _console(request: Request) -> Console:
    console: Console = request.app.state.console  # set by the app factory
    return console


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.console_operator_pages  # set by the app factory
    return pages


ConsoleDep = Annotated[Console, Depends(_console)]
PagesDep = Annotated[Pages, Depends(_pages)]


@router.get("/close-day")
def close_day_form(request: Request, console: ConsoleDep, pages: PagesDep) -> Response:
    return pages.render(request, "operator/console/close_day.html",
                        {"day": console.day_close.last_closable_day().isoformat(),
                         "result": None, "error": None})


@router.post("/close-day", dependencies=[Depends(check_csrf)])
def close_day(request: Request, console: ConsoleDep, pages: PagesDep,
              day: Annotated[str, Form(max_length=40)] = "") -> Response:
    try:
        chosen = date.fromisoformat(day.strip())
    except ValueError:
        error = FieldError("invalid_date", pages.gettext(request)(BAD_DAY), "day")
        return pages.render(request, "operator/console/close_day.html",
                            {"day": day, "result": None, "error": error}, status=422)
    # Closing is idempotent, so showing the result here (no redirect) resends nothing harmful.
    result = console.day_close.close_day(chosen)
    delivered = console.nudge_relay()
    return pages.render(request, "operator/console/close_day.html",
                        {"day": chosen.isoformat(), "error": None,
                         "result": {"day": result.day, "charges": result.charges,
                                    "adjustments": result.adjustments,
                                    "already_closed": result.already_closed,
                                    "delivered": delivered, "failed": result.failed}})


@router.get("/jobs")
def jobs(request: Request, console: ConsoleDep, pages: PagesDep) -> Response:
    listed = sorted((console.day_close.job, console.relay.job, console.inbox.job),
                    key=lambda job: job.name)
    pending, oldest = console.relay.backlog()
    views: list[dict[str, Any]] = [
        {**job.view(), "last_success_at": job.last_success_at} for job in listed]
    return pages.render(request, "operator/console/jobs.html",
                        {"jobs": views, "pending": pending, "oldest": oldest,
                         "degraded": any(job.degraded for job in listed),
                         "last_closable_day": console.day_close.last_closable_day()})
