"""Signing in to the console in a real browser, switching language."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from accrual.app import Runtime
from tests.browser.conftest import shot


def test_sign_in_lands_on_the_workspaces_and_chinese_is_remembered(page: Page, runtime: Runtime) -> None:
    runtime.console.accounts.register("ada@example.com", "correct horse battery", "ada",
                                      "Ada team", "en")
    page.goto("/console/")
    expect(page).to_have_url("/console/signin?next=/console/")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("email or password is wrong")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()
    expect(page.get_by_role("link", name="Ada team")).to_be_visible()
    shot(page, "console-workspaces-en")

    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_role("heading", name="您的工作空间")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="您的工作空间")).to_be_visible()
    shot(page, "console-workspaces-zh")


def test_sign_out_ends_the_session(page: Page, runtime: Runtime) -> None:
    runtime.console.accounts.register("bo@example.com", "correct horse battery", "bob", "Bo team", "en")
    page.goto("/console/signin")
    page.get_by_label("Email").fill("bo@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "accrual_console")
    assert runtime.console.accounts.account_for_session(token) is not None
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    assert runtime.console.accounts.account_for_session(token) is None
    page.goto("/console/")
    expect(page).to_have_url("/console/signin?next=/console/")
