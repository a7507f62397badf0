"""The emulator served over HTTP: a router to mount in another app, or an app of its own.

Under the prefix (``/sandbox/azure`` by default), standing for two Microsoft hosts:

* ``/login`` is ``https://login.microsoftonline.com``:
  ``POST /login/{tenant}/oauth2/token`` (v1), ``POST /login/{tenant}/oauth2/v2.0/token``
  (v2), ``GET /login/{tenant}/v2.0/.well-known/openid-configuration``,
  ``GET /login/{tenant}/discovery/v2.0/keys``;
* the prefix itself is ``https://marketplaceapi.microsoft.com``:
  ``/api/saas/subscriptions/...`` (Fulfillment API v2), ``POST /api/usageEvent``,
  ``POST /api/batchUsageEvent``, ``GET /api/usageEvents``;
* ``/control/...``: :mod:`accrual.sandbox.azure.control`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from accrual.sandbox.azure import wire
from accrual.sandbox.azure.control import control_router
from accrual.sandbox.azure.emulator import AzureSandbox
from accrual.sandbox.azure.protocol import MAX_BODY_BYTES, Answer
from accrual.sandbox.serving import lower_headers, read_bounded, standalone_app

MAX_FORM_BYTES = 16 * 1024


def _response(answer: Answer) -> Response:
    content = b"" if answer.body is None else wire.dumps(answer.body)
    headers = dict(answer.headers)
    return Response(content, status_code=answer.status, headers=headers,
                    media_type="application/json" if answer.body is not None else None)


def azure_router(sandbox: AzureSandbox) -> APIRouter:
    """Every route of the emulator under ``sandbox.prefix``."""
    router = APIRouter(prefix=sandbox.prefix, tags=["sandbox"])

    async def token(request: Request, tenant: str, v2: bool) -> Response:
        body = await read_bounded(request, MAX_FORM_BYTES)
        if body is None:
            return _response(Answer(413, {"error": "invalid_request"}))
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return _response(await run_in_threadpool(sandbox.token, tenant, form, v2=v2))

    @router.post("/login/{tenant}/oauth2/token")
    async def token_v1(request: Request, tenant: str) -> Response:
        """Entra v1 client credentials (``resource``)."""
        return await token(request, tenant, False)

    @router.post("/login/{tenant}/oauth2/v2.0/token")
    async def token_v2(request: Request, tenant: str) -> Response:
        """Entra v2 client credentials (``scope``)."""
        return await token(request, tenant, True)

    @router.get("/login/{tenant}/v2.0/.well-known/openid-configuration")
    def discovery(tenant: str) -> Any:
        """The tenant's OpenID configuration."""
        return sandbox.discovery(tenant)

    @router.get("/login/{tenant}/discovery/v2.0/keys")
    def keys(tenant: str) -> Any:
        """The signing keys (JWKS)."""
        return sandbox.issuer.jwks()

    def route(operation: str, **params: str) -> Any:
        async def call(request: Request) -> Response:
            body = await read_bounded(request, MAX_BODY_BYTES)
            if body is None:
                return _response(Answer(413, {"error": {"code": "RequestTooLarge",
                                                        "message": "The body is too large"}}))
            headers = lower_headers(request)
            path = {name: request.path_params[name] for name in params}
            answer = await run_in_threadpool(sandbox.api, operation, headers,
                                             dict(request.query_params), body, **path)
            return _response(answer)
        return call

    base = "/api/saas/subscriptions"
    one = base + "/{subscription_id}"
    operation = one + "/operations/{operation_id}"
    table: list[tuple[str, str, str, dict[str, str]]] = [
        ("POST", base + "/resolve", "resolve", {}),
        ("GET", base, "list", {}),
        ("GET", base + "/", "list", {}),
        ("GET", one, "get", {"subscription_id": ""}),
        ("PATCH", one, "update", {"subscription_id": ""}),
        ("DELETE", one, "delete", {"subscription_id": ""}),
        ("POST", one + "/activate", "activate", {"subscription_id": ""}),
        ("GET", one + "/listAvailablePlans", "plans", {"subscription_id": ""}),
        ("GET", one + "/operations", "operations", {"subscription_id": ""}),
        ("GET", operation, "get_operation", {"subscription_id": "", "operation_id": ""}),
        ("PATCH", operation, "update_operation", {"subscription_id": "", "operation_id": ""}),
        ("POST", "/api/usageEvent", "usageEvent", {}),
        ("POST", "/api/batchUsageEvent", "batchUsageEvent", {}),
        ("GET", "/api/usageEvents", "usageEvents", {}),
    ]
    for method, path, name, params in table:
        router.add_api_route(path, route(name, **params), methods=[method],
                             summary=f"Azure Marketplace {name}")

    router.include_router(control_router(sandbox))
    return router


def create_app(sandbox: AzureSandbox) -> FastAPI:
    """The emulator alone (``accrual sandbox azure``)."""
    return standalone_app("Accrual Azure Marketplace sandbox",
                          "A faithful local Azure Marketplace: Entra client credentials, SaaS "
                          "Fulfillment API v2, metering, webhooks. Marketplace API: "
                          f"`{sandbox.endpoint_url}`; Entra: `{sandbox.login_url}`.",
                          azure_router(sandbox), azure_sandbox=sandbox)
