"""Raises to administrator waiting for the paying account's approval (`/billing/v1`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from accrual.billing.api.deps import AccountDep, CenterDep, billing_router
from accrual.billing.services.promotions import PromotionRequest
from accrual.billing.wiring import BillingCenter
from accrual.infra.http import error_responses

router = billing_router()


class PromotionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "request_id": "<request id>", "workspace_id": "<workspace id>", "site": "cn1",
        "workspace_name": "Ada's team", "member_email": "grace@example.com",
        "requested_by_email": "ada@example.com", "role": "admin",
        "requested_at": "2026-11-28T09:30:00+00:00", "status": "pending", "decided_at": None}]})

    request_id: str
    workspace_id: str
    site: str
    workspace_name: str
    member_email: str
    requested_by_email: str
    role: str
    requested_at: str
    status: str
    decided_at: str | None


@router.get("/accounts/{account_id}/promotion-requests", tags=["billing: accounts"],
            responses=error_responses(401, 403))
def pending(account_id: AccountDep, center: CenterDep) -> dict[str, list[PromotionOut]]:
    """Raises to administrator of the commercial workspaces this account pays for, waiting
    for its approval (reference 1.4: on the commercial plan a billing center administrator
    approves them)."""
    return {"requests": [promotion_out(r) for r in center.promotions.pending_for(account_id)]}


@router.post("/accounts/{account_id}/promotion-requests/{request_id}/approve",
             response_model=PromotionOut, tags=["billing: accounts"],
             responses=error_responses(401, 403, 404, 409))
def approve(account_id: AccountDep, request_id: str, center: CenterDep) -> PromotionOut:
    """Approve: the member is an administrator once the console hears of it. Errors: 404
    `promotion_not_found` (also another account's); 409 `promotion_closed` (answered or
    withdrawn)."""
    return _decide(center, account_id, request_id, True)


@router.post("/accounts/{account_id}/promotion-requests/{request_id}/reject",
             response_model=PromotionOut, tags=["billing: accounts"],
             responses=error_responses(401, 403, 404, 409))
def reject(account_id: AccountDep, request_id: str, center: CenterDep) -> PromotionOut:
    """Reject: the member keeps the role it had. Errors as for approve."""
    return _decide(center, account_id, request_id, False)


def _decide(center: BillingCenter, account_id: str, request_id: str, approve: bool) -> PromotionOut:
    decided = center.promotions.decide(account_id, request_id, approve)
    center.nudge_relay()
    return promotion_out(decided)


def promotion_out(request: PromotionRequest) -> PromotionOut:
    return PromotionOut(request_id=request.request_id, workspace_id=request.workspace_id,
                        site=request.site, workspace_name=request.workspace_name,
                        member_email=request.member_email,
                        requested_by_email=request.requested_by_email, role=request.role,
                        requested_at=request.requested_at.isoformat(), status=request.status,
                        decided_at=None if request.decided_at is None
                        else request.decided_at.isoformat())
