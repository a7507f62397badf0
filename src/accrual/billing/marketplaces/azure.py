"""The Azure Marketplace adapter: SaaS Fulfillment API v2, metered billing and the
webhook (marketplaces.md §4). Settles USD billing centers only (decisions.md 14).

Tokens come from Microsoft Entra by the OAuth2 client-credentials grant, a plain form
POST to ``<login>/<tenant>/oauth2/v2.0/token`` with
``scope=20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default``. Microsoft's own ``msal``
is not used: it accepts only https authorities and first asks
``login.microsoftonline.com`` to discover the instance, so it cannot talk to the local
emulator without network; the grant itself is four form fields. A token is kept until
five minutes before it expires, by the injected clock.

* :meth:`AzureMarketplace.resolve_buyer` is Resolve (the landing page's token).
* :meth:`AzureMarketplace.activate` is Activate, answered the same however often it is
  repeated: a second call finds the subscription active on that plan and succeeds.
* :meth:`AzureMarketplace.entitlement` is Get subscription: active while waiting for
  its Activate or Subscribed; its dimensions only once Subscribed (the only state the
  marketplace takes usage in).
* :meth:`AzureMarketplace.report` is one ``batchUsageEvent`` call (≤ 25 events).
* :meth:`AzureMarketplace.reconcile` is ``GET usageEvents``.
* :func:`AzureMarketplace.verify_webhook` checks a webhook call's bearer JWT against the
  tenant's published keys (issuer, audience = our app, the marketplace as caller,
  expiry, RS256 signature) and returns an :class:`AzureEvent`;
  :meth:`AzureMarketplace.verify_notification` is the same as a ``Notification``.

How a buyer is named (:class:`Buyer`): ``account_id`` is the SaaS subscription id (the
``resourceId`` usage is reported against), ``product_code`` the offer id,
``customer_id`` the beneficiary's Entra tenant, ``license_ref`` the plan id, which
every usage event must carry; after a ChangePlan the caller stores the new plan.

Quantities are exact: a ``Decimal`` (or int) goes on the wire as its own number
literal, never through a float; at most 15 significant digits, which a double holds
exactly as written. No call is retried here: the charge reporter owns retries.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from accrual.billing.domain.marketplace import (
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

VENDOR = "azure"
API_VERSION = "2018-08-31"
MARKETPLACE_RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
MAX_TOKEN_CHARS = 4096
MAX_WEBHOOK_BYTES = 64 * 1024
MAX_JWT_CHARS = 16 * 1024
MAX_ANSWER_BYTES = 4 * 1024 * 1024
MAX_RECONCILE_ROWS = 100_000
MAX_DIGITS = 15  # significant digits a double holds exactly as written
TOKEN_MARGIN = timedelta(minutes=5)  # refresh an access token this long before it expires
KEYS_REFRESH = timedelta(minutes=5)  # an unknown key id refetches the keys at most this often
_REFUSED_STATUSES = {"Expired", "ResourceNotFound", "ResourceNotAuthorized", "ResourceNotActive",
                     "InvalidDimension", "InvalidQuantity", "BadArgument"}


class EventKind(StrEnum):
    """What a webhook call says happened, in the vendor-neutral words."""

    UPGRADE = "upgrade"  # ChangePlan
    CHANGE_QUANTITY = "change_quantity"  # ChangeQuantity (seats)
    RENEW = "renew"
    FREEZE = "freeze"  # Suspend: payment failed, 30 days of grace
    UNFREEZE = "unfreeze"  # Reinstate
    CANCEL = "cancel"  # Unsubscribe


_KINDS = {"ChangePlan": EventKind.UPGRADE, "ChangeQuantity": EventKind.CHANGE_QUANTITY,
          "Renew": EventKind.RENEW, "Suspend": EventKind.FREEZE,
          "Reinstate": EventKind.UNFREEZE, "Unsubscribe": EventKind.CANCEL}
_ACKABLE = {"ChangePlan", "ChangeQuantity", "Reinstate"}


@dataclass(frozen=True)
class AzureEvent:
    """A verified webhook call. Act on it only once :meth:`AzureMarketplace.operation`
    confirms it (the docs' rule); ``needs_answer``: PATCH the operation with
    :meth:`AzureMarketplace.acknowledge` (within 10 s, or it succeeds by itself)."""

    vendor: str
    kind: EventKind
    instance_id: str  # the SaaS subscription id (Buyer.account_id)
    order_id: str  # the operation id
    account_id: str | None  # the beneficiary's Entra tenant, when the payload names it
    product_code: str  # the offer id
    action: str  # Azure's own name
    plan_id: str
    quantity: int | None
    status: str  # InProgress for one awaiting our answer, else Succeeded/Failed/...
    source: str  # "Azure" (the customer or Microsoft) or "Partner" (us)
    sent_at: datetime  # the operation's timeStamp
    needs_answer: bool
    activity_id: str | None = None


@dataclass(frozen=True)
class AzureSubscription:
    id: str
    offer_id: str
    plan_id: str
    quantity: int | None
    status: str  # PendingFulfillmentStart | Subscribed | Suspended | Unsubscribed
    tenant_id: str | None  # the beneficiary's
    term_end: datetime | None
    auto_renew: bool
    raw: Mapping[str, Any] = field(compare=False, repr=False, default_factory=dict)


@dataclass(frozen=True)
class AzureOperation:
    id: str
    subscription_id: str
    action: str
    status: str  # NotStarted | InProgress | Succeeded | Failed | Conflict
    plan_id: str | None
    quantity: int | None


@dataclass(frozen=True)
class OperationRef:
    """A 202's ``Operation-Location`` and ``Operation-Id``: poll it until it is final."""

    operation_id: str
    location: str


@dataclass(frozen=True)
class UsageRecord:
    """One row of ``GET usageEvents``."""

    usage_date: datetime
    resource_id: str
    dimension: str
    plan_id: str
    recon_status: str
    submitted_quantity: Decimal
    processed_quantity: Decimal | None
    azure_subscription_id: str | None
    usage_event_id: str | None


@dataclass(frozen=True)
class AzureListing:
    """One Azure Marketplace SaaS offer as the (USD) billing center sells it."""

    tenant_id: str  # the publisher's Entra tenant, entered on the offer
    client_id: str  # the app id entered on the offer; the webhook token's audience
    client_secret: str
    offer_id: str
    publisher_id: str | None = None  # checked on webhooks when set
    api_url: str = "https://marketplaceapi.microsoft.com"
    login_url: str = "https://login.microsoftonline.com"
    dimension: str = "usage_minor"  # the money dimension (decisions.md 23)
    unit_minor: int = 1  # one unit = 0.01 USD
    lateness: timedelta = timedelta(hours=24)
    clock_skew: timedelta = timedelta(minutes=5)  # allowed on webhook tokens' times
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0


@dataclass
class _Keys:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_kid: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)
    fetched_at: datetime | None = None


