"""Dissolving a workspace (reference-billing.md §5.2, decisions.md 18).

Its owner may dissolve it during an arrears countdown or once it is locked. The
workspace's stored usage (records, daily statistics, pending late days, alert
rules) is deleted and it never ingests again; this cannot be undone. The billing
details already produced stay: they are the account's bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, select, union, update

from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.domain.roles import Action, permissions_for
from accrual.console.services.day_close import DayClose
from accrual.contract.errors import Conflict, Forbidden, Invalid, NotFound
from accrual.contract.messages import (
    WORKSPACE_DISSOLVED,
    Envelope,
    WorkspaceDissolved,
    message_id,
)
from accrual.infra.outbox import enqueue


@dataclass(frozen=True, slots=True)
class Dissolved:
    workspace_id: str
    dissolved_at: datetime
    deleted: dict[str, int]  # rows deleted per table of stored data


class Dissolution:
    def __init__(self, engine: Engine, clock: Clock, day_close: DayClose) -> None:
        self.engine = engine
        self.clock = clock
        self.day_close = day_close

    def dissolve(self, account_id: str, workspace_id: str, workspace_name: str) -> Dissolved:
        w, m = t.workspaces, t.members
        with self.engine.begin() as conn:
            query = (select(w.c.name, w.c.status, w.c.lock_state, m.c.role)
                     .join(m, (m.c.workspace_id == w.c.id) & (m.c.account_id == account_id))
                     .where(w.c.id == workspace_id))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(of=w)  # two dissolutions at once: one wins
            row = conn.execute(query).first()
            if row is None:
                raise NotFound("workspace_not_found", f"no workspace {workspace_id} among yours")
            if not permissions_for(row.role).allows(Action.OWNER_ACTIONS):
                raise Forbidden("owner_only", "only the workspace owner may dissolve it")
            if row.status == "dissolved":
                raise Conflict("workspace_dissolved", "the workspace is already dissolved")
            if row.status != "locked" and row.lock_state not in ("countdown", "locked"):
                raise Conflict("dissolve_not_allowed",
                               "a workspace can be dissolved only during its billing account's "
                               "arrears countdown or while it is locked")
            if workspace_name != row.name:
                raise Invalid("confirmation_mismatch",
                              "type the workspace's name exactly to confirm: dissolving "
                              "deletes its data and cannot be undone")
            u, s = t.usage_records, t.daily_statistics
            days = conn.execute(union(select(u.c.day).where(u.c.workspace_id == workspace_id),
                                      select(s.c.day).where(s.c.workspace_id == workspace_id))
                                ).scalars().all()
            # Wait for any close of those days in progress, and keep closes out until the
            # deletion commits: a close that read this usage would otherwise write its
            # statistics back, and a later re-rate would refund them.
            for day in sorted(days):
                self.day_close.lock_day(conn, day)
            deleted = {table.name: conn.execute(
                delete(table).where(table.c.workspace_id == workspace_id)).rowcount
                for table in (u, s, t.late_days, t.alert_rules)}
            conn.execute(delete(t.usage_day_totals)
                         .where(t.usage_day_totals.c.workspace_id == workspace_id))
            now = self.clock.now()
            conn.execute(update(w).where(w.c.id == workspace_id).values(
                status="dissolved", dissolved_at=now))
            site = conn.execute(select(w.c.site).where(w.c.id == workspace_id)).scalar_one()
            event = WorkspaceDissolved(workspace_id=workspace_id, site=site, dissolved_at=now)
            enqueue(conn, t.outbox, [Envelope(
                id=message_id(WORKSPACE_DISSOLVED, workspace_id), type=WORKSPACE_DISSOLVED,
                aggregate_id=workspace_id, occurred_at=now,
                payload=event.model_dump(mode="json"))], now)
        return Dissolved(workspace_id, now, deleted)
