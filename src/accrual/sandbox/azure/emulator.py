"""The Azure Marketplace emulator: the calls a publisher makes (Entra tokens, the SaaS
Fulfillment API v2, metering) and what the marketplace itself does.

Lifecycle, as the publisher observes it (marketplaces.md §4.3, §4.4):

* ``purchase`` makes a PendingFulfillmentStart subscription and its landing-page
  token; the landing URL carries it percent-encoded. The publisher resolves and
  activates it (billing starts at activation).
* Publisher calls ``PATCH``/``DELETE`` answer 202 with an operation that stays
  InProgress until the next ``tick`` (or ``complete_operation``), which finishes it
  (Succeeded, Failed or Conflict), applies the change and calls the webhook.
* Marketplace-side changes (``change_plan``, ``change_quantity``, ``reinstate``) make
  an InProgress operation and call the webhook at once; the publisher PATCHes
  Success or Failure, or answers the webhook 4xx (Failure); with neither by
  ``ack_timeout`` (10 s) the next ``tick`` makes it Succeeded.
* ``renew``, ``suspend`` and ``unsubscribe`` are notify-only: their operation is
  Succeeded before the webhook goes out. ``tick`` also ends subscriptions suspended
  for the grace period (30 days) and renews (or ends, without auto-renew) those whose
  term is over.

Webhook calls carry a fresh bearer JWT (``config.webhook_jwt``) from the emulator's
Entra; a call not answered 2xx is tried again on the ticks after
``webhook_retry_interval``, up to ``webhook_max_attempts`` times within
``webhook_give_up_after``; then it is given up and an operation still waiting for
the publisher fails. Every delivery keeps every attempt and the exact body.
"""

from __future__ import annotations

import calendar
import logging
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from accrual.clock import Clock
from accrual.sandbox.azure import fulfillment, metering, wire
from accrual.sandbox.azure.entra import Issuer, openid_configuration, token_error
from accrual.sandbox.azure.protocol import Answer, ApiError, authorize, raise_fault, request_ids
from accrual.sandbox.azure.state import (
    FAULT_OPERATIONS,
    MARKETPLACE_RESOURCE,
    App,
    Delivery,
    Fault,
    FaultKind,
    LandingToken,
    Offer,
    Operation,
    Plan,
    SandboxConfig,
    SandboxState,
    Subscription,
    iso,
    new_id,
    new_landing_token,
)
from accrual.sandbox.control import ControlError as ControlError  # its control API raises it
from accrual.sandbox.control import add_new, check_url, known
from accrual.sandbox.deliveries import Sender, attempt, http_send
from accrual.sandbox.emulator import Emulator
from accrual.sandbox.faults import MAX_CALLS

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/sandbox/azure"
MAX_PLANS = 50
MAX_DIMENSIONS = 30
_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,49}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")

