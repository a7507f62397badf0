"""Azure Marketplace: the offer's landing page and its connection webhook
(`/billing/v1/marketplaces/azure`). What they do is described in
``accrual.billing.services.azure_fulfillment``. A USD billing center only: another one
answers 404 ``marketplace_not_configured``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.deps import CenterDep, billing_router, require_operator
from accrual.billing.api.marketplaces import activation_json
from accrual.billing.services.azure_fulfillment import WebhookOutcome
from accrual.billing.services.marketplace_activation import MAX_TOKEN
from accrual.billing.services.marketplace_reconciliation import ReconcileOutcome
from accrual.infra.http import error_responses

router = billing_router()

TOKEN_EXAMPLE = "aGVsbG8gd29ybGQ%3D"


class WebhookOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "operation_id": "5c3e2f1a-7b9d-4e8f-a0b1-c2d3e4f5a6b7", "action": "Suspend",
        "subscription_id": "37f9dea2-4345-438f-b0bd-03d40d28c7e0", "outcome": "applied",
        "acknowledged": False, "cloud_account_id": "ca_5f0c2b7d9e1a3c4b5d6e7f80",
        "status": "suspended", "locked": ["<workspace id>"], "unlocked": []}]})

    operation_id: str = Field(description="Azure's operation id (the call's message id)")
    action: str = Field(description="ChangePlan | ChangeQuantity | Renew | Suspend | "
                                    "Reinstate | Unsubscribe")
    subscription_id: str = Field(description="The SaaS subscription")
    outcome: str = Field(description="applied | unchanged | duplicate (applied before: a "
                                     "retry or replay, nothing changed) | unknown_customer "
                                     "| not_applied (the operation failed or is outdated) | "
                                     "acknowledged (ChangeQuantity answered Success)")
    acknowledged: bool = Field(description="The operation was answered Success by this call")
    cloud_account_id: str | None
    status: str | None = Field(description="The cloud account's status afterwards")
    locked: list[str]
    unlocked: list[str]


@router.get(
    "/marketplaces/azure/landing", status_code=303, tags=["billing: marketplaces"],
    responses={303: {"description": "To the activation page (its id in the path)"},
               201: {"description": "With `Accept: application/json`: the activation",
                     "content": {"application/json": {"example": {
                         "id": "act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e", "vendor": "azure",
                         "buyer_account_id": "37f9dea2-4345-438f-b0bd-03d40d28c7e0",
                         "cloud_account_id": "ca_5f0c2b7d9e1a3c4b5d6e7f80", "state": "open",
                         "account_id": None, "linked": False,
                         "created_at": "2026-11-26T02:00:00+00:00",
                         "expires_at": "2026-11-26T03:00:00+00:00"}}}},
               **error_responses(404, 409, 422, 503)})
def landing(token: Annotated[str, Query(min_length=1, max_length=MAX_TOKEN,
                                        examples=[TOKEN_EXAMPLE])],
            request: Request, center: CenterDep) -> Response:
    """The offer's landing page: Azure sends the buyer's browser here after the purchase
    with `?token=` (no login: the token is the proof). The token is resolved with Azure
    (Resolve), the subscription must be in force (waiting for its activation, or
    active; else 409 `subscription_inactive`), and an activation valid for an hour is
    recorded; the browser is sent on (303) to the activation page, where the buyer
    registers or signs in and claims it; Azure starts billing (Activate) at that step.
    A token Azure refuses (unknown, expired) is 422 `invalid_token`; Azure unreachable is
    503 `marketplace_unavailable`; neither records anything. 404
    `marketplace_not_configured` in a center without an Azure listing (not USD)."""
    activation = center.azure.landing(token)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(status_code=201, content=activation_json(activation))
    return RedirectResponse(f"/billing/v1/marketplaces/activations/{activation.id}",
                            status_code=303)


@router.post(
    "/marketplaces/azure/webhook", response_model=WebhookOut, tags=["billing: marketplaces"],
    responses=error_responses(400, 403, 404, 413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object"}, "example": {
            "id": "5c3e2f1a-7b9d-4e8f-a0b1-c2d3e4f5a6b7",
            "activityId": "0b4e1f6e-7a0c-4b5e-9f3d-2c1a0e9d8b7c",
            "publisherId": "accrual", "offerId": "accrual-saas", "planId": "payg",
            "quantity": None, "subscriptionId": "37f9dea2-4345-438f-b0bd-03d40d28c7e0",
            "timeStamp": "2026-11-26T02:00:00.000Z", "action": "Suspend",
            "status": "Succeeded", "operationRequestSource": "Azure",
            "purchaseToken": None}}}}})
async def webhook(request: Request, center: CenterDep) -> Any:
    """The offer's connection webhook, as Azure calls it with its bearer JWT
    (`Authorization`). One not provably Azure's (no token, forged, another tenant or
    app, expired: a stale replay) is 403 with the reason's code and changes nothing; a
    call with a valid token whose body is not a webhook payload of this offer is 422
    (`malformed`, `unknown_action`, `wrong_offer`); one not posted as JSON is 415;
    every call is confirmed with Get operation first (403 `operation_unconfirmed` for an
    operation Azure does not know). Effects: ChangePlan (the reports then carry the new
    plan), ChangeQuantity and Reinstate are answered Success; Suspend locks the
    workspaces settled through the subscription and Reinstate unlocks them; Renew;
    Unsubscribe locks them and mails their owners. A call applied before (Azure's retry,
    or a replay) answers 200 with outcome `duplicate` and changes nothing. 503
    `marketplace_unavailable` when it cannot be confirmed now (Azure calls again); 404
    `marketplace_not_configured` in a center without an Azure listing."""
    center.azure.adapter()  # 404 first in a center without Azure
    if request.headers.get("content-type", "").split(";")[0].strip().lower() \
            != "application/json":
        return JSONResponse(status_code=415, content={"error": {
            "code": "unsupported_media_type", "message": "post the call as application/json"}})
    body = await request.body()
    outcome = await run_in_threadpool(center.azure.webhook, dict(request.headers), body)
    return webhook_json(outcome)


def webhook_json(outcome: WebhookOutcome) -> dict[str, Any]:
    return {"operation_id": outcome.operation_id, "action": outcome.action,
            "subscription_id": outcome.subscription_id, "outcome": outcome.outcome,
            "acknowledged": outcome.acknowledged,
            "cloud_account_id": outcome.cloud_account_id, "status": outcome.status,
            "locked": list(outcome.locked), "unlocked": list(outcome.unlocked)}


class ReconcileFiguresOut(BaseModel):
    checked: int = Field(description="Charges whose outcome was unknown (sent and not "
                                     "answered, or refused as an unknown outcome)")
    accepted: int = Field(description="Found held by the marketplace: accepted with its id")
    resent: int = Field(description="Not held, within the window: back to pending")
    duplicate: int = Field(description="Another quantity held for the hour: to the wallet")
    carried: int = Field(description="Not held after the window: carried into the next cut")
    at: str | None = Field(description="When (the last run's; the totals' latest)")


class ReconciliationOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "last_run": {"checked": 1, "accepted": 1, "resent": 0, "duplicate": 0,
                     "carried": 0, "at": "2026-11-26T02:10:00+00:00"},
        "since_start": {"checked": 3, "accepted": 2, "resent": 1, "duplicate": 0,
                        "carried": 0, "at": "2026-11-26T02:10:00+00:00"}}]})

    last_run: ReconcileFiguresOut
    since_start: ReconcileFiguresOut = Field(description="Totals since this process started")


@router.get("/admin/marketplaces/reconciliation", response_model=ReconciliationOut,
            tags=["billing: operator"], dependencies=[Depends(require_operator)],
            responses=error_responses(401))
def reconciliation(center: CenterDep) -> dict[str, Any]:
    """Marketplace reconciliation (Azure `usageEvents`): what its last run and every run
    since start did with the charges of unknown outcome. The job (failing units, last
    run) is under `/billing/v1/admin/jobs` as `marketplace reconciliation`."""
    job = center.marketplace_reconciliation
    return {"last_run": figures_json(job.last), "since_start": figures_json(job.totals)}


def figures_json(outcome: ReconcileOutcome) -> dict[str, Any]:
    return {"checked": outcome.checked, "accepted": outcome.accepted,
            "resent": outcome.resent, "duplicate": outcome.duplicate,
            "carried": outcome.carried,
            "at": outcome.at.isoformat() if outcome.at is not None else None}
