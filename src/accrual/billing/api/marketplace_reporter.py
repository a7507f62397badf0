"""The marketplace charge reporter, for operators (`/billing/v1/admin/marketplaces`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.deps import CenterDep, billing_router, require_operator
from accrual.billing.services.marketplace_reporter import CHARGES_LIMIT, Backlog, ChargeView
from accrual.infra.http import Whole, error_responses
from accrual.money import format_minor

router = billing_router()

_VENDOR_EXAMPLE: dict[str, Any] = {"pending": 2, "sent": 0, "accepted": 40, "duplicate": 0,
                                   "refused": 1, "unknown": 0}
Status = Literal["pending", "sent", "accepted", "duplicate", "refused", "unknown"]
_CHARGE_EXAMPLE: dict[str, Any] = {
    "id": 41, "cloud_account_id": "ca_5f0c2b7d9e1a3c4b5d6e7f80", "vendor": "aws",
    "dimension": "usage_cny_cents", "period_start": "2026-11-26T02:00:00+00:00",
    "quantity": 12345, "amount": "123.45", "currency": "CNY", "status": "accepted",
    "attempts": 1, "next_attempt_at": "2026-11-26T02:00:00+00:00",
    "deadline_at": "2026-11-26T08:00:00+00:00", "created_at": "2026-11-26T02:00:00+00:00",
    "sent_at": "2026-11-26T02:00:01+00:00", "settled_at": "2026-11-26T02:00:01+00:00",
    "record_id": "6b2c1d8e-0f1a-4c3b-9d2e-7a6f5e4d3c2b", "last_error": None,
    "alerted_at": None}


class VendorBacklogOut(BaseModel):
    pending: int
    sent: int
    accepted: int
    duplicate: int
    refused: int
    unknown: int = Field(description="Held: a vendor that keeps every push may have kept "
                                     "them; resolve each with the vendor's bill")


class BacklogOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "pending": 2, "sent_unanswered": 0, "oldest_pending_age_s": 840, "near_deadline": 0,
        "accepted": 40, "duplicate": 0, "refused": 1, "unknown": 0, "sends": 45,
        "retries": 2, "by_vendor": {"aws": _VENDOR_EXAMPLE}}]})

    pending: int = Field(description="Charges cut and waiting to be sent (again)")
    sent_unanswered: int = Field(description="Charges sent whose answer is not recorded yet")
    oldest_pending_age_s: int | None = Field(
        description="Seconds since the oldest pending or unanswered charge was cut")
    near_deadline: int = Field(description="Pending or unanswered charges with little of the "
                                           "vendor's lateness window left (alerted)")
    accepted: int
    duplicate: int
    refused: int
    unknown: int = Field(description="Charges sent to a vendor that keeps every push (Alibaba "
                                     "Cloud) with no answer proving whether it kept them: never "
                                     "sent again by themselves; `/health` is degraded until "
                                     "each is resolved (`…/charges/{id}/resolution`)")
    sends: int = Field(description="Reports handed to vendors, resends included")
    retries: int = Field(description="Of those, the resends")
    by_vendor: dict[str, VendorBacklogOut]


class ChargeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CHARGE_EXAMPLE]})

    id: int
    cloud_account_id: str
    vendor: str
    dimension: str
    period_start: str
    quantity: int = Field(description="Whole units of the listing's money dimension")
    amount: str = Field(description="quantity × the unit, in the center's currency")
    currency: str
    status: Status = Field(description="`unknown`: held until an operator resolves it")
    attempts: int
    next_attempt_at: str
    deadline_at: str = Field(description="After this the vendor refuses the report")
    created_at: str
    sent_at: str | None
    settled_at: str | None
    record_id: str | None = Field(description="The vendor's id of the accepted record")
    last_error: str | None
    alerted_at: str | None


@router.get("/admin/marketplaces/reporter", response_model=BacklogOut,
            tags=["billing: operator"], dependencies=[Depends(require_operator)],
            responses=error_responses(401))
def reporter_backlog(center: CenterDep) -> dict[str, Any]:
    """The marketplace charge reporter's backlog: charges pending and sent without an answer,
    the age of the oldest, those near the vendor's lateness limit, totals by outcome, sends
    and resends, and counts per vendor. The job itself (failing units, last run) is under
    `/billing/v1/admin/jobs` as `marketplace reporter`."""
    return backlog_json(center.marketplace_reporter.backlog())


@router.get("/admin/marketplaces/charges", response_model=list[ChargeOut],
            tags=["billing: operator"], dependencies=[Depends(require_operator)],
            responses=error_responses(401, 422))
def marketplace_charges(
        center: CenterDep,
        status: Annotated[Status | None, Query(description="Only charges in this state")] = None,
        cloud_account_id: Annotated[str | None, Query(
            min_length=1, max_length=32, description="Only this cloud account's charges")] = None,
        limit: Annotated[int, Query(ge=1, le=CHARGES_LIMIT,
                                    description="At most this many, newest first")] = 100,
) -> list[dict[str, Any]]:
    """Marketplace charges, newest first: what each reports (whole units for a period), its
    state, attempts, the vendor's deadline and answer."""
    currency = center.config.currency
    return [charge_json(charge, currency) for charge in center.marketplace_reporter.charges(
        status=status, cloud_account_id=cloud_account_id, limit=limit)]


class ResolutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"billed": True}, {"billed": False}]})

    billed: bool = Field(description="Whether the vendor's bill (or console) shows this "
                                     "charge's record: true, it counts as accepted; false, it "
                                     "is sent again (or carried to the next cut when the "
                                     "vendor's window has closed)")


@router.post("/admin/marketplaces/charges/{charge_id}/resolution", response_model=ChargeOut,
             tags=["billing: operator"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 404, 409, 422))
def resolve_charge(charge_id: Annotated[Whole, Path(ge=1, le=2**31 - 1, examples=[41])],
                   body: ResolutionIn, center: CenterDep) -> dict[str, Any]:
    """Resolve a charge held as `unknown` (sent to a vendor that keeps every push, with no
    answer proving whether it was kept: a timeout, a reset after sending, a 5xx, a
    reporter stopped between the call and its answer), from what the vendor billed.
    `billed: true` → `accepted`; `billed: false` → `pending`, sent at the next run, while
    the vendor's window is open, else `refused` and its amount carried into the next
    cut. 404 `charge_not_found`; 409 `charge_not_unknown` for a charge in any other state
    (nothing changes)."""
    return charge_json(center.marketplace_reporter.resolve(charge_id, body.billed),
                       center.config.currency)


def backlog_json(backlog: Backlog) -> dict[str, Any]:
    return {"pending": backlog.pending, "sent_unanswered": backlog.sent_unanswered,
            "oldest_pending_age_s": backlog.oldest_pending_age_s,
            "near_deadline": backlog.near_deadline, "accepted": backlog.accepted,
            "duplicate": backlog.duplicate, "refused": backlog.refused,
            "unknown": backlog.unknown, "sends": backlog.sends, "retries": backlog.retries,
            "by_vendor": {vendor: {"pending": v.pending, "sent": v.sent,
                                   "accepted": v.accepted, "duplicate": v.duplicate,
                                   "refused": v.refused, "unknown": v.unknown}
                          for vendor, v in backlog.by_vendor.items()}}


def charge_json(charge: ChargeView, currency: str) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {"id": charge.id, "cloud_account_id": charge.cloud_account_id,
            "vendor": charge.vendor, "dimension": charge.dimension,
            "period_start": charge.period_start.isoformat(), "quantity": charge.quantity,
            "amount": format_minor(charge.amount_minor, currency), "currency": currency,
            "status": charge.status, "attempts": charge.attempts,
            "next_attempt_at": charge.next_attempt_at.isoformat(),
            "deadline_at": charge.deadline_at.isoformat(),
            "created_at": charge.created_at.isoformat(), "sent_at": when(charge.sent_at),
            "settled_at": when(charge.settled_at), "record_id": charge.record_id,
            "last_error": charge.last_error, "alerted_at": when(charge.alerted_at)}