class AzureSandbox(Emulator[SandboxState, SandboxConfig]):
    """One emulated commercial marketplace with its Entra; served at ``base_url``, its
    ``endpoint_url`` standing for ``https://marketplaceapi.microsoft.com``."""

    def __init__(self, clock: Clock, base_url: str, *, prefix: str = DEFAULT_PREFIX,
                 config: SandboxConfig | None = None, sender: Sender | None = None) -> None:
        super().__init__(SandboxState(clock, config or SandboxConfig()), base_url, prefix)
        self.issuer = Issuer()
        self.send = sender or http_send

    @property
    def login_url(self) -> str:
        """Entra's base (``https://login.microsoftonline.com``)."""
        return self.endpoint_url + "/login"

    @property
    def subscriptions_url(self) -> str:
        return self.endpoint_url + "/api/saas/subscriptions"

    # --- Entra ------------------------------------------------------------------

    def token(self, tenant: str, form: Mapping[str, str], *, v2: bool) -> Answer:
        """A client-credentials token (v1: ``resource``, v2: ``scope``)."""
        with self.state.lock:
            raise_fault(self.state.take_fault("token"))
            if form.get("grant_type") != "client_credentials":
                return Answer(400, token_error("unsupported_grant_type", 70003,
                                               "The app requested an unsupported grant type"))
            app = self.state.apps.get(form.get("client_id", ""))
            if app is None or app.tenant_id != tenant:
                return Answer(400, token_error(
                    "unauthorized_client", 700016,
                    f"Application '{form.get('client_id')}' was not found in tenant "
                    f"'{tenant}'"))
            if form.get("client_secret") != app.client_secret:
                return Answer(401, token_error("invalid_client", 7000215,
                                               "Invalid client secret provided"))
            wanted = form.get("scope", "") if v2 else form.get("resource", "")
            resource = wanted.removesuffix("/.default") if v2 else wanted
            if v2 and not wanted.endswith("/.default"):
                return Answer(400, token_error("invalid_scope", 1002012,
                                               "The scope must end with /.default"))
            if not resource:
                return Answer(400, token_error("invalid_request", 900144,
                                               "The request body must contain the parameter "
                                               + ("scope" if v2 else "resource")))
            now = self.state.now()
            ttl = int(self.config.access_token_ttl.total_seconds())
            claims = {"aud": resource, "iss": f"{self.login_url}/{tenant}/v2.0",
                      "iat": int(now.timestamp()), "nbf": int(now.timestamp()),
                      "exp": int(now.timestamp()) + ttl, "appid": app.client_id,
                      "azp": app.client_id, "tid": tenant, "oid": app.client_id,
                      "sub": app.client_id, "ver": "2.0" if v2 else "1.0",
                      "uti": uuid.uuid4().hex}
            return Answer(200, {"token_type": "Bearer", "expires_in": ttl,
                                "ext_expires_in": ttl, "access_token": self.issuer.mint(claims)})

    def discovery(self, tenant: str) -> dict[str, Any]:
        return openid_configuration(self.login_url, tenant)

    # --- the marketplace API -----------------------------------------------------

    def api(self, operation: str, headers: Mapping[str, str], query: Mapping[str, str],
            body: bytes, **params: str) -> Answer:
        """One marketplace API call; ``headers`` with lower-case names."""
        ids = request_ids(headers)
        flat = operation in ("usageEvent", "batchUsageEvent", "usageEvents")
        try:
            app = authorize(self.state, self.issuer, headers, query, flat=flat)
            try:
                parsed = wire.loads(body) if body.strip() else None
            except ValueError:
                raise ApiError(400, "BadArgument", "The body is not JSON", flat=flat) from None
            answer = self._dispatch(operation, app, headers, query, parsed, params)
        except ApiError as error:
            answer = Answer(error.status, error.body())
        if flat and operation != "usageEvents":
            with self.state.lock:
                self.state.received.append({
                    "at": iso(self.state.now()), "operation": operation,
                    "request": body.decode("utf-8", "replace"), "status": answer.status,
                    "answer": answer.body})
        answer.headers.update(ids)
        return answer

    def _dispatch(self, operation: str, app: App, headers: Mapping[str, str],
                  query: Mapping[str, str], body: Any, params: Mapping[str, str]) -> Answer:
        state, sub = self.state, params.get("subscription_id", "")
        if operation not in ("usageEvent", "batchUsageEvent", "usageEvents"):
            with state.lock:
                raise_fault(state.take_fault(_FAULT_NAMES.get(operation, operation)))
        if operation == "resolve":
            return fulfillment.resolve(state, app, headers.get("x-ms-marketplace-token"))
        if operation == "activate":
            return fulfillment.activate(state, app, sub, body)
        if operation == "get":
            return fulfillment.get(state, app, sub)
        if operation == "list":
            return fulfillment.list_all(state, app, query.get("continuationToken"),
                                        self.subscriptions_url)
        if operation == "plans":
            return fulfillment.plans(state, app, sub, query.get("planId"))
        if operation == "update":
            return fulfillment.update(state, app, sub, body, self.subscriptions_url)
        if operation == "delete":
            return fulfillment.delete(state, app, sub, self.subscriptions_url)
        if operation == "operations":
            return fulfillment.pending_operations(state, app, sub)
        if operation == "get_operation":
            return fulfillment.get_operation(state, app, sub, params["operation_id"])
        if operation == "update_operation":
            return fulfillment.update_operation(state, app, sub, params["operation_id"], body)
        if operation == "usageEvent":
            return metering.usage_event(state, app, body)
        if operation == "batchUsageEvent":
            return metering.batch_usage_event(state, app, body)
        if operation == "usageEvents":
            return metering.usage_events(state, app, query)
        raise ApiError(404, "NotFound", f"No operation {operation}")

    # --- publishers and offers -----------------------------------------------------

    def register_app(self, *, tenant_id: str | None = None, client_id: str | None = None,
                     client_secret: str | None = None) -> App:
        for value in (tenant_id, client_id):
            if value is not None and not _GUID.match(value):
                raise ControlError(400, "invalid_id", "tenant and app ids are GUIDs")
        app = App(tenant_id or new_id(), client_id or new_id(),
                  client_secret or uuid.uuid4().hex + uuid.uuid4().hex)
        with self.state.lock:
            return add_new(self.state.apps, app.client_id, app, "app")

    def create_offer(self, offer_id: str, plans: list[dict[str, Any]], *,
                     publisher_id: str = "accrual", app_id: str | None = None,
                     webhook_url: str | None = None,
                     landing_url: str | None = None) -> dict[str, Any]:
        """Publish an offer; with no ``app_id``, a new app is registered for it. The answer
        carries the app's credentials."""
        if not _NAME.match(offer_id) or not _NAME.match(publisher_id):
            raise ControlError(400, "invalid_name", "offer and publisher ids are 1 to 50 of "
                                                    "A-Z a-z 0-9 - _ .")
        made = [self._plan(p) for p in plans]
        if not 1 <= len(made) <= MAX_PLANS or len({p.plan_id for p in made}) != len(made):
            raise ControlError(400, "invalid_plans", f"give 1 to {MAX_PLANS} distinct plans")
        for url in (webhook_url, landing_url):
            check_url(url)
        with self.state.lock:
            if offer_id in self.state.offers:
                raise ControlError(409, "offer_exists", f"offer {offer_id} exists already")
            app = (known(self.state.apps, app_id, "app") if app_id is not None
                   else self.register_app())
            offer = Offer(offer_id, publisher_id, app, {p.plan_id: p for p in made},
                          webhook_url, landing_url)
            self.state.offers[offer_id] = offer
            return offer.describe() | {"client_secret": app.client_secret}

    @staticmethod
    def _plan(given: dict[str, Any]) -> Plan:
        plan_id, dimensions = given.get("plan_id"), given.get("dimensions")
        if not isinstance(plan_id, str) or not _NAME.match(plan_id):
            raise ControlError(400, "invalid_plan", "a plan id is 1 to 50 of A-Z a-z 0-9 - _ .")
        if not isinstance(dimensions, list) or not 1 <= len(dimensions) <= MAX_DIMENSIONS or \
                not all(isinstance(d, str) and 1 <= len(d) <= 255 for d in dimensions):
            raise ControlError(400, "invalid_dimensions",
                               f"a plan has 1 to {MAX_DIMENSIONS} dimension names")
        per_seat = bool(given.get("per_seat", False))
        low, high = given.get("min_quantity", 1), given.get("max_quantity", 1000)
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high <= 10**6):
            raise ControlError(400, "invalid_quantity", "1 <= min_quantity <= max_quantity "
                                                        "<= 1000000")
        term = given.get("term_unit", "P1M")
        if term not in ("P1M", "P1Y"):
            raise ControlError(400, "invalid_term", "term_unit is P1M or P1Y")
        return Plan(plan_id, str(given.get("display_name") or plan_id),
                    tuple(dict.fromkeys(dimensions)), per_seat, low, high,
                    bool(given.get("private", False)), term)

    # --- buyers --------------------------------------------------------------------

    def purchase(self, offer_id: str, plan_id: str, *, quantity: int | None = None,
                 csp: bool = False, auto_renew: bool = True,
                 beneficiary_tenant: str | None = None,
                 email: str = "buyer@contoso.example") -> dict[str, Any]:
        """A customer buys: a PendingFulfillmentStart subscription and its landing token."""
        with self.state.lock:
            offer = self._offer(offer_id)
            plan = offer.plans.get(plan_id)
            if plan is None:
                raise ControlError(404, "unknown_plan", f"offer {offer_id} has no plan {plan_id}")
            if plan.per_seat:
                quantity = plan.min_quantity if quantity is None else quantity
                if not plan.min_quantity <= quantity <= plan.max_quantity:
                    raise ControlError(400, "invalid_quantity", "quantity is outside the "
                                                                "plan's limits")
            elif quantity is not None:
                raise ControlError(400, "invalid_quantity", f"plan {plan_id} is not per seat")
            now = self.state.now()
            tenant = beneficiary_tenant or new_id()
            person = {"emailId": email, "objectId": new_id(), "tenantId": tenant,
                      "puid": str(uuid.uuid4().int)[:16]}
            sub = Subscription(
                id=new_id(), offer_id=offer.offer_id, publisher_id=offer.publisher_id,
                name=f"{offer.offer_id}-{len(self.state.subscriptions) + 1}", plan_id=plan_id,
                quantity=quantity, beneficiary=person, purchaser=dict(person),
                azure_subscription_id=new_id(), term_unit=plan.term_unit, term_start=now,
                term_end=_term_end(now, plan.term_unit), created=now, last_modified=now,
                auto_renew=auto_renew, csp=csp)
            self.state.subscriptions[sub.id] = sub
            token = LandingToken(new_landing_token(), sub.id, now)
            self.state.tokens[token.value] = token
            landing = (f"{offer.landing_url}?token={quote(token.value, safe='')}"
                       if offer.landing_url else None)
            return {"subscription_id": sub.id, "token": token.value, "landing_url": landing,
                    "subscription": sub.describe()}

    def change_plan(self, subscription_id: str, plan_id: str) -> dict[str, Any]:
        """The customer changes plan in Azure: an operation the publisher must answer."""
        with self.state.lock:
            sub = self._subscribed(subscription_id)
            offer = self.state.offers[sub.offer_id]
            plan = offer.plans.get(plan_id)
            if plan is None or plan_id == sub.plan_id:
                raise ControlError(400, "invalid_plan", "give another plan of the offer")
            quantity = (sub.quantity or plan.min_quantity) if plan.per_seat else None
            operation = self._operation(sub, "ChangePlan", "Azure", plan_id, quantity)
            queued = [self._queue(operation)]
        self._deliver(queued)
        return operation.describe()

    def change_quantity(self, subscription_id: str, quantity: int) -> dict[str, Any]:
        with self.state.lock:
            sub = self._subscribed(subscription_id)
            plan = self.state.offers[sub.offer_id].plans[sub.plan_id]
            if not plan.per_seat or quantity == sub.quantity or not (
                    plan.min_quantity <= quantity <= plan.max_quantity):
                raise ControlError(400, "invalid_quantity", "give another quantity within "
                                                            "the per-seat plan's limits")
            operation = self._operation(sub, "ChangeQuantity", "Azure", sub.plan_id, quantity)
            queued = [self._queue(operation)]
        self._deliver(queued)
        return operation.describe()

    def suspend(self, subscription_id: str) -> dict[str, Any]:
        """Payment failed: Suspended, the grace period starts; notify-only Suspend."""
        with self.state.lock:
            sub = self._subscribed(subscription_id)
            now = self.state.now()
            fulfillment.end_billing(sub, now)
            sub.status, sub.suspended_at, sub.last_modified = "Suspended", now, now
            queued = [self._notify(sub, "Suspend")]
        self._deliver(queued)
        return sub.describe()

    def reinstate(self, subscription_id: str) -> dict[str, Any]:
        """Payment came in: a Reinstate operation the publisher must answer."""
        with self.state.lock:
            sub = self._subscription(subscription_id)
            if sub.status != "Suspended":
                raise ControlError(409, "not_suspended", f"subscription {sub.id} is {sub.status}")
            operation = self._operation(sub, "Reinstate", "Azure", sub.plan_id, sub.quantity)
            queued = [self._queue(operation)]
        self._deliver(queued)
        return operation.describe()

    def renew(self, subscription_id: str) -> dict[str, Any]:
        """The term renews: new term dates; notify-only Renew."""
        with self.state.lock:
            sub = self._subscribed(subscription_id)
            queued = [self._renew(sub)]
        self._deliver(queued)
        return sub.describe()

    def unsubscribe(self, subscription_id: str) -> dict[str, Any]:
        """The customer cancels: Unsubscribed (terminal); notify-only Unsubscribe, except
        before activation, when there is nothing to tell the publisher."""
        with self.state.lock:
            sub = self._subscription(subscription_id)
            if sub.status == "Unsubscribed":
                raise ControlError(409, "unsubscribed", f"subscription {sub.id} is Unsubscribed")
            queued = self._end(sub)
        self._deliver(queued)
        return sub.describe()

    def complete_operation(self, operation_id: str, status: str) -> dict[str, Any]:
        """Finish a publisher-initiated operation now, as Succeeded, Failed or Conflict."""
        if status not in ("Succeeded", "Failed", "Conflict"):
            raise ControlError(400, "invalid_status", "status is Succeeded, Failed or Conflict")
        with self.state.lock:
            operation = known(self.state.operations, operation_id, "operation")
            if operation.source != "Partner" or operation.status != "InProgress":
                raise ControlError(409, "not_pending", "only an InProgress publisher-initiated "
                                                       "operation completes here")
            queued = [self._complete(operation, status)]
        self._deliver(queued)
        return operation.describe()

    def tick(self) -> dict[str, Any]:
        """Let time act: finish publisher operations, auto-accept unanswered marketplace
        changes, end grace periods, renew terms, retry due webhook calls."""
        with self.state.lock:
            now, config = self.state.now(), self.config
            queued: list[Delivery] = []
            done: list[str] = []
            for operation in list(self.state.operations.values()):
                if operation.status != "InProgress":
                    continue
                if operation.source == "Partner":
                    queued.append(self._complete(operation, "Succeeded"))
                    done.append(operation.id)
                elif operation.ackable and now >= operation.created + config.ack_timeout:
                    fulfillment.finish(self.state, operation, succeeded=True)
                    done.append(operation.id)
            ended, renewed = [], []
            for sub in self.state.subscriptions.values():
                if (sub.status == "Suspended" and sub.suspended_at is not None
                        and now >= sub.suspended_at + config.suspend_grace):
                    queued += self._end(sub)
                    ended.append(sub.id)
                elif sub.status == "Subscribed" and now >= sub.term_end:
                    if sub.auto_renew:
                        queued.append(self._renew(sub))
                        renewed.append(sub.id)
                    else:
                        queued += self._end(sub)
                        ended.append(sub.id)
            due = [d for d in self.state.deliveries if not d.delivered and not d.given_up
                   and d.next_at is not None and d.next_at <= now and d not in queued]
        delivered = self._deliver(queued + due)
        return {"operations_finished": done, "ended": ended, "renewed": renewed,
                "attempted": len(queued) + len(due), "delivered": delivered}

    def inject(self, operation: str, kind: FaultKind, *, calls: int = 1, events: int = 0) -> None:
        """The next ``calls`` calls of ``operation`` fail as ``kind`` says (``event_error``:
        ``events`` events of each batch answer Error)."""
        if operation not in FAULT_OPERATIONS:
            raise ControlError(400, "unknown_operation", f"operation is one of {FAULT_OPERATIONS}")
        if kind == "event_error" and (operation != "batchUsageEvent" or not 1 <= events <= 25):
            raise ControlError(400, "invalid_fault", "event_error is for batchUsageEvent, with "
                                                     "1 to 25 events")
        if kind not in ("throttling", "internal_error", "event_error") or not 1 <= calls <= MAX_CALLS:
            raise ControlError(400, "invalid_fault", "kind throttling|internal_error|"
                                                     "event_error, calls 1..1000")
        with self.state.lock:
            self.state.faults.setdefault(operation, []).append(Fault(kind, calls, events))

    def set_recon(self, usage_event_id: str, status: str,
                  processed: Any = None) -> dict[str, Any]:
        """What reconciliation later says of an accepted event (``usageEvents``)."""
        if status not in metering.RECON_STATUSES:
            raise ControlError(400, "invalid_status", f"status is one of {metering.RECON_STATUSES}")
        with self.state.lock:
            event = next((e for e in self.state.events.values()
                          if e.usage_event_id == usage_event_id), None)
            if event is None:
                raise ControlError(404, "unknown_event", f"no usage event {usage_event_id}")
            event.recon_status, event.processed_quantity = status, processed
            return event.message("Accepted") | {"reconStatus": status}

    def replay(self, delivery_id: int) -> dict[str, Any]:
        """Send a webhook call again with the very body and headers last sent."""
        with self.state.lock:
            found = next((d for d in self.state.deliveries if d.id == delivery_id), None)
            if found is None:
                raise ControlError(404, "unknown_delivery", f"no webhook call {delivery_id}")
            if not found.url or not found.headers:
                raise ControlError(409, "never_sent", "that call was never sent")
            headers, url = dict(found.headers), found.url
        status, error = attempt(lambda: self.send(url, headers, found.body))
        with self.state.lock:
            found.record(self.state.now(), status, error, replay=True)
        return found.describe()

    # --- views -----------------------------------------------------------------------

    def usage_view(self) -> dict[str, Any]:
        with self.state.lock:
            counts: dict[str, int] = {}
            for event in self.state.events.values():
                key = "|".join(event.key)
                counts[key] = counts.get(key, 0) + 1
            return {"accepted": [e.message("Accepted") | {"reconStatus": e.recon_status}
                                 for e in self.state.events.values()],
                    "received": list(self.state.received), "counts_per_key": counts}

    def webhooks_view(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [d.describe() for d in self.state.deliveries]

    # --- inside ------------------------------------------------------------------------

    def _offer(self, offer_id: str) -> Offer:
        return known(self.state.offers, offer_id, "offer")

    def _subscription(self, subscription_id: str) -> Subscription:
        return known(self.state.subscriptions, subscription_id, "subscription")

    def _subscribed(self, subscription_id: str) -> Subscription:
        sub = self._subscription(subscription_id)
        if sub.status != "Subscribed":
            raise ControlError(409, "not_subscribed", f"subscription {sub.id} is {sub.status}")
        return sub

    def _operation(self, sub: Subscription, action: Any, source: Any, plan_id: str,
                   quantity: int | None) -> Operation:
        operation = Operation(id=new_id(), subscription_id=sub.id, offer_id=sub.offer_id,
                              publisher_id=sub.publisher_id, action=action, source=source,
                              plan_id=plan_id, quantity=quantity, created=self.state.now())
        self.state.operations[operation.id] = operation
        return operation

    def _notify(self, sub: Subscription, action: str) -> Delivery:
        """A notify-only operation, Succeeded already, and its webhook call."""
        operation = self._operation(sub, action, "Azure", sub.plan_id, sub.quantity)
        operation.status, operation.finished_at = "Succeeded", self.state.now()
        return self._queue(operation)

    def _renew(self, sub: Subscription) -> Delivery:
        sub.term_start = sub.term_end
        sub.term_end = _term_end(sub.term_start, sub.term_unit)
        sub.last_modified = self.state.now()
        return self._notify(sub, "Renew")

    def _end(self, sub: Subscription) -> list[Delivery]:
        now = self.state.now()
        was = sub.status
        fulfillment.end_billing(sub, now)
        sub.status, sub.unsubscribed_at, sub.last_modified = "Unsubscribed", now, now
        return [] if was == "PendingFulfillmentStart" else [self._notify(sub, "Unsubscribe")]

    def _complete(self, operation: Operation, status: str) -> Delivery:
        if status == "Conflict":
            operation.status, operation.finished_at = "Conflict", self.state.now()
            operation.error_status_code = "Conflict"
            operation.error_message = "Another operation changed the subscription first"
        else:
            fulfillment.finish(self.state, operation, succeeded=status == "Succeeded")
        return self._queue(operation)

    def _queue(self, operation: Operation) -> Delivery:
        """Record the webhook call about an operation; the caller holds the lock."""
        sub = self.state.subscriptions[operation.subscription_id]
        offer = self.state.offers[sub.offer_id]
        payload = {"id": operation.id, "activityId": operation.activity_id,
                   "publisherId": operation.publisher_id, "offerId": operation.offer_id,
                   "planId": operation.plan_id, "quantity": operation.quantity,
                   "subscriptionId": sub.id, "timeStamp": operation.describe()["timeStamp"],
                   "action": operation.action, "status": operation.status,
                   "operationRequestSource": operation.source,
                   "subscription": sub.describe(), "purchaseToken": None}
        now = self.state.now()
        delivery = Delivery(id=len(self.state.deliveries) + 1, url=offer.webhook_url or "",
                            operation_id=operation.id, action=operation.action,
                            payload=payload, body=wire.dumps(payload), created=now,
                            next_at=now if offer.webhook_url else None)
        self.state.deliveries.append(delivery)
        return delivery

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "x-ms-requestid": str(uuid.uuid4()),
                   "x-ms-correlationid": delivery.payload["activityId"]}
        if self.config.webhook_jwt:
            offer = self.state.offers[delivery.payload["offerId"]]
            now = int(self.state.now().timestamp())
            tenant = offer.app.tenant_id
            claims = {"aud": offer.app.client_id, "iss": f"{self.login_url}/{tenant}/v2.0",
                      "iat": now, "nbf": now,
                      "exp": now + int(self.config.access_token_ttl.total_seconds()),
                      "appid": MARKETPLACE_RESOURCE, "azp": MARKETPLACE_RESOURCE,
                      "tid": tenant, "oid": MARKETPLACE_RESOURCE, "sub": MARKETPLACE_RESOURCE,
                      "ver": "2.0", "uti": uuid.uuid4().hex}
            headers["Authorization"] = "Bearer " + self.issuer.mint(claims)
        return headers

    def _deliver(self, deliveries: list[Delivery]) -> int:
        """Try each call once, outside the lock (the publisher calls back while answering)."""
        delivered = 0
        for delivery in deliveries:
            if not delivery.url or delivery.delivered or delivery.given_up:
                continue
            with self.state.lock:
                delivery.headers = self._headers(delivery)
            status, error = delivery.post(self.send)
            with self.state.lock:
                now, config = self.state.now(), self.config
                ok = delivery.record(now, status, error)
                operation = self.state.operations[delivery.operation_id]
                waiting = operation.ackable and operation.status == "InProgress"
                if ok:
                    delivery.delivered, delivery.next_at = True, None
                elif status is not None and 400 <= status < 500 and waiting:
                    # A 4xx answer within the window refuses a marketplace change.
                    delivery.given_up, delivery.next_at = True, None
                    operation.acknowledged = "Failure"
                    fulfillment.finish(self.state, operation, succeeded=False)
                elif (len(delivery.attempts) >= config.webhook_max_attempts
                      or now + config.webhook_retry_interval
                      > delivery.created + config.webhook_give_up_after):
                    delivery.given_up, delivery.next_at = True, None
                    if waiting:
                        fulfillment.finish(self.state, operation, succeeded=False)
                else:
                    delivery.next_at = now + config.webhook_retry_interval
            if not ok:
                log.info("sandbox azure: webhook call %s to %s failed: %s", delivery.id,
                         delivery.url, error or status)
            delivered += ok
        return delivered


_FAULT_NAMES = {"plans": "get", "get_operation": "operations", "update_operation": "operations"}


def _term_end(start: datetime, unit: str) -> datetime:
    months = 12 if unit == "P1Y" else 1
    month = start.month - 1 + months
    year, month = start.year + month // 12, month % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)
