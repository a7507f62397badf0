"""Billing accounts: sessions, the account, and the operator's bindings (`/billing/v1`)."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.deps import (
    AccountDep,
    CenterDep,
    billing_router,
    require_operator,
)
from accrual.contract.errors import NotFound
from accrual.infra.http import Text, error_responses

router = billing_router()


class BillingSessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "username": "ada", "password": "correct horse battery"}]})

    username: Text = Field(max_length=64)
    password: Text = Field(max_length=256)


class BillingSessionOut(BaseModel):
    token: str
    account_id: str


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
