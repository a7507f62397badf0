"""What the Alibaba Cloud Marketplace emulator holds: its profile (China or
International), products, instances, every SPI call it made to the ISV, every
``PushMeteringData`` call it received (accepted or not), nonces and faults.

Everything lives in memory behind one lock (:attr:`SandboxState.lock`), held for a
whole read-check-write. Every time check reads the injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

from accrual.sandbox import faults
from accrual.sandbox.emulator import EmulatorState

# Alibaba Cloud's business times (SPI ``expiredOn``/``timeStamp``, billing days) are
# Beijing time, on both sites.
BEIJING = timezone(timedelta(hours=8))
SPI_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MARKET_VERSION = "2015-11-01"  # product Market: PushMeteringData with ``Metering`` JSON
INTL_VERSION = "2022-12-30"  # product MarketplaceIntl: PushMeteringData with MeteringData.N.*
KEYS = ("Frequency", "Period", "PeriodMin", "Storage", "NetworkOut", "NetworkIn", "Character",
        "DailyActiveUser")

Billing = Literal["hourly", "daily", "realtime"]
InstanceStatus = Literal["OPENING", "OPENED", "EXPIRED", "CLOSED"]


@dataclass(frozen=True)
class Profile:
    """One site of the marketplace; the two differ in endpoint, keys and currency."""

    name: Literal["china", "international"]
    prefix: str
    host: str  # the real OpenAPI host this stands for
    currency: str
    versions: tuple[str, ...]  # PushMeteringData API versions served
    access_key_id: str
    access_key_secret: str


CHINA = Profile("china", "/sandbox/aliyun", "market.aliyuncs.com", "CNY", (MARKET_VERSION,),
                "LTAI5tSandboxChina", "sandbox-china-secret")
INTERNATIONAL = Profile("international", "/sandbox/aliyun-intl",
                        "market.ap-southeast-1.aliyuncs.com", "USD",
                        (MARKET_VERSION, INTL_VERSION), "LTAI5tSandboxIntl",
                        "sandbox-intl-secret")


@dataclass
class SandboxConfig:
    """The emulator's open choices (marketplaces.md §2.3, §2.4 "Uncertain"); all may
    change at run time."""

    access_key_id: str
    access_key_secret: str
    signatures: tuple[str, ...] = ("HMAC-SHA1", "ACS3-HMAC-SHA256")  # accepted methods
    timestamp_tolerance: timedelta = timedelta(minutes=15)  # Alibaba's documented skew
    nonce_ttl: timedelta = timedelta(minutes=15)  # a SignatureNonce is refused again within
    rate_window: timedelta = timedelta(seconds=60)  # one push per InstanceId per window
    max_records: int = 100
    min_window: timedelta = timedelta(minutes=5)  # hourly/daily: EndTime - StartTime > this
    future_tolerance: timedelta = timedelta(minutes=5)  # usage cannot end in the future
    spi_attempts: int = 3  # tries per SPI call before it is left for a tick
    confirm_create: bool = True  # send createInstance again to check the same instanceId
    extra_params: bool = True  # add a parameter the ISV cannot know to every SPI call

    def describe(self) -> dict[str, Any]:
        return {"access_key_id": self.access_key_id, "signatures": list(self.signatures),
                "timestamp_tolerance_seconds": self.timestamp_tolerance.total_seconds(),
                "nonce_ttl_seconds": self.nonce_ttl.total_seconds(),
                "rate_window_seconds": self.rate_window.total_seconds(),
                "max_records": self.max_records,
                "min_window_seconds": self.min_window.total_seconds(),
                "future_tolerance_seconds": self.future_tolerance.total_seconds(),
                "spi_attempts": self.spi_attempts, "confirm_create": self.confirm_create,
                "extra_params": self.extra_params}


@dataclass
class Product:
    code: str
    isv_url: str  # the ISV's SPI endpoint
    spi_key: str  # the ISV key the token is made with
    billing: Billing = "hourly"
    # Key -> the meteringAssit values a record of that Key must name one of (empty: none).
    items: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"Frequency": ()})

    def describe(self) -> dict[str, Any]:
        return {"product_code": self.code, "isv_url": self.isv_url, "billing": self.billing,
                "items": {k: list(v) for k, v in self.items.items()}}


@dataclass
class Instance:
    """A purchase; ``instance_id`` is the ISV's answer to createInstance."""

    order_biz_id: str  # the marketplace's own name for it; the control API's too
    product_code: str
    ali_uid: str
    order_id: str
    sku_id: str
    trial: bool
    created_at: datetime
    expires_on: datetime | None
    status: InstanceStatus = "OPENING"
    instance_id: str | None = None
    app_info: dict[str, Any] | None = None
    closed_at: datetime | None = None
    expired_at: datetime | None = None
    last_push_at: datetime | None = None

    def describe(self) -> dict[str, Any]:
        return {"order_biz_id": self.order_biz_id, "product_code": self.product_code,
                "ali_uid": self.ali_uid, "order_id": self.order_id, "sku_id": self.sku_id,
                "trial": self.trial, "status": self.status, "instance_id": self.instance_id,
                "created_at": self.created_at.isoformat(),
                "expires_on": _iso(self.expires_on), "expired_at": _iso(self.expired_at),
                "closed_at": _iso(self.closed_at), "app_info": self.app_info}


