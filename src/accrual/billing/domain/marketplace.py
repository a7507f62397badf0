"""The seam to a cloud marketplace (reference-billing.md §6; decisions.md 13, 14, 23).

One :class:`Marketplace` per vendor, behind which an adapter speaks the vendor's
real protocol (``accrual.billing.marketplaces``). The billing center asks four
things of it: who a buyer sent to us is (:meth:`~Marketplace.resolve_buyer`),
whether their subscription is still in force (:meth:`~Marketplace.entitlement`),
to bill reports of usage (:meth:`~Marketplace.report`), and whether an inbound
call really comes from the vendor (:meth:`~Marketplace.verify_notification`).

Pure: values, errors and the Protocol. No adapter is imported here and none
imports an emulator; a test drives an adapter against the emulator over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol


class ChargeStatus(StrEnum):
    """A marketplace charge's state; only ``pending`` and ``sent`` are ever sent (again)."""

    PENDING = "pending"  # cut, not sent yet (or sent and refused for a passing reason)
    SENT = "sent"  # handed to the vendor; its answer not recorded yet
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the vendor holds another quantity under the same key
    REFUSED = "refused"  # the vendor will never take it (out of window, unsubscribed, …)


class ReportStatus(StrEnum):
    """The vendor's answer for one report in a call."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    UNPROCESSED = "unprocessed"  # a passing failure on the vendor's side: send it again


class NotificationAction(StrEnum):
    SUBSCRIBE_SUCCESS = "subscribe-success"
    SUBSCRIBE_FAIL = "subscribe-fail"
    UNSUBSCRIBE_PENDING = "unsubscribe-pending"
    UNSUBSCRIBE_SUCCESS = "unsubscribe-success"
    ENTITLEMENT_UPDATED = "entitlement-updated"
    # Vendors that push the subscription's life to us (Alibaba SPI, Huawei activities,
    # Azure webhook) say more than AWS's four actions:
    SUSPEND = "suspend"  # frozen or suspended (expired, unpaid): usage is not taken
    REINSTATE = "reinstate"  # back in force after a suspension
    RENEW = "renew"  # a new term; brings a suspended subscription back
    PLAN_CHANGED = "plan-changed"  # another plan or SKU (Notification.license_ref when named)


@dataclass(frozen=True)
class Buyer:
    """A subscription as the vendor names it."""

    vendor: str
    account_id: str  # the buyer's cloud account (AWS: CustomerAWSAccountId)
    product_code: str
    customer_id: str | None = None  # AWS's legacy CustomerIdentifier
    license_ref: str | None = None  # AWS's LicenseArn (Concurrent Agreements)


@dataclass(frozen=True)
class Entitlement:
    active: bool
    expires_at: datetime | None
    dimensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsageReport:
    """Whole units of one dimension for one period. ``key`` is ours (the charge id) and
    identical on every resend, as are all the other fields."""

    key: str
    buyer: Buyer
    dimension: str
    period_start: datetime  # aware, UTC; the start of the hour or day reported
    quantity: int


@dataclass(frozen=True)
class ReportResult:
    key: str
    status: ReportStatus
    record_id: str | None = None  # the vendor's id of the accepted record
    reason: str | None = None  # why refused, in the vendor's words


@dataclass(frozen=True)
class ReportLimits:
    """What the vendor takes in one call and how late (marketplaces.md §5)."""

    batch_size: int  # reports per call
    max_request_bytes: int
    period: timedelta  # one report per buyer, dimension and period
    lateness: timedelta  # after the period's start, a report is refused
    min_quantity: int  # AWS takes 0 (and asks for it hourly); others want > 0
    max_quantity: int
    # Whether the vendor recognises an identical resend and bills it once (AWS by record,
    # Huawei by metering_sn, Azure by resource, dimension and hour). Alibaba keeps every
    # push: a resend whose first send may have arrived could bill twice.
    resend_safe: bool = True


@dataclass(frozen=True)
class Notification:
    """An inbound vendor call about a subscription, verified."""

    message_id: str  # the vendor's id: a replay carries the same one
    vendor: str
    action: NotificationAction
    customer: str  # as the vendor names the buyer in it (AWS: customer-identifier)
    product_code: str
    sent_at: datetime
    # The buyer's cloud account when the vendor names it too (AWS: an account id, which
    # a listing without CustomerIdentifier matches its buyers by).
    account_id: str | None = None
    # The instance (Alibaba, Huawei) the notification is about, or the new plan of a
    # ``plan-changed`` (Azure), as stored in ``cloud_accounts.license_ref``.
    license_ref: str | None = None


class MarketplaceError(Exception):
    """A vendor call that did not succeed; ``code`` is stable, ``message`` the vendor's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Transient(MarketplaceError):
    """Try the same call again later (throttled, an internal error, the network)."""

    def __init__(self, code: str, message: str, *, throttled: bool = False) -> None:
        super().__init__(code, message)
        self.throttled = throttled


class Refused(MarketplaceError):
    """The vendor will never accept this call as it is (a whole batch refused)."""


class TokenRejected(MarketplaceError):
    """A buyer's registration token that is unknown, used already or expired."""


class NotificationRejected(MarketplaceError):
    """An inbound call that is not provably the vendor's: forged, stale or malformed."""


class Acknowledged(MarketplaceError):
    """A vendor's protocol message that the adapter answered itself and that leaves the
    billing center nothing to apply (AWS SNS confirming our endpoint's subscription)."""

    def __init__(self, code: str, message: str, *, message_id: str) -> None:
        super().__init__(code, message)
        self.message_id = message_id


class Marketplace(Protocol):
    vendor: str
    limits: ReportLimits
    dimension: str  # the listing's money dimension (decisions.md 23)
    unit_minor: int  # minor units of the currency one unit of it is worth

    def resolve_buyer(self, token: str) -> Buyer:
        """The buyer a registration token names; :class:`TokenRejected` for a bad one."""
        ...

    def entitlement(self, buyer: Buyer) -> Entitlement: ...

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        """Send at most ``limits.batch_size`` reports of one product in one call: one
        result per report, in order. Raises :class:`Transient` or :class:`Refused` when
        the whole call failed."""
        ...

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Notification:
        """The notification this request carries, once proven the vendor's;
        :class:`NotificationRejected` otherwise; :class:`Acknowledged` for a proven
        protocol message the adapter handled itself."""
        ...
