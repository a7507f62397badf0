"""SaaS Fulfillment API v2 (marketplaces.md §4.2, §4.4), publisher → marketplace.

Each function takes the locked-over state and the calling app and returns an
:class:`Answer` or raises :class:`ApiError`; the caller (the emulator) delivers any
webhooks afterwards. The documented codes are the default; ``live_quirks`` switches to
what the live API was observed to do (marketplaces.md §4.6): Activate ignores a plan
mismatch, unknown operation ids give 400, Update op accepts any status string, and
Update op on a publisher-initiated operation gives 500.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from accrual.sandbox.azure.protocol import Answer, ApiError, bad_request
from accrual.sandbox.azure.state import (
    API_VERSION,
    App,
    Operation,
    SandboxState,
    Subscription,
    new_id,
)

MAX_TOKEN_CHARS = 4096
MAX_CONTINUATION_CHARS = 64


def resolve(state: SandboxState, app: App, token: str | None) -> Answer:
    """``POST /resolve``: the landing-page token (URL-decoded) to its subscription. Works
    in every state, as often as asked, until the token's TTL has passed."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise bad_request("The x-ms-marketplace-token header is missing or malformed")
    with state.lock:
        found = state.tokens.get(token)
        if found is None:
            raise bad_request("The marketplace token is invalid; URL-decode the landing "
                              "page's token before sending it")
        if state.now() >= found.issued_at + state.config.landing_token_ttl:
            raise bad_request("The marketplace token has expired")
        sub = _owned(state, app, found.subscription_id)
        body: dict[str, Any] = {"id": sub.id, "subscriptionName": sub.name,
                                "offerId": sub.offer_id, "planId": sub.plan_id,
                                "subscription": sub.describe()}
        if sub.quantity is not None:
            body["quantity"] = sub.quantity
        return Answer(200, body)


def activate(state: SandboxState, app: App, subscription_id: str, body: Any) -> Answer:
    """``POST /{id}/activate``: PendingFulfillmentStart → Subscribed; billing starts."""
    if not isinstance(body, dict) or not isinstance(body.get("planId"), str):
        raise bad_request("planId is required", target="planId")
    with state.lock:
        sub = _owned(state, app, subscription_id)
        if sub.status == "Unsubscribed":
            raise ApiError(404, "NotFound", f"Subscription {sub.id} is Unsubscribed")
        if sub.status in ("Subscribed", "Suspended"):
            raise bad_request(f"Subscription {sub.id} is already {sub.status}")
        if body["planId"] != sub.plan_id and not state.config.live_quirks:
            raise bad_request(f"planId {body['planId']!r} is not the subscription's plan "
                              f"{sub.plan_id!r}", target="planId")
        quantity = body.get("quantity")
        if quantity is not None and quantity != sub.quantity:
            raise bad_request(f"quantity {quantity!r} is not the subscription's "
                              f"{sub.quantity!r}", target="quantity")
        now = state.now()
        sub.status, sub.last_modified = "Subscribed", now
        sub.billed.append([now, None])
        return Answer(200)


def get(state: SandboxState, app: App, subscription_id: str) -> Answer:
    with state.lock:
        return Answer(200, _owned(state, app, subscription_id).describe())


