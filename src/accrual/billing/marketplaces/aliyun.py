"""The Alibaba Cloud Marketplace adapter, one class for both sites (marketplaces.md §2):
a China listing (CNY) or an International one (USD), each with its own endpoint and
keys. Both are the settlement method (vendor) ``aliyun``: a billing center has one
currency, so its currency picks the site (:func:`profile_for`), and a workspace
settles "through Alibaba Cloud" whichever site sold it.

* Usage (:meth:`AliyunMarketplace.report`) goes out through Alibaba's own SDKs:
  ``alibabacloud_market20151101`` (product Market, version 2015-11-01, action
  ``PushMeteringData``, one query parameter ``Metering`` holding a JSON array) for
  China, and ``alibabacloud_marketplaceintl20221230`` (MarketplaceIntl, 2022-12-30,
  ``PushMeteringData`` with the form fields ``MeteringData.N.*``) for International.
  Both are RPC-style POSTs to ``/``. The SDK signs them: with the listing's
  ``signature="HMAC-SHA1"`` (``Config.signature_algorithm="v2"``) the RPC signature v1
  over every query and form parameter; with ``"ACS3-HMAC-SHA256"`` (the SDKs'
  default) the ``Authorization`` header over the canonical request and the body's
  hash. The SDKs stamp the call with the host's wall clock; the adapter hands them
  its injected clock's instant instead, so one clock governs a center and its tests.
  Alibaba keeps every push, so ``limits.resend_safe`` is False: the reporter never
  resends a push that may have arrived. A failed call tells it which: ``Transient``
  code ``not_sent`` (no connection was made: refused, unresolvable host, connect
  timeout), ``throttled`` and ``credentials_rejected`` (the server answered and kept
  nothing) prove Alibaba holds nothing; ``network`` (a timeout or reset after the
  request went out) and ``vendor_error`` (5xx) do not.
* Each report is one record of one window (the listing's billing period) for one
  instance (the buyer's ``license_ref``), with the listing's metering Key and the
  quantity as an integer string. Alibaba deduplicates nothing: a window pushed twice
  is billed twice, so the caller pushes each charge once (its ledger), and a report
  whose window is past the billing deadline is refused here, never sent (one late
  record would refuse the whole call). At most one call per instance per 60 seconds:
  a report whose instance was pushed less than that ago is answered ``unprocessed``
  without a call.
* Alibaba has no registration token and no notifications: buyers and their
  subscriptions arrive as SPI calls from the marketplace (GET with an MD5 ``token``,
  §2.2, §2.3), which :meth:`AliyunMarketplace.verify_spi` checks over **all** the
  parameters it carries, known or not, and turns into an :class:`SpiEvent`;
  :func:`spi_answer` builds the answer Alibaba expects, idempotent for a repeated
  ``createInstance`` (the instance id is the purchase's ``orderBizId``, as Alibaba
  recommends). :meth:`~AliyunMarketplace.resolve_buyer`,
  :meth:`~AliyunMarketplace.entitlement` and
  :meth:`~AliyunMarketplace.verify_notification` say so with their refusals.

The SDKs' own retries are off (they make one attempt unless given retry options):
the charge reporter owns retries and their pacing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import parse_qsl

from accrual.billing.domain.marketplace import (
    Buyer,
    Entitlement,
    Notification,
    NotificationRejected,
    Refused,
    ReportLimits,
    ReportResult,
    ReportStatus,
    TokenRejected,
    Transient,
    UsageReport,
)
from accrual.clock import Clock

VENDOR = "aliyun"  # the settlement method, whichever site
VENDORS = {"china": VENDOR, "international": VENDOR}
CURRENCIES = {"china": "CNY", "international": "USD"}
# What the marketplace calls on the ISV, under its public URL (createInstance, …, verify).
SPI_PATH = "/billing/v1/marketplaces/aliyun/spi"
HOSTS = {"china": "market.aliyuncs.com", "international": "market.ap-southeast-1.aliyuncs.com"}
REGIONS = {"china": "cn-hangzhou", "international": "ap-southeast-1"}
# Alibaba's business times (SPI expiredOn/timeStamp, billing days) are Beijing time.
BEIJING = timezone(timedelta(hours=8))
SPI_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BATCH_SIZE = 100  # records per PushMeteringData
MAX_REQUEST_BYTES = 64 * 1024  # ours: Metering travels in the query string for China
MAX_QUANTITY = 10**15
RATE_WINDOW = timedelta(seconds=60)  # one push per instance
# After a period's start, its usage is never billed (see AliyunListing.deadline).
LATENESS = {"hourly": timedelta(hours=1, minutes=59),
            "daily": timedelta(days=1, hours=1, minutes=59)}
MAX_SPI_QUERY_CHARS = 16 * 1024
MAX_SPI_PARAMS = 100
MAX_SPI_VALUE_CHARS = 2048
_SIGNATURE_TIME = "%Y-%m-%dT%H:%M:%SZ"
# Alibaba's codes (and the emulator's names for undocumented ones) that refuse a call
# for good, with our stable codes; anything else 4xx is "vendor_refused".
_REFUSALS = {
    "MeteringDataExpired": "deadline_passed",
    "InvalidInstanceId.NotFound": "unknown_instance",
    "InvalidParameter.ProductMismatch": "product_mismatch",
}
# urllib3's words for a request that never left: no connection was made (requests
# makes one attempt; nothing is retried on another connection).
_NOT_SENT = ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError",
             "Failed to establish a new connection", "Failed to resolve")
# Refusals that a change on our side (keys, clock) cures: sent again later.
_CREDENTIALS = {"InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive",
                "SignatureDoesNotMatch", "IncompleteSignature", "Forbidden.RAM",
                "InvalidTimeStamp.Expired", "SignatureNonceUsed"}


@dataclass(frozen=True)
class AliyunListing:
    """One Alibaba Cloud Marketplace product as the billing center sells it on one site."""

    profile: Literal["china", "international"]
    product_code: str
    access_key_id: str
    access_key_secret: str
    spi_key: str  # the ISV key of the seller console, for SPI tokens
    endpoint: str | None = None  # host[:port][/path]; None: the site's real host
    protocol: Literal["https", "http"] = "https"
    region_id: str | None = None  # None: the site's region
    # The usage API: None is Market 2015-11-01 for China, MarketplaceIntl for International.
    api: Literal["market", "marketplaceintl"] | None = None
    signature: Literal["HMAC-SHA1", "ACS3-HMAC-SHA256"] = "HMAC-SHA1"
    metering_key: str = "Frequency"  # counts: one unit per minor unit of money
    metering_assist: str | None = None  # meteringAssit, when the product has several items
    billing: Literal["hourly", "daily"] = "hourly"
    dimension: str = "usage_minor"  # the money dimension (decisions.md 23)
    unit_minor: int = 1
    verify_tolerance: timedelta = timedelta(minutes=5)  # a verify's timeStamp age
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    # Where buyers and the marketplace reach the billing center (the SPI URL, the
    # activation pages handed back in appInfo); None: relative links only.
    public_url: str | None = None

    @property
    def vendor(self) -> str:
        return VENDORS[self.profile]

    @property
    def currency(self) -> str:
        return CURRENCIES[self.profile]

    def spi_url(self) -> str:
        return (self.public_url or "").rstrip("/") + SPI_PATH

    def usage_api(self) -> str:
        return self.api or ("market" if self.profile == "china" else "marketplaceintl")

    def period(self) -> timedelta:
        return timedelta(hours=1) if self.billing == "hourly" else timedelta(days=1)

    def deadline(self, period_start: datetime) -> datetime:
        """From this instant usage of the period starting then is never billed (§2.4:
        hourly, before HH+1:59; daily, before 01:59 Beijing time the next day)."""
        if self.billing == "hourly":
            hour = period_start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            return hour + timedelta(hours=1, minutes=59)
        day = period_start.astimezone(BEIJING).replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
        return (day + timedelta(days=1, hours=1, minutes=59)).astimezone(UTC)


def profile_for(currency: str) -> Literal["china", "international"]:
    """The site a billing center of this currency sells on: CNY China, USD International."""
    for profile, code in CURRENCIES.items():
        if code == currency:
            return "china" if profile == "china" else "international"
    raise ValueError(f"Alibaba Cloud Marketplace sells in CNY or USD, not {currency}")


# --- SPI: the marketplace's calls to us -------------------------------------------------


class SpiKind(StrEnum):
    CREATE = "create"  # createInstance: paid; provision and answer an instanceId
    RENEW = "renew"  # renewInstance: a new expiry (also ends an expiry)
    UPGRADE = "upgrade"  # upgradeInstance: another SKU, same expiry
    EXPIRE = "expire"  # expiredInstance: lapsed; freeze, keep the data
    RELEASE = "release"  # releaseInstance: delete (refund or final release)
    LOGIN = "login"  # verify: log the buyer in


_ACTIONS: dict[str, tuple[SpiKind, tuple[str, ...]]] = {
    "createInstance": (SpiKind.CREATE, ("aliUid", "orderBizId", "orderId", "productCode",
                                        "skuId", "trial")),
    "renewInstance": (SpiKind.RENEW, ("instanceId", "orderId", "expiredOn")),
    "upgradeInstance": (SpiKind.UPGRADE, ("instanceId", "skuId")),
    "expiredInstance": (SpiKind.EXPIRE, ("instanceId",)),
    "releaseInstance": (SpiKind.RELEASE, ("instanceId", "isRefund")),
    "verify": (SpiKind.LOGIN, ("instanceId", "timeStamp")),
}
_KNOWN = {"action", "token", "aliUid", "orderBizId", "orderId", "productCode", "skuId",
          "trial", "expiredOn", "instanceId", "isRefund", "timeStamp", "template"}


@dataclass(frozen=True)
class SpiEvent:
    """A verified SPI call, in vendor-neutral terms."""

    kind: SpiKind
    action: str  # Alibaba's name for it
    instance_id: str | None  # ours, as answered to createInstance (absent on it)
    account_id: str | None = None  # the buyer's aliUid (createInstance)
    order_id: str | None = None
    order_biz_id: str | None = None  # the purchase; stable over createInstance retries
    product_code: str | None = None
    sku_id: str | None = None
    trial: bool | None = None
    expires_at: datetime | None = None  # expiredOn, UTC
    refund: bool | None = None  # releaseInstance's isRefund
    signed_at: datetime | None = None  # verify's timeStamp, UTC
    # Parameters this adapter does not know, signed over all the same (in call order).
    extra: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class AppInfo:
    """What createInstance may hand back for the buyer's console (all optional)."""

    front_end_url: str | None = None
    admin_url: str | None = None
    username: str | None = None
    password: str | None = None
    auth_url: str | None = None  # where the marketplace sends ``verify`` logins

    def as_json(self) -> dict[str, str]:
        pairs = (("frontEndUrl", self.front_end_url), ("adminUrl", self.admin_url),
                 ("username", self.username), ("password", self.password),
                 ("authUrl", self.auth_url))
        return {name: value for name, value in pairs if value is not None}


