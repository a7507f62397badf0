"""The operator in a real browser: sign in with the token, close a day, see the jobs,
make voucher codes."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from accrual.app import Runtime
from tests.browser.conftest import shot
from tests.conftest import ADMIN


def test_operator_signs_in_closes_a_day_and_sees_the_jobs(page: Page, runtime: Runtime) -> None:
    runtime.console.accounts.register("ada@example.com", "correct horse battery", "ada",
                                      "Ada team", "en")
    page.goto("/operator/")
    expect(page).to_have_url("/operator/signin?next=/operator/")
    page.get_by_label("Operator token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the operator token.")
    page.get_by_label("Operator token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Operator", exact=True)).to_be_visible()
    shot(page, "operator-home-en")

    page.get_by_role("main").get_by_role("link", name="Close day").click()
    page.get_by_label("Day (YYYY-MM-DD)").fill("2026-11-20")
    page.get_by_role("button", name="Close this day").click()
    expect(page.get_by_role("heading", name="Result")).to_be_visible()
    shot(page, "operator-close-day-en")

    page.get_by_role("link", name="See the job status").click()
    expect(page.get_by_role("cell", name="day close")).to_be_visible()
    shot(page, "operator-jobs-en")

    page.goto("/operator/billing/invoices")
    expect(page.get_by_role("heading", name="Invoice requests")).to_be_visible()
    shot(page, "operator-invoices-en")

    page.goto("/operator/billing/arrears")
    expect(page.get_by_role("heading", name="Arrears cases")).to_be_visible()
    shot(page, "operator-arrears-en")

    page.get_by_role("link", name="Voucher codes").first.click()
    page.get_by_label("Face value").fill("50.00")
    page.get_by_label("How many codes").fill("3")
    page.get_by_role("button", name="Make the codes").click()
    expect(page.get_by_role("heading", name="3 codes made")).to_be_visible()
    expect(page.locator("ul.codes code")).to_have_count(3)
    shot(page, "operator-vouchers-en")

    page.get_by_role("link", name="Price book").click()
    page.get_by_label("Billing item").select_option("logs")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("tbody tr").first).to_contain_text("logs")
    shot(page, "operator-price-book-en")
    page.get_by_role("link", name="Tenants").click()
    expect(page.locator("tbody tr").first).to_contain_text("ada@example.com")
    shot(page, "operator-tenants-en")
    page.get_by_role("link", name="Billing accounts").click()
    page.get_by_label("Username or email").fill("nobody-here")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody")).to_contain_text("No account matches.")
    page.get_by_role("link", name="Billing accounts").click()
    shot(page, "operator-accounts-en")
    page.get_by_role("link", name="Billing jobs").click()
    expect(page.get_by_role("status")).to_be_visible()
    shot(page, "operator-billing-jobs-en")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/operator/")
    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_role("heading", name="运营管理", exact=True)).to_be_visible()
    shot(page, "operator-home-zh")
