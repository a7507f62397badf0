"""The Alibaba Cloud Marketplace emulator (China and International) served over real
HTTP, with the ISV's side: a small receiver whose SPI endpoint verifies each call
with the adapter (:meth:`AliyunMarketplace.verify_spi`) and answers with its builders.

Test modules import the two fixtures (``aliyun_fixture``, ``aliyun_served_fixture``,
named ``aliyun`` and ``aliyun_served``) from here. One server per module; every
test starts from reset emulators, their default configs, the clock at ``T0`` and a
well-behaved ISV.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from accrual.billing.domain.marketplace import NotificationRejected
from accrual.billing.marketplaces.aliyun import (
    AliyunListing,
    AliyunMarketplace,
    AppInfo,
    SpiEvent,
    SpiKind,
    spi_answer,
    spi_failure,
)
from accrual.clock import ManualClock
from accrual.sandbox.aliyun import CHINA, INTERNATIONAL, AliyunSandbox, create_app
from tests.sandbox_server import serve

T0 = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
PRODUCT = "cmapi00012345"
SPI_KEY = {"china": "isv-key-china", "international": "isv-key-intl"}
Mode = Literal["good", "pending", "random_ids", "string_success", "fail_first", "blind"]


@dataclass
class Isv:
    """The ISV's SPI endpoint: what it verified, what it refused, how it behaves."""

    clock: ManualClock
    make: Callable[..., AliyunMarketplace] | None = None  # (profile, product_code=) -> adapter
    markets: dict[tuple[str, str], AliyunMarketplace] = field(default_factory=dict)
    events: list[tuple[str, SpiEvent]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (profile, code)
    answers: list[dict[str, Any]] = field(default_factory=list)
    mode: Mode = "good"
    countdown: int = 0  # pending / fail_first: how many calls behave so
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.events.clear()
            self.rejected.clear()
            self.answers.clear()
            self.mode, self.countdown = "good", 0
            self.markets.clear()

    def market(self, profile: str, product: str) -> AliyunMarketplace:
        """The ISV's adapter for one listing (its SPI endpoint is per product)."""
        with self.lock:
            if (profile, product) not in self.markets:
                assert self.make is not None
                self.markets[(profile, product)] = self.make(profile, product_code=product)
            return self.markets[(profile, product)]

    def kinds(self, profile: str = "china") -> list[SpiKind]:
        return [e.kind for p, e in self.events if p == profile]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/spi/{profile}/{product}")
        def spi(profile: str, product: str, request: Request) -> Response:
            market = self.market(profile, product)
            with self.lock:
                mode = self.mode
                counted = self.countdown > 0
                if counted:
                    self.countdown -= 1
            if mode == "fail_first" and counted:
                return JSONResponse({"error": "busy"}, status_code=500)
            if mode == "blind":
                if request.query_params.get("action") == "verify":
                    return RedirectResponse("/welcome", status_code=302)
                return JSONResponse({"success": True})
            try:
                event = market.verify_spi("GET", request.url.path, request.url.query,
                                          self.clock.now())
            except NotificationRejected as error:
                with self.lock:
                    self.rejected.append((profile, error.code))
                return JSONResponse(spi_failure(error.message), status_code=403)
            with self.lock:
                self.events.append((profile, event))
            if event.kind == SpiKind.LOGIN:
                return RedirectResponse(f"/welcome?instance={event.instance_id}",
                                        status_code=302)
            if event.kind == SpiKind.CREATE and mode == "pending" and counted:
                answer = spi_answer(event, pending=True)
            elif event.kind == SpiKind.CREATE and mode == "random_ids":
                answer = spi_answer(event, instance_id=secrets.token_hex(6))
            elif event.kind == SpiKind.CREATE:
                answer = spi_answer(event, app_info=AppInfo(
                    front_end_url=f"{self.url}/welcome", username="admin",
                    auth_url=f"{self.url}/spi/{profile}/{product}"), info={"plan": "payg"})
            elif mode == "string_success":
                answer = {"success": "true"}
            else:
                answer = spi_answer(event)
            with self.lock:
                self.answers.append(answer)
            return JSONResponse(answer)

        return app


@dataclass
class Aliyun:
    """Both sites, the ISV, and a control client per site."""

    china: AliyunSandbox
    intl: AliyunSandbox
    clock: ManualClock
    isv: Isv
    http: httpx.Client

    def site(self, profile: str) -> AliyunSandbox:
        return self.china if profile == "china" else self.intl

    def ctl(self, method: str, path: str, *, profile: str = "china", expect: int = 200,
            **kwargs: Any) -> Any:
        response = self.http.request(method, self.site(profile).endpoint_url + path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def product(self, profile: str = "china", code: str = PRODUCT, **options: Any) -> Any:
        body = {"product_code": code, "isv_url": f"{self.isv.url}/spi/{profile}/{code}",
                "spi_key": SPI_KEY[profile], **options}
        return self.ctl("POST", "/control/products", profile=profile, expect=201, json=body)

    def buy(self, profile: str = "china", code: str = PRODUCT, **options: Any) -> Any:
        return self.ctl("POST", f"/control/products/{code}/instances", profile=profile,
                        expect=201, json=options)

    def opened(self, profile: str = "china", **options: Any) -> str:
        """A bought, opened instance's id."""
        bought = self.buy(profile, **options)
        assert bought["status"] == "OPENED", bought
        return str(bought["instance_id"])

    def pushes(self, profile: str = "china") -> list[dict[str, Any]]:
        return self.ctl("GET", "/control/pushes", profile=profile)["pushes"]

    def usage(self, profile: str = "china") -> dict[str, Any]:
        return self.ctl("GET", "/control/usage", profile=profile)

    def adapter(self, profile: str = "china", **overrides: Any) -> AliyunMarketplace:
        site = self.site(profile)
        listing = AliyunListing(**{
            "profile": profile, "product_code": PRODUCT,
            "access_key_id": site.profile.access_key_id,
            "access_key_secret": site.profile.access_key_secret,
            "spi_key": SPI_KEY[profile], "endpoint": site.sdk_endpoint, "protocol": "http",
            **overrides})
        return AliyunMarketplace(listing, self.clock)


@pytest.fixture(scope="module", name="aliyun_served")
def aliyun_served_fixture() -> Iterator[tuple[AliyunSandbox, AliyunSandbox, ManualClock, Isv]]:
    clock = ManualClock(T0)
    china = AliyunSandbox(clock, "http://127.0.0.1", CHINA)
    intl = AliyunSandbox(clock, "http://127.0.0.1", INTERNATIONAL)
    isv = Isv(clock)
    with serve(create_app(china, intl)) as base, serve(isv.app()) as isv_url:
        china.base_url = intl.base_url = base
        isv.url = isv_url
        yield china, intl, clock, isv


@pytest.fixture(name="aliyun")
def aliyun_fixture(aliyun_served: tuple[AliyunSandbox, AliyunSandbox, ManualClock, Isv]
           ) -> Iterator[Aliyun]:
    china, intl, clock, isv = aliyun_served
    for site in (china, intl):
        site.reset()
        site.state.config = type(site.config)(access_key_id=site.profile.access_key_id,
                                              access_key_secret=site.profile.access_key_secret)
    clock.set(T0)
    isv.reset()
    with httpx.Client(timeout=10) as http:
        world = Aliyun(china, intl, clock, isv, http)
        isv.make = world.adapter
        yield world
