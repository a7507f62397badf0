"""The emulator's control API: JSON under ``<prefix>/control``. It plays KooGallery's
own side (products, buyers ordering, renewing, freezing, releasing), sends the
probes an ISV must refuse, injects faults and shows everything sent and received.

=======  ==========================================  =====================================
method   path                                        does
=======  ==========================================  =====================================
GET      /control/config                             the open choices in force
PUT      /control/config                             change them: ``hex_case``
                                                     (lower/upper), ``hmac_key``
                                                     (access_key/secret_key),
                                                     ``require_body_sign``,
                                                     ``extra_fields``,
                                                     ``retry_interval_seconds``,
                                                     ``retries``, ``stale_by_seconds``,
                                                     ``usage_tolerance_seconds``
GET      /control/seller                             the seller's keys (what the ISV
                                                     configures)
POST     /control/products                           ``{product_id, sku_code, isv_url,
                                                     charging_mode: PERIOD|ON_DEMAND,
                                                     billing: hourly|daily, package}``
GET      /control/products                           every product
POST     /control/products/{id}/orders               a buyer orders: ``{customer_id?,
                                                     customer_name?, trial?, term_days?,
                                                     order_amount?}``; newInstance is
                                                     sent → ``{order, call}``
GET      /control/orders                             every order and its instance
POST     /control/orders/{id}/resend                 newInstance again (same order, new
                                                     businessId): the same instanceId
                                                     must come back
POST     /control/orders/{id}/refresh                ``{scene, expires_at?, product_id?}``
                                                     refreshInstance (renew, trial to
                                                     formal, unsubscribe a renewal)
POST     /control/orders/{id}/upgrade                ``{sku_code?}`` upgradeInstance
POST     /control/orders/{id}/freeze                 updateInstanceStatus FREEZE (expiry)
POST     /control/orders/{id}/unfreeze               updateInstanceStatus UNFREEZE
POST     /control/orders/{id}/release                ``{unsubscribed?}`` releaseInstance
POST     /control/query                              ``{order_ids}`` queryInstance
POST     /control/orders/{id}/probe                  ``{kind: stale|replay|
                                                     bad_signature}``: the last call, made
                                                     bad; the ISV must refuse it
GET      /control/calls                              every activity call and attempt
                                                     (query, body, answer, Body-Sign
                                                     check), outcome, violations
POST     /control/faults                             ``{kind: internal_error|throttling,
                                                     calls}`` for the next usage pushes
POST     /control/validate                           run the background validation
POST     /control/tick                               retry due calls, poll provisioning
                                                     instances, validate usage
GET      /control/usage                              every push (headers, body, answer),
                                                     every record and its validation,
                                                     ``received_per_metering_sn`` (more
                                                     than 1: sent twice)
POST     /control/reset                              forget everything but the config
=======  ==========================================  =====================================

Errors are ``{"error": {"code", "message"}}`` with 400, 404 or 409.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, Field

from accrual.sandbox.control import Body, control_api, run, seconds
from accrual.sandbox.faults import MAX_CALLS
from accrual.sandbox.huawei.emulator import HuaweiSandbox


class ConfigChange(Body):
    hex_case: Literal["lower", "upper"] | None = None
    hmac_key: Literal["access_key", "secret_key"] | None = None
    require_body_sign: bool | None = None
    extra_fields: bool | None = None
    retry_interval_seconds: int | None = Field(None, ge=1, le=86400)
    retries: int | None = Field(None, ge=0, le=10)
    stale_by_seconds: int | None = Field(None, ge=61, le=86400)
    usage_tolerance_seconds: int | None = Field(None, ge=1, le=3600)


class ProductIn(Body):
    product_id: str = Field(max_length=64)
    sku_code: str = Field(max_length=64)
    isv_url: str = Field(max_length=2048)
    charging_mode: Literal["PERIOD", "ON_DEMAND"] = "PERIOD"
    billing: Literal["hourly", "daily"] = "hourly"
    package: bool = False


class OrderIn(Body):
    customer_id: str | None = Field(None, max_length=64)
    customer_name: str = Field("sandbox buyer", min_length=1, max_length=128)
    trial: bool = False
    term_days: int = Field(30, ge=1, le=3660)
    order_amount: Decimal = Field(Decimal("0.00"), ge=0, max_digits=14, decimal_places=2)
    test_flag: bool = True


class RefreshIn(Body):
    scene: Literal["RENEWAL", "TRIAL_TO_FORMAL", "UNSUBSCRIBE_RENEWAL_PERIOD"]
    expires_at: AwareDatetime | None = None
    product_id: str | None = Field(None, max_length=64)


class UpgradeIn(Body):
    sku_code: str | None = Field(None, max_length=64)


class ReleaseIn(Body):
    unsubscribed: bool = True


class QueryIn(Body):
    order_ids: list[str] = Field(min_length=1, max_length=100)


class ProbeIn(Body):
    kind: Literal["stale", "replay", "bad_signature"]


class FaultIn(Body):
    kind: Literal["internal_error", "throttling"]
    calls: int = Field(1, ge=1, le=MAX_CALLS)


def control_router(sandbox: HuaweiSandbox) -> APIRouter:
    router = control_api(sandbox, ConfigChange, FaultIn, renamed={
        "retry_interval_seconds": ("retry_interval", seconds),
        "stale_by_seconds": ("stale_by", seconds),
        "usage_tolerance_seconds": ("usage_tolerance", seconds)})

    @router.get("/seller")
    def seller() -> Any:
        """The seller's keys, as the seller console shows them."""
        return {"access_key": sandbox.access_key, "secret_key": sandbox.secret_key,
                "endpoint_url": sandbox.endpoint_url}

    @router.post("/products", status_code=201)
    def create_product(body: ProductIn) -> Any:
        """List a product whose activities go to ``isv_url``."""
        return run(lambda: sandbox.create_product(
            body.product_id, body.sku_code, body.isv_url, charging_mode=body.charging_mode,
            billing=body.billing, package=body.package).describe(), 201)

    @router.get("/products")
    def list_products() -> Any:
        """Every product."""
        with sandbox.state.lock:
            return {"products": [p.describe() for p in sandbox.state.products.values()]}

    @router.post("/products/{product_id}/orders", status_code=201)
    def order(product_id: str, body: OrderIn) -> Any:
        """A buyer orders the product; newInstance goes to the ISV."""
        return run(lambda: sandbox.buy(
            product_id, customer_id=body.customer_id, customer_name=body.customer_name,
            trial=body.trial, term=timedelta(days=body.term_days),
            order_amount=body.order_amount, test_flag=body.test_flag), 201)

    @router.get("/orders")
    def orders() -> Any:
        """Every order and its instance's state."""
        with sandbox.state.lock:
            return {"orders": [o.describe() for o in sandbox.state.orders.values()]}

    @router.post("/orders/{order_id}/resend")
    def resend(order_id: str) -> Any:
        """newInstance again for the same order: the same instanceId must come back."""
        return run(lambda: sandbox.resend_new_instance(order_id))

    @router.post("/orders/{order_id}/refresh")
    def refresh(order_id: str, body: RefreshIn) -> Any:
        """refreshInstance with a scene."""
        return run(lambda: sandbox.refresh(order_id, body.scene, body.expires_at,
                                           body.product_id))

    @router.post("/orders/{order_id}/upgrade")
    def upgrade(order_id: str, body: UpgradeIn) -> Any:
        """upgradeInstance."""
        return run(lambda: sandbox.upgrade(order_id, body.sku_code))

    @router.post("/orders/{order_id}/freeze")
    def freeze(order_id: str) -> Any:
        """updateInstanceStatus FREEZE: expired or a violation."""
        return run(lambda: sandbox.set_status(order_id, "FREEZE"))

    @router.post("/orders/{order_id}/unfreeze")
    def unfreeze(order_id: str) -> Any:
        """updateInstanceStatus UNFREEZE."""
        return run(lambda: sandbox.set_status(order_id, "UNFREEZE"))

    @router.post("/orders/{order_id}/release")
    def release(order_id: str, body: ReleaseIn) -> Any:
        """releaseInstance."""
        return run(lambda: sandbox.release(order_id, unsubscribed=body.unsubscribed))

    @router.post("/query")
    def query(body: QueryIn) -> Any:
        """queryInstance for some orders' instances."""
        return run(lambda: sandbox.query(body.order_ids))

    @router.post("/orders/{order_id}/probe")
    def probe(order_id: str, body: ProbeIn) -> Any:
        """A stale, replayed or badly signed copy of the order's last call."""
        return run(lambda: sandbox.probe(body.kind, order_id))

    @router.get("/calls")
    def calls() -> Any:
        """Every activity call, with every attempt and its answer."""
        return {"calls": sandbox.calls_view()}

    @router.post("/validate")
    def validate() -> Any:
        """Run the background validation of pending usage records now."""
        return sandbox.validate()

    @router.get("/usage")
    def usage() -> Any:
        """Every usage push and record, with its validation."""
        return sandbox.usage_view()

    return router
