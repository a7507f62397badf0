"""Operator endpoints and the internal inbox (`/console/v1`)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field

from accrual.console.api.deps import ConsoleDep, console_router, require_operator
from accrual.console.services.rerate import RerateRecord
from accrual.contract.messages import Envelope
from accrual.infra.http import IsoDate, Text, error_responses

router = console_router()


class CloseDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"date": "2026-11-25"}]})

    date: IsoDate


class CloseDayOut(BaseModel):
    date: date
    charges: int
    adjustments: int
    already_closed: bool
    delivered: int
    failed: dict[str, str] = Field(
        default_factory=dict,
        description="Workspaces that could not be closed this time, with why: the day is "
                    "closed for every other one; these are tried again with backoff")


@router.post("/admin/close-day", response_model=CloseDayOut, tags=["console: operator"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 422))
def close_day(body: CloseDayIn, console: ConsoleDep) -> CloseDayOut:
    """Close a site-local day for every workspace: statistics → billing details → outbox,
    then deliver them to the billing center. Closing a day twice changes nothing."""
    result = console.day_close.close_day(body.date)
    delivered = console.nudge_relay()
    return CloseDayOut(date=result.day, charges=result.charges, adjustments=result.adjustments,
                       already_closed=result.already_closed, delivered=delivered,
                       failed=result.failed)


@router.get("/admin/jobs", tags=["console: operator"], dependencies=[Depends(require_operator)],
            responses=error_responses(401))
def jobs(console: ConsoleDep) -> dict[str, Any]:
    """Background work as it stands: each job of this site (`<site> day close`,
    `<site> relay`, `<site> inbox`) with its last run and last success, failures counted
    per failure code and the units failing now (workspace days, messages) with their
    error and next attempt; the outbox backlog with the relay's counters and the
    messages that failed (from the outbox rows). `/healthz` is `degraded` while any job
    here is."""
    pending, oldest = console.relay.backlog()
    listed = sorted((console.day_close.job, console.relay.job, console.inbox.job),
                    key=lambda job: job.name)
    return {"status": "degraded" if any(job.degraded for job in listed) else "ok",
            "jobs": [job.view() for job in listed],
            "outbox": {"pending": pending, "oldest": oldest.isoformat() if oldest else None,
                       "delivered": console.relay.stats.delivered,
                       "failed_batches": console.relay.stats.failed_batches,
                       "last_error": console.relay.stats.last_error,
                       "failing": console.relay.failing()},
            "day_close": {"last_closable_day": console.day_close.last_closable_day().isoformat(),
                          "failing": sorted(console.day_close.job.failing)}}


class RerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "from": "2026-11-01", "to": "2026-11-25", "reason": "logs 7d price was mistyped",
        "actor": "ops@example.com"}]})

    start: IsoDate = Field(alias="from")
    end: IsoDate = Field(alias="to")
    reason: Text = Field(max_length=500)
    actor: Text = Field(max_length=320)


@router.post("/admin/rerates", tags=["console: operator"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 422))
def rerate(body: RerateIn, console: ConsoleDep) -> dict[str, Any]:
    """Price the closed days of a range again with the price book in force (after a
    correction): only the differences become adjustment details. Audited."""
    result = console.rerates.run(body.start, body.end, reason=body.reason, actor=body.actor)
    return {**rerate_json(result), "delivered": console.nudge_relay()}


@router.get("/admin/rerates", tags=["console: operator"], dependencies=[Depends(require_operator)],
            responses=error_responses(401))
def rerates(console: ConsoleDep) -> dict[str, Any]:
    """The audit of re-rates, newest first."""
    return {"rerates": [rerate_json(record) for record in console.rerates.history()]}


def rerate_json(record: RerateRecord) -> dict[str, Any]:
    """A re-rate's audit record as the API shows it (money as a decimal string)."""
    return {"id": record.id, "actor": record.actor, "reason": record.reason,
            "from": record.first_day.isoformat(), "to": record.last_day.isoformat(),
            "days": record.days, "adjustments": record.adjustments, "amount": str(record.amount),
            "price_book": record.price_book, "started_at": record.started_at.isoformat(),
            "finished_at": record.finished_at.isoformat()}


class InboxIn(BaseModel):
    messages: list[Envelope]


@router.post("/internal/inbox", tags=["internal"], include_in_schema=True,
             dependencies=[Depends(require_operator)], responses=error_responses(401))
def inbox(body: InboxIn, console: ConsoleDep) -> dict[str, list[str]]:
    """Messages from the billing center (service token); applied at most once each."""
    return {"applied": console.inbox.deliver(body.messages)}
