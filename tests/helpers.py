"""Small helpers the HTTP tests share."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ADMIN

OPERATOR = {"Authorization": f"Bearer {ADMIN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client: TestClient, name: str = "ada", **overrides: Any) -> dict[str, Any]:
    body = {"email": f"{name}@example.com", "password": "correct horse battery",
            "username": name, "workspace_name": f"{name}'s team", "language": "en", **overrides}
    response = client.post("/console/v1/registrations", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def console_login(client: TestClient, name: str = "ada") -> dict[str, str]:
    response = client.post("/console/v1/sessions",
                           json={"email": f"{name}@example.com", "password": "correct horse battery"})
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


def billing_login(client: TestClient, name: str = "ada") -> dict[str, str]:
    response = client.post("/billing/v1/sessions",
                           json={"username": name, "password": "correct horse battery"})
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


def send_usage(client: TestClient, key: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/console/v1/usage", json={"records": records}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def close_day(client: TestClient, day: str) -> dict[str, Any]:
    response = client.post("/console/v1/admin/close-day", json={"date": day}, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return response.json()
