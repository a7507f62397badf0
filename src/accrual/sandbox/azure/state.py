"""What the Azure Marketplace emulator holds: app registrations, offers and plans, SaaS
subscriptions, landing-page tokens, operations, usage events, webhook deliveries and
injected faults.

Everything lives in memory behind one lock (:attr:`SandboxState.lock`), held for each
operation's whole read-check-write. Every time check reads the injected clock.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from accrual.sandbox import deliveries, faults
from accrual.sandbox.emulator import EmulatorState

HOUR = timedelta(hours=1)
API_VERSION = "2018-08-31"
# The marketplace API's application id in Microsoft Entra (marketplaces.md §4.1).
MARKETPLACE_RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"

Dedupe = Literal["resource_dimension", "resource", "resource_dimension_plan"]


@dataclass
class SandboxConfig:
    """The emulator's open choices (marketplaces.md §4.6); all may change at run time."""

    landing_token_ttl: timedelta = timedelta(hours=24)
    access_token_ttl: timedelta = HOUR
    ack_timeout: timedelta = timedelta(seconds=10)  # then a marketplace change auto-succeeds
    suspend_grace: timedelta = timedelta(days=30)  # then a suspended subscription ends
    metering_window: timedelta = timedelta(hours=24)
    future_tolerance: timedelta = timedelta(minutes=5)
    max_batch: int = 25
    # The duplicate key: 2022-07 docs say per resource and dimension, 2022-03 per resource.
    dedupe: Dedupe = "resource_dimension"
    # Webhook retries, compressed: Microsoft retries 500 times over 8 hours.
    webhook_retry_interval: timedelta = timedelta(minutes=1)
    webhook_max_attempts: int = 500
    webhook_give_up_after: timedelta = timedelta(hours=8)
    webhook_jwt: bool = True  # send a bearer JWT with each webhook call
    # The live API's observed differences from the docs (marketplaces.md §4.6).
    live_quirks: bool = False
    page_size: int = 100

    def describe(self) -> dict[str, Any]:
        return {"landing_token_ttl_seconds": self.landing_token_ttl.total_seconds(),
                "access_token_ttl_seconds": self.access_token_ttl.total_seconds(),
                "ack_timeout_seconds": self.ack_timeout.total_seconds(),
                "suspend_grace_days": self.suspend_grace / timedelta(days=1),
                "metering_window_hours": self.metering_window / HOUR,
                "future_tolerance_seconds": self.future_tolerance.total_seconds(),
                "max_batch": self.max_batch, "dedupe": self.dedupe,
                "webhook_retry_interval_seconds": self.webhook_retry_interval.total_seconds(),
                "webhook_max_attempts": self.webhook_max_attempts,
                "webhook_give_up_after_hours": self.webhook_give_up_after / HOUR,
                "webhook_jwt": self.webhook_jwt, "live_quirks": self.live_quirks,
                "page_size": self.page_size}


@dataclass
class App:
    """A Microsoft Entra app registration (client credentials)."""

    tenant_id: str
    client_id: str
    client_secret: str


@dataclass
class Plan:
    plan_id: str
    display_name: str
    dimensions: tuple[str, ...]
    per_seat: bool = False
    min_quantity: int = 1
    max_quantity: int = 1000
    private: bool = False
    term_unit: Literal["P1M", "P1Y"] = "P1M"

    def describe(self) -> dict[str, Any]:
        return {"planId": self.plan_id, "displayName": self.display_name,
                "isPrivate": self.private, "description": self.display_name,
                "minQuantity": self.min_quantity if self.per_seat else 0,
                "maxQuantity": self.max_quantity if self.per_seat else 0,
                "hasFreeTrials": False, "isPricePerSeat": self.per_seat, "isStopSell": False,
                "market": "US"}


@dataclass
class Offer:
    offer_id: str
    publisher_id: str
    app: App  # the tenant and app id entered on the offer's technical configuration
    plans: dict[str, Plan]
    webhook_url: str | None = None
    landing_url: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"offer_id": self.offer_id, "publisher_id": self.publisher_id,
                "tenant_id": self.app.tenant_id, "app_id": self.app.client_id,
                "webhook_url": self.webhook_url, "landing_url": self.landing_url,
                "plans": [p.describe() | {"dimensions": list(p.dimensions)}
                          for p in self.plans.values()]}


SubscriptionStatus = Literal["PendingFulfillmentStart", "Subscribed", "Suspended",
                             "Unsubscribed"]


@dataclass
class Subscription:
    id: str
    offer_id: str
    publisher_id: str
    name: str
    plan_id: str
    quantity: int | None
    beneficiary: dict[str, str]
    purchaser: dict[str, str]
    azure_subscription_id: str  # the buyer's Azure subscription billed for it
    term_unit: str
    term_start: datetime
    term_end: datetime
    created: datetime
    last_modified: datetime
    auto_renew: bool = True
    csp: bool = False  # bought through a CSP: the customer may only read
    status: SubscriptionStatus = "PendingFulfillmentStart"
    suspended_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    # [start, end) spans while Subscribed: usage is accepted for hours inside one.
    billed: list[list[datetime | None]] = field(default_factory=list)

    def allowed_operations(self) -> list[str]:
        return ["Read"] if self.csp else ["Delete", "Update", "Read"]

    def billable(self, hour: datetime) -> bool:
        """Whether the hour starting at ``hour`` overlaps a span the subscription was in
        Subscribed (usage before a cancellation stays acceptable)."""
        end = hour + HOUR
        return any(start is not None and start < end and (stop is None or hour < stop)
                   for start, stop in self.billed)

    def describe(self) -> dict[str, Any]:
        """The Fulfillment API's subscription object."""
        body: dict[str, Any] = {
            "id": self.id, "publisherId": self.publisher_id, "offerId": self.offer_id,
            "name": self.name, "saasSubscriptionStatus": self.status,
            "beneficiary": self.beneficiary, "purchaser": self.purchaser,
            "planId": self.plan_id,
            "term": {"termUnit": self.term_unit, "startDate": iso(self.term_start),
                     "endDate": iso(self.term_end)},
            "autoRenew": self.auto_renew, "isTest": False, "isFreeTrial": False,
            "allowedCustomerOperations": self.allowed_operations(), "sandboxType": "None",
            "sessionMode": "None", "created": iso(self.created),
            "lastModified": iso(self.last_modified)}
        if self.quantity is not None:
            body["quantity"] = self.quantity
        return body


