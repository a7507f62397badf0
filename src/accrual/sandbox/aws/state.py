"""What the AWS Marketplace emulator holds: products, subscriptions, registration
tokens, accepted metering records, injected faults and sent notifications.

Everything lives in memory behind one lock (:attr:`SandboxState.lock`); every
operation takes it for its whole read-check-write, so concurrent calls see one
order. Every time check reads the injected clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from accrual.sandbox import deliveries, faults
from accrual.sandbox.emulator import EmulatorState

HOUR = timedelta(hours=1)
# AWS gives a buyer who unsubscribed one hour to receive their final usage (marketplaces.md §1.5).
FINAL_METERING_WINDOW = HOUR


@dataclass
class SandboxConfig:
    """The emulator's open choices (marketplaces.md §1.9); all may change at run time."""

    window: timedelta = timedelta(hours=6)  # 6 h (models to 2026-02) or 24 h (2026-07)
    month_end_grace: bool = True  # the previous month's usage until 06:00 UTC on the 1st
    future_tolerance: timedelta = timedelta(minutes=5)  # clock skew allowed for timestamps
    token_ttl: timedelta = HOUR  # undocumented by AWS; "short-lived"
    dedupe: Literal["hour", "exact"] = "hour"  # the DuplicateRecord key's time part
    max_records: int = 25
    max_request_bytes: int = 1024 * 1024  # a request must be smaller than this
    max_allocations: int = 500  # the exception text says 500, the shape 2500
    sns_signature_version: Literal["1", "2"] = "2"
    default_term: timedelta = timedelta(days=365)  # ExpirationDate of a new subscription

    def describe(self) -> dict[str, Any]:
        return {"window_hours": self.window / HOUR, "month_end_grace": self.month_end_grace,
                "future_tolerance_seconds": self.future_tolerance.total_seconds(),
                "token_ttl_seconds": self.token_ttl.total_seconds(), "dedupe": self.dedupe,
                "max_records": self.max_records, "max_request_bytes": self.max_request_bytes,
                "max_allocations": self.max_allocations,
                "sns_signature_version": self.sns_signature_version,
                "default_term_days": self.default_term / timedelta(days=1)}


@dataclass
class Product:
    code: str
    dimensions: tuple[str, ...]
    legacy: bool = False  # ResolveCustomer still returns CustomerIdentifier
    fulfillment_url: str | None = None
    notification_url: str | None = None


SubscriptionStatus = Literal["active", "failed", "unsubscribe_pending", "unsubscribed"]


@dataclass
class EntitlementValue:
    dimension: str
    value: dict[str, Any]  # exactly one of IntegerValue, DoubleValue, BooleanValue, StringValue


@dataclass
class Subscription:
    id: str  # the license id, "l-<32 hex>"; also the control API's name for it
    product_code: str
    customer_identifier: str
    account_id: str
    license_arn: str
    subscribed_at: datetime
    expires_at: datetime | None
    entitlements: list[EntitlementValue]
    offer_identifier: str | None = None
    free_trial: bool = False
    status: SubscriptionStatus = "active"
    unsubscribed_at: datetime | None = None  # unsubscribe-pending: the final hour starts
    finished_at: datetime | None = None  # unsubscribe-success sent

    def license_start(self) -> datetime:
        # Usage is reported per hour; the hour the subscription began in is covered.
        return self.subscribed_at.replace(minute=0, second=0, microsecond=0)

    def meterable(self, now: datetime) -> bool:
        """Whether metering for this buyer is accepted now."""
        if self.status == "active":
            return True
        if self.status in ("unsubscribe_pending", "unsubscribed") and self.unsubscribed_at:
            return now < self.unsubscribed_at + FINAL_METERING_WINDOW
        return False

    def in_force(self) -> bool:
        """Whether GetEntitlements still lists it."""
        return self.status in ("active", "unsubscribe_pending")

    def describe(self) -> dict[str, Any]:
        return {"subscription_id": self.id, "product_code": self.product_code,
                "customer_identifier": self.customer_identifier,
                "customer_aws_account_id": self.account_id, "license_arn": self.license_arn,
                "status": self.status, "subscribed_at": self.subscribed_at.isoformat(),
                "unsubscribed_at": _iso(self.unsubscribed_at),
                "finished_at": _iso(self.finished_at), "expires_at": _iso(self.expires_at),
                "offer_identifier": self.offer_identifier, "free_trial": self.free_trial,
                "entitlements": [{"dimension": e.dimension, "value": e.value}
                                 for e in self.entitlements]}


