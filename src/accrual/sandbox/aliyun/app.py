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
from accrual.sandbox.serving import lower_headers, read_bounded, standalone_app

_TOO_LARGE = b'{"Code": "InvalidParameter", "Message": "the request is too large"}'


def aliyun_router(sandbox: AliyunSandbox) -> APIRouter:
    """Every route of one profile's emulator under ``sandbox.prefix``."""
    router = APIRouter(prefix=sandbox.prefix, tags=["sandbox"])

    async def openapi(request: Request) -> Response:
        body = await read_bounded(request, MAX_BODY_BYTES)
        if body is None:
            return Response(_TOO_LARGE, status_code=413, media_type="application/json")
        path = request.url.path[len(sandbox.prefix):]
        status, answer = await run_in_threadpool(
            sandbox.handle, request.method, path, request.query_params.multi_items(),
            lower_headers(request), body)
        return Response(answer, status_code=status, media_type="application/json")

    for path in ("", "/"):
        router.add_api_route(path, openapi, methods=["GET", "POST"],
                             summary="Alibaba Cloud Marketplace OpenAPI (PushMeteringData)")
    router.include_router(control_router(sandbox))
    return router


def create_app(*sandboxes: AliyunSandbox) -> FastAPI:
    """The emulators alone (``accrual sandbox aliyun``): China and International."""
    return standalone_app("Accrual Alibaba Cloud Marketplace sandbox",
                          "A faithful local Alibaba Cloud Marketplace: SPI calls to the ISV "
                          "and PushMeteringData. SDK endpoints: "
                          + ", ".join(f"`{s.sdk_endpoint}` ({s.profile.name})"
                                      for s in sandboxes),
                          *(aliyun_router(sandbox) for sandbox in sandboxes))
