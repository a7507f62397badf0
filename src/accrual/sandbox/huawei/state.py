"""What the KooGallery emulator holds: the seller's keys, products, orders and their
instances, every activity call made to the ISV (with every attempt), every usage
push received and every usage record with its background-validation result.

Everything lives in memory behind one lock (:attr:`SandboxState.lock`); every time
check reads the injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from accrual.sandbox import faults
from accrual.sandbox.emulator import EmulatorState
from accrual.sandbox.huawei.signing import HexCase, HmacKey

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class SandboxConfig:
    """The emulator's open choices (marketplaces.md §3, §6); all may change at run time."""

    hex_case: HexCase = "lower"  # of the activity signature (the docs show both)
    hmac_key: HmacKey = "access_key"  # which secret keys the activity HMACs (undocumented)
    require_body_sign: bool = True  # check the ISV's Body-Sign (V1 did; V2 unclear)
    extra_fields: bool = False  # add a field the ISV cannot know to every activity body
    retry_interval: timedelta = HOUR  # a failed activity is sent again this much later
    retries: int = 3  # ... this many times (the documented licence policy)
    request_timeout_s: float = 5.0  # longer counts as a failure
    stale_by: timedelta = timedelta(minutes=5)  # how old a "stale" probe's timestamp is
    usage_tolerance: timedelta = timedelta(seconds=60)  # a usage push's ts freshness
    max_usage_records: int = 1000

    def describe(self) -> dict[str, Any]:
        return {"hex_case": self.hex_case, "hmac_key": self.hmac_key,
                "require_body_sign": self.require_body_sign, "extra_fields": self.extra_fields,
                "retry_interval_seconds": self.retry_interval.total_seconds(),
                "retries": self.retries, "request_timeout_seconds": self.request_timeout_s,
                "stale_by_seconds": self.stale_by.total_seconds(),
                "usage_tolerance_seconds": self.usage_tolerance.total_seconds(),
                "max_usage_records": self.max_usage_records}


ChargingMode = Literal["PERIOD", "ON_DEMAND"]
Billing = Literal["hourly", "daily"]


@dataclass
class Product:
    product_id: str
    sku_code: str
    isv_url: str  # activities are POSTed to <isv_url>/<activity>
    charging_mode: ChargingMode = "PERIOD"
    billing: Billing = "hourly"  # pay-per-use: the usage deadline's rule
    package: bool = False  # stop-when-used-up: usage names relate_pkg_instance

    def describe(self) -> dict[str, Any]:
        return {"product_id": self.product_id, "sku_code": self.sku_code,
                "isv_url": self.isv_url, "charging_mode": self.charging_mode,
                "billing": self.billing, "package": self.package}


OrderStatus = Literal["opening", "provisioning", "active", "frozen", "released", "failed"]


@dataclass
class Order:
    """One purchase and the instance the ISV opened for it."""

    order_id: str
    order_line_id: str
    product_id: str
    sku_code: str
    customer_id: str
    customer_name: str
    user_id: str
    user_name: str
    charging_mode: ChargingMode
    trial: bool
    created_at: datetime
    expires_at: datetime
    instance_id: str | None = None  # as the ISV answered newInstance
    status: OrderStatus = "opening"
    app_info: dict[str, Any] | None = None  # from queryInstance

    def describe(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "order_line_id": self.order_line_id,
                "product_id": self.product_id, "sku_code": self.sku_code,
                "customer_id": self.customer_id, "customer_name": self.customer_name,
                "user_id": self.user_id, "user_name": self.user_name,
                "charging_mode": self.charging_mode, "trial": self.trial,
                "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat(), "instance_id": self.instance_id,
                "status": self.status, "app_info": self.app_info}


CallOutcome = Literal["pending", "succeeded", "gave_up", "rejected", "accepted"]


@dataclass
class Call:
    """One activity sent to the ISV and every attempt at it. A probe (``probe`` set) is
    a deliberately bad call: ``rejected`` when the ISV refused it, ``accepted`` if not."""

    id: int
    activity: str
    order_id: str | None
    url: str
    body: dict[str, Any]  # the fields; newInstance gets a new businessId every attempt
    probe: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    outcome: CallOutcome = "pending"
    next_at: datetime | None = None
    violations: list[str] = field(default_factory=list)  # e.g. another instanceId

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "activity": self.activity, "order_id": self.order_id,
                "url": self.url, "probe": self.probe, "outcome": self.outcome,
                "next_at": self.next_at.isoformat() if self.next_at else None,
                "violations": self.violations, "attempts": self.attempts}


@dataclass
class Push:
    """One usage push as received, whatever was answered."""

    id: int
    received_at: datetime
    headers: dict[str, str]
    body: str
    status: int
    answer: dict[str, Any]
    records: int

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "received_at": self.received_at.isoformat(),
                "headers": self.headers, "body": self.body, "status": self.status,
                "answer": self.answer, "records": self.records}


Validation = Literal["pending", "billable", "rejected", "duplicate"]


@dataclass
class UsageRecord:
    """A record of an accepted push, as sent; background validation decides it later."""

    push_id: int
    index: int
    received_at: datetime
    raw: dict[str, Any]
    instance_status: str | None  # the instance's state when the push arrived
    validation: Validation = "pending"
    reason: str | None = None
    late: bool = False  # past the billing deadline: deducted later, not refused

    def describe(self) -> dict[str, Any]:
        return {"push_id": self.push_id, "index": self.index,
                "received_at": self.received_at.isoformat(), "record": self.raw,
                "metering_sn": self.raw.get("metering_sn"), "validation": self.validation,
                "reason": self.reason, "late": self.late}


FaultKind = Literal["internal_error", "throttling"]


Fault = faults.Fault[FaultKind]


class SandboxState(EmulatorState[SandboxConfig]):
    """All the emulator's data; hold ``lock`` while reading or changing it."""

    def reset(self) -> None:
        """Forget products, orders, calls, pushes and faults."""
        with self.lock:
            self.products: dict[str, Product] = {}
            self.orders: dict[str, Order] = {}
            self.calls: list[Call] = []
            self.pushes: list[Push] = []
            self.usage: list[UsageRecord] = []
            self.usage_nonces: dict[str, datetime] = {}
            self.faults: list[Fault] = []
            self.sequence = 0

    def next_number(self) -> int:
        self.sequence += 1
        return self.sequence

    def by_instance(self, instance_id: str) -> Order | None:
        return next((o for o in self.orders.values() if o.instance_id == instance_id), None)

    def take_fault(self) -> Fault | None:
        return faults.take(self.faults)


def millis(instant: datetime) -> int:
    """Unix milliseconds, exactly (no float)."""
    return (instant - EPOCH) // timedelta(milliseconds=1)


def huawei_time(instant: datetime) -> str:
    """``yyyyMMddHHmmss`` in UTC (an order's createTime and expireTime)."""
    return instant.astimezone(UTC).strftime("%Y%m%d%H%M%S")
