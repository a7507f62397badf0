"""The change-password page of either side: the current password, the new one twice.
A side gives its page (template and what it shows), who is signed in, and its service's
``change_password`` (which keeps the rules)."""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations, and
# theirs name the side's dependency, a local of router(), which only eager evaluation sees.
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.contract.errors import Invalid, ServiceError
from accrual.infra.http import status_for
from accrual.web.rendering import PageRoute, Pages, field_error, redirect, retry_after
from accrual.web.security import check_csrf

# The services' refusals, beside the field they are about.
FIELDS = {"wrong_password": "current_password", "too_many_attempts": "current_password",
          "invalid_password": "new_password", "password_unchanged": "new_password",
          "password_mismatch": "new_password_again"}


def check_typed_twice(new: str, again: str) -> None:
    if new != again:
        raise Invalid("password_mismatch", "the new password was not typed the same twice")


class ChangesPasswords(Protocol):
    def change_password(self, account_id: str, current: str, new: str,
                        keep_token: str | None = None) -> int: ...


@dataclass(frozen=True)
class Page:
    path: str  # "/console/account"; the form posts to path + "/password"
    template: str
    context: Callable[[Request, str], Mapping[str, Any]]  # what the page shows the account
    signed_in: Callable[..., str]  # the side's dependency: the signed-in account's id
    session_token: Callable[[Request], str]
    accounts: Callable[[Request], ChangesPasswords]
    pages: Callable[[Request], Pages]


def router(page: Page) -> APIRouter:
    routes = APIRouter(prefix=page.path, route_class=PageRoute, include_in_schema=False)
    Account = Annotated[str, Depends(page.signed_in)]

    def show(request: Request, account_id: str, error: ServiceError | None = None) -> Response:
        return page.pages(request).render(request, page.template, {
            **page.context(request, account_id),
            "error": field_error(error, FIELDS) if error else None,
            "done": request.query_params.get("done")},
            status=status_for(error) if error else 200,
            headers=retry_after(error) if error else None)

    @routes.get("")
    def form(request: Request, account_id: Account) -> Response:
        return show(request, account_id)

    @routes.post("/password", dependencies=[Depends(check_csrf)])
    def change(request: Request, account_id: Account,
               current_password: Annotated[str, Form(max_length=1024)],
               new_password: Annotated[str, Form(max_length=1024)],
               new_password_again: Annotated[str, Form(max_length=1024)]) -> Response:
        """Every other session of the account ends; this browser stays signed in."""
        try:
            check_typed_twice(new_password, new_password_again)
            page.accounts(request).change_password(account_id, current_password, new_password,
                                                   keep_token=page.session_token(request))
        except ServiceError as error:
            return show(request, account_id, error)
        return redirect(f"{page.path}?done=password")

    return routes