class AzureMarketplace:
    vendor = VENDOR

    def __init__(self, listing: AzureListing, clock: Clock, *,
                 http: httpx.Client | None = None) -> None:
        self.listing = listing
        self.clock = clock
        self.dimension = listing.dimension
        self.unit_minor = listing.unit_minor
        self.limits = ReportLimits(batch_size=25, max_request_bytes=1024 * 1024,
                                   period=timedelta(hours=1), lateness=listing.lateness,
                                   min_quantity=1, max_quantity=10**MAX_DIGITS - 1)
        self._owns_http = http is None
        self.http = http or httpx.Client(
            timeout=httpx.Timeout(listing.read_timeout_s, connect=listing.connect_timeout_s),
            follow_redirects=False)
        self._token_lock = threading.Lock()
        self._token: tuple[str, datetime] | None = None
        self._keys = _Keys()

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    # --- Entra ------------------------------------------------------------------

    def access_token(self) -> str:
        """A bearer token for the marketplace API, fetched when none is fresh."""
        with self._token_lock:
            now = self.clock.now()
            if self._token is not None and now < self._token[1] - TOKEN_MARGIN:
                return self._token[0]
            listing = self.listing
            url = f"{listing.login_url}/{listing.tenant_id}/oauth2/v2.0/token"
            try:
                response = self.http.post(url, data={
                    "grant_type": "client_credentials", "client_id": listing.client_id,
                    "client_secret": listing.client_secret,
                    "scope": f"{MARKETPLACE_RESOURCE}/.default"})
            except httpx.HTTPError as error:
                raise Transient("network", f"token endpoint: {error}") from None
            answer = _json(response)
            if response.status_code != 200 or not isinstance(answer, dict) or not isinstance(
                    answer.get("access_token"), str):
                described = answer.get("error_description") if isinstance(answer, dict) else None
                # A wrong secret or app is the operator's to fix; charges wait meanwhile.
                raise Transient("token_refused", f"Entra answered {response.status_code}: "
                                                 f"{described or response.text[:200]}")
            lifetime = answer.get("expires_in")
            seconds = int(lifetime) if isinstance(lifetime, int | str) and str(
                lifetime).isdigit() else 3600
            self._token = (answer["access_token"], now + timedelta(seconds=seconds))
            return self._token[0]

    def _call(self, method: str, path: str, *, body: bytes | None = None,
              params: Mapping[str, str] | None = None,
              headers: Mapping[str, str] | None = None) -> httpx.Response:
        token = self.access_token()
        sent = {"authorization": f"Bearer {token}", "content-type": "application/json",
                "x-ms-requestid": str(uuid.uuid4()), "x-ms-correlationid": str(uuid.uuid4()),
                **(headers or {})}
        try:
            response = self.http.request(method, self.listing.api_url + path, content=body,
                                         params={**(params or {}), "api-version": API_VERSION},
                                         headers=sent)
        except httpx.HTTPError as error:
            raise Transient("network", str(error)) from None
        if response.status_code in (401, 403):
            with self._token_lock:
                self._token = None  # a revoked or rotated secret: fetch anew next time
        return response

    # --- subscriptions ------------------------------------------------------------

    def resolve(self, token: str) -> AzureSubscription:
        """The subscription a landing-page token names. Give the ``token`` query value
        decoded; a still percent-encoded one is decoded here, and spaces (a ``+`` that
        a form decoder turned into one) are put back, base64 having no spaces."""
        token = token.strip("\t\r\n")
        if "%" in token:
            token = unquote(token)
        token = token.replace(" ", "+")
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected("invalid_token",
                                f"a marketplace token has 1 to {MAX_TOKEN_CHARS} characters")
        response = self._call("POST", "/api/saas/subscriptions/resolve",
                              headers={"x-ms-marketplace-token": token})
        if response.status_code == 400:
            raise TokenRejected("invalid_token", _message(response))
        answer = self._answer(response)
        sub = answer.get("subscription") if isinstance(answer, dict) else None
        if not isinstance(sub, dict) or not isinstance(answer.get("id"), str):
            raise Refused("incomplete_answer", "Resolve named no subscription")
        if answer.get("offerId") != self.listing.offer_id:
            raise TokenRejected("wrong_product", f"the token is for offer "
                                                 f"{answer.get('offerId')!r}, not this "
                                                 f"listing's {self.listing.offer_id!r}")
        return _subscription(sub | {"id": answer["id"]})

    def resolve_buyer(self, token: str) -> Buyer:
        sub = self.resolve(token)
        return Buyer(vendor=VENDOR, account_id=sub.id, product_code=sub.offer_id,
                     customer_id=sub.tenant_id, license_ref=sub.plan_id)

    def subscription(self, subscription_id: str) -> AzureSubscription | None:
        """The subscription as the marketplace holds it; None when it knows none."""
        response = self._call("GET", f"/api/saas/subscriptions/{_segment(subscription_id)}")
        if response.status_code == 404:
            return None
        answer = self._answer(response)
        if not isinstance(answer, dict):
            raise Refused("incomplete_answer", "Get subscription answered no object")
        return _subscription(answer)

    def entitlement(self, buyer: Buyer) -> Entitlement:
        sub = self.subscription(buyer.account_id)
        if sub is None:
            return Entitlement(active=False, expires_at=None)
        # A purchase waiting for its Activate is in force: the buyer lands with it and
        # activating it is ours to do. Usage is taken only once Subscribed (dimensions).
        return Entitlement(active=sub.status in ("PendingFulfillmentStart", "Subscribed"),
                           expires_at=None if sub.auto_renew else sub.term_end,
                           dimensions=(self.dimension,) if sub.status == "Subscribed" else ())

    def activate(self, subscription_id: str, plan_id: str, quantity: int | None = None) -> bool:
        """Activate (billing starts). True when this call activated it, False when it was
        active on this plan already (a repeated call). :class:`Refused` otherwise."""
        body: dict[str, Any] = {"planId": plan_id}
        if quantity is not None:
            body["quantity"] = quantity
        response = self._call("POST",
                              f"/api/saas/subscriptions/{_segment(subscription_id)}/activate",
                              body=_dumps(body))
        if response.status_code == 200:
            return True
        if response.status_code == 400:
            sub = self.subscription(subscription_id)
            if sub is not None and sub.status in ("Subscribed", "Suspended") and (
                    sub.plan_id == plan_id and (quantity is None or sub.quantity == quantity)):
                return False
            raise Refused("activation_refused", _message(response))
        if response.status_code == 404:
            raise Refused("unsubscribed", _message(response))
        raise _failed(response)

    def change_plan(self, subscription_id: str, plan_id: str) -> OperationRef:
        return self._operation_started("PATCH", subscription_id, {"planId": plan_id})

    def change_quantity(self, subscription_id: str, quantity: int) -> OperationRef:
        return self._operation_started("PATCH", subscription_id, {"quantity": quantity})

    def cancel(self, subscription_id: str) -> OperationRef:
        return self._operation_started("DELETE", subscription_id, None)

    def operation(self, subscription_id: str, operation_id: str) -> AzureOperation | None:
        """Get operation: what confirms a webhook call before acting on it."""
        response = self._call("GET", f"/api/saas/subscriptions/{_segment(subscription_id)}"
                                     f"/operations/{_segment(operation_id)}")
        if response.status_code == 404:
            return None
        answer = self._answer(response)
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            raise Refused("incomplete_answer", "Get operation answered no operation")
        return AzureOperation(id=answer["id"], subscription_id=str(answer.get("subscriptionId")),
                              action=str(answer.get("action")), status=str(answer.get("status")),
                              plan_id=answer.get("planId"), quantity=_int(answer.get("quantity")))

    def acknowledge(self, subscription_id: str, operation_id: str, *, success: bool) -> None:
        """Answer a marketplace change: Success applies it, Failure keeps things as they
        were. :class:`Refused` ``already_decided`` when it was decided meanwhile (409)."""
        response = self._call(
            "PATCH", f"/api/saas/subscriptions/{_segment(subscription_id)}/operations/"
                     f"{_segment(operation_id)}",
            body=_dumps({"status": "Success" if success else "Failure"}))
        if response.status_code == 409:
            raise Refused("already_decided", _message(response))
        self._answer(response)

    def _operation_started(self, method: str, subscription_id: str,
                           body: dict[str, Any] | None) -> OperationRef:
        response = self._call(method, f"/api/saas/subscriptions/{_segment(subscription_id)}",
                              body=None if body is None else _dumps(body))
        if response.status_code != 202:
            raise _failed(response)
        location = response.headers.get("operation-location", "")
        operation_id = response.headers.get("operation-id") or location.split("?")[0].rsplit(
            "/", 1)[-1]
        if not operation_id:
            raise Refused("incomplete_answer", "202 without Operation-Location")
        return OperationRef(operation_id, location)

    # --- usage ------------------------------------------------------------------

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        if not reports:
            return []
        if len(reports) > self.limits.batch_size:
            raise ValueError(f"at most {self.limits.batch_size} reports in one call")
        events = [self._event(r) for r in reports]
        body = _dumps({"request": events})
        if len(body) > self.limits.max_request_bytes:
            raise ValueError("the batch is larger than a request may be")
        response = self._call("POST", "/api/batchUsageEvent", body=body)
        if response.status_code != 200:
            raise _failed(response)
        answer = _json(response)
        items = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise Transient("incomplete_answer", "batchUsageEvent answered no result list")
        waiting: dict[tuple[str, str, datetime], deque[int]] = defaultdict(deque)
        for index, event in enumerate(events):
            waiting[_event_key(event)].append(index)
        results: list[ReportResult | None] = [None] * len(reports)
        for item in items:
            if not isinstance(item, dict):
                continue
            queue = waiting.get(_event_key(item))
            if queue:
                index = queue.popleft()
                results[index] = _result(reports[index].key, events[index], item)
        # An event the answer did not mention is sent again, like an unprocessed one.
        return [result or ReportResult(report.key, ReportStatus.UNPROCESSED,
                                       reason="not answered")
                for report, result in zip(reports, results, strict=True)]

    def _event(self, report: UsageReport) -> dict[str, Any]:
        buyer = report.buyer
        if buyer.product_code != self.listing.offer_id:
            raise ValueError("every report of a call is for this listing's offer")
        if not buyer.license_ref:
            raise ValueError("an Azure buyer carries its plan id (license_ref)")
        if report.period_start.tzinfo is None:
            raise ValueError("period_start must be timezone-aware")
        return {"resourceId": buyer.account_id, "quantity": exact_quantity(report.quantity),
                "dimension": report.dimension,
                "effectiveStartTime": _iso(report.period_start), "planId": buyer.license_ref}

    def reconcile(self, start: datetime, end: datetime | None = None, *,
                  dimension: str | None = None, recon_status: str | None = None
                  ) -> list[UsageRecord]:
        """What the marketplace holds of this offer's usage from ``start`` to ``end``."""
        params = {"usageStartDate": _iso(start), "offerId": self.listing.offer_id}
        if end is not None:
            params["usageEndDate"] = _iso(end)
        if dimension is not None:
            params["dimension"] = dimension
        if recon_status is not None:
            params["reconStatus"] = recon_status
        answer = self._answer(self._call("GET", "/api/usageEvents", params=params))
        rows = answer.get("value") if isinstance(answer, dict) else answer
        if not isinstance(rows, list) or len(rows) > MAX_RECONCILE_ROWS:
            raise Transient("incomplete_answer", "usageEvents answered no list of rows")
        records = []
        for row in rows:
            try:
                records.append(UsageRecord(
                    usage_date=_time(row["usageDate"]), resource_id=str(row["usageResourceId"]),
                    dimension=str(row["dimension"]), plan_id=str(row["planId"]),
                    recon_status=str(row["reconStatus"]),
                    submitted_quantity=_decimal(row["submittedQuantity"]),
                    processed_quantity=None if row.get("processedQuantity") is None
                    else _decimal(row["processedQuantity"]),
                    azure_subscription_id=row.get("azureSubscriptionId"),
                    usage_event_id=row.get("usageEventId")))
            except (KeyError, TypeError, ValueError):
                raise Transient("incomplete_answer", f"usageEvents row {row!r} is not "
                                                     "readable") from None
        return records

    # --- webhook ----------------------------------------------------------------

    def verify_webhook(self, method: str, headers: Mapping[str, str], body: bytes,
                       now: datetime) -> AzureEvent:
        """The event a webhook call carries, once its bearer JWT proves it the
        marketplace's; :class:`NotificationRejected` otherwise, :class:`Transient` when
        the signing keys cannot be fetched (answer 5xx so Microsoft calls again)."""
        if method.upper() != "POST":
            raise NotificationRejected("malformed", f"a webhook call is a POST, not {method}")
        if len(body) > MAX_WEBHOOK_BYTES:
            raise NotificationRejected("malformed", f"more than {MAX_WEBHOOK_BYTES} bytes")
        lowered = {k.lower(): v for k, v in headers.items()}
        scheme, _, token = lowered.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotificationRejected("unauthenticated", "no bearer token")
        self._check_token(token.strip(), now)
        try:
            payload = json.loads(body)
        except ValueError:
            raise NotificationRejected("malformed", "the body is not JSON") from None
        if not isinstance(payload, dict):
            raise NotificationRejected("malformed", "the body is not a JSON object")
        return self._event_of(payload)

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Notification:
        """The Protocol's view of :meth:`verify_webhook`: Unsubscribe is
        ``unsubscribe-success``; every other action changes what the buyer holds
        (``entitlement-updated``: ask :meth:`entitlement` again)."""
        event = self.verify_webhook("POST", headers, body, now)
        action = (NotificationAction.UNSUBSCRIBE_SUCCESS if event.kind is EventKind.CANCEL
                  else NotificationAction.ENTITLEMENT_UPDATED)
        return Notification(message_id=event.order_id, vendor=VENDOR, action=action,
                            customer=event.instance_id, product_code=event.product_code,
                            sent_at=event.sent_at, account_id=event.instance_id)

    def _check_token(self, token: str, now: datetime) -> None:
        if len(token) > MAX_JWT_CHARS or token.count(".") != 2:
            raise NotificationRejected("bad_signature", "the bearer token is not a JWT")
        head, body, signature = token.split(".")
        try:
            header = json.loads(_b64url(head))
            claims = json.loads(_b64url(body))
            raw_signature = _b64url(signature)
        except (ValueError, binascii.Error):
            raise NotificationRejected("bad_signature", "the bearer token is not a JWT") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise NotificationRejected("bad_signature", "the bearer token is not a JWT")
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise NotificationRejected("bad_signature", f"algorithm {header.get('alg')!r} "
                                                        "is not RS256 with a key id")
        key = self._key(header["kid"], now)
        try:
            key.verify(raw_signature, f"{head}.{body}".encode(), padding.PKCS1v15(),
                       hashes.SHA256())
        except InvalidSignature:
            raise NotificationRejected("bad_signature", "the token's signature does not "
                                                        "match") from None
        listing = self.listing
        tenant = listing.tenant_id
        if claims.get("iss") not in (f"{listing.login_url}/{tenant}/v2.0",
                                     f"https://sts.windows.net/{tenant}/"):
            raise NotificationRejected("wrong_issuer", f"issuer {claims.get('iss')!r} is not "
                                                       "our tenant's")
        if claims.get("aud") not in (listing.client_id, f"api://{listing.client_id}"):
            raise NotificationRejected("wrong_audience", "the token is not for our app")
        if claims.get("tid") != tenant:
            raise NotificationRejected("wrong_issuer", "the token is not of our tenant")
        if MARKETPLACE_RESOURCE not in (claims.get("azp"), claims.get("appid")):
            raise NotificationRejected("wrong_caller", "the token was not issued to the "
                                                       "marketplace")
        stamp, skew = now.timestamp(), listing.clock_skew.total_seconds()
        expires, not_before = claims.get("exp"), claims.get("nbf")
        if not isinstance(expires, int | float) or expires + skew <= stamp:
            raise NotificationRejected("stale", "the token has expired")
        if isinstance(not_before, int | float) and not_before - skew > stamp:
            raise NotificationRejected("stale", "the token is not valid yet")

    def _key(self, kid: str, now: datetime) -> rsa.RSAPublicKey:
        with self._keys.lock:
            key = self._keys.by_kid.get(kid)
            recent = (self._keys.fetched_at is not None
                      and now - self._keys.fetched_at < KEYS_REFRESH)
        if key is not None:
            return key
        if recent:
            raise NotificationRejected("bad_signature", f"key {kid!r} is not one of the "
                                                        "tenant's signing keys")
        keys = self._fetch_keys()
        with self._keys.lock:
            self._keys.by_kid, self._keys.fetched_at = keys, now
        if kid not in keys:
            raise NotificationRejected("bad_signature", f"key {kid!r} is not one of the "
                                                        "tenant's signing keys")
        return keys[kid]

    def _fetch_keys(self) -> dict[str, rsa.RSAPublicKey]:
        login = self.listing.login_url
        discovery = f"{login}/{self.listing.tenant_id}/v2.0/.well-known/openid-configuration"
        try:
            config = _json(self.http.get(discovery))
            jwks_uri = config.get("jwks_uri") if isinstance(config, dict) else None
            # Keys come only from the login host we trust, whatever the document says.
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(login + "/"):
                raise Transient("keys_unavailable", "the OpenID configuration names no "
                                                    "trusted jwks_uri")
            document = _json(self.http.get(jwks_uri))
        except httpx.HTTPError as error:
            raise Transient("keys_unavailable", str(error)) from None
        found: dict[str, rsa.RSAPublicKey] = {}
        for item in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(item, dict) or item.get("kty") != "RSA" or not isinstance(
                    item.get("kid"), str):
                continue
            try:
                numbers = rsa.RSAPublicNumbers(int.from_bytes(_b64url(item["e"]), "big"),
                                               int.from_bytes(_b64url(item["n"]), "big"))
                found[item["kid"]] = numbers.public_key()
            except (KeyError, TypeError, ValueError, binascii.Error):
                continue
        return found

    def _event_of(self, payload: Mapping[str, Any]) -> AzureEvent:
        action = payload.get("action")
        if action not in _KINDS:
            raise NotificationRejected("unknown_action", f"action {action!r} is unknown")
        for name in ("id", "subscriptionId", "offerId", "planId", "status", "timeStamp"):
            value = payload.get(name)
            if not isinstance(value, str) or not 1 <= len(value) <= 255:
                raise NotificationRejected("malformed", f"{name} is missing")
        if payload["offerId"] != self.listing.offer_id:
            raise NotificationRejected("wrong_offer", f"offer {payload['offerId']!r} is not "
                                                      "this listing's")
        publisher = self.listing.publisher_id
        if publisher is not None and payload.get("publisherId") != publisher:
            raise NotificationRejected("wrong_offer", "publisherId is not ours")
        try:
            sent_at = _time(payload["timeStamp"])
        except ValueError:
            raise NotificationRejected("malformed", "timeStamp is not a time") from None
        quantity = payload.get("quantity")
        if quantity is not None and _int(quantity) is None:
            raise NotificationRejected("malformed", "quantity is not a whole number")
        sub = payload.get("subscription")
        beneficiary = sub.get("beneficiary") if isinstance(sub, dict) else None
        tenant = beneficiary.get("tenantId") if isinstance(beneficiary, dict) else None
        source = str(payload.get("operationRequestSource") or "Azure")
        activity = payload.get("activityId")
        return AzureEvent(
            vendor=VENDOR, kind=_KINDS[action], instance_id=payload["subscriptionId"],
            order_id=payload["id"], account_id=tenant if isinstance(tenant, str) else None,
            product_code=payload["offerId"], action=action, plan_id=payload["planId"],
            quantity=_int(quantity), status=payload["status"], source=source, sent_at=sent_at,
            needs_answer=action in _ACKABLE and source == "Azure"
            and payload["status"] == "InProgress",
            activity_id=activity if isinstance(activity, str) else None)

    # --- answers ----------------------------------------------------------------

    def _answer(self, response: httpx.Response) -> Any:
        if not 200 <= response.status_code < 300:
            raise _failed(response)
        return _json(response) if response.content else None


