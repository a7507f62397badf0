"""The operator's sign-in and home page, shared by both sides' operator pages.

The operator types the same token the operator API takes, once. The browser keeps
only an HMAC of it (HttpOnly, Secure, SameSite=Strict), so the cookie is useless
outside this deployment and a leaked cookie does not reveal the token.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.web.i18n import N_
from accrual.web.rendering import FieldError, PageRoute, Pages, SignInRequired, redirect
from accrual.web.security import CookiePolicy, check_csrf, local_path

OPERATOR_COOKIE = "accrual_operator"
SIGN_IN = "/operator/signin"
HOME = "/operator/"
EIGHT_HOURS_S = 8 * 3600
WRONG_TOKEN = N_("That is not the operator token.")


def _mark(token: str) -> str:
    # Keyed by the token itself under a fixed label: a stable value that changes when
    # the operator token is rotated, which signs every operator out.
    return hmac.new(token.encode(), b"accrual operator pages", hashlib.sha256).hexdigest()


def _admin_token(request: Request) -> str:
    token: str = request.app.state.admin_token  # set by the app factory
    return token


def signed_in(request: Request) -> bool:
    cookie = request.cookies.get(OPERATOR_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(),
                                                _mark(_admin_token(request)).encode())


def require_operator(request: Request) -> None:
    """Every operator page depends on this: without the operator cookie, off to sign in."""
    if not signed_in(request):
        raise SignInRequired(SIGN_IN)


OperatorDep = Depends(require_operator)


def router(pages: Pages) -> APIRouter:
    routes = APIRouter(prefix="/operator", route_class=PageRoute, include_in_schema=False)

    @routes.get("/signin")
    def sign_in_page(request: Request) -> Response:
        return pages.render(request, "operator/signin.html",
                            {"error": None, "next": local_path(request.query_params.get("next"),
                                                               HOME)})

    @routes.post("/signin", dependencies=[Depends(check_csrf)])
    def sign_in(request: Request, token: Annotated[str, Form(max_length=500)] = "",
                next_path: Annotated[str, Form(alias="next", max_length=2000)] = HOME
                ) -> Response:
        expected = _admin_token(request)
        if not hmac.compare_digest(token.encode(), expected.encode()):
            error = FieldError("operator_token_invalid",
                               pages.gettext(request)(WRONG_TOKEN),
                               "token")
            return pages.render(request, "operator/signin.html",
                                {"error": error, "next": local_path(next_path, HOME)},
                                status=401)
        response = redirect(local_path(next_path, HOME))
        _strict(pages.policy).set(response, _mark(expected))
        return response

    @routes.post("/signout", dependencies=[Depends(check_csrf)])
    def sign_out() -> Response:
        response = redirect(SIGN_IN)
        _strict(pages.policy).clear(response)
        return response

    @routes.get("/", dependencies=[OperatorDep])
    def home(request: Request) -> Response:
        return pages.render(request, "operator/home.html")

    return routes


class _strict:
    """The operator cookie: SameSite=Strict, unlike the sessions' Lax."""

    def __init__(self, policy: CookiePolicy) -> None:
        self.secure = policy.secure

    def set(self, response: Response, value: str) -> None:
        response.set_cookie(OPERATOR_COOKIE, value, max_age=EIGHT_HOURS_S, path="/",
                            secure=self.secure, httponly=True, samesite="strict")

    def clear(self, response: Response) -> None:
        response.delete_cookie(OPERATOR_COOKIE, path="/", secure=self.secure, httponly=True,
                               samesite="strict")


__all__ = ["HOME", "OPERATOR_COOKIE", "OperatorDep", "require_operator",
           "router", "signed_in"]
