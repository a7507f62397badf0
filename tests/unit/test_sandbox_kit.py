"""The kit the marketplace emulators share (accrual.sandbox): the emulator frame, the
fault queue, deliveries, the control API's shared routes and the bounded body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import Field

from accrual.clock import ManualClock
from accrual.sandbox import faults
from accrual.sandbox.control import (
    Body,
    ControlError,
    add_new,
    apply_change,
    check_url,
    control_api,
    known,
    seconds,
)
from accrual.sandbox.deliveries import Delivery, attempt, succeeded
from accrual.sandbox.emulator import Emulator, EmulatorState
from accrual.sandbox.faults import Fault
from accrual.sandbox.serving import read_bounded, standalone_app

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


# -- a tiny emulator on the kit -------------------------------------------------


@dataclass
class Config:
    window: timedelta = timedelta(hours=1)
    retries: int = 3

    def describe(self) -> dict[str, Any]:
        return {"window_seconds": self.window.total_seconds(), "retries": self.retries}


class State(EmulatorState[Config]):
    def reset(self) -> None:
        """Forget the widgets and faults."""
        with self.lock:
            self.widgets: dict[str, str] = {}
            self.faults: list[Fault[str]] = []


class Toy(Emulator[State, Config]):
    def __init__(self, clock: ManualClock) -> None:
        super().__init__(State(clock, Config()), "http://host:8000/", "/sandbox/toy/")
        self.ticks = 0

    def inject(self, kind: str, calls: int = 1) -> None:
        """The next calls fail."""
        if kind == "refused":
            raise ControlError(409, "refused", "no such fault here")
        with self.state.lock:
            self.state.faults.append(Fault(kind, calls))

    def tick(self) -> dict[str, Any]:
        """Let time act."""
        self.ticks += 1
        return {"ticks": self.ticks, "at": self.state.now().isoformat()}


class ConfigChange(Body):
    window_seconds: int | None = Field(None, ge=1)
    retries: int | None = Field(None, ge=0)


class FaultIn(Body):
    kind: Literal["throttling", "refused"]
    calls: int = Field(1, ge=1, le=faults.MAX_CALLS)


@pytest.fixture
def toy() -> Toy:
    return Toy(ManualClock(START))


@pytest.fixture
def client(toy: Toy) -> TestClient:
    router = APIRouter(prefix=toy.prefix)
    router.include_router(control_api(toy, ConfigChange, FaultIn,
                                      renamed={"window_seconds": ("window", seconds)}))
    return TestClient(standalone_app("Toy", "A toy marketplace", router, toy_sandbox=toy))


def test_the_frame_serves_at_base_url_and_prefix_and_reads_the_clock() -> None:
    clock = ManualClock(START)
    toy = Toy(clock)
    assert toy.endpoint_url == "http://host:8000/sandbox/toy"
    assert toy.config is toy.state.config and toy.clock is clock
    clock.advance(timedelta(minutes=5))
    assert toy.state.now() == START + timedelta(minutes=5)
    toy.state.widgets["a"] = "b"
    toy.reset()
    assert toy.state.widgets == {}
    assert toy.config.retries == 3


def test_the_shared_control_routes(client: TestClient, toy: Toy) -> None:
    assert client.get("/sandbox/toy/control/config").json() == {"window_seconds": 3600.0,
                                                                 "retries": 3}
    changed = client.put("/sandbox/toy/control/config", json={"window_seconds": 60})
    assert changed.json() == {"window_seconds": 60.0, "retries": 3}
    assert toy.config.window == timedelta(seconds=60)

    injected = client.post("/sandbox/toy/control/faults", json={"kind": "throttling", "calls": 2})
    assert injected.status_code == 200
    assert injected.json() == {"injected": {"kind": "throttling", "calls": 2}}
    assert toy.state.faults == [Fault("throttling", 2)]

    assert client.post("/sandbox/toy/control/tick").json()["ticks"] == 1
    assert client.post("/sandbox/toy/control/reset").json() == {"reset": True}
    assert toy.state.faults == []
    assert toy.config.window == timedelta(seconds=60)  # the config stays


def test_a_control_error_is_its_status_and_code(client: TestClient) -> None:
    refused = client.post("/sandbox/toy/control/faults", json={"kind": "refused"})
    assert refused.status_code == 409
    assert refused.json() == {"error": {"code": "refused", "message": "no such fault here"}}


def test_an_unknown_field_is_refused_not_ignored(client: TestClient, toy: Toy) -> None:
    assert client.put("/sandbox/toy/control/config", json={"retry": 1}).status_code == 422
    assert client.post("/sandbox/toy/control/faults",
                       json={"kind": "throttling", "extra": 1}).status_code == 422
    assert toy.config.retries == 3 and toy.state.faults == []


def test_the_routes_are_described_by_the_emulators_own_methods(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    paths = app.openapi()["paths"]
    assert paths["/sandbox/toy/control/tick"]["post"]["description"] == "Let time act."
    assert paths["/sandbox/toy/control/reset"]["post"]["description"] == (
        "Forget the widgets and faults.")
    assert paths["/sandbox/toy/control/faults"]["post"]["description"] == "The next calls fail."
    assert isinstance(app.state.toy_sandbox, Toy)


def test_apply_change_sets_only_what_is_given() -> None:
    config = Config()
    apply_change(config, ConfigChange(retries=0), {"window_seconds": ("window", seconds)})
    assert config == Config(retries=0)


def test_known_or_404() -> None:
    assert known({"p": 1}, "p", "product") == 1
    with pytest.raises(ControlError) as raised:
        known({"p": 1}, "q", "product")
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        404, "unknown_product", "no product q")


def test_add_new_or_409() -> None:
    items = {"p": 1}
    assert add_new(items, "q", 2, "offer") == 2
    with pytest.raises(ControlError) as raised:
        add_new(items, "p", 3, "offer")
    assert (raised.value.status, raised.value.code) == (409, "offer_exists")
    assert items == {"p": 1, "q": 2}


@pytest.mark.parametrize("url, fine", [(None, True), ("http://seller/x", True),
                                       ("https://seller", True), ("ftp://seller", False),
                                       ("seller.example/hook", False)])
def test_check_url(url: str | None, fine: bool) -> None:
    if fine:
        check_url(url)
    else:
        with pytest.raises(ControlError, match="not an http"):
            check_url(url)


# -- faults ----------------------------------------------------------------------


def test_a_fault_lasts_its_calls_then_the_next_one_applies() -> None:
    queue = [Fault("throttling", 2), Fault("internal_error", 1)]
    taken = [faults.take(queue) for _ in range(4)]
    assert [f.kind if f else None for f in taken] == ["throttling", "throttling",
                                                     "internal_error", None]
    assert queue == []


def test_a_spent_fault_is_skipped() -> None:
    queue = [Fault("throttling", 0), Fault("internal_error", 1)]
    assert faults.take(queue) == Fault("internal_error", 0)


# -- deliveries ------------------------------------------------------------------


def test_an_attempt_keeps_the_failure_instead_of_raising() -> None:
    def refuse() -> int:
        raise ConnectionError("refused")

    assert attempt(lambda: 204) == (204, None)
    assert attempt(refuse) == (None, "ConnectionError: refused")


def test_a_delivery_records_every_attempt() -> None:
    sent: list[tuple[str, bytes]] = []

    def send(url: str, headers: Any, body: bytes) -> int:
        sent.append((url, body))
        return 500 if len(sent) == 1 else 200

    delivery = Delivery(id=1, url="http://seller/hook", body=b"{}")
    for _ in range(2):
        status, error = delivery.post(send)
        assert delivery.record(START, status, error) is (status == 200)
    delivery.record(START, None, "TimeoutError: slow", replay=True)
    assert sent == [("http://seller/hook", b"{}")] * 2
    assert delivery.attempts == [
        {"at": START.isoformat(), "status": 500, "error": None},
        {"at": START.isoformat(), "status": 200, "error": None},
        {"at": START.isoformat(), "status": None, "error": "TimeoutError: slow", "replay": True}]
    assert [succeeded(s) for s in (199, 200, 299, 300, None)] == [False, True, True, False, False]


# -- bounded bodies ----------------------------------------------------------------


def test_a_body_past_the_bound_is_not_read() -> None:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        body = await read_bounded(request, 8)
        return {"body": None if body is None else body.decode()}

    client = TestClient(app)
    assert client.post("/echo", content=b"12345678").json() == {"body": "12345678"}
    assert client.post("/echo", content=b"123456789").json() == {"body": None}
