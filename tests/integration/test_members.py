"""Members and custom roles of a workspace (reference-billing.md 1.4), through the API:
who may manage them, what a custom role grants, and the raise to administrator of a
commercial workspace that waits for the paying billing account's approval."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from accrual.app import Runtime
from accrual.billing.adapters import tables as bt
from accrual.console.adapters import tables as ct
from tests.helpers import billing_login, console_login, register


def _code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _free_workspace(client: TestClient, owner: dict[str, str]) -> str:
    made = client.post("/console/v1/workspaces", json={"name": "Free one"}, headers=owner)
    assert made.status_code == 201, made.text
    return str(made.json()["workspace_id"])


@pytest.mark.db
def test_members_and_custom_roles_on_a_free_workspace(runtime: Runtime) -> None:
    with TestClient(runtime.app) as client:
        register(client, "ada")
        bob_reg = register(client, "bob")
        register(client, "cyd")
        ada, bob, cy = (console_login(client, n) for n in ("ada", "bob", "cyd"))
        ws = _free_workspace(client, ada)
        base = f"/console/v1/workspaces/{ws}"

        # Nothing but the owner at first; bob is not a member and learns nothing.
        members = client.get(f"{base}/members", headers=ada).json()["members"]
        assert [(m["email"], m["role"]) for m in members] == [("ada@example.com", "owner")]
        assert _code(client.get(f"{base}/members", headers=bob)) == (404, "workspace_not_found")

        # Refusals change nothing.
        assert _code(client.post(f"{base}/members", headers=ada, json={
            "email": "nobody@example.com", "role": "member"})) == (404, "account_not_found")
        assert _code(client.post(f"{base}/members", headers=ada, json={
            "email": "bob@example.com", "role": "owner"})) == (422, "owner_not_assignable")
        assert _code(client.post(f"{base}/members", headers=ada, json={
            "email": "bob@example.com", "role": "custom"})) == (422, "invalid_role")
        assert _code(client.post(f"{base}/members", headers=ada, json={
            "email": "bob@example.com", "role": "custom", "custom_role_id": "nope"})) \
            == (404, "unknown_role")
        assert len(client.get(f"{base}/members", headers=ada).json()["members"]) == 1

        # Bob joins as a member (the email in another case is the same account).
        added = client.post(f"{base}/members", headers=ada,
                            json={"email": "BOB@Example.com", "role": "member"})
        assert added.status_code == 201, added.text
        bob_id = added.json()["account_id"]
        assert added.json()["role"] == "member" and added.json()["pending_role"] is None
        assert _code(client.post(f"{base}/members", headers=ada, json={
            "email": "bob@example.com", "role": "admin"})) == (409, "already_member")

        # A member sees no billing and manages nobody.
        assert _code(client.get(f"{base}/quota", headers=bob)) == (403, "billing_permission_required")
        assert _code(client.get(f"{base}/alerts", headers=bob)) == (403, "billing_permission_required")
        assert _code(client.post(f"{base}/members", headers=bob, json={
            "email": "cyd@example.com", "role": "member"})) == (403, "owner_or_admin_only")
        assert _code(client.post(f"{base}/roles", headers=bob, json={
            "name": "Finance", "permissions": ["billing"]})) == (403, "owner_or_admin_only")

        # A custom role granted Plans & Billing: bob reads billing views, sets no alert.
        assert _code(client.post(f"{base}/roles", headers=ada, json={
            "name": "Admin", "permissions": []})) == (422, "invalid_role_name")
        assert _code(client.post(f"{base}/roles", headers=ada, json={
            "name": "Finance", "permissions": ["payroll"]})) == (422, "invalid_permission")
        finance = client.post(f"{base}/roles", headers=ada,
                              json={"name": "Finance", "permissions": ["billing"]})
        assert finance.status_code == 201, finance.text
        role_id = finance.json()["id"]
        assert _code(client.post(f"{base}/roles", headers=ada, json={
            "name": "FINANCE", "permissions": []})) == (409, "role_name_taken")
        changed = client.put(f"{base}/members/{bob_id}", headers=ada,
                             json={"role": "custom", "custom_role_id": role_id})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["role"], changed.json()["role_name"]) == ("custom", "Finance")
        assert client.get(f"{base}/quota", headers=bob).status_code == 200
        assert client.get(f"{base}/alerts", headers=bob).status_code == 200
        assert client.get(f"{base}/billing-details?period=today", headers=bob).status_code == 200
        assert _code(client.put(f"{base}/alerts/logs", headers=bob, json={
            "threshold": "5"})) == (403, "owner_or_admin_only")
        assert client.get(f"{base}/roles", headers=ada).json()["roles"][0]["members"] == 1
        assert _code(client.delete(f"{base}/roles/{role_id}", headers=ada)) == (409, "role_in_use")

        # The grant taken away reaches bob at once.
        renamed = client.put(f"{base}/roles/{role_id}", headers=ada,
                             json={"name": "Auditors", "permissions": []})
        assert renamed.json()["name"] == "Auditors" and renamed.json()["permissions"] == []
        assert _code(client.get(f"{base}/quota", headers=bob)) == (403, "billing_permission_required")

        # On a free workspace a raise to administrator needs no review.
        raised = client.put(f"{base}/members/{bob_id}", headers=ada, json={"role": "admin"})
        assert (raised.json()["role"], raised.json()["pending_role"]) == ("admin", None)
        assert client.get(f"{base}/quota", headers=bob).status_code == 200
        assert client.delete(f"{base}/roles/{role_id}", headers=ada).status_code == 204
        # An administrator manages members, but not the owner.
        assert client.post(f"{base}/members", headers=bob, json={
            "email": "cyd@example.com", "role": "member"}).status_code == 201
        ada_id = members[0]["account_id"]
        assert _code(client.put(f"{base}/members/{ada_id}", headers=bob,
                                json={"role": "member"})) == (403, "owner_protected")
        assert _code(client.delete(f"{base}/members/{ada_id}", headers=bob)) \
            == (403, "owner_protected")
        assert _code(client.delete(f"{base}/members/{ada_id}", headers=ada)) \
            == (403, "owner_protected")
        # Owner-only actions stay the owner's.
        assert _code(client.put(f"{base}/retention/logs", headers=bob,
                                json={"retention_days": 30})) == (403, "owner_only")

        # Cy leaves on its own; bob is removed; bob's own workspace is untouched.
        cy_id = next(m["account_id"] for m in client.get(f"{base}/members", headers=ada)
                     .json()["members"] if m["email"] == "cyd@example.com")
        assert client.delete(f"{base}/members/{cy_id}", headers=cy).status_code == 204
        assert client.delete(f"{base}/members/{bob_id}", headers=ada).status_code == 204
        assert _code(client.get(f"{base}/members", headers=bob)) == (404, "workspace_not_found")
        assert client.get(f"/console/v1/workspaces/{bob_reg['workspace_id']}",
                          headers=bob).json()["role"] == "owner"


@pytest.mark.db
def test_a_raise_on_a_commercial_workspace_waits_for_the_paying_account(
        runtime: Runtime) -> None:
    with TestClient(runtime.app) as client:
        reg = register(client, "ada")  # commercial, paid by billing account ada
        register(client, "bob")
        eve_reg = register(client, "eve")
        ada, bob = console_login(client, "ada"), console_login(client, "bob")
        ada_billing, eve_billing = billing_login(client, "ada"), billing_login(client, "eve")
        ws = reg["workspace_id"]
        base = f"/console/v1/workspaces/{ws}"
        added = client.post(f"{base}/members", headers=ada,
                            json={"email": "bob@example.com", "role": "admin"})
        assert added.status_code == 201, added.text
        bob_id = added.json()["account_id"]
        # Bob joins as a member; the raise waits.
        assert (added.json()["role"], added.json()["pending_role"]) == ("member", "admin")
        assert _code(client.get(f"{base}/quota", headers=bob)) == (403, "billing_permission_required")

        # The API delivered the request at once (no scheduler tick in between).
        waiting = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/promotion-requests",
                             headers=ada_billing).json()["requests"]
        assert [(r["workspace_id"], r["member_email"], r["requested_by_email"], r["status"])
                for r in waiting] == [(ws, "bob@example.com", "ada@example.com", "pending")]
        request_id = waiting[0]["request_id"]
        # The paying account is mailed that a request waits (once, in its language).
        with runtime.billing.engine.connect() as conn:
            mails = conn.execute(select(bt.mail_outbox.c.template, bt.mail_outbox.c.recipient)
                                 .where(bt.mail_outbox.c.dedup_key == f"promotion/{request_id}")
                                 ).all()
        assert [tuple(m) for m in mails] == [("promotion_requested", "ada@example.com")]

        # Another billing account neither sees nor answers it.
        eve_id = eve_reg["billing_account_id"]
        assert client.get(f"/billing/v1/accounts/{eve_id}/promotion-requests",
                          headers=eve_billing).json()["requests"] == []
        assert _code(client.post(
            f"/billing/v1/accounts/{eve_id}/promotion-requests/{request_id}/approve",
            headers=eve_billing)) == (404, "promotion_not_found")
        assert _code(client.get(
            f"/billing/v1/accounts/{reg['billing_account_id']}/promotion-requests",
            headers=eve_billing)) == (403, "forbidden")

        approved = client.post(f"/billing/v1/accounts/{reg['billing_account_id']}/"
                               f"promotion-requests/{request_id}/approve", headers=ada_billing)
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        assert _code(client.post(f"/billing/v1/accounts/{reg['billing_account_id']}/"
                                 f"promotion-requests/{request_id}/reject",
                                 headers=ada_billing)) == (409, "promotion_closed")
        _deliver(runtime)
        bob_row = next(m for m in client.get(f"{base}/members", headers=ada).json()["members"]
                       if m["account_id"] == bob_id)
        assert (bob_row["role"], bob_row["pending_role"]) == ("admin", None)
        assert client.get(f"{base}/quota", headers=bob).status_code == 200

        # A second raise, withdrawn by another change before it is answered: the late
        # approval changes nothing.
        assert client.put(f"{base}/members/{bob_id}", headers=ada,
                          json={"role": "member"}).json()["role"] == "member"
        again = client.put(f"{base}/members/{bob_id}", headers=ada, json={"role": "admin"})
        assert (again.json()["role"], again.json()["pending_role"]) == ("member", "admin")
        _deliver(runtime)
        second = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/promotion-requests",
                            headers=ada_billing).json()["requests"][0]["request_id"]
        assert client.put(f"{base}/members/{bob_id}", headers=ada,
                          json={"role": "member"}).json()["pending_role"] is None
        _deliver(runtime)
        assert client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/promotion-requests",
                          headers=ada_billing).json()["requests"] == []
        assert _code(client.post(f"/billing/v1/accounts/{reg['billing_account_id']}/"
                                 f"promotion-requests/{second}/approve",
                                 headers=ada_billing)) == (409, "promotion_closed")
        assert client.get(f"{base}/members", headers=ada).json()["members"][1]["role"] == "member"


def _deliver(runtime: Runtime) -> None:
    """Both relays once: console → billing center, then back."""
    runtime.console.relay.drain()
    runtime.billing_relay_drain()
    runtime.console.relay.drain()


@pytest.mark.db
def test_a_workspace_has_one_owner_whatever_writes_the_rows(runtime: Runtime) -> None:
    with TestClient(runtime.app) as client:
        reg = register(client, "ada")
        register(client, "bob")
        console = runtime.console
        with console.engine.connect() as conn:
            bob_id = conn.execute(select(ct.accounts.c.id)
                                  .where(ct.accounts.c.email == "bob@example.com")).scalar_one()
        with pytest.raises(IntegrityError), console.engine.begin() as conn:
            conn.execute(insert(ct.members).values(workspace_id=reg["workspace_id"],
                                                   account_id=bob_id, role="owner"))
        with pytest.raises(IntegrityError), console.engine.begin() as conn:
            conn.execute(insert(ct.members).values(workspace_id=reg["workspace_id"],
                                                   account_id=bob_id, role="custom"))
