"""Rendering a page: one Jinja2 environment per language, the shared layout, errors.

Each side makes its own ``Pages`` with its own template folder; the shared
layout and macros (``web/templates``) are found after it. Page handlers raise
the services' ``ServiceError`` as the API does; ``PageRoute`` turns one into
an HTML error page with the same status the API would answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from accrual.clock import Clock, SystemClock
from accrual.contract.errors import ServiceError, TooManyAttempts
from accrual.infra.http import status_for
from accrual.web import i18n, refusals
from accrual.web.security import (
    LANGUAGE_COOKIE,
    CookiePolicy,
    csrf_token,
    keep_csrf_cookie,
)

log = logging.getLogger("accrual.web")
SHARED_TEMPLATES = Path(__file__).parent / "templates"


def language_of(request: Request) -> str:
    """The language chosen on the pages (remembered in a cookie), else the browser's."""
    return i18n.supported(request.cookies.get(LANGUAGE_COOKIE)) \
        or i18n.best_accepted(request.headers.get("accept-language"))


class SignInRequired(Exception):
    """Raised by a page's access check; the page router answers with a redirect."""

    def __init__(self, sign_in_path: str) -> None:
        super().__init__(sign_in_path)
        self.sign_in_path = sign_in_path


@dataclass(frozen=True)
class FieldError:
    """A refusal shown beside the form field it is about (``field`` None: above the form)."""

    code: str
    message: str
    field: str | None = None


def field_error(error: ServiceError, fields: Mapping[str, str]) -> FieldError:
    """The service's refusal placed beside the field its code names (``fields``: code →
    field name), in the service's own words."""
    return FieldError(error.code, error.message, fields.get(error.code))


class Pages:
    """The renderer of one package of pages: its ``templates`` folder and the ``locale``
    folder beside it (over the shared ones)."""

    def __init__(self, templates: Path, policy: CookiePolicy,
                 shared: Mapping[str, Any] | None = None, *,
                 clock: Clock | None = None) -> None:
        self.policy = policy
        self.clock = clock or SystemClock()
        self.catalogs = templates.parent / "locale"
        self._envs = {language: self._environment(templates, language, shared or {})
                      for language in i18n.LANGUAGES}

    def _environment(self, templates: Path, language: str,
                     shared: Mapping[str, Any]) -> Environment:
        env = Environment(loader=ChoiceLoader([FileSystemLoader(templates),
                                               FileSystemLoader(SHARED_TEMPLATES)]),
                          autoescape=select_autoescape(default=True, default_for_string=True),
                          undefined=StrictUndefined, extensions=["jinja2.ext.i18n"],
                          trim_blocks=True, lstrip_blocks=True)
        translations = i18n.translations(language, self.catalogs)
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        env.filters["refusal"] = lambda error: refusals.in_language(error, language,
                                                                   translations.gettext)
        env.filters["money"] = lambda amount, currency: i18n.money(amount, currency, language)
        env.filters["number"] = lambda value: i18n.number(value, language)
        env.filters["day"] = lambda value: i18n.day(value, language) if value else "–"
        env.filters["moment"] = lambda value, zone: i18n.moment(value, zone, language) \
            if value else "–"
        env.filters["chart"] = chart_json
        env.globals["language"] = language
        env.globals["languages"] = i18n.LANGUAGE_NAMES
        env.globals["now"] = self.clock.now  # the injected clock, not the wall clock
        env.globals["seconds_until"] = lambda moment: max(
            0, int((moment - self.clock.now()).total_seconds())) if moment else 0
        env.globals.update(shared)  # e.g. the package's labels (codes → texts to translate)
        return env

    def render(self, request: Request, template: str, context: Mapping[str, Any] | None = None,
               *, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
        language = language_of(request)
        values = {"request": request, "csrf_token": csrf_token(request),
                  "path": request.url.path, "here": _here(request), **(context or {})}
        html = self._envs[language].get_template(template).render(values)
        response = HTMLResponse(html, status_code=status, headers=headers)
        response.headers["content-language"] = language
        response.headers["cache-control"] = "no-store"
        keep_csrf_cookie(request, response, self.policy)
        return response

    def gettext(self, request: Request) -> Callable[[str], str]:
        """The request's translator, for text made in Python (flash messages)."""
        return i18n.translations(language_of(request), self.catalogs).gettext


def _here(request: Request) -> str:
    """Where the language switch comes back to: this page, or for a form's answer (a POST's
    address may not be opened) the page the form was on."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path.startswith("/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


def retry_after(error: ServiceError) -> dict[str, str]:
    """The ``Retry-After`` header of a throttled refusal (none for others)."""
    return {"retry-after": str(error.retry_after_s)} if isinstance(error, TooManyAttempts) else {}


def redirect(path: str) -> RedirectResponse:
    """After a successful form post: see the result with a GET (no resubmission)."""
    return RedirectResponse(path, status_code=303)


def chart_json(series: Any) -> str:
    """Chart data for a ``data-chart`` attribute (escaped there like any text): decimals
    as strings, which the chart library reads as numbers."""
    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, date | datetime):
            return value.isoformat()
        raise TypeError(f"not chart data: {type(value).__name__}")
    return json.dumps(series, default=plain, ensure_ascii=False, separators=(",", ":"))


class PageRoute(APIRoute):
    """A page route: a refusal becomes an HTML error page with the API's status; a page
    that needs a sign-in redirects there, coming back afterwards."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as needed:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{needed.sign_in_path}?next={quote(target, safe='/')}",
                                        status_code=303)
            except ServiceError as error:
                pages: Pages = request.app.state.error_pages
                return pages.render(request, "error.html", {"error": error},
                                    status=status_for(error), headers=retry_after(error))
            except RequestValidationError as invalid:
                # A form or query the page's own forms never send (a field missing, too
                # long): a page saying so, not the API's JSON.
                fields = ", ".join(str(e.get("loc", ("?",))[-1]) for e in invalid.errors()[:5])
                refusal = ServiceError("invalid_request", f"the form is incomplete or too long: "
                                                          f"{fields}; reload the page and try again")
                pages = request.app.state.error_pages
                return pages.render(request, "error.html", {"error": refusal}, status=422)
        return page_handler
