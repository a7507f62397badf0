"""Signing in and out, and the workspace switcher."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.console.pages.access import (
    SESSION_COOKIE,
    AccountDep,
    ConsoleDep,
    PagesDep,
    console_of,
    session_token,
)
from accrual.contract.errors import ServiceError
from accrual.infra.http import client_address, status_for
from accrual.web.rendering import PageRoute, field_error, redirect, retry_after
from accrual.web.security import LANGUAGE_COOKIE, ONE_YEAR_S, check_csrf, local_path

router = APIRouter(prefix="/console", route_class=PageRoute, include_in_schema=False)
CSRF = [Depends(check_csrf)]


@router.get("/signin")
def sign_in_form(request: Request, pages: PagesDep) -> Response:
    return pages.render(request, "console/signin.html",
                        {"next": local_path(request.query_params.get("next"), "/console/"),
                         "email": "", "error": None})


@router.post("/signin", dependencies=CSRF)
def sign_in(request: Request, console: ConsoleDep, pages: PagesDep,
            email: Annotated[str, Form(max_length=320)],
            password: Annotated[str, Form(max_length=1024)],
            next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/console/"
            ) -> Response:
    try:
        token = console.accounts.login(email, password, client_address(request))
    except ServiceError as error:
        return pages.render(request, "console/signin.html",
                            {"next": local_path(next_path, "/console/"), "email": email,
                             "error": field_error(error, {"invalid_credentials": "password"})},
                            status=status_for(error), headers=retry_after(error))
    response = redirect(local_path(next_path, "/console/"))
    pages.policy.set(response, SESSION_COOKIE, token,
                     int(console.config.session_ttl.total_seconds()))
    account_id = console.accounts.account_for_session(token)
    chosen = console.accounts.language_of(account_id) if account_id else None
    if chosen is not None:  # the account's own choice follows it to this browser
        pages.policy.set(response, LANGUAGE_COOKIE, chosen, ONE_YEAR_S)
    return response


def remember_language(request: Request, language: str) -> None:
    """A language chosen on any page while signed in to the console: the account's from
    now on, in every browser it signs in from."""
    console = console_of(request)
    token = session_token(request)
    account_id = console.accounts.account_for_session(token) if token else None
    if account_id is not None:
        console.accounts.set_language(account_id, language)


@router.post("/signout", dependencies=CSRF)
def sign_out(request: Request, console: ConsoleDep, pages: PagesDep) -> Response:
    token = session_token(request)
    if token:
        console.accounts.logout(token)
    response = redirect("/console/signin")
    pages.policy.clear(response, SESSION_COOKIE)
    return response


@router.get("/")
def workspaces(request: Request, console: ConsoleDep, pages: PagesDep,
               account_id: AccountDep) -> Response:
    """The workspace switcher: every workspace the account belongs to, with its role."""
    memberships = console.accounts.workspaces_of(account_id)
    return pages.render(request, "console/workspaces.html", {"memberships": memberships})


@router.get("/switch")
def switch(console: ConsoleDep, account_id: AccountDep, workspace: str = "") -> Response:
    """The switcher's choice: that workspace's pages when the account belongs to it."""
    known = {m.workspace.id for m in console.accounts.workspaces_of(account_id)}
    return redirect(f"/console/workspaces/{workspace}/" if workspace in known else "/console/")
