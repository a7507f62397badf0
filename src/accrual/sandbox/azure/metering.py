"""The marketplace metering service (marketplaces.md §4.5): ``usageEvent``,
``batchUsageEvent`` and ``usageEvents``.

One accepted event per key, the key being (resource, dimension, UTC hour) by default
(``SandboxConfig.dedupe`` also offers the 2022-03 text's per-resource key and one with
the plan). An event is judged in this order, the first failing rule naming its status:
shape (``BadArgument``), resource known (``ResourceNotFound``), the caller's offer
(``ResourceNotAuthorized``), quantity > 0 (``InvalidQuantity``), not older than the
window (``Expired``) nor in the future (``BadArgument``), the plan is the
subscription's (``BadArgument``) and has the dimension (``InvalidDimension``), the
hour overlaps a time the subscription was Subscribed (``ResourceNotActive``; hours
before a cancellation stay billable), the key is free (``Duplicate``, echoing the
accepted event), an injected per-event error (``Error``).

A single ``usageEvent`` answers 200, 409 (``Duplicate``, with ``additionalInfo.
acceptedMessage``), 403 (another publisher's resource) or 400 for the rest.
The emulator keeps every call in ``state.received`` with its answer, refused ones
too, so a double send shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from accrual.sandbox.azure.protocol import Answer, bad_request, raise_fault
from accrual.sandbox.azure.state import (
    App,
    SandboxState,
    UsageEvent,
    hour_floor,
    iso,
    new_id,
)

_FIELDS = ("resourceId", "quantity", "dimension", "effectiveStartTime", "planId")
MAX_FIELD_CHARS = 255
RECON_STATUSES = ("Submitted", "Accepted", "Rejected", "Mismatch", "TestHeaders", "DryRun")


class _Refusal(Exception):
    def __init__(self, status: str, message: str, target: str | None = None,
                 accepted: UsageEvent | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.target = target
        self.accepted = accepted


def usage_event(state: SandboxState, app: App, body: Any) -> Answer:
    with state.lock:
        raise_fault(state.take_fault("usageEvent"), flat=True)
        try:
            event = _judge(state, app, body, error=False)
        except _Refusal as refusal:
            answer = _single_refusal(refusal, body)
        else:
            answer = Answer(200, event.message("Accepted"))
        return answer


def batch_usage_event(state: SandboxState, app: App, body: Any) -> Answer:
    with state.lock:
        fault = state.take_fault("batchUsageEvent")
        raise_fault(fault, flat=True)
        events = body.get("request") if isinstance(body, dict) else None
        if not isinstance(events, list) or not events:
            raise bad_request("request must be a non-empty list of usage events",
                              target="request", flat=True)
        if len(events) > state.config.max_batch:
            raise bad_request(f"A batch holds at most {state.config.max_batch} usage events",
                              target="request", flat=True)
        failing = fault.events if fault is not None and fault.kind == "event_error" else 0
        results = []
        for index, item in enumerate(events):
            try:
                event = _judge(state, app, item, error=index < failing)
            except _Refusal as refusal:
                results.append(_batch_refusal(state, refusal, item))
            else:
                results.append(event.message("Accepted"))
        return Answer(200, {"count": len(results), "result": results})


def usage_events(state: SandboxState, app: App, query: Mapping[str, str]) -> Answer:
    """``GET usageEvents``: accepted events of this app's offers from ``usageStartDate``
    (required) to ``usageEndDate``, with the optional filters."""
    with state.lock:
        raise_fault(state.take_fault("usageEvents"), flat=True)
    start = _date(query.get("usageStartDate"), "usageStartDate", required=True)
    end = _date(query.get("usageEndDate"), "usageEndDate", required=False)
    recon = query.get("reconStatus")
    if recon is not None and recon not in RECON_STATUSES:
        raise bad_request(f"reconStatus is one of {', '.join(RECON_STATUSES)}",
                          target="reconStatus", flat=True)
    with state.lock:
        rows = []
        for event in state.events.values():
            offer = state.offers.get(event.offer_id)
            if offer is None or offer.app is not app:
                continue
            when = event.effective_start_time
            if when < start or (end is not None and when >= end):
                continue
            wanted = {"offerId": event.offer_id, "planId": event.plan_id,
                      "dimension": event.dimension,
                      "azureSubscriptionId": event.azure_subscription_id,
                      "reconStatus": event.recon_status}
            if any(query.get(name) not in (None, value) for name, value in wanted.items()):
                continue
            rows.append({
                "usageDate": iso(hour_floor(when)), "usageResourceId": event.resource_id,
                "dimension": event.dimension, "planId": event.plan_id,
                "planName": offer.plans[event.plan_id].display_name
                if event.plan_id in offer.plans else event.plan_id,
                "offerId": event.offer_id, "offerName": event.offer_id, "offerType": "SaaS",
                "azureSubscriptionId": event.azure_subscription_id,
                "reconStatus": event.recon_status, "submittedQuantity": event.quantity,
                "processedQuantity": event.quantity if event.processed_quantity is None
                else event.processed_quantity,
                "submittedCount": 1, "usageEventId": event.usage_event_id})
        return Answer(200, rows)


def _judge(state: SandboxState, app: App, item: Any, *, error: bool) -> UsageEvent:
    """The event accepted and stored, or the refusal naming its per-event status."""
    if not isinstance(item, dict):
        raise _Refusal("BadArgument", "A usage event is a JSON object")
    for name in _FIELDS:
        if name not in item or item[name] is None:
            raise _Refusal("BadArgument", f"{name} is required", name)
    for name in ("resourceId", "dimension", "planId", "effectiveStartTime"):
        value = item[name]
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_FIELD_CHARS:
            raise _Refusal("BadArgument", f"{name} must be a string of 1 to "
                                          f"{MAX_FIELD_CHARS} characters", name)
    quantity = item["quantity"]
    if isinstance(quantity, bool) or not isinstance(quantity, int | Decimal):
        raise _Refusal("BadArgument", "quantity must be a number", "quantity")
    try:
        when = datetime.fromisoformat(item["effectiveStartTime"])
    except ValueError:
        raise _Refusal("BadArgument", "effectiveStartTime is not an ISO 8601 time",
                       "effectiveStartTime") from None
    if when.tzinfo is None:
        raise _Refusal("BadArgument", "effectiveStartTime must be in UTC",
                       "effectiveStartTime")
    when = when.astimezone(UTC)
    sub = state.subscriptions.get(item["resourceId"])
    if sub is None:
        raise _Refusal("ResourceNotFound", "The resource was not found", "resourceId")
    offer = state.offers[sub.offer_id]
    if offer.app is not app:
        raise _Refusal("ResourceNotAuthorized", "The resource belongs to another publisher",
                       "resourceId")
    amount = Decimal(quantity)
    if amount <= 0:
        raise _Refusal("InvalidQuantity", "quantity must be greater than 0", "quantity")
    now = state.now()
    if when < now - state.config.metering_window:
        raise _Refusal("Expired", "effectiveStartTime is more than "
                                  f"{state.config.metering_window} old", "effectiveStartTime")
    if when > now + state.config.future_tolerance:
        raise _Refusal("BadArgument", "effectiveStartTime is in the future",
                       "effectiveStartTime")
    if item["planId"] != sub.plan_id or item["planId"] not in offer.plans:
        raise _Refusal("BadArgument", f"planId {item['planId']!r} is not the subscription's "
                                      f"plan", "planId")
    if item["dimension"] not in offer.plans[sub.plan_id].dimensions:
        raise _Refusal("InvalidDimension", f"Dimension {item['dimension']!r} is not a "
                                           f"dimension of plan {sub.plan_id}", "dimension")
    hour = hour_floor(when)
    if not sub.billable(hour):
        raise _Refusal("ResourceNotActive", f"The subscription is {sub.status}", "resourceId")
    key = _key(state, sub.id, item["dimension"], sub.plan_id, hour)
    if key in state.events:
        raise _Refusal("Duplicate", "This usage event already exists", None, state.events[key])
    if error:
        raise _Refusal("Error", "An internal error occurred; send the event again")
    event = UsageEvent(usage_event_id=new_id(), resource_id=sub.id, quantity=amount,
                       dimension=item["dimension"], effective_start_time=when,
                       plan_id=sub.plan_id, offer_id=sub.offer_id,
                       azure_subscription_id=sub.azure_subscription_id, message_time=now,
                       key=key)
    state.events[key] = event
    return event


def _key(state: SandboxState, resource: str, dimension: str, plan: str,
         hour: datetime) -> tuple[str, ...]:
    stamp = hour.isoformat()
    if state.config.dedupe == "resource":
        return (resource, stamp)
    if state.config.dedupe == "resource_dimension_plan":
        return (resource, dimension, plan, stamp)
    return (resource, dimension, stamp)


def _echo(item: Any) -> dict[str, Any]:
    return {name: item.get(name) for name in _FIELDS} if isinstance(item, dict) else {}


def _conflict(refusal: _Refusal) -> dict[str, Any]:
    assert refusal.accepted is not None
    return {"code": "Conflict", "message": refusal.message,
            "additionalInfo": {"acceptedMessage": refusal.accepted.message("Duplicate")}}


def _single_refusal(refusal: _Refusal, item: Any) -> Answer:
    if refusal.status == "Duplicate":
        return Answer(409, _conflict(refusal))
    if refusal.status == "ResourceNotAuthorized":
        return Answer(403, {"code": "Forbidden", "message": refusal.message})
    if refusal.status == "Error":
        return Answer(500, {"code": "InternalServerError", "message": refusal.message})
    return Answer(400, {"code": "BadArgument", "message": refusal.message,
                        "target": refusal.target or "usageEvent",
                        "details": [{"code": refusal.status, "message": refusal.message,
                                     "target": refusal.target}]})


def _batch_refusal(state: SandboxState, refusal: _Refusal, item: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"status": refusal.status, "messageTime": iso(state.now()),
                              **_echo(item)}
    if refusal.status == "Duplicate":
        result["error"] = _conflict(refusal)
    else:
        result["error"] = {"code": refusal.status, "message": refusal.message,
                           "target": refusal.target}
    return result


def _date(value: str | None, name: str, *, required: bool) -> Any:
    if value is None:
        if required:
            raise bad_request(f"{name} is required", target=name, flat=True)
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name} is not an ISO 8601 date", target=name, flat=True) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
