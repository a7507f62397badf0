"""The Huawei Cloud KooGallery adapter (marketplaces.md §3): the V2 activities
KooGallery sends us, verified and answered, and the pay-per-use usage push.

* :meth:`HuaweiMarketplace.verify_activity` proves an inbound activity
  (``newInstance``, ``refreshInstance``, ``upgradeInstance``,
  ``updateInstanceStatus``, ``releaseInstance``, ``queryInstance``) is KooGallery's:
  the signature over the raw body (so over every field, known or not), the
  millisecond timestamp within 60 s, the nonce never seen before (in the
  :class:`~accrual.billing.domain.nonces.NonceStore` the caller gives: the billing
  center's keeps them in its database; alone, the adapter keeps them in memory); and
  turns it into a vendor-neutral :class:`Activity`.
* :meth:`HuaweiMarketplace.answer` / :meth:`~HuaweiMarketplace.respond` build the
  answer body (``resultCode``, ``resultMsg``, ``instanceId``) and sign it
  (``Body-Sign``). A repeated newInstance gets the same ``instanceId``: the id is
  derived from ``orderId`` + ``orderLineId`` (pay-per-use: + ``productId``), so it is
  the same on every resend, after a restart, with nothing stored.
* :meth:`HuaweiMarketplace.report` is one usage push of at most 1,000 records: each
  report becomes a record whose ``metering_sn`` (KooGallery's dedupe key: a resend is
  never billed twice) is derived from the report alone, its key, instance, dimension
  and period (:func:`metering_sn`): the same on every resend, after a restart, and
  different for another center's charge that happens to have the same key; and
  ``usage_value`` a decimal string
  > 0 with at most 4 places. A 2xx answer means *received*: KooGallery validates the
  records later, so every report of it is ``accepted``.
* KooGallery has no registration token, entitlement pull or header-only notification:
  :meth:`~HuaweiMarketplace.resolve_buyer`, :meth:`~HuaweiMarketplace.entitlement`
  and :meth:`~HuaweiMarketplace.verify_notification` refuse with ``not_supported``
  (the buyer and the lifecycle come with the activities).

Signing is plain ``hmac``/``hashlib``, as KooGallery documents it: its Python SDK
(huaweicloudsdkcore) signs API-gateway calls (``SDK-HMAC-SHA256`` in
``Authorization``), and neither the activities nor the usage push is such a call.
The HMAC key of the activity signature is undocumented; :attr:`HuaweiListing.hmac_key`
chooses the reading. No hidden retries: the charge reporter owns them; only a
connection that never reached the main domain goes to the documented fallback domain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import httpx

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
from accrual.billing.domain.nonces import MemoryNonces, NonceStore, NonceStoreFull
from accrual.clock import Clock

VENDOR = "huawei"
USAGE_PATH = "/api/mkp-openapi-public/global/v1/isv/usage-data"
MAX_ACTIVITY_BYTES = 64 * 1024  # an activity is a small JSON object
MAX_RECORDS = 1000
MAX_REQUEST_BYTES = 1024 * 1024  # ours: 1,000 records are about 250 KB
MAX_SN = 64  # metering_sn; our charge keys are shorter
MAX_ID = 64  # instance, order, product ids we accept
MAX_QUERY_IDS = 100
MAX_NONCES = 100_000  # live nonces remembered (2 minutes' worth)
MAX_VALUE = Decimal(10) ** 12
FOUR_PLACES = Decimal("0.0001")
USAGE_TIME = "%Y%m%dT%H%M%SZ"
ORDER_TIME = "%Y%m%d%H%M%S"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ResultCode(StrEnum):
    """KooGallery's result codes (the same in V1 and V2)."""

    SUCCESS = "000000"
    AUTH_FAILED = "000001"
    INVALID_PARAMETERS = "000002"
    INSTANCE_NOT_FOUND = "000003"
    PROCESSING = "000004"  # newInstance: KooGallery polls queryInstance
    INTERNAL_ERROR = "000005"
    NO_RESOURCES = "000100"


