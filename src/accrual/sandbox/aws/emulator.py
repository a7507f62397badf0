"""The AWS Marketplace emulator: the service calls a seller makes, and what the
marketplace itself does (buyers subscribing and leaving, notifications).

Lifecycle, as the seller observes it (marketplaces.md §1.6):

* ``subscribe`` makes an active subscription with a fresh registration token, a
  12-digit buyer account, a license (``LicenseArn``) and a legacy
  ``CustomerIdentifier``, and sends ``subscribe-success`` (or, with
  ``outcome="fail"``, marks it failed and sends ``subscribe-fail``). With
  ``post_fulfillment`` it then POSTs the buyer's browser form
  ``x-amzn-marketplace-token=<token>`` to the product's fulfillment URL.
* ``unsubscribe`` sends ``unsubscribe-pending`` and opens the one-hour final
  metering window; metering is refused once it has passed, by the clock.
* ``tick`` finishes every unsubscription whose hour has passed (sends
  ``unsubscribe-success``, the subscription leaves GetEntitlements) and retries
  every delivery that failed so far. Nothing happens between ticks on its own.
* ``update_entitlement`` changes a subscription's entitlements or term end and sends
  ``entitlement-updated`` on the entitlement topic.

Notifications go to the product's ``notification_url`` as SNS HTTP deliveries
(:mod:`accrual.sandbox.aws.sns`); a product without one records them undelivered.
Every delivery keeps its exact body and headers, and lists every attempt, so a
test can replay one or forge one from it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from accrual.clock import Clock
from accrual.sandbox.aws import entitlements, metering, sns
from accrual.sandbox.aws.protocol import ENTITLEMENT_PREFIX, METERING_PREFIX, Operation, handle
from accrual.sandbox.aws.state import (
    FINAL_METERING_WINDOW,
    Delivery,
    EntitlementValue,
    Fault,
    FaultKind,
    Product,
    RegistrationToken,
    SandboxConfig,
    SandboxState,
    Subscription,
    license_arn,
    new_account_id,
    new_license_id,
)
from accrual.sandbox.control import ControlError as ControlError  # its control API raises it
from accrual.sandbox.control import add_new, check_url, known
from accrual.sandbox.deliveries import DELIVERY_TIMEOUT_S, Sender, http_send
from accrual.sandbox.emulator import Emulator
from accrual.sandbox.faults import MAX_CALLS

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/sandbox/aws"
MAX_DIMENSIONS = 50
MAX_ANSWER_CHARS = 64 * 1024
OPERATIONS = ("ResolveCustomer", "BatchMeterUsage", "MeterUsage", "GetEntitlements")
_VALUE_TYPES: dict[str, tuple[type, ...]] = {
    "IntegerValue": (int,), "DoubleValue": (int, float), "BooleanValue": (bool,),
    "StringValue": (str,)}
_NAME = re.compile(r"^[-a-zA-Z0-9/=:_.@]{1,255}$")

# POST a form (url, headers, body) -> (status, Location header, body text)
FormPoster = Callable[[str, Mapping[str, str], bytes], tuple[int, str | None, str]]


def http_post_form(url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str | None, str]:
    response = httpx.post(url, headers=dict(headers), content=body, timeout=DELIVERY_TIMEOUT_S,
                          follow_redirects=False)
    return response.status_code, response.headers.get("location"), response.text[:MAX_ANSWER_CHARS]


class AwsSandbox(Emulator[SandboxState, SandboxConfig]):
    """One emulated AWS Marketplace seller account; ``base_url`` is where it is served
    (the SigningCertURL and UnsubscribeURL of its notifications point there), and its
    ``endpoint_url`` what boto3 takes as ``endpoint_url``."""

    def __init__(self, clock: Clock, base_url: str, *, prefix: str = DEFAULT_PREFIX,
                 config: SandboxConfig | None = None, sender: Sender | None = None,
                 form_poster: FormPoster | None = None) -> None:
        super().__init__(SandboxState(clock, config or SandboxConfig()), base_url, prefix)
        self.signer = sns.Signer(clock.now())
        self.send = sender or http_send
        self.post_form = form_poster or http_post_form

    @property
    def cert_url(self) -> str:
        return self.endpoint_url + sns.CERT_PATH

    # --- the service calls ------------------------------------------------------

    def operations(self) -> dict[str, Operation]:
        state = self.state
        return {
            f"{METERING_PREFIX}.ResolveCustomer":
                lambda _caller, body, _size: metering.resolve_customer(state, body),
            f"{METERING_PREFIX}.BatchMeterUsage":
                lambda _caller, body, size: metering.batch_meter_usage(state, body, size),
            f"{METERING_PREFIX}.MeterUsage":
                lambda caller, body, _size: metering.meter_usage(state, caller, body),
            f"{ENTITLEMENT_PREFIX}.GetEntitlements":
                lambda _caller, body, _size: entitlements.get_entitlements(state, body)}

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """One AWS JSON 1.1 call; ``headers`` with lower-case names."""
        return handle(self.operations(), headers, body)

    # --- products and buyers ----------------------------------------------------

    def create_product(self, code: str, dimensions: list[str], *, legacy: bool = False,
                       fulfillment_url: str | None = None,
                       notification_url: str | None = None) -> Product:
        if not _NAME.match(code):
            raise ControlError(400, "invalid_product_code",
                               "a product code is 1 to 255 of A-Z a-z 0-9 - / = : _ . @")
        if not 1 <= len(dimensions) <= MAX_DIMENSIONS or not all(
                isinstance(d, str) and 1 <= len(d) <= 255 for d in dimensions):
            raise ControlError(400, "invalid_dimensions",
                               f"give 1 to {MAX_DIMENSIONS} dimension names of 1-255 characters")
        for url in (fulfillment_url, notification_url):
            check_url(url)
        product = Product(code, tuple(dict.fromkeys(dimensions)), legacy, fulfillment_url,
                          notification_url)
        with self.state.lock:
            return add_new(self.state.products, code, product, "product")

    def subscribe(self, product_code: str, *, account_id: str | None = None,
                  offer_identifier: str | None = None, free_trial: bool = False,
                  entitlement_values: list[dict[str, Any]] | None = None,
                  expires_at: datetime | None = None, outcome: str = "success",
                  post_fulfillment: bool = False) -> dict[str, Any]:
        """A buyer subscribes: the registration token and the buyer's names, and with
        ``post_fulfillment`` the answer of the seller's fulfillment URL."""
        if account_id is not None and not re.fullmatch(r"[0-9]{1,255}", account_id):
            raise ControlError(400, "invalid_account_id", "an AWS account id is digits")
        if outcome not in ("success", "fail"):
            raise ControlError(400, "invalid_outcome", "outcome is success or fail")
        with self.state.lock:
            product = self._product(product_code)
            values = self._entitlements(product, entitlement_values)
            now = self.state.now()
            license_id = new_license_id()
            sub = Subscription(
                id=license_id, product_code=product.code,
                customer_identifier="c" + license_id[2:14],
                account_id=account_id or new_account_id(), license_arn=license_arn(license_id),
                subscribed_at=now, expires_at=expires_at or now + self.config.default_term,
                entitlements=values, offer_identifier=offer_identifier, free_trial=free_trial)
            self.state.subscriptions[sub.id] = sub
            token = RegistrationToken(metering.new_token(), sub.id, now)
            self.state.tokens[token.value] = token
            if outcome == "fail":
                sub.status = "failed"
            queued = [self._queue(sub, "subscribe-success" if outcome == "success"
                                  else "subscribe-fail")]
        self._deliver(queued)
        answer: dict[str, Any] = {
            "registration_token": token.value, "subscription_id": sub.id,
            "customer_identifier": sub.customer_identifier,
            "customer_aws_account_id": sub.account_id, "license_arn": sub.license_arn,
            "product_code": product.code}
        if post_fulfillment:
            answer["fulfillment"] = self._post_fulfillment(product, token.value)
        return answer

    def fail_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Payment or set-up failed: ``subscribe-fail``; metering is refused."""
        with self.state.lock:
            sub = self._subscription(subscription_id)
            sub.status = "failed"
            queued = [self._queue(sub, "subscribe-fail")]
        self._deliver(queued)
        return sub.describe()

    def unsubscribe(self, subscription_id: str) -> dict[str, Any]:
        with self.state.lock:
            sub = self._subscription(subscription_id)
            if sub.status != "active":
                raise ControlError(409, "not_active", f"subscription {sub.id} is {sub.status}")
            now = self.state.now()
            sub.status, sub.unsubscribed_at = "unsubscribe_pending", now
            sub.expires_at = now  # the contract ends with the cancellation
            queued = [self._queue(sub, "unsubscribe-pending")]
        self._deliver(queued)
        return sub.describe()

    def update_entitlement(self, subscription_id: str, *,
                           entitlement_values: list[dict[str, Any]] | None = None,
                           expires_at: datetime | None = None) -> dict[str, Any]:
        with self.state.lock:
            sub = self._subscription(subscription_id)
            if entitlement_values is not None:
                sub.entitlements = self._entitlements(self._product(sub.product_code),
                                                      entitlement_values)
            if expires_at is not None:
                sub.expires_at = expires_at
            queued = [self._queue(sub, "entitlement-updated")]
        self._deliver(queued)
        return sub.describe()

    def tick(self) -> dict[str, Any]:
        """Finish unsubscriptions whose final hour has passed; retry failed deliveries."""
        with self.state.lock:
            now = self.state.now()
            finished = []
            for sub in self.state.subscriptions.values():
                if (sub.status == "unsubscribe_pending" and sub.unsubscribed_at is not None
                        and now >= sub.unsubscribed_at + FINAL_METERING_WINDOW):
                    sub.status, sub.finished_at = "unsubscribed", now
                    self._queue(sub, "unsubscribe-success")
                    finished.append(sub.id)
            pending = [d for d in self.state.deliveries if not d.delivered and d.url]
        delivered = self._deliver(pending)
        return {"finished": finished, "attempted": len(pending), "delivered": delivered,
                "failed": len(pending) - delivered}

    def inject(self, operation: str, kind: FaultKind, *, calls: int = 1, records: int = 0) -> None:
        """The next ``calls`` calls of ``operation`` fail (or leave records unprocessed)."""
        if operation not in OPERATIONS:
            raise ControlError(400, "unknown_operation", f"operation is one of {OPERATIONS}")
        allowed = {"throttling", "internal_error"} | (
            {"unprocessed"} if operation == "BatchMeterUsage" else set()) | (
            {"empty_page"} if operation == "GetEntitlements" else set())
        if kind not in allowed:
            raise ControlError(400, "unknown_fault", f"{operation} takes faults {sorted(allowed)}")
        if not 1 <= calls <= MAX_CALLS or not 0 <= records <= 25 or (kind == "unprocessed"
                                                               and records == 0):
            raise ControlError(400, "invalid_fault", "calls is 1..1000, records 1..25")
        with self.state.lock:
            self.state.faults.setdefault(operation, []).append(Fault(kind, calls, records))

    def replay(self, delivery_id: int) -> dict[str, Any]:
        """Send a delivered notification again, byte for byte (an SNS redelivery)."""
        with self.state.lock:
            found = next((d for d in self.state.deliveries if d.id == delivery_id), None)
            if found is None:
                raise ControlError(404, "unknown_notification", f"no notification {delivery_id}")
            if not found.url:
                raise ControlError(409, "no_notification_url",
                                   f"product {found.product_code} has no notification URL")
        self._deliver([found])
        return found.describe()

    # --- views ------------------------------------------------------------------

    def records_view(self, product_code: str | None = None) -> dict[str, Any]:
        with self.state.lock:
            # In the order they were accepted.
            records = [r for r in self.state.records.values()
                       if product_code is None or r.product_code == product_code]
            counts: dict[str, int] = {}
            for record in records:
                hour = record.timestamp.replace(minute=0, second=0, microsecond=0)
                key = "|".join((record.product_code, record.account_id, record.dimension,
                                hour.isoformat()))
                counts[key] = counts.get(key, 0) + 1
            return {"records": [r.describe() for r in records], "counts_per_hour": counts}

    def notifications_view(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [d.describe() for d in self.state.deliveries]

    # --- inside -----------------------------------------------------------------

    def _product(self, code: str) -> Product:
        return known(self.state.products, code, "product")

    def _subscription(self, subscription_id: str) -> Subscription:
        return known(self.state.subscriptions, subscription_id, "subscription")

    @staticmethod
    def _entitlements(product: Product,
                      given: list[dict[str, Any]] | None) -> list[EntitlementValue]:
        if given is None:
            # A product sold by usage still answers one entitlement per dimension.
            return [EntitlementValue(d, {"BooleanValue": True}) for d in product.dimensions]
        values = []
        for item in given:
            dimension, value = item.get("dimension"), item.get("value")
            if dimension not in product.dimensions:
                raise ControlError(400, "unknown_dimension", f"{dimension!r} is not a dimension "
                                                             f"of {product.code}")
            if (not isinstance(value, dict) or len(value) != 1
                    or next(iter(value)) not in _VALUE_TYPES
                    or not isinstance(next(iter(value.values())), _VALUE_TYPES[next(iter(value))])
                    or (next(iter(value)) != "BooleanValue"
                        and isinstance(next(iter(value.values())), bool))):
                raise ControlError(400, "invalid_value",
                                   "value has exactly one of IntegerValue, DoubleValue, "
                                   "BooleanValue, StringValue, of its type")
            values.append(EntitlementValue(dimension, dict(value)))
        return values

    def _queue(self, sub: Subscription, action: str) -> Delivery:
        """Build, sign and record a notification; the caller holds the lock."""
        product = self.state.products[sub.product_code]
        message: dict[str, Any] = {"action": action,
                                   "customer-identifier": sub.customer_identifier,
                                   "product-code": sub.product_code}
        if action != "entitlement-updated":
            if sub.offer_identifier is not None:
                message["offer-identifier"] = sub.offer_identifier
            message["isFreeTrialTermPresent"] = "true" if sub.free_trial else "false"
        # Not in AWS's message: lets a seller without CustomerIdentifier match the buyer.
        message["customer-aws-account-id"] = sub.account_id
        topic = sns.topic_for(action, sub.product_code)
        envelope = sns.make_envelope(
            self.signer, topic_arn=topic, message=message, sent_at=self.state.now(),
            cert_url=self.cert_url,
            unsubscribe_url=f"{self.endpoint_url}{sns.UNSUBSCRIBE_PATH}?"
                            + urlencode({"SubscriptionArn": f"{topic}:sandbox"}),
            version=self.config.sns_signature_version)
        delivery = Delivery(
            id=len(self.state.deliveries) + 1, url=product.notification_url or "",
            action=action, product_code=sub.product_code, subscription_id=sub.id,
            envelope=envelope, body=_body(envelope),
            headers=sns.delivery_headers(envelope, f"{topic}:sandbox"))
        self.state.deliveries.append(delivery)
        return delivery

    def _deliver(self, deliveries: list[Delivery]) -> int:
        """Try each delivery once, outside the lock (the receiver may call back)."""
        delivered = 0
        for delivery in deliveries:
            if not delivery.url:
                continue
            status, error = delivery.post(self.send)
            with self.state.lock:
                ok = delivery.record(self.state.now(), status, error)
                delivery.delivered = delivery.delivered or ok
            if not ok:
                log.info("sandbox aws: notification %s to %s failed: %s", delivery.id,
                         delivery.url, error or status)
            delivered += ok
        return delivered

    def _post_fulfillment(self, product: Product, token: str) -> dict[str, Any]:
        if not product.fulfillment_url:
            raise ControlError(409, "no_fulfillment_url",
                               f"product {product.code} has no fulfillment URL")
        body = urlencode({"x-amzn-marketplace-token": token}).encode()
        try:
            status, location, text = self.post_form(
                product.fulfillment_url,
                {"Content-Type": "application/x-www-form-urlencoded"}, body)
        except httpx.HTTPError as error:
            return {"status": None, "location": None, "body": None,
                    "error": f"{type(error).__name__}: {error}"}
        return {"status": status, "location": location, "body": text, "error": None}


def _body(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, indent=2).encode()