@dataclass
class LandingToken:
    value: str
    subscription_id: str
    issued_at: datetime


OperationStatus = Literal["NotStarted", "InProgress", "Failed", "Succeeded", "Conflict"]
OperationAction = Literal["ChangePlan", "ChangeQuantity", "Renew", "Suspend", "Unsubscribe",
                          "Reinstate"]


@dataclass
class Operation:
    id: str
    subscription_id: str
    offer_id: str
    publisher_id: str
    action: OperationAction
    source: Literal["Azure", "Partner"]
    plan_id: str  # the plan and quantity the operation leads to
    quantity: int | None
    created: datetime
    status: OperationStatus = "InProgress"
    activity_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    error_status_code: str = ""
    error_message: str = ""
    finished_at: datetime | None = None
    acknowledged: str | None = None  # the publisher's PATCH: Success or Failure

    @property
    def ackable(self) -> bool:
        """Whether the publisher answers it (a marketplace change or reinstatement)."""
        return self.source == "Azure" and self.action in ("ChangePlan", "ChangeQuantity",
                                                          "Reinstate")

    def describe(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "activityId": self.activity_id, "subscriptionId": self.subscription_id,
            "offerId": self.offer_id, "publisherId": self.publisher_id, "planId": self.plan_id,
            "action": self.action, "timeStamp": iso(self.created), "status": self.status,
            "errorStatusCode": self.error_status_code, "errorMessage": self.error_message}
        if self.quantity is not None:
            body["quantity"] = self.quantity
        return body


@dataclass
class UsageEvent:
    """One accepted usage event; ``key`` is what makes a second one a duplicate."""

    usage_event_id: str
    resource_id: str
    quantity: Decimal
    dimension: str
    effective_start_time: datetime
    plan_id: str
    offer_id: str
    azure_subscription_id: str
    message_time: datetime
    key: tuple[str, ...]
    recon_status: str = "Accepted"
    processed_quantity: Decimal | None = None

    def message(self, status: str) -> dict[str, Any]:
        return {"usageEventId": self.usage_event_id, "status": status,
                "messageTime": iso(self.message_time), "resourceId": self.resource_id,
                "quantity": self.quantity, "dimension": self.dimension,
                "effectiveStartTime": iso(self.effective_start_time), "planId": self.plan_id}


@dataclass(kw_only=True)
class Delivery(deliveries.Delivery):
    """One webhook call and every attempt to deliver it."""

    operation_id: str
    action: str
    payload: dict[str, Any]
    created: datetime
    given_up: bool = False
    next_at: datetime | None = None

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "operation_id": self.operation_id,
                "action": self.action, "payload": self.payload, "body": self.body.decode(),
                "headers": self.headers, "attempts": self.attempts,
                "delivered": self.delivered, "given_up": self.given_up,
                "next_at": iso(self.next_at) if self.next_at else None}


FaultKind = Literal["throttling", "internal_error", "event_error"]
FAULT_OPERATIONS = ("token", "resolve", "activate", "get", "list", "update", "delete",
                    "operations", "usageEvent", "batchUsageEvent", "usageEvents")


@dataclass
class Fault(faults.Fault[FaultKind]):
    events: int = 0  # for "event_error": how many events of each batch answer Error


class SandboxState(EmulatorState[SandboxConfig]):
    """All the emulator's data; hold ``lock`` while reading or changing it."""

    def reset(self) -> None:
        """Forget apps, offers, subscriptions, usage, operations, webhooks and faults."""
        with self.lock:
            self.apps: dict[str, App] = {}
            self.offers: dict[str, Offer] = {}
            self.subscriptions: dict[str, Subscription] = {}
            self.tokens: dict[str, LandingToken] = {}
            self.operations: dict[str, Operation] = {}
            self.events: dict[tuple[str, ...], UsageEvent] = {}
            self.received: list[dict[str, Any]] = []  # every usage call, answered or not
            self.deliveries: list[Delivery] = []
            self.faults: dict[str, list[Fault]] = {}

    def take_fault(self, operation: str) -> Fault | None:
        """The fault injected for this call of ``operation``, used up by it."""
        return faults.take(self.faults.get(operation, []))


def new_id() -> str:
    return str(uuid.uuid4())


def new_landing_token() -> str:
    """Base64-like, with ``+`` and ``/`` always in it: a landing page that forgets to
    URL-decode the token fails every time, not one time in a few."""
    return "+/" + secrets.token_urlsafe(96).replace("-", "+").replace("_", "/") + "=="


def iso(instant: datetime) -> str:
    """ISO 8601 in UTC with ``Z``, as the marketplace writes times."""
    utc = instant.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}Z"


def hour_floor(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)