class ActivityKind(StrEnum):
    CREATE = "create"
    QUERY = "query"
    RENEW = "renew"
    TRIAL_TO_FORMAL = "trial_to_formal"
    UNSUBSCRIBE_RENEWAL = "unsubscribe_renewal"  # a renewal period rolled back
    UPGRADE = "upgrade"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    RELEASE = "release"  # the instance's life ended
    CANCEL = "cancel"  # released by the buyer's unsubscription


_REFRESH_SCENES = {"RENEWAL": ActivityKind.RENEW,
                   "TRIAL_TO_FORMAL": ActivityKind.TRIAL_TO_FORMAL,
                   "UNSUBSCRIBE_RENEWAL_PERIOD": ActivityKind.UNSUBSCRIBE_RENEWAL}
ACTIVITIES = ("newInstance", "queryInstance", "refreshInstance", "upgradeInstance",
              "updateInstanceStatus", "releaseInstance")


@dataclass(frozen=True)
class Activity:
    """A verified V2 activity, vendor-neutral."""

    kind: ActivityKind
    activity: str  # KooGallery's name, e.g. newInstance
    nonce: str
    sent_at: datetime
    instance_id: str | None  # None only for newInstance (we choose it) and queryInstance
    account_id: str | None = None  # the buyer's Huawei account (customerId), newInstance
    order_id: str | None = None
    order_line_id: str | None = None
    business_id: str | None = None  # newInstance: new on every resend
    product_id: str | None = None
    sku_code: str | None = None
    charging_mode: str | None = None  # PERIOD, ON_DEMAND, ...
    trial: bool = False
    test: bool = False
    expires_at: datetime | None = None
    instance_ids: tuple[str, ...] = ()  # queryInstance
    extra: tuple[tuple[str, str], ...] = ()  # other scalar fields, as sent

    def buyer(self, instance_id: str) -> Buyer:
        """The buyer a newInstance names, with the instance id answered to it (which the
        usage push names the buyer by)."""
        if self.account_id is None or self.product_id is None:
            raise ValueError("only a newInstance names the buyer")
        return Buyer(vendor=VENDOR, account_id=self.account_id, product_code=self.product_id,
                     license_ref=instance_id)


@dataclass(frozen=True)
class ActivityResponse:
    """The answer to send back: exactly these bytes, with these headers."""

    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class HuaweiListing:
    """One KooGallery SaaS product as the billing center sells it."""

    product_id: str
    access_key: str  # from the seller console; keys the signatures
    secret_key: str | None = None  # only for hmac_key="secret_key"
    # The undocumented HMAC key: the access key (the natural reading) or a separate secret.
    hmac_key: Literal["access_key", "secret_key"] = "access_key"
    endpoint_url: str = "https://mkt.myhuaweicloud.com"
    fallback_url: str | None = "https://mkt.myhuaweicloud.cn"  # when the first is unreachable
    dimension: str = "usage_minor"  # the money dimension (decisions.md 23)
    unit_minor: int = 1
    usage_unit: Decimal = Decimal(1)  # usage_value of one reported unit (4 places at most)
    billing: Literal["hourly", "daily"] = "hourly"
    tolerance: timedelta = timedelta(seconds=60)  # an activity's timestamp against now
    timeout_s: float = 10.0

    def key(self) -> str:
        if self.hmac_key == "secret_key":
            if not self.secret_key:
                raise ValueError("hmac_key secret_key needs a secret_key")
            return self.secret_key
        return self.access_key


