"""Cookies and CSRF for the pages.

A page session is the side's own API session token (the same one its
``/sessions`` endpoint issues, revocable the same way) kept in an HttpOnly,
SameSite=Lax cookie, Secure unless configured off for plain-HTTP set-ups.
Forms carry a CSRF token that must equal the browser's CSRF cookie (double
submit): another site can make the browser send the cookie, but cannot read
it to put the same value in the form.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from accrual.contract.errors import Forbidden

CSRF_COOKIE = "accrual_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LANGUAGE_COOKIE = "accrual_lang"
ONE_YEAR_S = 365 * 24 * 3600


@dataclass(frozen=True)
class CookiePolicy:
    secure: bool = True

    def set(self, response: Response, name: str, value: str, max_age_s: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age_s, path="/", secure=self.secure,
                            httponly=True, samesite="lax")

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")


def csrf_token(request: Request) -> str:
    """The browser's CSRF token; a new one (set on the response by ``render``) when it
    has none or a malformed one."""
    known = getattr(request.state, "csrf_token", None)
    if known is None:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        known = cookie if _well_formed(cookie) else secrets.token_urlsafe(32)
        request.state.csrf_token = known
    return str(known)


def keep_csrf_cookie(request: Request, response: Response, policy: CookiePolicy) -> None:
    token = csrf_token(request)
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, max_age=ONE_YEAR_S, path="/",
                            secure=policy.secure, httponly=True, samesite="strict")


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request whose form field (or, from a script, the
    X-CSRF-Token header) does not carry the browser's CSRF token, or that comes from
    another origin."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise Forbidden("csrf_failed", "this form was sent from another site; reload the page "
                                       "and send it again")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        sent = field if isinstance(field, str) else ""
    if not _well_formed(cookie) or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise Forbidden("csrf_failed", "the form has expired; reload the page and send it again")


def _well_formed(token: str) -> bool:
    return 20 <= len(token) <= 100 and token.replace("-", "").replace("_", "").isalnum() \
        and token.isascii()


def local_path(target: object, default: str) -> str:
    """A redirect target only when it is a path on this site (no open redirects)."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or len(target) > 2000 or not target.isprintable():
        return default
    return target