def webhook_response(outcome: AzureEvent | Exception) -> tuple[int, bytes]:
    """What the webhook endpoint answers: 200 with an empty body once verified (and
    quickly: act after confirming with Get operation); 401 for a call that is not the
    marketplace's; 503 when the keys could not be fetched, so the marketplace calls
    again. A 4xx to a genuine ChangePlan/ChangeQuantity refuses it: only forged or
    malformed calls get one."""
    if isinstance(outcome, AzureEvent):
        return 200, b""
    if isinstance(outcome, Transient):
        return 503, b""
    if isinstance(outcome, NotificationRejected) and outcome.code in (
            "malformed", "unknown_action", "wrong_offer"):
        return 400, json.dumps({"error": outcome.code}).encode()
    return 401, json.dumps({"error": "unauthorized"}).encode()


def exact_quantity(quantity: int | Decimal) -> Decimal:
    """A usage quantity as the exact number sent: > 0, finite, at most 15 significant
    digits (a double carries those exactly as written)."""
    if isinstance(quantity, bool) or not isinstance(quantity, int | Decimal):
        raise ValueError("a quantity is an int or a Decimal")
    value = Decimal(quantity)
    if not value.is_finite() or value <= 0:
        raise ValueError(f"quantity {quantity} must be a number greater than 0")
    digits = len(value.normalize().as_tuple().digits)
    if digits > MAX_DIGITS or value.adjusted() >= MAX_DIGITS:
        raise ValueError(f"quantity {quantity} has more than {MAX_DIGITS} significant digits")
    return value


