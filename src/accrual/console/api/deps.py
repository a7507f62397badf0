"""What every console endpoint needs: the console, the operator check, the session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from accrual.console.wiring import Console
from accrual.contract.errors import Unauthorized
from accrual.infra.http import StrictJSONRoute, bearer_token, plain_path_params, same_secret


def console_router() -> APIRouter:
    return APIRouter(prefix="/console/v1", dependencies=[Depends(plain_path_params)],
                     route_class=StrictJSONRoute)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console  # set by the app factory
    return console


ConsoleDep = Annotated[Console, Depends(console_of)]


def require_operator(request: Request) -> None:
    if not same_secret(bearer_token(request), request.app.state.admin_token):
        raise Unauthorized("unauthorized", "this needs the operator token")


def session_account(request: Request, console: ConsoleDep) -> str:
    account_id = console.accounts.account_for_session(bearer_token(request))
    if account_id is None:
        raise Unauthorized("unauthorized", "unknown or expired session; log in again")
    return account_id


AccountDep = Annotated[str, Depends(session_account)]
