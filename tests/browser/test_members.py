"""Members in a real browser: the owner names a Finance role, adds a member with it, raises
them to administrator; the paying billing account approves in the billing center."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from accrual.app import Runtime
from tests.browser.conftest import shot


def test_finance_role_then_a_raise_approved_in_the_billing_center(page: Page,
                                                                   runtime: Runtime) -> None:
    made = runtime.console.accounts.register("ada@example.com", "correct horse battery", "ada",
                                             "Ada team", "en")
    runtime.console.accounts.register("bob@example.com", "correct horse battery", "bob",
                                      "Bob team", "en")
    page.goto("/console/signin")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/console/workspaces/{made.workspace_id}/")
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members", exact=True)).to_be_visible()

    page.get_by_label("Role name").fill("Finance")
    page.get_by_role("group", name="Permissions").get_by_label("Plans & Billing").check()
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_role("status")).to_have_text("The role is created.")

    page.get_by_label("Email of a console account").fill("nobody@example.com")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("register first")
    page.get_by_label("Email of a console account").fill("bob@example.com")
    page.locator("#f-role").select_option(label="Finance")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("The member is added.")
    expect(page.get_by_role("row", name="bob@example.com")).to_contain_text("Finance")

    page.get_by_label("Role of bob@example.com").select_option("admin")
    page.get_by_role("row", name="bob@example.com").get_by_role("button", name="Save").click()
    expect(page.get_by_role("row", name="bob@example.com")).to_contain_text(
        "awaiting approval")
    shot(page, "console-members-en")
    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_role("heading", name="成员", exact=True)).to_be_visible()
    shot(page, "console-members-zh")
    page.get_by_role("button", name="English").click()

    page.goto("/billing/signin")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Administrator approvals").click()
    expect(page.get_by_role("row", name="bob@example.com")).to_be_visible()
    shot(page, "billing-promotions-en")
    page.get_by_role("button", name="Approve bob@example.com").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")

    page.goto(f"/console/workspaces/{made.workspace_id}/members")
    row = page.get_by_role("row", name="bob@example.com")
    expect(row).to_contain_text("Administrator")
    expect(row).not_to_contain_text("awaiting approval")

    page.goto("/billing/workspaces")
    page.get_by_role("link", name="Bind workspace").click()
    page.get_by_label("Workspace ID").fill("not-a-workspace")
    page.get_by_role("button", name="Send the code to the owner").click()
    expect(page.get_by_role("alert")).to_contain_text("not known here")
    shot(page, "billing-bind-workspace-en")
