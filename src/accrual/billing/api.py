"""The billing center's public HTTP API (`/billing/v1`)."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.queries import daily_bill
from accrual.billing.wiring import BillingCenter
from accrual.contract.errors import Forbidden, Invalid, NotFound, Unauthorized
from accrual.contract.messages import (
    BindingChanged,
    BindingCodeConfirmation,
    BindingCodeRequest,
    BindingCodeSent,
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    RegistrationResult,
)
from accrual.infra.http import Text, bearer_token, error_responses, plain_path_params, same_secret
from accrual.money import InvalidDecimal

router = APIRouter(prefix="/billing/v1", dependencies=[Depends(plain_path_params)])


def center_of(request: Request) -> BillingCenter:
    return request.app.state.billing  # type: ignore[no-any-return]


CenterDep = Annotated[BillingCenter, Depends(center_of)]


def require_operator(request: Request) -> None:
    if not same_secret(bearer_token(request), request.app.state.admin_token):
        raise Unauthorized("unauthorized", "this needs the operator token")


def require_account_access(account_id: str, request: Request, center: CenterDep) -> str:
    """The account's own session, or the operator. Another account's session gets 403."""
    token = bearer_token(request)
    if same_secret(token, request.app.state.admin_token):
        return account_id
    session_account = center.accounts.account_for_session(token)
    if session_account is None:
        raise Unauthorized("unauthorized", "unknown or expired session; log in again")
    if session_account != account_id:
        raise Forbidden("forbidden", "this session belongs to another billing account")
    return account_id


AccountDep = Annotated[str, Depends(require_account_access)]


class BillingSessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "username": "ada", "password": "correct horse battery"}]})

    username: Text = Field(max_length=64)
    password: Text = Field(max_length=256)


class BillingSessionOut(BaseModel):
    token: str
    account_id: str


class RechargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "amount": "100.00", "reference": "bank-transfer-2026-11-25-0042"}]})

    amount: str | int = Field(description="Decimal string in the center's currency, > 0, "
                                          "at most 2 decimal places")
    reference: Text = Field(description="The transfer's reference; a repeated reference credits once",
                           max_length=128)


class OverviewOut(BaseModel):
    currency: str
    cash: str
    vouchers: str
    prepaid_cards: str
    arrears: str


class BindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "account_id": "<billing account id>", "settlement_method": "billing_center"}]})

    account_id: Text | None = Field(None, description="The billing account to bind to")
    username: Text | None = Field(None, description="…or that account's username")
    settlement_method: Text = "billing_center"


@router.post("/sessions", response_model=BillingSessionOut, responses=error_responses(401),
             tags=["billing: accounts"])
def login(body: BillingSessionIn, center: CenterDep) -> BillingSessionOut:
    token, account_id = center.accounts.login(body.username, body.password)
    return BillingSessionOut(token=token, account_id=account_id)


@router.get("/accounts/{account_id}", tags=["billing: accounts"],
            responses=error_responses(401, 403, 404))
def get_account(account_id: AccountDep, center: CenterDep) -> dict[str, Any]:
    return {**center.accounts.account(account_id),
            "workspaces": center.accounts.workspaces_of(account_id)}


@router.get("/accounts/{account_id}/overview", response_model=OverviewOut,
            tags=["billing: wallet"], responses=error_responses(401, 403, 404))
def overview(account_id: AccountDep, center: CenterDep) -> dict[str, str]:
    """Balances: cash, vouchers and prepaid cards held, and the arrears owed (all decimal strings)."""
    return center.wallet.overview(account_id)


@router.get("/accounts/{account_id}/daily-bills", tags=["billing: bills"],
            responses=error_responses(401, 403, 404, 422))
def daily_bills(account_id: AccountDep, center: CenterDep,
                day: Annotated[date, Query(alias="date", description="The billing day")]) -> dict[str, Any]:
    """The day's lines per workspace, item and retention tier with quantity, unit price and amount."""
    center.accounts.account(account_id)
    return daily_bill(center.engine, account_id, day, center.config.currency)


@router.post("/admin/accounts/{account_id}/recharges", tags=["billing: operator"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 409, 422))
def recharge(account_id: str, body: RechargeIn, center: CenterDep) -> dict[str, Any]:
    """Credit cash for an offline transfer. The same reference credits once; reusing it with
    another amount is 409 `idempotency_conflict`. A top-up pays arrears first."""
    try:
        return center.wallet.recharge(account_id, body.amount, body.reference)
    except InvalidDecimal as error:
        raise Invalid("invalid_amount", f"amount {error.reason}") from None


@router.put("/admin/workspaces/{workspace_id}/binding", tags=["billing: operator"],
            dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 422))
def bind(workspace_id: str, body: BindingIn, center: CenterDep) -> dict[str, Any]:
    """Bind a workspace to a billing account. A first binding applies today (and makes a free
    workspace commercial); a change applies from the next billing day."""
    account_id = body.account_id
    if account_id is None and body.username:
        account_id = center.accounts.find_by_username(body.username)
    if account_id is None:
        raise NotFound("account_not_found", "name an existing account by account_id or username")
    result = center.accounts.bind(workspace_id, account_id, body.settlement_method)
    if center.relay is not None:
        with contextlib.suppress(Exception):  # the relay loop delivers it later
            center.relay.drain()
    return result


class InboxIn(BaseModel):
    messages: list[Envelope]


@router.post("/internal/inbox", tags=["internal"], dependencies=[Depends(require_operator)],
             responses=error_responses(401))
def inbox(body: InboxIn, center: CenterDep) -> dict[str, list[str]]:
    """Messages from console sites (service token); each applied at most once."""
    return {"applied": center.wallet.deliver(body.messages)}


@router.post("/internal/registrations", response_model=RegistrationResult, tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 409))
def internal_register(body: RegistrationRequest, center: CenterDep) -> RegistrationResult:
    return center.accounts.register(body)


@router.post("/internal/registrations/{key}/confirm", tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404))
def internal_confirm(key: str, body: RegistrationConfirmation, center: CenterDep) -> dict[str, str]:
    return {"billing_account_id": center.accounts.confirm(key, body)}


@router.delete("/internal/registrations/{key}", status_code=204, tags=["internal"],
               dependencies=[Depends(require_operator)], responses=error_responses(401))
def internal_cancel(key: str, center: CenterDep) -> None:
    center.accounts.cancel(key)


@router.post("/internal/binding-codes", response_model=BindingCodeSent, tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 422, 503))
def internal_binding_code(body: BindingCodeRequest, center: CenterDep) -> BindingCodeSent:
    """Mail a code to the account's owner for binding a workspace to it (upgrade)."""
    return center.upgrades.request_code(body)


@router.post("/internal/binding-codes/confirm", response_model=BindingChanged, tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 403, 404, 422))
def internal_binding_confirm(body: BindingCodeConfirmation, center: CenterDep) -> BindingChanged:
    """Check the code and bind the workspace (at once: it was free until now)."""
    return center.upgrades.confirm_code(body)
