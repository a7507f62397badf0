"""Sign-out on both sides: `DELETE …/sessions/current` ends the bearer token's session."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accrual.app import Runtime
from tests.helpers import OPERATOR, billing_login, console_login, register
from tests.integration.test_bad_input import error_code


def test_console_sign_out_revokes_only_that_token(client: TestClient, runtime: Runtime) -> None:
    register(client, "ada")
    session, other = console_login(client), console_login(client)
    assert client.get("/console/v1/workspaces", headers=session).status_code == 200
    response = client.delete("/console/v1/sessions/current", headers=session)
    assert response.status_code == 204 and response.content == b""
    assert error_code(client.get("/console/v1/workspaces", headers=session), 401) == "unauthorized"
    assert error_code(client.delete("/console/v1/sessions/current", headers=session),
                      401) == "unauthorized"
    # The account's other session lives on; signing in again works.
    assert client.get("/console/v1/workspaces", headers=other).status_code == 200
    assert client.get("/console/v1/workspaces", headers=console_login(client)).status_code == 200
    token = other["Authorization"].removeprefix("Bearer ")
    assert runtime.console.accounts.logout(token) is True
    assert runtime.console.accounts.logout(token) is False
    assert client.get("/console/v1/workspaces", headers=other).status_code == 401


def test_billing_sign_out_revokes_only_that_token(client: TestClient, runtime: Runtime) -> None:
    ada = register(client, "ada")
    account = f"/billing/v1/accounts/{ada['billing_account_id']}"
    session, other = billing_login(client), billing_login(client)
    assert client.get(account, headers=session).status_code == 200
    assert client.delete("/billing/v1/sessions/current", headers=session).status_code == 204
    assert error_code(client.get(account, headers=session), 401) == "unauthorized"
    assert error_code(client.delete("/billing/v1/sessions/current", headers=session),
                      401) == "unauthorized"
    assert client.get(account, headers=other).status_code == 200
    token = other["Authorization"].removeprefix("Bearer ")
    assert runtime.billing.accounts.logout(token) is True
    assert runtime.billing.accounts.logout(token) is False
    assert client.get(account, headers=other).status_code == 401


def test_sign_out_needs_a_session(client: TestClient) -> None:
    for path in ("/console/v1/sessions/current", "/billing/v1/sessions/current"):
        assert error_code(client.delete(path), 401) == "unauthorized"
        assert error_code(client.delete(path, headers={"Authorization": "Bearer nope"}),
                          401) == "unauthorized"
        # The operator's token is no session: nothing to sign out of.
        assert error_code(client.delete(path, headers=OPERATOR), 401) == "unauthorized"