@dataclass
class RegistrationToken:
    value: str
    subscription_id: str
    issued_at: datetime
    used_at: datetime | None = None


@dataclass
class MeteringRecord:
    """One accepted usage record; its key makes a resend idempotent."""

    record_id: str
    product_code: str
    account_id: str
    customer_identifier: str
    license_arn: str
    dimension: str
    timestamp: datetime
    key_time: datetime  # the timestamp, or its hour (SandboxConfig.dedupe)
    quantity: Decimal
    accepted_at: datetime
    operation: str
    allocations: list[dict[str, Any]] = field(default_factory=list)
    answers: int = 1  # how many times this record was answered Success

    def describe(self) -> dict[str, Any]:
        return {"metering_record_id": self.record_id, "product_code": self.product_code,
                "customer_aws_account_id": self.account_id,
                "customer_identifier": self.customer_identifier,
                "license_arn": self.license_arn, "dimension": self.dimension,
                "timestamp": self.timestamp.isoformat(), "key_time": self.key_time.isoformat(),
                "quantity": str(self.quantity), "accepted_at": self.accepted_at.isoformat(),
                "operation": self.operation, "allocations": self.allocations,
                "answers": self.answers}


FaultKind = Literal["throttling", "internal_error", "unprocessed", "empty_page"]


@dataclass
class Fault(faults.Fault[FaultKind]):
    records: int = 0  # for "unprocessed": how many records of each call


@dataclass(kw_only=True)
class Delivery(deliveries.Delivery):
    """One notification (an SNS HTTP delivery) and every attempt to deliver it."""

    action: str
    product_code: str
    subscription_id: str
    envelope: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "action": self.action,
                "product_code": self.product_code, "subscription_id": self.subscription_id,
                "message_id": self.envelope["MessageId"], "envelope": self.envelope,
                "body": self.body.decode(), "headers": self.headers,
                "attempts": self.attempts, "delivered": self.delivered}


class SandboxState(EmulatorState[SandboxConfig]):
    """All the emulator's data; hold ``lock`` while reading or changing it."""

    def reset(self) -> None:
        """Forget products, buyers, tokens, records, faults and notifications."""
        with self.lock:
            self.products: dict[str, Product] = {}
            self.subscriptions: dict[str, Subscription] = {}
            self.tokens: dict[str, RegistrationToken] = {}
            self.records: dict[tuple[str, str, str, datetime], MeteringRecord] = {}
            self.faults: dict[str, list[Fault]] = {}
            self.deliveries: list[Delivery] = []

    # --- lookups -------------------------------------------------------------

    def by_license(self, license_arn: str) -> Subscription | None:
        return next((s for s in self.subscriptions.values() if s.license_arn == license_arn), None)

    def by_account(self, product_code: str, account_id: str) -> list[Subscription]:
        return [s for s in self.subscriptions.values()
                if s.product_code == product_code and s.account_id == account_id]

    def by_customer_identifier(self, product_code: str, identifier: str) -> Subscription | None:
        return next((s for s in self.subscriptions.values()
                     if s.product_code == product_code and s.customer_identifier == identifier),
                    None)

    # --- faults --------------------------------------------------------------

    def take_fault(self, operation: str) -> Fault | None:
        """The fault injected for this call of ``operation``, used up by it."""
        return faults.take(self.faults.get(operation, []))


def new_account_id() -> str:
    return str(100000000000 + secrets.randbelow(900000000000))


def new_license_id() -> str:
    return "l-" + secrets.token_hex(16)


def license_arn(license_id: str) -> str:
    # The seller's view of a buyer's license (Concurrent Agreements); license-manager ARNs
    # carry AWS Marketplace's own account, not the buyer's.
    return f"arn:aws:license-manager::294406891311:license:{license_id}"


def hour_floor(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


def _iso(instant: datetime | None) -> str | None:
    return instant.isoformat() if instant else None