def _dumps(value: Any) -> bytes:
    """Compact JSON with each ``Decimal`` written as its exact number literal."""
    def encode(item: Any) -> str:
        if isinstance(item, Decimal):
            return format(item, "f")
        if isinstance(item, dict):
            return "{" + ",".join(f"{json.dumps(str(k))}:{encode(v)}"
                                  for k, v in item.items()) + "}"
        if isinstance(item, list | tuple):
            return "[" + ",".join(encode(v) for v in item) + "]"
        return json.dumps(item)
    return encode(value).encode()


def _json(response: httpx.Response) -> Any:
    if len(response.content) > MAX_ANSWER_BYTES:
        raise Transient("incomplete_answer", "the answer is too large")
    try:
        return json.loads(response.content, parse_float=Decimal) if response.content else None
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    answer = _json(response)
    if isinstance(answer, dict):
        inner = answer.get("error") if isinstance(answer.get("error"), dict) else answer
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return f"HTTP {response.status_code}"


def _failed(response: httpx.Response) -> Exception:
    """A whole call the marketplace did not take: Transient or Refused."""
    status, message = response.status_code, _message(response)
    if status == 429:
        return Transient("throttled", message, throttled=True)
    if status >= 500:
        return Transient("vendor_error", message)
    if status in (401, 403):
        # A token of the wrong app or a revoked secret: the operator's to fix; wait.
        return Transient("forbidden", message)
    if status == 404:
        return Refused("not_found", message)
    if status == 409:
        return Refused("conflict", message)
    return Refused("bad_request", message)


