"""Account security: a new password for the billing account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.billing.pages.access import AccountDep, CenterDep, PagesDep, session_token
from accrual.contract.errors import ServiceError
from accrual.infra.http import status_for
from accrual.web import passwords
from accrual.web.rendering import PageRoute, field_error, redirect, retry_after
from accrual.web.security import check_csrf

router = APIRouter(prefix="/billing/security", route_class=PageRoute, include_in_schema=False)


def _page(request: Request, center: CenterDep, pages: PagesDep, account_id: str,
          error: ServiceError | None = None) -> Response:
    return pages.render(request, "billing/security.html", {
        "account": center.accounts.account(account_id),
        "error": field_error(error, passwords.FIELDS) if error else None,
        "done": request.query_params.get("done")},
        status=status_for(error) if error else 200,
        headers=retry_after(error) if error else None)


@router.get("")
def security(request: Request, center: CenterDep, pages: PagesDep,
             account_id: AccountDep) -> Response:
    return _page(request, center, pages, account_id)


@router.post("/password", dependencies=[Depends(check_csrf)])
def change_password(request: Request, center: CenterDep, pages: PagesDep,
                    account_id: AccountDep,
                    current_password: Annotated[str, Form(max_length=1024)],
                    new_password: Annotated[str, Form(max_length=1024)],
                    new_password_again: Annotated[str, Form(max_length=1024)]) -> Response:
    """Every other session of the account ends; this browser stays signed in."""
    try:
        passwords.check_typed_twice(new_password, new_password_again)
        center.accounts.change_password(account_id, current_password, new_password,
                                        keep_token=session_token(request))
    except ServiceError as error:
        return _page(request, center, pages, account_id, error)
    return redirect("/billing/security?done=password")
