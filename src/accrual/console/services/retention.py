"""Workspace retention policies: read, and change (owner of a commercial workspace only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select

from accrual.catalog.items import RETENTION_OPTIONS, DataType
from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.plans import FREE
from accrual.console.domain.retention import (
    FREE_RETENTION,
    ChangePlan,
    PolicyChange,
    check_option,
    in_force,
    plan_change,
)
from accrual.console.domain.roles import Action, permissions_for
from accrual.contract.errors import Forbidden, Invalid, NotFound


@dataclass(frozen=True, slots=True)
class PendingRetention:
    retention_days: int
    effective_from: datetime


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """A data type's retention: in force now, the options, a change waiting for tomorrow."""

    data_type: DataType
    retention_days: int
    options: tuple[int, ...]
    pending: PendingRetention | None


@dataclass(frozen=True, slots=True)
class RetentionChange:
    data_type: DataType
    retention_days: int
    plan: ChangePlan  # from when it applies, and whether that is now or the next day


class Retention:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock

    def _history(self, conn: Connection, workspace_id: str, data_type: DataType) -> list[PolicyChange]:
        r = t.retention_policies
        return [PolicyChange(row.effective_from, row.retention_days, row.changed_at)
                for row in conn.execute(select(r).where(r.c.workspace_id == workspace_id,
                                                        r.c.data_type == data_type.value)
                                        .order_by(r.c.effective_from))]

    def policies(self, workspace_id: str) -> list[RetentionPolicy]:
        now = self.clock.now()
        with self.engine.connect() as conn:
            plan = conn.execute(select(t.workspaces.c.plan)
                                .where(t.workspaces.c.id == workspace_id)).scalar()
            result = []
            for data_type in DataType:
                history = self._history(conn, workspace_id, data_type)
                pending = [c for c in history if c.effective_from > now]
                current = FREE_RETENTION if plan == FREE else in_force(history, data_type, now)
                result.append(RetentionPolicy(
                    data_type, current, tuple(RETENTION_OPTIONS[data_type]),
                    PendingRetention(pending[-1].retention_days, pending[-1].effective_from)
                    if pending and plan != FREE else None))
        return result

    def change(self, workspace_id: str, account_id: str, data_type: str,
               retention_days: int) -> RetentionChange:
        try:
            kind = DataType(data_type)
        except ValueError:
            raise NotFound("unknown_data_type",
                           f"data type must be one of {', '.join(d.value for d in DataType)}") from None
        problem = check_option(kind, retention_days)
        if problem:
            raise Invalid("invalid_retention", problem)
        now = self.clock.now()
        with self.engine.begin() as conn:
            ws = conn.execute(select(t.workspaces.c.plan, t.workspaces.c.status)
                              .where(t.workspaces.c.id == workspace_id)).first()
            role = conn.execute(select(t.members.c.role).where(
                t.members.c.workspace_id == workspace_id,
                t.members.c.account_id == account_id)).scalar()
            if ws is None or role is None:
                raise NotFound("workspace_not_found", f"no workspace {workspace_id} among yours")
            if not permissions_for(role).allows(Action.OWNER_ACTIONS):
                raise Forbidden("owner_only", "only the workspace owner may change retention")
            if ws.plan != "commercial":
                raise Forbidden("commercial_only",
                                "a free workspace keeps 7 days; upgrade to change retention")
            plan = plan_change(self._history(conn, workspace_id, kind), now, self.config.zone)
            r = t.retention_policies
            # A later change the same day replaces the one already waiting for tomorrow.
            conn.execute(delete(r).where(r.c.workspace_id == workspace_id,
                                         r.c.data_type == kind.value,
                                         r.c.effective_from == plan.effective_from))
            conn.execute(insert(r).values(workspace_id=workspace_id, data_type=kind.value,
                                          effective_from=plan.effective_from,
                                          retention_days=retention_days, changed_at=now,
                                          changed_by=account_id))
        return RetentionChange(kind, retention_days, plan)
