"""Small helpers the HTTP tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine

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


def downgrade(engine: Engine, migrations_dir: Path, version_table: str, revision: str) -> None:
    """Take a database back to ``revision`` of one side's history (a test of a migration
    starts from the schema an older release left)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["version_table"] = version_table
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
