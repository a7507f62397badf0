"""Changing a password, on the API and the pages of both sides: the current one is
needed (and guessing it is throttled), every other session ends, the two accounts'
passwords stay independent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from tests.conftest import ADMIN
from tests.helpers import bearer, billing_login, console_login, register
from tests.pages_support import (
    billing_sign_in,
    browser_client,
    console_sign_in,
    error_text,
    submit,
)

OLD, NEW = "correct horse battery", "a longer passphrase now"


def _code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.mark.parametrize("side", ["console", "billing"])
def test_a_new_password_ends_the_other_sessions(client: TestClient, side: str) -> None:
    ada = register(client, "ada")
    login = console_login if side == "console" else billing_login
    this, other = login(client, "ada"), login(client, "ada")
    url = f"/{side}/v1/account/password"
    for body, refused in (
            ({"current_password": "not it at all", "new_password": NEW}, "wrong_password"),
            ({"current_password": OLD, "new_password": "short"}, "invalid_password"),
            ({"current_password": OLD, "new_password": OLD}, "password_unchanged")):
        assert _code(client.put(url, json=body, headers=this)) == (422, refused)
    changed = client.put(url, json={"current_password": OLD, "new_password": NEW}, headers=this)
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"sessions_ended": 1}
    probe = "/console/v1/workspaces" if side == "console" \
        else f"/billing/v1/accounts/{ada['billing_account_id']}"
    assert client.get(probe, headers=other).status_code == 401
    assert client.get(probe, headers=this).status_code == 200
    assert client.put(url, json={"current_password": NEW, "new_password": OLD},
                      headers=other).status_code == 401
    # The new password signs in, the old one no more; the other side's is unchanged.
    if side == "console":
        assert client.post("/console/v1/sessions", json={"email": "ada@example.com",
                                                         "password": OLD}).status_code == 401
        assert client.post("/console/v1/sessions", json={"email": "ada@example.com",
                                                         "password": NEW}).status_code == 200
        assert client.post("/billing/v1/sessions", json={"username": "ada",
                                                         "password": OLD}).status_code == 200
    else:
        assert client.post("/billing/v1/sessions", json={"username": "ada",
                                                         "password": OLD}).status_code == 401
        assert client.post("/billing/v1/sessions", json={"username": "ada",
                                                         "password": NEW}).status_code == 200
        assert client.post("/console/v1/sessions", json={"email": "ada@example.com",
                                                         "password": OLD}).status_code == 200


def test_guessing_the_current_password_is_throttled(client: TestClient) -> None:
    register(client, "ada")
    session = console_login(client, "ada")
    statuses = [client.put("/console/v1/account/password", headers=session, json={
        "current_password": f"guess number {n}", "new_password": NEW}).status_code
        for n in range(6)]
    assert statuses[:5] == [422] * 5 and statuses[5] == 429
    # The lockout holds even for the right password, as at sign-in.
    right = client.put("/console/v1/account/password", headers=session,
                       json={"current_password": OLD, "new_password": NEW})
    assert _code(right) == (429, "too_many_attempts") and "retry-after" in right.headers


def test_the_operator_token_changes_no_password(client: TestClient) -> None:
    register(client, "ada")
    answer = client.put("/billing/v1/account/password", headers=bearer(ADMIN),
                        json={"current_password": OLD, "new_password": NEW})
    assert answer.status_code == 401


def test_the_pages_change_either_password(client: TestClient, runtime: Runtime) -> None:
    register(client, "ada")
    with browser_client(runtime) as browser:
        console_sign_in(browser, "ada@example.com")
        billing_sign_in(browser, "ada")
        for page, action in (("/console/account", "/console/account/password"),
                             ("/billing/security", "/billing/security/password")):
            assert browser.get(page).status_code == 200
            typo = submit(browser, action, {"current_password": OLD, "new_password": NEW,
                                            "new_password_again": NEW + "!"})
            assert typo.status_code == 422 and 'id="e-new_password_again"' in typo.text
            wrong = submit(browser, action, {"current_password": "nope nope", "new_password": NEW,
                                             "new_password_again": NEW})
            assert wrong.status_code == 422 and 'id="e-current_password"' in wrong.text
            assert error_text(wrong) == ["the current password is wrong"]
            done = submit(browser, action, {"current_password": OLD, "new_password": NEW,
                                            "new_password_again": NEW})
            assert done.status_code == 303 and done.headers["location"] == f"{page}?done=password"
            assert browser.get(page).status_code == 200  # this browser stays signed in
    assert client.post("/console/v1/sessions", json={"email": "ada@example.com",
                                                     "password": NEW}).status_code == 200
    assert client.post("/billing/v1/sessions", json={"username": "ada",
                                                     "password": NEW}).status_code == 200
