"""Driving the pages without a browser: an HTTPS test client (the cookies are Secure)
and form posts that carry the CSRF token as a browser's would."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx
from fastapi.testclient import TestClient

from accrual.app import Runtime

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def browser_client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(runtime.app, base_url="https://testserver", follow_redirects=False) as client:
        yield client


def csrf(client: TestClient) -> str:
    """The browser's CSRF token (a page visit sets it)."""
    token = client.cookies.get("accrual_csrf")
    if token is None:
        page = client.get("/")
        match = _CSRF.search(page.text)
        assert match, "the home page carries no CSRF token"
        token = match.group(1)
    return token


def submit(client: TestClient, path: str, data: Mapping[str, str] | None = None) -> httpx.Response:
    """A form post as the page's form sends it."""
    return client.post(path, data={"csrf_token": csrf(client), **(data or {})})


def console_sign_in(client: TestClient, email: str, password: str = "correct horse battery") -> None:
    response = submit(client, "/console/signin", {"email": email, "password": password})
    assert response.status_code == 303, response.text


def billing_sign_in(client: TestClient, username: str,
                    password: str = "correct horse battery") -> None:
    response = submit(client, "/billing/signin", {"username": username, "password": password})
    assert response.status_code == 303, response.text


def error_text(page: httpx.Response) -> list[str]:
    """The refusals a page shows (beside fields or above the form)."""
    return re.findall(r'class="error"[^>]*>([^<]*)<', page.text)