def _result(key: str, sent: Mapping[str, Any], item: Mapping[str, Any]) -> ReportResult:
    status = str(item.get("status"))
    if status == "Accepted":
        return ReportResult(key, ReportStatus.ACCEPTED, _str(item.get("usageEventId")))
    error = _object(item.get("error"))
    if status == "Duplicate":
        original = _object(_object(error.get("additionalInfo")).get("acceptedMessage"))
        held = original.get("quantity")
        if isinstance(held, int | Decimal) and Decimal(held) == sent["quantity"]:
            # Our own earlier send whose answer was lost: it is the accepted one.
            return ReportResult(key, ReportStatus.ACCEPTED, _str(original.get("usageEventId")))
        return ReportResult(key, ReportStatus.DUPLICATE,
                            reason=f"Duplicate: the marketplace holds quantity {held} "
                                   f"(event {original.get('usageEventId')})")
    reason = f"{status}: {error.get('message', '')}".rstrip(": ")
    if status in _REFUSED_STATUSES:
        return ReportResult(key, ReportStatus.REFUSED, reason=reason)
    return ReportResult(key, ReportStatus.UNPROCESSED, reason=reason)


def _event_key(event: Mapping[str, Any]) -> tuple[str, str, datetime]:
    try:
        hour = _time(str(event.get("effectiveStartTime"))).replace(minute=0, second=0,
                                                                   microsecond=0)
    except ValueError:
        hour = datetime.min.replace(tzinfo=UTC)
    return str(event.get("resourceId")), str(event.get("dimension")), hour


def _subscription(sub: Mapping[str, Any]) -> AzureSubscription:
    beneficiary = sub.get("beneficiary")
    term = sub.get("term")
    end = term.get("endDate") if isinstance(term, dict) else None
    try:
        term_end = _time(end) if isinstance(end, str) else None
    except ValueError:
        term_end = None
    return AzureSubscription(
        id=str(sub.get("id")), offer_id=str(sub.get("offerId")), plan_id=str(sub.get("planId")),
        quantity=_int(sub.get("quantity")), status=str(sub.get("saasSubscriptionStatus")),
        tenant_id=_str(beneficiary.get("tenantId")) if isinstance(beneficiary, dict) else None,
        term_end=term_end, auto_renew=bool(sub.get("autoRenew")), raw=dict(sub))


def _segment(value: str) -> str:
    """An id placed in a path: GUID-like characters only."""
    if not value or len(value) > 100 or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError(f"{value!r} is not a marketplace id")
    return value


def _iso(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return parsed.astimezone(UTC)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError(f"{value!r} is not a number")
    return Decimal(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return None


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
