"""Online recharge: orders paid through a payment gateway, and its notifies (`/billing/v1`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from accrual.billing.api.deps import (
    AccountDep,
    CenterDep,
    billing_router,
    center_of,
    idempotency_key_header,
)
from accrual.billing.payments.gateway import SIGNATURE_HEADER
from accrual.billing.payments.service import Payments, RechargeOrder
from accrual.contract.errors import ServiceError
from accrual.infra.http import Text, error_body, error_response, error_responses, status_for
from accrual.money import format_minor

router = billing_router()

MAX_NOTIFY_BYTES = 64 * 1024


class RechargeOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "amount": "100.00", "return_url": "/billing/recharge/done"}]})

    amount: str | int = Field(description="Decimal string in the center's currency, > 0, "
                                          "at most 2 decimal places, at most 1000000000000.00")
    return_url: Text | None = Field(
        None, max_length=500, description="Where the gateway sends the payer's browser back to "
                                          "(a path on this site or an http(s) URL); "
                                          "`order_id` and `status` are added to its query")


class RechargeOrderOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "order_id": "ro_3f2a9c0d1e4b5a6978877665", "account_id": "<billing account id>",
        "status": "pending", "amount": "100.00", "currency": "CNY",
        "redirect_url": "/sandbox/pay/<token>", "return_url": "/billing/recharge/done",
        "transaction_id": None, "created_at": "2026-11-26T02:00:00+00:00", "paid_at": None}]})

    order_id: str
    account_id: str
    status: Literal["pending", "paid"] = Field(description="`paid` once the gateway's notify "
                                                           "credited the cash")
    amount: str
    currency: str
    redirect_url: str | None = Field(description="Send the payer's browser here to pay")
    return_url: str | None
    transaction_id: str | None = Field(description="The gateway's transaction, once paid")
    created_at: str
    paid_at: str | None


class PaymentNotifyIn(BaseModel):
    """The sandbox gateway's notify body (documentation: the raw bytes are what is signed)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "order_id": "ro_3f2a9c0d1e4b5a6978877665", "transaction_id": "sbx_0f1e2d3c4b5a69788776655443",
        "amount": "100.00", "currency": "CNY", "status": "paid",
        "paid_at": "2026-11-26T02:01:00+00:00"}]})

    order_id: str
    transaction_id: str
    amount: str
    currency: str
    status: str
    paid_at: str | None = None


class PaymentNotifyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"received": True, "outcome": "credited"}, {"received": True, "outcome": "duplicate"}]})

    received: bool
    outcome: Literal["credited", "duplicate", "ignored"] = Field(
        description="credited now; already credited (a replay); or not a payment")


@router.post("/accounts/{account_id}/recharge-orders", status_code=201,
             response_model=RechargeOrderOut, tags=["billing: payments"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
def create_recharge_order(
        account_id: AccountDep, body: RechargeOrderIn, center: CenterDep, response: Response,
        idempotency_key: Annotated[str, idempotency_key_header("the same order")],
) -> dict[str, object]:
    """Start an online top-up: open an order with the payment gateway and answer the URL to send
    the payer's browser to. The gateway's signed notify credits the cash (arrears are paid
    first). A retry with the same `Idempotency-Key` returns the same order (header
    `Idempotent-Replayed: true`); the key with another amount or return URL is 409
    `idempotency_conflict`. Bad amounts are 422 `invalid_amount` (at most 1000000000000.00);
    an order whose credit would take the cash balance past 1000000000000000.00 is 422
    `balance_limit_exceeded`; a missing `Idempotency-Key` is 422 `invalid_request`, a malformed
    one 422 `invalid_idempotency_key`."""
    order, created = center.payments.create_order(account_id, body.amount, idempotency_key,
                                                  body.return_url)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return order_json(order)


@router.get("/accounts/{account_id}/recharge-orders/{order_id}", response_model=RechargeOrderOut,
            tags=["billing: payments"], responses=error_responses(401, 403, 404))
def get_recharge_order(account_id: AccountDep, order_id: str,
                       center: CenterDep) -> dict[str, object]:
    """One recharge order of the account: `pending` until the gateway's notify credits it, then
    `paid` with the gateway's transaction id. Another account's order is 404 `order_not_found`."""
    return order_json(center.payments.order(account_id, order_id))


def order_json(order: RechargeOrder) -> dict[str, object]:
    return {"order_id": order.order_id, "account_id": order.account_id,
            "status": order.status.value,
            "amount": format_minor(order.amount_minor, order.currency),
            "currency": order.currency, "redirect_url": order.redirect_url,
            "return_url": order.return_url, "transaction_id": order.transaction_id,
            "created_at": order.created_at.isoformat(),
            "paid_at": None if order.paid_at is None else order.paid_at.isoformat()}


@router.post("/payments/notify", response_model=PaymentNotifyOut, tags=["billing: payments"],
             responses=error_responses(400, 409, 413, 422, 503),
             openapi_extra={
                 "parameters": [{"name": SIGNATURE_HEADER, "in": "header", "required": True,
                                 "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                                                "'<t>.' + body>",
                                 "schema": {"type": "string"}}],
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": PaymentNotifyIn.model_json_schema()}}}})
async def payment_notify(request: Request) -> Any:
    """The payment gateway's asynchronous notify. No bearer token: it is authenticated by its
    `Accrual-Signature` (HMAC-SHA256 over `timestamp.body` with the shared secret; refused when
    signed more than 300 s from now). 200 `{"received": true}` when credited, already credited
    (a replay credits nothing more) or not a payment. A notify that credits nothing answers 400
    with `invalid_signature`, `stale_notify`, `malformed_notify`, `unknown_order`,
    `amount_mismatch` or `currency_mismatch`, 409 with `order_already_paid` or
    `transaction_conflict`, and 422 `balance_limit_exceeded` when the credit would take the
    account's cash past its bound (nothing is credited; the order stays pending)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_NOTIFY_BYTES:
        return error_response(413, "payload_too_large", f"send at most {MAX_NOTIFY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_NOTIFY_BYTES:
        return error_response(413, "payload_too_large", f"send at most {MAX_NOTIFY_BYTES} bytes")
    payments = center_of(request).payments
    status, answer = await run_in_threadpool(notify_answer, payments, dict(request.headers), raw)
    return JSONResponse(answer, status_code=status)


def notify_answer(payments: Payments, headers: Mapping[str, str],
                  body: bytes) -> tuple[int, dict[str, Any]]:
    """A gateway's notify as the HTTP answer it gets: 200 ``{"received": true, "outcome"}``
    when it is credited, already credited, or not a payment; otherwise the refusal's status
    and error envelope (400 for a forged, stale or mismatched notify, 409 when the order was
    paid by another transaction, 422 past the balance bound). The sandbox's in-process
    sender answers the same way the HTTP endpoint does."""
    try:
        outcome = payments.notify(headers, body)
    except ServiceError as error:
        return status_for(error), error_body(error.code, error.message)
    return 200, {"received": True, "outcome": outcome.value}
