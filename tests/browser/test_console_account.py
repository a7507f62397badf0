"""The website registration in a real browser, then arrears: the countdown banner, the
lock page, "unlock now" into the billing center, the same page in Chinese."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from accrual.app import Runtime
from tests.browser.conftest import shot
from tests.helpers import close_day, send_usage


def test_register_on_the_website_then_run_into_arrears(page: Page, runtime: Runtime,
                                                       client: TestClient) -> None:
    page.goto("/console/register")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Workspace name", exact=True).fill("Grace's lab")
    shot(page, "console-register-en")
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#e-password")).to_contain_text("password must be")
    assert runtime.console.accounts.count_accounts() == 0  # nothing made
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("status")).to_contain_text("Welcome!")
    key = page.locator(".ingest-key").inner_text()
    shot(page, "console-registered-en")
    page.get_by_role("link", name="Open the workspace").click()
    expect(page.locator("h1")).to_have_text("Grace's lab")
    workspace_id = re.search(r"/console/workspaces/(\w+)/", page.url).group(1)  # type: ignore[union-attr]
    send_usage(client, key, [{"id": "tc-1", "workspace_id": workspace_id, "item": "trigger",
                              "time": "2026-11-25T10:00:00+08:00", "quantity": "20000"}])
    close_day(client, "2026-11-25")
    runtime.scheduler.tick()  # the lock state travels back to the console
    page.reload()
    expect(page.locator(".banner.warn")).to_contain_text("This workspace is in arrears.")
    expect(page.locator(".countdown")).to_contain_text("d")
    page.get_by_role("link", name="Unlock now").click()
    expect(page.get_by_role("heading", name="Workspace lock")).to_be_visible()
    shot(page, "console-locked-en")

    page.get_by_label("Type the workspace's name to confirm").fill("not the name")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_role("heading", name="工作空间锁定")).to_be_visible()
    expect(page.locator(".countdown")).to_contain_text("天")
    shot(page, "console-locked-zh")
    page.get_by_role("button", name="立即解锁").click()
    expect(page).to_have_url("/billing/workspaces")
    expect(page.locator("tbody tr", has_text="Grace's lab")).to_contain_text("欠费倒计时")
    shot(page, "billing-workspaces-zh")

