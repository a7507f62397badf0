"""The console's Billing module in a real browser: usage sent through the API, the day
closed, the charge in bill details with its chart, the overview's arrears, an alert, the
owner's jump into the billing center, the same page in Chinese."""

from __future__ import annotations

from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from accrual.app import Runtime
from tests.browser.conftest import shot
from tests.helpers import close_day, register, send_usage


def _sign_in(page: Page, email: str) -> None:
    page.goto("/console/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()


def test_the_billing_module_shows_the_charge_and_opens_the_billing_center(
        page: Page, runtime: Runtime, client: TestClient) -> None:
    ada = register(client)
    send_usage(client, ada["ingest_key"], [
        {"id": "tc-1", "workspace_id": ada["workspace_id"], "item": "trigger",
         "time": "2026-11-25T10:00:00+08:00", "quantity": "20000"},
        {"id": "lg-1", "workspace_id": ada["workspace_id"], "item": "logs",
         "time": "2026-11-25T10:00:00+08:00", "quantity": "2000000", "retention_days": 7},
        {"id": "tc-2", "workspace_id": ada["workspace_id"], "item": "trigger",
         "time": "2026-11-26T09:00:00+08:00", "quantity": "5000"}])
    close_day(client, "2026-11-25")
    _sign_in(page, "ada@example.com")
    page.get_by_role("link", name="ada's team").click()
    page.get_by_role("link", name="Bill details").click()
    page.get_by_role("link", name="Yesterday").click()
    expect(page.locator(".total")).to_have_text("CN¥4.40")  # task calls 2.00 + logs 2.40
    rows = page.locator("table").last.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Task calls")).to_contain_text("CN¥2.00")
    expect(page.locator("canvas[data-chart]")).to_be_visible()
    shot(page, "console-billing-details-en")

    page.get_by_role("link", name="Settlement account").click()
    expect(page.get_by_role("heading", name="Arrears")).to_be_visible()
    expect(page.locator(".card", has_text="Arrears")).to_contain_text("CN¥4.40")
    shot(page, "console-billing-overview-en")

    page.get_by_role("link", name="Usage statistics").click()
    expect(page.locator("tbody tr", has_text="Task calls")).to_contain_text("5,000")
    shot(page, "console-billing-usage-en")
    page.get_by_role("link", name="Consumption analysis").click()
    expect(page.locator(".card", has_text="Yesterday")).to_contain_text("CN¥4.40")
    shot(page, "console-billing-consumption-en")

    page.get_by_role("link", name="High consumption alerts").click()
    page.get_by_label("Daily threshold (CNY)").fill("abc")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_contain_text("threshold")
    page.get_by_label("Billing item").select_option(label="Logs")
    page.get_by_label("Daily threshold (CNY)").fill("50")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_have_text("The alert is saved.")
    expect(page.locator("tbody tr", has_text="Logs")).to_contain_text("CN¥50.00")
    shot(page, "console-billing-alerts-en")

    page.get_by_role("button", name="简体中文").click()
    page.get_by_role("link", name="账单详情").click()
    expect(page.get_by_role("heading", name="账单详情")).to_be_visible()
    page.get_by_role("link", name="昨天").click()
    expect(page.locator(".total")).to_have_text("¥4.40")
    expect(page.locator("tbody tr", has_text="任务调用")).to_contain_text("¥2.00")
    shot(page, "console-billing-details-zh")

    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="结算账户总览").click()
    shot(page, "console-billing-overview-zh-phone")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.get_by_role("button", name="费用中心").click()
    expect(page).to_have_url("/billing/overview")
    cookie = next(c for c in page.context.cookies() if c["name"] == "accrual_billing")
    assert runtime.billing.accounts.account_for_session(cookie["value"]) == ada["billing_account_id"]
