"""The emulator's control API: JSON under ``<prefix>/control`` (``/sandbox/aliyun``
for China, ``/sandbox/aliyun-intl`` for International). It plays the buyers and the
marketplace's operators, and lets a test inject faults and read everything.

=======  ==========================================  =====================================
method   path                                        does
=======  ==========================================  =====================================
GET      /control/config                             the profile and the open choices
PUT      /control/config                             change them: ``access_key_id``,
                                                     ``access_key_secret``, ``signatures``
                                                     (HMAC-SHA1, ACS3-HMAC-SHA256),
                                                     ``timestamp_tolerance_seconds``,
                                                     ``rate_window_seconds``,
                                                     ``max_records``, ``spi_attempts``,
                                                     ``confirm_create``, ``extra_params``
POST     /control/products                           ``{product_code, isv_url, spi_key,
                                                     billing: hourly|daily|realtime,
                                                     items?: {Key: [meteringAssit...]}}``
GET      /control/products                           every product
POST     /control/products/{code}/instances          a buyer pays: ``{ali_uid?, sku_id?,
                                                     trial?, term_days?}`` →
                                                     createInstance (and its confirming
                                                     resend); the instance, its SPI calls
                                                     and ``problems``
GET      /control/instances                          every instance with its calls
POST     /control/instances/{order_biz_id}/renew     ``{term_days}`` → renewInstance
POST     /control/instances/{order_biz_id}/upgrade   ``{sku_id}`` → upgradeInstance
POST     /control/instances/{order_biz_id}/expire    → expiredInstance (EXPIRED, frozen)
POST     /control/instances/{order_biz_id}/release   ``{refund}`` → releaseInstance
                                                     (CLOSED)
POST     /control/instances/{order_biz_id}/login     → verify to the ISV's authUrl
POST     /control/instances/{order_biz_id}/probe     ``{kind: forged_token|stale_verify}``:
                                                     a call the ISV must refuse
POST     /control/faults                             ``{kind: throttling | internal_error
                                                     | unavailable, calls}``: the next
                                                     OpenAPI calls fail so
POST     /control/tick                               send again every SPI call not
                                                     answered well (createInstance "0")
GET      /control/spi-calls                          every SPI call: URL, parameters,
                                                     attempts, answer, problems
GET      /control/pushes                             every PushMeteringData received,
                                                     accepted or refused (code, message)
GET      /control/usage[?instance_id=]               accepted usage records, and
                                                     ``pushes_per_window`` by
                                                     instance|Key|start|end (more than
                                                     1: a double bill)
POST     /control/reset                              forget everything but the config
=======  ==========================================  =====================================

Errors are ``{"error": {"code", "message"}}`` with 400, 404 or 409.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field

from accrual.sandbox.aliyun.emulator import AliyunSandbox
from accrual.sandbox.control import Body, control_api, run, seconds
from accrual.sandbox.faults import MAX_CALLS


class ConfigChange(Body):
    access_key_id: str | None = Field(None, min_length=1, max_length=128)
    access_key_secret: str | None = Field(None, min_length=1, max_length=256)
    signatures: list[Literal["HMAC-SHA1", "ACS3-HMAC-SHA256"]] | None = Field(
        None, min_length=1, max_length=2)
    timestamp_tolerance_seconds: int | None = Field(None, ge=1, le=86400)
    rate_window_seconds: int | None = Field(None, ge=0, le=3600)
    max_records: int | None = Field(None, ge=1, le=1000)
    spi_attempts: int | None = Field(None, ge=1, le=10)
    confirm_create: bool | None = None
    extra_params: bool | None = None


class ProductIn(Body):
    product_code: str = Field(min_length=1, max_length=64)
    isv_url: str = Field(max_length=2048)
    spi_key: str = Field(min_length=1, max_length=256)
    billing: Literal["hourly", "daily", "realtime"] = "hourly"
    items: dict[str, list[str]] | None = Field(None, max_length=8)


class BuyIn(Body):
    ali_uid: str | None = Field(None, max_length=20)
    sku_id: str = Field("standard", min_length=1, max_length=64)
    trial: bool = False
    term_days: int | None = Field(30, ge=1, le=3660)


class RenewIn(Body):
    term_days: int = Field(30, ge=1, le=3660)


class UpgradeIn(Body):
    sku_id: str = Field(min_length=1, max_length=64)


class ReleaseIn(Body):
    refund: bool = False


class ProbeIn(Body):
    kind: Literal["forged_token", "stale_verify"]


class FaultIn(Body):
    kind: Literal["throttling", "internal_error", "unavailable"]
    calls: int = Field(1, ge=1, le=MAX_CALLS)


def control_router(sandbox: AliyunSandbox) -> APIRouter:
    router = control_api(sandbox, ConfigChange, FaultIn, renamed={
        "signatures": ("signatures", tuple),
        "timestamp_tolerance_seconds": ("timestamp_tolerance", seconds),
        "rate_window_seconds": ("rate_window", seconds)})

    @router.post("/products", status_code=201)
    def create_product(body: ProductIn) -> Any:
        """Publish a product: its SPI endpoint and key, billing period and metering items."""
        return run(lambda: sandbox.create_product(
            body.product_code, body.isv_url, body.spi_key, billing=body.billing,
            items=body.items).describe(), 201)

    @router.get("/products")
    def list_products() -> Any:
        """Every product."""
        with sandbox.state.lock:
            return {"products": [p.describe() for p in sandbox.state.products.values()]}

    @router.post("/products/{code}/instances", status_code=201)
    def buy(code: str, body: BuyIn) -> Any:
        """A buyer pays: createInstance is sent to the ISV."""
        return run(lambda: sandbox.buy(code, ali_uid=body.ali_uid, sku_id=body.sku_id,
                                       trial=body.trial, term_days=body.term_days), 201)

    @router.get("/instances")
    def instances() -> Any:
        """Every instance, its status and SPI calls."""
        return {"instances": sandbox.instances_view()}

    @router.post("/instances/{order_biz_id}/renew")
    def renew(order_biz_id: str, body: RenewIn) -> Any:
        """The buyer renews: renewInstance with the new expiredOn."""
        return run(lambda: sandbox.renew(order_biz_id, body.term_days))

    @router.post("/instances/{order_biz_id}/upgrade")
    def upgrade(order_biz_id: str, body: UpgradeIn) -> Any:
        """The buyer changes SKU: upgradeInstance."""
        return run(lambda: sandbox.upgrade(order_biz_id, body.sku_id))

    @router.post("/instances/{order_biz_id}/expire")
    def expire(order_biz_id: str) -> Any:
        """The term lapsed: expiredInstance (frozen, data kept)."""
        return run(lambda: sandbox.expire(order_biz_id))

    @router.post("/instances/{order_biz_id}/release")
    def release(order_biz_id: str, body: ReleaseIn) -> Any:
        """Refund or final release: releaseInstance."""
        return run(lambda: sandbox.release(order_biz_id, refund=body.refund))

    @router.post("/instances/{order_biz_id}/login")
    def login(order_biz_id: str) -> Any:
        """The buyer logs in from the console: verify."""
        return run(lambda: sandbox.login(order_biz_id))

    @router.post("/instances/{order_biz_id}/probe")
    def probe(order_biz_id: str, body: ProbeIn) -> Any:
        """Send a call the ISV must refuse; a problem is recorded if it does not."""
        return run(lambda: sandbox.probe(order_biz_id, body.kind))

    @router.get("/spi-calls")
    def spi_calls() -> Any:
        """Every SPI call made to the ISV."""
        return {"spi_calls": sandbox.spi_calls_view()}

    @router.get("/pushes")
    def pushes() -> Any:
        """Every PushMeteringData call received, accepted or refused."""
        return {"pushes": sandbox.pushes_view()}

    @router.get("/usage")
    def usage(instance_id: str | None = None) -> Any:
        """Accepted usage and how many times each window was pushed."""
        return sandbox.usage_view(instance_id)

    return router
