"""The AWS Marketplace emulator served over real HTTP for the contract tests, with a
small seller-side receiver for its notifications and fulfillment POSTs.

One server per run (starting uvicorn and loading boto3's models cost more than a
test); every test starts from a reset emulator, its default config and the clock at
``T0``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from accrual.clock import ManualClock
from accrual.sandbox.aws import AwsSandbox, SandboxConfig, create_app
from tests.sandbox_server import serve

T0 = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
PRODUCT = "prod-accrual-1"
DIMENSION = "usage_minor"


@dataclass
class Receiver:
    """The seller's side: what the emulator POSTed to it, and what it answers."""

    notifications: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    forms: list[bytes] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/sns")
        async def sns(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.notifications.append(({k.lower(): v for k, v in request.headers.items()},
                                           body))
            return Response(status_code=self.status)

        @app.post("/fulfill")
        async def fulfill(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.forms.append(body)
            return RedirectResponse("/welcome?from=aws", status_code=303)

        return app


@dataclass
class Aws:
    sandbox: AwsSandbox
    clock: ManualClock
    receiver: Receiver
    receiver_url: str
    meter: Any  # boto3 meteringmarketplace client
    entitlements: Any  # boto3 marketplace-entitlement client
    raw_meter: Any  # the same without botocore's client-side parameter checks
    raw_entitlements: Any
    control: httpx.Client

    @property
    def endpoint(self) -> str:
        return self.sandbox.endpoint_url

    def ctl(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        response = self.control.request(method, path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def product(self, code: str = PRODUCT, dimensions: tuple[str, ...] = (DIMENSION, "seats"),
                **options: Any) -> dict[str, Any]:
        return self.ctl("POST", "/control/products", expect=201,
                        json={"product_code": code, "dimensions": list(dimensions), **options})

    def subscribe(self, code: str = PRODUCT, **options: Any) -> dict[str, Any]:
        return self.ctl("POST", f"/control/products/{code}/subscriptions", expect=201,
                        json=options)

    def records(self) -> dict[str, Any]:
        return self.ctl("GET", "/control/records")

    def notifications(self) -> list[dict[str, Any]]:
        return self.ctl("GET", "/control/notifications")["notifications"]


def clients_for(endpoint: str, *, validate: bool = True,
                access_key: str = "AKIASANDBOX") -> tuple[Any, Any]:
    """boto3's metering and entitlement clients for the emulator, retries off."""
    config = Config(retries={"mode": "standard", "total_max_attempts": 1},
                    parameter_validation=validate, connect_timeout=5, read_timeout=10)
    # Any region and any credentials: the emulator checks only that a signature is there.
    session = boto3.session.Session(aws_access_key_id=access_key,
                                    aws_secret_access_key="sandbox-secret",
                                    region_name="eu-central-1")
    return (session.client("meteringmarketplace", endpoint_url=endpoint, config=config),
            session.client("marketplace-entitlement", endpoint_url=endpoint, config=config))


@pytest.fixture(scope="session")
def served() -> Iterator[tuple[AwsSandbox, ManualClock, Receiver, str]]:
    clock = ManualClock(T0)
    receiver = Receiver()
    # The port is known only once served: the base URL is set right after.
    sandbox = AwsSandbox(clock, "http://127.0.0.1")
    with serve(create_app(sandbox)) as base, serve(receiver.app()) as receiver_url:
        sandbox.base_url = base
        yield sandbox, clock, receiver, receiver_url


@pytest.fixture(scope="session")
def clients(served: tuple[AwsSandbox, ManualClock, Receiver, str]) -> tuple[Any, ...]:
    endpoint = served[0].endpoint_url
    return (*clients_for(endpoint), *clients_for(endpoint, validate=False))


@pytest.fixture
def aws(served: tuple[AwsSandbox, ManualClock, Receiver, str],
        clients: tuple[Any, ...]) -> Iterator[Aws]:
    sandbox, clock, receiver, receiver_url = served
    sandbox.reset()
    sandbox.state.config = SandboxConfig()
    clock.set(T0)
    receiver.notifications.clear()
    receiver.forms.clear()
    receiver.status = 200
    with httpx.Client(base_url=sandbox.endpoint_url, timeout=10) as control:
        yield Aws(sandbox, clock, receiver, receiver_url, *clients, control=control)
