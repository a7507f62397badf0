"""Tenancy (RELIABILITY.md R7): no session, key or token reaches another tenant's data.

A console session of another account gets 404 `workspace_not_found` (whether the
workspace exists is not its business); a billing session of another account gets
403; a missing, garbage or expired token gets 401 `unauthorized`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.helpers import OPERATOR, bearer, billing_login, console_login, register
from tests.integration.test_bad_input import (
    error_code,
    post_usage,
    record,
    row_counts,
    usage_rows,
)

DAY = "2026-11-25"


@pytest.fixture
def ada(client: TestClient) -> dict[str, Any]:
    return register(client, "ada")


@pytest.fixture
def bob(client: TestClient) -> dict[str, Any]:
    return register(client, "bob")


def test_a_console_session_sees_only_its_own_workspaces(
        client: TestClient, ada: dict[str, Any], bob: dict[str, Any]) -> None:
    session = console_login(client, "ada")
    listed = client.get("/console/v1/workspaces", headers=session)
    assert listed.status_code == 200, listed.text
    assert [w["workspace_id"] for w in listed.json()["workspaces"]] == [ada["workspace_id"]]

    own = client.get(f"/console/v1/workspaces/{ada['workspace_id']}", headers=session)
    assert own.status_code == 200 and own.json()["role"] == "owner"

    # Bob's workspace answers exactly like one that does not exist.
    for suffix in ("", "/billing-details"):
        answers = []
        for workspace_id in (bob["workspace_id"], "0" * 32):
            response = client.get(f"/console/v1/workspaces/{workspace_id}{suffix}",
                                  headers=session)
            assert error_code(response, 404, suffix) == "workspace_not_found"
            answers.append(response.text.replace(workspace_id, "<id>"))
        assert answers[0] == answers[1]


def test_another_accounts_billing_details_stay_hidden_after_a_day_is_billed(
        client: TestClient, ada: dict[str, Any], bob: dict[str, Any], clock: ManualClock) -> None:
    # Bob has a billed day; Ada's session still sees nothing of it.
    clock.set(clock.now() - timedelta(hours=12))  # 2026-11-25 22:00 in Shanghai
    response = post_usage(client, bob["ingest_key"], {"records": [
        record(bob["workspace_id"], "b-1", time=f"{DAY}T20:00:00+08:00", quantity="1000000")]})
    assert response.status_code == 200, response.text
    clock.set(clock.now() + timedelta(hours=12))
    assert client.post("/console/v1/admin/close-day", json={"date": DAY},
                       headers=OPERATOR).status_code == 200

    path = f"/console/v1/workspaces/{bob['workspace_id']}/billing-details"
    own = client.get(path, params={"from": DAY, "to": DAY}, headers=console_login(client, "bob"))
    assert own.status_code == 200 and own.json()["details"], own.text
    other = client.get(path, params={"from": DAY, "to": DAY},
                       headers=console_login(client, "ada"))
    assert error_code(other, 404) == "workspace_not_found"
    assert "details" not in other.json()


def test_a_billing_session_reads_only_its_own_account(
        client: TestClient, ada: dict[str, Any], bob: dict[str, Any]) -> None:
    session = billing_login(client, "ada")
    mine, theirs = ada["billing_account_id"], bob["billing_account_id"]
    paths = ("/billing/v1/accounts/{}", "/billing/v1/accounts/{}/overview",
             "/billing/v1/accounts/{}/daily-bills?date=" + DAY)
    for path in paths:
        assert client.get(path.format(mine), headers=session).status_code == 200
        response = client.get(path.format(theirs), headers=session)
        assert error_code(response, 403, path) == "forbidden"
        assert list(response.json()) == ["error"]
        # An account that does not exist is no different from another's.
        assert error_code(client.get(path.format("0" * 32), headers=session), 403,
                          path) == "forbidden"


def test_sessions_keys_and_tokens_do_not_cross_over(
        client: TestClient, runtime: Runtime, ada: dict[str, Any]) -> None:
    console_session = console_login(client, "ada")
    billing_session = billing_login(client, "ada")
    ingest_key = bearer(ada["ingest_key"])
    ws, account = ada["workspace_id"], ada["billing_account_id"]
    before = row_counts(runtime)
    refused = [
        # A billing session or an ingest key is no console session.
        ("GET", f"/console/v1/workspaces/{ws}", billing_session, None),
        ("GET", f"/console/v1/workspaces/{ws}", ingest_key, None),
        ("GET", f"/console/v1/workspaces/{ws}", OPERATOR, None),
        # A console session or an ingest key is no billing session.
        ("GET", f"/billing/v1/accounts/{account}/overview", console_session, None),
        ("GET", f"/billing/v1/accounts/{account}/overview", ingest_key, None),
        # Sessions are no ingest keys.
        ("POST", "/console/v1/usage", console_session, {"records": [record(ws)]}),
        ("POST", "/console/v1/usage", billing_session, {"records": [record(ws)]}),
        # No tenant credential is the operator.
        ("POST", "/console/v1/admin/close-day", console_session, {"date": DAY}),
        ("POST", "/console/v1/admin/close-day", ingest_key, {"date": DAY}),
        ("GET", "/console/v1/admin/jobs", console_session, None),
        ("POST", f"/billing/v1/admin/accounts/{account}/recharges", billing_session,
         {"amount": "10", "reference": "self-service"}),
        ("PUT", f"/billing/v1/admin/workspaces/{ws}/binding", billing_session,
         {"account_id": account}),
        ("POST", "/billing/v1/internal/inbox", billing_session, {"messages": []}),
        ("POST", "/console/v1/internal/inbox", console_session, {"messages": []}),
    ]
    for method, path, headers, body in refused:
        response = client.request(method, path, headers=headers, json=body)
        assert error_code(response, 401, f"{method} {path}") == "unauthorized"
    assert row_counts(runtime) == before


ENDPOINTS = [
    ("GET", "/console/v1/workspaces", None),
    ("POST", "/console/v1/workspaces", {"name": "Staging"}),
    ("GET", "/console/v1/workspaces/{ws}", None),
    ("GET", "/console/v1/workspaces/{ws}/billing-details", None),
    ("POST", "/console/v1/usage", {"records": []}),
    ("POST", "/console/v1/admin/close-day", {"date": DAY}),
    ("GET", "/console/v1/admin/jobs", None),
    ("POST", "/console/v1/internal/inbox", {"messages": []}),
    ("GET", "/billing/v1/accounts/{account}", None),
    ("GET", "/billing/v1/accounts/{account}/overview", None),
    ("GET", "/billing/v1/accounts/{account}/daily-bills?date=" + DAY, None),
    ("POST", "/billing/v1/admin/accounts/{account}/recharges", {"amount": "1", "reference": "x"}),
    ("PUT", "/billing/v1/admin/workspaces/{ws}/binding", {"account_id": "{account}"}),
    ("POST", "/billing/v1/internal/inbox", {"messages": []}),
    ("POST", "/billing/v1/internal/registrations", {}),
    ("DELETE", "/billing/v1/internal/registrations/some-key", None),
]
BAD_CREDENTIALS = {
    "no header": {},
    "garbage token": {"Authorization": "Bearer garbage"},
    "empty token": {"Authorization": "Bearer    "},
    "no scheme": {"Authorization": "op-test-token"},
    "basic scheme": {"Authorization": "Basic b3AtdGVzdC10b2tlbg=="},
    "operator token with a suffix": {"Authorization": "Bearer op-test-token2"},
    "operator token prefix": {"Authorization": "Bearer op-test"},
    "forged session": {"Authorization": "Bearer cs_" + "A" * 43},
}


def test_no_or_garbage_tokens_are_401_everywhere(
        client: TestClient, runtime: Runtime, ada: dict[str, Any]) -> None:
    before = row_counts(runtime)
    for method, template, body in ENDPOINTS:
        path = template.format(ws=ada["workspace_id"], account=ada["billing_account_id"])
        if isinstance(body, dict):
            body = {k: v.format(account=ada["billing_account_id"]) if isinstance(v, str) else v
                    for k, v in body.items()}
        for case, headers in BAD_CREDENTIALS.items():
            response = client.request(method, path, headers=headers, json=body)
            assert error_code(response, 401, f"{case}: {method} {path}") == "unauthorized"
    assert row_counts(runtime) == before


def test_an_ingest_key_writes_only_to_its_own_workspace(
        client: TestClient, runtime: Runtime, ada: dict[str, Any], bob: dict[str, Any]) -> None:
    # Another tenant's workspace, next to one of the key's own.
    response = post_usage(client, ada["ingest_key"], {"records": [
        record(ada["workspace_id"], "a-1"), record(bob["workspace_id"], "b-1")]})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [
        (1, "unknown_workspace")]
    assert usage_rows(runtime, bob["workspace_id"]) == 0

    # The same account's second workspace has its own key; the first one's does not reach it.
    created = client.post("/console/v1/workspaces", json={"name": "Staging"},
                          headers=console_login(client, "ada"))
    assert created.status_code == 201, created.text
    staging = created.json()
    refused = post_usage(client, ada["ingest_key"], {"records": [record(staging["workspace_id"])]})
    assert error_code(refused, 422) == "all_records_rejected"
    assert refused.json()["rejected"][0]["code"] == "unknown_workspace"
    assert usage_rows(runtime, staging["workspace_id"]) == 0

    # Each key still writes its own; the operator may write to any.
    for reg in (bob, staging):
        sent = post_usage(client, reg["ingest_key"], {"records": [record(reg["workspace_id"])]})
        assert sent.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    by_operator = post_usage(client, "op-test-token", {"records": [
        record(bob["workspace_id"], "op-1"), record(ada["workspace_id"], "op-1")]})
    assert by_operator.json()["accepted"] == 2
    assert usage_rows(runtime, bob["workspace_id"]) == 2
    assert usage_rows(runtime, ada["workspace_id"]) == 2


def test_sessions_expire_after_seven_days(client: TestClient, ada: dict[str, Any],
                                          clock: ManualClock) -> None:
    console_session = console_login(client, "ada")
    billing_session = billing_login(client, "ada")
    console_path = f"/console/v1/workspaces/{ada['workspace_id']}"
    billing_path = f"/billing/v1/accounts/{ada['billing_account_id']}/overview"

    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert client.get(console_path, headers=console_session).status_code == 200
    assert client.get(billing_path, headers=billing_session).status_code == 200

    clock.advance(timedelta(seconds=2))
    assert error_code(client.get(console_path, headers=console_session), 401) == "unauthorized"
    assert error_code(client.get("/console/v1/workspaces", headers=console_session),
                      401) == "unauthorized"
    assert error_code(client.get(billing_path, headers=billing_session), 401) == "unauthorized"

    # Logging in again gives a fresh week.
    assert client.get(console_path, headers=console_login(client, "ada")).status_code == 200
    assert client.get(billing_path, headers=billing_login(client, "ada")).status_code == 200


def test_a_wrong_password_gets_no_session(client: TestClient, ada: dict[str, Any]) -> None:
    for path, body in (
        ("/console/v1/sessions", {"email": "ada@example.com", "password": "wrong password"}),
        ("/console/v1/sessions", {"email": "bob@example.com", "password": "correct horse battery"}),
        ("/billing/v1/sessions", {"username": "ada", "password": "wrong password"}),
        ("/billing/v1/sessions", {"username": "bob", "password": "correct horse battery"}),
    ):
        response = client.post(path, json=body)
        assert error_code(response, 401, path) == "invalid_credentials"
        assert "token" not in response.json()