def spi_token(params: Mapping[str, str], key: str) -> str:
    """MD5 (hex) of every parameter but ``token``, sorted by name, ``k=v&...&key=<key>``."""
    joined = "&".join(f"{name}={params[name]}" for name in sorted(params) if name != "token")
    return hashlib.md5(f"{joined}&key={key}".encode()).hexdigest()  # Alibaba's scheme


def instance_id_for(event: SpiEvent) -> str:
    """The instance id for a purchase: its orderBizId, the same on every retried
    createInstance (Alibaba's recommendation), so answering needs no lookup."""
    if event.kind != SpiKind.CREATE or not event.order_biz_id:
        raise ValueError("only a createInstance names a new instance")
    return event.order_biz_id


def spi_answer(event: SpiEvent, *, app_info: AppInfo | None = None,
               info: Mapping[str, str] | None = None, pending: bool = False,
               instance_id: str | None = None) -> dict[str, Any]:
    """The JSON body Alibaba expects for ``event``: createInstance's ``{"instanceId",
    "appInfo"?, "info"?}`` (``"0"`` while ``pending``: the marketplace calls again),
    ``{"success": true}`` for the others. ``verify`` is answered by logging the buyer
    in (a redirect), not with JSON."""
    if event.kind == SpiKind.LOGIN:
        raise ValueError("verify is answered by logging the buyer in, not with JSON")
    if event.kind != SpiKind.CREATE:
        return {"success": True}
    answer: dict[str, Any] = {"instanceId": "0" if pending
                              else instance_id or instance_id_for(event)}
    if app_info is not None and not pending:
        answer["appInfo"] = app_info.as_json()
    if info and not pending:
        answer["info"] = dict(info)
    return answer


