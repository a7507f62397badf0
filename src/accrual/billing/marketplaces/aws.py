"""The AWS Marketplace adapter: boto3's ``meteringmarketplace`` and
``marketplace-entitlement`` clients, and SNS signature checks (marketplaces.md §1).

* :meth:`AwsMarketplace.resolve_buyer` is ``ResolveCustomer``.
* :meth:`AwsMarketplace.entitlement` pages through ``GetEntitlements`` filtered by
  the buyer's license (``LICENSE_ARN``), else by ``CUSTOMER_IDENTIFIER`` for a legacy
  listing, else by ``CUSTOMER_AWS_ACCOUNT_ID``.
* :meth:`AwsMarketplace.report` is one ``BatchMeterUsage`` call; the answers are
  matched back to reports by (buyer, dimension, timestamp), the fields AWS echoes.
* :meth:`AwsMarketplace.verify_notification` checks an SNS HTTP delivery: its topic,
  that its certificate comes from a trusted place, the signature (version 1, SHA1, or
  2, SHA256), and its age.

botocore's own retries are off: the charge reporter owns retries and their pacing.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from accrual.billing.domain.marketplace import (
    Acknowledged,
    Buyer,
    Entitlement,
    Notification,
    NotificationAction,
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

VENDOR = "aws"
MARKETPLACE_ACCOUNT = "287250355862"  # owns every marketplace SNS topic
MAX_TOKEN_CHARS = 4096
MAX_NOTIFICATION_BYTES = 300 * 1024  # SNS messages are at most 256 KiB, plus the envelope
MAX_CERT_BYTES = 64 * 1024
MAX_CACHED_CERTS = 32
MAX_ENTITLEMENT_PAGES = 100
FUTURE_SKEW = timedelta(minutes=5)
# What SNS signs, per message type (AWS: "Verifying the signatures of Amazon SNS messages").
_SIGNED_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                        "TopicArn", "Type")
NOTIFICATION, SUBSCRIBE, UNSUBSCRIBE = ("Notification", "SubscriptionConfirmation",
                                        "UnsubscribeConfirmation")
_ENVELOPE_FIELDS = ("Type", "MessageId", "TopicArn", "Message", "Timestamp",
                    "SignatureVersion", "Signature", "SigningCertURL")
MAX_CONFIRM_URL = 4096
# AWS's errors that refuse a whole call for good, with our stable codes.
_REFUSALS = {
    "TimestampOutOfBoundsException": "timestamp_out_of_bounds",
    "InvalidProductCodeException": "invalid_product_code",
    "InvalidUsageDimensionException": "invalid_usage_dimension",
    "InvalidLicenseException": "invalid_license",
    "InvalidCustomerIdentifierException": "invalid_customer_identifier",
    "InvalidTagException": "invalid_tag",
    "InvalidUsageAllocationsException": "invalid_usage_allocations",
    "ValidationException": "validation",
    "InvalidParameterException": "invalid_parameter",
}
_TRANSIENT = {"ThrottlingException", "InternalServiceErrorException", "DisabledApiException"}


@dataclass(frozen=True)
class AwsListing:
    """One AWS Marketplace SaaS listing as the billing center sells it."""

    product_code: str
    endpoint_url: str | None = None  # None: the real AWS endpoints of ``region``
    region: str = "us-east-1"  # SaaS listings live there
    access_key_id: str | None = None  # None: boto3's own credential chain
    secret_access_key: str | None = None
    dimension: str = "usage_minor"  # the money dimension (decisions.md 23)
    unit_minor: int = 1  # one unit = 0.01 of the currency
    legacy_identifiers: bool = False  # meter by CustomerIdentifier (pre-2026 integrations)
    lateness: timedelta = timedelta(hours=6)  # AWS's window: 6 h, or 24 h in newer models
    # Where SigningCertURL may point; empty: https://sns.<region>.amazonaws.com/
    trusted_cert_prefixes: tuple[str, ...] = ()
    notification_tolerance: timedelta = timedelta(hours=1)  # older is stale
    # Topics notifications may come from; empty: this product's two marketplace topics.
    topic_arns: tuple[str, ...] = ()
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0

    def cert_prefixes(self) -> tuple[str, ...]:
        return self.trusted_cert_prefixes or (f"https://sns.{self.region}.amazonaws.com/",)

    def topics(self) -> tuple[str, ...]:
        return self.topic_arns or tuple(
            f"arn:aws:sns:us-east-1:{MARKETPLACE_ACCOUNT}:aws-mp-{kind}-notification-"
            f"{self.product_code}" for kind in ("subscription", "entitlement"))


@dataclass
class _CertCache:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: dict[str, tuple[rsa.RSAPublicKey, datetime, datetime]] = field(default_factory=dict)


class AwsMarketplace:
    vendor = VENDOR

    def __init__(self, listing: AwsListing, clock: Clock, *,
                 http: httpx.Client | None = None) -> None:
        self.listing = listing
        self.clock = clock
        self.dimension = listing.dimension
        self.unit_minor = listing.unit_minor
        self.limits = ReportLimits(batch_size=25, max_request_bytes=1024 * 1024,
                                   period=timedelta(hours=1), lateness=listing.lateness,
                                   min_quantity=0, max_quantity=2**31 - 1)
        self._clients: tuple[Any, Any] | None = None
        self._clients_lock = threading.Lock()
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=listing.read_timeout_s, follow_redirects=False)
        self._certs = _CertCache()

    def _boto_clients(self) -> tuple[Any, Any]:
        """(metering, entitlement) clients, made on first use: loading botocore's models
        costs about a tenth of a second, which a center that never meets a buyer skips."""
        with self._clients_lock:
            if self._clients is None:
                listing = self.listing
                # Our reporter owns retries: botocore sends each call exactly once.
                config = Config(retries={"mode": "standard", "total_max_attempts": 1},
                                connect_timeout=listing.connect_timeout_s,
                                read_timeout=listing.read_timeout_s)
                session = boto3.session.Session(aws_access_key_id=listing.access_key_id,
                                                aws_secret_access_key=listing.secret_access_key,
                                                region_name=listing.region)
                self._clients = (
                    session.client("meteringmarketplace", endpoint_url=listing.endpoint_url,
                                   config=config),
                    session.client("marketplace-entitlement",
                                   endpoint_url=listing.endpoint_url, config=config))
            return self._clients

    @property
    def metering(self) -> Any:
        return self._boto_clients()[0]

    @property
    def entitlements(self) -> Any:
        return self._boto_clients()[1]

    def close(self) -> None:
        """Release the clients' connections."""
        if self._clients is not None:
            for client in self._clients:
                client.close()
        if self._owns_http:
            self.http.close()

    # --- buyers -----------------------------------------------------------------

    def resolve_buyer(self, token: str) -> Buyer:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected("invalid_token",
                                f"a registration token has 1 to {MAX_TOKEN_CHARS} characters")
        try:
            answer = self.metering.resolve_customer(RegistrationToken=token)
        except ClientError as error:
            code = _error_code(error)
            if code == "InvalidTokenException":
                raise TokenRejected("invalid_token", _message(error)) from None
            if code == "ExpiredTokenException":
                raise TokenRejected("expired_token", _message(error)) from None
            raise _call_failed(error) from None
        except BotoCoreError as error:
            raise Transient("network", str(error)) from None
        account = answer.get("CustomerAWSAccountId")
        if not account:
            raise Refused("incomplete_answer", "ResolveCustomer named no CustomerAWSAccountId")
        if answer.get("ProductCode") != self.listing.product_code:
            raise TokenRejected("wrong_product",
                                f"the token is for product {answer.get('ProductCode')!r}, not "
                                f"this listing's {self.listing.product_code!r}")
        return Buyer(vendor=VENDOR, account_id=account, product_code=answer["ProductCode"],
                     customer_id=answer.get("CustomerIdentifier"),
                     license_ref=answer.get("LicenseArn"))

    def entitlement(self, buyer: Buyer) -> Entitlement:
        if buyer.license_ref:
            filters = {"LICENSE_ARN": [buyer.license_ref]}
        elif self.listing.legacy_identifiers and buyer.customer_id:
            filters = {"CUSTOMER_IDENTIFIER": [buyer.customer_id]}
        else:
            filters = {"CUSTOMER_AWS_ACCOUNT_ID": [buyer.account_id]}
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {"ProductCode": buyer.product_code, "Filter": filters,
                                   "MaxResults": 25}
        try:
            for _ in range(MAX_ENTITLEMENT_PAGES):
                answer = self.entitlements.get_entitlements(**request)
                found += answer.get("Entitlements", [])
                # An empty page may still carry a token: keep paging until there is none.
                if not answer.get("NextToken"):
                    break
                request["NextToken"] = answer["NextToken"]
            else:
                raise Transient("too_many_pages",
                                f"GetEntitlements went on for {MAX_ENTITLEMENT_PAGES} pages")
        except ClientError as error:
            raise _call_failed(error) from None
        except BotoCoreError as error:
            raise Transient("network", str(error)) from None
        now = self.clock.now()
        current = [e for e in found if e.get("ExpirationDate") is None
                   or _utc(e["ExpirationDate"]) > now]
        dates = [_utc(e["ExpirationDate"]) for e in current if e.get("ExpirationDate")]
        expires = max(dates) if dates and len(dates) == len(current) else None
        return Entitlement(active=bool(current), expires_at=expires,
                           dimensions=tuple(sorted({e["Dimension"] for e in current
                                                    if e.get("Dimension")})))

    # --- usage ------------------------------------------------------------------

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        if not reports:
            return []
        if len(reports) > self.limits.batch_size:
            raise ValueError(f"at most {self.limits.batch_size} reports in one call")
        if any(r.buyer.product_code != self.listing.product_code for r in reports):
            raise ValueError("every report of a call is for this listing's product")
        records = [self._record(r) for r in reports]
        request: dict[str, Any] = {"UsageRecords": records}
        if self.listing.legacy_identifiers or any("LicenseArn" not in r for r in records):
            request["ProductCode"] = self.listing.product_code
        try:
            answer = self.metering.batch_meter_usage(**request)
        except ClientError as error:
            raise _call_failed(error) from None
        except BotoCoreError as error:
            raise Transient("network", str(error)) from None
        waiting: dict[tuple[str, str, datetime], deque[int]] = defaultdict(deque)
        for index, record in enumerate(records):
            waiting[_record_key(record)].append(index)
        results: list[ReportResult | None] = [None] * len(reports)

        def place(echo: Mapping[str, Any], status: ReportStatus, record_id: str | None = None,
                  reason: str | None = None) -> None:
            queue = waiting.get(_record_key(echo))
            if queue:
                index = queue.popleft()
                results[index] = ReportResult(reports[index].key, status, record_id, reason)

        for item in answer.get("Results", []):
            status = {"Success": ReportStatus.ACCEPTED,
                      "DuplicateRecord": ReportStatus.DUPLICATE,
                      "CustomerNotSubscribed": ReportStatus.REFUSED}.get(item.get("Status", ""),
                                                                         ReportStatus.UNPROCESSED)
            place(item.get("UsageRecord", {}), status,
                  item.get("MeteringRecordId") if status == ReportStatus.ACCEPTED else None,
                  None if status == ReportStatus.ACCEPTED else item.get("Status"))
        for echo in answer.get("UnprocessedRecords", []):
            place(echo, ReportStatus.UNPROCESSED, reason="UnprocessedRecords")
        # A report AWS did not answer at all is sent again, like an unprocessed one.
        return [result or ReportResult(report.key, ReportStatus.UNPROCESSED,
                                       reason="not answered")
                for report, result in zip(reports, results, strict=True)]

    def _record(self, report: UsageReport) -> dict[str, Any]:
        if not self.limits.min_quantity <= report.quantity <= self.limits.max_quantity:
            raise ValueError(f"quantity {report.quantity} is out of AWS's range")
        record: dict[str, Any] = {"Timestamp": report.period_start.astimezone(UTC),
                                  "Dimension": report.dimension,
                                  "QuantityAsDecimal": str(report.quantity)}
        if self.listing.legacy_identifiers and report.buyer.customer_id:
            record["CustomerIdentifier"] = report.buyer.customer_id
        else:
            record["CustomerAWSAccountId"] = report.buyer.account_id
        if report.buyer.license_ref and not self.listing.legacy_identifiers:
            record["LicenseArn"] = report.buyer.license_ref
        return record

    # --- notifications ----------------------------------------------------------

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Notification:
        """A signed marketplace notification; a signed subscription confirmation is
        confirmed here (:class:`Acknowledged`): SNS delivers nothing to an endpoint that
        has not confirmed its subscription to the listing's topics."""
        envelope = _envelope(headers, body)
        sent_at = self._verify_envelope(envelope, now)
        if envelope["Type"] == SUBSCRIBE:
            self._confirm(envelope)
        if envelope["Type"] == UNSUBSCRIBE:
            raise Acknowledged("unsubscribe_confirmed",
                               f"the subscription to {envelope['TopicArn']} was removed; "
                               "subscribe the endpoint again to receive its notifications",
                               message_id=envelope["MessageId"])
        message = envelope["Message"]
        if isinstance(message, str):
            try:
                message = json.loads(message)
            except ValueError:
                raise NotificationRejected("malformed", "Message is not JSON") from None
        if not isinstance(message, dict):
            raise NotificationRejected("malformed", "Message is not a JSON object")
        try:
            action = NotificationAction(str(message.get("action")))
        except ValueError:
            raise NotificationRejected("unknown_action",
                                       f"action {message.get('action')!r} is unknown") from None
        customer, product = message.get("customer-identifier"), message.get("product-code")
        account = message.get("customer-aws-account-id")
        if not (isinstance(customer, str) and customer and len(customer) <= 255):
            raise NotificationRejected("malformed", "customer-identifier is missing")
        if product != self.listing.product_code:
            raise NotificationRejected("malformed", f"product-code {product!r} is not this "
                                                    "listing's")
        if account is not None and not (isinstance(account, str) and account.isdigit()
                                        and len(account) <= 255):
            raise NotificationRejected("malformed", "customer-aws-account-id is not an account")
        return Notification(message_id=envelope["MessageId"], vendor=VENDOR, action=action,
                            customer=customer, product_code=product, sent_at=sent_at,
                            account_id=account)

    def _verify_envelope(self, envelope: Mapping[str, Any], now: datetime) -> datetime:
        """Topic, certificate, signature and age of any SNS message: when it was sent."""
        if envelope["TopicArn"] not in self.listing.topics():
            raise NotificationRejected("unknown_topic",
                                       f"topic {envelope['TopicArn']!r} is not this listing's")
        version = envelope["SignatureVersion"]
        if version not in ("1", "2"):
            raise NotificationRejected("malformed", f"SignatureVersion {version!r} is unknown")
        key = self._certificate(envelope["SigningCertURL"], now)
        try:
            signature = base64.b64decode(envelope["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise NotificationRejected("bad_signature", "the signature is not base64") from None
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        try:
            key.verify(signature, _string_to_sign(envelope), padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise NotificationRejected("bad_signature",
                                       "the signature does not match the message") from None
        sent_at = _parse_time(envelope["Timestamp"])
        if sent_at < now - self.listing.notification_tolerance:
            raise NotificationRejected("stale", f"sent at {sent_at.isoformat()}, older than "
                                                f"{self.listing.notification_tolerance}")
        if sent_at > now + FUTURE_SKEW:
            raise NotificationRejected("stale", f"sent at {sent_at.isoformat()}, in the future")
        return sent_at

    def _confirm(self, envelope: Mapping[str, Any]) -> None:
        """Visit the SubscribeURL of a verified confirmation, once it is proven to be SNS's
        ConfirmSubscription for that very topic and token (never any other address)."""
        url = envelope["SubscribeURL"]
        if not _confirmation_url(url, self.listing.cert_prefixes(), envelope["TopicArn"],
                                 envelope["Token"]):
            raise NotificationRejected("untrusted_subscribe_url",
                                       "SubscribeURL is not SNS's ConfirmSubscription for "
                                       "this topic and token")
        try:
            response = self.http.get(url)
        except httpx.HTTPError as error:
            raise Transient("confirmation_failed", f"ConfirmSubscription: {error}") from None
        if response.status_code != 200:
            raise Transient("confirmation_failed",
                            f"ConfirmSubscription answered {response.status_code}")
        raise Acknowledged("subscription_confirmed",
                           f"subscribed to {envelope['TopicArn']}",
                           message_id=envelope["MessageId"])

    def _certificate(self, url: str, now: datetime) -> rsa.RSAPublicKey:
        if not _trusted(url, self.listing.cert_prefixes()):
            raise NotificationRejected("untrusted_certificate",
                                       f"SigningCertURL {url!r} is not a trusted place")
        with self._certs.lock:
            cached = self._certs.keys.get(url)
        if cached is None:
            try:
                response = self.http.get(url)
            except httpx.HTTPError as error:
                raise Transient("certificate_unavailable", str(error)) from None
            if response.status_code != 200 or len(response.content) > MAX_CERT_BYTES:
                raise Transient("certificate_unavailable",
                                f"{url} answered {response.status_code}")
            try:
                cert = x509.load_pem_x509_certificate(response.content)
            except ValueError:
                raise NotificationRejected("untrusted_certificate",
                                           f"{url} is not a PEM certificate") from None
            key = cert.public_key()
            if not isinstance(key, rsa.RSAPublicKey):
                raise NotificationRejected("untrusted_certificate", "the key is not RSA")
            cached = (key, cert.not_valid_before_utc, cert.not_valid_after_utc)
            with self._certs.lock:
                if len(self._certs.keys) >= MAX_CACHED_CERTS:
                    self._certs.keys.clear()
                self._certs.keys[url] = cached
        key, valid_from, valid_to = cached
        if not valid_from <= now <= valid_to:
            raise NotificationRejected("untrusted_certificate",
                                       "the signing certificate is not valid now")
        return key


def _envelope(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    if len(body) > MAX_NOTIFICATION_BYTES:
        raise NotificationRejected("malformed", f"more than {MAX_NOTIFICATION_BYTES} bytes")
    try:
        envelope = json.loads(body)
    except ValueError:
        raise NotificationRejected("malformed", "the body is not JSON") from None
    if not isinstance(envelope, dict):
        raise NotificationRejected("malformed", "the body is not a JSON object")
    for name in _ENVELOPE_FIELDS:
        value = envelope.get(name)
        if not (isinstance(value, str) or (name == "Message" and isinstance(value, dict))):
            raise NotificationRejected("malformed", f"{name} is missing")
    if "Subject" in envelope and not isinstance(envelope["Subject"], str):
        raise NotificationRejected("malformed", "Subject is not a string")
    if envelope["Type"] not in (NOTIFICATION, SUBSCRIBE, UNSUBSCRIBE):
        raise NotificationRejected("malformed", f"Type {envelope['Type']!r} is not an SNS "
                                                "message type")
    if envelope["Type"] != NOTIFICATION:
        for name in ("SubscribeURL", "Token"):
            value = envelope.get(name)
            if not isinstance(value, str) or not 1 <= len(value) <= MAX_CONFIRM_URL:
                raise NotificationRejected("malformed", f"{name} is missing")
    declared = {k.lower(): v for k, v in headers.items()}.get("x-amz-sns-message-type")
    if declared is not None and declared != envelope["Type"]:
        raise NotificationRejected("malformed", "x-amz-sns-message-type differs from Type")
    return envelope


def _string_to_sign(envelope: Mapping[str, Any]) -> bytes:
    def text(name: str) -> str:
        value = envelope[name]
        # A Message delivered as an object is signed as the compact JSON it was sent as.
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    fields = _SIGNED_FIELDS if envelope["Type"] == NOTIFICATION else _CONFIRMATION_FIELDS
    return "".join(f"{name}\n{text(name)}\n" for name in fields if name in envelope).encode()


def _confirmation_url(url: str, prefixes: Sequence[str], topic: str, token: str) -> bool:
    """Whether ``url`` is ConfirmSubscription of ``topic`` with ``token`` on a trusted SNS
    host (the one its certificates come from), and nothing else."""
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return False
    if parts.username or parts.password or parts.fragment or "\\" in url:
        return False
    wanted = {"Action": ["ConfirmSubscription"], "TopicArn": [topic], "Token": [token]}
    if query != wanted:
        return False
    for prefix in prefixes:
        trusted = urlsplit(prefix)
        if (parts.scheme == trusted.scheme and parts.netloc.lower() == trusted.netloc.lower()
                and parts.path.startswith(trusted.path or "/") and "/../" not in parts.path):
            return True
    return False


def _trusted(url: str, prefixes: Sequence[str]) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.username or parts.password or parts.query or parts.fragment:
        return False
    if not parts.path.endswith(".pem") or "/../" in parts.path or "\\" in url:
        return False
    for prefix in prefixes:
        trusted = urlsplit(prefix)
        if (parts.scheme == trusted.scheme and parts.netloc.lower() == trusted.netloc.lower()
                and parts.path.startswith(trusted.path or "/")):
            return True
    return False


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise NotificationRejected("malformed", f"Timestamp {value!r} is not a time") from None
    if parsed.tzinfo is None:
        raise NotificationRejected("malformed", "Timestamp has no time zone")
    return parsed.astimezone(UTC)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _record_key(record: Mapping[str, Any]) -> tuple[str, str, datetime]:
    customer = record.get("CustomerAWSAccountId") or record.get("CustomerIdentifier") or ""
    when = record.get("Timestamp")
    return (str(customer), str(record.get("Dimension", "")),
            when.astimezone(UTC) if isinstance(when, datetime) else datetime.min.replace(tzinfo=UTC))


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or _error_code(error)


def _call_failed(error: ClientError) -> Exception:
    """A whole call AWS answered with an error: Transient or Refused."""
    code = _error_code(error)
    if code == "ThrottlingException":
        return Transient("throttled", _message(error), throttled=True)
    if code in _TRANSIENT:
        return Transient("internal_error" if code == "InternalServiceErrorException"
                         else "disabled_api", _message(error))
    if code in _REFUSALS:
        return Refused(_REFUSALS[code], _message(error))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if status >= 500 or status == 0:
        return Transient("vendor_error", f"{code}: {_message(error)}")
    return Refused("vendor_refused", f"{code}: {_message(error)}")
