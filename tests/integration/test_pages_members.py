"""The members page of the console and the billing center's administrator approvals:
add, give a custom role granted Plans & Billing, raise to administrator (waiting for the
paying account on a commercial workspace), approve, leave."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accrual.app import Runtime
from accrual.console.adapters import tables as ct
from tests.helpers import register
from tests.pages_support import (
    billing_sign_in,
    browser_client,
    console_sign_in,
    csrf,
    error_text,
    submit,
)


def _member_row(page: str, email: str) -> str:
    match = re.search(rf"<tr>\s*<td>{re.escape(email)}.*?</tr>", page, re.S)
    assert match, f"no row for {email}"
    return match.group(0)


@pytest.mark.db
def test_members_page_roles_and_the_billing_center_approval(runtime: Runtime) -> None:
    with TestClient(runtime.app) as api:
        reg = register(api, "ada")
        register(api, "bob")
    ws = reg["workspace_id"]
    base = f"/console/workspaces/{ws}"
    with browser_client(runtime) as ada, browser_client(runtime) as bob:
        console_sign_in(ada, "ada@example.com")
        console_sign_in(bob, "bob@example.com")
        page = ada.get(f"{base}/members")
        assert page.status_code == 200 and "ada@example.com" in page.text

        # Refusals beside their fields; nothing added.
        unknown = submit(ada, f"{base}/members", {"email": "nobody@example.com", "role": "member"})
        assert unknown.status_code == 404 and 'id="e-email"' in unknown.text
        assert "register first" in error_text(unknown)[0]
        owner = submit(ada, f"{base}/members", {"email": "bob@example.com", "role": "owner"})
        assert owner.status_code == 422 and 'id="e-role"' in owner.text
        assert "bob@example.com" not in ada.get(f"{base}/members").text
        no_csrf = ada.post(f"{base}/members", data={"email": "bob@example.com", "role": "member"})
        assert no_csrf.status_code == 403
        assert "bob@example.com" not in ada.get(f"{base}/members").text

        # Bob joins as a member: no billing module, no management.
        assert submit(ada, f"{base}/members", {"email": "bob@example.com",
                                               "role": "member"}).status_code == 303
        ada_id, bob_id = _account_id(runtime, "ada"), _account_id(runtime, "bob")
        assert bob.get(f"{base}/billing/").status_code == 403
        assert "Add a member" not in bob.get(f"{base}/members").text
        refused = submit(bob, f"{base}/members", {"email": "ada@example.com", "role": "member"})
        assert refused.status_code == 403

        # A custom role granted Plans & Billing opens the billing module to bob, read only.
        made = ada.post(f"{base}/roles", data={"csrf_token": csrf(ada), "name": "Finance",
                                               "permissions": ["billing"]})
        assert made.status_code == 303, made.text
        role_id = runtime.console.members.roles_of(ada_id, ws)[0].id
        taken = ada.post(f"{base}/roles", data={"csrf_token": csrf(ada), "name": "finance"})
        assert taken.status_code == 409 and 'id="e-name"' in taken.text
        assert submit(ada, f"{base}/members/{bob_id}/role",
                      {"role": f"custom:{role_id}"}).status_code == 303
        assert "Finance" in _member_row(ada.get(f"{base}/members").text, "bob@example.com")
        assert bob.get(f"{base}/billing/").status_code == 200
        alerts = bob.get(f"{base}/billing/alerts")
        assert alerts.status_code == 200 and 'name="threshold"' not in alerts.text
        in_use = submit(ada, f"{base}/roles/{role_id}/delete")
        assert in_use.status_code == 409 and "give them another role first" in in_use.text

        # Raised to administrator of this commercial workspace: waits for the billing center.
        raised = submit(ada, f"{base}/members/{bob_id}/role", {"role": "admin"})
        assert raised.headers["location"].endswith("done=pending")
        assert "awaiting approval" in _member_row(ada.get(f"{base}/members").text,
                                                  "bob@example.com")
        with browser_client(runtime) as payer:
            billing_sign_in(payer, "ada")
            waiting = payer.get("/billing/promotions")
            assert waiting.status_code == 200 and "bob@example.com" in waiting.text
            request_id = re.search(r'/billing/promotions/([^/"]+)/approve', waiting.text)
            assert request_id
            odd = submit(payer, f"/billing/promotions/{request_id.group(1)}/maybe")
            assert odd.status_code == 422 and "bob@example.com" in payer.get(
                "/billing/promotions").text  # neither answer
            assert submit(payer, f"/billing/promotions/{request_id.group(1)}/approve"
                          ).status_code == 303
            assert "bob@example.com" not in payer.get("/billing/promotions").text
            again = submit(payer, f"/billing/promotions/{request_id.group(1)}/approve")
            assert again.status_code == 409
        row = _member_row(ada.get(f"{base}/members").text, "bob@example.com")
        assert "Administrator" in row and "awaiting approval" not in row
        assert "Add a member" in bob.get(f"{base}/members").text

        # Bob leaves: the workspace is gone from his switcher.
        left = submit(bob, f"{base}/members/{bob_id}/remove")
        assert left.headers["location"] == "/console/workspaces?done=left"
        assert bob.get(f"{base}/").status_code == 404
        assert "bob@example.com" not in ada.get(f"{base}/members").text

        # The role no one holds can go; the owner cannot leave.
        assert submit(ada, f"{base}/roles/{role_id}/delete").status_code == 303
        stay = submit(ada, f"{base}/members/{ada_id}/remove")
        assert stay.status_code == 403 and "owner" in error_text(stay)[0]



def _account_id(runtime: Runtime, name: str) -> str:
    with runtime.console.engine.connect() as conn:
        return str(conn.execute(select(ct.accounts.c.id)
                                .where(ct.accounts.c.email == f"{name}@example.com")).scalar_one())
