"""The emulator served over HTTP: a router per profile to mount in another app, or an
app of its own serving both.

Under the prefix (``/sandbox/aliyun``, ``/sandbox/aliyun-intl``):

* ``POST`` or ``GET`` on the prefix itself or ``/``: the OpenAPI (``PushMeteringData``);
  the SDKs take ``Config(endpoint="<host:port>/sandbox/aliyun", protocol="http")``;
* ``/control/...``: :mod:`accrual.sandbox.aliyun.control`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from accrual.sandbox.aliyun.control import control_router
from accrual.sandbox.aliyun.emulator import AliyunSandbox
from accrual.sandbox.aliyun.openapi import MAX_BODY_BYTES

_TOO_LARGE = b'{"Code": "InvalidParameter", "Message": "the request is too large"}'


def aliyun_router(sandbox: AliyunSandbox) -> APIRouter:
    """Every route of one profile's emulator under ``sandbox.prefix``."""
    router = APIRouter(prefix=sandbox.prefix, tags=["sandbox"])

    async def openapi(request: Request) -> Response:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return Response(_TOO_LARGE, status_code=413, media_type="application/json")
            chunks.append(chunk)
        headers = {name.lower(): value for name, value in request.headers.items()}
        path = request.url.path[len(sandbox.prefix):]
        status, body = await run_in_threadpool(
            sandbox.handle, request.method, path, request.query_params.multi_items(), headers,
            b"".join(chunks))
        return Response(body, status_code=status, media_type="application/json")

    for path in ("", "/"):
        router.add_api_route(path, openapi, methods=["GET", "POST"],
                             summary="Alibaba Cloud Marketplace OpenAPI (PushMeteringData)")
    router.include_router(control_router(sandbox))
    return router


def create_app(*sandboxes: AliyunSandbox) -> FastAPI:
    """The emulators alone (``accrual sandbox aliyun``): China and International."""
    app = FastAPI(title="Accrual Alibaba Cloud Marketplace sandbox",
                  description="A faithful local Alibaba Cloud Marketplace: SPI calls to the "
                              "ISV and PushMeteringData. SDK endpoints: "
                              + ", ".join(f"`{s.sdk_endpoint}` ({s.profile.name})"
                                          for s in sandboxes))
    for sandbox in sandboxes:
        app.include_router(aliyun_router(sandbox))
    return app
