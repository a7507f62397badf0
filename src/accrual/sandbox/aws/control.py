"""The emulator's control API: JSON under ``<prefix>/control``. It plays the
marketplace's own side (publishing products, buyers subscribing and leaving) and
lets a test inject faults and inspect what the seller sent.

=======  ==========================================  =====================================
method   path                                        does
=======  ==========================================  =====================================
GET      /control/config                             the open choices in force
PUT      /control/config                             change them: ``window_hours`` (6 or
                                                     24), ``month_end_grace``,
                                                     ``future_tolerance_seconds``,
                                                     ``token_ttl_seconds``, ``dedupe``
                                                     (``hour``/``exact``),
                                                     ``max_allocations`` (500/2500),
                                                     ``sns_signature_version`` (1/2)
POST     /control/products                           ``{product_code, dimensions, legacy,
                                                     fulfillment_url, notification_url}``
GET      /control/products                           every product
POST     /control/products/{code}/subscriptions      a buyer subscribes: ``{account_id?,
                                                     offer_identifier?, free_trial?,
                                                     entitlements?: [{dimension, value:
                                                     {IntegerValue: 5}}], expires_at?,
                                                     outcome?: success|fail,
                                                     post_fulfillment?}`` → ``{
                                                     registration_token, subscription_id,
                                                     customer_identifier,
                                                     customer_aws_account_id, license_arn,
                                                     product_code, fulfillment?: {status,
                                                     location, body, error}}``
GET      /control/subscriptions                      every subscription and its state
POST     /control/subscriptions/{id}/unsubscribe     ``unsubscribe-pending``; the final
                                                     metering hour starts
POST     /control/subscriptions/{id}/fail            ``subscribe-fail``
POST     /control/subscriptions/{id}/entitlements    ``{entitlements?, expires_at?}``;
                                                     ``entitlement-updated``
POST     /control/faults                             ``{operation, kind: throttling |
                                                     internal_error | unprocessed |
                                                     empty_page, calls, records}``
POST     /control/tick                               finish unsubscriptions whose hour has
                                                     passed (``unsubscribe-success``),
                                                     retry failed deliveries
GET      /control/records[?product_code=]            accepted metering records with their
                                                     ``metering_record_id`` and
                                                     ``answers``; ``counts_per_hour``
                                                     by product|account|dimension|hour
                                                     (more than 1: a double charge)
GET      /control/notifications                      every notification: envelope, exact
                                                     body and headers, every attempt
POST     /control/notifications/{id}/replay          send one again, byte for byte
POST     /control/reset                              forget everything but the config
=======  ==========================================  =====================================

Errors are ``{"error": {"code", "message"}}`` with 400, 404 or 409.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, Field

from accrual.sandbox.aws.emulator import AwsSandbox
from accrual.sandbox.aws.state import HOUR, Product
from accrual.sandbox.control import Body, control_api, run, seconds
from accrual.sandbox.faults import MAX_CALLS


class ConfigChange(Body):
    window_hours: Literal[6, 24] | None = None
    month_end_grace: bool | None = None
    future_tolerance_seconds: int | None = Field(None, ge=0, le=86400)
    token_ttl_seconds: int | None = Field(None, ge=1, le=7 * 86400)
    dedupe: Literal["hour", "exact"] | None = None
    max_allocations: Literal[500, 2500] | None = None
    sns_signature_version: Literal["1", "2"] | None = None


class ProductIn(Body):
    product_code: str = Field(max_length=255)
    dimensions: list[str] = Field(min_length=1, max_length=50)
    legacy: bool = False
    fulfillment_url: str | None = Field(None, max_length=2048)
    notification_url: str | None = Field(None, max_length=2048)


class EntitlementIn(Body):
    dimension: str = Field(max_length=255)
    value: dict[str, Any]


class SubscribeIn(Body):
    account_id: str | None = Field(None, max_length=255)
    offer_identifier: str | None = Field(None, max_length=255)
    free_trial: bool = False
    entitlements: list[EntitlementIn] | None = Field(None, max_length=50)
    expires_at: AwareDatetime | None = None
    outcome: Literal["success", "fail"] = "success"
    post_fulfillment: bool = False


class EntitlementChange(Body):
    entitlements: list[EntitlementIn] | None = Field(None, max_length=50)
    expires_at: AwareDatetime | None = None


class FaultIn(Body):
    operation: Literal["ResolveCustomer", "BatchMeterUsage", "MeterUsage", "GetEntitlements"]
    kind: Literal["throttling", "internal_error", "unprocessed", "empty_page"]
    calls: int = Field(1, ge=1, le=MAX_CALLS)
    records: int = Field(0, ge=0, le=25)


def _values(items: list[EntitlementIn] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [item.model_dump() for item in items]


def control_router(sandbox: AwsSandbox) -> APIRouter:
    router = control_api(sandbox, ConfigChange, FaultIn, renamed={
        "window_hours": ("window", lambda hours: hours * HOUR),
        "future_tolerance_seconds": ("future_tolerance", seconds),
        "token_ttl_seconds": ("token_ttl", seconds)})

    @router.post("/products", status_code=201)
    def create_product(body: ProductIn) -> Any:
        """Publish a product with its dimensions."""
        def call() -> dict[str, Any]:
            product = sandbox.create_product(
                body.product_code, body.dimensions, legacy=body.legacy,
                fulfillment_url=body.fulfillment_url, notification_url=body.notification_url)
            return _product(product)
        return run(call, 201)

    @router.get("/products")
    def list_products() -> Any:
        """Every product."""
        with sandbox.state.lock:
            return {"products": [_product(p) for p in sandbox.state.products.values()]}

    @router.post("/products/{code}/subscriptions", status_code=201)
    def subscribe(code: str, body: SubscribeIn) -> Any:
        """A buyer subscribes (and, with ``post_fulfillment``, is sent to the seller)."""
        return run(lambda: sandbox.subscribe(
            code, account_id=body.account_id, offer_identifier=body.offer_identifier,
            free_trial=body.free_trial, entitlement_values=_values(body.entitlements),
            expires_at=body.expires_at, outcome=body.outcome,
            post_fulfillment=body.post_fulfillment), 201)

    @router.get("/subscriptions")
    def list_subscriptions() -> Any:
        """Every subscription and its state."""
        with sandbox.state.lock:
            return {"subscriptions": [s.describe() for s in sandbox.state.subscriptions.values()]}

    @router.post("/subscriptions/{subscription_id}/unsubscribe")
    def unsubscribe(subscription_id: str) -> Any:
        """The buyer cancels: ``unsubscribe-pending``, one more hour of metering."""
        return run(lambda: sandbox.unsubscribe(subscription_id))

    @router.post("/subscriptions/{subscription_id}/fail")
    def fail(subscription_id: str) -> Any:
        """The subscription failed (payment, set-up): ``subscribe-fail``."""
        return run(lambda: sandbox.fail_subscription(subscription_id))

    @router.post("/subscriptions/{subscription_id}/entitlements")
    def change_entitlements(subscription_id: str, body: EntitlementChange) -> Any:
        """New entitlements or term end: ``entitlement-updated``."""
        return run(lambda: sandbox.update_entitlement(
            subscription_id, entitlement_values=_values(body.entitlements),
            expires_at=body.expires_at))

    @router.get("/records")
    def records(product_code: str | None = None) -> Any:
        """Accepted metering records and how many there are per buyer, dimension and hour."""
        return sandbox.records_view(product_code)

    @router.get("/notifications")
    def notifications() -> Any:
        """Every notification sent, with its exact body and every attempt."""
        return {"notifications": sandbox.notifications_view()}

    @router.post("/notifications/{delivery_id}/replay")
    def replay(delivery_id: int) -> Any:
        """Deliver one notification again, byte for byte."""
        return run(lambda: sandbox.replay(delivery_id))

    return router


def _product(product: Product) -> dict[str, Any]:
    return {"product_code": product.code, "dimensions": list(product.dimensions),
            "legacy": product.legacy, "fulfillment_url": product.fulfillment_url,
            "notification_url": product.notification_url}