def list_all(state: SandboxState, app: App, continuation: str | None, next_link: str) -> Answer:
    """``GET /``: this app's subscriptions, Unsubscribed included, a page at a time."""
    start = 0
    if continuation:
        try:
            if len(continuation) > MAX_CONTINUATION_CHARS:
                raise ValueError
            start = int(base64.urlsafe_b64decode(continuation.encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise bad_request("continuationToken is not valid",
                              target="continuationToken") from None
    with state.lock:
        mine = [s for s in state.subscriptions.values() if _app_of(state, s) is app]
        size = state.config.page_size
        page = mine[start:start + size]
        body: dict[str, Any] = {"subscriptions": [s.describe() for s in page],
                                "@nextLink": None}
        if start + size < len(mine):
            token = base64.urlsafe_b64encode(str(start + size).encode()).decode()
            body["@nextLink"] = (f"{next_link}?continuationToken={token}"
                                 f"&api-version={API_VERSION}")
        return Answer(200, body)


def plans(state: SandboxState, app: App, subscription_id: str, plan_id: str | None) -> Answer:
    with state.lock:
        sub = _owned(state, app, subscription_id)
        offer = state.offers[sub.offer_id]
        found = [p.describe() for p in offer.plans.values()
                 if plan_id is None or p.plan_id == plan_id]
        return Answer(200, {"plans": found})


def update(state: SandboxState, app: App, subscription_id: str, body: Any,
           operations_url: str) -> Answer:
    """``PATCH /{id}``: a publisher-initiated change of plan *or* quantity; 202 and an
    operation that finishes on the emulator's next tick."""
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    plan_id, quantity = body.get("planId"), body.get("quantity")
    if plan_id is not None and quantity is not None:
        raise bad_request("Plan and quantity cannot be changed in the same request")
    if plan_id is None and quantity is None:
        raise bad_request("planId or quantity is required")
    with state.lock:
        sub = _owned(state, app, subscription_id)
        if sub.status != "Subscribed":
            raise bad_request(f"Subscription {sub.id} is {sub.status}, not Subscribed")
        if "Update" not in sub.allowed_operations():
            raise bad_request("Update is not an allowed customer operation on this "
                              "subscription")
        offer = state.offers[sub.offer_id]
        if plan_id is not None:
            if not isinstance(plan_id, str) or plan_id not in offer.plans:
                raise bad_request(f"Plan {plan_id!r} is not a plan of offer {offer.offer_id}",
                                  target="planId")
            if plan_id == sub.plan_id:
                raise bad_request("The plan is unchanged", target="planId")
            target = offer.plans[plan_id]
            new_quantity = sub.quantity if target.per_seat else None
            if target.per_seat and new_quantity is None:
                new_quantity = target.min_quantity
            operation = _operation(state, sub, "ChangePlan", "Partner", plan_id, new_quantity)
        else:
            plan = offer.plans[sub.plan_id]
            if not plan.per_seat:
                raise bad_request(f"Plan {plan.plan_id} is not priced per seat",
                                  target="quantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or not (
                    plan.min_quantity <= quantity <= plan.max_quantity):
                raise bad_request(f"quantity must be a whole number from {plan.min_quantity} "
                                  f"to {plan.max_quantity}", target="quantity")
            if quantity == sub.quantity:
                raise bad_request("The quantity is unchanged", target="quantity")
            operation = _operation(state, sub, "ChangeQuantity", "Partner", sub.plan_id,
                                   quantity)
        return _accepted(operation, operations_url)


def delete(state: SandboxState, app: App, subscription_id: str, operations_url: str) -> Answer:
    """``DELETE /{id}``: the publisher cancels; 202 and an Unsubscribe operation."""
    with state.lock:
        sub = _owned(state, app, subscription_id)
        if sub.status == "Unsubscribed":
            raise ApiError(404, "NotFound", f"Subscription {sub.id} is Unsubscribed")
        if "Delete" not in sub.allowed_operations():
            raise bad_request("Delete is not an allowed customer operation on this "
                              "subscription")
        return _accepted(_operation(state, sub, "Unsubscribe", "Partner", sub.plan_id,
                                    sub.quantity), operations_url)


def pending_operations(state: SandboxState, app: App, subscription_id: str) -> Answer:
    with state.lock:
        sub = _owned(state, app, subscription_id)
        return Answer(200, {"operations": [
            o.describe() for o in state.operations.values()
            if o.subscription_id == sub.id and o.status == "InProgress"]})


def get_operation(state: SandboxState, app: App, subscription_id: str,
                  operation_id: str) -> Answer:
    with state.lock:
        return Answer(200, _own_operation(state, app, subscription_id, operation_id).describe())


def update_operation(state: SandboxState, app: App, subscription_id: str, operation_id: str,
                     body: Any) -> Answer:
    """``PATCH /{id}/operations/{opId}``: the publisher's Success or Failure for a
    marketplace-initiated change or reinstatement."""
    quirks = state.config.live_quirks
    status = body.get("status") if isinstance(body, dict) else None
    if status not in ("Success", "Failure") and not (quirks and isinstance(status, str)):
        raise bad_request("status must be Success or Failure", target="status")
    with state.lock:
        operation = _own_operation(state, app, subscription_id, operation_id)
        if operation.source == "Partner" and quirks:
            raise ApiError(500, "InternalServerError", "An internal error occurred")
        if not operation.ackable:
            raise bad_request(f"A {operation.source}-initiated {operation.action} operation "
                              "cannot be acknowledged")
        newer_done = any(
            o.subscription_id == operation.subscription_id and o.created > operation.created
            and o.finished_at is not None and o.action in ("ChangePlan", "ChangeQuantity")
            for o in state.operations.values())
        if operation.status != "InProgress" or newer_done:
            raise ApiError(409, "Conflict", f"Operation {operation.id} is {operation.status}; "
                                            "a newer update has already been fulfilled"
                           if newer_done else f"Operation {operation.id} is "
                                              f"{operation.status} already")
        operation.acknowledged = status
        finish(state, operation, succeeded=status != "Failure")
        return Answer(200)


def finish(state: SandboxState, operation: Operation, *, succeeded: bool) -> None:
    """End an operation, applying its change when it succeeded; the caller holds the lock."""
    now = state.now()
    sub = state.subscriptions[operation.subscription_id]
    operation.finished_at = now
    if not succeeded:
        operation.status = "Failed"
        operation.error_status_code = "Failure"
        operation.error_message = ("The publisher refused the change" if operation.acknowledged
                                   else "The operation failed")
        return
    operation.status = "Succeeded"
    sub.last_modified = now
    if operation.action in ("ChangePlan", "ChangeQuantity"):
        sub.plan_id, sub.quantity = operation.plan_id, operation.quantity
    elif operation.action == "Reinstate" and sub.status == "Suspended":
        sub.status, sub.suspended_at = "Subscribed", None
        sub.billed.append([now, None])
    elif operation.action == "Unsubscribe":
        end_billing(sub, now)
        sub.status, sub.unsubscribed_at = "Unsubscribed", now


def end_billing(sub: Subscription, now: datetime) -> None:
    for span in sub.billed:
        if span[1] is None:
            span[1] = now


def _operation(state: SandboxState, sub: Subscription, action: Any, source: Any, plan_id: str,
               quantity: int | None) -> Operation:
    operation = Operation(id=new_id(), subscription_id=sub.id, offer_id=sub.offer_id,
                          publisher_id=sub.publisher_id, action=action, source=source,
                          plan_id=plan_id, quantity=quantity, created=state.now())
    state.operations[operation.id] = operation
    return operation


def _accepted(operation: Operation, operations_url: str) -> Answer:
    location = (f"{operations_url}/{operation.subscription_id}/operations/{operation.id}"
                f"?api-version={API_VERSION}")
    return Answer(202, None, {"Operation-Location": location, "Operation-Id": operation.id})


def _app_of(state: SandboxState, sub: Subscription) -> App:
    return state.offers[sub.offer_id].app


def _owned(state: SandboxState, app: App, subscription_id: str) -> Subscription:
    sub = state.subscriptions.get(subscription_id)
    if sub is None:
        raise ApiError(404, "NotFound", f"Subscription {subscription_id} was not found")
    if _app_of(state, sub) is not app:
        raise ApiError(403, "Forbidden", "The subscription belongs to another publisher's "
                                         "offer")
    return sub


def _own_operation(state: SandboxState, app: App, subscription_id: str,
                   operation_id: str) -> Operation:
    sub = _owned(state, app, subscription_id)
    operation = state.operations.get(operation_id)
    if operation is None or operation.subscription_id != sub.id:
        if state.config.live_quirks:
            raise bad_request(f"Operation {operation_id} was not found")
        raise ApiError(404, "NotFound", f"Operation {operation_id} was not found")
    return operation
