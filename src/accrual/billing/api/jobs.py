"""The billing center's background jobs as they stand, for operators (`/billing/v1`)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from accrual.billing.api.deps import CenterDep, billing_router, require_operator
from accrual.infra.http import error_responses

router = billing_router()


@router.get("/admin/jobs", tags=["billing: operator"], dependencies=[Depends(require_operator)],
            responses=error_responses(401))
def jobs(center: CenterDep) -> dict[str, Any]:
    """Each job of the billing center (`billing inbox`, `billing relay`, `arrears tick`,
    `billing mails`, `marketplace reporter`): its last run and last success, failures
    counted per failure code, and the units (messages, accounts, mails, marketplace
    charges) failing now with their error and next attempt; then the relay's backlog with
    the messages that failed (from the outbox rows) and the mail backlog. `/healthz` is
    `degraded` while any job here is."""
    listed = [center.inbox.job, center.arrears.job, center.mails.job,
              center.marketplace_reporter.job]
    relay: dict[str, Any] | None = None
    if center.relay is not None:
        listed.append(center.relay.job)
        pending, oldest = center.relay.backlog()
        relay = {"pending": pending, "oldest": oldest.isoformat() if oldest else None,
                 "delivered": center.relay.stats.delivered,
                 "failed_batches": center.relay.stats.failed_batches,
                 "last_error": center.relay.stats.last_error,
                 "failing": center.relay.failing()}
    return {"status": "degraded" if any(job.degraded for job in listed) else "ok",
            "jobs": [job.view() for job in sorted(listed, key=lambda j: j.name)],
            "outbox": relay, "mails": center.mails.backlog()}
