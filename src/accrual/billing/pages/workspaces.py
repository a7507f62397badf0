"""Workspace management: the workspaces this account pays for, their settlement method
and lock state with its countdown; changing the method; the linked cloud accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.billing.domain.methods import available
from accrual.billing.pages.access import AccountDep, CenterDep, PagesDep
from accrual.billing.services.accounts import PaidWorkspace
from accrual.billing.wiring import BillingCenter
from accrual.contract.errors import NotFound, ServiceError
from accrual.infra.http import status_for
from accrual.web import paging
from accrual.web.rendering import FieldError, PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/billing", route_class=PageRoute, include_in_schema=False)
CSRF = [Depends(check_csrf)]
METHOD_FIELDS = {"invalid_settlement_method": "settlement_method",
                 "cloud_account_required": "settlement_method",
                 "cloud_account_ambiguous": "cloud_account_id",
                 "cloud_account_not_found": "cloud_account_id",
                 "marketplace_not_configured": "settlement_method",
                 "method_not_available": "settlement_method"}


@dataclass(frozen=True)
class Row:
    workspace: PaidWorkspace
    state: str | None  # countdown | locked, while the account is in arrears


def _workspaces_page(request: Request, center: BillingCenter, pages: PagesDep, account_id: str,
                     error: FieldError | None = None, chosen: str | None = None,
                     status: int = 200) -> Response:
    arrears = center.arrears.of_account(account_id)
    states = {shown.workspace_id: shown.state.value
              for shown in (arrears.case.workspaces if arrears.case else ())}
    rows = [Row(w, states.get(w.workspace_id)) for w in center.accounts.workspaces_of(account_id)]
    table = paging.table(rows, request.query_params, {
        "name": lambda r: r.workspace.name or "", "site": lambda r: r.workspace.site or "",
        "method": lambda r: r.workspace.settlement_method,
        "since": lambda r: r.workspace.bound_since}, default_sort="name")
    clouds = [c for c in center.methods.cloud_accounts(account_id) if c.status == "active"]
    return pages.render(request, "billing/workspaces.html", {
        "account": center.accounts.account(account_id), "table": table, "case": arrears.case,
        "methods": available(center.config.currency), "clouds": clouds, "error": error,
        "chosen": chosen, "done": request.query_params.get("done")}, status=status)


@router.get("/workspaces")
def workspaces(request: Request, center: CenterDep, pages: PagesDep,
               account_id: AccountDep) -> Response:
    return _workspaces_page(request, center, pages, account_id)


@router.post("/workspaces/{workspace_id}/settlement-method", dependencies=CSRF)
def change_method(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
                  workspace_id: str,
                  settlement_method: Annotated[str, Form(max_length=32)],
                  cloud_account_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    """From the next billing day; once a month; the service's refusals shown beside the form."""
    try:
        change = center.methods.change(account_id, workspace_id, settlement_method,
                                       cloud_account_id or None)
    except ServiceError as error:
        return _workspaces_page(request, center, pages, account_id,
                                field_error(error, METHOD_FIELDS), workspace_id,
                                status_for(error))
    return redirect("/billing/workspaces?done=" + ("unlocked" if change.unlocked else "changed"))


# Bind Workspace: the account asks for a workspace by its ID, the workspace's owner is
# mailed a code, the code binds it (a free workspace becomes commercial).
BIND_FIELDS = {"workspace_not_found": "workspace_id", "already_bound": "workspace_id",
               "invalid_request": "workspace_id", "mail_unavailable": "workspace_id",
               "wrong_code": "code", "code_expired": "code", "too_many_attempts": "code"}


def _bind_page(request: Request, center: BillingCenter, pages: PagesDep, account_id: str, *,
               workspace_id: str = "", sent_to: str = "", expires_at: datetime | None = None,
               error: ServiceError | None = None) -> Response:
    return pages.render(request, "billing/bind_workspace.html", {
        "account": center.accounts.account(account_id), "workspace_id": workspace_id,
        "sent_to": sent_to, "expires_at": expires_at,
        "error": field_error(error, BIND_FIELDS) if error else None},
        status=status_for(error) if error else 200)


