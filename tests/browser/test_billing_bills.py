"""Bill management and invoices in a real browser: a closed day's charge in the consumption
details, its CSV download, and an invoice requested from the monthly bill."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.browser.conftest import shot
from tests.helpers import billing_login
from tests.integration.test_pages_billing_bills import CERT, billed


def sign_in(page: Page, path: str) -> None:
    page.goto(path)
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()


def test_the_charge_shows_in_the_details_downloads_and_is_invoiced(
        page: Page, client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    reg = billed(client, clock)
    sign_in(page, "/billing/bills/consumption")
    expect(page.get_by_role("heading", name="Consumption details")).to_be_visible()
    page.get_by_label("From").fill("2026-10-01")
    page.get_by_label("To").fill("2026-10-31")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("cell", name="2.50")).to_be_visible()
    shot(page, "billing-bills-consumption-en")
    with page.expect_download() as waiting:
        page.get_by_role("link", name="CSV").click()
    download = waiting.value
    assert download.suggested_filename == "consumption-2026-10-01-2026-10-31.csv"
    content = download.path().read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(content)))
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("3.50")

    page.get_by_role("link", name="Monthly bills").click()
    expect(page.get_by_role("link", name="2026-10")).to_be_visible()
    expect(page.get_by_role("cell", name="3.50").first).to_be_visible()
    shot(page, "billing-bills-monthly-en")
    page.get_by_role("link", name="Income & expenditure").click()
    page.get_by_label("From").fill("2026-10-01")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("cell", name="Recharge")).to_be_visible()
    shot(page, "billing-bills-transactions-en")

    # An invoice, end to end: certified, invoice information, then the request.
    certified = client.put(f"/billing/v1/accounts/{reg['billing_account_id']}/certification",
                           json=CERT, headers=billing_login(client))
    assert certified.status_code == 200, certified.text
    page.get_by_role("link", name="Invoices", exact=True).click()
    page.get_by_role("link", name="Add invoice information").click()
    page.get_by_label("Invoice type").select_option("electronic_ordinary")
    expect(page.get_by_label("Invoice title")).to_have_value(CERT["enterprise_name"])
    page.get_by_label("Email").fill("finance@example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("The invoice information is saved.")
    page.get_by_role("link", name="Request now").click()
    page.get_by_label("2026-10").check()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Invoice information").select_option(label=(
        f"{CERT['enterprise_name']} · Electronic ordinary invoice"))
    page.get_by_role("button", name="Request invoice").click()
    expect(page.get_by_role("status")).to_have_text("The invoice is requested.")
    expect(page.get_by_role("cell", name="3.50")).to_be_visible()
    shot(page, "billing-invoices-en")
    page.get_by_role("link", name="View", exact=True).click()
    expect(page.get_by_role("heading", name="Monthly bills covered")).to_be_visible()
    [made] = runtime.billing.invoices.requests(reg["billing_account_id"])
    assert made.amount_minor == 350

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/billing/invoices")
    shot(page, "billing-invoices-en-phone")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto("/billing/bills/consumption?from=2026-10-01&to=2026-10-31")
    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_role("heading", name="消费明细")).to_be_visible()
    shot(page, "billing-bills-consumption-zh")
