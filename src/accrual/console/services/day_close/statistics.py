"""What a close compares: the day's statistics, aggregated from its usage, and what was
already billed for the day. Both are streamed and keyed by workspace."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Connection, case, func, or_, select, union

from accrual.catalog import ITEMS
from accrual.catalog.items import DailyRule
from accrual.catalog.rules import POST_RULE_ITEMS, daily_quantity
from accrual.console.adapters import tables as t
from accrual.console.domain.rating import Billed, StatKey
from accrual.contract.messages import detail_id
from accrual.infra.bulk import among

_MAX_ITEMS = sorted(code for code, item in ITEMS.items() if item.rule is DailyRule.MAX)

_STREAM_ROWS = 10_000


def read_statistics(conn: Connection, day: date, scope: list[str] | None
                    ) -> tuple[dict[str, dict[StatKey, Decimal]], dict[str, str | None]]:
    """The day's statistics of commercial workspaces, by workspace, and their accounts."""
    u, w = t.usage_records, t.workspaces
    is_max = u.c.item.in_(_MAX_ITEMS)
    quantity = case((is_max, func.max(u.c.quantity)), else_=func.sum(u.c.quantity))
    query = (select(u.c.workspace_id, u.c.item, u.c.retention_days, quantity.label("q"),
                    w.c.billing_account_id, func.sum(u.c.companion).label("companion"))
             .join(w, w.c.id == u.c.workspace_id)
             .where(u.c.day == day, w.c.plan == "commercial",
                    # usage from before an upgrade stays free
                    or_(w.c.commercial_since.is_(None),
                        u.c.occurred_at >= w.c.commercial_since))
             .group_by(u.c.workspace_id, u.c.item, u.c.retention_days, w.c.billing_account_id))
    if scope is not None:
        query = query.where(among(conn, u.c.workspace_id, scope))
    statistics: dict[str, dict[StatKey, Decimal]] = {}
    accounts: dict[str, str | None] = {}
    # Streamed (a server-side cursor on PostgreSQL): the rows are keyed while the
    # database is still aggregating the next ones.
    for workspace_id, item, tier, q, account, companion in conn.execute(
            query.execution_options(yield_per=_STREAM_ROWS)):
        found = statistics.get(workspace_id)
        if found is None:
            found = statistics[workspace_id] = {}
            accounts[workspace_id] = account
        quantity_ = q if type(q) is Decimal else Decimal(q)
        if item in POST_RULE_ITEMS and companion:
            quantity_ = daily_quantity(item, quantity_, companion)
        found[StatKey(workspace_id, day, item, tier)] = quantity_
    return statistics, accounts


def read_billed(conn: Connection, site: str, day: date, scope: list[str] | None
                ) -> dict[str, dict[StatKey, Billed]]:
    """What was billed for the day so far, by workspace."""
    s = t.daily_statistics
    query = select(s.c.workspace_id, s.c.item, s.c.retention_days, s.c.quantity,
                   s.c.amount_minor, s.c.revision).where(s.c.day == day)
    if scope is not None:
        query = query.where(among(conn, s.c.workspace_id, scope))
    billed: dict[str, dict[StatKey, Billed]] = {}
    for workspace_id, item, tier, quantity, amount_minor, revision in conn.execute(
            query.execution_options(yield_per=_STREAM_ROWS)):
        found = billed.get(workspace_id)
        if found is None:
            found = billed[workspace_id] = {}
        found[StatKey(workspace_id, day, item, tier)] = Billed(
            Decimal(quantity), amount_minor, revision,
            detail_id(site, workspace_id, day, item, tier, revision))
    return billed


def workspaces_of(conn: Connection, day: date) -> list[str]:
    """Every workspace with usage or billed statistics on ``day``, sorted."""
    u, s = t.usage_records, t.daily_statistics
    query = union(select(u.c.workspace_id).where(u.c.day == day),
                  select(s.c.workspace_id).where(s.c.day == day))
    return sorted(conn.execute(query).scalars())
