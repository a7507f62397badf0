"""What the pages of all sides share: static files, the language switch, the home page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from accrual.clock import Clock
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


def install(app: FastAPI, policy: CookiePolicy, clock: Clock) -> Pages:
    """Mount the static files and the shared pages; returns the shared renderer (also the
    one error pages use)."""
    pages = Pages(SHARED_TEMPLATES, policy, clock=clock)
    app.state.error_pages = pages
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(_router(pages), include_in_schema=False)
    return pages


def _router(pages: Pages) -> APIRouter:
    router = APIRouter(route_class=PageRoute)

    @router.get("/")
    def home(request: Request) -> Response:
        return pages.render(request, "home.html")

    @router.post("/language", dependencies=[Depends(check_csrf)])
    def choose_language(language: Annotated[str, Form(max_length=16)],
                        next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/"
                        ) -> Response:
        """Remember the language in the browser (a year) and go back to the page."""
        response = redirect(local_path(next_path, "/"))
        code = i18n.supported(language)
        if code is not None:
            pages.policy.set(response, LANGUAGE_COOKIE, code, ONE_YEAR_S)
        return response

    return router
