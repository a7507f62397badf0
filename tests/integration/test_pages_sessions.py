"""Page sessions: cookies, CSRF, sign-in and out on both sides, the owner's jump."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.contract.messages import SignInTicketRequest
from tests.helpers import register
from tests.pages_support import billing_sign_in, browser_client, console_sign_in, error_text, submit


def test_cookies_are_secure_httponly_and_samesite(client: TestClient, runtime: Runtime) -> None:
    register(client)
    with browser_client(runtime) as browser:
        home = browser.get("/")
        assert "Secure" in home.headers["set-cookie"] and "HttpOnly" in home.headers["set-cookie"]
        signed = submit(browser, "/console/signin", {"email": "ada@example.com",
                                                     "password": "correct horse battery"})
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("accrual_console=")
        assert {"Secure", "HttpOnly", "SameSite=lax"} <= {p.strip() for p in cookie.split(";")}


def test_a_form_without_the_csrf_token_changes_nothing(client: TestClient, runtime: Runtime) -> None:
    register(client)
    with browser_client(runtime) as browser:
        browser.get("/")
        missing = browser.post("/console/signin", data={"email": "ada@example.com",
                                                        "password": "correct horse battery"})
        assert missing.status_code == 403 and "csrf_failed" in missing.text
        assert "accrual_console" not in missing.headers.get("set-cookie", "")
        forged = browser.post("/console/signin", headers={"origin": "https://evil.example"},
                              data={"csrf_token": browser.cookies["accrual_csrf"],
                                    "email": "ada@example.com", "password": "correct horse battery"})
        assert forged.status_code == 403


def test_billing_sign_in_shows_the_refusal_beside_the_password_and_sign_out_revokes(
        client: TestClient, runtime: Runtime) -> None:
    register(client)
    with browser_client(runtime) as browser:
        wrong = submit(browser, "/billing/signin", {"username": "ada", "password": "nope"})
        assert wrong.status_code == 401 and error_text(wrong) == ["username or password is wrong"]
        billing_sign_in(browser, "ada")
        token = browser.cookies["accrual_billing"]
        assert runtime.billing.accounts.account_for_session(token) is not None
        assert submit(browser, "/billing/signout").status_code == 303
        assert runtime.billing.accounts.account_for_session(token) is None


def test_the_owners_ticket_opens_the_billing_center_once(client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    ticket = runtime.console.billing.sign_in_ticket(SignInTicketRequest(
        billing_account_id=ada["billing_account_id"], workspace_id=ada["workspace_id"],
        destination="workspaces"))
    with browser_client(runtime) as browser:
        jumped = browser.get(ticket.path)
        assert (jumped.status_code, jumped.headers["location"]) == (303, "/billing/workspaces")
        token = browser.cookies["accrual_billing"]
        assert runtime.billing.accounts.account_for_session(token) == ada["billing_account_id"]
    with browser_client(runtime) as stranger:
        again = stranger.get(ticket.path)
        assert again.status_code == 401 and "ticket_invalid" in again.text
        assert "<html" in again.text  # a page, not JSON


def test_console_pages_need_a_session_and_hide_other_tenants(client: TestClient, runtime: Runtime) -> None:
    ada, bob = register(client), register(client, "bob")
    with browser_client(runtime) as browser:
        away = browser.get(f"/console/workspaces/{ada['workspace_id']}/")
        assert away.status_code == 303 and away.headers["location"].startswith("/console/signin?next=")
        console_sign_in(browser, "ada@example.com")
        own = browser.get(f"/console/workspaces/{ada['workspace_id']}/")
        assert own.status_code == 200 and "ada&#39;s team" in own.text
        other = browser.get(f"/console/workspaces/{bob['workspace_id']}/")
        assert other.status_code == 404 and "bob" not in other.text


def test_page_sign_in_is_throttled_like_the_api(client: TestClient, runtime: Runtime) -> None:
    register(client)
    with browser_client(runtime) as browser:
        for _ in range(5):
            assert submit(browser, "/billing/signin",
                          {"username": "ada", "password": "guess"}).status_code == 401
        throttled = submit(browser, "/billing/signin",
                           {"username": "ada", "password": "correct horse battery"})
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
        assert error_text(throttled)[0].startswith("too many failed sign-ins")
        assert "accrual_billing" not in throttled.headers.get("set-cookie", "")
        # The console's accounts are counted apart from the billing center's.
        for _ in range(5):
            submit(browser, "/console/signin", {"email": "ada@example.com", "password": "guess"})
        assert submit(browser, "/console/signin", {"email": "ada@example.com",
                      "password": "correct horse battery"}).status_code == 429


def test_a_browser_without_a_language_takes_the_billing_accounts(client: TestClient,
                                                                 runtime: Runtime) -> None:
    register(client, "lin", language="zh")
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "lin")
        assert browser.cookies["accrual_lang"] == "zh"
    with browser_client(runtime) as chosen:
        chosen.cookies.set("accrual_lang", "en")
        billing_sign_in(chosen, "lin")
        assert chosen.cookies["accrual_lang"] == "en"


def test_a_language_chosen_while_signed_in_follows_the_account(client: TestClient,
                                                               runtime: Runtime) -> None:
    register(client, "ada")
    with browser_client(runtime) as first:
        console_sign_in(first, "ada@example.com")
        billing_sign_in(first, "ada")
        chosen = submit(first, "/language", {"language": "zh", "next": "/console/"})
        assert chosen.status_code == 303 and first.cookies["accrual_lang"] == "zh"
    # Another browser that chose English before: the console account's choice wins at
    # sign-in; the billing account's mails are in Chinese now.
    with browser_client(runtime) as second:
        submit(second, "/language", {"language": "en", "next": "/"})  # signed out
        assert second.cookies["accrual_lang"] == "en"
        console_sign_in(second, "ada@example.com")
        assert second.cookies["accrual_lang"] == "zh"
        assert "工作空间" in second.get("/console/").text
    assert runtime.billing.accounts.account(
        runtime.billing.accounts.find_by_username("ada") or "").language == "zh"
    # Chosen while signed out, nothing is remembered on an account.
    register(client, "bob")
    with browser_client(runtime) as anonymous:
        submit(anonymous, "/language", {"language": "zh", "next": "/"})
        anonymous.cookies.clear()
        console_sign_in(anonymous, "bob@example.com")
        assert "accrual_lang" not in anonymous.cookies


def test_a_refusal_on_a_chinese_page_is_in_chinese(client: TestClient, runtime: Runtime) -> None:
    register(client, "ada")
    with browser_client(runtime) as browser:
        submit(browser, "/language", {"language": "zh", "next": "/"})
        wrong = submit(browser, "/console/signin", {"email": "ada@example.com",
                                                    "password": "not the password"})
        assert wrong.status_code == 401
        assert error_text(wrong) == ["账号或密码错误。"]
        submit(browser, "/language", {"language": "en", "next": "/"})
        wrong = submit(browser, "/console/signin", {"email": "ada@example.com",
                                                    "password": "not the password"})
        assert error_text(wrong) == ["email or password is wrong"]


def test_the_chinese_font_is_served_to_the_pages(client: TestClient) -> None:
    """A machine without a Chinese font still shows the zh pages (the stylesheet's face)."""
    css = client.get("/static/app.css").text
    for weight in ("Regular", "Bold"):
        assert f'url("/fonts/NotoSansSC-Subset-{weight}.ttf")' in css
        font = client.get(f"/fonts/NotoSansSC-Subset-{weight}.ttf")
        assert font.status_code == 200 and font.content[:4] == b"\x00\x01\x00\x00"


def test_the_owners_change_binding_button_lands_on_the_workspaces_change_binding(
        client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    ws = ada["workspace_id"]
    with browser_client(runtime) as browser:
        console_sign_in(browser, "ada@example.com")
        overview = browser.get(f"/console/workspaces/{ws}/billing/")
        assert 'value="change_binding"' in overview.text
        opened = submit(browser, f"/console/workspaces/{ws}/billing/open",
                        {"destination": "change_binding"})
        assert opened.status_code == 303 and "/billing/jump?ticket=" in opened.headers["location"]
        landed = browser.get(opened.headers["location"])
        assert landed.headers["location"] == f"/billing/workspaces/{ws}/move"
        assert browser.get(landed.headers["location"]).status_code == 200
        odd = submit(browser, f"/console/workspaces/{ws}/billing/open", {"destination": "else"})
        assert odd.status_code == 422
