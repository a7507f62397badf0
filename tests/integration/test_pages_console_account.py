"""The console's account pages: registration (refusals beside their fields, nothing
stored), the upgrade with the mailed code, settings and retention, the lock page."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from tests.helpers import console_login, register
from tests.pages_support import browser_client, console_sign_in, error_text, submit
from tests.smtp import Inbox

GOOD = {"email": "lin@example.com", "password": "correct horse battery", "username": "lin",
        "workspace_name": "Lin's lab", "language": "zh", "settlement": "billing_center"}


@pytest.mark.parametrize(("change", "field", "code"), [
    ({"email": "not-an-address"}, "email", "email is not a valid address"),
    ({"password": "short"}, "password", "password must be"),
    ({"username": "x"}, "username", "username must be"),
    ({"workspace_name": "   "}, "workspace_name", "workspace name must"),
    ({"language": "fr"}, "language", "language must be"),
    ({"settlement": "marketplace"}, "activation_id", "subscribe in the marketplace first"),
    ({"settlement": "marketplace", "activation_id": "act_00000000000000000000000000000000"},
     "activation_id", ""),
])
def test_a_refused_registration_says_why_beside_the_field_and_makes_nothing(
        runtime: Runtime, change: dict[str, str], field: str, code: str) -> None:
    with browser_client(runtime) as browser:
        answer = submit(browser, "/console/register", {**GOOD, **change})
        assert 400 <= answer.status_code < 500, answer.text
        assert f'id="e-{field}"' in answer.text, answer.text
        assert code in error_text(answer)[0]
        assert "accrual_console" not in answer.headers.get("set-cookie", "")
    assert runtime.console.accounts.count_accounts() == 0


def test_registration_makes_all_three_signs_in_and_shows_the_key_once(
        client: TestClient, runtime: Runtime) -> None:
    register(client, "ada")
    with browser_client(runtime) as browser:
        taken = submit(browser, "/console/register", {**GOOD, "username": "ada"})
        assert taken.status_code == 409 and 'id="e-username"' in taken.text
        made = submit(browser, "/console/register", GOOD)
        assert made.status_code == 201
        key = re.search(r'class="ingest-key">([^<]+)<', made.text).group(1)  # type: ignore[union-attr]
        workspace_id = runtime.console.accounts.workspace_for_ingest_key(key)
        assert workspace_id is not None
        assert browser.get("/console/").status_code == 200  # signed in
        home = browser.get(f"/console/workspaces/{workspace_id}/")
        assert "Lin&#39;s lab" in home.text
    assert runtime.billing.accounts.find_by_username("lin") is not None


def test_upgrade_through_the_pages_with_the_mailed_code(mail_runtime: tuple[Runtime, Inbox]) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as client:
        register(client)
        free = client.post("/console/v1/workspaces", json={"name": "Lab", "language": "en"},
                           headers=console_login(client)).json()["workspace_id"]
    with browser_client(runtime) as browser:
        console_sign_in(browser, "ada@example.com")
        page = browser.get(f"/console/workspaces/{free}/upgrade")
        assert page.status_code == 200 and "cannot be undone" in page.text
        unknown = submit(browser, f"/console/workspaces/{free}/upgrade/code", {"username": "nobody"})
        assert unknown.status_code == 404 and 'id="e-username"' in unknown.text
        sent = submit(browser, f"/console/workspaces/{free}/upgrade/code", {"username": "ada"})
        assert sent.status_code == 200 and "a***@example.com" in sent.text
        code = re.search(r"(\d{6})", inbox.bodies_to("ada@example.com")[0]).group(1)  # type: ignore[union-attr]
        unticked = submit(browser, f"/console/workspaces/{free}/upgrade",
                          {"username": "ada", "code": code})
        assert unticked.status_code == 422 and "accept the agreement" in unticked.text
        wrong = submit(browser, f"/console/workspaces/{free}/upgrade",
                       {"username": "ada", "code": "000000" if code != "000000" else "111111",
                        "agree": "yes"})
        assert wrong.status_code == 422 and 'id="e-code"' in wrong.text
        done = submit(browser, f"/console/workspaces/{free}/upgrade",
                      {"username": "ada", "code": code, "agree": "yes"})
        assert done.status_code == 303
        assert "commercial plan" in browser.get(f"/console/workspaces/{free}/upgrade").text
    workspace = runtime.console.accounts.workspace(free)
    assert workspace is not None and workspace.plan == "commercial"


def test_retention_is_the_owners_and_refusals_change_nothing(client: TestClient,
                                                             runtime: Runtime) -> None:
    ada = register(client)
    with browser_client(runtime) as browser:
        console_sign_in(browser, "ada@example.com")
        base = f"/console/workspaces/{ada['workspace_id']}"
        assert browser.get(f"{base}/settings").status_code == 200
        bad = submit(browser, f"{base}/settings/retention/logs", {"retention_days": "8"})
        assert bad.status_code == 422 and error_text(bad)
        unknown = submit(browser, f"{base}/settings/retention/nothing", {"retention_days": "7"})
        assert unknown.status_code == 404
        assert submit(browser, f"{base}/settings/retention/logs",
                      {"retention_days": "30"}).status_code == 303
        policies = {p.data_type.value: p for p in runtime.console.retention.policies(ada["workspace_id"])}
        assert 30 in (policies["logs"].retention_days,
                      policies["logs"].pending.retention_days if policies["logs"].pending else None)


def test_dissolve_needs_the_name_and_arrears(client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    with browser_client(runtime) as browser:
        console_sign_in(browser, "ada@example.com")
        base = f"/console/workspaces/{ada['workspace_id']}"
        assert "not locked" in browser.get(f"{base}/locked").text
        refused = submit(browser, f"{base}/dissolve", {"workspace_name": "ada's team"})
        assert refused.status_code == 409  # not in arrears: nothing to dissolve for
        assert runtime.console.accounts.workspace(ada["workspace_id"]).status == "active"  # type: ignore[union-attr]


def test_a_further_workspace_is_free_and_its_key_shown_once(client: TestClient,
                                                            runtime: Runtime) -> None:
    register(client)
    with browser_client(runtime) as browser:
        console_sign_in(browser, "ada@example.com")
        assert browser.get("/console/workspaces/new").status_code == 200
        bad = submit(browser, "/console/workspaces/new", {"workspace_name": " ", "language": "en"})
        assert bad.status_code == 422 and 'id="e-workspace_name"' in bad.text
        made = submit(browser, "/console/workspaces/new", {"workspace_name": "Lab", "language": "zh"})
        assert made.status_code == 201
        key = re.search(r'class="ingest-key">([^<]+)<', made.text).group(1)  # type: ignore[union-attr]
        workspace_id = runtime.console.accounts.workspace_for_ingest_key(key)
        assert workspace_id is not None
        workspace = runtime.console.accounts.workspace(workspace_id)
        assert workspace is not None and (workspace.plan, workspace.language) == ("free", "zh")
        assert "Lab" in browser.get("/console/").text
    with browser_client(runtime) as stranger:
        assert stranger.get("/console/workspaces/new").status_code == 303
