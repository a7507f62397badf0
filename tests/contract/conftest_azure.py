"""The Azure Marketplace emulator served over real HTTP for the contract tests, with the
publisher's side: a small app receiving its webhook calls.

One server per run; every test starts from a reset emulator, its default config, the
clock at ``T0`` and one offer (an app of its own, three plans). A test module loads
these fixtures with ``pytest_plugins = ["tests.contract.conftest_azure"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from accrual.clock import ManualClock
from accrual.sandbox.azure import AzureSandbox, SandboxConfig, create_app
from tests.contract.azure_support import OFFER, PLANS, T0, Az, Receiver
from tests.sandbox_server import serve


@pytest.fixture(scope="session")
def served_azure() -> Iterator[tuple[AzureSandbox, ManualClock, Receiver, str]]:
    clock = ManualClock(T0)
    receiver = Receiver()
    sandbox = AzureSandbox(clock, "http://127.0.0.1")
    with serve(create_app(sandbox)) as base, serve(receiver.app()) as receiver_url:
        sandbox.base_url = base
        yield sandbox, clock, receiver, receiver_url


@pytest.fixture
def az(served_azure: tuple[AzureSandbox, ManualClock, Receiver, str]) -> Iterator[Az]:
    sandbox, clock, receiver, receiver_url = served_azure
    sandbox.reset()
    sandbox.state.config = SandboxConfig()
    clock.set(T0)
    with receiver.lock:
        receiver.calls.clear()
        receiver.answers.clear()
        receiver.status, receiver.handler = 200, None
    with httpx.Client(base_url=sandbox.endpoint_url, timeout=10) as control, \
            httpx.Client(timeout=10) as http:
        created = control.post("/control/offers", json={
            "offer_id": OFFER, "plans": PLANS, "webhook_url": f"{receiver_url}/webhook",
            "landing_url": f"{receiver_url}/landing"})
        assert created.status_code == 201, created.text
        yield Az(sandbox, clock, receiver, receiver_url, control, created.json(), http)
