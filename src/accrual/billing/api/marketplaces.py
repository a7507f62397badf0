"""Cloud marketplaces: the buyer's arrival, activations and the vendors' notifications
(`/billing/v1/marketplaces`). The flow is described in
``accrual.billing.services.marketplace_activation``; the lifecycle in
``accrual.billing.services.marketplace_lifecycle``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.accounts import bound_json
from accrual.billing.api.deps import CenterDep, billing_router
from accrual.billing.services.marketplace_activation import (
    MAX_TOKEN,
    MAX_WORKSPACES,
    Activation,
    WorkspaceBound,
)
from accrual.billing.services.marketplace_lifecycle import NotificationOutcome
from accrual.contract.errors import Invalid, Unauthorized
from accrual.infra.http import bearer_token, error_responses

router = billing_router()

TOKEN_FIELD = "x-amzn-marketplace-token"  # AWS's name; the other vendors post JSON/GET
VendorPath = Annotated[str, Path(min_length=1, max_length=16, examples=["aws"])]
ActivationPath = Annotated[str, Path(min_length=1, max_length=40,
                                     examples=["act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e"])]
ACTIVATION_EXAMPLE: dict[str, Any] = {
    "id": "act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e", "vendor": "aws",
    "buyer_account_id": "123456789012", "cloud_account_id": "ca_5f0c2b7d9e1a3c4b5d6e7f80",
    "state": "open", "account_id": None, "linked": False,
    "created_at": "2026-11-26T02:00:00+00:00", "expires_at": "2026-11-26T03:00:00+00:00"}


def session_account(request: Request, center: CenterDep) -> str:
    """The billing account of the request's session (a person, not the operator)."""
    account_id = center.accounts.account_for_session(bearer_token(request))
    if account_id is None:
        raise Unauthorized("unauthorized", "unknown or expired session; log in again")
    return account_id


SessionDep = Annotated[str, Depends(session_account)]


class ActivationOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [dict(ACTIVATION_EXAMPLE)]})

    id: str
    vendor: str
    buyer_account_id: str = Field(description="The buyer's account at the vendor")
    cloud_account_id: str
    state: str = Field(description="open | reserved (a registration is using it) | "
                                   "completed | expired")
    account_id: str | None = Field(description="The billing account that took it")
    linked: bool = Field(description="The cloud account already belongs to a billing "
                                     "account: only that account can use it (sign in)")
    created_at: str
    expires_at: str


class WorkspacesIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "workspace_ids": ["<workspace id>"]}]})

    workspace_ids: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        min_length=1, max_length=MAX_WORKSPACES)


class WorkspacesOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"workspaces": [{
        "workspace_id": "<workspace id>", "account_id": "<billing account id>",
        "settlement_method": "aws", "effective_from": "2026-11-27", "changed": True,
        "from_method": "billing_center", "unlocked": False}]}]})

    workspaces: list[dict[str, Any]]


class NotificationOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "message_id": "8c2e5a7b-0f1d-4e3a-9b6c-2d4f6a8b0c1e", "vendor": "aws",
        "action": "unsubscribe-success", "outcome": "applied",
        "cloud_account_id": "ca_5f0c2b7d9e1a3c4b5d6e7f80", "status": "cancelled",
        "locked": ["<workspace id>"], "switched": []}]})

    message_id: str
    vendor: str
    action: str
    outcome: str = Field(description="applied | unchanged (nothing to change) | "
                                     "unknown_customer (no such buyer here: recorded only) | "
                                     "acknowledged (AWS SNS's SubscriptionConfirmation, "
                                     "confirmed; or UnsubscribeConfirmation)")
    cloud_account_id: str | None
    status: str | None
    locked: list[str]
    switched: list[str]


@router.post(
    "/marketplaces/{vendor}/fulfillment", status_code=303, tags=["billing: marketplaces"],
    responses={303: {"description": "To the activation page (its id in the path)"},
               201: {"model": ActivationOut,
                     "description": "With `Accept: application/json`: the activation"},
               **error_responses(400, 404, 409, 413, 415, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "required": [TOKEN_FIELD], "properties": {
                TOKEN_FIELD: {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN}}},
            "example": {TOKEN_FIELD: "<registration token>"}}}}})
