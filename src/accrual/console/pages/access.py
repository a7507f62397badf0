"""Who is looking at a console page: the console, the signed-in account, the renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from accrual.console.wiring import Console
from accrual.web.rendering import Pages, SignInRequired

SESSION_COOKIE = "accrual_console"
SIGN_IN = "/console/signin"
TEMPLATES = Path(__file__).parent / "templates"


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console  # set by the app factory
    return console


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.console_pages  # set by the app factory
    return pages


def session_token(request: Request) -> str:
    return request.cookies.get(SESSION_COOKIE, "")


def signed_in(request: Request, console: Annotated[Console, Depends(console_of)]) -> str:
    """The signed-in console account; otherwise off to the sign-in page and back."""
    token = session_token(request)
    account_id = console.accounts.account_for_session(token) if token else None
    if account_id is None:
        raise SignInRequired(SIGN_IN)
    return account_id


ConsoleDep = Annotated[Console, Depends(console_of)]
PagesDep = Annotated[Pages, Depends(pages_of)]
AccountDep = Annotated[str, Depends(signed_in)]
