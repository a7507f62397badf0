"""Upgrade a free workspace to the commercial plan: bind it to a Billing Center account
with the code mailed to that account's email (the owner only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.console.pages.access import ConsoleDep, PagesDep, WorkspaceAccess, WorkspaceDep
from accrual.contract.errors import Invalid, ServiceError
from accrual.infra.http import status_for
from accrual.web.rendering import PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/console/workspaces/{workspace_id}/upgrade", route_class=PageRoute,
                   include_in_schema=False)
CSRF = [Depends(check_csrf)]
FIELDS = {"account_not_found": "username", "invalid_username": "username",
          "invalid_code": "code", "code_expired": "code", "code_mismatch": "code",
          "code_not_found": "code", "wrong_code": "code", "terms_not_accepted": "agree"}


def _page(request: Request, pages: PagesDep, access: WorkspaceAccess, *, step: str,
          username: str = "", sent_to: str | None = None, error: ServiceError | None = None
          ) -> Response:
    return pages.render(request, "console/upgrade.html", {
        "access": access, "step": step, "username": username, "sent_to": sent_to,
        "error": field_error(error, FIELDS) if error else None},
        status=status_for(error) if error else 200)


@router.get("")
def upgrade_page(request: Request, pages: PagesDep, access: WorkspaceDep) -> Response:
    return _page(request, pages, access, step="done" if access.membership.workspace.plan
                 == "commercial" else "username")


@router.post("/code", dependencies=CSRF)
def send_code(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceDep,
              username: Annotated[str, Form(max_length=64)]) -> Response:
    """Mail a code to the Billing Center account's email."""
    try:
        sent = console.plan_upgrades.request(access.account_id, access.workspace_id, username)
    except ServiceError as error:
        return _page(request, pages, access, step="username", username=username, error=error)
    return _page(request, pages, access, step="code", username=username, sent_to=sent.sent_to)


@router.post("", dependencies=CSRF)
def upgrade(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceDep,
            username: Annotated[str, Form(max_length=64)],
            code: Annotated[str, Form(max_length=32)],
            agree: Annotated[str, Form(max_length=8)] = "") -> Response:
    """Bind with the code and upgrade (irreversible)."""
    try:
        if agree != "yes":
            raise Invalid("terms_not_accepted", "accept the agreement to upgrade")
        console.plan_upgrades.confirm(access.account_id, access.workspace_id, username, code)
    except ServiceError as error:
        return _page(request, pages, access, step="code", username=username, error=error)
    return redirect(f"/console/workspaces/{access.workspace_id}/upgrade")