async def fulfillment(vendor: VendorPath, request: Request, center: CenterDep) -> Response:
    """The marketplace's fulfilment URL: the buyer's browser posts its registration token
    here after subscribing (no login: the token is the proof). The token is resolved with
    the vendor, the subscription must be active (409 `subscription_inactive`), and an
    activation valid for an hour is recorded; the browser is sent on (303) to the
    activation page. A token the vendor refuses (unknown, used, expired) is 422 with the
    vendor's code; a vendor that cannot answer is 503 `marketplace_unavailable`; neither
    records anything. 422 `invalid_vendor` for a vendor this center does not offer, 404
    `marketplace_not_configured` for one it has no listing of."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() \
            != "application/x-www-form-urlencoded":
        return JSONResponse(status_code=415, content={"error": {
            "code": "unsupported_media_type",
            "message": "post the form as application/x-www-form-urlencoded"}})
    try:
        form = parse_qs((await request.body()).decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise Invalid("invalid_token", "the form is not valid UTF-8 form data") from None
    tokens = form.get(TOKEN_FIELD, [])
    if len(tokens) != 1:
        raise Invalid("invalid_token", f"post exactly one {TOKEN_FIELD} field")
    activation = await run_in_threadpool(center.activations.fulfil, vendor, tokens[0])
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(status_code=201, content=activation_json(activation))
    return RedirectResponse(f"/billing/v1/marketplaces/activations/{activation.id}",
                            status_code=303)


@router.get("/marketplaces/activations/{activation_id}", response_model=ActivationOut,
            tags=["billing: marketplaces"], responses=error_responses(404))
def activation(activation_id: ActivationPath, center: CenterDep) -> dict[str, Any]:
    """An activation: which vendor and buyer account, its state and until when it can be
    taken (the activation page shows it; its id is the buyer's proof, so no login)."""
    return activation_json(center.activations.activation(activation_id))


@router.post("/marketplaces/activations/{activation_id}/claim", response_model=ActivationOut,
             tags=["billing: marketplaces"], responses=error_responses(401, 404, 409))
def claim(activation_id: ActivationPath, account_id: SessionDep,
          center: CenterDep) -> dict[str, Any]:
    """Take the activation for the signed-in billing account: its cloud account becomes
    one this account settles workspaces through. Repeatable by the same account. 409
    `cloud_account_taken` (another account has that cloud account), `activation_used`,
    `activation_expired`, `subscription_ended`."""
    return activation_json(center.activations.claim(activation_id, account_id))


@router.post("/marketplaces/activations/{activation_id}/workspaces",
             response_model=WorkspacesOut, tags=["billing: marketplaces"],
             responses=error_responses(401, 404, 409, 422))
def bind_workspaces(activation_id: ActivationPath, body: WorkspacesIn, account_id: SessionDep,
                    center: CenterDep) -> dict[str, Any]:
    """Settle these workspaces of the signed-in account through the claimed activation's
    cloud account from the next billing day; all or none. A workspace locked because its
    earlier subscription ended is unlocked at once. 409 `activation_not_claimed`,
    `settlement_change_limit` (once a calendar month), `channel_restricted` (activated
    from another vendor); 404 `workspace_not_found`. One already settling so from
    tomorrow is reported with `changed: false`."""
    bound = center.activations.bind_workspaces(activation_id, account_id, body.workspace_ids)
    return {"workspaces": [_bound_json(b) for b in bound]}


@router.post(
    "/marketplaces/{vendor}/notifications", response_model=NotificationOut,
    tags=["billing: marketplaces"],
    responses=error_responses(400, 403, 404, 409, 413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}, "example": {
            "Type": "Notification", "MessageId": "8c2e5a7b-0f1d-4e3a-9b6c-2d4f6a8b0c1e",
            "Message": "{\"action\": \"unsubscribe-success\", \"customer-identifier\": "
                       "\"cust-1\", \"product-code\": \"prod-1\"}",
            "Signature": "<the vendor's signature>"}}}}})
async def notifications(vendor: VendorPath, request: Request,
                        center: CenterDep) -> dict[str, Any]:
    """A vendor's notification about a subscription, as the vendor sends it (AWS: the SNS
    envelope). The vendor's proof is inside (signature, token): one not provably the
    vendor's (forged, stale, malformed) is 403 with the adapter's code and changes
    nothing; one seen before (a replay) is 409 `notification_replayed` and changes
    nothing; every refusal is logged. An AWS SNS `SubscriptionConfirmation` (the first
    message to a newly subscribed endpoint), once its signature, topic and SubscribeURL
    are proven SNS's, is confirmed by visiting that URL and answered `acknowledged`.
    Effects:
    see the lifecycle (a cancellation locks the workspaces settled through it, or for
    Alibaba Cloud moves them to the billing center). 404 `marketplace_not_configured` for
    a vendor this center has no listing of; 503 `marketplace_unavailable` when the proof
    cannot be checked now (the vendor sends it again)."""
    body = await request.body()
    outcome = await run_in_threadpool(center.lifecycle.notify, vendor, dict(request.headers),
                                      body)
    return notification_json(outcome)


def activation_json(activation: Activation) -> dict[str, Any]:
    return {"id": activation.id, "vendor": activation.vendor,
            "buyer_account_id": activation.buyer_account_id,
            "cloud_account_id": activation.cloud_account_id, "state": activation.state,
            "account_id": activation.account_id, "linked": activation.linked,
            "created_at": activation.created_at.isoformat(),
            "expires_at": activation.expires_at.isoformat()}


def _bound_json(bound: WorkspaceBound) -> dict[str, Any]:
    if bound.change is None:
        return {"workspace_id": bound.workspace_id, "changed": False}
    return {**bound_json(bound.change.bound), "from_method": bound.change.from_method,
            "unlocked": bound.change.unlocked}


def notification_json(outcome: NotificationOutcome) -> dict[str, Any]:
    return {"message_id": outcome.message_id, "vendor": outcome.vendor,
            "action": outcome.action, "outcome": outcome.outcome,
            "cloud_account_id": outcome.cloud_account_id, "status": outcome.status,
            "locked": list(outcome.locked), "switched": list(outcome.switched)}
