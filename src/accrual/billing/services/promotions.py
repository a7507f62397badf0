"""Raises to administrator that wait for the paying account (reference-billing.md 1.4).

On a commercial workspace, a console asks before it makes a member an administrator
(``promotion.requested``); the account that pays for the workspace today approves or
rejects, and the answer goes back as ``promotion.decided``. The console may withdraw a
request that no longer stands (``promotion.withdrawn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.services import mail_outbox
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock
from accrual.contract.errors import Conflict, NotFound
from accrual.contract.messages import (
    PROMOTION_DECIDED,
    Envelope,
    PromotionDecided,
    PromotionRequested,
    PromotionWithdrawn,
    message_id,
)
from accrual.infra.outbox import enqueue

PENDING, APPROVED, REJECTED, WITHDRAWN = "pending", "approved", "rejected", "withdrawn"


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    request_id: str
    workspace_id: str
    site: str
    workspace_name: str
    member_email: str
    requested_by_email: str
    role: str
    requested_at: datetime
    status: str
    decided_at: datetime | None


class Promotions:
    def __init__(self, engine: Engine, clock: Clock, accounts: BillingAccounts) -> None:
        self.engine = engine
        self.clock = clock
        self.accounts = accounts

    # -- from the consoles (the inbox) -------------------------------------------

    def receive_in(self, conn: Connection, request: PromotionRequested) -> None:
        """Keep the request, and mail the account paying for the workspace that one waits."""
        p = t.promotion_requests
        if conn.execute(select(p.c.request_id)
                        .where(p.c.request_id == request.request_id)).first() is not None:
            return
        conn.execute(insert(p).values(
            request_id=request.request_id, workspace_id=request.workspace_id,
            site=request.site, workspace_name=request.workspace_name,
            member_email=request.member_email, requested_by_email=request.requested_by_email,
            role=request.role, requested_at=request.requested_at, status=PENDING))
        payer = self.accounts.binding_for(conn, request.workspace_id, self.accounts.today())
        if payer is None:  # not bound (yet): the request waits, unmailed, for whoever pays
            return
        a = t.accounts
        account = conn.execute(select(a.c.username, a.c.email, a.c.language)
                               .where(a.c.id == payer)).one()
        mail_outbox.queue(conn, template="promotion_requested", language=account.language,
                          recipient=account.email, dedup_key=f"promotion/{request.request_id}",
                          now=self.clock.now(),
                          values={"username": account.username,
                                  "workspace_name": request.workspace_name,
                                  "site": request.site, "member_email": request.member_email,
                                  "requested_by_email": request.requested_by_email})

    @staticmethod
    def withdraw_in(conn: Connection, withdrawn: PromotionWithdrawn) -> None:
        p = t.promotion_requests
        conn.execute(update(p).where(p.c.request_id == withdrawn.request_id,
                                     p.c.status == PENDING)
                     .values(status=WITHDRAWN, decided_at=withdrawn.withdrawn_at))

    # -- the paying account -------------------------------------------------------

    def pending_for(self, account_id: str) -> list[PromotionRequest]:
        """Requests waiting for ``account_id``: those of the workspaces it pays for today."""
        paid = [w.workspace_id for w in self.accounts.workspaces_of(account_id)]
        if not paid:
            return []
        p = t.promotion_requests
        with self.engine.connect() as conn:
            rows = conn.execute(select(p).where(p.c.workspace_id.in_(paid),
                                                p.c.status == PENDING)
                                .order_by(p.c.requested_at, p.c.request_id)).all()
        return [_request(row) for row in rows]

    def decide(self, account_id: str, request_id: str, approve: bool) -> PromotionRequest:
        """Approve or reject; the console hears of it through the outbox. Another
        account's request looks like one that does not exist."""
        self.accounts.account(account_id)
        now = self.clock.now()
        p = t.promotion_requests
        with self.engine.begin() as conn:
            row = conn.execute(select(p).where(p.c.request_id == request_id)).first()
            if row is None or self.accounts.binding_for(
                    conn, row.workspace_id, self.accounts.today()) != account_id:
                raise NotFound("promotion_not_found",
                               f"no request {request_id} for a workspace you pay for")
            if row.status != PENDING:
                raise Conflict("promotion_closed", f"this request was {row.status} already")
            status = APPROVED if approve else REJECTED
            done = conn.execute(update(p).where(p.c.request_id == request_id,
                                                p.c.status == PENDING)
                                .values(status=status, decided_at=now, decided_by=account_id))
            if not done.rowcount:  # answered by a concurrent request a moment ago
                raise Conflict("promotion_closed", "this request was answered already")
            decision = PromotionDecided(request_id=request_id, workspace_id=row.workspace_id,
                                        approved=approve, decided_at=now)
            enqueue(conn, t.outbox, [Envelope(
                id=message_id(PROMOTION_DECIDED, request_id), type=PROMOTION_DECIDED,
                aggregate_id=row.workspace_id, occurred_at=now, site=row.site,
                payload=decision.model_dump(mode="json"))], now)
            return _request(conn.execute(select(p).where(p.c.request_id == request_id)).one())


def _request(row: Any) -> PromotionRequest:
    return PromotionRequest(row.request_id, row.workspace_id, row.site, row.workspace_name,
                            row.member_email, row.requested_by_email, row.role,
                            row.requested_at, row.status, row.decided_at)
