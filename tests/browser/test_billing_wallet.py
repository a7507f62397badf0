"""The billing center's wallet in a real browser: recharge through the sandbox gateway's
real pay page, buy a prepaid card, activate a voucher, see the workspaces and the
countdown of an account in arrears."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from accrual.app import Runtime
from tests.browser.conftest import shot
from tests.helpers import OPERATOR, close_day, register, send_usage


def _sign_in(page: Page, username: str) -> None:
    page.goto("/billing/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Account overview")).to_be_visible()


def test_recharge_buy_a_card_and_activate_a_voucher(page: Page, runtime: Runtime,
                                                     client: TestClient) -> None:
    ada = register(client)
    send_usage(client, ada["ingest_key"], [
        {"id": "tc-1", "workspace_id": ada["workspace_id"], "item": "trigger",
         "time": "2026-11-25T10:00:00+08:00", "quantity": "20000"}])
    close_day(client, "2026-11-25")  # 2.00 owed: the countdown starts
    _sign_in(page, "ada")
    expect(page.locator("[data-balance=arrears]")).to_have_text("CN¥2.00")
    shot(page, "billing-overview-en")

    page.get_by_role("link", name="Workspace management").click()
    expect(page.get_by_role("status")).to_contain_text("will be locked on")
    expect(page.locator(".countdown")).to_contain_text("left")
    expect(page.locator("tbody tr", has_text="ada's team")).to_contain_text("Arrears countdown")
    shot(page, "billing-workspaces-en")

    page.get_by_role("link", name="Account overview").click()
    page.get_by_role("link", name="Recharge").first.click()
    page.get_by_label("Amount (CNY)").fill("-5")
    page.get_by_role("button", name="Recharge").click()
    expect(page.get_by_role("alert")).to_contain_text("amount")
    page.get_by_label("Amount (CNY)").fill("1002.00")
    shot(page, "billing-recharge-en")
    page.get_by_role("button", name="Recharge").click()
    expect(page).to_have_url(re.compile(r"/sandbox/pay/"))  # the gateway's own page
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_role("status")).to_have_text("Payment received: CN¥1,002.00 was credited.")
    expect(page.locator("[data-balance=cash]")).to_have_text("CN¥1,000.00")  # 2.00 paid arrears
    expect(page.locator("[data-balance=arrears]")).to_have_text("CN¥0.00")

    page.get_by_role("link", name="Prepaid cards").click()
    page.get_by_label("Face value (CNY)").fill("150")
    page.get_by_role("button", name="Buy").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Face value (CNY)").fill("1000")
    page.get_by_role("button", name="Buy").click()
    expect(page.get_by_role("status")).to_have_text("The prepaid card is bought.")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("CN¥1,000.00")
    shot(page, "billing-prepaid-cards-en")

    code = client.post("/billing/v1/admin/voucher-codes", headers=OPERATOR, json={
        "kind": "voucher_standard", "amount": "50.00", "count": 1}).json()["codes"][0]
    page.get_by_role("link", name="Vouchers").click()
    page.get_by_label("Activation code").fill("NOT-A-CODE")
    page.get_by_role("button", name="Activate voucher").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Activation code").fill(code)
    page.get_by_role("button", name="Activate voucher").click()
    expect(page.get_by_role("status")).to_have_text("The voucher is activated.")
    shot(page, "billing-vouchers-en")

    page.get_by_role("button", name="简体中文").click()
    page.get_by_role("link", name="账户概览").click()
    expect(page.locator("[data-balance=vouchers]")).to_have_text("¥50.00")
    expect(page.locator("[data-balance=prepaid_cards]")).to_have_text("¥1,000.00")
    shot(page, "billing-overview-zh")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "billing-overview-zh-phone")
