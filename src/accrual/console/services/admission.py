"""Admission: may a workspace ingest an item now? (free-plan quotas, locks, dissolution)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Engine, select

from accrual.catalog import ITEMS
from accrual.clock import Clock, day_bounds, site_day
from accrual.console.adapters import tables as t
from accrual.console.adapters.usage_stats import daily_quantities, per_item
from accrual.console.config import ConsoleConfig
from accrual.console.domain.admission import admit, free_quota_exceeded
from accrual.console.domain.plans import FREE, FREE_QUOTAS, NEVER_REFUSED
from accrual.contract.errors import Invalid

MAX_CHECKS = 1000
UNKNOWN_WORKSPACE = "unknown_workspace"


@dataclass(frozen=True, slots=True)
class AdmissionAnswer:
    """May ``workspace_id`` ingest ``item`` now; with a free-plan quota, how much of it is
    used today and when it resets."""

    workspace_id: str
    item: str
    allowed: bool
    reason: str | None  # quota_exceeded | not_in_plan | locked | dissolved | unknown_workspace
    used: Decimal | None = None
    quota: int | None = None
    resets_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QuotaItem:
    item: str
    used: Decimal
    quota: int | None  # None: not on the free plan, no quota applies
    exceeded: bool


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    workspace_id: str
    plan: str | None
    day: date
    resets_at: datetime
    items: tuple[QuotaItem, ...]


class AdmissionService:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock

    def check(self, checks: Sequence[tuple[str, str]]) -> list[AdmissionAnswer]:
        """Answer each (workspace_id, item); quotas reset at the site's midnight."""
        if len(checks) > MAX_CHECKS:
            raise Invalid("too_many_checks", f"ask about at most {MAX_CHECKS} pairs at once")
        for _, item in checks:
            if item not in ITEMS and item not in NEVER_REFUSED:
                raise Invalid("unknown_item", f"unknown billing item {item!r}")
        now = self.clock.now()
        today = site_day(now, self.config.zone)
        _, reset_at = day_bounds(today, self.config.zone)
        workspaces = {w for w, _ in checks}
        with self.engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(
                select(t.workspaces.c.id, t.workspaces.c.plan, t.workspaces.c.status)
                .where(t.workspaces.c.id.in_(workspaces)))}
            used = per_item(daily_quantities(conn, [today], [w for w in workspaces if w in rows]))
        answers: list[AdmissionAnswer] = []
        for workspace_id, item in checks:
            row = rows.get(workspace_id)
            if row is None:
                answers.append(AdmissionAnswer(workspace_id, item, False, UNKNOWN_WORKSPACE))
                continue
            decision = admit(row.plan, row.status, item,
                             used.get((workspace_id, today, item), Decimal(0)))
            if decision.quota is None:
                answers.append(AdmissionAnswer(workspace_id, item, decision.allowed,
                                               decision.reason))
            else:
                answers.append(AdmissionAnswer(
                    workspace_id, item, decision.allowed, decision.reason,
                    decision.used or Decimal(0), decision.quota, reset_at))
        return answers

    def quota_usage(self, workspace_id: str) -> QuotaUsage:
        """Today's use against the free plan's quotas, for owners and admins."""
        now = self.clock.now()
        today = site_day(now, self.config.zone)
        _, reset_at = day_bounds(today, self.config.zone)
        with self.engine.connect() as conn:
            plan = conn.execute(select(t.workspaces.c.plan)
                                .where(t.workspaces.c.id == workspace_id)).scalar()
            used = per_item(daily_quantities(conn, [today], [workspace_id]))
        items = []
        for item, quota in FREE_QUOTAS.items():
            amount = used.get((workspace_id, today, item), Decimal(0))
            items.append(QuotaItem(item, amount, quota if plan == FREE else None,
                                   free_quota_exceeded(plan, quota, amount)))
        return QuotaUsage(workspace_id, plan, today, reset_at, tuple(items))
