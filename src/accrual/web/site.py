"""What the pages of all sides share: static files, the language switch, the home page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from accrual.clock import Clock
from accrual.fonts import FONTS
from accrual.web import i18n
from accrual.web.rendering import SHARED_TEMPLATES, PageRoute, Pages, redirect
from accrual.web.security import (
    LANGUAGE_COOKIE,
    ONE_YEAR_S,
    CookiePolicy,
    check_csrf,
    local_path,
)

STATIC = SHARED_TEMPLATES.parent / "static"
log = logging.getLogger(__name__)
# Told of a language chosen on a page, e.g. to remember it on the signed-in account.
LanguageListener = Callable[[Request, str], None]


def install(app: FastAPI, policy: CookiePolicy, clock: Clock,
            listeners: Sequence[LanguageListener] = ()) -> Pages:
    """Mount the static files and the shared pages; returns the shared renderer (also the
    one error pages use). ``listeners`` hear each language chosen."""
    pages = Pages(SHARED_TEMPLATES, policy, clock=clock)
    app.state.error_pages = pages
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The Chinese font, for a machine that has none (the stylesheet's fallback).
    app.mount("/fonts", StaticFiles(directory=FONTS), name="fonts")
    app.include_router(_router(pages, listeners), include_in_schema=False)
    return pages


def _router(pages: Pages, listeners: Sequence[LanguageListener]) -> APIRouter:
    router = APIRouter(route_class=PageRoute)

    @router.get("/")
    def home(request: Request) -> Response:
        return pages.render(request, "home.html")

    @router.post("/language", dependencies=[Depends(check_csrf)])
    def choose_language(request: Request, language: Annotated[str, Form(max_length=16)],
                        next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/"
                        ) -> Response:
        """Remember the language in the browser (a year) and on the signed-in accounts
        (the listeners), and go back to the page."""
        response = redirect(local_path(next_path, "/"))
        code = i18n.supported(language)
        if code is not None:
            pages.policy.set(response, LANGUAGE_COOKIE, code, ONE_YEAR_S)
            for listener in listeners:
                try:
                    listener(request, code)
                except Exception:
                    log.exception("remembering language %s on an account failed", code)
        return response

    return router
