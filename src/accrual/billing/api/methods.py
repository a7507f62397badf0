"""Settlement methods and linked cloud accounts (`/billing/v1`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.accounts import bound_json
from accrual.billing.api.deps import AccountDep, CenterDep, billing_router, require_operator
from accrual.billing.services.methods import CloudAccount
from accrual.infra.http import Text, error_responses

router = billing_router()

Method = Literal["billing_center", "aws", "aliyun", "huawei", "azure"]


class CloudAccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "vendor": "aws", "cloud_account_id": "123456789012"}]})

    vendor: Literal["aws", "aliyun", "huawei", "azure"]
    cloud_account_id: Text = Field(max_length=128, description="The vendor's account id")


class CloudAccountOut(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "id": "ca_5f0c2b7d9e1a3c4b5d6e7f80", "vendor": "aws", "cloud_account_id": "123456789012",
        "status": "active", "linked_at": "2026-11-26T02:00:00+00:00", "cancelled_at": None}]})

    id: str
    vendor: str
    cloud_account_id: str
    status: Literal["pending", "active", "unsubscribing", "cancelled", "failed"]
    linked_at: str
    cancelled_at: str | None


class MethodIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [
                                  {"settlement_method": "aws"},
                                  {"settlement_method": "aws",
                                   "cloud_account_id": "ca_5f0c2b7d9e1a3c4b5d6e7f80"}]})

    settlement_method: Method
    cloud_account_id: str | None = Field(
        default=None, min_length=1, max_length=32,
        description="Which of the account's cloud accounts of that vendor (its `id`); "
                    "by default the only active one")


class MethodOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "workspace_id": "<workspace id>", "account_id": "<billing account id>",
        "settlement_method": "aws", "from_method": "billing_center",
        "effective_from": "2026-11-27", "changed": True, "unlocked": False}]})

    workspace_id: str
    account_id: str
    settlement_method: str
    from_method: str
    effective_from: str = Field(description="The next billing day: today settles as it began")
    changed: bool
    unlocked: bool = Field(description="A workspace locked (for arrears, or because its "
                                       "marketplace subscription ended) that this change "
                                       "unlocked at once")


@router.get("/accounts/{account_id}/cloud-accounts", response_model=list[CloudAccountOut],
            tags=["billing: settlement"], responses=error_responses(401, 403, 404))
def cloud_accounts(account_id: AccountDep, center: CenterDep) -> list[dict[str, Any]]:
    """The cloud marketplace accounts this account may settle workspaces through."""
    return [_cloud_account(linked) for linked in center.methods.cloud_accounts(account_id)]


@router.post("/admin/accounts/{account_id}/cloud-accounts", status_code=201,
             response_model=CloudAccountOut, tags=["billing: operator"],
             dependencies=[Depends(require_operator)],
             responses={200: {"model": CloudAccountOut, "description": "Already linked (a replay)"},
                        **error_responses(401, 404, 409, 422)})
def link_cloud_account(account_id: str, body: CloudAccountIn, center: CenterDep,
                       response: Response) -> dict[str, Any]:
    """Link a marketplace account (what marketplace activation records). One cloud account
    belongs to one billing account (409 `cloud_account_taken`); `azure` only in the USD
    center (422 `invalid_vendor`)."""
    linked, created = center.methods.link_cloud_account(account_id, body.vendor,
                                                        body.cloud_account_id)
    if not created:
        response.status_code = 200
    return _cloud_account(linked)


@router.put("/accounts/{account_id}/workspaces/{workspace_id}/settlement-method",
            response_model=MethodOut, tags=["billing: settlement"],
            responses=error_responses(401, 403, 404, 409, 422))
def change_method(account_id: AccountDep, workspace_id: str, body: MethodIn,
                  center: CenterDep) -> dict[str, Any]:
    """Change how a workspace's bills are paid, from the next billing day: `billing_center`
    (the wallet) or a marketplace whose cloud account is linked (409
    `cloud_account_required`). Once per calendar month (409 `settlement_change_limit`,
    naming the first day it is possible again); the method already in force from tomorrow is
    409 `settlement_unchanged`. Moving a workspace locked for arrears to a marketplace unlocks
    it at once. A marketplace with several active cloud accounts needs `cloud_account_id`
    (409 `cloud_account_ambiguous`; 404 `cloud_account_not_found`). A workspace activated
    from a marketplace settles only through that vendor (409 `channel_restricted`) until
    its subscription ends. A workspace locked because its subscription ended is unlocked
    at once by re-subscribing, another cloud account or the billing center, even if it
    changed this month already; one that the end of its Huawei subscription moved to the
    billing center already is unlocked by choosing the billing center (answered
    `changed: false`, `unlocked: true`)."""
    change = center.methods.change(account_id, workspace_id, body.settlement_method,
                                   body.cloud_account_id)
    return {**bound_json(change.bound), "from_method": change.from_method,
            "unlocked": change.unlocked}


def _cloud_account(linked: CloudAccount) -> dict[str, Any]:
    return {"id": linked.id, "vendor": linked.vendor, "cloud_account_id": linked.external_id,
            "status": linked.status, "linked_at": linked.linked_at.isoformat(),
            "cancelled_at": None if linked.cancelled_at is None
            else linked.cancelled_at.isoformat()}
