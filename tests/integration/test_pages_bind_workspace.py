"""Bind Workspace in the billing center: the workspace's owner is mailed a code, the code
binds it and the free workspace becomes commercial in its console."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from accrual.app import Runtime
from tests.helpers import billing_login, console_login, register
from tests.pages_support import billing_sign_in, browser_client, error_text, submit
from tests.smtp import Inbox


def _free_workspace(client: TestClient, owner: dict[str, str]) -> str:
    made = client.post("/console/v1/workspaces", json={"name": "Side project"}, headers=owner)
    assert made.status_code == 201, made.text
    return str(made.json()["workspace_id"])


def test_bind_a_free_workspace_with_its_owners_code(mail_runtime: tuple[Runtime, Inbox]) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as api:
        register(api, "ada")  # the payer
        bob_reg = register(api, "bob")  # a free workspace of bob's, to be paid by ada
        bob = console_login(api, "bob")
        free = _free_workspace(api, bob)
        with browser_client(runtime) as payer:
            billing_sign_in(payer, "ada")
            assert "/billing/workspaces/bind" in payer.get("/billing/workspaces").text
            assert payer.get("/billing/workspaces/bind").status_code == 200

            # Refusals beside the field; nothing mailed, nothing bound.
            unknown = submit(payer, "/billing/workspaces/bind", {"workspace_id": "nope"})
            assert unknown.status_code == 404 and 'id="e-workspace_id"' in unknown.text
            bound = submit(payer, "/billing/workspaces/bind",
                           {"workspace_id": bob_reg["workspace_id"]})  # bob's account pays
            assert bound.status_code == 404, bound.text  # another account's: as unknown
            assert payer.post("/billing/workspaces/bind",
                              data={"workspace_id": free}).status_code == 403  # no CSRF
            assert inbox.bodies_to("bob@example.com") == []

            asked = submit(payer, "/billing/workspaces/bind", {"workspace_id": free})
            assert asked.status_code == 200, asked.text
            assert "b***@example.com" in asked.text and 'name="code"' in asked.text
            mail = inbox.bodies_to("bob@example.com")[-1]
            code = re.search(r"\b(\d{6})\b", mail)
            assert code, mail

            wrong = submit(payer, "/billing/workspaces/bind/confirm",
                           {"workspace_id": free, "code": "000000" if code.group(1) != "000000"
                            else "111111", "sent_to": "b***@example.com"})
            assert wrong.status_code == 422 and 'id="e-code"' in wrong.text
            assert error_text(wrong) == ["the code is not right"]
            assert free not in payer.get("/billing/workspaces").text

            done = submit(payer, "/billing/workspaces/bind/confirm",
                          {"workspace_id": free, "code": code.group(1)})
            assert done.status_code == 303
            assert done.headers["location"] == "/billing/workspaces?done=bound"
            page = payer.get(done.headers["location"])
            assert free in page.text and "Side project" in page.text
            again = submit(payer, "/billing/workspaces/bind", {"workspace_id": free})
            assert again.status_code == 422 and 'id="e-workspace_id"' in again.text

        # The console heard of it: commercial, bound to ada's billing account.
        seen = api.get(f"/console/v1/workspaces/{free}", headers=bob).json()
        ada_account = runtime.billing.accounts.find_by_username("ada")
        assert (seen["plan"], seen["billing_account_id"]) == ("commercial", ada_account)


def _certify(runtime: Runtime, account_id: str, name: str, taxpayer_id: str) -> None:
    runtime.billing.certifications.certify(account_id, name, taxpayer_id)


def test_change_binding_hands_a_workspace_to_an_account_with_the_same_certification(
        client: TestClient, runtime: Runtime) -> None:
    ada = register(client, "ada")
    bob = register(client, "bob")
    register(client, "eve")
    accounts = runtime.billing.accounts
    _certify(runtime, ada["billing_account_id"], "Ada Ltd", "91110000123456789X")
    _certify(runtime, bob["billing_account_id"], "Ada Ltd", "91110000123456789X")
    ws = ada["workspace_id"]
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        assert f"/billing/workspaces/{ws}/move" in browser.get("/billing/workspaces").text
        assert browser.get(f"/billing/workspaces/{ws}/move").status_code == 200
        # Another account's workspace is not found; refusals beside the field.
        assert browser.get(f"/billing/workspaces/{bob['workspace_id']}/move").status_code == 404
        for to, status in (("nobody", 404), ("ada", 422), ("eve", 403)):
            refused = submit(browser, f"/billing/workspaces/{ws}/move", {"to_username": to})
            assert refused.status_code == status and 'id="e-to_username"' in refused.text, to
        assert [w.workspace_id for w in accounts.workspaces_of(ada["billing_account_id"])] == [ws]
        moved = submit(browser, f"/billing/workspaces/{ws}/move", {"to_username": "bob"})
        assert moved.headers["location"] == "/billing/workspaces?done=moved"
    # From the next billing day.
    tomorrow = accounts.today() + timedelta(days=1)
    with runtime.billing.engine.connect() as conn:
        assert accounts.binding_for(conn, ws, tomorrow) == bob["billing_account_id"]
        assert accounts.binding_for(conn, ws, accounts.today()) == ada["billing_account_id"]


def test_a_workspace_bound_meanwhile_is_not_taken_over_by_a_second_code(
        mail_runtime: tuple[Runtime, Inbox]) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as api:
        ada, eve = register(api, "ada"), register(api, "eve")
        register(api, "bob")
        free = _free_workspace(api, console_login(api, "bob"))
        codes = {}
        for name, reg in (("ada", ada), ("eve", eve)):
            asked = api.post(f"/billing/v1/accounts/{reg['billing_account_id']}/workspace-bindings",
                             json={"workspace_id": free}, headers=billing_login(api, name))
            assert asked.status_code == 200, asked.text
            mail = inbox.bodies_to("bob@example.com")[-1]
            assert f"The billing center account {name} asked to pay for your workspace" in mail
            found = re.search(r"\b(\d{6})\b", mail)
            assert found
            codes[name] = found.group(1)
        first = api.post(f"/billing/v1/accounts/{ada['billing_account_id']}/workspace-bindings/"
                         "confirm", json={"workspace_id": free, "code": codes["ada"]},
                         headers=billing_login(api, "ada"))
        assert first.status_code == 200, first.text
        second = api.post(f"/billing/v1/accounts/{eve['billing_account_id']}/workspace-bindings/"
                          "confirm", json={"workspace_id": free, "code": codes["eve"]},
                          headers=billing_login(api, "eve"))
        assert (second.status_code, second.json()["error"]["code"]) == (422, "already_bound")
        accounts = runtime.billing.accounts
        with runtime.billing.engine.connect() as conn:
            for day in (accounts.today(), accounts.today() + timedelta(days=1)):
                assert accounts.binding_for(conn, free, day) == ada["billing_account_id"]