@dataclass
class SpiCall:
    """One SPI call to the ISV and every attempt at it."""

    id: int
    action: str
    order_biz_id: str
    url: str
    params: dict[str, str]  # as sent, token included
    purpose: str = "lifecycle"  # lifecycle | confirm (a resent createInstance) | probe
    attempts: list[dict[str, Any]] = field(default_factory=list)
    outcome: Literal["pending", "ok", "failed"] = "pending"
    answer: Any = None
    problems: list[str] = field(default_factory=list)  # what the ISV did wrong

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "order_biz_id": self.order_biz_id,
                "url": self.url, "params": self.params, "purpose": self.purpose,
                "attempts": self.attempts, "outcome": self.outcome, "answer": self.answer,
                "success_form": _success_form(self.answer), "problems": self.problems}


@dataclass
class Entity:
    key: str
    value: Decimal
    assist: str | None = None


@dataclass
class UsageRecord:
    instance_id: str
    product_code: str
    start: datetime
    end: datetime
    entities: list[Entity]
    push_order_biz_id: str | None = None
    billable: bool = True  # False: past the instance's expiry; accepted, never billed
    reason: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "product_code": self.product_code,
                "start_time": int(self.start.timestamp()), "end_time": int(self.end.timestamp()),
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "entities": [{"key": e.key, "value": str(e.value), "metering_assist": e.assist}
                             for e in self.entities],
                "push_order_biz_id": self.push_order_biz_id, "billable": self.billable,
                "reason": self.reason}


@dataclass
class Push:
    """One PushMeteringData call received, accepted or refused."""

    id: int
    request_id: str
    received_at: datetime
    version: str | None
    signature_method: str | None
    access_key_id: str | None
    nonce: str | None
    status: int
    error_code: str | None
    message: str | None
    records: list[UsageRecord] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.error_code is None

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "request_id": self.request_id,
                "received_at": self.received_at.isoformat(), "version": self.version,
                "signature_method": self.signature_method, "access_key_id": self.access_key_id,
                "nonce": self.nonce, "accepted": self.accepted, "status": self.status,
                "error_code": self.error_code, "message": self.message,
                "records": [r.describe() for r in self.records]}


FaultKind = Literal["throttling", "internal_error", "unavailable"]


Fault = faults.Fault[FaultKind]


class SandboxState(EmulatorState[SandboxConfig]):
    """All the emulator's data; hold ``lock`` while reading or changing it."""

    def reset(self) -> None:
        """Forget products, instances, calls, pushes, nonces and faults."""
        with self.lock:
            self.products: dict[str, Product] = {}
            self.instances: dict[str, Instance] = {}  # by order_biz_id
            self.spi_calls: list[SpiCall] = []
            self.pushes: list[Push] = []
            self.nonces: dict[tuple[str, str], datetime] = {}
            self.faults: list[Fault] = []
            self.serial = 0

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def by_instance_id(self, instance_id: str) -> Instance | None:
        return next((i for i in self.instances.values() if i.instance_id == instance_id), None)

    def take_fault(self) -> Fault | None:
        return faults.take(self.faults)

    def use_nonce(self, access_key_id: str, nonce: str, now: datetime) -> bool:
        """Whether the nonce is fresh (and now used); forgets those past their TTL."""
        ttl = self.config.nonce_ttl
        for key in [k for k, at in self.nonces.items() if at + ttl < now]:
            del self.nonces[key]
        if (access_key_id, nonce) in self.nonces:
            return False
        self.nonces[(access_key_id, nonce)] = now
        return True


def spi_time(instant: datetime) -> str:
    return instant.astimezone(BEIJING).strftime(SPI_TIME_FORMAT)


def _success_form(answer: Any) -> str | None:
    """How the ISV wrote ``success``: a JSON boolean or the string "true" (both taken)."""
    if not isinstance(answer, dict) or "success" not in answer:
        return None
    return "boolean" if isinstance(answer["success"], bool) else "string"


def _iso(instant: datetime | None) -> str | None:
    return instant.isoformat() if instant else None
