"""The KooGallery emulator served over real HTTP, and an ISV that answers its activities
with the Huawei adapter's verifier and response builder, so each side is proven
against the other. Test modules import the ``huawei`` fixture from here.

One server pair per run; every test starts from a reset emulator, its default config,
a fresh ISV and the clock at ``T0``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from accrual.billing.domain.marketplace import NotificationRejected
from accrual.billing.marketplaces.huawei import (
    Activity,
    HuaweiListing,
    HuaweiMarketplace,
    ResultCode,
)
from accrual.clock import ManualClock
from accrual.sandbox.huawei import HuaweiSandbox, SandboxConfig, create_app
from tests.sandbox_server import serve

T0 = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
PRODUCT = "OFFI-accrual-1"
SKU = "sku-usage-1"
ACCESS_KEY = "isv-access-key-1"
SECRET_KEY = "isv-secret-key-1"

# How the ISV answers: through the adapter, or a way KooGallery must notice.
Mode = Literal["adapter", "processing", "http_500", "no_body_sign", "wrong_sign_type",
               "tampered", "naive", "slow"]


@dataclass
class Isv:
    """The seller's side of the activities: the adapter, and what it saw."""

    clock: ManualClock
    market: HuaweiMarketplace | None = None
    mode: Mode = "adapter"
    fail_next: int = 0  # HTTP 500 for this many requests first
    pending_queries: int = 0  # queryInstance answers 000004 this many times
    delay_s: float = 0.0
    received: list[Activity] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, listing: HuaweiListing) -> None:
        self.market = HuaweiMarketplace(listing, self.clock)
        self.mode, self.fail_next, self.pending_queries, self.delay_s = "adapter", 0, 0, 0.0
        self.received.clear()
        self.refused.clear()

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/isv/{activity}")
        async def activity(request: Request) -> Response:
            raw = await request.body()
            return await run_in_threadpool(self.handle, request, raw)

        return app

    def handle(self, request: Request, raw: bytes) -> Response:
        market = self.market
        assert market is not None
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=500)
        if self.mode == "slow":
            time.sleep(self.delay_s)  # a real delay: the emulator's timeout is real time
        if self.mode == "naive":
            # Checks nothing and names the instance by this request's businessId.
            fields = json.loads(raw)
            answer = market.respond(ResultCode.SUCCESS, instanceId=fields.get("businessId"))
            return Response(answer.body, headers=dict(answer.headers))
        try:
            verified = market.verify_activity(request.method, request.url.path,
                                              dict(request.query_params), dict(request.headers),
                                              raw, self.clock.now())
        except NotificationRejected as error:
            with self.lock:
                self.refused.append(error.code)
            answer = market.refusal(error)
            return Response(answer.body, headers=dict(answer.headers))
        with self.lock:
            self.received.append(verified)
        if self.mode == "processing" and verified.activity == "newInstance":
            answer = market.respond(ResultCode.PROCESSING, "provisioning",
                                    instanceId=market.instance_id_for(verified))
        elif verified.activity == "queryInstance" and self.pending_queries > 0:
            self.pending_queries -= 1
            answer = market.respond(ResultCode.PROCESSING, "provisioning")
        else:
            answer = market.answer(verified)
        headers = dict(answer.headers)
        body = answer.body
        if self.mode == "http_500":
            return Response(body, status_code=500, headers=headers)
        if self.mode == "no_body_sign":
            del headers["Body-Sign"]
        elif self.mode == "wrong_sign_type":
            headers["Body-Sign"] = headers["Body-Sign"].replace("HMAC-SHA256", "HMAC-SHA1")
        elif self.mode == "tampered":
            body = body.replace(b"success", b"SUCCESS")
        return Response(body, headers=headers)


@dataclass
class Huawei:
    sandbox: HuaweiSandbox
    clock: ManualClock
    isv: Isv
    isv_url: str
    control: httpx.Client

    @property
    def endpoint(self) -> str:
        return self.sandbox.endpoint_url

    def ctl(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        response = self.control.request(method, path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def listing(self, **overrides: Any) -> HuaweiListing:
        return HuaweiListing(**{"product_id": PRODUCT, "access_key": ACCESS_KEY,
                                "endpoint_url": self.endpoint, "fallback_url": None,
                                **overrides})

    def product(self, product_id: str = PRODUCT, **options: Any) -> dict[str, Any]:
        return self.ctl("POST", "/control/products", expect=201, json={
            "product_id": product_id, "sku_code": SKU, "isv_url": self.isv_url + "/isv",
            **options})

    def order(self, product_id: str = PRODUCT, **options: Any) -> dict[str, Any]:
        return self.ctl("POST", f"/control/products/{product_id}/orders", expect=201,
                        json=options)

    def calls(self) -> list[dict[str, Any]]:
        return self.ctl("GET", "/control/calls")["calls"]

    def orders(self) -> list[dict[str, Any]]:
        return self.ctl("GET", "/control/orders")["orders"]


@pytest.fixture(scope="session")
def huawei_served() -> Iterator[tuple[HuaweiSandbox, ManualClock, Isv, str]]:
    clock = ManualClock(T0)
    isv = Isv(clock)
    sandbox = HuaweiSandbox(clock, "http://127.0.0.1", access_key=ACCESS_KEY,
                            secret_key=SECRET_KEY)
    with serve(create_app(sandbox)) as base, serve(isv.app()) as isv_url:
        sandbox.base_url = base
        yield sandbox, clock, isv, isv_url


@pytest.fixture
def huawei(huawei_served: tuple[HuaweiSandbox, ManualClock, Isv, str]) -> Iterator[Huawei]:
    sandbox, clock, isv, isv_url = huawei_served
    sandbox.reset()
    sandbox.state.config = SandboxConfig()
    clock.set(T0)
    with httpx.Client(base_url=sandbox.endpoint_url, timeout=10) as control:
        env = Huawei(sandbox, clock, isv, isv_url, control)
        isv.reset(env.listing())
        yield env
    if isv.market is not None:
        isv.market.close()
