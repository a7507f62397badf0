"""Registration on the website: a console account, a billing account with the same
username and a first workspace bound to it, all three or none; or, for a buyer sent by a
cloud marketplace, the first workspace settled through that subscription."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.console.pages.access import SESSION_COOKIE, AccountDep, ConsoleDep, PagesDep
from accrual.contract.errors import Invalid, ServiceError
from accrual.infra.http import client_address, status_for
from accrual.web.rendering import PageRoute, field_error
from accrual.web.security import check_csrf

router = APIRouter(prefix="/console", route_class=PageRoute, include_in_schema=False)
CSRF = [Depends(check_csrf)]
FIELDS = {"invalid_email": "email", "email_taken": "email", "invalid_password": "password",
          "invalid_username": "username", "username_taken": "username",
          "invalid_workspace_name": "workspace_name", "invalid_language": "language",
          "invalid_activation": "activation_id", "activation_not_found": "activation_id",
          "activation_expired": "activation_id", "activation_used": "activation_id",
          "activation_not_claimed": "activation_id", "activation_not_yours": "activation_id",
          "subscription_ended": "activation_id"}
SETTLEMENTS = ("billing_center", "marketplace")


def _form(request: Request, pages: PagesDep, values: dict[str, str],
          error: ServiceError | None = None) -> Response:
    return pages.render(request, "console/register.html", {
        "values": values, "settlements": SETTLEMENTS,
        "error": field_error(error, FIELDS) if error else None},
        status=status_for(error) if error else 200)


@router.get("/register")
def register_form(request: Request, pages: PagesDep) -> Response:
    activation = request.query_params.get("activation", "")[:40]
    return _form(request, pages, {"email": "", "username": "", "workspace_name": "",
                                  "language": "en",
                                  "settlement": "marketplace" if activation else "billing_center",
                                  "activation_id": activation})


@router.post("/register", dependencies=CSRF)
def register(request: Request, console: ConsoleDep, pages: PagesDep,
             email: Annotated[str, Form(max_length=320)],
             password: Annotated[str, Form(max_length=256)],
             username: Annotated[str, Form(max_length=64)],
             workspace_name: Annotated[str, Form(max_length=200)],
             language: Annotated[str, Form(max_length=8)] = "en",
             settlement: Annotated[str, Form(max_length=32)] = "billing_center",
             activation_id: Annotated[str, Form(max_length=40)] = "") -> Response:
    """Make the three (or nothing), then sign the new account in."""
    values = {"email": email, "username": username, "workspace_name": workspace_name,
              "language": language, "settlement": settlement, "activation_id": activation_id}
    marketplace = settlement == "marketplace"
    try:
        if marketplace and not activation_id.strip():
            raise Invalid("invalid_activation", "subscribe in the marketplace first, then "
                                                "give the activation it sent you here")
        made = console.accounts.register(email, password, username, workspace_name, language,
                                         activation_id.strip() if marketplace else None)
        token = console.accounts.login(email, password, client_address(request))
    except ServiceError as error:
        return _form(request, pages, values, error)
    # The success page shows the ingest key once (it is stored only as a hash); no redirect.
    response = pages.render(request, "console/registered.html", {"made": made}, status=201)
    pages.policy.set(response, SESSION_COOKIE, token,
                     int(console.config.session_ttl.total_seconds()))
    return response



NEW_WORKSPACE_FIELDS = {"invalid_workspace_name": "workspace_name", "invalid_language": "language",
                        **{code: "activation_id" for code, field in FIELDS.items()
                           if field == "activation_id"}}


@router.get("/workspaces/new")
def new_workspace_form(request: Request, pages: PagesDep, account_id: AccountDep) -> Response:
    return pages.render(request, "console/new_workspace.html", {
        "values": {"workspace_name": "", "language": "en", "activation_id": ""}, "error": None})


@router.post("/workspaces/new", dependencies=CSRF)
def new_workspace(request: Request, console: ConsoleDep, pages: PagesDep, account_id: AccountDep,
                  workspace_name: Annotated[str, Form(max_length=200)] = "",
                  language: Annotated[str, Form(max_length=8)] = "en",
                  activation_id: Annotated[str, Form(max_length=40)] = "") -> Response:
    """A further workspace: free until it is upgraded, or settled through a marketplace
    activation from its first day. The ingest key is shown once."""
    try:
        made = console.accounts.create_workspace(account_id, workspace_name, language,
                                                 activation_id.strip() or None)
    except ServiceError as error:
        return pages.render(request, "console/new_workspace.html", {
            "values": {"workspace_name": workspace_name, "language": language,
                       "activation_id": activation_id},
            "error": field_error(error, NEW_WORKSPACE_FIELDS)}, status=status_for(error))
    return pages.render(request, "console/registered.html", {"made": made, "new": True},
                        status=201)
