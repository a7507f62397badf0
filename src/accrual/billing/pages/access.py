"""Who is looking at a billing-center page: the center, the signed-in account, the renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from accrual.billing.wiring import BillingCenter
from accrual.web.rendering import Pages, SignInRequired

SESSION_COOKIE = "accrual_billing"
SIGN_IN = "/billing/signin"
TEMPLATES = Path(__file__).parent / "templates"


def center_of(request: Request) -> BillingCenter:
    center: BillingCenter = request.app.state.billing  # set by the app factory
    return center


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.billing_pages  # set by the app factory
    return pages


def session_token(request: Request) -> str:
    return request.cookies.get(SESSION_COOKIE, "")


def signed_in(request: Request, center: Annotated[BillingCenter, Depends(center_of)]) -> str:
    """The signed-in billing account; otherwise off to the sign-in page and back."""
    token = session_token(request)
    account_id = center.accounts.account_for_session(token) if token else None
    if account_id is None:
        raise SignInRequired(SIGN_IN)
    return account_id


CenterDep = Annotated[BillingCenter, Depends(center_of)]
PagesDep = Annotated[Pages, Depends(pages_of)]
AccountDep = Annotated[str, Depends(signed_in)]
