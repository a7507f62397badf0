"""The forgotten-password pages of either side: ask for a code by the account's name,
then set a new password with it. Each side gives its reset service (``request`` and
``reset``, which keep the rules) and how its pages look; the pages tell nobody whether
an account exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.contract.errors import ServiceError
from accrual.infra.http import status_for
from accrual.web import passwords
from accrual.web.rendering import PageRoute, Pages, field_error, redirect
from accrual.web.security import check_csrf

FIELDS = {**passwords.FIELDS, "wrong_code": "code", "invalid_request": "name"}


class ResetService(Protocol):
    def request(self, name: object) -> None: ...

    def reset(self, name: object, code: object, new_password: object) -> None: ...


@dataclass(frozen=True)
class Side:
    prefix: str  # "/console"
    side_name: str  # "Console", translated by the side's catalog
    name_label: str  # what names an account there ("Email"), translated likewise
    service: Callable[[Request], ResetService]
    pages: Callable[[Request], Pages]


def router(side: Side) -> APIRouter:
    routes = APIRouter(prefix=side.prefix, route_class=PageRoute, include_in_schema=False)
    sign_in = f"{side.prefix}/signin"

    def page(request: Request, *, name: str = "", step: str = "ask",
             error: ServiceError | None = None) -> Response:
        return side.pages(request).render(request, "forgot_password.html", {
            "side": side, "sign_in": sign_in, "name": name, "step": step,
            "error": field_error(error, FIELDS) if error else None},
            status=status_for(error) if error else 200)

    @routes.get("/forgot")
    def ask(request: Request) -> Response:
        return page(request)

    @routes.post("/forgot", dependencies=[Depends(check_csrf)])
    def send(request: Request, name: Annotated[str, Form(max_length=320)]) -> Response:
        side.service(request).request(name)
        return page(request, name=name, step="reset")

    @routes.post("/forgot/reset", dependencies=[Depends(check_csrf)])
    def reset(request: Request, name: Annotated[str, Form(max_length=320)],
              code: Annotated[str, Form(max_length=64)],
              new_password: Annotated[str, Form(max_length=1024)],
              new_password_again: Annotated[str, Form(max_length=1024)]) -> Response:
        try:
            passwords.check_typed_twice(new_password, new_password_again)
            side.service(request).reset(name, code, new_password)
        except ServiceError as error:
            return page(request, name=name, step="reset", error=error)
        return redirect(f"{sign_in}?done=reset")

    return routes
