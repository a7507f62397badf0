"""Alibaba Cloud Marketplace's SPI endpoint (`/billing/v1/marketplaces/aliyun/spi`): the
marketplace's signed GETs about purchases and logins. The behaviour is
``accrual.billing.services.aliyun_spi``."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from accrual.billing.api.deps import CenterDep, billing_router
from accrual.billing.marketplaces.aliyun import SPI_PATH, VENDOR, AliyunMarketplace
from accrual.billing.services.aliyun_spi import AliyunSpi
from accrual.contract.errors import NotFound
from accrual.infra.http import status_for

router = billing_router()

_PARAMETERS: list[dict[str, Any]] = [
    {"name": name, "in": "query", "required": name in ("action", "token"),
     "schema": {"type": "string"}, "description": text, "example": example}
    for name, text, example in (
        ("action", ("createInstance | renewInstance | upgradeInstance | expiredInstance | "
                    "releaseInstance | verify"), "createInstance"),
        ("token", "MD5 over every other parameter, sorted, `&key=<ISV key>`",
         "5f2b9c1e0d3a4b6c7e8f9a0b1c2d3e4f"),
        ("aliUid", "The buyer's Alibaba Cloud account (createInstance)", "1234567890123456"),
        ("orderBizId", "The purchase; becomes the instance id (createInstance)",
         "2345678901234"),
        ("orderId", "The order", "234567890123456"),
        ("productCode", "The listing (createInstance)", "cmapi00012345"),
        ("skuId", "The SKU bought (createInstance, upgradeInstance)", "standard"),
        ("instanceId", "Our instance id, as answered to createInstance", "2345678901234"),
        ("expiredOn", "The new expiry, Beijing time (renewInstance)", "2026-12-26 10:30:00"),
        ("isRefund", "releaseInstance: refunded", "false"),
        ("timeStamp", "verify: when Alibaba signed the login, Beijing time",
         "2026-11-26 18:30:00"))]
_NOT_ALIBABA = ("not a call from Alibaba Cloud Marketplace: the token does not match the "
                "parameters and the ISV key")
_REFUSAL: dict[str, Any] = {"success": False, "message": _NOT_ALIBABA,
                            "error": {"code": "bad_token", "message": _NOT_ALIBABA}}


# The error envelope's ``error`` (``accrual.infra.http.ERROR_SCHEMA``), beside Alibaba's fields.
_ERROR_OBJECT: dict[str, Any] = {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"},
                                                "message": {"type": "string"}}}


def _refusal(description: str, code: str) -> dict[str, Any]:
    """Alibaba's failure (``success: false``) in our error envelope, with a stable code."""
    schema = {"type": "object", "required": ["success", "message", "error"], "properties": {
        "success": {"type": "boolean", "const": False}, "message": {"type": "string"},
        "error": _ERROR_OBJECT}}
    return {"description": description, "content": {"application/json": {
        "schema": schema, "example": {**_REFUSAL, "error": {**_REFUSAL["error"],
                                                            "code": code}}}}}


@router.get(
    SPI_PATH.removeprefix("/billing/v1"), tags=["billing: marketplaces"],
    responses={
        200: {"description": "Done (a retry of a call done before too)", "content": {
            "application/json": {"examples": {
                "createInstance": {"value": {
                    "instanceId": "2345678901234", "appInfo": {
                        "frontEndUrl": "https://accrual.example.com/billing/v1/marketplaces/"
                                       "activations/act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e",
                        "authUrl": "https://accrual.example.com" + SPI_PATH}}},
                "lifecycle": {"value": {"success": True}}}}}},
        303: {"description": "verify: to the buyer's activation page"},
        422: _refusal("`malformed` or `unknown_action`", "malformed"),
        403: _refusal("Not Alibaba's: `bad_token`, `missing_token`, `wrong_product`, `stale` "
                      "(a verify older than the tolerance)", "bad_token"),
        404: _refusal("`unknown_instance` (verify), `marketplace_not_configured`",
                      "unknown_instance"),
        409: _refusal("`spi_replayed` (a verify used before), `instance_released`, "
                      "`instance_not_active`", "spi_replayed"),
        503: _refusal("`marketplace_unavailable`: try again", "marketplace_unavailable")},
    openapi_extra={"parameters": _PARAMETERS})
async def aliyun_spi(request: Request, center: CenterDep) -> Response:
    """The ISV's SPI URL for Alibaba Cloud Marketplace (China or International, by the
    center's currency). `createInstance` announces the buyer and answers the instance id
    with `appInfo` (`frontEndUrl`: the activation page; `authUrl`: here); the lifecycle
    calls renew, change SKU, suspend (`expiredInstance`) and release (the workspaces then
    settle by the billing center from the next billing day and their owners are mailed);
    a retried call is answered as the first and changes nothing; `verify` sends the
    buyer (303) to the activation page. A call not provably Alibaba's (forged, stale,
    replayed) changes nothing and is answered `success: false` with a 4xx and a stable
    code."""
    adapter = center.marketplaces.by_vendor.get(VENDOR)
    if not isinstance(adapter, AliyunMarketplace):
        raise NotFound("marketplace_not_configured",
                       "this billing center has no Alibaba Cloud Marketplace listing")
    spi = AliyunSpi(center.engine, center.clock, adapter, center.activations, center.lifecycle)
    reply = await run_in_threadpool(spi.handle, request.method, request.url.query)
    if reply.location is not None:
        return RedirectResponse(reply.location, status_code=303)
    status = status_for(reply.refused) if reply.refused is not None else 200
    return JSONResponse(reply.body, status_code=status)
