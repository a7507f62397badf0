"""The emulator served over HTTP: a router to mount in another app, or an app of its own.

Under the prefix (``/sandbox/huawei`` by default):

* ``POST /api/mkp-openapi-public/global/v1/isv/usage-data``: the usage push
  (:mod:`accrual.sandbox.huawei.usage`); an adapter takes ``<base>/sandbox/huawei``
  as its endpoint in place of ``https://mkt.myhuaweicloud.com``;
* ``/control/...``: :mod:`accrual.sandbox.huawei.control`.

The activities go the other way: the emulator POSTs them to each product's ISV URL.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from accrual.sandbox.huawei.control import control_router
from accrual.sandbox.huawei.emulator import HuaweiSandbox
from accrual.sandbox.huawei.usage import MAX_BODY_BYTES, USAGE_PATH
from accrual.sandbox.serving import lower_headers, read_bounded, standalone_app


def huawei_router(sandbox: HuaweiSandbox) -> APIRouter:
    """Every route of the emulator under ``sandbox.prefix``."""
    router = APIRouter(prefix=sandbox.prefix, tags=["sandbox"])

    @router.post(USAGE_PATH)
    async def usage_data(request: Request) -> JSONResponse:
        """KooGallery's pay-per-use usage push."""
        headers = lower_headers(request)
        body = await read_bounded(request, MAX_BODY_BYTES)
        if body is None:
            # Over the bound: refused without reading the rest (recorded as empty).
            body = b"x" * (MAX_BODY_BYTES + 1)
        status, answer = await run_in_threadpool(sandbox.handle_usage, headers, body)
        return JSONResponse(answer, status_code=status)

    router.include_router(control_router(sandbox))
    return router


def create_app(sandbox: HuaweiSandbox) -> FastAPI:
    """The emulator alone (``accrual sandbox huawei``)."""
    return standalone_app("Accrual Huawei Cloud KooGallery sandbox",
                          "A faithful local KooGallery: V2 activities sent to the ISV, the "
                          f"usage push at `{sandbox.endpoint_url}{USAGE_PATH}`.",
                          huawei_router(sandbox), huawei_sandbox=sandbox)