def spi_failure(message: str) -> dict[str, Any]:
    """A refusal Alibaba reads as not done (it calls again)."""
    return {"success": False, "message": message[:500]}


# --- the adapter ---------------------------------------------------------------------


class AliyunMarketplace:
    def __init__(self, listing: AliyunListing, clock: Clock) -> None:
        if listing.profile == "china" and listing.usage_api() != "market":
            raise ValueError("the China site meters through Market 2015-11-01")
        self.listing = listing
        self.clock = clock
        self.vendor = listing.vendor
        self.currency = listing.currency
        self.dimension = listing.dimension
        self.unit_minor = listing.unit_minor
        period = listing.period()
        self.limits = ReportLimits(
            batch_size=BATCH_SIZE, max_request_bytes=MAX_REQUEST_BYTES, period=period,
            lateness=LATENESS[listing.billing],
            min_quantity=0, max_quantity=MAX_QUANTITY, resend_safe=False)
        self._client: Any = None
        self._lock = threading.Lock()
        self._pushed_at: dict[str, datetime] = {}  # instance -> last accepted push

    def period_start(self, now: datetime) -> datetime:
        """The start of the listing's billing period containing ``now``: the hour, or the
        Beijing day (Alibaba's daily window and deadline are Beijing days), in UTC. The
        charge reporter cuts one charge per cloud account and such period."""
        if self.listing.billing == "hourly":
            return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        day = now.astimezone(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
        return day.astimezone(UTC)

    def client(self) -> Any:
        """The vendor's SDK client, made on first use."""
        with self._lock:
            if self._client is None:
                from alibabacloud_tea_openapi.utils_models import Config
                listing = self.listing
                config = Config(
                    access_key_id=listing.access_key_id,
                    access_key_secret=listing.access_key_secret,
                    endpoint=listing.endpoint or HOSTS[listing.profile],
                    protocol=listing.protocol,
                    region_id=listing.region_id or REGIONS[listing.profile],
                    signature_algorithm="v2" if listing.signature == "HMAC-SHA1" else None,
                    connect_timeout=int(listing.connect_timeout_s * 1000),
                    read_timeout=int(listing.read_timeout_s * 1000))
                if listing.usage_api() == "market":
                    from alibabacloud_market20151101.client import Client as MarketClient
                    self._client = MarketClient(config)
                else:
                    from alibabacloud_marketplaceintl20221230.client import Client as IntlClient
                    self._client = IntlClient(config)
            return self._client

    def close(self) -> None:
        """Nothing to release: the SDK pools its connections process-wide, with no close."""

    # --- buyers: Alibaba sends them as SPI calls -------------------------------------

    def resolve_buyer(self, token: str) -> Buyer:
        """Alibaba has no registration token: a buyer arrives as a createInstance SPI call
        (:meth:`verify_spi`, then :meth:`buyer_for`)."""
        raise TokenRejected("not_supported", "Alibaba Cloud Marketplace buyers arrive as a "
                                             "createInstance SPI call, not with a token")

    def buyer_for(self, event: SpiEvent, instance_id: str | None = None) -> Buyer:
        """The buyer a createInstance names; ``license_ref`` is the instance usage is
        pushed for."""
        if event.kind != SpiKind.CREATE or not event.account_id or not event.product_code:
            raise ValueError("only a createInstance names a buyer")
        return Buyer(vendor=self.vendor, account_id=event.account_id,
                     product_code=event.product_code,
                     license_ref=instance_id or instance_id_for(event))

    def entitlement(self, buyer: Buyer) -> Entitlement:
        """Alibaba pushes the subscription's state (renewInstance, expiredInstance,
        releaseInstance); there is nothing to ask it."""
        raise Refused("not_supported", "Alibaba Cloud Marketplace sends the subscription's "
                                       "state as SPI calls; keep it from those")

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Notification:
        """Alibaba sends no notifications, only SPI calls (:meth:`verify_spi`)."""
        raise NotificationRejected("not_supported", "Alibaba Cloud Marketplace calls the "
                                                    "SPI endpoint: use verify_spi")

    def verify_spi(self, method: str, path: str, query: str | Sequence[tuple[str, str]],
                   now: datetime) -> SpiEvent:
        """The SPI call this request is, once its token is proven over all its parameters;
        :class:`NotificationRejected` otherwise (``method_not_allowed``, ``malformed``,
        ``missing_token``, ``bad_token``, ``unknown_action``, ``wrong_product``,
        ``stale``). ``query``: the raw query string, or its decoded pairs in order;
        ``path`` is the ISV's own route and not signed."""
        if method.upper() != "GET":
            raise NotificationRejected("method_not_allowed", "SPI calls are GETs")
        params, order = _spi_params(query)
        token = params.get("token")
        if not token:
            raise NotificationRejected("missing_token", "the call carries no token")
        expected = spi_token(params, self.listing.spi_key)
        if not hmac.compare_digest(expected.encode(), token.lower().encode()):
            raise NotificationRejected("bad_token", "the token does not match the parameters "
                                                    "and the ISV key")
        action = params.get("action", "")
        if action not in _ACTIONS:
            raise NotificationRejected("unknown_action", f"action {action[:64]!r} is unknown")
        kind, required = _ACTIONS[action]
        missing = [name for name in required if not params.get(name)]
        if missing:
            raise NotificationRejected("malformed", f"{action} lacks {', '.join(missing)}")
        if kind == SpiKind.CREATE and params["productCode"] != self.listing.product_code:
            raise NotificationRejected("wrong_product", f"productCode {params['productCode']!r}"
                                                        " is not this listing's")
        signed_at = _spi_time(params, "timeStamp")
        if kind == SpiKind.LOGIN:
            assert signed_at is not None
            if abs(now - signed_at) > self.listing.verify_tolerance:
                raise NotificationRejected("stale", f"timeStamp {params['timeStamp']} is more "
                                                    f"than {self.listing.verify_tolerance} "
                                                    "from now")
        return SpiEvent(
            kind=kind, action=action, instance_id=params.get("instanceId"),
            account_id=params.get("aliUid"), order_id=params.get("orderId"),
            order_biz_id=params.get("orderBizId"), product_code=params.get("productCode"),
            sku_id=params.get("skuId"), trial=_flag(params, "trial"),
            expires_at=_spi_time(params, "expiredOn"), refund=_flag(params, "isRefund"),
            signed_at=signed_at,
            extra=tuple((name, params[name]) for name in order if name not in _KNOWN))

    # --- usage ----------------------------------------------------------------------

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        if not reports:
            return []
        if len(reports) > BATCH_SIZE:
            raise ValueError(f"at most {BATCH_SIZE} reports in one call")
        for report in reports:
            if report.buyer.product_code != self.listing.product_code:
                raise ValueError("every report of a call is for this listing's product")
            if not report.buyer.license_ref:
                raise ValueError("an Alibaba buyer's license_ref is its instance id")
            if not 0 <= report.quantity <= MAX_QUANTITY:
                raise ValueError(f"quantity {report.quantity} is out of range")
        now = self.clock.now()
        period = self.listing.period()
        results: dict[int, ReportResult] = {}
        sending: list[int] = []
        with self._lock:
            # Only pushes within the window matter; older ones are forgotten.
            for instance in [i for i, at in self._pushed_at.items() if at + RATE_WINDOW <= now]:
                del self._pushed_at[instance]
            pushed_at = dict(self._pushed_at)
        for index, report in enumerate(reports):
            instance = str(report.buyer.license_ref)
            if now >= self.listing.deadline(report.period_start):
                results[index] = ReportResult(report.key, ReportStatus.REFUSED,
                                              reason="deadline_passed")
            elif report.period_start + period > now:
                results[index] = ReportResult(report.key, ReportStatus.UNPROCESSED,
                                              reason="period_open")
            elif instance in pushed_at and now < pushed_at[instance] + RATE_WINDOW:
                results[index] = ReportResult(report.key, ReportStatus.UNPROCESSED,
                                              reason="rate_limited")
            else:
                sending.append(index)
        if sending:
            batch = [reports[i] for i in sending]
            record_ids = self._push(batch, now)
            with self._lock:
                for report in batch:
                    self._pushed_at[str(report.buyer.license_ref)] = now
            for index, record_id in zip(sending, record_ids, strict=True):
                results[index] = ReportResult(reports[index].key, ReportStatus.ACCEPTED,
                                              record_id)
        return [results[i] for i in range(len(reports))]

    def _push(self, batch: Sequence[UsageReport], now: datetime) -> list[str]:
        """One PushMeteringData call; the record ids, or Transient / Refused."""
        from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
        from darabonba.runtime import ExtendsParameters, RuntimeOptions
        from Tea.exceptions import TeaException

        listing = self.listing
        stamp = now.astimezone(UTC).strftime(_SIGNATURE_TIME)
        # The SDK would stamp the wall clock; the injected clock governs instead.
        extends = (ExtendsParameters(queries={"Timestamp": stamp})
                   if listing.signature == "HMAC-SHA1"
                   else ExtendsParameters(headers={"x-acs-date": stamp}))
        runtime = RuntimeOptions(extends_parameters=extends)
        request = self._request(batch)
        try:
            answer = self.client().push_metering_data_with_options(request, runtime)
        except AlibabaCloudException as error:
            raise _call_failed(str(error.code or ""), str(error.message or ""),
                               int(error.status_code or 0)) from None
        except TeaException as error:
            text = _failure_text(error)
            if any(words in text for words in _NOT_SENT):
                raise Transient("not_sent", text[:500]) from None
            raise Transient("network", text[:500]) from None
        body = answer.body.to_map() if answer.body is not None else {}
        if body.get("Success") is not True:
            raise _call_failed(str(body.get("Code") or "Unsuccessful"),
                               str(body.get("Message") or body), 200)
        request_id = str(body.get("RequestId") or "")
        if listing.usage_api() == "marketplaceintl":
            return [report.key for report in batch]  # each record's PushOrderBizId
        return [f"{request_id}#{n}" for n in range(1, len(batch) + 1)]

    def _request(self, batch: Sequence[UsageReport]) -> Any:
        listing, period = self.listing, self.listing.period()
        if listing.usage_api() == "market":
            from alibabacloud_market20151101 import models as market

            metering = []
            for report in batch:
                entity: dict[str, str] = {"Key": listing.metering_key,
                                          "Value": str(report.quantity)}
                if listing.metering_assist:
                    entity["meteringAssit"] = listing.metering_assist
                metering.append({"InstanceId": str(report.buyer.license_ref),
                                 "StartTime": _epoch(report.period_start),
                                 "EndTime": _epoch(report.period_start + period),
                                 "Entities": [entity]})
            text = json.dumps(metering, separators=(",", ":"))
            if len(text) > MAX_REQUEST_BYTES:
                raise ValueError(f"Metering is over {MAX_REQUEST_BYTES} bytes")
            return market.PushMeteringDataRequest(metering=text)
        from alibabacloud_marketplaceintl20221230 import models as intl

        return intl.PushMeteringDataRequest(
            gmt_create=self.clock.now().astimezone(UTC).strftime(_SIGNATURE_TIME),
            metering_data=[intl.PushMeteringDataRequestMeteringData(
                instance_id=str(report.buyer.license_ref),
                start_time=_epoch(report.period_start),
                end_time=_epoch(report.period_start + period),
                metering_entity=json.dumps({listing.metering_key: str(report.quantity)}),
                metering_assist=listing.metering_assist, push_order_biz_id=report.key)
                for report in batch])


def _call_failed(code: str, message: str, status: int) -> Exception:
    """A whole call Alibaba refused: Transient or Refused."""
    text = f"{code}: {message}"[:500]
    if code.startswith("Throttling") or status == 429:
        return Transient("throttled", text, throttled=True)
    if code in _CREDENTIALS:
        return Transient("credentials_rejected", text)
    if status >= 500 or code in ("InternalError", "ServiceUnavailable"):
        return Transient("vendor_error", text)
    if code in _REFUSALS:
        return Refused(_REFUSALS[code], text)
    if code.startswith(("InvalidParameter", "MissingParameter")):
        return Refused("invalid_parameter", text)
    return Refused("vendor_refused", text)


def _failure_text(error: BaseException) -> str:
    """What the SDK says of a failed call, with the transport's words it wraps."""
    parts = [str(error)]
    inner = getattr(error, "inner_exception", None)
    if inner is not None:
        parts.append(str(inner))
    return " | ".join(parts)


def _spi_params(query: str | Sequence[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    if isinstance(query, str):
        if len(query) > MAX_SPI_QUERY_CHARS:
            raise NotificationRejected("malformed", f"the query passes {MAX_SPI_QUERY_CHARS} "
                                                    "characters")
        try:
            pairs = parse_qsl(query.removeprefix("?"), keep_blank_values=True,
                              strict_parsing=bool(query), errors="strict")
        except (ValueError, UnicodeDecodeError):
            raise NotificationRejected("malformed", "the query does not parse") from None
    else:
        pairs = list(query)
    if len(pairs) > MAX_SPI_PARAMS:
        raise NotificationRejected("malformed", f"more than {MAX_SPI_PARAMS} parameters")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise NotificationRejected("malformed", f"{name[:64]} is given twice")
        if len(value) > MAX_SPI_VALUE_CHARS:
            raise NotificationRejected("malformed", f"{name[:64]} is too long")
        params[name] = value
    return params, [name for name, _ in pairs]


def _spi_time(params: Mapping[str, str], name: str) -> datetime | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return datetime.strptime(text, SPI_TIME_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)
    except ValueError:
        raise NotificationRejected("malformed", f"{name} is not yyyy-MM-dd HH:mm:ss") from None


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    text = params.get(name)
    if text is None:
        return None
    if text not in ("true", "false"):
        raise NotificationRejected("malformed", f"{name} is true or false")
    return text == "true"


def _epoch(instant: datetime) -> int:
    return int(instant.astimezone(UTC).timestamp())
