"""The emulator's control API: JSON under ``<prefix>/control``. It plays the
marketplace's own side (offers, customers buying, changing, paying late, leaving) and
lets a test move time, inject faults and inspect what the publisher sent.

=======  ==========================================  =====================================
method   path                                        does
=======  ==========================================  =====================================
GET      /control/config                             the open choices in force
PUT      /control/config                             change some: ``landing_token_ttl_
                                                     seconds``, ``ack_timeout_seconds``,
                                                     ``suspend_grace_days``,
                                                     ``metering_window_hours``, ``dedupe``
                                                     (resource_dimension | resource |
                                                     resource_dimension_plan),
                                                     ``webhook_retry_interval_seconds``,
                                                     ``webhook_max_attempts``,
                                                     ``webhook_jwt``, ``live_quirks``,
                                                     ``page_size``
POST     /control/apps                               register an Entra app ``{tenant_id?,
                                                     client_id?, client_secret?}``
POST     /control/offers                             ``{offer_id, publisher_id?, app_id?,
                                                     webhook_url?, landing_url?, plans:
                                                     [{plan_id, dimensions, per_seat?,
                                                     min_quantity?, max_quantity?,
                                                     term_unit?}]}`` → the offer and its
                                                     app's ``tenant_id``, ``app_id``,
                                                     ``client_secret``
GET      /control/offers                             every offer
POST     /control/offers/{id}/purchases              a customer buys ``{plan_id,
                                                     quantity?, csp?, auto_renew?,
                                                     beneficiary_tenant?}`` →
                                                     ``{subscription_id, token,
                                                     landing_url, subscription}``
GET      /control/subscriptions                      every subscription and its state
POST     /control/subscriptions/{id}/plan            the customer changes plan
                                                     ``{plan_id}`` (ChangePlan, to ack)
POST     /control/subscriptions/{id}/quantity        ``{quantity}`` (ChangeQuantity, to ack)
POST     /control/subscriptions/{id}/suspend         payment failed (Suspend)
POST     /control/subscriptions/{id}/reinstate       payment came (Reinstate, to ack)
POST     /control/subscriptions/{id}/renew           the term renews (Renew)
POST     /control/subscriptions/{id}/unsubscribe     the customer cancels (Unsubscribe)
GET      /control/operations                         every operation
POST     /control/operations/{id}/complete           ``{status: Succeeded | Failed |
                                                     Conflict}`` for a publisher one
POST     /control/faults                             ``{operation, kind: throttling |
                                                     internal_error | event_error, calls,
                                                     events}``
POST     /control/tick                               let time act (see the emulator)
GET      /control/usage                              accepted events, every usage call
                                                     received with its answer, and
                                                     ``counts_per_key`` (above 1: a
                                                     double charge)
POST     /control/usage/{usage_event_id}/recon       ``{status, processed_quantity?}``:
                                                     what ``usageEvents`` reports
GET      /control/webhooks                           every webhook call: payload, exact
                                                     body, headers, every attempt
POST     /control/webhooks/{id}/replay               send one again, byte for byte
POST     /control/reset                              forget everything but the config
=======  ==========================================  =====================================

Errors are ``{"error": {"code", "message"}}`` with 400, 404 or 409. Quantities come
back as exact JSON numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from accrual.sandbox import control
from accrual.sandbox.azure import wire
from accrual.sandbox.azure.emulator import AzureSandbox
from accrual.sandbox.azure.state import HOUR
from accrual.sandbox.control import Body, control_api, seconds
from accrual.sandbox.faults import MAX_CALLS


class ConfigChange(Body):
    landing_token_ttl_seconds: int | None = Field(None, ge=1, le=7 * 86400)
    ack_timeout_seconds: int | None = Field(None, ge=1, le=3600)
    suspend_grace_days: int | None = Field(None, ge=1, le=90)
    metering_window_hours: int | None = Field(None, ge=1, le=24 * 7)
    dedupe: Literal["resource_dimension", "resource", "resource_dimension_plan"] | None = None
    webhook_retry_interval_seconds: int | None = Field(None, ge=1, le=3600)
    webhook_max_attempts: int | None = Field(None, ge=1, le=500)
    webhook_jwt: bool | None = None
    live_quirks: bool | None = None
    page_size: int | None = Field(None, ge=1, le=100)


class AppIn(Body):
    tenant_id: str | None = Field(None, max_length=36)
    client_id: str | None = Field(None, max_length=36)
    client_secret: str | None = Field(None, min_length=8, max_length=255)


class PlanIn(Body):
    plan_id: str = Field(max_length=50)
    display_name: str | None = Field(None, max_length=255)
    dimensions: list[str] = Field(min_length=1, max_length=30)
    per_seat: bool = False
    min_quantity: int = Field(1, ge=1, le=10**6)
    max_quantity: int = Field(1000, ge=1, le=10**6)
    private: bool = False
    term_unit: Literal["P1M", "P1Y"] = "P1M"


class OfferIn(Body):
    offer_id: str = Field(max_length=50)
    publisher_id: str = Field("accrual", max_length=50)
    app_id: str | None = Field(None, max_length=36)
    webhook_url: str | None = Field(None, max_length=2048)
    landing_url: str | None = Field(None, max_length=2048)
    plans: list[PlanIn] = Field(min_length=1, max_length=50)


class PurchaseIn(Body):
    plan_id: str = Field(max_length=50)
    quantity: int | None = Field(None, ge=1, le=10**6)
    csp: bool = False
    auto_renew: bool = True
    beneficiary_tenant: str | None = Field(None, max_length=36)


class PlanChange(Body):
    plan_id: str = Field(max_length=50)


class QuantityChange(Body):
    quantity: int = Field(ge=1, le=10**6)


class Completion(Body):
    status: Literal["Succeeded", "Failed", "Conflict"]


class FaultIn(Body):
    operation: str = Field(max_length=50)
    kind: Literal["throttling", "internal_error", "event_error"]
    calls: int = Field(1, ge=1, le=MAX_CALLS)
    events: int = Field(0, ge=0, le=25)


class ReconIn(Body):
    status: Literal["Submitted", "Accepted", "Rejected", "Mismatch", "TestHeaders", "DryRun"]
    processed_quantity: Decimal | None = Field(None, ge=0, max_digits=30)


def _json(value: Any, status: int = 200) -> Response:
    # Quantities are written as the exact numbers they hold.
    return Response(wire.dumps(value), status_code=status, media_type="application/json")


def control_router(sandbox: AzureSandbox) -> APIRouter:
    router = control_api(sandbox, ConfigChange, FaultIn, render=_json, renamed={
        "landing_token_ttl_seconds": ("landing_token_ttl", seconds),
        "ack_timeout_seconds": ("ack_timeout", seconds),
        "webhook_retry_interval_seconds": ("webhook_retry_interval", seconds),
        "suspend_grace_days": ("suspend_grace", lambda days: timedelta(days=days)),
        "metering_window_hours": ("metering_window", lambda hours: hours * HOUR)})

    def run(call: Callable[[], Any], status: int = 200) -> Response:
        return control.run(call, status, _json)

    @router.post("/apps", status_code=201)
    def register_app(body: AppIn) -> Any:
        """Register an Entra app (its credentials come back)."""
        def call() -> dict[str, Any]:
            app = sandbox.register_app(tenant_id=body.tenant_id, client_id=body.client_id,
                                       client_secret=body.client_secret)
            return {"tenant_id": app.tenant_id, "app_id": app.client_id,
                    "client_secret": app.client_secret}
        return run(call, 201)

    @router.post("/offers", status_code=201)
    def create_offer(body: OfferIn) -> Any:
        """Publish an offer with its plans, its app, webhook and landing page."""
        return run(lambda: sandbox.create_offer(
            body.offer_id, [p.model_dump() for p in body.plans], publisher_id=body.publisher_id,
            app_id=body.app_id, webhook_url=body.webhook_url, landing_url=body.landing_url), 201)

    @router.get("/offers")
    def list_offers() -> Any:
        """Every offer."""
        with sandbox.state.lock:
            return {"offers": [o.describe() for o in sandbox.state.offers.values()]}

    @router.post("/offers/{offer_id}/purchases", status_code=201)
    def purchase(offer_id: str, body: PurchaseIn) -> Any:
        """A customer buys a plan; the landing-page token comes back."""
        return run(lambda: sandbox.purchase(
            offer_id, body.plan_id, quantity=body.quantity, csp=body.csp,
            auto_renew=body.auto_renew, beneficiary_tenant=body.beneficiary_tenant), 201)

    @router.get("/subscriptions")
    def list_subscriptions() -> Any:
        """Every subscription and its state."""
        with sandbox.state.lock:
            return {"subscriptions": [s.describe() for s in sandbox.state.subscriptions.values()]}

    @router.post("/subscriptions/{subscription_id}/plan")
    def change_plan(subscription_id: str, body: PlanChange) -> Any:
        """The customer changes plan: ChangePlan, for the publisher to acknowledge."""
        return run(lambda: sandbox.change_plan(subscription_id, body.plan_id))

    @router.post("/subscriptions/{subscription_id}/quantity")
    def change_quantity(subscription_id: str, body: QuantityChange) -> Any:
        """The customer changes seats: ChangeQuantity, for the publisher to acknowledge."""
        return run(lambda: sandbox.change_quantity(subscription_id, body.quantity))

    @router.post("/subscriptions/{subscription_id}/{action}")
    def act(subscription_id: str,
            action: Literal["suspend", "reinstate", "renew", "unsubscribe"]) -> Any:
        """Suspend, reinstate, renew or unsubscribe a subscription."""
        return run(lambda: getattr(sandbox, action)(subscription_id))

    @router.get("/operations")
    def operations() -> Any:
        """Every operation, with its source and outcome."""
        with sandbox.state.lock:
            return {"operations": [o.describe() | {"operationRequestSource": o.source,
                                                   "acknowledged": o.acknowledged}
                                   for o in sandbox.state.operations.values()]}

    @router.post("/operations/{operation_id}/complete")
    def complete(operation_id: str, body: Completion) -> Any:
        """Finish a publisher-initiated operation now with the given outcome."""
        return run(lambda: sandbox.complete_operation(operation_id, body.status))

    @router.get("/usage")
    def usage() -> Any:
        """Accepted usage events, every usage call received, and counts per key."""
        return run(sandbox.usage_view)

    @router.post("/usage/{usage_event_id}/recon")
    def recon(usage_event_id: str, body: ReconIn) -> Any:
        """Set what reconciliation reports for an accepted event."""
        return run(lambda: sandbox.set_recon(usage_event_id, body.status,
                                             body.processed_quantity))

    @router.get("/webhooks")
    def webhooks() -> Any:
        """Every webhook call with its exact body, headers and attempts."""
        return run(lambda: {"webhooks": sandbox.webhooks_view()})

    @router.post("/webhooks/{delivery_id}/replay")
    def replay(delivery_id: int) -> Any:
        """Send one webhook call again, byte for byte."""
        return run(lambda: sandbox.replay(delivery_id))

    return router