@router.get("/workspaces/bind")
def bind_form(request: Request, center: CenterDep, pages: PagesDep,
              account_id: AccountDep) -> Response:
    return _bind_page(request, center, pages, account_id)


@router.post("/workspaces/bind", dependencies=CSRF)
def bind_request(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
                 workspace_id: Annotated[str, Form(max_length=64)]) -> Response:
    """Step 1: the workspace's owner is mailed a code; the page asks for it."""
    workspace_id = workspace_id.strip()
    try:
        sent = center.binding_codes.request_for_account(account_id, workspace_id)
    except ServiceError as error:
        return _bind_page(request, center, pages, account_id, workspace_id=workspace_id,
                          error=error)
    return _bind_page(request, center, pages, account_id, workspace_id=workspace_id,
                      sent_to=sent.sent_to, expires_at=sent.expires_at)


@router.post("/workspaces/bind/confirm", dependencies=CSRF)
def bind_confirm(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
                 workspace_id: Annotated[str, Form(max_length=64)],
                 code: Annotated[str, Form(max_length=32)],
                 sent_to: Annotated[str, Form(max_length=330)] = "") -> Response:
    """Step 2: the owner's code binds the workspace at once."""
    try:
        center.binding_codes.confirm_for_account(account_id, workspace_id, code.strip())
    except ServiceError as error:
        return _bind_page(request, center, pages, account_id, workspace_id=workspace_id,
                          sent_to=sent_to or "?", error=error)
    center.nudge_relay()
    return redirect("/billing/workspaces?done=bound")


# Change binding: hand a workspace to another account with the same enterprise
# certification, from the next billing day.
MOVE_FIELDS = {"account_not_found": "to_username", "same_account": "to_username",
               "certification_mismatch": "to_username"}


def _move_page(request: Request, center: BillingCenter, pages: PagesDep, account_id: str,
               workspace_id: str, to_username: str = "",
               error: ServiceError | None = None) -> Response:
    paid = {w.workspace_id: w for w in center.accounts.workspaces_of(account_id)}
    if workspace_id not in paid:  # not this account's: as an unknown workspace
        raise NotFound("workspace_not_found", f"workspace {workspace_id} is not bound to this "
                                              "account")
    return pages.render(request, "billing/move_workspace.html", {
        "account": center.accounts.account(account_id), "workspace": paid[workspace_id],
        "to_username": to_username,
        "error": field_error(error, MOVE_FIELDS) if error else None},
        status=status_for(error) if error else 200)


@router.get("/workspaces/{workspace_id}/move")
def move_form(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
              workspace_id: str) -> Response:
    return _move_page(request, center, pages, account_id, workspace_id)


@router.post("/workspaces/{workspace_id}/move", dependencies=CSRF)
def move(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
         workspace_id: str, to_username: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        center.workspace_moves.move(account_id, workspace_id, to_username.strip())
    except ServiceError as error:
        return _move_page(request, center, pages, account_id, workspace_id, to_username, error)
    center.nudge_relay()
    return redirect("/billing/workspaces?done=moved")


@router.get("/cloud-accounts")
def cloud_accounts(request: Request, center: CenterDep, pages: PagesDep,
                   account_id: AccountDep) -> Response:
    """The marketplace accounts this account settles through, and the workspaces of each."""
    paid = center.accounts.workspaces_of(account_id)
    return pages.render(request, "billing/cloud_accounts.html", {
        "account": center.accounts.account(account_id),
        "clouds": center.methods.cloud_accounts(account_id),
        "by_vendor": {w.settlement_method: [x for x in paid
                                            if x.settlement_method == w.settlement_method]
                      for w in paid if w.settlement_method != "billing_center"}})
