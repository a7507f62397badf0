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

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from accrual.sandbox.aws.emulator import AwsSandbox, ControlError
from accrual.sandbox.aws.state import HOUR, Product


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigChange(_Body):
    window_hours: Literal[6, 24] | None = None
    month_end_grace: bool | None = None
    future_tolerance_seconds: int | None = Field(None, ge=0, le=86400)
    token_ttl_seconds: int | None = Field(None, ge=1, le=7 * 86400)
    dedupe: Literal["hour", "exact"] | None = None
    max_allocations: Literal[500, 2500] | None = None
    sns_signature_version: Literal["1", "2"] | None = None


class ProductIn(_Body):
    product_code: str = Field(max_length=255)
    dimensions: list[str] = Field(min_length=1, max_length=50)
    legacy: bool = False
    fulfillment_url: str | None = Field(None, max_length=2048)
    notification_url: str | None = Field(None, max_length=2048)


class EntitlementIn(_Body):
    dimension: str = Field(max_length=255)
    value: dict[str, Any]


class SubscribeIn(_Body):
    account_id: str | None = Field(None, max_length=255)
    offer_identifier: str | None = Field(None, max_length=255)
    free_trial: bool = False
    entitlements: list[EntitlementIn] | None = Field(None, max_length=50)
    expires_at: AwareDatetime | None = None
    outcome: Literal["success", "fail"] = "success"
    post_fulfillment: bool = False


class EntitlementChange(_Body):
    entitlements: list[EntitlementIn] | None = Field(None, max_length=50)
    expires_at: AwareDatetime | None = None


class FaultIn(_Body):
    operation: Literal["ResolveCustomer", "BatchMeterUsage", "MeterUsage", "GetEntitlements"]
    kind: Literal["throttling", "internal_error", "unprocessed", "empty_page"]
    calls: int = Field(1, ge=1, le=1000)
    records: int = Field(0, ge=0, le=25)


def _error(error: ControlError) -> JSONResponse:
    return JSONResponse({"error": {"code": error.code, "message": error.message}},
                        status_code=error.status)


def _values(items: list[EntitlementIn] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [item.model_dump() for item in items]


def control_router(sandbox: AwsSandbox) -> APIRouter:
    router = APIRouter(prefix="/control")

    def run(call: Any, status: int = 200) -> Any:
        try:
            return JSONResponse(call(), status_code=status)
        except ControlError as error:
            return _error(error)

    @router.get("/config")
    def get_config() -> Any:
        """The emulator's open choices in force."""
        return sandbox.config.describe()

    @router.put("/config")
    def put_config(change: ConfigChange) -> Any:
        """Change some of the open choices; the others stay."""
        config = sandbox.config
        with sandbox.state.lock:
            if change.window_hours is not None:
                config.window = change.window_hours * HOUR
            if change.month_end_grace is not None:
                config.month_end_grace = change.month_end_grace
            if change.future_tolerance_seconds is not None:
                config.future_tolerance = timedelta(seconds=change.future_tolerance_seconds)
            if change.token_ttl_seconds is not None:
                config.token_ttl = timedelta(seconds=change.token_ttl_seconds)
            if change.dedupe is not None:
                config.dedupe = change.dedupe
            if change.max_allocations is not None:
                config.max_allocations = change.max_allocations
            if change.sns_signature_version is not None:
                config.sns_signature_version = change.sns_signature_version
        return config.describe()

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

    @router.post("/faults")
    def inject(body: FaultIn) -> Any:
        """The next ``calls`` calls of ``operation`` fail as ``kind`` says."""
        def call() -> dict[str, Any]:
            sandbox.inject(body.operation, body.kind, calls=body.calls, records=body.records)
            return {"injected": body.model_dump()}
        return run(call)

    @router.post("/tick")
    def tick() -> Any:
        """Finish unsubscriptions whose hour has passed; retry failed deliveries."""
        return sandbox.tick()

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

    @router.post("/reset")
    def reset() -> Any:
        """Forget products, buyers, tokens, records, faults and notifications."""
        sandbox.reset()
        return {"reset": True}

    return router


def _product(product: Product) -> dict[str, Any]:
    return {"product_code": product.code, "dimensions": list(product.dimensions),
            "legacy": product.legacy, "fulfillment_url": product.fulfillment_url,
            "notification_url": product.notification_url}