class HuaweiMarketplace:
    vendor = VENDOR

    def __init__(self, listing: HuaweiListing, clock: Clock, *,
                 http: httpx.Client | None = None) -> None:
        if not listing.access_key:
            raise ValueError("a KooGallery listing needs its access key")
        listing.key()
        if listing.usage_unit <= 0 or listing.usage_unit != listing.usage_unit.quantize(
                FOUR_PLACES):
            raise ValueError("usage_unit is > 0 with at most 4 decimal places")
        self.listing = listing
        self.clock = clock
        self.dimension = listing.dimension
        self.unit_minor = listing.unit_minor
        period = timedelta(hours=1) if listing.billing == "hourly" else timedelta(days=1)
        # Hourly: by 2 h after the hour; daily: by 01:00 after the day (marketplaces.md §3.4).
        grace = timedelta(hours=2) if listing.billing == "hourly" else timedelta(hours=1)
        self.limits = ReportLimits(batch_size=MAX_RECORDS, max_request_bytes=MAX_REQUEST_BYTES,
                                   period=period, lateness=period + grace, min_quantity=1,
                                   max_quantity=int(MAX_VALUE / listing.usage_unit) - 1,
                                   # KooGallery bills one metering_sn once: a resend is safe.
                                   resend_safe=True)
        self._owns_http = http is None
        self._http = http
        self._http_lock = threading.Lock()
        self._nonces = MemoryNonces(MAX_NONCES)

    @property
    def http(self) -> httpx.Client:
        # Made on first use: a center that never pushes usage opens nothing.
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.listing.timeout_s, follow_redirects=False)
            return self._http

    def close(self) -> None:
        if self._owns_http and self._http is not None:
            self._http.close()

    # --- what KooGallery does not have --------------------------------------------

    def resolve_buyer(self, token: str) -> Buyer:
        """KooGallery sends no registration token: the buyer comes with newInstance."""
        raise TokenRejected("not_supported", "KooGallery names the buyer in its newInstance "
                                             "activity (Activity.buyer), not with a token")

    def entitlement(self, buyer: Buyer) -> Entitlement:
        """KooGallery offers the ISV no entitlement pull: the activities tell the state."""
        raise Refused("not_supported", "KooGallery pushes renewals, freezes and releases as "
                                       "activities; there is nothing to ask")

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Notification:
        """KooGallery signs in the URL query: use :meth:`verify_activity`."""
        raise NotificationRejected("not_supported", "KooGallery's activities carry their "
                                   "signature in the URL query; verify them with verify_activity")

    # --- inbound activities ---------------------------------------------------------

    def verify_activity(self, method: str, path: str, query: Mapping[str, str],
                        headers: Mapping[str, str], body: bytes, now: datetime, *,
                        nonces: NonceStore | None = None) -> Activity:
        """The activity this request carries, once proven KooGallery's;
        :class:`NotificationRejected` (``malformed``, ``stale``, ``bad_signature``,
        ``replayed``, ``replay_cache_full``, ``unknown_activity``,
        ``invalid_parameters``) otherwise. The activity's name is the path's last
        segment, else the body's ``activity``. A nonce is taken in ``nonces`` (by
        default this adapter's memory) only once the signature holds, so a forged call
        cannot use up a nonce KooGallery will send."""
        if method.upper() != "POST":
            raise NotificationRejected("malformed", "V2 activities are POSTed")
        if len(body) > MAX_ACTIVITY_BYTES:
            raise NotificationRejected("malformed", f"more than {MAX_ACTIVITY_BYTES} bytes")
        signature, timestamp, nonce = (query.get(n) or "" for n in ("signature", "timestamp",
                                                                     "nonce"))
        if not (signature and timestamp and nonce) or len(nonce) > 128 or len(signature) > 128:
            raise NotificationRejected("malformed", "signature, timestamp and nonce are required")
        if not timestamp.isdigit() or len(timestamp) > 16:
            raise NotificationRejected("malformed", "timestamp must be Unix milliseconds")
        # Compared in whole milliseconds first: any digits are safe to compare.
        now_ms = (now - EPOCH) // timedelta(milliseconds=1)
        if abs(now_ms - int(timestamp)) > self.listing.tolerance // timedelta(milliseconds=1):
            raise NotificationRejected("stale", f"timestamp {timestamp} is more than "
                                       f"{self.listing.tolerance.total_seconds():g} s from now")
        sent_at = EPOCH + timedelta(milliseconds=int(timestamp))
        expected = activity_signature(self.listing, nonce, timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise NotificationRejected("bad_signature", "the signature does not match")
        self._remember(nonces or self._nonces, nonce, now, sent_at)
        try:
            fields = json.loads(body)
        except ValueError:
            raise NotificationRejected("malformed", "the body is not JSON") from None
        if not isinstance(fields, dict):
            raise NotificationRejected("malformed", "the body is not a JSON object")
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name not in ACTIVITIES:
            name = str(fields.get("activity", ""))
        if name not in ACTIVITIES:
            raise NotificationRejected("unknown_activity", f"activity {name!r} is unknown")
        return _activity(name, fields, nonce, sent_at)

    def _remember(self, store: NonceStore, nonce: str, now: datetime,
                  sent_at: datetime) -> None:
        # Past this the timestamp check refuses the call anyway; twice the tolerance
        # leaves room for processes whose clocks differ a little.
        keep_until = max(now, sent_at) + 2 * self.listing.tolerance
        try:
            first = store.remember(VENDOR, nonce, now, keep_until)
        except NonceStoreFull:
            raise NotificationRejected("replay_cache_full", "too many activities at once") \
                from None
        if not first:
            raise NotificationRejected("replayed", "this nonce was seen already")

    def instance_id_for(self, activity: Activity) -> str:
        """The instance id of a newInstance: the same for every resend of its order
        (orderId + orderLineId, or orderId + productId for pay-per-use)."""
        if activity.order_id is None:
            raise ValueError("only a newInstance has an order to name the instance by")
        second = (activity.product_id if activity.charging_mode == "ON_DEMAND"
                  else activity.order_line_id) or ""
        digest = hmac.new(self.listing.access_key.encode(),
                          f"{activity.order_id}\n{second}".encode(), hashlib.sha256).hexdigest()
        return "hw" + digest[:30]

    def respond(self, code: ResultCode, message: str = "success",
                **fields: Any) -> ActivityResponse:
        """An answer with ``resultCode``, ``resultMsg`` and ``fields``, signed."""
        body = json.dumps({"resultCode": code.value, "resultMsg": message, **fields},
                          ensure_ascii=False, separators=(",", ":")).encode()
        return ActivityResponse(body, {"Content-Type": "application/json;charset=UTF-8",
                                       "Body-Sign": body_sign(self.listing.access_key, body)})

    def answer(self, activity: Activity) -> ActivityResponse:
        """Success for a verified activity; newInstance with its instanceId (the same on
        every resend), queryInstance with one ``info`` entry per instance asked."""
        if activity.kind == ActivityKind.CREATE:
            return self.respond(ResultCode.SUCCESS, instanceId=self.instance_id_for(activity))
        if activity.kind == ActivityKind.QUERY:
            return self.respond(ResultCode.SUCCESS, info=[{"instanceId": i}
                                                          for i in activity.instance_ids])
        return self.respond(ResultCode.SUCCESS)

    def refusal(self, error: NotificationRejected) -> ActivityResponse:
        """The answer to a request :meth:`verify_activity` refused."""
        if error.code in ("stale", "bad_signature", "replayed"):
            return self.respond(ResultCode.AUTH_FAILED, error.message)
        if error.code == "replay_cache_full":
            return self.respond(ResultCode.INTERNAL_ERROR, error.message)
        return self.respond(ResultCode.INVALID_PARAMETERS, error.message)

    # --- usage ------------------------------------------------------------------------

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        if not reports:
            return []
        if len(reports) > self.limits.batch_size:
            raise ValueError(f"at most {self.limits.batch_size} reports in one push")
        records = [self._record(r) for r in reports]
        # KooGallery signs over the body with its keys in natural order.
        body = json.dumps({"usage_records": records}, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
        if len(body) > self.limits.max_request_bytes:
            raise ValueError(f"the push is over {self.limits.max_request_bytes} bytes")
        urls = [self.listing.endpoint_url] + (
            [self.listing.fallback_url] if self.listing.fallback_url else [])
        response = None
        for url in urls:
            try:
                response = self.http.post(url.rstrip("/") + USAGE_PATH, content=body,
                                          headers=self._usage_headers(body))
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                failure = error  # never reached: the documented fallback domain is next
            except httpx.HTTPError as error:
                raise Transient("network", f"{type(error).__name__}: {error}") from None
        if response is None:
            raise Transient("network", f"{type(failure).__name__}: {failure}")
        if 200 <= response.status_code < 300:
            # Received, not yet validated: KooGallery checks the records in the background.
            return [ReportResult(r.key, ReportStatus.ACCEPTED) for r in reports]
        raise _push_failed(response)

    def _record(self, report: UsageReport) -> dict[str, str]:
        if report.buyer.product_code != self.listing.product_id:
            raise ValueError("every report of a push is for this listing's product")
        if not report.buyer.license_ref:
            raise ValueError("a KooGallery buyer's license_ref is its instance id")
        if not 1 <= len(report.key) <= MAX_SN:
            raise ValueError(f"a report key (metering_sn) has 1 to {MAX_SN} characters")
        if not self.limits.min_quantity <= report.quantity <= self.limits.max_quantity:
            raise ValueError(f"quantity {report.quantity} is out of KooGallery's range (> 0)")
        value = Decimal(report.quantity) * self.listing.usage_unit
        start = report.period_start.astimezone(UTC)
        return {"instance_id": report.buyer.license_ref,
                "record_time": self.clock.now().astimezone(UTC).strftime(USAGE_TIME),
                "begin_time": start.strftime(USAGE_TIME),
                "end_time": (start + self.limits.period).strftime(USAGE_TIME),
                "usage_value": format(value.quantize(FOUR_PLACES).normalize(), "f"),
                "metering_sn": metering_sn(report)}

    def _usage_headers(self, body: bytes) -> dict[str, str]:
        ts = str((self.clock.now() - EPOCH) // timedelta(milliseconds=1))
        nonce = secrets.token_hex(16)
        return {"Content-Type": "application/json;charset=UTF-8", "ts": ts, "nonce": nonce,
                "signature": usage_signature(self.listing.key(), ts, nonce, body)}


# --- signatures (marketplaces.md §3.2, §3.4) -----------------------------------------


def metering_sn(report: UsageReport) -> str:
    """The record's ``metering_sn``: the report's key, then a digest of what identifies
    the charge (key, instance, dimension, period start). Every field is fixed when the
    charge is cut, so a resend carries the same one (KooGallery bills it once); another
    billing center (or a database started afresh) whose charge has the same key names
    another instance or period, so its record is not taken for a duplicate."""
    identity = "\n".join((report.key, report.buyer.license_ref or "", report.dimension,
                          report.period_start.astimezone(UTC).isoformat()))
    digest = hashlib.sha256(identity.encode()).hexdigest()
    return f"{report.key[:MAX_SN - 25]}-{digest[:24]}"


def _hmac(key: str, data: bytes) -> bytes:
    return hmac.new(key.encode(), data, hashlib.sha256).digest()


def activity_signature(listing: HuaweiListing, nonce: str, timestamp: str, body: bytes) -> str:
    """``hex(HMAC(key, accessKey + nonce + timestamp + hex(HMAC(key, body))))``, lower case."""
    key = listing.key()
    canonical = listing.access_key + nonce + timestamp + _hmac(key, body).hex()
    return _hmac(key, canonical.encode()).hex()


def body_sign(access_key: str, body: bytes) -> str:
    """The ``Body-Sign`` header of an answer: quotes and name exactly as KooGallery wants."""
    signature = base64.b64encode(_hmac(access_key, body)).decode()
    return f'sign_type="HMAC-SHA256", signature="{signature}"'


def usage_signature(key: str, ts: str, nonce: str, body: bytes) -> str:
    return base64.b64encode(_hmac(key, b"ts=" + ts.encode() + b"&nonce=" + nonce.encode()
                                  + b"&body=" + body)).decode()


# --- parsing --------------------------------------------------------------------------


def _activity(name: str, fields: dict[str, Any], nonce: str, sent_at: datetime) -> Activity:
    test = str(fields.get("testFlag", "0")) == "1"
    extra = tuple(sorted((k, str(v)) for k, v in fields.items()
                         if isinstance(v, str | int | bool) and len(str(v)) <= 256))
    common: dict[str, Any] = {"activity": name, "nonce": nonce, "sent_at": sent_at,
                              "test": test, "extra": extra}
    if name == "newInstance":
        buyer = fields.get("buyerInfo")
        orders = fields.get("orderInfo")
        order = orders[0] if isinstance(orders, list) and orders else None
        products = order.get("productInfo") if isinstance(order, dict) else None
        product = products[0] if isinstance(products, list) and products else None
        if not (isinstance(buyer, dict) and isinstance(order, dict)
                and isinstance(product, dict)):
            raise NotificationRejected("invalid_parameters",
                                       "newInstance needs buyerInfo and orderInfo[].productInfo[]")
        return Activity(
            kind=ActivityKind.CREATE, instance_id=None,
            account_id=_id(buyer, "customerId"), order_id=_id(fields, "orderId"),
            order_line_id=_id(fields, "orderLineId", required=False),
            business_id=_id(fields, "businessId", required=False),
            product_id=_id(product, "productId"), sku_code=_id(product, "skuCode",
                                                                required=False),
            charging_mode=_id(order, "chargingMode", required=False),
            trial=str(order.get("trialFlag", "0")) == "1",
            expires_at=_order_time(order.get("expireTime")), **common)
    if name == "queryInstance":
        ids = tuple(i for i in str(fields.get("instanceId", "")).split(",") if i)
        if not 1 <= len(ids) <= MAX_QUERY_IDS or not all(_ID.match(i) for i in ids):
            raise NotificationRejected("invalid_parameters",
                                       f"instanceId is 1 to {MAX_QUERY_IDS} ids, comma-separated")
        return Activity(kind=ActivityKind.QUERY, instance_id=None, instance_ids=ids, **common)
    instance_id = _id(fields, "instanceId")
    order_id = _id(fields, "orderId", required=False)
    if name == "refreshInstance":
        scene = _REFRESH_SCENES.get(str(fields.get("scene")))
        if scene is None:
            raise NotificationRejected("invalid_parameters",
                                       f"scene {fields.get('scene')!r} is unknown")
        return Activity(kind=scene, instance_id=instance_id, order_id=order_id,
                        order_line_id=_id(fields, "orderLineId", required=False),
                        product_id=_id(fields, "productId", required=False),
                        expires_at=_order_time(fields.get("expireTime")), **common)
    if name == "updateInstanceStatus":
        status = fields.get("status")
        if status not in ("FREEZE", "UNFREEZE"):
            raise NotificationRejected("invalid_parameters", f"status {status!r} is unknown")
        return Activity(kind=ActivityKind.FREEZE if status == "FREEZE" else ActivityKind.UNFREEZE,
                        instance_id=instance_id, **common)
    kind = (ActivityKind.UPGRADE if name == "upgradeInstance"
            else ActivityKind.CANCEL if order_id else ActivityKind.RELEASE)
    return Activity(kind=kind, instance_id=instance_id, order_id=order_id,
                    order_line_id=_id(fields, "orderLineId", required=False), **common)


def _id(fields: Mapping[str, Any], name: str, *, required: bool = True) -> Any:
    value = fields.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ID.match(value):
        raise NotificationRejected("invalid_parameters",
                                   f"{name} must be an id of 1 to {MAX_ID} characters")
    return value


def _order_time(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), ORDER_TIME).replace(tzinfo=UTC)
    except ValueError:
        raise NotificationRejected("invalid_parameters",
                                   f"{value!r} is not yyyyMMddHHmmss") from None


def _push_failed(response: httpx.Response) -> Exception:
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    answer = answer if isinstance(answer, dict) else {}
    code = str(answer.get("error_code") or f"http_{response.status_code}")
    message = str(answer.get("error_msg") or response.text[:500])
    status = response.status_code
    if status == 429:
        return Transient("throttled", message, throttled=True)
    if status in (401, 403):
        # A fresh timestamp, nonce or fixed key makes the same records acceptable.
        return Transient("unauthorized", f"{code}: {message}")
    if status >= 500:
        return Transient("vendor_error", f"{code}: {message}")
    return Refused("invalid_request" if status in (400, 413) else "vendor_refused",
                   f"{code}: {message}")
