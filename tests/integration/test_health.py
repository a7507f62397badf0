"""Operations: health reports each database, and the OpenAPI documents every endpoint."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.infra.db import make_engine


def test_health_reports_a_lost_database(client: TestClient, runtime: Runtime) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    runtime.billing.engine.dispose()
    # An engine on a file that cannot exist stands in for a lost database server.
    runtime.billing.engine = make_engine("sqlite:////nonexistent-dir/billing.sqlite3")
    down = client.get("/healthz")
    assert (down.status_code, down.json()["error"]["code"]) == (503, "unhealthy")


def test_every_operation_is_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = [(m, p, o) for p, ms in spec["paths"].items() for m, o in ms.items()]
    assert len(operations) > 60
    assert [(m, p) for m, p, o in operations if not o.get("description")] == []
    assert [(m, p) for m, p, o in operations
            if not any(str(code)[0] in "45" for code in o.get("responses", {}))] == []
