"""The emulator mounted in the main app under /sandbox/aws (setting aws_marketplace)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.conftest import make_runtime


def test_the_app_serves_the_emulator_on_the_runtime_and_keeps_it_out_of_the_schema(
        runtime: Runtime, client: TestClient) -> None:
    assert runtime.aws_sandbox is not None
    assert runtime.aws_sandbox.endpoint_url == "http://127.0.0.1:8000/sandbox/aws"
    created = client.post("/sandbox/aws/control/products",
                          json={"product_code": "prod-1", "dimensions": ["usage_minor"]})
    assert created.status_code == 201, created.text
    assert "prod-1" in runtime.aws_sandbox.state.products
    unsigned = client.post("/sandbox/aws", content=b"{}", headers={
        "X-Amz-Target": "AWSMPMeteringService.ResolveCustomer",
        "Content-Type": "application/x-amz-json-1.1"})
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/sandbox/aws")]


def test_off_mounts_nothing(tmp_path: Path, pg_databases: tuple[str, str] | None,
                            clock: ManualClock) -> None:
    runtime = make_runtime(tmp_path, pg_databases, clock, aws_marketplace="off")
    try:
        assert runtime.aws_sandbox is None
        with TestClient(runtime.app) as client:
            assert client.post("/sandbox/aws/control/reset").status_code == 404
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


def test_the_command_serves_the_emulator_alone_with_its_choices() -> None:
    from typer.testing import CliRunner

    from accrual.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["sandbox", "aws", "--help"])
    assert shown.exit_code == 0 and "--window-hours" in shown.output
    refused = runner.invoke(app, ["sandbox", "aws", "--window-hours", "12"])
    assert refused.exit_code != 0
