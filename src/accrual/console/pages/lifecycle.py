"""A workspace's settings (current plan, data retention) and its arrears: the lock page
with its countdown, "unlock now" and dissolve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.console.pages.access import ConsoleDep, PagesDep, WorkspaceAccess, WorkspaceDep
from accrual.console.pages.billing import billing_center_path
from accrual.console.services.dissolve import Dissolution
from accrual.contract.errors import ServiceError
from accrual.infra.http import status_for
from accrual.web.rendering import FieldError, PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/console/workspaces/{workspace_id}", route_class=PageRoute,
                   include_in_schema=False)
CSRF = [Depends(check_csrf)]


def _settings(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceAccess,
              error: FieldError | None = None, chosen: str | None = None,
              status: int = 200) -> Response:
    return pages.render(request, "console/settings.html", {
        "access": access, "policies": console.retention.policies(access.workspace_id),
        "error": error, "chosen": chosen, "done": request.query_params.get("done")},
        status=status)


@router.get("/settings")
def settings(request: Request, console: ConsoleDep, pages: PagesDep,
             access: WorkspaceDep) -> Response:
    """Basic information with the current plan (everyone), retention (the owner changes it)."""
    return _settings(request, console, pages, access)


@router.post("/settings/retention/{data_type}", dependencies=CSRF)
def change_retention(request: Request, console: ConsoleDep, pages: PagesDep,
                     access: WorkspaceDep, data_type: str,
                     retention_days: Annotated[str, Form(max_length=8)]) -> Response:
    try:
        days = int(retention_days) if retention_days.isascii() and retention_days.isdigit() \
            else -1
        console.retention.change(access.workspace_id, access.account_id, data_type, days)
    except ServiceError as error:
        return _settings(request, console, pages, access, field_error(error, {}), data_type,
                         status_for(error))
    return redirect(f"/console/workspaces/{access.workspace_id}/settings?done=retention")


@router.get("/locked")
def locked(request: Request, pages: PagesDep, access: WorkspaceDep) -> Response:
    """The lock page: during the countdown its deadline, "unlock now" and dissolve; after
    the lock, what is left to do."""
    return pages.render(request, "console/locked.html", {"access": access, "error": None})


@router.post("/unlock", dependencies=CSRF)
def unlock_now(console: ConsoleDep, access: WorkspaceDep) -> Response:
    """Unlock now: the owner goes, without a password, to the billing center's workspace
    management to recharge or change the settlement method."""
    return redirect(billing_center_path(console, access, "workspaces"))


@router.post("/dissolve", dependencies=CSRF)
def dissolve(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceDep,
             workspace_name: Annotated[str, Form(max_length=200)]) -> Response:
    """Dissolve (the owner, in arrears), confirmed by typing the workspace's name."""
    try:
        Dissolution(console.engine, console.clock, console.day_close).dissolve(
            access.account_id, access.workspace_id, workspace_name)
    except ServiceError as error:
        return pages.render(request, "console/locked.html", {
            "access": access, "error": field_error(error, {
                "confirmation_mismatch": "workspace_name"})}, status=status_for(error))
    return redirect("/console/?done=dissolved")
