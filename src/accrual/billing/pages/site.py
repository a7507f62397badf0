"""Signing in (with the username, or a console owner's one-time ticket) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from accrual.billing.pages.access import (
    SESSION_COOKIE,
    CenterDep,
    PagesDep,
    center_of,
    session_token,
)
from accrual.contract.errors import ServiceError
from accrual.infra.http import client_address, status_for
from accrual.web import i18n
from accrual.web.rendering import PageRoute, Pages, field_error, redirect, retry_after
from accrual.web.security import LANGUAGE_COOKIE, ONE_YEAR_S, check_csrf, local_path

router = APIRouter(prefix="/billing", route_class=PageRoute, include_in_schema=False)
CSRF = [Depends(check_csrf)]
HOME = "/billing/overview"
# Where a console owner's ticket leads.
DESTINATIONS = {"overview": HOME, "recharge": "/billing/recharge",
                "workspaces": "/billing/workspaces"}


@router.get("/")
def home() -> Response:
    return redirect(HOME)


@router.get("/signin")
def sign_in_form(request: Request, pages: PagesDep) -> Response:
    return pages.render(request, "billing/signin.html",
                        {"next": local_path(request.query_params.get("next"), HOME),
                         "username": "", "error": None})


@router.post("/signin", dependencies=CSRF)
def sign_in(request: Request, center: CenterDep, pages: PagesDep,
            username: Annotated[str, Form(max_length=320)],
            password: Annotated[str, Form(max_length=1024)],
            next_path: Annotated[str, Form(alias="next", max_length=2000)] = HOME) -> Response:
    try:
        token, _account_id = center.accounts.login(username, password,
                                                    client_address(request))
    except ServiceError as error:
        return pages.render(request, "billing/signin.html",
                            {"next": local_path(next_path, HOME), "username": username,
                             "error": field_error(error, {"invalid_credentials": "password"})},
                            status=status_for(error), headers=retry_after(error))
    response = redirect(local_path(next_path, HOME))
    pages.policy.set(response, SESSION_COOKIE, token,
                     int(center.config.session_ttl.total_seconds()))
    _adopt_account_language(request, response, pages, center.accounts.account(_account_id).language)
    return response


def _adopt_account_language(request: Request, response: Response, pages: Pages,
                            language: str) -> None:
    """A browser that never chose a language gets the account's (the one its mails use)."""
    code = i18n.supported(language)
    if LANGUAGE_COOKIE not in request.cookies and code is not None:
        pages.policy.set(response, LANGUAGE_COOKIE, code, ONE_YEAR_S)


def remember_language(request: Request, language: str) -> None:
    """A language chosen on any page while signed in to the billing center: the account's
    (its mails' too), so that another browser signing in gets it."""
    center = center_of(request)
    token = session_token(request)
    account_id = center.accounts.account_for_session(token) if token else None
    if account_id is not None:
        center.profiles.update(account_id, language=language)


@router.get("/jump")
def jump(center: CenterDep, pages: PagesDep,
         ticket: Annotated[str, Query(min_length=1, max_length=128)]) -> Response:
    """A console owner's one-time ticket: a session of the bound account, no password."""
    visit = center.console_visits.redeem(ticket)
    response = redirect(f"/billing/workspaces/{visit.workspace_id}/move"
                        if visit.destination == "change_binding"
                        else DESTINATIONS.get(visit.destination, HOME))
    pages.policy.set(response, SESSION_COOKIE, visit.token,
                     int(center.config.session_ttl.total_seconds()))
    return response


@router.post("/signout", dependencies=CSRF)
def sign_out(request: Request, center: CenterDep, pages: PagesDep) -> Response:
    token = session_token(request)
    if token:
        center.accounts.logout(token)
    response = redirect("/billing/signin")
    pages.policy.clear(response, SESSION_COOKIE)
    return response
