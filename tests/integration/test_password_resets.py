"""A forgotten password, on both sides, through the API and the pages, with the code read
from a real SMTP server: the code sets a new password once, every session ends, nothing
tells whether an account exists, and the bounds (tries, hourly codes, expiry) hold."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.helpers import billing_login, console_login, register
from tests.pages_support import browser_client, error_text, submit
from tests.smtp import Inbox

OLD, NEW = "correct horse battery", "a longer passphrase now"
SIDES = {"console": ("email", "ada@example.com"), "billing": ("username", "ada")}


def _code(inbox: Inbox, to: str = "ada@example.com") -> str:
    found = re.findall(r"\b([2-9A-Z]{5}-[2-9A-Z]{5})\b", inbox.bodies_to(to)[-1])
    assert found, inbox.bodies_to(to)[-1]
    return found[-1]


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.mark.parametrize("side", ["console", "billing"])
def test_the_mailed_code_sets_a_new_password_once(mail_runtime: tuple[Runtime, Inbox],
                                                  side: str) -> None:
    runtime, inbox = mail_runtime
    field, name = SIDES[side]
    with TestClient(runtime.app) as client:
        register(client, "ada")
        login = console_login if side == "console" else billing_login
        session = login(client, "ada")
        base = f"/{side}/v1/password-resets"
        # An unknown account gets the same answer, and no mail.
        before = len(inbox.messages)
        unknown = client.post(base, json={field: "nobody@example.com" if side == "console"
                                          else "nobody"})
        asked = client.post(base, json={field: name})
        assert unknown.status_code == asked.status_code == 202
        assert unknown.json() == asked.json()
        assert len(inbox.messages) == before + 1
        code = _code(inbox)

        wrong = client.post(f"{base}/confirm", json={field: name, "code": "22222-22222",
                                                     "new_password": NEW})
        assert _error(wrong) == (422, "wrong_code")
        short = client.post(f"{base}/confirm", json={field: name, "code": code,
                                                     "new_password": "short"})
        assert _error(short) == (422, "invalid_password")
        # Typed in lower case with spaces, the code still works; once.
        typed = code.lower().replace("-", " ")
        done = client.post(f"{base}/confirm", json={field: name, "code": typed,
                                                    "new_password": NEW})
        assert done.status_code == 204, done.text
        again = client.post(f"{base}/confirm", json={field: name, "code": code,
                                                     "new_password": OLD})
        assert _error(again) == (422, "wrong_code")
        # Every session ended; the new password signs in, the old one not.
        probe = "/console/v1/workspaces" if side == "console" else "/billing/v1/sessions/current"
        if side == "console":
            assert client.get(probe, headers=session).status_code == 401
        else:
            assert client.delete(probe, headers=session).status_code == 401
        assert client.post(f"/{side}/v1/sessions", json={field: name,
                                                         "password": OLD}).status_code == 401
        assert client.post(f"/{side}/v1/sessions", json={field: name,
                                                         "password": NEW}).status_code == 200


def test_tries_hourly_codes_and_expiry_are_bounded(mail_runtime: tuple[Runtime, Inbox],
                                                   clock: ManualClock) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as client:
        register(client, "ada")
        base = "/console/v1/password-resets"
        client.post(base, json={"email": "ada@example.com"})
        code = _code(inbox)
        for _ in range(5):
            client.post(f"{base}/confirm", json={"email": "ada@example.com",
                                                 "code": "22222-22222", "new_password": NEW})
        spent = client.post(f"{base}/confirm", json={"email": "ada@example.com", "code": code,
                                                     "new_password": NEW})
        assert _error(spent) == (422, "wrong_code")  # five wrong tries used the code up
        for _ in range(4):
            client.post(base, json={"email": "ada@example.com"})
        assert len(inbox.bodies_to("ada@example.com")) == 3  # at most three an hour
        late = _code(inbox)
        clock.advance(timedelta(minutes=31))
        expired = client.post(f"{base}/confirm", json={"email": "ada@example.com",
                                                       "code": late, "new_password": NEW})
        assert _error(expired) == (422, "wrong_code")
        clock.advance(timedelta(minutes=30))
        client.post(base, json={"email": "ada@example.com"})
        assert len(inbox.bodies_to("ada@example.com")) == 4  # a new hour, a new code
        fresh = _code(inbox)
        assert client.post(f"{base}/confirm", json={"email": "ada@example.com", "code": fresh,
                                                    "new_password": NEW}).status_code == 204


@pytest.mark.parametrize("side", ["console", "billing"])
def test_the_forgot_password_pages(mail_runtime: tuple[Runtime, Inbox], side: str) -> None:
    runtime, inbox = mail_runtime
    field, name = SIDES[side]
    with TestClient(runtime.app) as client:
        register(client, "ada")
    with browser_client(runtime) as browser:
        assert f"/{side}/forgot" in browser.get(f"/{side}/signin").text
        assert browser.get(f"/{side}/forgot").status_code == 200
        sent = submit(browser, f"/{side}/forgot", {"name": name})
        assert sent.status_code == 200 and 'name="code"' in sent.text
        nobody = submit(browser, f"/{side}/forgot", {"name": "nobody-at-all"})
        assert nobody.status_code == 200 and 'name="code"' in nobody.text  # alike
        code = _code(inbox)
        typo = submit(browser, f"/{side}/forgot/reset", {
            "name": name, "code": code, "new_password": NEW, "new_password_again": NEW + "x"})
        assert typo.status_code == 422 and 'id="e-new_password_again"' in typo.text
        wrong = submit(browser, f"/{side}/forgot/reset", {
            "name": name, "code": "22222-22222", "new_password": NEW, "new_password_again": NEW})
        assert wrong.status_code == 422 and 'id="e-code"' in wrong.text
        assert "ask for a new one" in error_text(wrong)[0]
        done = submit(browser, f"/{side}/forgot/reset", {
            "name": name, "code": code, "new_password": NEW, "new_password_again": NEW})
        assert done.headers["location"] == f"/{side}/signin?done=reset"
        assert "sign in with it" in browser.get(done.headers["location"]).text
        signed = submit(browser, f"/{side}/signin", {field: name, "password": NEW})
        assert signed.status_code == 303
