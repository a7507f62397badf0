"""What the Azure contract tests share: the publisher's webhook receiver and a handle
on the served emulator (:class:`Az`). The fixtures are in ``conftest_azure``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from accrual.clock import ManualClock
from accrual.sandbox.azure import API_VERSION, AzureSandbox

T0 = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
OFFER = "accrual-saas"
DIMENSION = "usage_minor"
PLANS = [{"plan_id": "payg", "dimensions": [DIMENSION, "storage"]},
         {"plan_id": "gold", "dimensions": [DIMENSION]},
         {"plan_id": "seats", "dimensions": [DIMENSION], "per_seat": True,
          "min_quantity": 1, "max_quantity": 50}]

# (headers with lower-case names, body) -> (status, body) the publisher answers
Handler = Callable[[dict[str, str], bytes], tuple[int, bytes]]


@dataclass
class Receiver:
    """The publisher's webhook endpoint: what it received, and what it answers."""

    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200
    handler: Handler | None = None
    answers: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        async def receive(request: Request) -> Response:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            with self.lock:
                self.calls.append((headers, body))
                handler, status = self.handler, self.status
            if handler is None:
                return Response(status_code=status)
            # The handler may call the emulator back: off the event loop.
            answered, content = await run_in_threadpool(handler, headers, body)
            with self.lock:
                self.answers.append(answered)
            return Response(content, status_code=answered)

        app.add_api_route("/webhook", receive, methods=["POST"])
        return app


@dataclass
class Az:
    sandbox: AzureSandbox
    clock: ManualClock
    receiver: Receiver
    receiver_url: str
    control: httpx.Client
    offer: dict[str, Any]
    http: httpx.Client
    tokens: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.sandbox.endpoint_url

    @property
    def tenant(self) -> str:
        return str(self.offer["tenant_id"])

    @property
    def app_id(self) -> str:
        return str(self.offer["app_id"])

    @property
    def secret(self) -> str:
        return str(self.offer["client_secret"])

    def ctl(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        response = self.control.request(method, path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def token(self, tenant: str | None = None, app_id: str | None = None,
              secret: str | None = None) -> str:
        """A token for the app (the offer's by default), reused while fresh."""
        tenant = tenant or self.tenant
        now = self.clock.now()
        cached = self.tokens.get(app_id or self.app_id)
        if cached is not None and now < cached[1] + timedelta(minutes=30) and cached[1] <= now:
            return cached[0]
        answer = self.http.post(f"{self.sandbox.login_url}/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": app_id or self.app_id,
            "client_secret": secret or self.secret,
            "scope": "20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default"})
        assert answer.status_code == 200, answer.text
        token = str(answer.json()["access_token"])
        self.tokens[app_id or self.app_id] = (token, now)
        return token

    def api(self, method: str, path: str, *, token: str | None = None,
            version: str | None = API_VERSION, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        headers.setdefault("authorization", f"Bearer {token or self.token()}")
        params = dict(kwargs.pop("params", {}))
        if version is not None:
            params["api-version"] = version
        return self.http.request(method, self.endpoint + path, headers=headers, params=params,
                                 **kwargs)

    def purchase(self, plan_id: str = "payg", **options: Any) -> dict[str, Any]:
        return self.ctl("POST", f"/control/offers/{OFFER}/purchases", expect=201,
                        json={"plan_id": plan_id, **options})

    def subscribed(self, plan_id: str = "payg", **options: Any) -> dict[str, Any]:
        """A purchase the publisher has activated."""
        bought = self.purchase(plan_id, **options)
        body: dict[str, Any] = {"planId": plan_id}
        if "quantity" in options:
            body["quantity"] = options["quantity"]
        answer = self.api("POST", f"/api/saas/subscriptions/{bought['subscription_id']}/activate",
                          json=body)
        assert answer.status_code == 200, answer.text
        return bought

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        found = [s for s in self.ctl("GET", "/control/subscriptions")["subscriptions"]
                 if s["id"] == subscription_id]
        assert found
        return dict(found[0])

    def webhooks(self) -> list[dict[str, Any]]:
        return list(self.ctl("GET", "/control/webhooks")["webhooks"])

    def tick(self) -> dict[str, Any]:
        return dict(self.ctl("POST", "/control/tick"))
